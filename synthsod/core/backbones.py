"""Image backbones from timm (MobileNetV3 for the DEN and the quality discriminator).

ImageNet weights load from a local file when given (timm adapts the first convolution to other
input channel counts, e.g. image + mask = 4); otherwise the backbone starts from random weights.
Nothing is downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from synthsod.core.compat import import_timm
from synthsod.errors import SynthsodError

log = logging.getLogger(__name__)


def _create(name: str, weights: str | None, **kwargs) -> nn.Module:
    timm = import_timm()
    if name not in timm.list_models():
        raise SynthsodError(f"unknown timm backbone '{name}'")
    if weights is None:
        return timm.create_model(name, pretrained=False, **kwargs)
    if not Path(weights).is_file():
        raise SynthsodError(f"backbone weights not found: {weights} (an ImageNet checkpoint of {name})")
    log.info("loading %s weights from %s", name, weights)
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"file": str(weights)}, **kwargs)


def create_backbone(name: str = "mobilenetv3_small_100", in_chans: int = 3, weights: str | None = None) -> nn.Module:
    """A timm model without classifier: ``forward(x) -> [N, num_features]`` (globally pooled)."""
    return _create(name, weights, num_classes=0, in_chans=in_chans)


def create_feature_backbone(
    name: str = "resnet50", weights: str | None = None, out_indices: tuple[int, ...] = (1, 2, 3, 4)
) -> nn.Module:
    """A timm feature pyramid: ``forward(x) -> [maps at out_indices]`` (ResNet: strides 4, 8, 16, 32).

    Without ``weights`` it starts from random weights and says so: SOD models are meant to start from
    ImageNet weights, and their paper numbers assume them.
    """
    if weights is None:
        log.warning("%s starts from random weights (no ImageNet checkpoint given)", name)
    return _create(name, weights, features_only=True, out_indices=out_indices)


def output_features(backbone: nn.Module) -> int:
    """Width of ``backbone(x)``: timm's MobileNetV3 adds a 1x1 head conv after ``num_features``."""
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features
