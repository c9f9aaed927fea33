"""Image backbones from timm (MobileNetV3 for the DEN and the quality discriminator).

ImageNet weights load from a local file when given (timm adapts the first convolution to other
input channel counts, e.g. image + mask = 4); otherwise the backbone starts from random weights.
Nothing is downloaded.
"""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from .compat import import_timm
from .errors import SynthsodError

log = logging.getLogger(__name__)


def create_backbone(name: str = "mobilenetv3_small_100", in_chans: int = 3, weights: str | None = None) -> nn.Module:
    """A timm model without classifier: ``forward(x) -> [N, num_features]`` (globally pooled)."""
    timm = import_timm()
    if name not in timm.list_models():
        raise SynthsodError(f"unknown timm backbone '{name}'")
    if weights is None:
        return timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
    if not Path(weights).is_file():
        raise SynthsodError(f"backbone weights not found: {weights} (an ImageNet checkpoint of {name})")
    log.info("loading %s weights from %s", name, weights)
    return timm.create_model(name, pretrained=True, num_classes=0, in_chans=in_chans,
                             pretrained_cfg_overlay={"file": str(weights)})


def output_features(backbone: nn.Module) -> int:
    """Width of ``backbone(x)``: timm's MobileNetV3 adds a 1x1 head conv after ``num_features``."""
    return getattr(backbone, "head_hidden_size", None) or backbone.num_features
