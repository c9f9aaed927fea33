"""Latent tables: one latent per real image, the format the DEN's inversion and BigBiGAN's encoder write.

Columns: ``id`` (str, the image's id in its prepared manifest; for BigBiGAN's image-only sources, its path
relative to the source folder) and ``z`` (float32 list [z_dim]); the DEN's
``latents.parquet`` adds ``image`` / ``mask`` (paths), ``class`` (int), ``truncation`` (float),
``recon_error`` and ``encoder_error`` (float); BigBiGAN's ``embeddings.parquet`` has only ``id`` and ``z``.
This module is the one writer and reader (pyarrow and numpy only: BigBiGAN's env has no torch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from synthsod.core.io import atomic_path
from synthsod.errors import SynthsodError

REQUIRED = ("id", "z")


def write_latent_table(path: str | os.PathLike, ids, z: np.ndarray, **columns: Any) -> None:
    """Write ids [N], latents ``z`` [N, z_dim] and any further per-row ``columns`` (each [N]), atomically."""
    z = np.asarray(z, dtype=np.float32)
    if z.ndim != 2 or len(z) != len(ids):
        raise SynthsodError(f"{path}: latents must be [N={len(ids)}, z_dim], got {z.shape}")
    data: dict[str, Any] = {
        "id": pa.array([str(i) for i in ids], type=pa.string()),
        "z": pa.array(list(z), type=pa.list_(pa.float32())),
    }
    for name, values in columns.items():
        if len(values) != len(ids):
            raise SynthsodError(f"{path}: column {name} has {len(values)} rows, the table {len(ids)}")
        data[name] = pa.array(np.asarray(values).tolist() if isinstance(values, np.ndarray) else list(values))
    with atomic_path(path) as tmp:
        pq.write_table(pa.table(data), tmp)


def read_latent_table(path: str | os.PathLike, columns: list[str] | None = None) -> pd.DataFrame:
    """The table as a DataFrame (``z`` as float32 arrays); a SynthsodError names a file that is not one."""
    try:
        frame = pd.read_parquet(path, columns=None if columns is None else list(dict.fromkeys([*REQUIRED, *columns])))
    except (OSError, ValueError, pa.ArrowException) as err:
        raise SynthsodError(f"{path}: cannot read the latent table ({err})") from None
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing or frame.empty:
        raise SynthsodError(f"{path}: a latent table needs rows and the columns {', '.join(REQUIRED)}")
    frame["z"] = [np.asarray(z, dtype=np.float32) for z in frame["z"]]
    return frame


def latent_arrays(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """``z`` [N, z_dim] float32 and class ids [N] (None without a ``class`` column) of a table's rows."""
    z = np.stack(rows["z"].to_numpy()).astype(np.float32) if len(rows) else np.zeros((0, 0), np.float32)
    classes = rows["class"].to_numpy().astype(np.int64) if "class" in rows.columns else None
    return z, classes


def table_truncation(rows: pd.DataFrame) -> float | None:
    """The truncation the latents were inverted at (DEN tables), or None."""
    return float(rows["truncation"].iloc[0]) if "truncation" in rows.columns else None


def class_map(rows: pd.DataFrame) -> Mapping[str, int]:
    """id -> class of a table with classes."""
    return dict(zip(rows["id"], rows["class"].astype(int)))
