"""Scribble labels, the weak labels of cooperative saliency's weakly supervised row (S-DUTS).

S-DUTS gives one PNG per DUTS-TR image, named by the image's stem, whose pixels are 1 on a salient-object
scribble, 2 on a background scribble and 0 where nothing is annotated. :class:`ScribbleLabelled` puts
them on a training set's items as partial labels: "mask" is 1 on the salient scribbles, "visible" is 1
on both kinds, at the item's size (the full mask the item carried is dropped). The cooperative trainer
then learns while recovering (Algorithm 2), as it does from simulated points.

Resizing: each kind is area-resized on its own and a pixel is annotated when any scribble of either kind
covers part of it (thin strokes survive shrinking), salient when salient strokes cover at least as much of it
as background ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from synthsod.core.io import png_files_by_stem
from synthsod.errors import SynthsodError

UNKNOWN, SALIENT, BACKGROUND = 0, 1, 2


def dataset_ids(data: Dataset) -> list[str]:
    """The item ids of ``data`` in order: read from the manifest of prepared datasets (no image is decoded),
    through wrappers that keep their ``data``'s items in order (label noise, say), from the items otherwise."""
    if isinstance(data, ConcatDataset):
        return [i for part in data.datasets for i in dataset_ids(part)]
    inner = getattr(data, "data", None)
    if isinstance(inner, Dataset) and len(inner) == len(data):
        return dataset_ids(inner)
    rows = getattr(data, "rows", None)
    if rows is not None and "id" in rows:
        return [str(i) for i in rows["id"]]
    return [str(data[i]["id"]) for i in range(len(data))]


def scribble_files(folder: str | os.PathLike, ids: list[str]) -> dict[str, Path]:
    """``{id: folder/<id>.png}`` for every training image id (one error naming the missing stems)."""
    return png_files_by_stem(folder, ids, "scribble label", "training images")


def read_scribble(path: str | os.PathLike, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, visible), float32 {0, 1} [size, size], of one scribble file (module docstring)."""
    scribble = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if scribble is None:
        raise SynthsodError(f"{path}: not a readable PNG of scribble labels")
    values = set(np.unique(scribble).tolist())
    if not values <= {UNKNOWN, SALIENT, BACKGROUND}:
        raise SynthsodError(
            f"{path}: scribble labels are 0 (unknown), 1 (salient) and 2 (background), found {sorted(values)}"
        )
    cover = [
        cv2.resize((scribble == kind).astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
        for kind in (SALIENT, BACKGROUND)
    ]
    visible = (cover[0] + cover[1]) > 0
    labels = visible & (cover[0] >= cover[1])
    return labels.astype(np.float32), visible.astype(np.float32)


class ScribbleLabelled(Dataset):
    """``data``'s items with "mask" and "visible" from their scribble files (module docstring); every id's
    file is checked when the set is built."""

    def __init__(self, data: Dataset, folder: str | os.PathLike):
        self.data = data
        self.files = scribble_files(folder, dataset_ids(data))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.data[index])
        labels, visible = read_scribble(self.files[str(item["id"])], item["mask"].shape[-1])
        item["mask"], item["visible"] = torch.from_numpy(labels)[None], torch.from_numpy(visible)[None]
        return item


__all__ = ["ScribbleLabelled", "dataset_ids", "read_scribble", "scribble_files"]
