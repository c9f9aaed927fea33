"""`synthsod evaluate` and evaluate_folders: pairing by stem, missing / corrupt files, resizing; the protocol
switch (pysodmetrics / ebigbigan) through the evaluation and the prediction's resize."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from synthsod.cli import main
from synthsod.errors import SynthsodError
from synthsod.evaluation.evaluate import evaluate_folders, evaluate_manifest
from synthsod.evaluation.metrics import EBIGBIGAN, PYSODMETRICS, SODMetrics
from synthsod.sod.predict import resized_shape, write_predictions


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


# --- the protocol switch (evaluation.protocol) --------------------------------------------------------


def test_folders_under_the_ebigbigan_protocol_equal_its_metrics_of_the_pairs(folders):
    pred, gt, pairs = folders
    reference = SODMetrics(EBIGBIGAN)
    for saliency, mask in pairs.values():
        reference.step(saliency, mask)
    paper, default = evaluate_folders(pred, gt, protocol=EBIGBIGAN), evaluate_folders(pred, gt)
    assert paper.metrics == pytest.approx(reference.results(), abs=1e-12)
    assert default.metrics == pytest.approx(evaluate_folders(pred, gt, protocol=PYSODMETRICS).metrics, abs=0)


def test_manifest_evaluation_passes_the_protocol_on(folders):
    pred, gt, pairs = folders
    manifest = pd.DataFrame({"id": sorted(pairs), "mask": [str(gt / f"{stem}.png") for stem in sorted(pairs)]})
    faint = {stem: (saliency // 3, mask) for stem, (saliency, mask) in pairs.items()}  # every map below 0.5
    for stem, (saliency, _) in faint.items():
        _write(pred, f"{stem}.png", saliency)
    assert evaluate_manifest(pred, manifest, protocol=EBIGBIGAN).metrics["iou"] == 0.0
    assert evaluate_manifest(pred, manifest).metrics["iou"] > 0.5


class _ShapeRecorder(torch.nn.Module):
    """A one-channel 'model' that records its input sizes and answers each pixel's mean brightness (so the
    map shows where the image was cropped or padded)."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.shapes: list[tuple[int, int]] = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[2:]))
        return [(x.mean(dim=1, keepdim=True) * self.weight) * 4]


def _manifest_of(folder, images: dict[str, np.ndarray]) -> pd.DataFrame:
    for stem, image in images.items():
        _write(folder, f"{stem}.png", image)
    return pd.DataFrame({"id": list(images), "image": [str(folder / f"{stem}.png") for stem in images]})


@pytest.mark.parametrize(
    ("width", "height", "square", "shorter_side", "padded"),
    [
        (200, 100, (128, 128), (128, 256), (128, 256)),  # landscape: already a multiple of 32
        (100, 200, (128, 128), (256, 128), (256, 128)),  # portrait
        (170, 128, (128, 128), (128, 170), (128, 192)),  # 170 is padded to 192, the map cropped back
        (301, 200, (128, 128), (128, 192), (128, 192)),  # 128 * 301 // 200 = 192 (the paper's code floors)
    ],
)
def test_ebigbigan_resize_keeps_the_aspect_ratio(tmp_path, width, height, square, shorter_side, padded):
    assert resized_shape(height, width, 128) == square
    assert resized_shape(height, width, 128, "shorter_side") == shorter_side
    image = np.zeros((height, width, 3), np.uint8)
    image[:, width // 2 :] = 255  # dark left half, bright right half
    manifest = _manifest_of(tmp_path / "images", {"im": image})
    for resize, seen in (("square", square), ("shorter_side", padded)):
        model, out = _ShapeRecorder(), tmp_path / resize
        out.mkdir()
        assert write_predictions(model, manifest, out, 128, None, resize=resize) == 1
        assert model.shapes == [seen]
        saliency = np.asarray(Image.open(out / "im.png"))
        assert saliency.shape == (height, width)  # resized back to the image
        # the crop keeps the image's own pixels: dark left, bright right, the edge where it was
        assert saliency[:, : width // 2 - 3].max() < 60 and saliency[:, width // 2 + 3 :].min() > 195


def test_images_of_two_shapes_in_one_batch_are_predicted_apart(tmp_path):
    rng = np.random.default_rng(1)
    images = {
        "a": rng.integers(0, 256, (100, 200, 3), dtype=np.uint8),
        "b": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
        "c": rng.integers(0, 256, (50, 100, 3), dtype=np.uint8),
    }
    manifest = _manifest_of(tmp_path / "images", images)
    model = _ShapeRecorder()
    write_predictions(model, manifest, tmp_path / "batch", 128, None, batch_size=3, resize="shorter_side")
    assert model.shapes == [(128, 256), (128, 128)]  # a and c together, then b
    one = _ShapeRecorder()
    for stem in images:  # one at a time: the same maps
        write_predictions(one, manifest[manifest["id"] == stem], tmp_path / "single", 128, None, resize="shorter_side")
    for stem in images:
        np.testing.assert_array_equal(
            np.asarray(Image.open(tmp_path / "batch" / f"{stem}.png")),
            np.asarray(Image.open(tmp_path / "single" / f"{stem}.png")),
        )


def test_unknown_resize_and_coop_with_shorter_side_are_refused(tmp_path):
    manifest = _manifest_of(tmp_path / "images", {"im": np.zeros((8, 8, 3), np.uint8)})
    with pytest.raises(SynthsodError, match="unknown prediction resize 'stretch'"):
        write_predictions(_ShapeRecorder(), manifest, tmp_path, 32, None, resize="stretch")
    with pytest.raises(SynthsodError, match="coop model"):
        write_predictions(
            _ShapeRecorder(), manifest, tmp_path, 32, None, uncertainty_dir=tmp_path, resize="shorter_side"
        )
