"""`synthsod evaluate` and evaluate_folders: pairing by stem, missing / corrupt files, resizing."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from synthsod.cli import main
from synthsod.errors import SynthsodError
from synthsod.evaluation.evaluate import evaluate_folders
from synthsod.evaluation.metrics import SODMetrics


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(folder / name)


@pytest.fixture
def folders(tmp_path):
    rng = np.random.default_rng(0)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pairs = {}
    for i in range(4):
        mask = np.zeros((20, 24), np.uint8)
        mask[4 + i : 14, 5:18] = 255
        saliency = np.clip(mask * 0.8 + rng.integers(0, 60, mask.shape), 0, 255).astype(np.uint8)
        _write(gt, f"im{i}.png", mask)
        _write(pred, f"im{i}.png", saliency)
        pairs[f"im{i}"] = (saliency, mask)
    return pred, gt, pairs


def test_folder_metrics_equal_the_metrics_of_the_pairs(folders):
    pred, gt, pairs = folders
    reference = SODMetrics()
    for saliency, mask in pairs.values():
        reference.step(saliency, mask)
    result = evaluate_folders(pred, gt)
    assert result.evaluated == 4 and result.resized == 0 and not result.problems
    assert result.metrics == pytest.approx(reference.results(), abs=1e-12)


def test_missing_and_corrupt_predictions_stop_the_evaluation_naming_both(folders, capsys):
    pred, gt, _ = folders
    (pred / "im1.png").unlink()
    (pred / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(SynthsodError, match="2 of 4 images") as err:
        evaluate_folders(pred, gt)
    assert f"{gt / 'im1.png'}: no prediction named im1.*" in str(err.value)
    assert f"{pred / 'im2.png'}: unreadable or corrupt file" in str(err.value)

    assert main(["evaluate", str(pred), str(gt)]) == 1
    assert "im1" in capsys.readouterr().err

    out = pred.parent / "metrics.json"
    assert main(["evaluate", str(pred), str(gt), "--skip-bad", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["evaluated"] == 2 and len(record["skipped"]) == 2
    assert "skipped:" in capsys.readouterr().err


def test_prediction_of_another_size_is_resized_to_its_ground_truth(folders):
    pred, gt, pairs = folders
    saliency, _ = pairs["im0"]
    large = cv2.resize(saliency, (48, 40), interpolation=cv2.INTER_NEAREST)
    _write(pred, "im0.png", large)
    result = evaluate_folders(pred, gt)
    assert result.resized == 1 and result.evaluated == 4
    reference = SODMetrics()  # the same metrics with im0's prediction brought back to its mask's size
    for stem, (s, mask) in pairs.items():
        reference.step(
            cv2.resize(large, mask.shape[::-1], interpolation=cv2.INTER_LINEAR) if stem == "im0" else s, mask
        )
    assert result.metrics == pytest.approx(reference.results(), abs=1e-12)


def test_missing_folder_fails_plainly(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path / "nope"), str(tmp_path)]) == 1
    assert f"prediction folder not found: {tmp_path / 'nope'}" in capsys.readouterr().err
