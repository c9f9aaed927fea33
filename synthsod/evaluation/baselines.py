"""Untrained saliency baselines, evaluated beside the trained models (config ``baselines:``).

:func:`otsu_saliency` thresholds an image's luminance at its Otsu level and calls foreground the side
that covers less of the image border (objects rarely touch the border, backgrounds do). A dataset on which
this scores close to a trained segmenter is one a colour threshold solves, and proves little.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from skimage.filters import threshold_otsu

from synthsod.core.images import LUMA
from synthsod.core.io import write_bytes_atomic
from synthsod.core.progress import progress
from synthsod.data.prepare import load_image_rgb
from synthsod.errors import SynthsodError


def otsu_saliency(image: np.ndarray) -> np.ndarray:
    """A binary saliency map (uint8, 0 / 255) of an RGB uint8 image by a global luminance threshold."""
    luminance = image.astype(np.float64) @ np.asarray(LUMA)
    if np.ptp(luminance) == 0:
        return np.zeros(luminance.shape, np.uint8)
    above = luminance > threshold_otsu(luminance)
    border = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
    foreground = above if border.mean() <= 0.5 else ~above
    return foreground.astype(np.uint8) * 255


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {"otsu": otsu_saliency}


def write_baseline_predictions(name: str, manifest: pd.DataFrame, out_dir: str | os.PathLike) -> int:
    """``out_dir/<id>.png``: baseline ``name``'s map of every manifest image at its own size; the count."""
    if name not in BASELINES:
        raise SynthsodError(f"unknown baseline '{name}'; choose one of {', '.join(BASELINES)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample_id, path in progress(zip(manifest["id"], manifest["image"]), total=len(manifest), desc=name):
        _, png = cv2.imencode(".png", BASELINES[name](load_image_rgb(path)))
        write_bytes_atomic(out_dir / f"{sample_id}.png", png.tobytes())
    return len(manifest)


__all__ = ["BASELINES", "otsu_saliency", "write_baseline_predictions"]
