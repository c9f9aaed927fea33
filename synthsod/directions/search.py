"""Automatic search for a segmenting latent direction (E-BigBiGAN, appendix B).

A direction h segments when the shift acts on every pixel as one of two fixed affine colour maps,
``G(z + h)[x, y] = A_i(x, y)(G(z)[x, y])`` with ``i`` in {1, 2}. For each candidate direction, scaled to
norm ``scale`` (5: unit shifts barely change the image), we fit the pair by minimising the
restoration loss

    L_h = mean over pixels of  min_i || A_i(c) - c' ||²      (c = G(z)[x, y], c' = G(z + h)[x, y], in [0, 1])

with Adam on mini-batches of images (24 parameters: a 3x3 matrix and a bias per operator). A pixel's
class is the operator that restores it better. Two scores then rank the directions:

- ``distance`` D_h, the mean over pixels of || A_1(c) - A_2(c) ||: near 0 when one operator would do
  (uniform lighting), high for a real split;
- ``restoration_loss`` L_h: low when two affine maps explain the shift.

A direction whose pixels fall ≥ ``discard_share`` (99 %) into one class is discarded (one operator
did all the work, so its mask is empty). Of the rest, the ``top_fraction`` (20 %) with the highest
D_h are shortlisted and ordered by L_h; the first ``top`` (10) get ranks and rank 1 is chosen.

Our choices where the appendix is silent: losses are means over pixels, not sums (independent of the
resolution); every direction is scored on the same pool of latents (``samples``), which the
mini-batches are drawn from; the fit starts from the best single affine map split in two along the
main axis of its residuals, biased +/- one residual standard deviation (a deterministic start that
already separates brightened from darkened pixels); the chosen direction is signed so that its
shift brightens less than half of the image, as E-BigBiGAN's mask ``gray(G(z + h)) > gray(G(z))``
expects of a salient object.

Everything here is numpy, so BigBiGAN's TensorFlow environment runs the same search; ``render(z,
class_ids)`` returns float images [N, H, W, 3] in [-1, 1], as the sampling runs use it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from synthsod.core.images import nhwc_gray, to_uint8_nhwc
from synthsod.core.io import atomic_path
from synthsod.core.progress import progress
from synthsod.directions.files import load_direction_matrix
from synthsod.directions.shift import shift_masks, unit_shift
from synthsod.errors import SynthsodError

Render = Callable[[np.ndarray, np.ndarray | None], np.ndarray]
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RENDER_CHUNK = 8  # latents per generator call
FIT_INIT_PIXELS = 200_000  # pixels of the pool the least-squares start is fitted on
RANKING_COLUMNS = ["direction", "restoration_loss", "distance", "share", "discarded", "top_distance", "rank", "chosen"]


@dataclass(frozen=True)
class SearchConfig:
    scale: float = 5.0  # the norm each direction is scaled to
    samples: int = 16  # latents in the pool every direction is scored on
    batch_size: int = 4  # images per Adam step
    steps: int = 200
    lr: float = 0.005
    discard_share: float = 0.99  # discard a direction with this share of pixels in one class
    top_fraction: float = 0.2  # shortlist this fraction of the kept directions by D_h ...
    top: int = 10  # ... and rank the first `top` of them by L_h
    figure_samples: int = 4  # columns of each shortlisted direction's picture
    seed: int = 0

    def __post_init__(self):
        checks = {
            "scale": self.scale > 0,
            "samples": self.samples >= 1,
            "batch_size": self.batch_size >= 1,
            "steps": self.steps >= 0,
            "lr": self.lr > 0,
            "discard_share": 0.5 < self.discard_share <= 1,
            "top_fraction": 0 < self.top_fraction <= 1,
            "top": self.top >= 1,
            "figure_samples": self.figure_samples >= 1,
        }
        bad = [key for key, ok in checks.items() if not ok]
        if bad:
            raise SynthsodError(
                f"directions.search: invalid {', '.join(bad)} ({', '.join(f'{k}={getattr(self, k)!r}' for k in bad)})"
            )


# --- the affine pair -------------------------------------------------------------------------------
def _homogeneous(pixels: np.ndarray) -> np.ndarray:
    """Pixels [..., 3] -> [P, 4] rows (r, g, b, 1)."""
    flat = np.asarray(pixels, np.float32).reshape(-1, 3)
    return np.concatenate([flat, np.ones((flat.shape[0], 1), np.float32)], axis=1)


@dataclass
class AffinePair:
    """Two affine colour maps; ``weights[i]`` [4, 3] maps the row (r, g, b, 1) to A_i(c)."""

    weights: np.ndarray  # [2, 4, 3]

    @property
    def matrices(self) -> np.ndarray:
        """[2, 3, 3]: A_i(c) = matrices[i] @ c + biases[i]."""
        return np.transpose(self.weights[:, :3, :], (0, 2, 1))

    @property
    def biases(self) -> np.ndarray:
        """[2, 3]."""
        return self.weights[:, 3, :]

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Both maps on pixels [..., 3] -> [2, ..., 3]."""
        mapped = np.einsum("pk,ikc->ipc", _homogeneous(pixels), self.weights)
        return mapped.reshape(2, *np.shape(pixels))

    def errors(self, base: np.ndarray, shifted: np.ndarray) -> np.ndarray:
        """Squared restoration error of each map, [2, ...] over the pixels of ``base``."""
        return ((self.apply(base) - np.asarray(shifted, np.float32)[None]) ** 2).sum(axis=-1)

    def classes(self, base: np.ndarray, shifted: np.ndarray) -> np.ndarray:
        """Eq 7: 0 where A_1 restores the pixel at least as well as A_2, else 1 (shape of the pixels)."""
        errors = self.errors(base, shifted)
        return (errors[1] < errors[0]).astype(np.uint8)

    def restore(self, base: np.ndarray, shifted: np.ndarray) -> np.ndarray:
        """Eq 4: each pixel mapped by the better operator, [..., 3]."""
        mapped = self.apply(base)
        return np.where(self.classes(base, shifted)[..., None] == 1, mapped[1], mapped[0])

    def to_dict(self) -> dict[str, Any]:
        return {
            "A1": {"matrix": self.matrices[0].tolist(), "bias": self.biases[0].tolist()},
            "A2": {"matrix": self.matrices[1].tolist(), "bias": self.biases[1].tolist()},
        }


def initial_pair(base: np.ndarray, shifted: np.ndarray) -> AffinePair:
    """The best single affine map (least squares), split in two along its residuals' main axis."""
    x, y = _homogeneous(base), np.asarray(shifted, np.float32).reshape(-1, 3)
    stride = max(1, x.shape[0] // FIT_INIT_PIXELS)
    x, y = x[::stride].astype(np.float64), y[::stride].astype(np.float64)
    single = np.linalg.lstsq(x, y, rcond=None)[0]  # [4, 3]
    residual = y - x @ single
    _, _, vt = np.linalg.svd(residual - residual.mean(axis=0), full_matrices=False)
    axis = vt[0] if vt[0].sum() >= 0 else -vt[0]  # the brightening operator comes first
    offset = np.zeros((4, 3))
    offset[3] = (residual @ axis).std() * axis
    return AffinePair(np.stack([single + offset, single - offset]).astype(np.float32))


def restoration_gradient(pair: AffinePair, base: np.ndarray, shifted: np.ndarray) -> tuple[float, np.ndarray]:
    """L_h on these pixels and its gradient with respect to ``pair.weights``."""
    return _loss_and_gradient(pair.weights, _homogeneous(base), np.asarray(shifted, np.float32).reshape(-1, 3))


def _loss_and_gradient(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """L_h and its gradient for rows ``x`` [P, 4] (r, g, b, 1) and targets ``y`` [P, 3]."""
    first, second = x @ weights[0] - y, x @ weights[1] - y
    error_first, error_second = np.einsum("pc,pc->p", first, first), np.einsum("pc,pc->p", second, second)
    takes_second = error_second < error_first
    first[takes_second] = 0.0  # each operator's gradient comes from the pixels it restores
    second[~takes_second] = 0.0
    grad = np.stack([x.T @ first, x.T @ second]) * (2.0 / x.shape[0])
    return float(np.minimum(error_first, error_second).mean()), grad


def fit_affine_pair(
    base: np.ndarray, shifted: np.ndarray, *, steps: int = 200, batch_size: int = 4, lr: float = 0.005, seed: int = 0
) -> AffinePair:
    """Minimise L_h (eq 6) over images ``base`` / ``shifted`` [N, H, W, 3] in [0, 1] with Adam."""
    pair = initial_pair(base, shifted)
    n = len(base)
    x = _homogeneous(base).reshape(n, -1, 4)
    y = np.asarray(shifted, np.float32).reshape(n, -1, 3)
    weights = pair.weights.astype(np.float32)
    rng = np.random.default_rng(seed)
    first, second = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, steps + 1):
        batch = rng.choice(n, size=min(batch_size, n), replace=False)
        _, grad = _loss_and_gradient(weights, x[batch].reshape(-1, 4), y[batch].reshape(-1, 3))
        first = ADAM_BETAS[0] * first + (1 - ADAM_BETAS[0]) * grad
        second = ADAM_BETAS[1] * second + (1 - ADAM_BETAS[1]) * grad**2
        step_size = lr * math.sqrt(1 - ADAM_BETAS[1] ** step) / (1 - ADAM_BETAS[0] ** step)
        weights = (weights - step_size * first / (np.sqrt(second) + ADAM_EPS)).astype(np.float32)
    return AffinePair(weights)


def score_pair(pair: AffinePair, base: np.ndarray, shifted: np.ndarray) -> dict[str, float]:
    """L_h, D_h and the share of pixels in class A_1, over all images given (one image at a time)."""
    loss = distance = first = 0.0
    for b, s in zip(base, shifted):
        errors = pair.errors(b, s)
        mapped = pair.apply(b)
        loss += float(errors.min(axis=0).mean())
        distance += float(np.linalg.norm(mapped[0] - mapped[1], axis=-1).mean())
        first += float((errors[0] <= errors[1]).mean())
    n = len(base)
    return {"restoration_loss": loss / n, "distance": distance / n, "share": first / n}


# --- ranking ---------------------------------------------------------------------------------------
def rank_directions(scores: pd.DataFrame, cfg: SearchConfig) -> pd.DataFrame:
    """Add ``discarded``, ``top_distance``, ``rank`` (1..top, else missing) and ``chosen`` to per-direction
    ``restoration_loss`` / ``distance`` / ``share`` rows (one per direction, in direction order)."""
    table = scores.copy()
    finite = np.isfinite(table[["restoration_loss", "distance", "share"]]).all(axis=1)
    table["discarded"] = ~finite | (np.maximum(table["share"], 1 - table["share"]) >= cfg.discard_share)
    kept = table.index[~table["discarded"]]
    n_top = math.ceil(cfg.top_fraction * len(kept)) if len(kept) else 0
    # stable sorts: ties go to the lower direction index
    by_distance = table.loc[kept].sort_values("distance", ascending=False, kind="stable").index[:n_top]
    table["top_distance"] = table.index.isin(by_distance)
    ranked = table.loc[by_distance].sort_values("restoration_loss", kind="stable").index[: cfg.top]
    table["rank"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[ranked, "rank"] = np.arange(1, len(ranked) + 1)
    table["chosen"] = table["rank"].eq(1).fillna(False).astype(bool)
    return table[RANKING_COLUMNS]


# --- the search ------------------------------------------------------------------------------------
def to_unit_range(images: np.ndarray) -> np.ndarray:
    """Generator images in [-1, 1] -> float32 in [0, 1] (the appendix's pixel range)."""
    return np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)


def render_pool(render: Render, z: np.ndarray, class_ids: np.ndarray | None) -> np.ndarray:
    """``render`` over ``z`` in chunks -> float32 [N, H, W, 3] in [0, 1]."""
    chunks = [
        to_unit_range(render(z[i : i + RENDER_CHUNK], None if class_ids is None else class_ids[i : i + RENDER_CHUNK]))
        for i in range(0, len(z), RENDER_CHUNK)
    ]
    return np.concatenate(chunks)


@dataclass
class SearchResult:
    ranking: pd.DataFrame  # RANKING_COLUMNS, one row per candidate direction
    pairs: list[AffinePair]  # the fitted operators, per direction
    chosen: np.ndarray | None  # the rank-1 direction, unit norm and signed (None: all discarded)
    sign: int  # +1 or -1: how the chosen candidate was flipped
    brighter_share: float  # share of pixels the chosen signed shift brightens


def search_directions(
    render: Render, z: np.ndarray, class_ids: np.ndarray | None, candidates: np.ndarray, cfg: SearchConfig
) -> SearchResult:
    """Fit and score every candidate direction [K, z_dim] on the latent pool ``z`` [N, z_dim]."""
    candidates = np.asarray(candidates, np.float32)
    if candidates.ndim != 2 or candidates.shape[1] != z.shape[1]:
        raise SynthsodError(
            f"the candidate directions have shape {candidates.shape}; the generator's z has {z.shape[1]} dimensions"
        )
    base = render_pool(render, z, class_ids)
    rows, pairs = [], []
    for k in progress(range(len(candidates)), desc="direction search", unit="direction"):
        shifted = render_pool(render, z + unit_shift(candidates[k], cfg.scale), class_ids)
        pair = fit_affine_pair(
            base, shifted, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed * 1_000_003 + k
        )
        rows.append({"direction": k, **score_pair(pair, base, shifted)})
        pairs.append(pair)
    ranking = rank_directions(pd.DataFrame(rows), cfg)
    chosen = ranking.index[ranking["chosen"]]
    if len(chosen) == 0:
        return SearchResult(ranking, pairs, None, 1, float("nan"))
    direction = unit_shift(candidates[chosen[0]], 1.0)
    shifted = render_pool(render, z + cfg.scale * direction, class_ids)
    brighter = float(shift_masks(nhwc_gray(2 * shifted - 1), nhwc_gray(2 * base - 1)).mean())
    sign = -1 if brighter > 0.5 else 1
    return SearchResult(ranking, pairs, sign * direction, sign, brighter if sign > 0 else 1 - brighter)


def load_candidates(path: str | os.PathLike) -> np.ndarray:
    """Candidate directions [K, z_dim] float32: the discovery's ``.pt`` file or a ``.npy`` matrix found
    elsewhere (read with numpy alone, so BigBiGAN's environment needs no torch)."""
    if str(path).lower().endswith(".pt"):
        from synthsod.directions.discovery import load_directions

        return load_directions(path)
    return load_direction_matrix(path)


def shortlist_figures(
    render: Render,
    z: np.ndarray,
    class_ids: np.ndarray | None,
    candidates: np.ndarray,
    result: SearchResult,
    cfg: SearchConfig,
) -> dict[int, np.ndarray]:
    """rank -> :func:`direction_figure` of each ranked direction on the pool's first latents."""
    n = min(cfg.figure_samples, len(z))
    ids = None if class_ids is None else class_ids[:n]
    base = render_pool(render, z[:n], ids)
    ranked = result.ranking.dropna(subset=["rank"]).sort_values("rank")
    figures = {}
    for k, rank in zip(ranked["direction"], ranked["rank"]):
        shifted = render_pool(render, z[:n] + unit_shift(candidates[k], cfg.scale), ids)
        figures[int(rank)] = direction_figure(result.pairs[k], base, shifted)
    return figures


# --- outputs ---------------------------------------------------------------------------------------
def direction_figure(pair: AffinePair, base: np.ndarray, shifted: np.ndarray, gutter: int = 2) -> np.ndarray:
    """uint8 [4 rows, N columns] grid: G(z), G(z + h), the A_1 / A_2 restoration, the eq 7 classes
    (A_1 white)."""
    restored = pair.restore(base, shifted)
    classes = pair.classes(base, shifted)
    mask = np.repeat((classes == 0)[..., None], 3, axis=-1).astype(np.float32)
    rows = [to_uint8_nhwc(2 * np.asarray(r, np.float32) - 1) for r in (base, shifted, restored, mask)]
    n, h, w, _ = rows[0].shape
    grid = np.full((4 * h + 3 * gutter, n * w + (n - 1) * gutter, 3), 255, np.uint8)
    for r, images in enumerate(rows):
        for c, image in enumerate(images):
            grid[r * (h + gutter) : r * (h + gutter) + h, c * (w + gutter) : c * (w + gutter) + w] = image
    return grid


def write_ranking(path: str | os.PathLike, ranking: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        ranking.to_csv(tmp, index=False, float_format="%.6g")


__all__ = [
    "AffinePair",
    "RANKING_COLUMNS",
    "SearchConfig",
    "SearchResult",
    "direction_figure",
    "fit_affine_pair",
    "initial_pair",
    "load_candidates",
    "rank_directions",
    "render_pool",
    "restoration_gradient",
    "score_pair",
    "search_directions",
    "shortlist_figures",
    "to_unit_range",
    "write_ranking",
]
