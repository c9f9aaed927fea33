"""One sampling run's shard (or D_q calibration) from its config section: backend, latents, masks, filters.

A run section (config ``runs.<name>``, schemas/config.schema.yaml documents every key) names a
generator; PyTorch generators (BigGAN-deep, tiny) take masks from G_mask or a direction shift,
BigBiGAN (TensorFlow, :mod:`synthsod.generators.bigbigan`) from a direction shift only. The backend-specific
modules are imported only for the backend in use, so the BigBiGAN path runs in an environment
without torch and the PyTorch path in one without TensorFlow.

:class:`RunFiles` lists the files a run reads; the workflow's ``sample`` rule passes them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from synthsod.core.io import write_json_atomic
from synthsod.core.progress import progress
from synthsod.directions.files import load_direction
from synthsod.errors import SynthsodError
from synthsod.generators.latent_table import latent_arrays, read_latent_table, table_truncation
from synthsod.generators.latents import LatentSource, resolve_classes, restrict_table
from synthsod.names import BIGBIGAN
from synthsod.synthesis.filters import quantile_threshold
from synthsod.synthesis.sampling import (
    FilterSpec,
    calibration_indices,
    candidate_block,
    judge,
    sample_id,
    sample_shard,
    shard_row,
    shift_proposer,
)
from synthsod.synthesis.shards import shard_writer, write_shard


@dataclass(frozen=True)
class RunFiles:
    """Inputs of a run; None where the run does not need the file."""

    weights: str | None = None  # generator weights directory (None: the BigGAN package cache)
    gmask: str | None = None  # results/gmask/<gen>/gmask.pt
    dq: str | None = None  # results/gmask/<gen>/dq.pt
    latents: str | None = None  # DEN latents.parquet or BigBiGAN embeddings.parquet
    direction: str | None = None  # .npy direction file
    calibration: str | None = None  # dq_calibration.json (keep_top)


@dataclass
class Backend:
    """An opened generator: its name, z size, class count (None: unconditional) and the PyTorch model."""

    name: str
    z_dim: int
    num_classes: int | None
    model: Any
    device: Any = None


def open_backend(generator: Mapping[str, Any], weights: str | None, device: Any = "cpu") -> Backend:
    if generator["model"] == BIGBIGAN:
        from synthsod.generators.bigbigan import BigBiGAN

        model = BigBiGAN(weights)
        return Backend(BIGBIGAN, model.z_dim, None, model)
    from synthsod.generators import create_generator

    model = create_generator(generator["model"], weights, generator.get("taps"), device)
    return Backend(model.name, model.z_dim, model.num_classes, model, device)


def _latent_table(path: str) -> tuple[np.ndarray, np.ndarray | None, float | None]:
    """(z [M, d], classes [M] or None, truncation or None) of a DEN latents or BigBiGAN embeddings file."""
    rows = read_latent_table(path)
    z, classes = latent_arrays(rows)
    return z, classes, table_truncation(rows)


def latent_source(run: Mapping[str, Any], backend: Backend, files: RunFiles) -> tuple[LatentSource, float | None]:
    """The run's latent source and the truncation its images are generated at."""
    classes = None if backend.num_classes is None else resolve_classes(run["classes"], backend.num_classes)
    spec = run["latents"]
    truncation = run["truncation"]
    if spec["source"] == "prior":
        if truncation is None and backend.num_classes is not None:
            raise SynthsodError("a BigGAN prior run needs a truncation")
        cycle = run["classes"].get("order") == "cycle"
        return LatentSource(run["seed"], backend.z_dim, truncation, classes, cycle=cycle), truncation
    table, table_classes, table_truncation = _latent_table(files.latents)
    if backend.num_classes is None:
        table_classes = None
    table, table_classes = restrict_table(table, table_classes, classes)
    if truncation is None:
        truncation = table_truncation  # the truncation the latents were inverted at
    source = LatentSource(run["seed"], backend.z_dim, None, None, table, table_classes, spec["alpha"])
    return source, truncation


def proposer(run: Mapping[str, Any], backend: Backend, source: LatentSource, truncation: float | None, files: RunFiles):
    mask = run["mask"]
    if mask["method"] == "gmask":
        if backend.name == BIGBIGAN:
            raise SynthsodError("BigBiGAN runs take masks from a direction (mask.method: direction)")
        from synthsod.sodgan.gmask_infer import load_gmask
        from synthsod.synthesis.biggan_sampling import gmask_proposer

        gmask = load_gmask(files.gmask, backend.device)
        return gmask_proposer(backend.model, gmask, source, truncation, mask["threshold"])
    direction = load_direction(files.direction)
    return shift_proposer(
        backend_renderer(backend, truncation),
        source,
        direction,
        mask["shift"],
        mask["compare"],
        direction_name=Path(files.direction).stem,
    )


def backend_renderer(backend: Backend, truncation: float | None):
    """``render(z, class_ids)`` -> float images [N, H, W, 3] in [-1, 1] for either backend."""
    if backend.name == BIGBIGAN:

        def render(z, class_ids):
            return backend.model.generate(z)

        return render
    from synthsod.synthesis.biggan_sampling import renderer

    return renderer(backend.model, truncation)


def scorer(run: Mapping[str, Any], backend: Backend, files: RunFiles):
    if run["filters"].get("dq") is None:
        return None
    if backend.name == BIGBIGAN:
        raise SynthsodError("the dq filter needs a D_q trained on a PyTorch generator; BigBiGAN runs have none")
    from synthsod.sodgan.dq import load_dq
    from synthsod.synthesis.biggan_sampling import dq_scorer

    dq = load_dq(files.dq, backend.device)
    if dq is None:
        raise SynthsodError(
            f"{files.dq}: G_mask was trained without D_q (gmask.dq.enabled: false); set the run's filters.dq to null"
        )
    return dq_scorer(dq)


def dq_threshold(run: Mapping[str, Any], files: RunFiles) -> float | None:
    spec = run["filters"].get("dq")
    if spec is None:
        return None
    if spec.get("keep_top") is None:
        return float(spec["threshold"])
    return float(json.loads(Path(files.calibration).read_text())["threshold"])


@dataclass
class Sampler:
    """Everything a run's shards share: proposer, filters, D_q scorer, provenance."""

    name: str
    run: Mapping[str, Any]
    backend: Backend
    truncation: float | None
    propose: Any
    filters: FilterSpec
    score: Any


def open_run(
    name: str, run: Mapping[str, Any], generator: Mapping[str, Any], files: RunFiles, device: Any = "cpu"
) -> Sampler:
    backend = open_backend(generator, files.weights, device)
    source, truncation = latent_source(run, backend, files)
    return Sampler(
        name,
        run,
        backend,
        truncation,
        proposer(run, backend, source, truncation, files),
        FilterSpec.from_config(run["filters"]),
        scorer(run, backend, files),
    )


def calibrate(sampler: Sampler, out_json: str, out_candidates: str, *, workers: int = 1) -> float:
    """Fix the run's D_q threshold from ``filters.dq.calibration`` candidates (indices no shard uses):
    the ``keep_top`` quantile of the scores of those that pass the cheaper filters. The scored candidates
    are written to ``out_candidates`` (shard schema, with their D_q scores): both sides of the threshold,
    for audits of D_q (:mod:`synthsod.evaluation.oracle`)."""
    dq = sampler.filters.dq
    cheap = replace(sampler.filters, dq=None)
    indices = calibration_indices(dq["calibration"])
    batch = sampler.run["batch_size"]
    survivors = []
    with progress(total=len(indices), desc=f"run {sampler.name} D_q calibration", unit="candidate") as bar:
        for lo in range(0, len(indices), batch):
            block = indices[lo : lo + batch]
            survivors += [
                replace(c, histogram_gray=None)  # judged: only the pair is kept
                for c, reason in judge(sampler.propose, block, cheap, None, None)
                if reason is None
            ]
            bar.update(len(block))
    if not survivors:
        raise SynthsodError(f"run {sampler.name}: no calibration candidate passed the filters before D_q")
    scores = sampler.score([c.image for c in survivors], [c.mask for c in survivors])
    threshold = quantile_threshold(scores, dq["keep_top"])
    for candidate, score in zip(survivors, scores):
        candidate.dq_score = float(score)
    _write_rows(sampler, out_candidates, [(c, cheap.enabled()) for c in survivors], workers)
    write_json_atomic(
        out_json,
        {
            "threshold": threshold,
            "keep_top": dq["keep_top"],
            "candidates": len(indices),
            "scored": len(survivors),
            "score_quantiles": np.quantile(scores, [0, 0.25, 0.5, 0.75, 1]).tolist(),
        },
    )
    return threshold


def _row(sampler: Sampler, candidate, filters) -> dict[str, Any]:
    return shard_row(
        sampler.name,
        candidate,
        generator=sampler.backend.name,
        seed=sampler.run["seed"],
        truncation=sampler.truncation,
        filters=filters,
    )


def _writer_options(sampler: Sampler, workers: int) -> dict[str, Any]:
    run = sampler.run
    return {
        "image_format": run["image_format"],
        "jpeg_quality": run["jpeg_quality"],
        "png": run.get("png"),  # None: the default settings (a run section from before `png` existed)
        "workers": workers,
    }


def _write_rows(sampler: Sampler, path: str, candidates, workers: int = 1) -> None:
    """Write (candidate, the filters it went through) pairs of the run as a shard in the run's format."""
    write_shard(path, (_row(sampler, c, filters) for c, filters in candidates), **_writer_options(sampler, workers))


def write_run_shard(
    sampler: Sampler,
    shard: int,
    rows: int,
    files: RunFiles,
    out: Mapping[str, str],
    *,
    workers: int = 1,
    overlap: bool = True,
) -> dict:
    """Sample shard ``shard`` (``rows`` kept pairs); write ``out["shard"]``, ``out["stats"]`` and
    ``out["rejected"]`` (a few rejected examples, same schema); return the statistics.

    The shard streams: with ``overlap`` the generator runs on a producer thread ahead of the filters
    (:func:`synthsod.synthesis.sampling.proposals`), and each kept pair is encoded (on ``workers``
    threads) and written as it is found (:class:`synthsod.synthesis.shards.ShardWriter`), so memory does not
    grow with ``rows``. The files' bytes depend on neither setting; each file is written atomically, so
    a killed job leaves no partial output and its rerun writes the same bytes.
    """
    run = sampler.run
    started = time.perf_counter()
    filters_ran = sampler.filters.enabled()
    with shard_writer(out["shard"], **_writer_options(sampler, workers)) as writer:
        result = sample_shard(
            sampler.propose,
            sampler.filters,
            rows=rows,
            block=candidate_block(shard, run["rows_per_shard"], run["max_candidates_factor"]),
            batch_size=run["batch_size"],
            score=sampler.score,
            dq_threshold=dq_threshold(run, files),
            where=f"run {sampler.name} shard {shard}",
            keep=lambda candidate: writer.add(_row(sampler, candidate, filters_ran)),
            overlap=overlap,
        )
    _write_rows(sampler, out["rejected"], [(c, filters_ran[: filters_ran.index(r) + 1]) for c, r in result.rejected])
    stats = {"shard": shard, **result.stats(), "seconds": round(time.perf_counter() - started, 3)}
    for example in stats["examples"]:
        example["id"] = sample_id(sampler.name, example["index"])
    write_json_atomic(out["stats"], stats)
    return stats


__all__ = [
    "BIGBIGAN",
    "Backend",
    "RunFiles",
    "Sampler",
    "backend_renderer",
    "calibrate",
    "latent_source",
    "open_backend",
    "open_run",
    "write_run_shard",
]
