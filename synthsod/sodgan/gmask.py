"""The few-shot mask generator G_mask (SODGAN, Sec. 3.3 and 4.1): features of a frozen BigGAN -> saliency logits.

Architecture
    G_mask = omni-attentive feature fusion (OAFF) + a per-pixel classification head.

    Fusion (eq 6). Each tapped feature map f_t [C_t, h_t, h_t] is reduced to k channels by its own
    1x1 convolution (with bias) and brought to the output resolution R by bilinear upsampling U
    (align_corners=False); the reduced maps are concatenated into f* [T*k, R, R].

    Omni-attention (eq 7-8)::

        LA(f*) = PWC(ReLU(BN(PWC(f*))))           per pixel
        GA(f*) = PWC(ReLU(BN(PWC(GAP(f*)))))      one vector per image, broadcast over pixels
        OA(f*) = LA(f*) + GA(f*)
        f'     = f* * OA(f*)                      element-wise

    PWC is a point-wise (1x1) convolution, hidden width ``max(C // reduction, 8)``. The ablations of
    Table 2 are ``attention="off"`` (f' = f*) and ``"ga"`` (f' = f* * GA(f*)).

    Heads (Sec. 4.1, Table 1; :data:`HEADS`). MLP-S/M/L are per-pixel linear layers with the widths of
    Table 1, each but the last followed by BatchNorm and ReLU; Table 1's "layers" is the number of
    widths. CNN-S/M/L start with a linear (1x1) embedding C -> 128, then one 3x3 convolution (padding 1)
    per listed width, leaky ReLU (slope 0.2) after every layer but the last. This is the only reading
    that matches both the text (CNN-S: embedding, "followed by 3 convolutional layers" 128/32/2) and
    Table 1 (CNN-M: 5 layers for 5 widths, CNN-L: 7 for 7): the embedding is not counted.

Why the fusion is cheap, and exact
    The paper upsamples every feature map to R first and then reduces it. For BigGAN-deep-256 that is
    a 7040 x 256 x 256 stack (1.85 GB in fp32 per image). A 1x1 convolution is a per-pixel affine map
    W f + b, and bilinear upsampling is, per output pixel, a convex combination sum_j a_j f(p_j) with
    sum_j a_j = 1. Hence

        Conv1x1(U(f)) = sum_j a_j (W f(p_j)) + b = sum_j a_j (W f(p_j) + b) = U(Conv1x1(f)),

    so we reduce at each tap's native resolution and upsample only the k reduced channels. The result
    is identical up to floating-point rounding (:func:`naive_fusion` is the reference).

Pixel-sampled training (MLP heads)
    MLP heads and LA act on each pixel independently, so training needs f* only at sampled pixels:
    :meth:`FeatureFusion.fuse_at` bilinearly samples the reduced low-res maps with ``grid_sample`` at
    the output pixels' centres, the same convention as ``interpolate(..., align_corners=False)``
    (source coordinate (i + 0.5) h / R - 0.5, clamped to the border), so it equals f* gathered there.

    GA needs GAP(f*) over the full map. Bilinear upsampling is separable, U(m) = A m A^T with the
    interpolation matrix A [R, h]. Its mean is

        (1/R^2) 1^T A m A^T 1 = w^T m w,   w = A^T 1 / R,   sum_i w_i = 1,

    a fixed weighted mean of the low-res map (:func:`upsample_mean_weights`). For an integer scale
    factor s (all of BigGAN's taps: powers of two) every source row receives exactly s output rows'
    worth of weight, the clamped border included, so w is uniform and GAP(U(m)) is the plain mean of
    m; other factors give non-uniform w (3 -> 10: 0.335, 0.330, 0.335). Either way GAP is exact
    without the full map.

Loss (eq 10)
    L_S = cross-entropy + (1 - Dice), Dice on the foreground softmax probability. With the
    quality-aware discriminator D_q (:mod:`synthsod.sodgan.dq`), G_mask also minimises the non-saturating
    adversarial loss -log D_q(G(z+), G_mask(z+)) (eq 11), and D_q is trained on real pairs against
    (G(z+), G_mask(z+)) (eq 12). The real pair's image is by default G(z+), the generator's rendering
    of the D_m entry, with its real mask y (``dq_real_images: generated``): D_q then can only judge
    whether a mask fits its image, the quality control the paper asks of it. With the photo x itself
    (``photos``, eq 12 read literally) D_q separates the pairs by the images' realism alone, which
    G_mask cannot change; in the demo that pushed the adversarial term to ~8 and held-out IoU down.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import nn

from synthsod.errors import SynthsodError

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

FeatureShapes = Mapping[int, tuple[int, int, int]]
Attention = Literal["off", "ga", "full"]
ATTENTION_MODES = ("off", "ga", "full")
LEAKY_SLOPE = 0.2
DICE_EPS = 1e-6

# BigGAN-deep-256's default taps carry 7040 channels: 10 per tap gives f* with 70 channels and
# G_mask about 89K parameters with MLP-S and full attention, the paper's "90K".
DEFAULT_CHANNELS_PER_TAP = 10
DEFAULT_REDUCTION = 4


# --- resampling helpers -----------------------------------------------------------------------------
def upsample(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinear (align_corners=False) resize of [N, C, h, w] to R x R; identity when already R."""
    if x.shape[-2:] == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


@functools.lru_cache(maxsize=64)
def _mean_weights_cpu(size: int, resolution: int) -> torch.Tensor:
    # Row i of the 1-D interpolation of eye(size) is the upsampled indicator of source i, i.e. A^T.
    eye = torch.eye(size, dtype=torch.float64)[:, None, :]  # [size, 1, size] as (batch, channel, length)
    if size == resolution:
        return torch.full((size,), 1.0 / size, dtype=torch.float64)
    a_t = F.interpolate(eye, size=resolution, mode="linear", align_corners=False)[:, 0]  # [size, R]
    return a_t.sum(dim=1) / resolution


def upsample_mean_weights(size: int, resolution: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """w [size] with mean(U(m)) = w^T m w for bilinear upsampling size -> resolution (sums to 1)."""
    return _mean_weights_cpu(size, resolution).to(device=device, dtype=dtype)


def upsampled_mean(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Exact spatial mean of ``upsample(x, resolution)`` computed on the low-res map: [N, C, h, w] -> [N, C]."""
    h, w = x.shape[-2:]
    wy = upsample_mean_weights(h, resolution, x.device, x.dtype)
    wx = upsample_mean_weights(w, resolution, x.device, x.dtype)
    return torch.einsum("nchw,h,w->nc", x, wy, wx)


def pixel_grid(coords: torch.Tensor, resolution: int) -> torch.Tensor:
    """Integer pixel coordinates [N, K, 2] as (row, col) -> grid_sample grid [N, 1, K, 2] as (x, y).

    Pixel centres in align_corners=False normalised coordinates: (i + 0.5) / R * 2 - 1.
    """
    centres = (coords.to(torch.float32) + 0.5) * (2.0 / resolution) - 1.0
    return centres.flip(-1)[:, None]


def sample_maps(x: torch.Tensor, coords: torch.Tensor, resolution: int) -> torch.Tensor:
    """``upsample(x, R)`` read at ``coords`` [N, K, 2] without building it: [N, C, h, w] -> [N, K, C]."""
    grid = pixel_grid(coords, resolution).to(x.dtype)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)  # [N, C, 1, K]
    return out[:, :, 0].transpose(1, 2)


def gather_pixels(maps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Values of full-resolution ``maps`` [N, C, R, R] at ``coords`` [N, K, 2] -> [N, K, C]."""
    n, c, _, width = maps.shape
    flat = (coords[..., 0] * width + coords[..., 1]).to(maps.device)  # [N, K]
    return maps.flatten(2).gather(2, flat[:, None].expand(n, c, -1)).transpose(1, 2)


# --- building blocks that act per pixel on [N, C, H, W], [N, C] and [P, C] alike -------------------
class PointwiseLinear(nn.Linear):
    """A linear map over the channel axis (dim 1): a 1x1 convolution on maps, nn.Linear on vectors.

    One module for both layouts lets the same trained head run on sampled pixels and on full maps.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.linear(x, self.weight, self.bias)
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class ChannelBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the channel axis for [N, C] and [N, C, H, W] (the statistics are per channel either way)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a [N, C] or [N, C, H, W] input, got shape {tuple(x.shape)}")


def _bottleneck(channels: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(
        PointwiseLinear(channels, hidden), ChannelBatchNorm(hidden), nn.ReLU(), PointwiseLinear(hidden, channels)
    )


# --- fusion (eq 6) ------------------------------------------------------------------------------------
class FeatureFusion(nn.Module):
    """f* = Cat_t U(Conv1x1_t(f_t)): reduce at native resolution, upsample only the k reduced channels."""

    def __init__(self, feature_shapes: FeatureShapes, out_resolution: int, channels_per_tap: int):
        super().__init__()
        if not feature_shapes:
            raise SynthsodError("G_mask needs at least one feature tap")
        for tap, (_, h, w) in feature_shapes.items():
            if h != w:
                raise SynthsodError(f"tap {tap}: only square feature maps are supported, got {h}x{w}")
        self.taps = sorted(int(t) for t in feature_shapes)
        self.feature_shapes = {int(t): tuple(shape) for t, shape in feature_shapes.items()}
        self.out_resolution = int(out_resolution)
        self.channels_per_tap = int(channels_per_tap)
        self.norms = nn.ModuleDict({str(t): nn.BatchNorm2d(feature_shapes[t][0], affine=False) for t in self.taps})
        self.reducers = nn.ModuleDict(
            {str(t): nn.Conv2d(feature_shapes[t][0], channels_per_tap, kernel_size=1) for t in self.taps}
        )

    @property
    def out_channels(self) -> int:
        return len(self.taps) * self.channels_per_tap

    def reduce(self, features: Mapping[int, torch.Tensor]) -> list[torch.Tensor]:
        """Conv1x1_t(f_t) at each tap's native resolution, in tap order."""
        missing = [t for t in self.taps if t not in features]
        if missing:
            raise SynthsodError(f"G_mask expects features for taps {self.taps}; missing {missing}")
        return [self.reducers[str(t)](self.norms[str(t)](features[t])) for t in self.taps]

    def forward(self, features: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """f* [N, T*k, R, R]."""
        return torch.cat([upsample(r, self.out_resolution) for r in self.reduce(features)], dim=1)

    def fuse_at(self, features: Mapping[int, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """f* at ``coords`` [N, K, 2] (row, col) -> [N, K, T*k], without the full-resolution map."""
        return self.sample_reduced(self.reduce(features), coords)

    def sample_reduced(self, reduced: Sequence[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        return torch.cat([sample_maps(r, coords, self.out_resolution) for r in reduced], dim=2)

    def pooled(self, reduced: Sequence[torch.Tensor]) -> torch.Tensor:
        """GAP(f*) [N, T*k] from the reduced low-res maps (exact; module docstring)."""
        return torch.cat([upsampled_mean(r, self.out_resolution) for r in reduced], dim=1)


def naive_fusion(fusion: FeatureFusion, features: Mapping[int, torch.Tensor]) -> torch.Tensor:
    """Reference for eq 6 as written: upsample every full feature map, then apply the same 1x1 convs."""
    return torch.cat(
        [
            fusion.reducers[str(t)](upsample(fusion.norms[str(t)](features[t]), fusion.out_resolution))
            for t in fusion.taps
        ],
        dim=1,
    )


# --- omni-attention (eq 7-8) --------------------------------------------------------------------------
class OmniAttention(nn.Module):
    """f' = f* * (LA(f*) + GA(f*)), or the ablations "ga" (f* * GA(f*)) and "off" (f')."""

    def __init__(self, channels: int, reduction: int = DEFAULT_REDUCTION, mode: Attention = "full"):
        super().__init__()
        if mode not in ATTENTION_MODES:
            raise SynthsodError(f"attention must be one of {', '.join(ATTENTION_MODES)}, got '{mode}'")
        if reduction < 1:
            raise SynthsodError(f"attention reduction must be >= 1, got {reduction}")
        self.mode = mode
        hidden = max(channels // reduction, 8)
        self.local = _bottleneck(channels, hidden) if mode == "full" else None
        self.glob = _bottleneck(channels, hidden) if mode in ("ga", "full") else None
        self._init_as_identity()

    @torch.no_grad()
    def _init_as_identity(self) -> None:
        """Start with OA = 1 (f' = f*): zero the last PWC of each branch, GA's bias 1.

        With default random init OA is a random gate of mean ~0, so f' = f* * OA is a random quadratic
        feature map and the head fits the few shots through it instead of through f* (on the demo
        world the held-out IoU stays near chance). Starting at the identity, as zero-initialised
        residual branches do, keeps the linear path open and lets the attention learn a modulation.
        Gradients still reach every layer from the first step on through the zeroed weights' inputs.
        """
        for branch, bias in ((self.local, 0.0), (self.glob, 1.0)):
            if branch is not None:
                nn.init.zeros_(branch[-1].weight)
                nn.init.constant_(branch[-1].bias, bias)

    def forward(
        self, f: torch.Tensor, pooled: torch.Tensor | None = None, image_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend ``f`` ([N, C, H, W] maps, or [P, C] pixels with ``image_index`` [P] naming each pixel's image).

        ``pooled`` [N, C] is GAP(f*); for maps it defaults to their spatial mean.
        """
        if self.mode == "off":
            return f
        if pooled is None:
            if f.dim() != 4:
                raise SynthsodError("pixel inputs need GAP(f*) passed as `pooled`")
            pooled = f.mean(dim=(2, 3))
        ga = self.glob(pooled)  # [N, C]
        ga = ga[:, :, None, None] if f.dim() == 4 else ga[image_index]
        attention = ga if self.local is None else self.local(f) + ga
        return f * attention

    def attend_images(self, f: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Attend the pixels of whole images, ``f`` [N, K, C] (K pixels of image n in row n) -> [N*K, C].

        The same values as :meth:`forward` on the flattened pixels with their image index, but GA's
        vector is broadcast over each image's pixels instead of gathered per pixel (its gradient is then
        a sum over a view, not a scatter).
        """
        n, k, c = f.shape
        flat = f.reshape(n * k, c)
        if self.mode == "off":
            return flat
        gate = self.glob(pooled)[:, None]  # [N, 1, C]
        if self.local is not None:
            gate = self.local(flat).view(n, k, c) + gate
        return (f * gate).reshape(n * k, c)


# --- heads (Sec. 4.1, Table 1) ------------------------------------------------------------------------
@dataclass(frozen=True)
class HeadSpec:
    kind: Literal["mlp", "cnn"]
    widths: tuple[int, ...]  # output widths of the listed layers; the last is the 2 classes

    @property
    def per_pixel(self) -> bool:
        return self.kind == "mlp"


HEADS: dict[str, HeadSpec] = {
    "mlp-s": HeadSpec("mlp", (128, 32, 2)),
    "mlp-m": HeadSpec("mlp", (128, 64, 32, 2)),
    "mlp-l": HeadSpec("mlp", (128, 64, 64, 32, 2)),
    "cnn-s": HeadSpec("cnn", (128, 32, 2)),
    "cnn-m": HeadSpec("cnn", (128, 64, 64, 32, 2)),
    "cnn-l": HeadSpec("cnn", (128, 64, 64, 64, 64, 32, 2)),
}
CNN_EMBED = 128


def head_spec(name: str) -> HeadSpec:
    try:
        return HEADS[name]
    except KeyError:
        raise SynthsodError(f"unknown G_mask head '{name}'; choose one of {', '.join(HEADS)}") from None


def create_head(name: str, in_channels: int) -> nn.Sequential:
    """The classification head ``name`` (see :data:`HEADS`) on ``in_channels`` fused channels -> 2 logits."""
    spec = head_spec(name)
    layers: list[nn.Module] = []
    if spec.kind == "mlp":
        widths = (in_channels, *spec.widths)
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(PointwiseLinear(cin, cout))
            if i < len(spec.widths) - 1:
                layers += [ChannelBatchNorm(cout), nn.ReLU()]
        return nn.Sequential(*layers)
    layers += [nn.Conv2d(in_channels, CNN_EMBED, kernel_size=1), nn.LeakyReLU(LEAKY_SLOPE)]
    widths = (CNN_EMBED, *spec.widths)
    for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Conv2d(cin, cout, kernel_size=3, padding=1))
        if i < len(spec.widths) - 1:
            layers.append(nn.LeakyReLU(LEAKY_SLOPE))
    return nn.Sequential(*layers)


# --- G_mask -------------------------------------------------------------------------------------------
INFERENCE_CHUNK = 4096  # pixels per chunk of eval-mode inference with a per-pixel head


class GMask(nn.Module):
    """Fusion + omni-attention + head: generator features -> 2-class saliency logits."""

    def __init__(
        self,
        feature_shapes: FeatureShapes,
        resolution: int,
        head: str = "mlp-s",
        attention: Attention = "full",
        channels_per_tap: int = DEFAULT_CHANNELS_PER_TAP,
        reduction: int = DEFAULT_REDUCTION,
    ):
        super().__init__()
        self.head_name = head
        self.per_pixel = head_spec(head).per_pixel
        self.fusion = FeatureFusion(feature_shapes, resolution, channels_per_tap)
        self.attention = OmniAttention(self.fusion.out_channels, reduction, attention)
        self.head = create_head(head, self.fusion.out_channels)

    @property
    def resolution(self) -> int:
        return self.fusion.out_resolution

    def forward(self, features: Mapping[int, torch.Tensor]) -> torch.Tensor:
        """Logits [N, 2, R, R] (for per-pixel heads a channels-last view)."""
        reduced = self.fusion.reduce(features)
        fused = torch.cat([upsample(r, self.resolution) for r in reduced], dim=1)
        pooled = self.fusion.pooled(reduced)
        if not self.per_pixel:
            return self.head(self.attention(fused, pooled))
        # A per-pixel head runs on pixels [N*R*R, C] as matrix products, not as 1x1 convolutions on maps:
        # the same layers and values up to float rounding (tests/sodgan/test_gmask.py), and faster: oneDNN's
        # 1x1 convolution backward on NCHW maps took 40 % of the demo's G_mask forward and backward, which
        # runs 1.4x faster on pixels (CPU, benchmarks/gmask_cost.py). Training takes all pixels at once
        # (batch norm's statistics over the batch); inference takes chunks of pixels: full maps would stream
        # several [N, 128, R, R] intermediates through memory, chunks stay in cache (3-4x faster at 256).
        n, c, h, w = fused.shape
        pixels = fused.permute(0, 2, 3, 1).reshape(n, h * w, c)
        if self.training:
            logits = self.head(self.attention.attend_images(pixels, pooled))
        else:
            pixels = pixels.reshape(n * h * w, c)
            image_index = torch.arange(n, device=pixels.device).repeat_interleave(h * w)
            logits = torch.cat(
                [
                    self.head(
                        self.attention(
                            pixels[lo : lo + INFERENCE_CHUNK], pooled, image_index[lo : lo + INFERENCE_CHUNK]
                        )
                    )
                    for lo in range(0, n * h * w, INFERENCE_CHUNK)
                ]
            )
        return logits.reshape(n, h, w, -1).permute(0, 3, 1, 2)

    def forward_pixels(self, features: Mapping[int, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        """Logits [N*K, 2] at ``coords`` [N, K, 2] (row, col); image-major order. MLP heads only."""
        if not self.per_pixel:
            raise SynthsodError(f"head '{self.head_name}' has 3x3 convolutions: it needs full maps, not pixels")
        reduced = self.fusion.reduce(features)
        n, k = coords.shape[:2]
        pixels = self.fusion.sample_reduced(reduced, coords).reshape(n * k, -1)
        image_index = torch.arange(n, device=pixels.device).repeat_interleave(k)
        return self.head(self.attention(pixels, self.fusion.pooled(reduced), image_index))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def gmask_parameter_count(
    feature_shapes: FeatureShapes,
    head: str = "mlp-s",
    attention: Attention = "full",
    channels_per_tap: int = DEFAULT_CHANNELS_PER_TAP,
    reduction: int = DEFAULT_REDUCTION,
) -> int:
    """Parameters of a G_mask with this config (builds it on the meta device: no memory)."""
    with torch.device("meta"):
        return GMask(feature_shapes, 8, head, attention, channels_per_tap, reduction).num_parameters()


# --- loss (eq 10) -------------------------------------------------------------------------------------
def foreground_probability(logits: torch.Tensor) -> torch.Tensor:
    """Softmax probability of class 1 (salient): [N, 2, H, W] -> [N, 1, H, W], [P, 2] -> [P, 1]."""
    return torch.softmax(logits.float(), dim=1)[:, 1:2]


def straight_through_mask(probs: torch.Tensor) -> torch.Tensor:
    """The binary mask ``probs > 0.5`` in the forward pass, the gradient of ``probs`` in the backward pass.

    D_q sees G_mask's masks as hard 0/1 maps, like the real masks; given soft probabilities it would
    separate the pairs by softness alone and its gradient would say nothing about where the mask is wrong.
    """
    hard = (probs > 0.5).to(probs.dtype)
    return hard + probs - probs.detach()


def soft_dice(probs: torch.Tensor, target: torch.Tensor, eps: float = DICE_EPS) -> torch.Tensor:
    """(2 sum p y + eps) / (sum p + sum y + eps) over all elements: eps makes two empty masks agree (1)."""
    return (2 * (probs * target).sum() + eps) / (probs.sum() + target.sum() + eps)


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_S = CE + (1 - Dice): ``logits`` [N, 2, H, W] / [P, 2], ``target`` {0, 1} [N, 1, H, W] / [N, H, W] /
    [P, 1] / [P]."""
    logits = logits.float()
    labels = target.reshape(logits.shape[0], *logits.shape[2:]).float()
    ce = F.cross_entropy(logits, labels.round().long())
    dice = soft_dice(foreground_probability(logits)[:, 0], labels)
    return ce + (1 - dice)


# --- training -----------------------------------------------------------------------------------------


# Settings that may change between a run and its resumption (training longer is the point of resuming).


# --- inference and metrics ----------------------------------------------------------------------------


__all__ = [
    "ATTENTION_MODES",
    "HEADS",
    "FeatureFusion",
    "GMask",
    "OmniAttention",
    "create_head",
    "foreground_probability",
    "gmask_parameter_count",
    "naive_fusion",
    "segmentation_loss",
    "upsample_mean_weights",
    "upsampled_mean",
]
