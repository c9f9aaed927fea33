"""Saliency maps of a trained SOD model for a benchmark: predict at a fixed size, resize back.

As F3Net tests (``resize="square"``, the default): each image is resized to ``size`` x ``size`` (352 in
the paper), ImageNet-normalised, and the prediction is resized back to the image's own size (bilinear)
before it is written as an 8-bit PNG. E-BigBiGAN's protocol (``resize="shorter_side"``) keeps the
aspect ratio instead: the shorter side becomes ``size`` (128 in its paper) and the longer one
``size * long // short`` (:func:`resized_shape`, as its code rounds); the image is padded on the right
and bottom by replicating its edge to multiples of :data:`PAD_MULTIPLE` (the U-Net halves it 3-5 times)
and the map cropped back before it is resized to the image.

Probabilities: sigmoid of one-channel models; for two-channel models the softmax of the saliency
channel (channel 1 for CE; the channel :func:`synthsod.sod.losses.saliency_channel` picks on validation
data for CAS, whose channels carry no label). The cooperative model adds its uncertainty maps (square
only), and its EBM refines the maps of any other model at its own square size
(:func:`refine_predictions`).
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
from synthsod.core.io import png_files_by_stem, write_bytes_atomic
from synthsod.core.progress import progress
from synthsod.data.datasets import image_to_tensor
from synthsod.data.prepare import load_gray, load_image_rgb
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.losses import OUTPUT_CHANNELS, saliency_channel
from synthsod.sod.train import normalise

SQUARE, SHORTER_SIDE = "square", "shorter_side"
RESIZE_MODES = (SQUARE, SHORTER_SIDE)
PAD_MULTIPLE = 32


def resized_shape(height: int, width: int, size: int, resize: str = SQUARE) -> tuple[int, int]:
    """(height, width) an image of ``height`` x ``width`` is predicted at under ``resize``."""
    if resize == SQUARE:
        return size, size
    if resize != SHORTER_SIDE:
        raise SynthsodError(f"unknown prediction resize {resize!r}; choose one of {', '.join(RESIZE_MODES)}")
    if height > width:
        return size * height // width, size
    return size, size * width // height


def _image_tensor(image: np.ndarray, shape: tuple[int, int]) -> torch.Tensor:
    """uint8 H x W x 3 -> float [3, h, w] in [-1, 1], resized by area as data.datasets.image_to_tensor does."""
    if image.shape[:2] != shape:
        image = cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA)
    image = np.require(image, requirements="W")
    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)


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


Maps = Callable[[torch.Tensor, list[str]], list[torch.Tensor]]  # (images [N, 3, h, w] in [-1, 1], ids) -> maps


def _image_maps(
    images: list[np.ndarray], ids: list[str], size: int, maps: Maps, resize: str
) -> list[list[torch.Tensor]]:
    """Per output folder, one [1, h, w] map per image, each at the size ``resize`` predicts that image at."""
    if resize == SQUARE:
        return [list(m) for m in maps(torch.stack([image_to_tensor(image, size) for image in images]), ids)]
    groups: dict[tuple[int, int], list[int]] = {}  # images of one predicted shape go through together
    for i, image in enumerate(images):
        groups.setdefault(resized_shape(*image.shape[:2], size, resize), []).append(i)
    out: list[list[torch.Tensor | None]] = []
    for (height, width), members in groups.items():
        batch = torch.stack([_image_tensor(images[i], (height, width)) for i in members])
        pad = (0, -width % PAD_MULTIPLE, 0, -height % PAD_MULTIPLE)
        results = maps(F.pad(batch, pad, mode="replicate") if any(pad) else batch, [ids[i] for i in members])
        out = out or [[None] * len(images) for _ in results]
        for folder, result in zip(out, results):
            for i, prob in zip(members, result):
                folder[i] = prob[:, :height, :width]
    return out  # type: ignore[return-value]


def write_maps(
    manifest: pd.DataFrame,
    out_dirs: list[str | os.PathLike],
    size: int,
    maps: Maps,
    batch_size: int = 8,
    desc: str = "saliency maps",
    resize: str = SQUARE,
) -> int:
    """For each batch of manifest images (resized to ``size`` as ``resize`` says: see the module docstring),
    ``maps`` gives one [N, 1, h, w] map in [0, 1] per output folder; each is resized back to its image's size
    and written as ``<id>.png`` (8-bit). Returns the image count; ``desc`` names the progress bar."""
    resized_shape(1, 1, size, resize)  # an unknown mode fails before any image is read
    count = 0
    with progress(total=len(manifest), desc=desc, unit="image") as bar:
        for lo in range(0, len(manifest), batch_size):
            rows = manifest.iloc[lo : lo + batch_size]
            images = [load_image_rgb(path) for path in rows["image"]]
            for out_dir, batch_maps in zip(out_dirs, _image_maps(images, list(rows["id"]), size, maps, resize)):
                for sample_id, image, prob in zip(rows["id"], images, batch_maps):
                    prob = prob.float().cpu()
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
    resize: str = SQUARE,
) -> int:
    """Write ``out_dir/<id>.png`` for every manifest row; return the count. A cooperative model also
    writes its uncertainty maps (entropy / ln 2, so 255 = a fair coin) to ``uncertainty_dir``. ``resize``:
    ``square`` (``size`` x ``size``) or ``shorter_side`` (E-BigBiGAN's; see the module docstring)."""
    if uncertainty_dir is not None:
        if not isinstance(model, CoopSaliency):
            raise SynthsodError(f"only the coop model gives uncertainty maps, not {type(model).__name__}")
        if resize != SQUARE:
            raise SynthsodError("the coop model predicts at its EBM's square size only (resize: square)")
        device = next(model.parameters()).device

        def maps(images, ids):
            saliency, entropy = model.eval().predict(normalise(images.to(device)))
            return [saliency, entropy / math.log(2)]

        return write_maps(
            manifest, [out_dir, uncertainty_dir], size, maps, batch_size, desc="saliency and uncertainty maps"
        )
    return write_maps(
        manifest,
        [out_dir],
        size,
        lambda images, ids: [probabilities(model, images, channel)],
        batch_size,
        resize=resize,
    )


def prediction_files(folder: str | os.PathLike, ids: list[str]) -> dict[str, Path]:
    """``{id: folder/<id>.png}`` for every benchmark image id, checked up front (another benchmark's maps, say,
    are one error naming the folder and the missing stems)."""
    return png_files_by_stem(folder, ids, "saliency map", "benchmark images")


def refine_predictions(
    model: CoopSaliency,
    manifest: pd.DataFrame,
    base_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    batch_size: int = 8,
) -> int:
    """Another model's maps (``base_dir/<id>.png``, all checked first by :func:`prediction_files`) refined
    by the EBM of ``model`` at its own size (noise-free Langevin, the model's ``ebm_steps`` / ``ebm_step``)."""
    if not isinstance(model, CoopSaliency):
        raise SynthsodError(f"only a coop model's EBM refines saliency maps, not {type(model).__name__}")
    files = prediction_files(base_dir, list(manifest["id"]))
    size = model.ebm.image_size
    device = next(model.parameters()).device

    def maps(images, ids):
        base = []
        for sample_id in ids:
            gray = cv2.resize(load_gray(files[str(sample_id)]), (size, size), interpolation=cv2.INTER_AREA)
            base.append(torch.from_numpy(gray).float().div(255)[None])
        return [model.eval().refine(normalise(images.to(device)), torch.stack(base).to(device))]

    return write_maps(manifest, [out_dir], size, maps, batch_size, desc="EBM refinement")


__all__ = [
    "RESIZE_MODES",
    "prediction_channel",
    "prediction_files",
    "probabilities",
    "refine_predictions",
    "resized_shape",
    "write_maps",
    "write_predictions",
]
