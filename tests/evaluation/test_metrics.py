"""The benchmark protocol against pysodmetrics' own classes and brute-force references."""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm
import pytest

from synthsod.errors import SynthsodError
from synthsod.evaluation.metrics import SODMetrics

SIZE = (24, 32)


def _cases() -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(0)
    random_pairs = [
        ((rng.random(SIZE) * 255).astype(np.uint8), ((rng.random(SIZE) > 0.7) * 255).astype(np.uint8)) for _ in range(4)
    ]
    blob = np.zeros(SIZE, np.uint8)
    blob[6:18, 8:20] = 255
    soft_gt = (rng.random(SIZE) * 255).astype(np.uint8)  # soft ground truth: binarised at > 128
    noisy = np.clip(blob.astype(int) + rng.integers(-60, 60, SIZE), 0, 255).astype(np.uint8)
    return {
        "random": random_pairs,
        "empty_gt": [(noisy, np.zeros(SIZE, np.uint8)), (np.zeros(SIZE, np.uint8), np.zeros(SIZE, np.uint8))],
        "full_gt": [(noisy, np.full(SIZE, 255, np.uint8))],
        "constant_prediction": [(np.full(SIZE, 77, np.uint8), blob), (np.zeros(SIZE, np.uint8), blob)],
        "soft_gt": [(noisy, soft_gt)],
        "mixed": [*random_pairs[:2], (noisy, blob), (np.full(SIZE, 255, np.uint8), blob)],
    }


CASES = _cases()


def reference(pairs) -> dict[str, float]:
    """The same numbers from pysodmetrics' classic per-metric classes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        fm, em, sm, wfm, mae = psm.Fmeasure(beta=0.3), psm.Emeasure(), psm.Smeasure(), psm.WeightedFmeasure(), psm.MAE()
    for pred, gt in pairs:
        for metric in (fm, em, sm, wfm, mae):
            metric.step(pred, gt)
    f, e = fm.get_results()["fm"], em.get_results()["em"]
    return {
        "mae": mae.get_results()["mae"],
        "max_f": f["curve"].max(),
        "mean_f": f["curve"].mean(),
        "adp_f": f["adp"],
        "s_measure": sm.get_results()["sm"],
        "max_e": e["curve"].max(),
        "mean_e": e["curve"].mean(),
        "adp_e": e["adp"],
        "weighted_f": wfm.get_results()["wfm"],
    }


def brute_force_binary(pairs) -> tuple[float, float]:
    """Mean IoU and accuracy of (min-max normalised prediction > 0.5) against (gt > 128)."""
    ious, accs = [], []
    for pred, gt in pairs:
        p = pred / 255.0
        if p.max() != p.min():
            p = (p - p.min()) / (p.max() - p.min())
        b, g = p > 0.5, gt > 128
        union = np.logical_or(b, g).sum()
        ious.append(np.logical_and(b, g).sum() / union if union else 0.0)  # pysodmetrics: 0 / (0 + eps)
        accs.append((b == g).mean())
    return float(np.mean(ious)), float(np.mean(accs))


def evaluate(pairs) -> dict[str, float]:
    metrics = SODMetrics()
    for pred, gt in pairs:
        metrics.step(pred, gt)
    return metrics.results()


@pytest.mark.parametrize("case", list(CASES))
def test_metrics_equal_pysodmetrics_classes(case):
    got, want = evaluate(CASES[case]), reference(CASES[case])
    for key, value in want.items():
        assert got[key] == pytest.approx(float(value), abs=1e-9), key


@pytest.mark.parametrize("case", list(CASES))
def test_iou_and_accuracy_at_half_match_brute_force(case):
    got = evaluate(CASES[case])
    iou, accuracy = brute_force_binary(CASES[case])
    assert got["iou"] == pytest.approx(iou, abs=1e-9)
    assert got["accuracy"] == pytest.approx(accuracy, abs=1e-9)


def test_auc_of_perfect_reversed_and_random_predictions():
    blob = np.zeros(SIZE, np.uint8)
    blob[6:18, 8:20] = 255
    assert evaluate([(np.where(blob > 0, 200, 30).astype(np.uint8), blob)])["auc"] == pytest.approx(1.0)
    assert evaluate([(np.where(blob > 0, 30, 200).astype(np.uint8), blob)])["auc"] == pytest.approx(0.0)
    # one image: the area equals the rank statistic P(score_fg > score_bg) + P(tie) / 2
    rng = np.random.default_rng(3)
    pred = np.clip(blob * 0.3 + rng.integers(0, 180, SIZE), 0, 255).astype(np.uint8)
    pred[0, 0], pred[0, 1] = 0, 255  # min-max stretching is then the identity
    fg, bg = pred[blob > 0].astype(float), pred[blob == 0].astype(float)
    wins = (fg[:, None] > bg[None, :]).mean() + 0.5 * (fg[:, None] == bg[None, :]).mean()
    assert evaluate([(pred, blob)])["auc"] == pytest.approx(wins, abs=1e-9)


def test_bad_inputs_name_the_image():
    metrics = SODMetrics()
    with pytest.raises(SynthsodError, match="img7: prediction .* differ in size"):
        metrics.step(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8), name="img7")
    with pytest.raises(SynthsodError, match="img8: ground truth must be a uint8"):
        metrics.step(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.float32), name="img8")
    with pytest.raises(SynthsodError, match="no image"):
        metrics.results()
