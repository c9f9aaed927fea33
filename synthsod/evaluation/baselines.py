"""Baselines that tell whether a saliency dataset is trivial: a global threshold vs a trained U-Net.

:func:`otsu_saliency` thresholds an image's luminance at its Otsu level and calls foreground the side
that covers less of the image border (objects rarely touch the border, backgrounds do). A world in
which this scores close to a trained segmenter is one a colour threshold solves, and proves nothing.
:func:`threshold_vs_unet` scores both on a benchmark: the U-Net trained on a real training set with
the SOD trainer, both evaluated by the benchmark protocol (:mod:`synthsod.evaluation.metrics`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from skimage.filters import threshold_otsu

from synthsod.core.images import LUMA
from synthsod.data.datasets import ManifestDataset, image_to_tensor
from synthsod.data.prepare import load_gray, load_image_rgb
from synthsod.evaluation.metrics import SODMetrics
from synthsod.sod.predict import probabilities
from synthsod.sod.train import Recipe, train_sod

REPORTED = ("max_f", "mae", "s_measure", "max_e", "iou")


def otsu_saliency(image: np.ndarray) -> np.ndarray:
    """A binary saliency map (uint8, 0 / 255) of an RGB uint8 image by a global luminance threshold."""
    luminance = image.astype(np.float64) @ np.asarray(LUMA)
    if np.ptp(luminance) == 0:
        return np.zeros(luminance.shape, np.uint8)
    above = luminance > threshold_otsu(luminance)
    border = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
    foreground = above if border.mean() <= 0.5 else ~above
    return foreground.astype(np.uint8) * 255


def _score(maps: list[np.ndarray], manifest: pd.DataFrame) -> dict[str, float]:
    metrics = SODMetrics()
    for pred, (_, row) in zip(maps, manifest.iterrows()):
        metrics.step(pred, load_gray(row["mask"]), name=row["id"])
    results = metrics.results()
    return {key: results[key] for key in REPORTED}


def threshold_vs_unet(
    train_manifest: str,
    test_manifest: str,
    *,
    recipe: Recipe,
    size: int,
    model_options: dict | None = None,
    seed: int = 0,
) -> dict:
    """{"otsu": metrics, "unet": metrics, "train_images", "test_images"} on ``test_manifest``."""
    test = pd.read_parquet(test_manifest)
    images = [load_image_rgb(path) for path in test["image"]]
    otsu = [otsu_saliency(image) for image in images]
    train = ManifestDataset(train_manifest, size)
    model = train_sod(
        "unet",
        "ce",
        train,
        recipe,
        seed=seed,
        model_kwargs=model_options,
        desc="U-Net on real scenes",
    )
    unet = []
    for lo in range(0, len(images), 64):
        batch = torch.stack([image_to_tensor(image, size) for image in images[lo : lo + 64]])
        for image, prob in zip(images[lo : lo + 64], probabilities(model, batch, channel=1)):
            resized = torch.nn.functional.interpolate(
                prob[None], size=image.shape[:2], mode="bilinear", align_corners=False
            )[0, 0]
            unet.append(np.clip(np.rint(resized.numpy() * 255), 0, 255).astype(np.uint8))
    return {
        "otsu": _score(otsu, test),
        "unet": _score(unet, test),
        "train_images": len(train),
        "test_images": len(test),
    }
