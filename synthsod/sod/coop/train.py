"""Training the cooperative pair (:class:`synthsod.sod.coop.model.CoopSaliency`): Algorithm 1 on fully labelled
data, Algorithm 2 (learning while recovering) on partially labelled data.

The batches, augmentation, checkpoints and resume are the SOD trainer's (:func:`synthsod.sod.train.training_batches`).
The LVM learns with the recipe's optimiser (backbone at ``backbone_lr``; the paper: Adam 5e-5), the EBM
with Adam at ``CoopConfig.ebm_lr`` (1e-3); the recipe's schedule scales both (the paper: x0.9 every
20 epochs). Training runs at one size (the EBM's
``image_size``): the recipe's ``sizes`` must be ``[image_size]``.

With partial labels (items carrying "visible"), each step first recovers full maps from the visible
labels with the current models (:func:`synthsod.sod.coop.model.recover`), then takes the cooperative step on the
recovered maps, and the warm-up term sees the annotated pixels only. Partial labels come from simulated
points (the config's ``point_labels``, :mod:`synthsod.sod.point_labels`) or, as in the paper's weakly
supervised row, from scribble files (``coop.scribbles``, :mod:`synthsod.sod.coop.scribbles`), never both.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from synthsod.core.checkpoint import seeded
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency, coop_step, recover, warmup_weight
from synthsod.sod.coop.scribbles import ScribbleLabelled
from synthsod.sod.train import Recipe, make_optimizer, normalise, set_lr_factor, training_batches


def train_coop(
    data: Dataset,
    recipe: Recipe,
    *,
    seed: int = 0,
    model_kwargs: dict | None = None,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> CoopSaliency:
    """Train a :class:`CoopSaliency` (built from ``model_kwargs``) on ``data``; returned in eval mode."""
    device = torch.device(device)
    with seeded(seed):
        model = CoopSaliency(**(model_kwargs or {})).to(device)
    if list(recipe.sizes) != [model.ebm.image_size]:
        raise SynthsodError(
            f"coop trains at its EBM's size: recipe sizes must be [{model.ebm.image_size}], got {recipe.sizes}"
        )
    cfg = model.config
    if cfg.scribbles is not None:
        if len(data) and "visible" in data[0]:
            raise SynthsodError(
                "coop.scribbles and point_labels both give partial labels: set one of them (point_labels: null)"
            )
        data = ScribbleLabelled(data, cfg.scribbles)
    opt_lvm = make_optimizer(model.lvm, recipe)
    opt_ebm = torch.optim.Adam([{"params": list(model.ebm.parameters()), "lr": cfg.ebm_lr, "base_lr": cfg.ebm_lr}])
    parts = {"model": model, "opt_lvm": opt_lvm, "opt_ebm": opt_ebm}
    model.train()
    for batch in training_batches(data, recipe, seed, parts, checkpoint_path, desc="coop training"):
        set_lr_factor(opt_lvm, batch.lr_factor)
        set_lr_factor(opt_ebm, batch.lr_factor)
        images, targets = normalise(batch.images.to(device)), batch.masks.to(device)
        visible = None if batch.visible is None else batch.visible.to(device)
        if visible is not None:  # Algorithm 2: learn from the maps recovered from the visible labels
            targets = recover(model.lvm, model.ebm, images, targets * visible, visible, cfg, generator=batch.generator)
        losses = coop_step(
            model.lvm,
            model.ebm,
            opt_lvm,
            opt_ebm,
            images,
            targets,
            cfg,
            ce_weight=warmup_weight(cfg, batch.step, batch.steps),
            visible=visible,
            generator=batch.generator,
        )
        batch.bar.set_postfix(losses)
        if on_step is not None:
            on_step(batch.step, losses)
    return model.eval()


__all__ = ["train_coop"]
