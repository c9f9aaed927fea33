"""A prepared real dataset as a PyTorch view, read lazily from disk (:class:`ManifestDataset` over its
manifest.parquet), and the tensor conversions every stage shares.

Images come back as float tensors in [-1, 1] (the generators' range), masks as {0, 1} floats, both
resized to a square ``size`` (area interpolation for images; masks are area-resized, then > 0.5).
"""

from __future__ import annotations

import os

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from synthsod.data.prepare import load_image_rgb, load_mask_binary


def image_to_tensor(image: np.ndarray, size: int) -> torch.Tensor:
    """uint8 HxWx3 -> float [3, size, size] in [-1, 1]."""
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    image = np.require(image, requirements="W")  # a writable copy of read-only (decoded) arrays only
    return torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0)


def mask_to_tensor(mask: np.ndarray, size: int) -> torch.Tensor:
    """bool HxW -> float [1, size, size] in {0, 1}."""
    mask = mask.astype(np.float32)
    if mask.shape != (size, size):
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA)
    return torch.from_numpy((mask > 0.5).astype(np.float32))[None]


class ManifestDataset(Dataset):
    """Items ``{"id", "image": [3,S,S], "mask": [1,S,S]}`` for the rows of a prepared manifest."""

    def __init__(self, manifest: str | os.PathLike | pd.DataFrame, size: int, ids=None):
        frame = manifest if isinstance(manifest, pd.DataFrame) else pd.read_parquet(manifest)
        if ids is not None:
            frame = frame.set_index("id").loc[list(ids)].reset_index()
        self.rows = frame.reset_index(drop=True)
        self.size = size

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict:
        row = self.rows.iloc[index]
        return {
            "id": row["id"],
            "image": image_to_tensor(load_image_rgb(row["image"]), self.size),
            "mask": mask_to_tensor(load_mask_binary(row["mask"]), self.size),
        }
