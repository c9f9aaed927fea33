"""A synthetic run's Parquet shards as a PyTorch view (:class:`ShardDataset`), and the training set of a
SOD training: runs and prepared datasets concatenated (:func:`training_set`), optionally with the CAS
paper's low-fidelity labels (``sod.<name>.train.label_noise``, :mod:`synthsod.sod.label_noise`).

Images come back as float tensors in [-1, 1] (the generators' range), masks as {0, 1} floats, both
resized to a square ``size`` (area interpolation for images; masks are area-resized, then > 0.5).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from torch.utils.data import ConcatDataset, Dataset

from synthsod.data.datasets import ManifestDataset, image_to_tensor, mask_to_tensor
from synthsod.errors import SynthsodError
from synthsod.sod.label_noise import LabelNoise, with_label_noise
from synthsod.synthesis.shards import decode_row, load_manifest, read_shard, verify_run

# --- synthetic runs (Parquet shards) ----------------------------------------------------------------------------


class ShardDataset(Dataset):
    """Items ``{"id", "image": [3,S,S] in [-1,1], "mask": [1,S,S] in {0,1}}`` over a run's rows.

    Rows come in manifest order. Only one shard is held in memory (the last one read), so read
    in order or shuffle within shards; a fully random order re-reads a shard per item. ``size``
    resizes to SxS (default: the images' own size, which must then be square). ``verify`` checks
    shard hashes, counts, schema and id uniqueness first (not pixel decoding).
    """

    def __init__(self, run_dir: str | os.PathLike, *, size: int | None = None, verify: bool = True):
        self.run_dir = Path(run_dir)
        if verify:
            verify_run(self.run_dir, decode=False)
        entries = load_manifest(self.run_dir)["shards"]
        self.shards = [entry["file"] for entry in entries]
        self._starts = [0, *np.cumsum([entry["rows"] for entry in entries]).tolist()]  # row offsets
        self.size = size
        self._cached: tuple[int, pa.Table] | None = None

    def __len__(self) -> int:
        return self._starts[-1]

    def _table(self, shard: int) -> pa.Table:
        if self._cached is None or self._cached[0] != shard:
            self._cached = (shard, read_shard(self.run_dir / self.shards[shard]))
        return self._cached[1]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} rows")
        shard = bisect.bisect_right(self._starts, index) - 1
        table = self._table(shard)
        row = decode_row(table.slice(index - self._starts[shard], 1).to_pylist()[0])
        image, mask = row["image"], row["mask"]
        size = self.size
        if size is None:
            if image.shape[0] != image.shape[1]:
                raise SynthsodError(f"sample {row['id']!r}: image is not square; pass size=")
            size = image.shape[0]
        return {
            "id": row["id"],
            "image": image_to_tensor(image, size),
            "mask": mask_to_tensor(mask, size),
        }


def training_set(
    run_manifests: list[str | os.PathLike],
    dataset_manifests: list[str | os.PathLike],
    size: int,
    label_noise: LabelNoise | Mapping[str, Any] | None = None,
) -> Dataset:
    """The pairs of a SOD training: synthetic runs (their manifest.json paths) and prepared real datasets
    (their manifest.parquet paths), concatenated, at ``size``; with ``label_noise`` (the training's
    ``train.label_noise``: flip_probability, fraction, regions, seed) the masks of a seeded share of the
    images get wrong region labels (:class:`synthsod.sod.label_noise.NoisyLabels`, seeded by image id)."""
    parts: list[Dataset] = [ShardDataset(Path(m).parent, size=size) for m in run_manifests]
    parts += [ManifestDataset(pd.read_parquet(m), size) for m in dataset_manifests]
    return with_label_noise(ConcatDataset(parts), label_noise)
