"""Dataset statistics of SODGAN's Fig. 5, for a synthetic run against a real dataset.

Per image pair (uint8 RGB image, boolean mask, optional class id):

* **centre bias**: the mask resized to ``grid`` x ``grid`` (area interpolation) and averaged over the
  dataset: the probability that each relative position is salient;
* **object size**: the foreground fraction of the mask;
* **colour contrast**: the chi-square distance between the colour histograms of the foreground and
  the background (``bins`` per RGB channel, each histogram normalised to sum 1):
  ``0.5 * sum((f - b)^2 / (f + b))``, 0 for identical colour distributions and 1 for disjoint ones.
  SODGAN does not define its measure; this is the usual one of SOD dataset analyses. Images whose
  mask is empty or full have no contrast (NaN) and are left out of the histogram;
* **class distribution**: how many images each class id holds (synthetic: the class BigGAN was
  conditioned on; real: a class the caller supplies, e.g. the DEN's inferred class), when known.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np

from synthsod.core.progress import progress


def colour_contrast(image: np.ndarray, mask: np.ndarray, bins: int = 8) -> float:
    """Chi-square distance in [0, 1] between foreground and background RGB histograms (NaN if one is empty)."""
    fg, bg = image[mask], image[~mask]
    if len(fg) == 0 or len(bg) == 0:
        return float("nan")
    edges = [np.linspace(0, 256, bins + 1)] * 3
    f = np.histogramdd(fg.reshape(-1, 3), bins=edges)[0].ravel()
    b = np.histogramdd(bg.reshape(-1, 3), bins=edges)[0].ravel()
    f, b = f / f.sum(), b / b.sum()
    total = f + b
    used = total > 0
    return float(0.5 * np.sum((f[used] - b[used]) ** 2 / total[used]))


@dataclass
class DatasetStats:
    """The statistics of one dataset; :meth:`add` one pair at a time."""

    name: str
    grid: int = 64
    bins: int = 8
    count: int = 0
    centre_sum: np.ndarray = field(init=False)
    sizes: list[float] = field(default_factory=list)
    contrasts: list[float] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.centre_sum = np.zeros((self.grid, self.grid))

    def add(self, image: np.ndarray, mask: np.ndarray, class_id: int | None = None) -> None:
        mask = np.asarray(mask, bool)
        small = cv2.resize(mask.astype(np.float32), (self.grid, self.grid), interpolation=cv2.INTER_AREA)
        self.centre_sum += small
        self.sizes.append(float(mask.mean()))
        self.contrasts.append(colour_contrast(image, mask, self.bins))
        if class_id is not None:
            self.classes.append(int(class_id))
        self.count += 1

    @property
    def centre(self) -> np.ndarray:
        """Mean mask on the grid (zeros for an empty dataset)."""
        return self.centre_sum / max(self.count, 1)

    def class_counts(self) -> np.ndarray:
        """Images per class, largest first (empty when no class is known)."""
        if not self.classes:
            return np.zeros(0, int)
        return np.sort(np.unique(self.classes, return_counts=True)[1])[::-1]

    def summary(self) -> dict:
        contrasts = np.asarray(self.contrasts, float)
        centre = self.centre
        ys, xs = np.mgrid[0 : self.grid, 0 : self.grid] + 0.5
        mass = centre.sum()
        return {
            "images": self.count,
            "mean_object_size": float(np.mean(self.sizes)) if self.sizes else None,
            "mean_colour_contrast": float(np.nanmean(contrasts)) if np.isfinite(contrasts).any() else None,
            # centroid of the mean mask in [0, 1] image coordinates (0.5, 0.5: centred)
            "centre_of_mass": [
                float((xs * centre).sum() / mass / self.grid),
                float((ys * centre).sum() / mass / self.grid),
            ]
            if mass > 0
            else None,
            "classes": len(set(self.classes)) if self.classes else None,
        }


def collect(
    name: str,
    pairs: Iterable[tuple[np.ndarray, np.ndarray, int | None]],
    *,
    grid: int = 64,
    bins: int = 8,
    limit: int | None = None,
) -> DatasetStats:
    """Statistics of the first ``limit`` (all when None) (image, mask, class) pairs."""
    stats = DatasetStats(name, grid, bins)
    with progress(desc=f"{name} statistics", unit="pair") as bar:  # the count is known at the end only
        for image, mask, class_id in pairs:
            if limit is not None and stats.count >= limit:
                break
            stats.add(image, mask, class_id)
            bar.update()
    return stats


__all__ = ["DatasetStats", "collect", "colour_contrast"]
