"""E-BigBiGAN's direction-shift masks: a pixel is foreground when the shifted image is brighter there.

With ``h`` the direction scaled to norm ``shift``, the mask compares the grey level of ``G(z + h)`` with
that of ``G(z)`` (``compare: base``) or with its own mean (``compare: mean``).
"""

from __future__ import annotations

import numpy as np

from synthsod.errors import SynthsodError

COMPARISONS = ("base", "mean")


def unit_shift(direction: np.ndarray, shift: float) -> np.ndarray:
    """``direction`` rescaled to norm ``shift`` (float32)."""
    direction = np.asarray(direction, dtype=np.float64).reshape(-1)
    norm = np.linalg.norm(direction)
    if not np.isfinite(norm) or norm == 0:
        raise SynthsodError("the direction vector is zero or not finite")
    return (direction * (shift / norm)).astype(np.float32)


def check_comparison(compare: str) -> None:
    if compare not in COMPARISONS:
        raise SynthsodError(f"unknown comparison {compare!r}; choose one of {', '.join(COMPARISONS)}")


def shift_masks(gray_shifted: np.ndarray, gray_base: np.ndarray | None, compare: str = "base") -> np.ndarray:
    """E-BigBiGAN's masks [N, H, W] bool: shifted grey level above the base image's, or above its mean."""
    check_comparison(compare)
    if compare == "mean":
        return gray_shifted > gray_shifted.mean(axis=(-2, -1), keepdims=True)
    if gray_base is None:
        raise SynthsodError("compare: base needs the unshifted images")
    return gray_shifted > gray_base
