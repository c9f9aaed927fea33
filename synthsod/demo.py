"""The demo world: a closed, download-free stand-in for DUTS built from the tiny generator.

Each "real" image is a sample of the tiny generator; its mask is a fixed function of that image:

1. luminance ``Y = 0.2989 R + 0.587 G + 0.114 B`` of the 8-bit image;
2. Gaussian smoothing with ``blur_sigma`` pixels;
3. foreground = pixels above the Otsu threshold of the smoothed luminance (``threshold: null``, the
   default), or above a fixed grey level ``threshold`` (a purely local rule);
4. connected components (8-connectivity) smaller than ``keep_component_fraction`` x the largest are dropped.

A sample whose mask covers less than ``min_fg`` or more than ``max_fg`` of the image is skipped (the
next index is tried), so every demo mask is a plausible salient object. Because the mask is a function
of the generated image, which is a function of the generator's hidden features, a mask generator on
those features can learn it: the demo proves that each stage learns, not the paper's numbers.

Images are written as JPEG and masks as 0/255 PNG in DUTS layout, so the demo goes through
exactly the same ``prepare_dataset`` path as DUTS-TR.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from skimage.filters import threshold_otsu

from .generators import BigGANGenerator, resolve_classes, sample_latents
from .io import atomic_path

LUMA = np.array([0.2989, 0.587, 0.114])


@dataclass(frozen=True)
class MaskRule:
    blur_sigma: float = 2.0
    threshold: float | None = None
    keep_component_fraction: float = 0.2
    min_fg: float = 0.05
    max_fg: float = 0.6


def to_uint8(images) -> np.ndarray:
    """Generator output [N, 3, H, W] in [-1, 1] (tensor or array) -> uint8 [N, H, W, 3]."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=np.float32)
    return np.clip(np.rint((x.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def keep_large_components(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Drop 8-connected components smaller than ``fraction`` x the largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros_like(mask, dtype=bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= fraction * areas.max()) + 1
    return np.isin(labels, keep)


def demo_mask(image: np.ndarray, rule: MaskRule) -> np.ndarray:
    """The demo's ground-truth rule (module docstring) on one uint8 HxWx3 image -> bool HxW."""
    luminance = image.astype(np.float64) @ LUMA
    smooth = cv2.GaussianBlur(luminance, ksize=(0, 0), sigmaX=rule.blur_sigma, borderType=cv2.BORDER_REFLECT)
    if rule.threshold is not None:
        foreground = smooth > rule.threshold
    elif np.ptp(smooth) == 0:
        return np.zeros(smooth.shape, dtype=bool)
    else:
        foreground = smooth > threshold_otsu(smooth)
    return keep_large_components(foreground, rule.keep_component_fraction)


def write_demo_split(generator: BigGANGenerator, images_dir: str | Path, masks_dir: str | Path, *, size: int,
                     first_index: int, seed: int, truncation: float, classes: dict | None, rule: MaskRule,
                     jpeg_quality: int = 90, batch_size: int = 16, max_tries_per_image: int = 20) -> int:
    """Write ``size`` image/mask pairs ``demo_{index}.jpg/.png`` in DUTS layout; return how many were tried."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        shutil.rmtree(folder, ignore_errors=True)  # a rerun replaces the split whole
        folder.mkdir(parents=True)
    class_ids = resolve_classes(classes, generator.num_classes)
    written, index = 0, first_index
    limit = first_index + size * max_tries_per_image
    while written < size:
        if index >= limit:
            raise RuntimeError(f"demo mask rule kept {written} of {index - first_index} samples: loosen demo.mask")
        indices = list(range(index, min(index + batch_size, limit)))
        index = indices[-1] + 1
        z, ids = sample_latents(seed, indices, generator.z_dim, truncation, class_ids)
        images = to_uint8(generator.generate(z, ids, truncation, with_features=False).images)
        for i, image in zip(indices, images):
            mask = demo_mask(image, rule)
            if written == size or not rule.min_fg <= mask.mean() <= rule.max_fg:
                continue
            name = f"demo_{i:07d}"
            _write_image(images_dir / f"{name}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            _write_image(masks_dir / f"{name}.png", mask.astype(np.uint8) * 255, [])
            written += 1
    return index - first_index


def _write_image(path: Path, array: np.ndarray, params: list[int]) -> None:
    bgr = array[..., ::-1] if array.ndim == 3 else array
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(bgr), params)
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())
