"""Saliency maps of a trained SOD model for a benchmark: predict at a fixed size, resize back.

As F3Net tests: each image is resized to ``size`` x ``size`` (352 in the paper), ImageNet-normalised,
and the prediction is resized back to the image's own size (bilinear) before it is written as an
8-bit PNG. Probabilities: sigmoid of one-channel models; for two-channel models the softmax of the
saliency channel (channel 1 for CE; the channel :func:`synthsod.sod.losses.saliency_channel` picks on
validation data for CAS, whose channels carry no label). The cooperative model adds its uncertainty
maps, and its EBM refines the maps of any other model (:func:`refine_predictions`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.gpu import autocast
from synthsod.core.io import write_bytes_atomic
from synthsod.core.progress import progress
from synthsod.data.datasets import image_to_tensor
from synthsod.data.prepare import load_gray, load_image_rgb
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.losses import OUTPUT_CHANNELS, saliency_channel
from synthsod.sod.train import normalise


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
    return torch.softmax(logits, dim=1)[:, channel : channel + 1]


def prediction_channel(model: nn.Module, loss: str, images: torch.Tensor, masks: torch.Tensor) -> int | None:
    """Which softmax channel is saliency: None for one-channel losses, 1 for CE, and for CAS (whose
    channels carry no label) the one that correlates best with ``masks`` on validation ``images``."""
    if OUTPUT_CHANNELS[loss] == 1:
        return None
    if loss == "cas":
        return saliency_channel(torch.softmax(_logits(model, images), dim=1), masks)
    return 1


Maps = Callable[[torch.Tensor, list[str]], list[torch.Tensor]]  # (images [N, 3, S, S] in [-1, 1], ids) -> maps


def write_maps(
    manifest: pd.DataFrame,
    out_dirs: list[str | os.PathLike],
    size: int,
    maps: Maps,
    batch_size: int = 8,
    desc: str = "saliency maps",
) -> int:
    """For each batch of manifest images (resized to ``size``), ``maps`` gives one [N, 1, S, S] map in
    [0, 1] per output folder; each is resized back to its image's size and written as ``<id>.png``
    (8-bit). Returns the image count; ``desc`` names the progress bar."""
    count = 0
    with progress(total=len(manifest), desc=desc, unit="image") as bar:
        for lo in range(0, len(manifest), batch_size):
            rows = manifest.iloc[lo : lo + batch_size]
            images = [load_image_rgb(path) for path in rows["image"]]
            batch = torch.stack([image_to_tensor(image, size) for image in images])
            for out_dir, batch_maps in zip(out_dirs, maps(batch, list(rows["id"]))):
                for sample_id, image, prob in zip(rows["id"], images, batch_maps.float().cpu()):
                    resized = F.interpolate(prob[None], size=image.shape[:2], mode="bilinear", align_corners=False)[
                        0, 0
                    ]
                    _, png = cv2.imencode(".png", np.clip(np.rint(resized.numpy() * 255), 0, 255).astype(np.uint8))
                    write_bytes_atomic(Path(out_dir) / f"{sample_id}.png", png.tobytes())
            count += len(rows)
            bar.update(len(rows))
    return count


def write_predictions(
    model: nn.Module,
    manifest: pd.DataFrame,
    out_dir: str | os.PathLike,
    size: int,
    channel: int | None,
    batch_size: int = 8,
    uncertainty_dir: str | os.PathLike | None = None,
) -> int:
    """Write ``out_dir/<id>.png`` for every manifest row; return the count. A cooperative model also
    writes its uncertainty maps (entropy / ln 2, so 255 = a fair coin) to ``uncertainty_dir``."""
    if uncertainty_dir is not None:
        if not isinstance(model, CoopSaliency):
            raise SynthsodError(f"only the coop model gives uncertainty maps, not {type(model).__name__}")
        device = next(model.parameters()).device

        def maps(images, ids):
            saliency, entropy = model.eval().predict(normalise(images.to(device)))
            return [saliency, entropy / math.log(2)]

        return write_maps(
            manifest, [out_dir, uncertainty_dir], size, maps, batch_size, desc="saliency and uncertainty maps"
        )
    return write_maps(
        manifest, [out_dir], size, lambda images, ids: [probabilities(model, images, channel)], batch_size
    )


def refine_predictions(
    model: CoopSaliency,
    manifest: pd.DataFrame,
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    batch_size: int = 8,
) -> int:
    """Another model's maps (``base_dir/<id>.png``) refined by the EBM of ``model`` at its own size."""
    size = model.ebm.image_size
    device = next(model.parameters()).device

    def maps(images, ids):
        base = []
        for sample_id in ids:
            path = Path(base_dir) / f"{sample_id}.png"
            if not path.exists():
                raise SynthsodError(f"{path}: no prediction to refine for benchmark image {sample_id}")
            gray = cv2.resize(load_gray(path), (size, size), interpolation=cv2.INTER_AREA)
            base.append(torch.from_numpy(gray).float().div(255)[None])
        return [model.eval().refine(normalise(images.to(device)), torch.stack(base).to(device))]

    return write_maps(manifest, [out_dir], size, maps, batch_size, desc="EBM refinement")


__all__ = ["prediction_channel", "probabilities", "refine_predictions", "write_maps", "write_predictions"]
