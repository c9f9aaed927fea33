"""Latent sampling for class-conditional GANs: class selection and per-sample deterministic noise.

Sample ``i`` of a run draws its latent and class from a generator seeded by ``(seed, i)`` alone, so
the result does not depend on batch size, shard split or the order in which jobs run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from synthsod.core.prior import truncated_normal
from synthsod.errors import SynthsodError

# BigGAN's truncation trick samples z from a standard normal truncated to [-2, 2], scaled by the truncation.

ClassItem = int | str  # an id (7) or an inclusive range ("151-294")


def _expand(items: Iterable[ClassItem], num_classes: int, what: str) -> set[int]:
    ids: set[int] = set()
    for item in items:
        match = None if isinstance(item, bool) else re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(item))
        if match is None:
            raise SynthsodError(f"classes.{what}: {item!r} is not a class id or a range 'a-b'")
        lo = int(match[1])
        hi = int(match[2]) if match[2] is not None else lo
        if lo > hi:
            raise SynthsodError(f"classes.{what}: {item!r} is an empty range (write 'low-high')")
        if hi >= num_classes:
            raise SynthsodError(f"classes.{what}: {item!r} is not within 0..{num_classes - 1}")
        ids.update(range(lo, hi + 1))
    return ids


def resolve_classes(spec: dict | None, num_classes: int) -> np.ndarray:
    """Sorted class ids selected by ``{"include": "all" | [ids / "a-b" ranges], "discard": [...]}``."""
    spec = spec or {}
    include = spec.get("include", "all")
    chosen = set(range(num_classes)) if include == "all" else _expand(include, num_classes, "include")
    chosen -= _expand(spec.get("discard", []), num_classes, "discard")
    if not chosen:
        raise SynthsodError("classes: the include and discard lists leave no class to sample")
    return np.array(sorted(chosen), dtype=np.int64)


@dataclass
class LatentSource:
    """Draws (z, class) for sample indices; row ``i`` depends only on ``(seed, i)``.

    ``table`` None: the prior, ``truncation`` x the truncated normal (a plain standard normal when
    ``truncation`` is None, as BigBiGAN samples), with a class drawn uniformly from ``classes`` (None:
    unconditional), or with ``cycle`` sample ``i`` of class ``classes[i mod K]``: every class equally
    often, as SODGAN's released sampler loops over its 623 kept classes 20 times. Otherwise a uniformly
    chosen row of the latent ``table`` [M, z_dim] (with its ``table_classes``) plus ``alpha`` x N(0, I),
    E-BigBiGAN's sampling near the data.
    """

    seed: int
    z_dim: int
    truncation: float | None = None
    classes: np.ndarray | None = None
    table: np.ndarray | None = None
    table_classes: np.ndarray | None = None
    alpha: float = 0.2
    cycle: bool = False

    def __post_init__(self):
        if self.table is not None:
            self.table = np.asarray(self.table, dtype=np.float32)
            if self.table.ndim != 2 or self.table.shape[1] != self.z_dim or len(self.table) == 0:
                raise SynthsodError(f"latent table has shape {self.table.shape}, expected [M>0, {self.z_dim}]")
        elif self.classes is not None and len(self.classes) == 0:
            raise SynthsodError("no classes to sample from")

    @property
    def conditional(self) -> bool:
        return (self.classes if self.table is None else self.table_classes) is not None

    def draw(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        """Latents [N, z_dim] float32 and class ids [N] (None when unconditional)."""
        z = np.empty((len(indices), self.z_dim), dtype=np.float32)
        ids = np.empty(len(indices), dtype=np.int64) if self.conditional else None
        for row, index in enumerate(indices):
            rng = np.random.default_rng([int(self.seed), int(index)])
            if self.table is None:
                z[row] = (
                    rng.standard_normal(self.z_dim)
                    if self.truncation is None
                    else self.truncation * truncated_normal(rng, self.z_dim)
                )
                if ids is not None:
                    pick = int(index) % len(self.classes) if self.cycle else rng.integers(len(self.classes))
                    ids[row] = self.classes[pick]
            else:
                pick = rng.integers(len(self.table))
                z[row] = self.table[pick] + self.alpha * rng.standard_normal(self.z_dim)
                if ids is not None:
                    ids[row] = self.table_classes[pick]
        return z, ids


def restrict_table(
    table: np.ndarray, table_classes: np.ndarray | None, classes: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The rows of a latent table whose class is among ``classes`` (all rows when either is None)."""
    if table_classes is None or classes is None:
        return table, table_classes
    keep = np.isin(table_classes, classes)
    if not keep.any():
        raise SynthsodError("no inverted latent has one of the classes the run allows")
    return table[keep], table_classes[keep]


def sample_latents(
    seed: int, indices: Sequence[int], z_dim: int, truncation: float, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Latents ``z`` [N, z_dim] (float32, truncated normal times ``truncation``) and class ids [N].

    Each row depends only on ``(seed, index)``.
    """
    return LatentSource(seed, z_dim, truncation, np.asarray(classes)).draw(indices)
