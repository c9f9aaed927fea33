"""The benchmark protocols against pysodmetrics' own classes and brute-force references (pysodmetrics's and
E-BigBiGAN's)."""

from __future__ import annotations

import warnings

import numpy as np
import py_sod_metrics as psm
import pytest

from synthsod.errors import SynthsodError
from synthsod.evaluation.metrics import EBIGBIGAN, PYSODMETRICS, SCALARS, SODMetrics

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


# --- the ebigbigan protocol (E-BigBiGAN's paper and code) ----------------------------------------------


def brute_force_paper(pairs) -> dict[str, float]:
    """E-BigBiGAN's max F, IoU and accuracy written out loop by loop on raw maps (no stretching): ground truth
    gt / 255 >= 0.5, IoU and accuracy at p >= 0.5, F of p > k / 255 (k = 0..254) per image, averaged per
    threshold, precision 1 on an empty prediction, recall 1 on an empty ground truth, F 0 when both are 0."""
    ious, accs, fs = [], [], []
    for pred, gt in pairs:
        p, g = pred.astype(int), gt.astype(float) / 255 >= 0.5
        b = p / 255 >= 0.5
        union = np.logical_or(b, g).sum()
        ious.append(np.logical_and(b, g).sum() / union if union else 1.0)
        accs.append((b == g).mean())
        row = []
        for k in range(255):
            s = p > k
            tp = np.logical_and(s, g).sum()
            precision = tp / s.sum() if s.sum() else 1.0
            recall = tp / g.sum() if g.sum() else 1.0
            row.append(1.3 * precision * recall / (0.3 * precision + recall) if precision + recall else 0.0)
        fs.append(row)
    f = np.mean(fs, axis=0)
    return {"max_f": f.max(), "mean_f": f.mean(), "iou": np.mean(ious), "accuracy": np.mean(accs)}


def evaluate_as(protocol: str, pairs) -> SODMetrics:
    metrics = SODMetrics(protocol)
    for pred, gt in pairs:
        metrics.step(pred, gt)
    return metrics


@pytest.mark.parametrize("case", list(CASES))
def test_ebigbigan_figures_match_the_paper_written_out(case):
    got = evaluate_as(EBIGBIGAN, CASES[case]).results()
    for key, value in brute_force_paper(CASES[case]).items():
        assert got[key] == pytest.approx(float(value), abs=1e-9), key


@pytest.mark.parametrize("case", list(CASES))
def test_ebigbigan_keeps_every_other_figure_of_pysodmetrics(case):
    paper, psod = evaluate_as(EBIGBIGAN, CASES[case]), evaluate_as(PYSODMETRICS, CASES[case])
    assert list(paper.results()) == list(psod.results()) == list(SCALARS)
    for key in set(SCALARS) - {"max_f", "mean_f", "iou", "accuracy"}:
        assert paper.results()[key] == psod.results()[key], key
    for key in ("e", "tpr", "fpr"):
        np.testing.assert_array_equal(paper.curves()[key], psod.curves()[key])
    curves = paper.curves()
    assert all(len(curves[key]) == 256 for key in ("precision", "recall", "f"))
    assert paper.results()["max_f"] == pytest.approx(curves["f"][:-1].max())  # curves run from 255 down to 0


def _blob() -> np.ndarray:
    blob = np.zeros(SIZE, np.uint8)
    blob[6:18, 8:20] = 255
    return blob


def test_a_faint_map_is_empty_under_ebigbigan_but_stretched_under_pysodmetrics():
    blob = _blob()
    faint = np.where(blob > 0, 102, 0).astype(np.uint8)  # probability 0.4 on the object, 0 elsewhere
    paper, psod = (
        evaluate_as(EBIGBIGAN, [(faint, blob)]).results(),
        evaluate_as(PYSODMETRICS, [(faint, blob)]).results(),
    )
    assert paper["iou"] == 0.0 and paper["accuracy"] == pytest.approx(1 - (blob > 0).mean())
    assert psod["iou"] == pytest.approx(1.0) and psod["accuracy"] == 1.0  # stretched: 0.4 becomes 1
    # the F curve still finds the object below 0.5 (its thresholds run from 0 up)
    assert paper["max_f"] == pytest.approx(1.0) and psod["max_f"] == pytest.approx(1.0)
    # at exactly 0.5 (8-bit 128) the object is foreground; one level lower it is not
    for value, iou in ((128, 1.0), (127, 0.0)):
        pred = np.where(blob > 0, value, 0).astype(np.uint8)
        assert evaluate_as(EBIGBIGAN, [(pred, blob)]).results()["iou"] == iou


def test_ebigbigan_ground_truth_counts_half_grey_as_foreground():
    gt = np.where(_blob() > 0, 128, 0).astype(np.uint8)  # a soft mask at exactly half grey
    pred = np.where(gt > 0, 255, 0).astype(np.uint8)
    assert evaluate_as(EBIGBIGAN, [(pred, gt)]).results()["iou"] == 1.0  # gt / 255 >= 0.5
    assert evaluate_as(PYSODMETRICS, [(pred, gt)]).results()["iou"] == 0.0  # gt > 128: no foreground


def test_ebigbigan_max_f_leaves_out_the_all_foreground_threshold():
    full, empty = np.full(SIZE, 255, np.uint8), np.zeros(SIZE, np.uint8)
    metrics = evaluate_as(EBIGBIGAN, [(empty, full)])
    assert metrics.curves()["f"][-1] == pytest.approx(1.0)  # v >= 0: everything predicted, all of it right
    assert metrics.results()["max_f"] == 0.0  # the paper's thresholds start at v > 0: nothing predicted
    assert metrics.results()["mean_f"] == 0.0


def test_unknown_protocol_is_refused():
    with pytest.raises(SynthsodError, match="unknown evaluation protocol 'paper'.*pysodmetrics, ebigbigan"):
        SODMetrics("paper")
