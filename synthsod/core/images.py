"""Image helpers: grey levels, float-to-uint8 conversion, and image files written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from synthsod.core.io import write_bytes_atomic


def write_image(path: str | Path, array: np.ndarray, params: list[int] | None = None) -> None:
    """Encode RGB [H, W, 3] or gray [H, W] uint8 by the file's suffix (cv2 ``params``), atomically."""
    path = Path(path)
    bgr = array[..., ::-1] if array.ndim == 3 else array
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(bgr), params or [])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())


LUMA = np.array([0.2989, 0.587, 0.114])  # the grey scale of E-BigBiGAN's mask rule and histogram filter


def to_gray(images: np.ndarray) -> np.ndarray:
    """uint8 [..., H, W, 3] RGB -> float [..., H, W] grey level in [0, 1]."""
    return (images.astype(np.float64) @ LUMA) / 255.0


def to_uint8_nhwc(images: np.ndarray) -> np.ndarray:
    """Float images [N, H, W, 3] in [-1, 1] -> uint8 [N, H, W, 3]."""
    return np.clip(np.rint((np.asarray(images, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def nhwc_gray(images: np.ndarray) -> np.ndarray:
    """Float images [N, H, W, 3] in [-1, 1] -> grey level [N, H, W] in [0, 1] (E-BigBiGAN's weights)."""
    return to_gray((np.clip(np.asarray(images, np.float64), -1.0, 1.0) + 1.0) * 127.5)
