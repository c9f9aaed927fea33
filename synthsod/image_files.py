"""Writing image files: one encoder for JPEG images and PNG masks, written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .io import write_bytes_atomic


def write_image(path: str | Path, array: np.ndarray, params: list[int] | None = None) -> None:
    """Encode RGB [H, W, 3] or gray [H, W] uint8 by the file's suffix (cv2 ``params``), atomically."""
    path = Path(path)
    bgr = array[..., ::-1] if array.ndim == 3 else array
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(bgr), params or [])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())
