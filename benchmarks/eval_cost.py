"""What our evaluation protocol costs against the plain pysodmetrics loop a user would write (CPU).

Usage: ``python benchmarks/eval_cost.py [--images 100] [--height 320] [--width 400] [--repeats 3]``

Data: ``--images`` synthetic pairs of ``--height`` x ``--width`` 8-bit grey PNGs (DUTS-like by
default) written to a temporary directory from seed 0. A ground truth is smooth blobs (blurred noise
cut at a random quantile, 10-50 % foreground); its prediction is the blurred ground truth plus blurred
noise, soft and correlated with the truth, so the curves and the adaptive thresholds are not
degenerate. Prediction and ground truth share a file name.

Three loops over the same files, each giving the dataset's scalars:

* ``ours``: :func:`synthsod.evaluation.evaluate.evaluate_folders`, the benchmark protocol: list and pair the
  files by stem, decode each with PIL (:func:`synthsod.data.prepare.load_gray`), check types and sizes,
  step :class:`synthsod.evaluation.metrics.SODMetrics` (MAE, S-measure, E-measure, weighted F, and FmeasureV2
  with F dynamic + adaptive, precision, recall, TPR and FPR dynamic, IoU and accuracy binary), then
  every scalar (AUC included) and the curves;
* ``plain``: the loop of pysodmetrics' README: sorted file names, ``cv2.imread(path,
  IMREAD_GRAYSCALE)`` for each pair, ``step`` of ``psm.Fmeasure`` (the classic class: adaptive F and
  the precision, recall and F curves), ``MAE``, ``Smeasure``, ``Emeasure`` and ``WeightedFmeasure``,
  then their ``get_results``. It computes a subset of ours (no TPR / FPR curves, IoU, accuracy, AUC)
  and checks nothing;
* ``metrics_only`` (to split the ratio): the plain loop's cv2 reading stepping ``SODMetrics``, i.e.
  our metrics without our file handling.

Timing: :func:`sample_cost.rounds`: one warm-up pass of each loop (which also brings the files into
the page cache), then ``--repeats`` rounds, each running every loop once, one after the other, so a
burst of load from other processes hits all of them alike; the best round counts. The ratio is ours /
plain in images per second (below 1: ours is slower).

Agreement: the scalars both loops compute (MAE, S-measure, weighted F, max / mean / adaptive F, max /
mean / adaptive E) must agree within ``TOLERANCE``; the JSON keeps every pair of values.

Results go to ``benchmarks/out/eval_cost.json``; a Markdown table is printed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import py_sod_metrics as psm

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gmask_cost import REPO  # noqa: E402
from sample_cost import rounds  # noqa: E402

from synthsod.evaluation.evaluate import evaluate_folders  # noqa: E402
from synthsod.evaluation.metrics import BETA, SODMetrics  # noqa: E402

OUT = REPO / "benchmarks" / "out" / "eval_cost.json"
SEED = 0
TOLERANCE = 1e-9
SHARED = ("mae", "s_measure", "weighted_f", "max_f", "mean_f", "adp_f", "max_e", "mean_e", "adp_e")
LOOPS = ("ours", "plain", "metrics_only")


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(rng.standard_normal(shape).astype(np.float32), (0, 0), sigma)


def synthetic_pair(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 prediction, uint8 binary ground truth) of ``shape``; see the module docstring."""
    blobs = smooth_noise(rng, shape, sigma=min(shape) / 10)
    gt = blobs > np.quantile(blobs, 1 - rng.uniform(0.1, 0.5))
    soft = cv2.GaussianBlur(gt.astype(np.float32), (0, 0), min(shape) / 40)
    pred = soft + smooth_noise(rng, shape, sigma=min(shape) / 20) * 4  # noise std ~0.1 after the blur
    return np.clip(pred * 255, 0, 255).astype(np.uint8), gt.astype(np.uint8) * 255


def write_pairs(root: Path, count: int, shape: tuple[int, int]) -> tuple[Path, Path]:
    """``count`` pairs as ``root/pred/NNNN.png`` and ``root/gt/NNNN.png``."""
    rng = np.random.default_rng(SEED)
    pred_dir, gt_dir = root / "pred", root / "gt"
    pred_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for k in range(count):
        pred, gt = synthetic_pair(rng, shape)
        cv2.imwrite(str(pred_dir / f"{k:04d}.png"), pred)
        cv2.imwrite(str(gt_dir / f"{k:04d}.png"), gt)
    return pred_dir, gt_dir


def read_pairs(pred_dir: Path, gt_dir: Path):
    """The plain loop's reading: (prediction, ground truth) uint8 arrays by sorted file name."""
    for name in sorted(p.name for p in gt_dir.iterdir()):
        yield (
            cv2.imread(str(pred_dir / name), cv2.IMREAD_GRAYSCALE),
            cv2.imread(str(gt_dir / name), cv2.IMREAD_GRAYSCALE),
        )


def plain_pysodmetrics(pred_dir: Path, gt_dir: Path) -> dict[str, float]:
    """The README loop of pysodmetrics; the scalars named as in :data:`synthsod.evaluation.metrics.SCALARS`."""
    with warnings.catch_warnings():  # psm.Fmeasure warns that it will move to FmeasureV2
        warnings.simplefilter("ignore", UserWarning)
        fm = psm.Fmeasure(beta=BETA)
    wfm, sm, em, mae = psm.WeightedFmeasure(), psm.Smeasure(), psm.Emeasure(), psm.MAE()
    for pred, gt in read_pairs(pred_dir, gt_dir):
        for metric in (fm, wfm, sm, em, mae):
            metric.step(pred=pred, gt=gt)
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {
        "mae": float(mae.get_results()["mae"]),
        "s_measure": float(sm.get_results()["sm"]),
        "weighted_f": float(wfm.get_results()["wfm"]),
        "max_f": float(f["curve"].max()),
        "mean_f": float(f["curve"].mean()),
        "adp_f": float(f["adp"]),
        "max_e": float(e["curve"].max()),
        "mean_e": float(e["curve"].mean()),
        "adp_e": float(e["adp"]),
    }


def metrics_only(pred_dir: Path, gt_dir: Path) -> dict[str, float]:
    """Our metrics on the plain loop's cv2 reading."""
    metrics = SODMetrics()
    for pred, gt in read_pairs(pred_dir, gt_dir):
        metrics.step(pred, gt)
    return metrics.results()


def agreement(ours: dict[str, float], plain: dict[str, float]) -> dict[str, object]:
    """Per shared scalar: both values and |difference|; ``agree`` when every difference <= TOLERANCE."""
    values = {
        name: {"ours": ours[name], "plain": plain[name], "abs_diff": abs(ours[name] - plain[name])} for name in SHARED
    }
    return {
        "agree": all(v["abs_diff"] <= TOLERANCE for v in values.values()),
        "tolerance": TOLERANCE,
        "metrics": values,
    }


def measure(count: int, shape: tuple[int, int], repeats: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        pred_dir, gt_dir = write_pairs(Path(tmp), count, shape)
        results: dict[str, dict[str, float]] = {}
        loops = {
            "ours": lambda: evaluate_folders(pred_dir, gt_dir).metrics,
            "plain": lambda: plain_pysodmetrics(pred_dir, gt_dir),
            "metrics_only": lambda: metrics_only(pred_dir, gt_dir),
        }
        times = rounds(
            {name: lambda _, name=name, fn=fn: results.__setitem__(name, fn()) for name, fn in loops.items()},
            [range(count)] * (repeats + 1),
        )
    row: dict[str, object] = {f"{name}_images_per_s": 1 / min(t) for name, t in times.items()}
    row["ratio_ours_to_plain"] = row["ours_images_per_s"] / row["plain_images_per_s"]
    row["rounds_s_per_image"] = times
    row["agreement"] = agreement(results["ours"], results["plain"])
    row["ours_metrics"] = results["ours"]
    return row


def markdown(row: dict, count: int, shape: tuple[int, int]) -> str:
    ours, plain, only = (row[f"{name}_images_per_s"] for name in LOOPS)
    agree = row["agreement"]
    worst = max(v["abs_diff"] for v in agree["metrics"].values())
    return "\n".join(
        [
            f"{count} pairs of {shape[0]}x{shape[1]} PNGs; images/s, best round.",
            "",
            "| ours (evaluate_folders) | plain pysodmetrics loop | ours / plain | our metrics on cv2 reading"
            " | shared metrics agree (max abs diff) |",
            "|---|---|---|---|---|",
            f"| {ours:.1f} | {plain:.1f} | {ours / plain:.2f} | {only:.1f} | {agree['agree']} ({worst:.1e}) |",
        ]
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--height", type=int, default=320)
    parser.add_argument("--width", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    shape = (args.height, args.width)
    start = time.perf_counter()
    row = measure(args.images, shape, args.repeats)
    result = {"settings": vars(args) | {"out": str(args.out)}, "runtime_s": time.perf_counter() - start, "results": row}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(markdown(row, args.images, shape))
    print(f"\nruntime {result['runtime_s']:.0f} s; JSON: {args.out}")
    return result


if __name__ == "__main__":
    main()
