"""Saliency maps of a trained SOD model for a benchmark: predict at a fixed size, resize back.

As F3Net tests: each image is resized to ``size`` x ``size`` (352 in the paper), ImageNet-normalised,
and the prediction is resized back to the image's own size (bilinear) before it is written as an
8-bit PNG. Probabilities: sigmoid of one-channel models; for two-channel models the softmax of the
saliency channel (channel 1 for CE; the channel :func:`synthsod.losses.saliency_channel` picks on
validation data for CAS, whose channels carry no label).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .data import image_to_tensor
from .gpu import autocast
from .io import write_bytes_atomic
from .losses import OUTPUT_CHANNELS, saliency_channel
from .prepare import load_image_rgb
from .sod_train import normalise


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's main output (float32, on CPU) for images [N, 3, S, S] in [-1, 1], in eval mode."""
    device = next(model.parameters()).device
    with autocast(device):
        return model.eval()(normalise(images.to(device)))[0].float().cpu()


def probabilities(model: nn.Module, images: torch.Tensor, channel: int | None) -> torch.Tensor:
    """[N, 1, S, S] saliency probabilities of images [N, 3, S, S] in [-1, 1]."""
    logits = _logits(model, images)
    if logits.shape[1] == 1:
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)[:, channel:channel + 1]


def prediction_channel(model: nn.Module, loss: str, images: torch.Tensor, masks: torch.Tensor) -> int | None:
    """Which softmax channel is saliency: None for one-channel losses, 1 for CE, and for CAS (whose
    channels carry no label) the one that correlates best with ``masks`` on validation ``images``."""
    if OUTPUT_CHANNELS[loss] == 1:
        return None
    if loss == "cas":
        return saliency_channel(torch.softmax(_logits(model, images), dim=1), masks)
    return 1


def predict_images(model: nn.Module, paths: list[str], size: int, channel: int | None,
                   batch_size: int = 8) -> Iterator[tuple[str, np.ndarray]]:
    """(path, uint8 H x W map at the image's own size) for each image path, in order."""
    for lo in range(0, len(paths), batch_size):
        images = [load_image_rgb(path) for path in paths[lo:lo + batch_size]]
        batch = torch.stack([image_to_tensor(image, size) for image in images])
        for path, image, prob in zip(paths[lo:lo + batch_size], images, probabilities(model, batch, channel)):
            resized = F.interpolate(prob[None], size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
            yield path, np.clip(np.rint(resized.numpy() * 255), 0, 255).astype(np.uint8)


def write_predictions(model: nn.Module, manifest: pd.DataFrame, out_dir: str | os.PathLike, size: int,
                      channel: int | None, batch_size: int = 8) -> int:
    """Write ``out_dir/<id>.png`` for every manifest row; return the count."""
    ids = dict(zip(manifest["image"], manifest["id"]))
    count = 0
    for path, saliency in predict_images(model, list(manifest["image"]), size, channel, batch_size):
        _, png = cv2.imencode(".png", saliency)  # a uint8 H x W array always encodes
        write_bytes_atomic(Path(out_dir) / f"{ids[path]}.png", png.tobytes())
        count += 1
    return count


__all__ = ["predict_images", "prediction_channel", "probabilities", "write_predictions"]
