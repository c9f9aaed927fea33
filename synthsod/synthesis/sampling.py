"""The sampling core of the synthetic data factory: latents, shard plan, direction-shift masks, filters.

A named run (config ``runs:``) wants ``pairs`` kept image–mask pairs in shards of ``rows_per_shard``.
This module is backend-neutral (numpy only, no torch, no TensorFlow): the generator and the mask
method come in as a :data:`Propose` callable, so the same code serves BigGAN with G_mask
(:mod:`synthsod.synthesis.biggan_sampling`), BigGAN with a direction shift, and BigBiGAN (TensorFlow).

Candidate indices
    Shard ``k`` draws candidates from its own block of global indices,
    ``k * stride, k * stride + 1, ...`` with ``stride = rows_per_shard * max_candidates_factor``, and
    keeps the first ``rows`` that pass every filter, in index order. Every candidate's randomness
    derives from ``(seed, global index)`` alone and the filters judge each candidate on its own, so a
    shard's rows depend neither on the batch size nor on which job or in what order the shards run;
    and raising ``pairs`` only appends shards (the earlier ones stay valid). When a shard's block is
    used up before it has its rows, the run fails with the kept rate and what to change.

Latents
    :class:`synthsod.generators.latents.LatentSource`: the truncated prior, or inverted latents (DEN inversions
    of the training set, BigBiGAN encoder embeddings) plus ``alpha`` x N(0, I).

Direction-shift masks (E-BigBiGAN)
    With ``h`` the direction scaled to norm ``shift``, the grey level ``0.2989 R + 0.587 G + 0.114 B``
    of the shifted image G(z + h) is compared with that of G(z) pixel by pixel (``compare: base``), or
    with its own mean (``compare: mean``, which needs no forward pass of G(z) for the mask; G(z) is
    still the stored image). Foreground is where the shifted image is brighter.

Filters (each optional, in this order, each counting its rejections)
    ``components`` keeps the components at least ``fraction`` x the largest (it cleans, rejects
    nothing); ``size`` rejects foreground fractions outside [min, max]; ``histogram`` rejects when the
    grey-scaled shifted image (or the image itself for G_mask runs) has an interior histogram peak;
    ``dq`` rejects D_q scores below the threshold (a fixed one, or the ``keep_top`` quantile fixed
    once per run on calibration candidates: :func:`calibration_indices`). D_q scores only the
    candidates that passed the cheaper filters. :mod:`synthsod.synthesis.filters` holds the filter functions.

Overlap and memory
    :func:`sample_shard` can generate on a producer thread (:func:`proposals`) up to
    :data:`QUEUE_BATCHES` batches ahead of the filters and of whatever is done with the kept pairs
    (encoding, writing), so the generator (GPU or CPU: torch releases the GIL in its kernels) and the
    rest run at the same time. The batches, their order and every verdict are those of the sequential
    loop, so the output is the same. Kept pairs are handed on as they are found, not collected, and
    only :data:`REJECTED_EXAMPLES_PER_FILTER` rejected examples per filter are kept (without their
    grey images): a shard's memory does not grow with its size.
"""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from synthsod.core.images import nhwc_gray, to_uint8_nhwc
from synthsod.core.progress import progress
from synthsod.directions.shift import check_comparison, shift_masks, unit_shift
from synthsod.errors import SynthsodError
from synthsod.generators.latents import LatentSource
from synthsod.names import shard_count, shard_rows  # noqa: F401 (re-exported)
from synthsod.synthesis.filter_spec import FILTER_ORDER, FilterSpec
from synthsod.synthesis.filters import drop_small_components, histogram_ok, mask_size_ok

CALIBRATION_FIRST_INDEX = 2**50  # calibration candidates: indices no shard reaches
REJECTED_EXAMPLES_PER_FILTER = 4
QUEUE_BATCHES = 2  # generated batches a producer thread may hold ready for the filters


# --- shard plan ------------------------------------------------------------------------------------
def candidate_block(shard: int, rows_per_shard: int, max_candidates_factor: int) -> range:
    """The global candidate indices shard ``shard`` may draw from, in order."""
    stride = rows_per_shard * max_candidates_factor
    return range(shard * stride, (shard + 1) * stride)


def calibration_indices(count: int) -> range:
    return range(CALIBRATION_FIRST_INDEX, CALIBRATION_FIRST_INDEX + count)


def sample_id(run: str, index: int) -> str:
    return f"{run}-{index:016d}"


# --- direction-shift masks -------------------------------------------------------------------------


# --- candidates and filters ------------------------------------------------------------------------
@dataclass
class Candidate:
    """One generated sample before filtering."""

    index: int
    z: np.ndarray
    class_id: int | None
    image: np.ndarray  # uint8 HxWx3
    mask: np.ndarray  # bool HxW, before the components filter
    histogram_gray: np.ndarray  # grey image [0, 1] the histogram filter judges
    direction: str | None = None
    shift: float | None = None
    components: int = 0
    dq_score: float | None = None


Propose = Callable[[Sequence[int]], list[Candidate]]
Score = Callable[[list[np.ndarray], list[np.ndarray]], np.ndarray]  # images, masks -> D_q scores


def shift_proposer(
    render: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    latents: LatentSource,
    direction: np.ndarray,
    shift: float,
    compare: str = "base",
    direction_name: str = "h",
) -> Propose:
    """Candidates from a direction shift; ``render(z, class_ids)`` gives float NHWC images in [-1, 1]."""
    h = unit_shift(direction, shift)
    if h.shape[0] != latents.z_dim:
        raise SynthsodError(
            f"direction {direction_name} has {h.shape[0]} dimensions; the generator's z has {latents.z_dim}"
        )
    check_comparison(compare)

    def propose(indices: Sequence[int]) -> list[Candidate]:
        z, ids = latents.draw(indices)
        base = render(z, ids)
        gray_shifted = nhwc_gray(render(z + h, ids))
        masks = shift_masks(gray_shifted, nhwc_gray(base) if compare == "base" else None, compare)
        images = to_uint8_nhwc(base)
        return [
            Candidate(
                index=int(i),
                z=z[n],
                class_id=None if ids is None else int(ids[n]),
                image=images[n],
                mask=masks[n],
                histogram_gray=gray_shifted[n],
                direction=direction_name,
                shift=float(shift),
            )
            for n, i in enumerate(indices)
        ]

    return propose


def cheap_filters(candidate: Candidate, spec: FilterSpec) -> str | None:
    """Apply components / size / histogram to ``candidate`` (cleaning its mask); return the rejecting
    filter's name or None."""
    if spec.components is not None:
        candidate.mask, candidate.components = drop_small_components(
            candidate.mask, spec.components["fraction"], spec.components.get("connectivity", 4)
        )
    else:
        candidate.components = drop_small_components(candidate.mask, 0.0)[1]
    if spec.size is not None and not mask_size_ok(candidate.mask, spec.size["min"], spec.size["max"]):
        return "size"
    if spec.histogram is not None and not histogram_ok(
        candidate.histogram_gray, spec.histogram["bins"], spec.histogram["window"], spec.histogram["strict"]
    ):
        return "histogram"
    return None


@dataclass
class ShardResult:
    kept: list[Candidate]  # the kept candidates, when sample_shard was given no `keep`
    candidates: int  # candidates judged up to the last kept one
    rejections: Counter = field(default_factory=Counter)
    rejected: list[tuple[Candidate, str]] = field(default_factory=list)  # a few examples per filter
    kept_count: int = 0

    def stats(self) -> dict[str, Any]:
        return {
            "kept": self.kept_count,
            "candidates": self.candidates,
            "rejected": {name: self.rejections.get(name, 0) for name in FILTER_ORDER},
            "examples": [{"index": c.index, "filter": name} for c, name in self.rejected],
        }


def judge_candidates(
    candidates: list[Candidate], spec: FilterSpec, score: Score | None, dq_threshold: float | None
) -> list[tuple[Candidate, str | None]]:
    """Run every filter on generated ``candidates``: (candidate, rejecting filter or None), in their order."""
    verdicts = [(c, cheap_filters(c, spec)) for c in candidates]
    if spec.dq is not None:
        if score is None or dq_threshold is None:
            raise SynthsodError("the dq filter needs a D_q model and a threshold")
        survivors = [c for c, reason in verdicts if reason is None]
        if survivors:
            scores = score([c.image for c in survivors], [c.mask for c in survivors])
            for c, s in zip(survivors, scores):
                c.dq_score = float(s)
        verdicts = [(c, "dq" if reason is None and c.dq_score < dq_threshold else reason) for c, reason in verdicts]
    return verdicts


def judge(
    propose: Propose, indices: Sequence[int], spec: FilterSpec, score: Score | None, dq_threshold: float | None
) -> list[tuple[Candidate, str | None]]:
    """Generate ``indices`` and run every filter: (candidate, rejecting filter or None) in index order."""
    return judge_candidates(propose(indices), spec, score, dq_threshold)


_DONE = object()


def proposals(propose: Propose, batches: Sequence[Sequence[int]], overlap: bool = False) -> Iterator[list[Candidate]]:
    """``propose(indices)`` for each ``indices`` of ``batches``, in order.

    With ``overlap`` a producer thread calls ``propose`` and keeps up to :data:`QUEUE_BATCHES` batches
    ready, so generation runs while the caller works on the previous batch; an exception in ``propose``
    is raised here. Closing the iterator (``contextlib.closing``) stops the producer: it finishes the
    batch it is generating (if any) and is joined, so no generation outlives the call.
    """
    if not overlap:
        for indices in batches:
            yield propose(indices)
        return
    ready: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)
    stop = threading.Event()

    def put(item) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for indices in batches:
                if stop.is_set():
                    return
                put(propose(indices))
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(exc)

    producer = threading.Thread(target=produce, name="sample-producer", daemon=True)
    producer.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while producer.is_alive():
            try:  # make room, so a producer blocked on a full queue sees `stop`
                ready.get(timeout=0.05)
            except queue.Empty:
                pass
        producer.join()


def sample_shard(
    propose: Propose,
    spec: FilterSpec,
    *,
    rows: int,
    block: range,
    batch_size: int,
    score: Score | None = None,
    dq_threshold: float | None = None,
    where: str = "shard",
    keep: Callable[[Candidate], None] | None = None,
    overlap: bool = False,
) -> ShardResult:
    """The first ``rows`` candidates of ``block`` that pass every filter.

    Candidates are judged in batches of ``batch_size``; only those up to the last kept one count.
    Each kept candidate goes to ``keep`` as soon as it is judged, in index order (None: into
    ``result.kept``). ``overlap`` generates on a producer thread (:func:`proposals`); the result is the
    same either way. Raises SynthsodError (naming ``where``) when the block runs out first. The
    progress bar ``where`` counts kept pairs.
    """
    result = ShardResult(kept=[], candidates=0)
    keep = keep or result.kept.append
    examples: Counter = Counter()
    batches = [block[lo : lo + batch_size] for lo in range(0, len(block), batch_size)]
    with (
        progress(total=rows, desc=where, unit="pair") as bar,
        closing(proposals(propose, batches, overlap)) as generated,
    ):
        for candidates in generated:
            for candidate, reason in judge_candidates(candidates, spec, score, dq_threshold):
                result.candidates += 1
                bar.set_postfix(candidates=result.candidates)
                if reason is None:
                    result.kept_count += 1
                    keep(candidate)
                    bar.update()
                    if result.kept_count == rows:
                        return result
                else:
                    result.rejections[reason] += 1
                    if examples[reason] < REJECTED_EXAMPLES_PER_FILTER:
                        examples[reason] += 1
                        result.rejected.append((replace(candidate, histogram_gray=None), reason))
            del candidates
    rate = result.kept_count / max(result.candidates, 1)
    raise SynthsodError(
        f"{where}: only {result.kept_count} of {rows} pairs kept after {result.candidates} candidates (kept rate "
        f"{rate:.1%}; rejected {dict(result.rejections)}); loosen the filters or raise max_candidates_factor"
    )


def shard_row(
    run: str, candidate: Candidate, *, generator: str, seed: int, truncation: float | None, filters: Sequence[str]
) -> dict[str, Any]:
    """A candidate as a :mod:`synthsod.synthesis.shards` row."""
    return {
        "id": sample_id(run, candidate.index),
        "image": candidate.image,
        "mask": candidate.mask,
        "seed": seed,
        "index": candidate.index,
        "generator": generator,
        "class": candidate.class_id,
        "truncation": truncation,
        "latent": candidate.z,
        "direction": candidate.direction,
        "shift": candidate.shift,
        "dq_score": candidate.dq_score,
        "mask_fraction": float(np.mean(candidate.mask)),
        "components": candidate.components,
        "filters": list(filters),
    }


def merge_stats(shard_stats: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per-shard statistics -> the run's filter report: totals, kept rate, per-filter counts, examples."""
    rejected = Counter()
    for stats in shard_stats:
        rejected.update(stats["rejected"])
    kept = sum(s["kept"] for s in shard_stats)
    candidates = sum(s["candidates"] for s in shard_stats)
    return {
        "kept": kept,
        "candidates": candidates,
        "kept_rate": kept / candidates if candidates else None,
        "rejected": {name: rejected.get(name, 0) for name in FILTER_ORDER},
        "shards": [dict(s) for s in shard_stats],
    }


__all__ = [
    "CALIBRATION_FIRST_INDEX",
    "Candidate",
    "FILTER_ORDER",
    "FilterSpec",
    "LatentSource",
    "ShardResult",
    "calibration_indices",
    "candidate_block",
    "cheap_filters",
    "judge",
    "judge_candidates",
    "merge_stats",
    "proposals",
    "sample_id",
    "sample_shard",
    "shard_count",
    "shard_row",
    "shard_rows",
    "shift_proposer",
]
