"""Sample filters of the synthetic data factory: connected components, mask size, histogram, D_q score.

Each filter looks at one generated sample; none depends on other samples of its batch, so what a
run keeps does not depend on how its work was split into jobs and batches.

``drop_small_components``
    E-BigBiGAN's clean-up: foreground pixels are grouped into connected components ("connected by
    edges": 4-connectivity by default) and every component smaller than ``fraction`` x the largest is
    removed. It changes masks and rejects none (an empty mask is left to the size filter).
``mask_size_ok``
    the foreground fraction lies in [``min_fg``, ``max_fg``] (E-BigBiGAN: at most 0.5).
``histogram_ok``
    E-BigBiGAN's contrast test on the grey-scaled shifted image G(z + h): a ``bins``-bin intensity
    histogram over [0, 1], smoothed by a centred moving average of ``window`` bins whose out-of-range
    neighbours repeat the edge bins (so the first and last buckets keep their meaning and their mass),
    is rejected when an interior bucket (neither the first nor the last) is a local maximum.
    Ties: with ``strict=False`` (E-BigBiGAN's code compares with >=) a bucket equal to a neighbour
    counts, so an interior flat run (a plateau, e.g. a uniform histogram) is a maximum and rejects;
    with ``strict=True`` only buckets above both neighbours count. Empty buckets never count: a
    zero run between two modes is a valley, not a peak.
D_q score
    keep a pair when its score is at least ``threshold``. "Keep the top quantile q" is turned into such a
    threshold once per run (:func:`quantile_threshold` on a fixed calibration sample), because a
    quantile taken per batch would make the kept set depend on the batching.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from synthsod.errors import SynthsodError


def drop_small_components(mask: np.ndarray, fraction: float, connectivity: int = 4) -> tuple[np.ndarray, int]:
    """Remove components smaller than ``fraction`` x the largest; returns (mask, components kept)."""
    if connectivity not in (4, 8):
        raise SynthsodError(f"connectivity must be 4 or 8, got {connectivity}")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=connectivity)
    if count <= 1:
        return np.zeros(mask.shape, dtype=bool), 0
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.flatnonzero(areas >= fraction * areas.max()) + 1
    return np.isin(labels, keep), len(keep)


def mask_size_ok(mask: np.ndarray, min_fg: float = 0.0, max_fg: float = 1.0) -> bool:
    """Foreground fraction within [min_fg, max_fg] (both inclusive)."""
    return bool(min_fg <= float(np.mean(mask)) <= max_fg)


def smoothed_histogram(gray: np.ndarray, bins: int = 12, window: int = 3) -> np.ndarray:
    """Normalised ``bins``-bin histogram of ``gray`` (values in [0, 1]), moving-averaged over ``window``."""
    if window < 1 or window % 2 == 0:
        raise SynthsodError(f"histogram window must be a positive odd number, got {window}")
    counts, _ = np.histogram(np.clip(gray, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    hist = counts / max(counts.sum(), 1)
    half = window // 2
    padded = np.pad(hist, half, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def interior_peaks(hist: np.ndarray, strict: bool = False) -> np.ndarray:
    """Indices of the interior local maxima of ``hist`` (module docstring: ties and empty buckets)."""
    h = np.asarray(hist, dtype=np.float64)
    mid, left, right = h[1:-1], h[:-2], h[2:]
    above = (mid > left) & (mid > right) if strict else (mid >= left) & (mid >= right)
    return np.flatnonzero(above & (mid > 0)) + 1


def histogram_ok(gray: np.ndarray, bins: int = 12, window: int = 3, strict: bool = False) -> bool:
    """True when no interior bucket of the smoothed histogram is a local maximum."""
    return interior_peaks(smoothed_histogram(gray, bins, window), strict).size == 0


def quantile_threshold(scores: Sequence[float], keep_top: float) -> float:
    """The score of the ceil(keep_top x n)-th best of ``scores``: ``score >= threshold`` keeps that top
    fraction of them (more only where scores tie at the threshold)."""
    if not 0.0 < keep_top <= 1.0:
        raise SynthsodError(f"D_q keep_top must be in (0, 1], got {keep_top}")
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size == 0:
        raise SynthsodError("no calibration scores to take a D_q quantile from")
    keep = int(np.ceil(keep_top * scores.size - 1e-9))  # 1e-9: 0.2 x 100 must not round up to 21
    return float(np.sort(scores)[scores.size - keep])


__all__ = [
    "drop_small_components",
    "histogram_ok",
    "interior_peaks",
    "mask_size_ok",
    "quantile_threshold",
    "smoothed_histogram",
]
