"""BigGAN-deep backend over pytorch-pretrained-biggan: weight loading, exact truncation, feature taps.

Weights
    A model loads from a local directory holding ``pytorch_model.bin`` and ``config.json`` (the
    package's ``from_pretrained`` layout), or from the package's own download cache
    (``$PYTORCH_PRETRAINED_BIGGAN_CACHE``, default ``~/.pytorch_pretrained_biggan``), found through the
    cache's metadata files. Nothing here touches the network: the package's cache lookup sends a HEAD
    request even for a cached file, so we read the cache index ourselves.

Truncation
    The package keeps batch-norm statistics for 51 truncation values (a 0.02 grid) and interpolates
    between them with the two weights swapped and a floating-point floor, so some grid values read the
    statistics of the neighbouring step (0.58 reads 0.56, 0.14 reads 0.16, 0.28 reads 0.30).
    :class:`ExactTruncationBatchNorm` replaces that lookup: a value on the grid (within 1e-6) reads its
    own row, and a value between two rows interpolates them linearly with the right weights.

Feature taps
    Tap ``i`` is the hidden state entering ``generator.layers[i]``; ``i == len(layers)`` is the output
    of the last block (before the final batch norm and RGB convolution). The default taps follow
    SODGAN's choice for BigGAN-deep-256 (0, 2, 4, 6, 9, 11, 12: the input of the first non-upsampling
    block at each resolution, plus the input of the last block) and generalise it to every config.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.model import BigGANBatchNorm

from synthsod.core.gpu import autocast
from synthsod.core.io import file_sha256
from synthsod.errors import SynthsodError
from synthsod.generators.base import GeneratorOutput
from synthsod.generators.weights import CONFIG_NAME, WEIGHTS_NAME, locate_weights, missing_weights_message

log = logging.getLogger(__name__)

GRID_TOLERANCE = 1e-6

# The released models' config.json, for building same-shaped random-init models (tests, benchmarks).
# BigGAN-deep: two blocks per resolution (the second upsamples), self-attention at 64x64.
_DEEP_LAYERS = [
    (False, 16, 16),
    (True, 16, 16),
    (False, 16, 16),
    (True, 16, 8),
    (False, 8, 8),
    (True, 8, 8),
    (False, 8, 4),
    (True, 4, 4),
    (False, 4, 2),
    (True, 2, 2),
    (False, 2, 1),
    (True, 1, 1),
    (False, 1, 1),
    (True, 1, 1),
]
PRETRAINED_CONFIGS = {
    "biggan-deep-128": dict(output_dim=128, layers=BigGANConfig().layers),
    "biggan-deep-256": dict(output_dim=256, layers=_DEEP_LAYERS[:12]),
    "biggan-deep-512": dict(output_dim=512, layers=_DEEP_LAYERS),
}
for _config in PRETRAINED_CONFIGS.values():
    _config.update(
        z_dim=128,
        class_embed_dim=128,
        channel_width=128,
        num_classes=1000,
        attention_layer_position=8,
        eps=1e-4,
        n_stats=51,
    )


# --- truncation ----------------------------------------------------------------------------------
def truncation_position(truncation: float, n_stats: int) -> tuple[int, float]:
    """Row ``lo`` and weight ``w`` such that the statistics are ``(1 - w) * row[lo] + w * row[lo + 1]``."""
    if not 0.0 < truncation <= 1.0:
        raise SynthsodError(f"truncation must be in (0, 1], got {truncation}")
    position = truncation * (n_stats - 1)
    nearest = round(position)
    if abs(position - nearest) < GRID_TOLERANCE:
        return nearest, 0.0
    lo = math.floor(position)
    return lo, position - lo


class ExactTruncationBatchNorm(BigGANBatchNorm):
    """BigGAN's batch norm with correct interpolation of the per-truncation statistics."""

    def forward(self, x, truncation, condition_vector=None):
        lo, w = truncation_position(truncation, self.running_means.shape[0])
        mean, var = self.running_means[lo], self.running_vars[lo]
        if w:
            mean = torch.lerp(mean, self.running_means[lo + 1], w)
            var = torch.lerp(var, self.running_vars[lo + 1], w)
        if not self.conditional:
            return F.batch_norm(x, mean, var, self.weight, self.bias, training=False, eps=self.eps)
        weight = 1 + self.scale(condition_vector)[:, :, None, None]
        bias = self.offset(condition_vector)[:, :, None, None]
        return (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps) * weight + bias


def use_exact_truncation(model: BigGAN) -> BigGAN:
    """Swap every batch norm of ``model`` to :class:`ExactTruncationBatchNorm` (same parameters)."""
    for module in model.modules():
        if type(module) is BigGANBatchNorm:
            module.__class__ = ExactTruncationBatchNorm
    return model


# --- taps ------------------------------------------------------------------------------------------
def default_taps(config: BigGANConfig) -> list[int]:
    """SODGAN's tap rule: input of the first non-upsampling block at each resolution, and of the last block."""
    taps, seen_resolutions, resolution = [], set(), 4
    index = 0
    for i, (up_sample, _, _) in enumerate(config.layers):
        if i == config.attention_layer_position:
            index += 1  # the self-attention layer occupies its own slot in generator.layers
        if up_sample:
            resolution *= 2
        elif resolution not in seen_resolutions:
            seen_resolutions.add(resolution)
            taps.append(index)
        index += 1
    last_block = index - 1
    if last_block not in taps:
        taps.append(last_block)
    return taps


def tap_shapes(config: BigGANConfig, taps: Sequence[int]) -> dict[int, tuple[int, int, int]]:
    """(channels, height, width) of each tap, computed from the config without running the model."""
    shapes = []  # the state entering generator.layers[i], then the final output
    channels, resolution = 16 * config.channel_width, 4
    for i, (up_sample, _, out_width) in enumerate(config.layers):
        if i == config.attention_layer_position:
            shapes.append((channels, resolution, resolution))
        shapes.append((channels, resolution, resolution))
        channels = out_width * config.channel_width
        resolution *= 2 if up_sample else 1
    shapes.append((channels, resolution, resolution))
    return {t: shapes[t] for t in taps}


def check_taps(config: BigGANConfig, taps: Sequence[int]) -> list[int]:
    n_slots = len(config.layers) + (config.attention_layer_position < len(config.layers))
    bad = [t for t in taps if not 0 <= t <= n_slots]
    if bad or len(set(taps)) != len(taps):
        raise SynthsodError(f"taps {list(taps)}: each must be a distinct index in 0..{n_slots}")
    return sorted(taps)


# --- weights ---------------------------------------------------------------------------------------
def load_biggan(model: str, weights_dir: str | os.PathLike | None = None, sha256: str | None = None) -> BigGAN:
    """Load a BigGAN-deep in eval mode with exact truncation handling; a clear error if files are missing
    or, when ``sha256`` is given, if the weights file has another digest. Weights stored in half precision
    load as float32."""
    found = locate_weights(model, weights_dir)
    if found is None:
        raise SynthsodError(missing_weights_message(model, weights_dir))
    weights_file, config_file = found
    if sha256 is not None and (actual := file_sha256(weights_file)) != sha256.lower():
        raise SynthsodError(
            f"{weights_file} has sha256 {actual}, expected {sha256}: the file is damaged or "
            "another version; restore it (git checkout / re-download) or update the sha256"
        )
    try:
        config = BigGANConfig.from_json_file(config_file)
        net = BigGAN(config)
        state = torch.load(weights_file, map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError, TypeError, KeyError, EOFError, pickle.UnpicklingError) as err:
        raise SynthsodError(f"cannot read BigGAN weights {weights_file} / {config_file}: {err}") from err
    result = net.load_state_dict(state, strict=False)
    # Old checkpoints lack spectral-norm vectors that torch rebuilds on load; anything else is fatal.
    missing = [k for k in result.missing_keys if not k.endswith(("weight_u", "weight_v"))]
    if missing:
        raise SynthsodError(f"{weights_file} does not match {config_file}: missing {missing[:5]}")
    return use_exact_truncation(net).eval().requires_grad_(False)


def save_pretrained(net: BigGAN, out_dir: str | os.PathLike, dtype: torch.dtype | None = None) -> None:
    """Write ``net`` in from_pretrained layout (weights + config), each file atomically.

    ``dtype`` (e.g. float16) stores floating-point tensors at that precision; loading casts them back.
    """
    from synthsod.core.io import atomic_path, write_bytes_atomic

    out_dir = Path(out_dir)
    # Saving through a file object keeps torch from naming the zip's inner folder after the
    # (random) temporary file name, so the same model always gives the same bytes.
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp, open(tmp, "wb") as file:
        state = net.state_dict()
        if dtype is not None:
            state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        torch.save(state, file)
    write_bytes_atomic(out_dir / CONFIG_NAME, net.config.to_json_string().encode())


# --- the backend -----------------------------------------------------------------------------------
class BigGANGenerator:
    """A BigGAN-deep that returns images in [-1, 1] and the tapped hidden features in one pass."""

    z_dim: int
    num_classes: int
    resolution: int

    def __init__(self, net: BigGAN, name: str, taps: Sequence[int] | None = None, device: torch.device | str = "cpu"):
        self.net = net.to(device).eval().requires_grad_(False)
        self.name = name
        self.device = torch.device(device)
        config = net.config
        self.z_dim, self.num_classes, self.resolution = config.z_dim, config.num_classes, config.output_dim
        self.taps = check_taps(config, default_taps(config) if taps is None else taps)
        self.feature_shapes = tap_shapes(config, self.taps)
        self._captured: dict[int, torch.Tensor] | None = None
        layers = net.generator.layers
        for i, layer in enumerate(layers):
            if i in self.taps:
                layer.register_forward_pre_hook(self._make_hook(i, use_output=False))
        if len(layers) in self.taps:
            layers[-1].register_forward_hook(self._make_hook(len(layers), use_output=True))

    def _make_hook(self, tap: int, use_output: bool):
        def hook(module, args, output=None):
            if self._captured is not None:
                self._captured[tap] = output if use_output else args[0]

        return hook

    def images(self, z: torch.Tensor, one_hot: torch.Tensor, truncation: float) -> torch.Tensor:
        """Differentiable images [N, 3, R, R] in [-1, 1] (float32) from ``z`` [N, z_dim] and one-hot
        classes [N, num_classes], both tensors on ``self.device``; gradients flow to ``z``, the weights
        stay frozen. bf16 autocast on CUDA."""
        with autocast(self.device):
            return self.net(z.float(), one_hot, truncation).float()

    def one_hot(self, class_ids) -> torch.Tensor:
        """Class ids [N] (array or tensor) -> one-hot [N, num_classes] float32 on ``self.device``."""
        ids = torch.as_tensor(class_ids, dtype=torch.long, device=self.device)
        return F.one_hot(ids, self.num_classes).float()

    @torch.no_grad()
    def generate(self, z, class_ids, truncation: float, with_features: bool = True) -> GeneratorOutput:
        """Images [N, 3, R, R] in [-1, 1] and features {tap: [N, C, h, w]}, float32 on ``self.device``.

        ``z`` [N, z_dim] and ``class_ids`` [N] may be numpy arrays or tensors. bf16 autocast on CUDA.
        """
        z = torch.as_tensor(np.asarray(z, dtype=np.float32) if not torch.is_tensor(z) else z).to(self.device)
        self._captured = {} if with_features else None
        try:
            images = self.images(z, self.one_hot(class_ids), truncation)
            features = {t: f.float() for t, f in sorted((self._captured or {}).items())}
        finally:
            self._captured = None
        return GeneratorOutput(images=images, features=features)
