"""Training a SOD model: F3Net's recipe (the default) or E-BigBiGAN's, resumable and deterministic.

Recipe (:class:`Recipe`; F3Net's values by default)
    SGD with Nesterov momentum 0.9 and weight decay 5e-4; the backbone learns at ``backbone_lr``
    (0.005), the rest at ``lr`` (0.05). ``schedule: triangular`` is F3Net's per-epoch triangle,
    lr x (1 - |2 (epoch + 1) / (epochs + 1) - 1|): it rises to the peak at mid-training and falls back.
    ``schedule: cyclic`` is ATAL's cyclic cosine (eq 8): ``cycles`` cosine annealings from the full rate,
    whose ends are the snapshots of a trajectory ensemble (:mod:`synthsod.sod.atal.methods`).
    ``schedule: step`` multiplies both rates by ``gamma`` every ``step_size`` steps (E-BigBiGAN's U-Net:
    Adam 1e-3, x0.2 at 8k of 12k steps). Each batch is resized to one size drawn from ``sizes``
    (F3Net's multi-scale 224-352), after a random crop (keeping at least ``crop_fraction`` of each side)
    and a horizontal flip per sample. Images are ImageNet-normalised; AMP (bf16) on CUDA.

Determinism and resume
    Epoch e visits the samples in a permutation drawn from (seed, e); each step's sizes, crops and
    flips come from (seed, step). A checkpoint (model, optimiser, step) is written every
    ``checkpoint_every`` steps, so a killed training resumes and ends exactly where an uninterrupted
    one ends (on CPU).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from synthsod.core.checkpoint import seeded, step_generator
from synthsod.core.gpu import autocast
from synthsod.core.io import atomic_path
from synthsod.core.progress import LineBar
from synthsod.core.training import TrainingLoop
from synthsod.errors import SynthsodError
from synthsod.sod.losses import LOSSES, OUTPUT_CHANNELS, check_output_channels, partial_bce_loss
from synthsod.sod.models import CHANNEL_MODELS, create_sod_model, f3net_loss
from synthsod.sod.schedules import cyclic_cosine_lr

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


SCHEDULES = ("triangular", "step", "constant", "cyclic")


@dataclass
class Recipe:
    optimizer: str = "sgd"  # sgd (Nesterov) | adam
    lr: float = 0.05  # head (everything but the backbone)
    backbone_lr: float = 0.005
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 32
    epochs: int = 32
    steps: int | None = None  # overrides epochs when set (E-BigBiGAN counts steps)
    schedule: str = "triangular"  # triangular | step | constant | cyclic
    cycles: int = 5  # cyclic only: cosine cycles (snapshots)
    step_size: int = 8000
    gamma: float = 0.2
    sizes: list[int] = field(default_factory=lambda: [224, 256, 288, 320, 352])
    crop_fraction: float = 0.9
    flip: bool = True
    checkpoint_every: int = 500

    def check(self) -> None:
        if self.optimizer not in ("sgd", "adam") or self.schedule not in SCHEDULES:
            raise SynthsodError(f"recipe: unknown optimizer {self.optimizer!r} or schedule {self.schedule!r}")
        if not self.sizes or not 0 < self.crop_fraction <= 1:
            raise SynthsodError("recipe: sizes must be non-empty and crop_fraction in (0, 1]")


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> ImageNet-normalised."""
    mean = torch.tensor(IMAGENET_MEAN, device=images.device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, device=images.device)[None, :, None, None]
    return ((images + 1) / 2 - mean) / std


def lr_factor(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    if recipe.schedule == "triangular":
        epoch, epochs = step // steps_per_epoch, math.ceil(total_steps(recipe, steps_per_epoch) / steps_per_epoch)
        return 1 - abs((epoch + 1) / (epochs + 1) * 2 - 1)
    if recipe.schedule == "cyclic":
        return cyclic_cosine_lr(1.0, step, total_steps(recipe, steps_per_epoch), recipe.cycles)
    if recipe.schedule == "step":
        return recipe.gamma ** (step // recipe.step_size)
    return 1.0


def total_steps(recipe: Recipe, steps_per_epoch: int) -> int:
    return recipe.steps if recipe.steps is not None else recipe.epochs * steps_per_epoch


def training_steps(recipe: Recipe, n: int) -> int:
    """The step count of a training on ``n`` samples."""
    return total_steps(recipe, math.ceil(n / recipe.batch_size))


def batch_indices(seed: int, step: int, n: int, batch_size: int) -> torch.Tensor:
    """The samples of ``step``: a slice of epoch ``step // steps_per_epoch``'s permutation (last batch short)."""
    per_epoch = math.ceil(n / batch_size)
    epoch, within = divmod(step, per_epoch)
    order = torch.randperm(n, generator=step_generator(seed, -1 - epoch))  # epochs use negative "steps"
    return order[within * batch_size : (within + 1) * batch_size]


def augment(images: torch.Tensor, masks: torch.Tensor, recipe: Recipe, gen: torch.Generator):
    """Per-sample random crop and flip, then one size for the batch (drawn from ``recipe.sizes``)."""
    size = recipe.sizes[int(torch.randint(len(recipe.sizes), (1,), generator=gen))]
    h, w = images.shape[2:]
    out_images, out_masks = [], []
    for image, mask in zip(images, masks):
        ch = int(h * (recipe.crop_fraction + (1 - recipe.crop_fraction) * torch.rand(1, generator=gen).item()))
        cw = int(w * (recipe.crop_fraction + (1 - recipe.crop_fraction) * torch.rand(1, generator=gen).item()))
        top = int(torch.randint(h - ch + 1, (1,), generator=gen))
        left = int(torch.randint(w - cw + 1, (1,), generator=gen))
        image, mask = image[:, top : top + ch, left : left + cw], mask[:, top : top + ch, left : left + cw]
        if recipe.flip and torch.rand(1, generator=gen).item() < 0.5:
            image, mask = image.flip(-1), mask.flip(-1)
        out_images.append(F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False))
        out_masks.append(F.interpolate(mask[None], size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat(out_images), torch.cat(out_masks)


def model_loss(
    model_name: str, loss: str, loss_options: dict | None = None
) -> Callable[[list[torch.Tensor], torch.Tensor], torch.Tensor]:
    """The training objective of ``model_name`` with ``loss`` (F3Net keeps its deep supervision);
    ``loss_options`` are the loss's keyword arguments (CAS: ``alpha``)."""
    if loss not in LOSSES:
        raise SynthsodError(f"unknown loss '{loss}'; choose one of {', '.join(LOSSES)}")
    loss_fn = LOSSES[loss]
    if loss_options:
        loss_fn = functools.partial(loss_fn, **loss_options)
    if model_name == "f3net":
        if OUTPUT_CHANNELS[loss] != 1:
            raise SynthsodError(f"F3Net predicts one channel; loss '{loss}' needs {OUTPUT_CHANNELS[loss]}")
        return lambda outputs, masks: f3net_loss(outputs, masks, loss_fn)
    return lambda outputs, masks: loss_fn(outputs[0], masks)


def build_model(model_name: str, loss: str, model_kwargs: dict | None = None) -> nn.Module:
    """The registry model for ``loss``: models that take ``out_channels`` (U-Net, FCN, DeepLab-v3) get the
    loss's default count unless ``model_kwargs`` gives one (CAS: M from the training's ``cas.channels``,
    :func:`synthsod.sod.fit.model_options`), checked against the loss."""
    kwargs = dict(model_kwargs or {})
    if model_name in CHANNEL_MODELS:
        kwargs.setdefault("out_channels", OUTPUT_CHANNELS[loss])
        check_output_channels(loss, kwargs["out_channels"])
    return create_sod_model(model_name, **kwargs)


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    backbone = getattr(model, "backbone", None)
    backbone_ids = {id(p) for p in backbone.parameters()} if backbone is not None else set()
    groups = [
        {"params": [p for p in model.parameters() if id(p) in backbone_ids], "base_lr": recipe.backbone_lr},
        {"params": [p for p in model.parameters() if id(p) not in backbone_ids], "base_lr": recipe.lr},
    ]
    groups = [g for g in groups if g["params"]]
    for group in groups:
        group["lr"] = group["base_lr"]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=True)
    return torch.optim.Adam(groups, weight_decay=recipe.weight_decay)


@dataclass
class Batch:
    """One training step's augmented batch (images in [-1, 1], masks and, for partial labels, the
    visibility mask), its generator, the recipe's learning-rate factor and the training's progress bar
    (the trainer shows its losses on it)."""

    step: int
    steps: int
    images: torch.Tensor
    masks: torch.Tensor
    visible: torch.Tensor | None
    generator: torch.Generator
    lr_factor: float
    bar: LineBar


def training_batches(
    data: Dataset,
    recipe: Recipe,
    seed: int,
    parts: dict,
    checkpoint_path: str | os.PathLike | None = None,
    desc: str = "training",
) -> Iterator[Batch]:
    """The batches of a training from its checkpoint's step on (restoring ``parts`` from it). Items are
    {"image", "mask"} plus "visible" for partially labelled data: the batch then holds the mask only
    where visible (0 elsewhere), augmented with it.
    The checkpoint of ``parts`` (:class:`synthsod.core.training.TrainingLoop`) is written when the caller asks
    for the batch after every ``checkpoint_every``-th step and after the last, i.e. after the caller's update
    of that step; so is the progress bar ``desc`` updated."""
    recipe.check()
    n = len(data)
    if n == 0:
        raise SynthsodError("the training set is empty")
    per_epoch = math.ceil(n / recipe.batch_size)
    steps = training_steps(recipe, n)
    settings = {"recipe": asdict(recipe)}
    loop = TrainingLoop(
        steps,
        parts,
        checkpoint_path,
        recipe.checkpoint_every,
        desc=desc,
        settings=settings,
        check=lambda saved, step: None if saved == settings else "another recipe",
    )
    for step in loop:
        gen = step_generator(seed, step)
        items = [data[int(i)] for i in batch_indices(seed, step, n, recipe.batch_size)]
        labels = torch.stack([it["mask"] for it in items])
        partial = "visible" in items[0]
        if partial:  # unannotated pixels are zeroed first, so resizing cannot blend them into annotated ones
            visible = torch.stack([it["visible"] for it in items])
            labels = torch.cat([labels * visible, visible], dim=1)
        images, labels = augment(torch.stack([it["image"] for it in items]), labels, recipe, gen)
        masks, visible = (labels[:, :1], (labels[:, 1:] > 0.5).float()) if partial else (labels, None)
        yield Batch(step, steps, images, masks, visible, gen, lr_factor(recipe, step, per_epoch), loop.bar)


def set_lr_factor(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor


PartialObjective = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]


def partial_loss(model_name: str, loss: str) -> PartialObjective:
    """The objective on partially labelled batches: BCE on the labelled pixels only (F3Net: on every output)."""
    if loss != "bce":
        raise SynthsodError(f"point-labelled training uses the partial BCE; set loss: bce (got '{loss}')")
    if model_name == "f3net":
        return lambda outputs, masks, visible: f3net_loss(outputs, masks, lambda o, m: partial_bce_loss(o, m, visible))
    return lambda outputs, masks, visible: partial_bce_loss(outputs[0], masks, visible)


def train_sod(
    model_name: str,
    loss: str,
    data: Dataset,
    recipe: Recipe,
    *,
    seed: int = 0,
    model_kwargs: dict | None = None,
    loss_options: dict | None = None,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    on_step: Callable[[int, float], None] | None = None,
    after_step: Callable[[int, nn.Module], None] | None = None,
    desc: str | None = None,
) -> nn.Module:
    """Train on ``data`` (items {"image": [3, S, S] in [-1, 1], "mask": [1, S, S]}, plus "visible" for
    partially labelled data); the model in eval mode. ``loss_options`` are the loss's keyword arguments
    (CAS: ``alpha``). ``after_step(step, model)`` sees the model after each update (snapshots). ``desc``
    names the progress bar (default: "<model_name> training")."""
    device = torch.device(device)
    with seeded(seed):
        model = build_model(model_name, loss, model_kwargs).to(device)
    objective = model_loss(model_name, loss, loss_options)
    optimizer = make_optimizer(model, recipe)
    model.train()
    for batch in training_batches(
        data,
        recipe,
        seed,
        {"model": model, "optimizer": optimizer},
        checkpoint_path,
        desc=desc or f"{model_name} training",
    ):
        set_lr_factor(optimizer, batch.lr_factor)
        with autocast(device):
            outputs = [o.float() for o in model(normalise(batch.images.to(device)))]
        if batch.visible is None:
            value = objective(outputs, batch.masks.to(device))
        else:
            value = partial_loss(model_name, loss)(outputs, batch.masks.to(device), batch.visible.to(device))
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        optimizer.step()
        if on_step is not None:
            on_step(batch.step, value.item())
        batch.bar.set_postfix(loss=value.item)  # read (a GPU sync) only when the bar writes a line
        if after_step is not None:
            after_step(batch.step, model)
    return model.eval()


def save_sod_model(
    path: str | os.PathLike, model: nn.Module, model_name: str, loss: str, model_kwargs: dict, channel: int | None
) -> None:
    """Write a trained model with what :func:`load_sod_model` needs to rebuild it (atomically)."""
    payload = {
        "state_dict": model.cpu().state_dict(),
        "model": model_name,
        "loss": loss,
        "model_options": dict(model_kwargs),
        "channel": channel,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(payload, file)


def load_sod_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, int | None]:
    """(model in eval mode, saliency channel) saved by :func:`save_sod_model`."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        # the trained weights replace the backbone's ImageNet file, which need not be present any more
        options = dict(saved["model_options"])
        if "backbone_weights" in options:
            options["backbone_weights"] = None
        model = build_model(saved["model"], saved["loss"], options)
        model.load_state_dict(saved["state_dict"])
    except (OSError, KeyError, TypeError, RuntimeError, EOFError) as err:
        raise SynthsodError(f"{path}: not a SOD model checkpoint ({err})") from err
    return model.to(device).eval(), saved["channel"]


__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SCHEDULES",
    "Batch",
    "Recipe",
    "augment",
    "batch_indices",
    "build_model",
    "lr_factor",
    "load_sod_model",
    "make_optimizer",
    "model_loss",
    "normalise",
    "partial_loss",
    "save_sod_model",
    "set_lr_factor",
    "total_steps",
    "train_sod",
    "training_batches",
    "training_steps",
]
