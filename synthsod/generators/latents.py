"""Latent sampling for class-conditional GANs: class selection and per-sample deterministic noise.

Sample ``i`` of a run draws its latent and class from a generator seeded by ``(seed, i)`` alone, so
the result does not depend on batch size, shard split or the order in which jobs run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import SynthsodError

# BigGAN's truncation trick samples z from a standard normal truncated to [-2, 2], scaled by the truncation.
TRUNCNORM_BOUND = 2.0

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


def _truncated_normal(rng: np.random.Generator, size: int) -> np.ndarray:
    # Rejection sampling: redraw values outside the bound; draws are consumed in a fixed order.
    x = rng.standard_normal(size)
    out_of_bound = np.abs(x) > TRUNCNORM_BOUND
    while out_of_bound.any():
        x[out_of_bound] = rng.standard_normal(int(out_of_bound.sum()))
        out_of_bound = np.abs(x) > TRUNCNORM_BOUND
    return x


def sample_latents(
    seed: int, indices: Sequence[int], z_dim: int, truncation: float, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Latents ``z`` [N, z_dim] (float32, truncated normal times ``truncation``) and class ids [N].

    Each row depends only on ``(seed, index)``.
    """
    if len(classes) == 0:
        raise SynthsodError("no classes to sample from")
    z = np.empty((len(indices), z_dim), dtype=np.float32)
    ids = np.empty(len(indices), dtype=np.int64)
    for row, index in enumerate(indices):
        rng = np.random.default_rng([int(seed), int(index)])
        z[row] = truncation * _truncated_normal(rng, z_dim)
        ids[row] = classes[rng.integers(len(classes))]
    return z, ids
