"""Random-init BigGAN-deep models that behave like trained ones: the ``tiny`` demo generator and test models.

A freshly constructed package model outputs NaN: the final batch norm's affine parameters are
uninitialised memory, and the spectral-norm vectors start random. :func:`initialise_random_biggan`
fixes both (ones / zeros, then a few train-mode forwards so the power iteration settles), and
:func:`calibrate_truncation_stats` fills each row of the per-truncation batch-norm statistics with the
real activation statistics at that truncation, as the released models have.

A random network normalised to unit activations everywhere is chaotic: a 5 % step in the latent
changes the image by a third (about 6x more than a linear map would), so no encoder or optimiser can
invert it. :func:`damp_blocks` then scales every block's batch-norm output by ``gain`` < 1. The damping
compounds with depth (each block's statistics were measured on undamped inputs), so fine layers add
detail on top of a coarse layout instead of scrambling it: at the default 0.6 the same 5 % step
changes the image by about 7 %, and latent optimisation recovers the demo masks far better. The final
batch norm is then calibrated again, so the damped network still uses the full colour range.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.model import BigGANBatchNorm

from synthsod.generators.biggan import save_pretrained, use_exact_truncation
from synthsod.generators.latents import sample_latents

# Same architecture as BigGAN-deep (residual blocks, self-attention, class-conditional batch norm),
# 64x64 output, 16 channels per width unit: ~2.3 M parameters, ~3 ms per image on one CPU core.
TINY_CONFIG = dict(
    output_dim=64,
    z_dim=128,
    class_embed_dim=128,
    channel_width=16,
    num_classes=1000,
    layers=[
        (False, 16, 16),
        (True, 16, 8),
        (False, 8, 8),
        (True, 8, 4),
        (False, 4, 4),
        (True, 4, 2),
        (False, 2, 2),
        (True, 2, 1),
    ],
    attention_layer_position=6,
    eps=1e-4,
    n_stats=51,
)


def _batch(net: BigGAN, n: int, seed: int, truncation: float) -> tuple[torch.Tensor, torch.Tensor]:
    z, ids = sample_latents(seed, range(n), net.config.z_dim, truncation, np.arange(net.config.num_classes))
    one_hot = torch.nn.functional.one_hot(torch.from_numpy(ids), net.config.num_classes).float()
    return torch.from_numpy(z), one_hot


@torch.no_grad()
def initialise_random_biggan(net: BigGAN, warmup_batches: int = 3, batch_size: int = 8, seed: int = 0) -> BigGAN:
    """Make a freshly constructed model finite: init the final batch norm, settle the spectral norms."""
    for module in net.modules():
        if isinstance(module, BigGANBatchNorm) and not module.conditional:
            torch.nn.init.ones_(module.weight)
            torch.nn.init.zeros_(module.bias)
    net.train()  # spectral norm runs its power iteration only in train mode
    for k in range(warmup_batches):
        net(*_batch(net, batch_size, seed + k, 1.0), 1.0)
    return net.eval()


@torch.no_grad()
def calibrate_truncation_stats(
    net: BigGAN, batch_size: int = 32, seed: int = 0, conditional_only: bool | None = None
) -> BigGAN:
    """Set each truncation row of the batch norms to the activation statistics measured at that truncation.

    ``conditional_only`` None calibrates every batch norm; True only the blocks'; False only the final one.
    """
    norms = [
        m
        for m in net.modules()
        if isinstance(m, BigGANBatchNorm) and (conditional_only is None or m.conditional == conditional_only)
    ]
    n_stats = norms[0].running_means.shape[0]
    row = 0

    def measure(module, args):
        x = args[0]
        module.running_means[row] = x.mean(dim=(0, 2, 3))
        module.running_vars[row] = x.var(dim=(0, 2, 3))

    hooks = [m.register_forward_pre_hook(measure) for m in norms]
    try:
        for row in range(1, n_stats):  # row 0 is truncation 0, which BigGAN never uses
            truncation = row / (n_stats - 1)
            net(*_batch(net, batch_size, seed + row, truncation), truncation)
    finally:
        for hook in hooks:
            hook.remove()
    for module in norms:
        module.running_means[0], module.running_vars[0] = module.running_means[1], module.running_vars[1]
    return net


@torch.no_grad()
def damp_blocks(net: BigGAN, gain: float) -> BigGAN:
    """Scale the normalised activations of every block's batch norm by ``gain`` (variance / gain**2)."""
    for module in net.modules():
        if isinstance(module, BigGANBatchNorm) and module.conditional:
            module.running_vars.div_(gain**2)
    return net


DEFAULT_GAIN = 0.6


def build_tiny_biggan(seed: int = 0, gain: float = DEFAULT_GAIN, config: dict | None = None) -> BigGAN:
    """The demo generator: deterministic for a seed, finite, calibrated, in eval mode."""
    torch.manual_seed(seed)
    # Exact truncation first: calibrating row k must also normalise with row k.
    net = use_exact_truncation(BigGAN(BigGANConfig.from_dict(config or TINY_CONFIG)))
    initialise_random_biggan(net, seed=seed)
    calibrate_truncation_stats(net, seed=seed)
    damp_blocks(net, gain)
    calibrate_truncation_stats(net, seed=seed, conditional_only=False)  # restore full contrast
    return net.eval().requires_grad_(False)


def write_tiny_biggan(out_dir: str | Path, seed: int = 0, gain: float = DEFAULT_GAIN) -> None:
    """Build the tiny generator and save it in from_pretrained layout (pytorch_model.bin + config.json)."""
    save_pretrained(build_tiny_biggan(seed, gain), out_dir)
