"""Evaluate a folder of saliency maps against a folder of ground-truth masks (the protocol of
:mod:`synthsod.metrics`).

Files pair by stem (``0001.png`` with ``0001.jpg`` or ``0001.png``). A ground truth without a
prediction, a file that does not decode, or two candidate files for one stem is a problem: by
default the evaluation stops and lists every problem (a benchmark silently missing images would
report better numbers than it earned); ``skip_bad`` evaluates the rest and reports what it skipped.
A prediction of another size than its ground truth is resized to it (bilinear) and counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import SynthsodError
from .metrics import SODMetrics
from .prepare import list_image_files, load_gray

MAX_LISTED_PROBLEMS = 20


@dataclass
class Evaluation:
    metrics: dict[str, float]
    curves: dict[str, np.ndarray]
    evaluated: int
    resized: int
    problems: list[str] = field(default_factory=list)


def evaluate_folders(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike, *, skip_bad: bool = False) -> Evaluation:
    predictions = list_image_files(pred_dir, "prediction")
    truths = list_image_files(gt_dir, "ground-truth")
    metrics, problems, resized = SODMetrics(), [], 0
    for stem in sorted(truths):
        gt_path = Path(gt_dir) / truths[stem][0]
        names = predictions.get(stem, [])
        if len(truths[stem]) > 1 or len(names) > 1:
            problems.append(f"{stem}: several files ({', '.join(truths[stem] + names)}); keep one per stem")
            continue
        if not names:
            problems.append(f"{gt_path}: no prediction named {stem}.* in {pred_dir}")
            continue
        try:
            pred, gt = load_gray(Path(pred_dir) / names[0]), load_gray(gt_path)
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
        raise SynthsodError(f"{len(problems)} of {len(truths)} images cannot be evaluated:\n{listed}"
                            + (f"\n  ... and {more} more" if more > 0 else ""))
    return Evaluation(metrics.results(), metrics.curves(), metrics.count, resized, problems)


__all__ = ["Evaluation", "evaluate_folders"]
