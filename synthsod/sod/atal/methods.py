"""ATAL's core algorithms: adversarial uncertainty, trajectory ensembles, diverse point picking, superpixel labels.

ATAL (adversarial trajectory-ensemble active learning) grows a point-labelled SOD training set round by round.
Probabilities p are sigmoid saliency probabilities; a pixel is salient when p > 0.5 throughout.

``pgd_attack`` (AATU, eq 1)
    l-inf PGD from the clean images, no random start: x <- clip_eps(x + alpha * sign(grad_x BCE(f(x), y))),
    where y is the model's own clean prediction binarised at 0.5, so no ground truth is needed. Only the
    input gradient is taken (``torch.autograd.grad``), so the model's ``.grad`` fields stay untouched.
``pixel_regions``
    The three regions of the paper's Fig. 4a. Safety region (0): the clean and adversarial pixels get the
    same class. The other two flip class and differ in where the clean pixel sits: far from the decision
    boundary gives the perturbation-insensitive region (1), near it the perturbation-sensitive one (2).
    The paper adds that safe pixels usually lie far from the boundary; that is a tendency it observes,
    not part of its definition, so agreeing pixels are safe whatever their confidence.
``cyclic_cosine_lr`` / ``snapshot_steps`` (CCLS, eq 8)
    lr(t) = min_lr + (base_lr - min_lr) / 2 * (1 + cos(pi * mod(t, c) / c)), c = ceil(T / L), t = 0..T-1
    (the paper's 1-based i is t + 1). A snapshot is taken at the last iteration of every cycle, where
    the rate is lowest; the final iteration closes the last, possibly shorter cycle.
``ensemble_probabilities`` (TEUE, eq 6)
    The mean sigmoid probability of the snapshots, no gradients.
``margin_uncertainty`` (eq 3)
    The paper's u = Diff(BvSB(p(x)), BvSB(p(x_adv))) compares best-versus-second-best margins, which for
    a binary output is |2p - 1|. Plain |m_clean - m_adv| would miss a confident flip (0.9 -> 0.1 has equal
    margins), so both margins are measured for the class the clean input predicts (the adversarial one is
    negative after a flip) and u is half the drop, clamped at 0: u = max(0, s * (p_clean - p_adv)) with
    s = +1 where the clean pixel is salient, else -1. u is 0 where both agree as confidently, grows as the
    attack erodes the clean class and reaches 1 for a full flip; in [0, 1].
``candidate_pixels``
    The top K% most uncertain pixels of one map (the candidate set D_C; the paper's best K is 3).
``greedy_k_center`` (Algorithm 1)
    Farthest-first traversal: add the point farthest from its nearest centre, which keeps the covering
    radius within twice the optimum (Gonzalez). The paper's Algorithm 1 writes the sum of distances to V,
    but its stated objective is the min-max distance to the closest centre, which this rule serves. The
    paper starts from an arbitrary point; here index 0 (or the given initial centres).
``rank_by_dissimilarity`` (eq 10)
    phi(x) = mean cosine similarity of x to the labelled set D_S; the k lowest win.
``rds_select`` (RDS)
    A k-centre cover V of the candidates, then the k members of V least similar to D_S. The paper does
    not state |V|; it must exceed k for eq 10 to choose anything, so |V| = min(n, cover_factor * k).
    The cover starts from the most uncertain candidate (the paper allows any start).
``superpixels`` / ``propagate_point_labels`` (region label acquisition)
    SLIC (scikit-image) or SEEDS (opencv-contrib, the paper's choice) label maps, and point labels spread
    to each point's whole superpixel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from synthsod.errors import SynthsodError

REGION_SAFE, REGION_INSENSITIVE, REGION_SENSITIVE = 0, 1, 2
CANDIDATE_FRACTION = 0.03  # the paper's best K (3 %)
COVER_FACTOR = 2  # our choice: the cover offers eq 10 twice as many points as it keeps
# ~450 superpixels per image: 10 labelled superpixels covering 2.2 % of DUTS-TR means ~0.22 % of an image each.
SUPERPIXELS = 450
SLIC_COMPACTNESS = 10.0  # scikit-image's default
SEEDS_LEVELS, SEEDS_PRIOR, SEEDS_BINS, SEEDS_ITERATIONS = 4, 2, 5, 10  # OpenCV's documented defaults


def _logits(model: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """The model's saliency logits [N, 1, H, W]; multi-output models give their main map first."""
    out = model(images)
    if isinstance(out, (list, tuple)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[1] != 1 or out.shape[0] != images.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SynthsodError(
            f"the saliency model must return logits [N, 1, H, W] for {images.shape[0]} images, got {shape}"
        )
    return out


def _salient(probs: torch.Tensor) -> torch.Tensor:
    return probs > 0.5


# --- AATU: the adversarial attack and the regions it reveals ---------------------------------------------------


def pgd_attack(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    eps: float,
    alpha: float,
    steps: int,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    bounds: tuple[float, float] | None = None,
) -> torch.Tensor:
    """l-inf PGD (eq 1) against the model's own binarised clean prediction; returns detached adversarial images.

    ``loss_fn(logits, target)`` defaults to mean BCE on logits. ``bounds`` clamps pixel values only when given
    (the images are usually normalised). The model stays in whatever mode it is in.
    """
    if images.dim() != 4:
        raise SynthsodError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    if eps < 0 or alpha <= 0 or steps < 0 or int(steps) != steps:
        raise SynthsodError(
            f"PGD needs eps >= 0, alpha > 0 and a whole number of steps >= 0; "
            f"got eps={eps}, alpha={alpha}, steps={steps}"
        )
    loss_fn = loss_fn or F.binary_cross_entropy_with_logits
    clean = images.detach()
    with torch.no_grad():
        target = _salient(torch.sigmoid(_logits(model, clean))).to(clean.dtype)
    adv = clean.clone()
    with torch.enable_grad():  # the caller may be inside no_grad
        for _ in range(int(steps)):
            adv.requires_grad_(True)
            loss = loss_fn(_logits(model, adv), target)
            (grad,) = torch.autograd.grad(loss, adv)  # input gradient only: no parameter .grad accumulates
            adv = adv.detach() + alpha * grad.sign()
            adv = torch.max(torch.min(adv, clean + eps), clean - eps)
            if bounds is not None:
                adv = adv.clamp(*bounds)
    return adv.detach()


def pixel_regions(
    p_clean: torch.Tensor | np.ndarray,
    p_adv: torch.Tensor | np.ndarray,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Region map (int64, same shape) of the module docstring: 0 safe, 1 perturbation-insensitive, 2 sensitive.

    A clean pixel is near the decision boundary when its margin |2p - 1| is below ``threshold`` (0.5: p in
    (0.25, 0.75)); classes come from p > 0.5.
    """
    p_clean, p_adv = torch.as_tensor(p_clean), torch.as_tensor(p_adv)
    if p_clean.shape != p_adv.shape:
        raise SynthsodError(
            f"clean and adversarial probabilities differ in shape: {tuple(p_clean.shape)} vs {tuple(p_adv.shape)}"
        )
    if not 0.0 < threshold <= 1.0:
        raise SynthsodError(f"the margin threshold must be in (0, 1], got {threshold}")
    flipped = _salient(p_clean) != _salient(p_adv)
    near_boundary = (2 * p_clean - 1).abs() < threshold
    regions = torch.full(p_clean.shape, REGION_SAFE, dtype=torch.int64)
    regions[flipped & ~near_boundary] = REGION_INSENSITIVE
    regions[flipped & near_boundary] = REGION_SENSITIVE
    return regions


# --- TEUE: cyclic cosine schedule, snapshots and their ensemble ------------------------------------------------


def ensemble_probabilities(
    snapshots: Sequence[Callable[[torch.Tensor], torch.Tensor]], images: torch.Tensor
) -> torch.Tensor:
    """Eq 6: the mean sigmoid probability [N, 1, H, W] of the snapshot models (their modes are left as set)."""
    if len(snapshots) == 0:
        raise SynthsodError("an ensemble needs at least one snapshot model")
    with torch.no_grad():
        return torch.stack([torch.sigmoid(_logits(model, images)) for model in snapshots]).mean(dim=0)


def margin_uncertainty(p_clean: torch.Tensor, p_adv: torch.Tensor) -> torch.Tensor:
    """Eq 3 as read in the module docstring: the drop of the clean class's probability under attack, in [0, 1]."""
    if p_clean.shape != p_adv.shape:
        raise SynthsodError(
            f"clean and adversarial probabilities differ in shape: {tuple(p_clean.shape)} vs {tuple(p_adv.shape)}"
        )
    # BvSB margins of the clean class: s (2p - 1); half their difference is s (p_clean - p_adv)
    sign = torch.where(_salient(p_clean), 1.0, -1.0).to(p_clean.dtype)
    return (sign * (p_clean - p_adv)).clamp(min=0)


# --- RDS: candidate pixels, k-centre cover, dissimilarity ranking ----------------------------------------------


def candidate_pixels(
    uncertainty: torch.Tensor | np.ndarray,
    top_fraction: float = CANDIDATE_FRACTION,
    exclude: np.ndarray | torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the round(top_fraction * H * W) most uncertain pixels of one map [H, W], most uncertain first.

    Pixels where ``exclude`` (bool [H, W]) is set, e.g. already labelled ones, are never candidates; fewer come
    back when too few remain. Ties go to the lower row-major index.
    """
    u = np.asarray(uncertainty.detach().cpu() if isinstance(uncertainty, torch.Tensor) else uncertainty)
    if u.ndim != 2:
        raise SynthsodError(f"expected one uncertainty map [H, W], got shape {u.shape}")
    if not 0.0 < top_fraction <= 1.0:
        raise SynthsodError(f"the candidate fraction must be in (0, 1], got {top_fraction}")
    count = max(1, round(top_fraction * u.size))
    flat = u.astype(np.float64).ravel()
    if exclude is not None:
        exclude = np.asarray(exclude.cpu() if isinstance(exclude, torch.Tensor) else exclude, dtype=bool)
        if exclude.shape != u.shape:
            raise SynthsodError(f"the exclusion mask {exclude.shape} must match the uncertainty map {u.shape}")
        flat = np.where(exclude.ravel(), -np.inf, flat)
        count = min(count, int((~exclude).sum()))
    order = np.argsort(-flat, kind="stable")[:count]
    return order // u.shape[1], order % u.shape[1]


def _as_matrix(features: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    x = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if x.ndim != 2:
        raise SynthsodError(f"expected {name} as a matrix [n, d], got shape {x.shape}")
    return x


def greedy_k_center(features: np.ndarray, k: int, initial: Sequence[int] | None = None) -> list[int]:
    """Algorithm 1: ``k`` new centre indices, each the point farthest (Euclidean) from its nearest centre so far.

    ``initial`` indices count as centres already (and are never returned); without them index 0 starts.
    Ties go to the lowest index.
    """
    x = _as_matrix(features, "features")
    initial = [int(i) for i in (initial or [])]
    if any(not 0 <= i < len(x) for i in initial):
        raise SynthsodError(f"initial centres {initial} are outside the {len(x)} points")
    free = len(x) - len(set(initial))
    if not 0 <= k <= free:
        raise SynthsodError(f"cannot choose {k} new centres among {free} points that are not centres yet")
    chosen: list[int] = []
    nearest = np.full(len(x), np.inf)  # distance of every point to its nearest centre
    taken = np.zeros(len(x), dtype=bool)

    def add_centre(index: int) -> None:
        nearest[:] = np.minimum(nearest, np.linalg.norm(x - x[index], axis=1))
        taken[index] = True

    for index in initial:
        add_centre(index)
    if not initial and k > 0:
        add_centre(0)
        chosen.append(0)
    while len(chosen) < k:
        # centres are masked so duplicate points (distance 0 everywhere) cannot pick one twice
        index = int(np.argmax(np.where(taken, -1.0, nearest)))
        add_centre(index)
        chosen.append(index)
    return chosen


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rank_by_dissimilarity(candidate_features: np.ndarray, labelled_features: np.ndarray | None, k: int) -> list[int]:
    """Eq 10: indices of the ``k`` candidates with the lowest mean cosine similarity to the labelled set.

    With no labelled features the first ``k`` candidates are kept in their given order; ties go to the lower index.
    """
    cand = _as_matrix(candidate_features, "candidate features")
    if not 0 <= k <= len(cand):
        raise SynthsodError(f"cannot rank {k} out of {len(cand)} candidates")
    if labelled_features is None or len(labelled_features) == 0:
        return list(range(k))
    labelled = _as_matrix(labelled_features, "labelled features")
    if labelled.shape[1] != cand.shape[1]:
        raise SynthsodError(f"candidate features have {cand.shape[1]} dimensions, labelled ones {labelled.shape[1]}")
    # the mean of the cosines equals the cosine with the mean unit vector: O(n d) instead of O(n m d)
    phi = _unit_rows(cand) @ _unit_rows(labelled).mean(axis=0)
    return [int(i) for i in np.argsort(phi, kind="stable")[:k]]


def rds_select(
    features: np.ndarray,
    uncertainty: np.ndarray,
    labelled_features: np.ndarray | None,
    k: int,
    cover_factor: int = COVER_FACTOR,
) -> list[int]:
    """RDS: indices (into ``features``) of min(k, n) candidates: a k-centre cover then eq 10's least similar.

    ``features`` [n, d] and ``uncertainty`` [n] describe the candidate set alone (the caller's top K %).
    """
    x = _as_matrix(features, "features")
    u = np.asarray(uncertainty, dtype=np.float64).ravel()
    if len(u) != len(x):
        raise SynthsodError(f"{len(u)} uncertainty scores for {len(x)} candidates")
    if k < 0 or cover_factor < 1:
        raise SynthsodError(f"RDS needs k >= 0 and a cover factor >= 1, got k={k}, cover_factor={cover_factor}")
    if k == 0 or len(x) == 0:
        return []
    size = min(len(x), cover_factor * k)
    start = int(np.argmax(u))  # the most uncertain candidate seeds the cover
    cover = [start] + greedy_k_center(x, size - 1, initial=[start])
    ranked = rank_by_dissimilarity(x[cover], labelled_features, min(k, size))
    return [cover[i] for i in ranked]


# --- Region label acquisition: superpixels and label propagation -----------------------------------------------


def superpixels(
    image_rgb: np.ndarray,
    method: str = "slic",
    n_segments: int = SUPERPIXELS,
    compactness: float = SLIC_COMPACTNESS,
    seed: int = 0,
) -> np.ndarray:
    """int32 superpixel labels [H, W] (from 0) of a uint8 RGB image [H, W, 3] by SLIC or SEEDS.

    ``compactness`` is SLIC's alone (SLIC is deterministic); ``seed`` seeds OpenCV's global RNG for SEEDS.
    """
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise SynthsodError(f"expected a uint8 RGB image [H, W, 3], got {image.dtype} {image.shape}")
    if n_segments < 1:
        raise SynthsodError(f"n_segments must be >= 1, got {n_segments}")
    if method == "slic":
        from skimage.segmentation import slic

        labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0, channel_axis=-1)
    elif method == "seeds":
        labels = _seeds(image, n_segments, seed)
    else:
        raise SynthsodError(f"unknown superpixel method {method!r}: use 'slic' or 'seeds'")
    return labels.astype(np.int32)


def _seeds(image: np.ndarray, n_segments: int, seed: int) -> np.ndarray:
    import cv2

    if not hasattr(cv2, "ximgproc"):
        raise SynthsodError(
            "SEEDS superpixels need opencv-contrib-python (cv2.ximgproc); "
            "method='slic' works with the installed packages"
        )
    cv2.setRNGSeed(seed)
    h, w, c = image.shape
    seeds = cv2.ximgproc.createSuperpixelSEEDS(w, h, c, n_segments, SEEDS_LEVELS, SEEDS_PRIOR, SEEDS_BINS, False)
    seeds.iterate(cv2.cvtColor(image, cv2.COLOR_RGB2LAB), SEEDS_ITERATIONS)
    return seeds.getLabels()


def propagate_point_labels(
    segments: np.ndarray,
    points: np.ndarray,
    labels: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(label map, visible map), float32 [H, W]: each point's label spread over its whole superpixel.

    A superpixel whose points disagree stays unlabelled except at those points themselves, so no pixel
    gets a label a point contradicts. Two different labels on one pixel are an error.
    """
    segments = np.asarray(segments)
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    labels = np.asarray(labels).ravel()
    if segments.ndim != 2:
        raise SynthsodError(f"expected a superpixel map [H, W], got shape {segments.shape}")
    if len(points) != len(labels):
        raise SynthsodError(f"{len(points)} points but {len(labels)} labels")
    if not np.isin(labels, (0, 1)).all():
        raise SynthsodError(f"point labels must be 0 or 1, got {sorted(set(labels.tolist()))}")
    h, w = segments.shape
    if ((points < 0) | (points >= (h, w))).any():
        raise SynthsodError(f"points {points.tolist()} fall outside the {h}x{w} image")
    pixel_labels: dict[tuple[int, int], int] = {}
    for (row, col), label in zip(points.tolist(), labels.tolist()):
        if pixel_labels.setdefault((row, col), label) != label:
            raise SynthsodError(f"pixel ({row}, {col}) has both labels 0 and 1")
    label_map = np.zeros((h, w), np.float32)
    visible = np.zeros((h, w), np.float32)
    point_segments = segments[points[:, 0], points[:, 1]]
    for segment in np.unique(point_segments):
        inside = point_segments == segment
        votes = labels[inside]
        if (votes == votes[0]).all():
            region = segments == segment
            label_map[region], visible[region] = float(votes[0]), 1.0
        else:  # disagreement: trust the points alone
            rows, cols = points[inside, 0], points[inside, 1]
            label_map[rows, cols], visible[rows, cols] = votes.astype(np.float32), 1.0
    return label_map, visible


__all__ = [
    "CANDIDATE_FRACTION",
    "COVER_FACTOR",
    "REGION_INSENSITIVE",
    "REGION_SAFE",
    "REGION_SENSITIVE",
    "SUPERPIXELS",
    "candidate_pixels",
    "ensemble_probabilities",
    "greedy_k_center",
    "margin_uncertainty",
    "pgd_attack",
    "pixel_regions",
    "propagate_point_labels",
    "rank_by_dissimilarity",
    "rds_select",
    "superpixels",
]
