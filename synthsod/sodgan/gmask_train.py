"""Training G_mask (and D_q) on the few-shot set (SODGAN eq 10-12): the settings, the few-shot batch, the
resumable trainer. The model is :mod:`synthsod.sodgan.gmask`; inference and files are
:mod:`synthsod.sodgan.gmask_infer`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from synthsod.core.checkpoint import seeded, step_generator
from synthsod.core.gpu import autocast
from synthsod.core.training import TrainingLoop
from synthsod.data.datasets import ManifestDataset
from synthsod.errors import SynthsodError
from synthsod.generators.base import GeneratorOutput
from synthsod.generators.latent_table import latent_arrays
from synthsod.sodgan.gmask import (
    ATTENTION_MODES,
    DEFAULT_CHANNELS_PER_TAP,
    DEFAULT_REDUCTION,
    Attention,
    GMask,
    foreground_probability,
    gather_pixels,
    head_spec,
    segmentation_loss,
    straight_through_mask,
)

if TYPE_CHECKING:
    from synthsod.generators import BigGANGenerator
    from synthsod.sodgan.dq import QualityDiscriminator


@dataclass
class GMaskConfig:
    """G_mask training settings (defaults tuned on the tiny demo generator; see the tests)."""

    head: str = "mlp-s"
    attention: Attention = "full"
    channels_per_tap: int = DEFAULT_CHANNELS_PER_TAP
    reduction: int = DEFAULT_REDUCTION
    steps: int = 300
    batch_size: int = 16
    lr: float = 3e-3
    pixels_per_image: int = 512  # MLP heads: sampled pixels per image per step; 0 = full maps
    dq_weight: float = 0.1  # weight of the adversarial term (eq 11) when a D_q is given
    dq_lr: float = 1e-4
    dq_real_images: str = "generated"  # D_q's real pairs: (G(z+), y) | "photos": (x, y), eq 12 read literally
    dq_mismatched: bool = False  # also show D_q real images with another pair's mask as negatives (dq.dq_step)
    dq_every: int = 1  # D_q (adversarial term and update) on steps k with k % dq_every == 0; 1: every step
    checkpoint_every: int = 100
    precise_bn: bool = True  # after training, batch-norm statistics averaged over all of D_m
    feature_cache_mb: int = 2048  # keep D_m's generator outputs in memory when they fit this budget; 0: never

    def check(self) -> None:
        head_spec(self.head)
        if self.attention not in ATTENTION_MODES:
            raise SynthsodError(f"attention must be one of {', '.join(ATTENTION_MODES)}, got '{self.attention}'")
        if self.batch_size < 2:
            raise SynthsodError("G_mask batch_size must be >= 2 (batch norm needs more than one image)")
        if self.dq_real_images not in ("generated", "photos"):
            raise SynthsodError(f"dq_real_images must be generated or photos, got '{self.dq_real_images}'")
        if self.steps < 0 or self.checkpoint_every < 1 or self.pixels_per_image < 0 or self.dq_every < 1:
            raise SynthsodError(
                "G_mask steps, checkpoint_every and pixels_per_image must be non-negative (checkpoint_every and"
                " dq_every >= 1)"
            )


_RESUMABLE_CHANGES = ("steps", "checkpoint_every", "feature_cache_mb")
# Settings added after checkpoints were first written: left out of the resume check at these values (the
# behaviour before they existed), so such a checkpoint still resumes.
_ADDED_SETTINGS = {"dq_every": 1}
Timer = Callable[[str], contextlib.AbstractContextManager]


def _no_timer(phase: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class FewShotSet:
    """D_m stacked: latents [M, z_dim], class ids [M], real images [M, 3, R, R], real masks [M, 1, R, R]."""

    z: torch.Tensor
    class_ids: torch.Tensor
    images: torch.Tensor
    masks: torch.Tensor

    def __len__(self) -> int:
        return self.z.shape[0]


def stack_pairs(pairs: Iterable[Mapping[str, Any]], resolution: int) -> FewShotSet:
    """Stack the few-shot pairs (dicts with z, class_id, image, mask) and check their shapes."""
    rows = list(pairs)
    if len(rows) < 2:
        raise SynthsodError(f"the few-shot set D_m needs at least 2 pairs (batch norm), got {len(rows)}")
    z = torch.stack([torch.as_tensor(np.asarray(r["z"], dtype=np.float32)) for r in rows])
    ids = torch.tensor([int(r["class_id"]) for r in rows], dtype=torch.long)
    images = torch.stack([torch.as_tensor(r["image"], dtype=torch.float32) for r in rows])
    masks = torch.stack(
        [torch.as_tensor(r["mask"], dtype=torch.float32).reshape(1, *r["mask"].shape[-2:]) for r in rows]
    )
    if images.shape[1:] != (3, resolution, resolution) or masks.shape[1:] != (1, resolution, resolution):
        raise SynthsodError(
            f"few-shot pairs must hold images [3, {resolution}, {resolution}] and masks "
            f"[1, {resolution}, {resolution}] (the generator's resolution); got "
            f"{tuple(images.shape[1:])} and {tuple(masks.shape[1:])}"
        )
    return FewShotSet(z, ids, images, masks)


def _step_draws(
    seed: int, step: int, n_pairs: int, batch_size: int, pixels: int, resolution: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """This step's batch indices and pixel coordinates, a function of (seed, step) only."""
    gen = step_generator(seed, step)
    if n_pairs >= batch_size:
        index = torch.randperm(n_pairs, generator=gen)[:batch_size]
    else:
        index = torch.randint(n_pairs, (batch_size,), generator=gen)
    coords = torch.randint(resolution, (batch_size, pixels, 2), generator=gen) if pixels else None
    return index, coords


def _cache_bytes(generator: BigGANGenerator, n_pairs: int) -> int:
    """fp32 bytes of D_m's images and tapped features."""
    per_image = 3 * generator.resolution**2 + sum(c * h * w for c, h, w in generator.feature_shapes.values())
    return 4 * per_image * n_pairs


def _config_for_check(cfg: GMaskConfig) -> dict[str, Any]:
    return {
        k: v
        for k, v in dataclasses.asdict(cfg).items()
        if k not in _RESUMABLE_CHANGES and not (k in _ADDED_SETTINGS and v == _ADDED_SETTINGS[k])
    }


class _Trainer:
    """One G_mask training run: the models, the optimisers and one step's arithmetic."""

    def __init__(
        self,
        generator: BigGANGenerator,
        data: FewShotSet,
        truncation: float,
        cfg: GMaskConfig,
        dq: QualityDiscriminator | None,
        device: torch.device,
        seed: int,
    ):
        self.generator, self.data, self.truncation, self.cfg = generator, data, truncation, cfg
        self.device, self.seed = device, seed
        with seeded(seed):
            self.gmask = GMask(
                generator.feature_shapes,
                generator.resolution,
                cfg.head,
                cfg.attention,
                cfg.channels_per_tap,
                cfg.reduction,
            ).to(device)
        self.opt = torch.optim.Adam(self.gmask.parameters(), lr=cfg.lr)
        # D_q trains in channels-last layout: oneDNN's convolutions run 1.25x faster so on the demo's CPU step
        # (equal up to float rounding; not measured on CUDA); train_gmask hands it back in the default layout.
        self.dq = (
            dq.to(device=device, memory_format=torch.channels_last) if dq is not None and cfg.dq_weight > 0 else None
        )
        self.dq_opt = torch.optim.Adam(self.dq.parameters(), lr=cfg.dq_lr) if self.dq is not None else None
        self.cache = self._build_cache() if _cache_bytes(generator, len(data)) <= cfg.feature_cache_mb * 2**20 else None

    @torch.no_grad()
    def _build_cache(self) -> GeneratorOutput:
        """G(z+) and its features for all of D_m, computed once.

        D_m is fixed and G frozen and deterministic, so every step would recompute these tensors
        (equal up to the rounding differences of other batch sizes); caching them makes a step cost
        only G_mask, so batches can be larger and batch norm's statistics steadier. A run and its
        resumption make the same caching decision, so resuming stays exact.
        """
        chunks = [
            self.generator.generate(self.data.z[lo : lo + 16], self.data.class_ids[lo : lo + 16], self.truncation)
            for lo in range(0, len(self.data), 16)
        ]
        return GeneratorOutput(
            images=torch.cat([c.images for c in chunks]),
            features={t: torch.cat([c.features[t] for c in chunks]) for t in chunks[0].features},
        )

    @torch.no_grad()
    def recalibrate_batchnorm(self, chunk: int = 16) -> None:
        """Replace G_mask's batch-norm running statistics by their average over all of D_m (precise BN).

        The running averages (momentum 0.1) mostly reflect the last few batches of a few images each;
        with few shots that jitters every threshold the head learned, visibly in the held-out IoU
        from one step to the next. Averaging the batch statistics of full-map forwards over the
        whole few-shot set removes that noise (Wu & Johnson, "Rethinking batch in BatchNorm", 2021).
        """
        norms = [m for m in self.gmask.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: the mean over all chunks
        self.gmask.train()
        try:
            n_chunks = -(-len(self.data) // chunk)  # equal chunks: none of one image (GA's norm needs two)
            for index in torch.arange(len(self.data)).tensor_split(n_chunks):
                out = self.generate(index)
                with autocast(self.device):
                    self.gmask(out.features)
        finally:
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum

    def generate(self, index: torch.Tensor) -> GeneratorOutput:
        if self.cache is None:
            return self.generator.generate(self.data.z[index], self.data.class_ids[index], self.truncation)
        index = index.to(self.cache.images.device)
        return GeneratorOutput(
            images=self.cache.images[index], features={t: f[index] for t, f in self.cache.features.items()}
        )

    def parts(self) -> dict[str, Any]:
        parts = {"gmask": self.gmask, "opt": self.opt}
        if self.dq is not None:
            parts |= {"dq": self.dq, "dq_opt": self.dq_opt}
        return parts

    def uses_dq(self, step: int) -> bool:
        """Whether step ``step`` has D_q's adversarial term and update (a function of the step alone)."""
        return self.dq is not None and step % self.cfg.dq_every == 0

    def step(self, step: int, timer: Timer = _no_timer) -> dict[str, float]:
        """One training step; ``timer(phase)`` wraps each phase (benchmarks/gmask_cost.py times them):
        features, gmask (G_mask forward and loss), dq_adversarial (D_q forward of eq 11), backward (both
        models' gradients and G_mask's update), dq_update (eq 12)."""
        from synthsod.sodgan.dq import adversarial_loss, dq_step

        cfg, data = self.cfg, self.data
        with_dq = self.uses_dq(step)
        # MLP heads train on sampled pixels on steps without D_q (it judges whole masks).
        sampled = self.gmask.per_pixel and cfg.pixels_per_image > 0 and not with_dq
        index, coords = _step_draws(
            self.seed,
            step,
            len(data),
            cfg.batch_size,
            cfg.pixels_per_image if sampled else 0,
            self.gmask.resolution,
        )
        with timer("features"):
            out = self.generate(index)
            target = data.masks[index].to(self.device)
        with timer("gmask"):
            self.gmask.train()
            with autocast(self.device):
                if coords is not None:
                    logits = self.gmask.forward_pixels(out.features, coords.to(self.device))
                    target_used = gather_pixels(target, coords).reshape(-1)
                else:
                    logits = self.gmask(out.features)
                    target_used = target
            seg = segmentation_loss(logits, target_used)
        losses = {"seg": seg.item()}
        total = seg
        if with_dq:
            with timer("dq_adversarial"):
                fake_masks = straight_through_mask(foreground_probability(logits))
                self.dq.requires_grad_(False)
                adv = adversarial_loss(self.dq, out.images, fake_masks)
                self.dq.requires_grad_(True)
            total = seg + cfg.dq_weight * adv
            losses["adv"] = adv.item()
        with timer("backward"):
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            self.opt.step()
        if with_dq:
            with timer("dq_update"):
                real_images = out.images if cfg.dq_real_images == "generated" else data.images[index].to(self.device)
                losses["dq"] = dq_step(
                    self.dq, self.dq_opt, real_images, target, out.images, fake_masks.detach(), cfg.dq_mismatched
                )
        return losses


def train_gmask(
    generator: BigGANGenerator,
    pairs: Iterable[Mapping[str, Any]],
    *,
    truncation: float,
    cfg: GMaskConfig | None = None,
    dq: QualityDiscriminator | None = None,
    device: torch.device | str = "cpu",
    checkpoint_path: str | os.PathLike | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train G_mask on the few-shot set D_m (``pairs``: dicts of z, class_id, image, mask); resumable.

    Each step draws its batch and pixels from ``step_generator(seed, step)`` (and reseeds torch's global
    RNG from it for any stochastic layer), so resuming from the checkpoint at step k reproduces the
    uninterrupted run exactly. Pixel sampling is used for MLP heads with ``pixels_per_image`` > 0 on the
    steps without D_q (D_q judges whole masks, so a step with it computes full maps): every step when there
    is no D_q, the steps between D_q's steps with ``dq_every`` > 1. The generator is frozen.

    Returns ``{"gmask", "dq", "steps", "losses": [per-step dicts of this call], "final": last step's losses,
    "resumed_from": step or None}``.
    """
    cfg = cfg or GMaskConfig()
    cfg.check()
    device = torch.device(device)
    if torch.device(generator.device).type != device.type:
        raise SynthsodError(f"generator is on {generator.device} but G_mask training was asked to run on {device}")
    trainer = _Trainer(generator, stack_pairs(pairs, generator.resolution), truncation, cfg, dq, device, seed)
    loop = TrainingLoop(
        cfg.steps,
        trainer.parts(),
        checkpoint_path,
        cfg.checkpoint_every,
        desc="G_mask training",
        settings=_config_for_check(cfg),
    )
    start = loop.start
    history: list[dict[str, float]] = []
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for step in loop:
            torch.manual_seed(step_generator(seed, step).initial_seed() ^ 0x5EED)  # stochastic layers, if any
            losses = trainer.step(step)
            history.append(losses)
            loop.bar.set_postfix(losses)
    if cfg.precise_bn:
        trainer.recalibrate_batchnorm()
    trainer.gmask.eval()
    if trainer.dq is not None:
        trainer.dq.to(memory_format=torch.contiguous_format)
    return {
        "gmask": trainer.gmask,
        "dq": trainer.dq,
        "steps": max(start, cfg.steps),
        "losses": history,
        "final": history[-1] if history else {},
        "resumed_from": start or None,
    }


def labelled_pairs(rows: pd.DataFrame, resolution: int) -> list[dict]:
    """Few-shot pairs ``{"z", "class_id", "image", "mask", "id"}`` of latent-table rows with their real images."""
    data = ManifestDataset(rows, resolution)
    z, classes = latent_arrays(rows)
    return [{"z": z[i], "class_id": int(classes[i]), **data[i]} for i in range(len(rows))]
