"""Evaluate a folder of saliency maps against a folder of ground-truth masks (a protocol of
:mod:`synthsod.evaluation.metrics`: ``pysodmetrics``, the default, or ``ebigbigan``).

Files pair by stem (``0001.png`` with ``0001.jpg`` or ``0001.png``). A ground truth without a
prediction, a file that does not decode, or two candidate files for one stem is a problem: by
default the evaluation stops and lists every problem (a benchmark silently missing images would
report better numbers than it earned); ``skip_bad`` evaluates the rest and reports what it skipped.
A prediction of another size than its ground truth is resized to it (bilinear) and counted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from synthsod.core.progress import progress
from synthsod.data.prepare import list_image_files, load_gray
from synthsod.errors import SynthsodError
from synthsod.evaluation.metrics import PYSODMETRICS, SODMetrics

MAX_LISTED_PROBLEMS = 20


@dataclass
class Evaluation:
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    evaluated: int
    resized: int
    problems: list[str] = field(default_factory=list)


def evaluate_pairs(
    pairs: Iterable[tuple[Path | None, Path]],
    *,
    skip_bad: bool = False,
    problems: list[str] | None = None,
    protocol: str = PYSODMETRICS,
) -> Evaluation:
    """Evaluate (prediction path or None when missing, ground-truth path) pairs under ``protocol``; see the
    module docstring."""
    metrics, problems, resized, total = SODMetrics(protocol), list(problems or []), 0, len(problems or [])
    for pred_path, gt_path in progress(pairs, desc="evaluation", unit="image"):
        total += 1
        if pred_path is None:
            problems.append(f"{gt_path}: no prediction named {gt_path.stem}.*")
            continue
        try:
            pred, gt = load_gray(pred_path), load_gray(gt_path)
        except SynthsodError as exc:
            problems.append(str(exc))
            continue
        if pred.shape != gt.shape:
            pred = cv2.resize(pred, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)
            resized += 1
        metrics.step(pred, gt, name=str(gt_path))
    if problems and not skip_bad:
        listed = "\n".join(f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS])
        more = len(problems) - MAX_LISTED_PROBLEMS
        raise SynthsodError(
            f"{len(problems)} of {total} images cannot be evaluated:\n{listed}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )
    return Evaluation(metrics.results(), metrics.curves(), metrics.count, resized, problems)


def evaluate_folders(
    pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, *, skip_bad: bool = False, protocol: str = PYSODMETRICS
) -> Evaluation:
    """Every ground truth in ``gt_dir`` against the prediction of the same stem in ``pred_dir``."""
    predictions = list_image_files(pred_dir, "prediction")
    truths = list_image_files(gt_dir, "ground-truth")
    pairs, ambiguous = [], []
    for stem in sorted(truths):
        names = predictions.get(stem, [])
        if len(truths[stem]) > 1 or len(names) > 1:
            ambiguous.append(f"{stem}: several files ({', '.join(truths[stem] + names)}); keep one per stem")
            continue
        pairs.append((Path(pred_dir) / names[0] if names else None, Path(gt_dir) / truths[stem][0]))
    return evaluate_pairs(pairs, skip_bad=skip_bad, problems=ambiguous, protocol=protocol)


def evaluate_manifest(
    pred_dir: str | os.PathLike, manifest: pd.DataFrame, *, skip_bad: bool = False, protocol: str = PYSODMETRICS
) -> Evaluation:
    """A prepared benchmark (its manifest's masks) against ``pred_dir/<id>.png``."""
    pairs = []
    for sample_id, mask in zip(manifest["id"], manifest["mask"]):
        pred = Path(pred_dir) / f"{sample_id}.png"
        pairs.append((pred if pred.is_file() else None, Path(mask)))
    return evaluate_pairs(pairs, skip_bad=skip_bad, protocol=protocol)


__all__ = ["Evaluation", "evaluate_folders", "evaluate_manifest", "evaluate_pairs"]
