"""The latent-variable saliency model G_α(X, h) of cooperative saliency (AAAI 2022).

Encoder: a ResNet-50 feature pyramid (timm; strides 4-32). Each level is reduced to ``channels`` by a
3x3 convolution. The latent h ∈ R^d (d = 8) is tiled over the coarsest level, concatenated to it and
mixed by a 3x3 convolution (the bottleneck). Decoder, in the style of MiDaS: from the coarsest level
up, each fusion block adds the next finer level (after a residual convolution unit) to the running
map, applies another residual unit and upsamples 2x; a small head (3x3 conv, 2x upsampling, 3x3 conv,
ReLU, 1x1 conv) gives one logit map at the input size. Y = G_α(X, h) + ε with ε ~ N(0, σ²) is the
model; the network is its mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.backbones import create_feature_backbone

LATENT_DIM = 8


class ResidualConvUnit(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    """running (+ RCU(skip) at the skip's size) -> RCU -> 2x bilinear upsampling."""

    def __init__(self, channels: int):
        super().__init__()
        self.skip_unit, self.out_unit = ResidualConvUnit(channels), ResidualConvUnit(channels)

    def forward(self, running: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if skip is not None:
            running = F.interpolate(running, size=skip.shape[2:], mode="bilinear", align_corners=False)
            running = running + self.skip_unit(skip)
        return F.interpolate(self.out_unit(running), scale_factor=2, mode="bilinear", align_corners=False)


class LatentSaliencyModel(nn.Module):
    def __init__(
        self,
        backbone: str = "resnet50",
        backbone_weights: str | None = None,
        latent_dim: int = LATENT_DIM,
        channels: int = 64,
    ):
        super().__init__()
        self.latent_dim = latent_dim
        self.backbone = create_feature_backbone(backbone, backbone_weights)
        self.reduce = nn.ModuleList(
            [nn.Conv2d(width, channels, 3, padding=1, bias=False) for width in self.backbone.feature_info.channels()]
        )
        self.bottleneck = nn.Conv2d(channels + latent_dim, channels, 3, padding=1)
        self.fusion = nn.ModuleList([FusionBlock(channels) for _ in self.reduce])
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels // 2, 3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(channels // 2, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 1, 1),
        )

    def encode(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The reduced pyramid of ImageNet-normalised images [N, 3, H, W]; it does not depend on h, so
        posterior inference and several draws run :meth:`decode` alone on one encoding."""
        return [reduce(f) for reduce, f in zip(self.reduce, self.backbone(images))]

    def decode(self, levels: list[torch.Tensor], h: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
        """Saliency logits [N, 1, *size] (default: 4x the finest level) of an encoding and latents h [N, d]."""
        top = levels[-1]
        tiled = h[:, :, None, None].expand(-1, -1, *top.shape[2:])
        running = self.fusion[-1](self.bottleneck(torch.cat([top, tiled], dim=1)))
        for block, skip in zip(reversed(self.fusion[:-1]), reversed(levels[:-1])):
            running = block(running, skip)
        logits = self.head(running)
        size = size or tuple(4 * s for s in levels[0].shape[2:])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, images: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """Saliency logits [N, 1, H, W] of ImageNet-normalised images [N, 3, H, W] and latents h [N, d]."""
        return self.decode(self.encode(images), h, tuple(images.shape[2:]))


__all__ = ["LATENT_DIM", "LatentSaliencyModel"]
