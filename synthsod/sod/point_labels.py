"""Sparse annotations: a few labelled pixels per image and the visibility masks they give.

A point-labelled training set keeps the full masks on disk but lets a trainer read them only where
``visible`` is 1: small disks around ``count`` random points per image. The points are drawn from
(seed, image id) and the image size alone, never from the mask, so what the trainer may see does not
depend on the labels it must not see. This simulates point annotation from a fully labelled dataset,
as ATAL does for its initial points.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from synthsod.errors import SynthsodError


def id_rng(seed: int, sample_id: str) -> np.random.Generator:
    """A generator seeded by (seed, id) only: stable across processes (unlike ``hash``)."""
    return np.random.default_rng([int(seed), zlib.crc32(str(sample_id).encode())])


def random_points(shape: tuple[int, int], count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct pixels [count, 2] (row, col) drawn uniformly from an image of ``shape``."""
    h, w = shape
    if not 0 < count <= h * w:
        raise SynthsodError(f"cannot draw {count} distinct points in a {h}x{w} image")
    flat = rng.choice(h * w, size=count, replace=False)
    return np.stack([flat // w, flat % w], axis=1)


def point_visibility(shape: tuple[int, int], points: np.ndarray, radius: int) -> np.ndarray:
    """float32 {0, 1} map of ``shape``: 1 within ``radius`` pixels of a point (radius 0: the points alone)."""
    visible = np.zeros(shape, np.uint8)
    for row, col in points:
        cv2.circle(visible, (int(col), int(row)), int(radius), 1, thickness=-1)
    return visible.astype(np.float32)


class PointLabelled(Dataset):
    """``data``'s items plus "visible" [1, S, S]: disks of ``radius`` around ``count`` random points."""

    def __init__(self, data: Dataset, count: int, radius: int = 1, seed: int = 0):
        self.data, self.count, self.radius, self.seed = data, count, radius, seed

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.data[index])
        shape = tuple(item["mask"].shape[1:])
        points = random_points(shape, self.count, id_rng(self.seed, item["id"]))
        item["visible"] = torch.from_numpy(point_visibility(shape, points, self.radius))[None]
        return item


__all__ = ["PointLabelled", "id_rng", "point_visibility", "random_points"]
