"""Untrained baselines: the Otsu luminance map, written per benchmark image like a model's predictions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from synthsod.core.images import write_image
from synthsod.errors import SynthsodError
from synthsod.evaluation.baselines import BASELINES, otsu_saliency, write_baseline_predictions


def _scene(shape: tuple[int, int], box: tuple[slice, slice], fg, bg) -> np.ndarray:
    image = np.empty((*shape, 3), np.uint8)
    image[:] = bg
    image[box] = fg
    return image


def test_otsu_calls_foreground_the_side_that_does_not_hold_the_border():
    box = (slice(5, 15), slice(8, 20))
    for fg, bg in (((240, 240, 240), (20, 30, 40)), ((10, 10, 10), (200, 220, 180))):  # bright and dark objects
        saliency = otsu_saliency(_scene((24, 32), box, fg, bg))
        assert saliency.dtype == np.uint8 and set(np.unique(saliency)) == {0, 255}
        expected = np.zeros((24, 32), bool)
        expected[box] = True
        assert np.array_equal(saliency > 0, expected), (fg, bg)


def _manifest(tmp_path) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    images, records = {}, []
    for i, (shape, suffix) in enumerate((((24, 32), ".png"), ((40, 30), ".jpg"), ((16, 16), ".png"))):
        box = (slice(4, shape[0] - 6), slice(3 + i, shape[1] // 2 + i))
        image = _scene(shape, box, tuple(rng.integers(150, 255, 3)), tuple(rng.integers(0, 100, 3)))
        image = np.clip(image.astype(int) + rng.integers(-8, 9, image.shape), 0, 255).astype(np.uint8)
        path = tmp_path / "images" / f"im{i}{suffix}"
        path.parent.mkdir(exist_ok=True)
        write_image(path, image)
        images[f"im{i}"] = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)  # as decoded (JPEG)
        records.append({"id": f"im{i}", "image": str(path), "mask": str(path)})
    return pd.DataFrame(records), images


def test_baseline_predictions_are_one_png_per_manifest_id_at_the_images_size(tmp_path):
    manifest, images = _manifest(tmp_path)
    out = tmp_path / "pred" / "otsu" / "BENCH"
    assert write_baseline_predictions("otsu", manifest, out) == 3
    assert sorted(p.name for p in out.iterdir()) == ["im0.png", "im1.png", "im2.png"]
    for sample_id, image in images.items():
        written = cv2.imread(str(out / f"{sample_id}.png"), cv2.IMREAD_UNCHANGED)
        assert written.shape == image.shape[:2]  # one gray channel at the image's own size
        assert np.array_equal(written, otsu_saliency(image)), sample_id
        assert 0 < (written > 0).mean() < 0.6  # an object found, not the background
    assert not list(out.glob("*.tmp*"))


def test_an_unknown_baseline_is_refused_before_anything_is_written(tmp_path):
    manifest, _ = _manifest(tmp_path)
    with pytest.raises(SynthsodError, match="unknown baseline 'random'; choose one of otsu"):
        write_baseline_predictions("random", manifest, tmp_path / "pred")
    assert not (tmp_path / "pred").exists()


def test_the_config_schema_offers_exactly_the_known_baselines():
    schema = yaml.safe_load((Path(__file__).resolve().parents[2] / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["baselines"]["items"]["enum"] == list(BASELINES)
