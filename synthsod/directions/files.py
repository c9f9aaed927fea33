"""Direction files: one direction as a .npy vector [z_dim], many as a .npy matrix [K, z_dim].

Numpy only (BigBiGAN's TensorFlow env has no torch); every reader names the file and the fault.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np

from synthsod.core.io import write_bytes_atomic
from synthsod.errors import SynthsodError


def load_direction(path: str | os.PathLike) -> np.ndarray:
    """A direction file: a .npy holding one float vector [z_dim] (or [1, z_dim])."""
    try:
        direction = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SynthsodError(f"{path}: cannot read the direction ({err})") from None
    if direction.ndim == 2 and direction.shape[0] == 1:
        direction = direction[0]
    if direction.ndim != 1 or not np.issubdtype(direction.dtype, np.floating):
        raise SynthsodError(f"{path}: a direction must be one float vector, got {direction.dtype} {direction.shape}")
    return direction.astype(np.float32)


def check_direction_matrix(path: str | os.PathLike, matrix: Any, z_dim: int | None = None) -> np.ndarray:
    """A matrix of directions [K, z_dim] as float32, or a SynthsodError naming ``path`` and the fault."""
    if not isinstance(matrix, np.ndarray) or matrix.ndim != 2 or 0 in matrix.shape:
        shape = getattr(matrix, "shape", type(matrix).__name__)
        raise SynthsodError(f"{path}: directions must be a matrix [K, z_dim], got shape {shape}")
    if not np.issubdtype(matrix.dtype, np.floating):
        raise SynthsodError(f"{path}: directions must be floats, got {matrix.dtype}")
    if z_dim is not None and matrix.shape[1] != z_dim:
        raise SynthsodError(f"{path}: directions have {matrix.shape[1]} dimensions, the generator's latent {z_dim}")
    if not np.isfinite(matrix).all():
        raise SynthsodError(f"{path}: directions contain NaN or infinite values")
    zero = np.flatnonzero(np.linalg.norm(matrix.astype(np.float64), axis=1) == 0)
    if len(zero):
        raise SynthsodError(f"{path}: direction rows {zero[:5].tolist()} are zero")
    return matrix.astype(np.float32)


def load_direction_matrix(path: str | os.PathLike, z_dim: int | None = None) -> np.ndarray:
    """Directions [K, z_dim] float32 from a ``.npy`` matrix (numpy only: BigBiGAN's env has no torch)."""
    if Path(path).suffix.lower() != ".npy":
        raise SynthsodError(f"{path}: directions must be a .npy matrix [K, z_dim] (or the discovery's .pt)")
    try:
        matrix = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise SynthsodError(f"{path}: cannot read directions ({type(err).__name__}: {err})") from None
    return check_direction_matrix(path, matrix, z_dim)


def save_direction(path: str | os.PathLike, direction: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(direction, dtype=np.float32).reshape(-1), allow_pickle=False)
    write_bytes_atomic(path, buffer.getvalue())
