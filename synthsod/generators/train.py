"""Training the demo generator: a small BigGAN-deep learns the scene world (:mod:`synthsod.data.scenes`).

Why a hybrid objective
    A pure GAN of this size learns too slowly on a CPU (measured: after 22 min D had barely moved and
    samples were class-coloured blocks), and an image VAE leaves a hole in the prior (reconstructions
    are good, prior samples grey). The scene world gives a way out that keeps every assumption the
    methods make about a GAN: each pre-training scene comes with the code it was rendered from, drawn
    from exactly BigGAN's prior (the normal truncated to [-2, 2]). So the generator first learns by
    regression, ``G(code, class) ~ image`` (an autoencoder whose encoder is the world itself: the prior
    has no hole by construction), then an adversarial phase adds the hinge loss of a spectral-norm
    projection discriminator on DiffAugment-ed images (sharpness and texture that an L1 loss
    averages away) while the regression continues. Neither phase sees a mask. The trained
    discriminator is kept: SODGAN's D_r is the GAN's own discriminator.

Batch norm
    ``BigGANBatchNorm`` always normalises with stored per-truncation statistics; training swaps in
    :class:`BatchStatBatchNorm` (batch statistics in train mode), and the export calibrates every
    truncation row on the EMA generator (:func:`synthsod.generators.tiny.calibrate_truncation_stats`),
    so scaling ``z`` acts as truncation, as in the released models.

Reproducibility
    Each step draws its batch, augmentation and nothing else from ``step_generator(seed, step)``, and
    a checkpoint holds G, its EMA, D, both optimisers and the log, so a resumed training equals an
    uninterrupted one bit for bit on the same machine and thread count.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.model import BigGANBatchNorm

from synthsod.core.checkpoint import step_generator
from synthsod.core.io import atomic_path, write_bytes_atomic, write_csv_atomic
from synthsod.core.settings import from_section
from synthsod.core.training import TrainingLoop, changed_settings
from synthsod.errors import SynthsodError
from synthsod.generators.biggan import ExactTruncationBatchNorm, save_pretrained
from synthsod.generators.discriminator import ProjectionDiscriminator
from synthsod.generators.tiny import TINY_CONFIG, calibrate_truncation_stats

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
DISCRIMINATOR = "discriminator.pt"
TRAIN_LOG = "train_log.csv"
LOG_COLUMNS = ["step", "phase", "reconstruction", "g_adv", "d_loss"]


@dataclass(frozen=True)
class GANTrainConfig:
    """Settings of a demo-generator training (the defaults: the shipped generator)."""

    seed: int = 0
    channel_width: int = 16  # BigGAN-deep width unit (16: 2.2 M parameters at 64 px)
    d_width: int = 32  # discriminator's first width
    batch_size: int = 32
    steps_reconstruct: int = 6000  # phase 1: regression on the world's codes
    steps_adversarial: int = 2000  # phase 2: regression + hinge loss
    lr_g: float = 3e-4
    lr_g_adversarial: float = 1e-4
    lr_d: float = 4e-4
    adv_weight: float = 0.1  # weight of the generator's hinge term in phase 2
    ema_decay: float = 0.999
    checkpoint_every: int = 250
    pretrain_size: int = 24000  # scenes in the pre-training set (the world's indices 0 .. size-1)
    calibration_batch: int = 64  # samples per truncation row when the export calibrates batch norms

    def __post_init__(self):
        if self.steps_reconstruct < 0 or self.steps_adversarial < 0 or self.batch_size < 2:
            raise SynthsodError("generator training: steps must be >= 0 and batch_size >= 2")

    @property
    def total_steps(self) -> int:
        return self.steps_reconstruct + self.steps_adversarial


def scene_biggan_config(num_classes: int, resolution: int = 64, channel_width: int = 16) -> BigGANConfig:
    """The demo generator's architecture: the tiny BigGAN-deep layout over the world's classes."""
    if resolution != TINY_CONFIG["output_dim"]:
        raise SynthsodError(f"the demo generator is built for {TINY_CONFIG['output_dim']} px, not {resolution}")
    return BigGANConfig.from_dict(dict(TINY_CONFIG, num_classes=num_classes, channel_width=channel_width))


class BatchStatBatchNorm(ExactTruncationBatchNorm):
    """BigGAN's batch norm that normalises with batch statistics in train mode (stored rows in eval)."""

    def forward(self, x, truncation, condition_vector=None):
        if not self.training:
            return super().forward(x, truncation, condition_vector)
        if not self.conditional:
            return F.batch_norm(x, None, None, self.weight, self.bias, training=True, eps=self.eps)
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        weight = 1 + self.scale(condition_vector)[:, :, None, None]
        bias = self.offset(condition_vector)[:, :, None, None]
        return (x - mean) * torch.rsqrt(var + self.eps) * weight + bias


def _set_norm_class(net: torch.nn.Module, cls: type) -> None:
    for module in net.modules():
        if isinstance(module, BigGANBatchNorm):
            module.__class__ = cls


def build_trainable_biggan(config: BigGANConfig, seed: int) -> BigGAN:
    torch.manual_seed(seed)
    net = BigGAN(config)
    for module in net.modules():
        if isinstance(module, BigGANBatchNorm) and not module.conditional:
            torch.nn.init.ones_(module.weight)  # the package leaves these uninitialised
            torch.nn.init.zeros_(module.bias)
    _set_norm_class(net, BatchStatBatchNorm)
    return net.train()


# --- losses and augmentation -------------------------------------------------------------------------
def reconstruction_loss(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L1 on pixels, on 4x4-pooled pixels (layout) and on horizontal / vertical differences (edges)."""
    loss = (fake - real).abs().mean() + (F.avg_pool2d(fake, 4) - F.avg_pool2d(real, 4)).abs().mean()
    for dim in (2, 3):
        loss = loss + (fake.diff(dim=dim) - real.diff(dim=dim)).abs().mean()
    return loss


def diff_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020): colour, translation by up to 1/8, cutout of 1/2; differentiable."""
    n, _, h, w = x.shape

    def rand(*shape):  # drawn on the CPU generator, so a GPU run draws the same numbers
        return torch.rand(*shape, generator=generator).to(x.device)

    x = x + (rand(n, 1, 1, 1) - 0.5)  # brightness ([-1, 1] images: the paper's +-0.5 on [0, 1] x 2)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand(n, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean  # contrast
    shift = torch.randint(-(h // 8), h // 8 + 1, (n, 2), generator=generator).float().to(x.device)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = shift * 2 / torch.tensor([w, h], device=x.device).float()
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    centre = (rand(n, 2) * torch.tensor([w, h], device=x.device)).long()
    ys, xs = torch.arange(h, device=x.device)[None, :, None], torch.arange(w, device=x.device)[None, None, :]
    keep = ~(((ys - centre[:, 1, None, None]).abs() < h // 4) & ((xs - centre[:, 0, None, None]).abs() < w // 4))
    return x * keep[:, None].float()


# --- the pre-training set ----------------------------------------------------------------------------
@dataclass
class PretrainSet:
    """Images [N, S, S, 3] uint8, class ids [N] and the codes [N, 128] they were rendered from."""

    images: np.ndarray
    class_ids: np.ndarray
    codes: np.ndarray

    def batch(self, index: torch.Tensor, num_classes: int, device: torch.device):
        """(images [B, 3, S, S] in [-1, 1], codes [B, 128], one-hot classes, class ids) on ``device``."""
        idx = index.numpy()
        images = torch.from_numpy(self.images[idx]).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        ids = torch.from_numpy(self.class_ids[idx]).long().to(device)
        return images, torch.from_numpy(self.codes[idx]).float().to(device), F.one_hot(ids, num_classes).float(), ids


# --- the loop ---------------------------------------------------------------------------------------
def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), net.parameters()):
            e.lerp_(p, 1 - decay)
        for e, b in zip(ema.buffers(), net.buffers()):
            e.copy_(b)  # spectral-norm vectors follow the trained weights


def train_scene_gan(
    out_dir: str | Path,
    data: PretrainSet,
    num_classes: int,
    config: GANTrainConfig,
    on_checkpoint: Callable[[int, BigGAN], None] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[BigGAN, ProjectionDiscriminator]:
    """Train (or resume) a demo generator in ``out_dir``; return the EMA generator (eval, calibrated) and D.

    ``out_dir`` holds ``checkpoint.pt`` (every ``checkpoint_every`` steps) and ``train_log.csv``.
    ``on_checkpoint(step, exported_generator)`` runs after each checkpoint (previews).
    """
    out_dir = Path(out_dir)
    resolution = data.images.shape[1]
    net = build_trainable_biggan(scene_biggan_config(num_classes, resolution, config.channel_width), config.seed)
    device = torch.device(device)
    disc = ProjectionDiscriminator(num_classes, resolution, config.d_width).to(device)
    net = net.to(device)
    ema = copy.deepcopy(net).eval()
    opt_g = torch.optim.Adam(net.parameters(), lr=config.lr_g, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=(0.0, 0.999))
    parts = {"generator": net, "ema": ema, "discriminator": disc, "opt_g": opt_g, "opt_d": opt_d}

    def after_save(step: int) -> None:
        write_csv_atomic(out_dir / TRAIN_LOG, loop.state["log"], LOG_COLUMNS)
        if on_checkpoint is not None and step < config.total_steps:
            on_checkpoint(step, export_generator(ema, config.seed, config.calibration_batch))

    loop = TrainingLoop(
        config.total_steps,
        parts,
        out_dir / CHECKPOINT,
        config.checkpoint_every,
        desc="generator training",
        settings=asdict(config),
        check=lambda saved, step: _resume_problem(saved, config, step),
        state={"log": []},
        after_save=after_save,
    )
    rows = loop.state["log"]
    n = len(data.images)
    t0 = time.perf_counter()
    for step in loop:
        generator = step_generator(config.seed, step)
        real, z, one_hot, ids = data.batch(
            torch.randint(n, (config.batch_size,), generator=generator), num_classes, device
        )
        adversarial = step >= config.steps_reconstruct
        row = {"step": step + 1, "phase": "adversarial" if adversarial else "reconstruct"}
        fake = net(z, one_hot, 1.0)
        if adversarial:  # D first, on the same fakes the generator step then uses
            d_loss = (
                F.relu(1 - disc(diff_augment(real, generator), ids)).mean()
                + F.relu(1 + disc(diff_augment(fake.detach(), generator), ids)).mean()
            )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            row["d_loss"] = d_loss.item()
        for group in opt_g.param_groups:
            group["lr"] = config.lr_g_adversarial if adversarial else config.lr_g
        rec = reconstruction_loss(fake, real)
        loss = rec
        if adversarial:
            g_adv = -disc(diff_augment(fake, generator), ids).mean()
            loss = loss + config.adv_weight * g_adv
            row["g_adv"] = g_adv.item()
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        _ema_update(ema, net, config.ema_decay)
        row["reconstruction"] = rec.item()
        rows.append(row)
        loop.bar.set_postfix(phase=row["phase"], reconstruction=round(row["reconstruction"], 4))
    log.info("generator training: %d steps in %.0f s", config.total_steps - loop.start, time.perf_counter() - t0)
    return export_generator(ema, config.seed, config.calibration_batch), disc.eval().requires_grad_(False)


def _resume_problem(saved: dict | None, config: GANTrainConfig, step: int) -> str | None:
    """Why a checkpoint at ``step`` written with ``saved`` settings cannot continue as ``config`` (None: it can).

    Checkpointing and calibration never matter, and the adversarial phase may be lengthened or shortened.
    Until the training reaches the adversarial phase (the old boundary or the new one, whichever comes
    first), the boundary may move and the phase's generator settings (read at every step) may change.
    A setting the checkpoint predates counts as its default.
    """
    saved = {**asdict(GANTrainConfig()), **(saved or {})}
    wanted = asdict(config)
    free = {"steps_adversarial", "checkpoint_every", "calibration_batch"}
    before_boundary = step <= min(saved["steps_reconstruct"], wanted["steps_reconstruct"])
    if before_boundary:
        free |= {"steps_reconstruct", "adv_weight", "lr_g_adversarial"}
    changed = changed_settings(saved, wanted, free)
    if changed:
        return f"settings {', '.join(changed)} differ" + (
            "" if before_boundary else " after the adversarial phase began"
        )
    return None


@torch.no_grad()
def export_generator(ema: BigGAN, seed: int, batch_size: int = 64) -> BigGAN:
    """A copy of the EMA generator as a released model: stored statistics calibrated per truncation."""
    net = copy.deepcopy(ema)
    _set_norm_class(net, ExactTruncationBatchNorm)
    return calibrate_truncation_stats(net.eval(), batch_size=batch_size, seed=seed).requires_grad_(False)


def save_scene_gan(
    generator: BigGAN, discriminator: ProjectionDiscriminator, out_dir: str | Path, half: bool = True
) -> None:
    """The generator in from_pretrained layout (fp16 when ``half``) and D beside it."""
    out_dir = Path(out_dir)
    save_pretrained(generator, out_dir, dtype=torch.float16 if half else None)
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in discriminator.state_dict().items()}
    with atomic_path(out_dir / DISCRIMINATOR) as tmp, open(tmp, "wb") as file:
        torch.save({"hparams": discriminator.hparams(), "state_dict": state}, file)


def load_discriminator(path: str | Path) -> ProjectionDiscriminator:
    """The kept discriminator of a demo-generator training, frozen, in eval mode."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        disc = ProjectionDiscriminator(**payload["hparams"])
        disc.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
    except (OSError, KeyError, RuntimeError, TypeError, ValueError) as err:
        raise SynthsodError(f"cannot read the discriminator {path}: {err}") from err
    return disc.eval().requires_grad_(False)


def pretrain_set(seed: int, size: int, resolution: int = 64) -> PretrainSet:
    """The unlabelled pre-training set: scenes 0 .. size-1 of the world's pre-training range (no masks)."""
    from synthsod.data import scenes

    images, _, class_ids, codes = scenes.scene_arrays(seed, scenes.split_indices("pretrain", size), resolution)
    return PretrainSet(images, class_ids, codes)


def build_scene_generator(
    out_dir: str | Path,
    checkpoint_dir: str | Path,
    *,
    world_seed: int,
    resolution: int,
    settings: dict,
    device: torch.device | str = "cpu",
) -> GANTrainConfig:
    """Render the pre-training set, train (or resume) in ``checkpoint_dir``, save G and D in ``out_dir``.

    A preview grid of the EMA generator goes to ``checkpoint_dir/preview.png`` at every checkpoint.
    """
    from synthsod.data import scenes
    from synthsod.generators.quality import sample_grid

    config = from_section(GANTrainConfig, settings, where="generators.<name>.train")
    data = pretrain_set(world_seed, config.pretrain_size, resolution)

    def preview(step: int, net: BigGAN) -> None:
        sample_grid(
            net,
            Path(checkpoint_dir) / "preview.png",
            num_classes=scenes.NUM_CLASSES,
            class_names=scenes.CLASS_NAMES,
            seed=config.seed,
        )

    generator, discriminator = train_scene_gan(
        checkpoint_dir, data, scenes.NUM_CLASSES, config, on_checkpoint=preview, device=device
    )
    save_scene_gan(generator.cpu(), discriminator.cpu(), out_dir)
    write_bytes_atomic(Path(out_dir) / TRAIN_LOG, (Path(checkpoint_dir) / TRAIN_LOG).read_bytes())
    return config
