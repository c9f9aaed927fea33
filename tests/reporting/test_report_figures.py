"""Tests for the report's statistics and figures (synthsod.reporting.dataset_stats, synthsod.reporting.figures)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from synthsod.errors import SynthsodError
from synthsod.evaluation.metrics import SCALARS
from synthsod.evaluation.summary import summary_table, write_summary
from synthsod.reporting.dataset_stats import DatasetStats, collect, colour_contrast
from synthsod.reporting.figures import (
    DATASET_FIGURES,
    dataset_figures,
    dataset_pairs,
    filter_counts_figure,
    read_filter_report,
    rejected_examples,
    rejected_figure,
    run_pairs,
    training_curves,
    training_figure,
)
from synthsod.synthesis.shards import TILE_MIN_SIDE, pair_tile, tile_grid, write_manifest, write_shard


def _image(colour, size=8):
    return np.broadcast_to(np.array(colour, np.uint8), (size, size, 3)).copy()


def _disk_mask(size=16, centre=(8, 8), radius=4):
    ys, xs = np.mgrid[:size, :size]
    return (ys - centre[1]) ** 2 + (xs - centre[0]) ** 2 <= radius**2


# --- statistics ---------------------------------------------------------------------------------


def test_colour_contrast_is_zero_for_equal_colours_and_one_for_disjoint_ones() -> None:
    mask = np.zeros((8, 8), bool)
    mask[:4] = True
    assert colour_contrast(_image((200, 10, 10)), mask) == 0.0
    two_colours = _image((10, 10, 10))
    two_colours[mask] = (250, 250, 250)
    assert colour_contrast(two_colours, mask) == pytest.approx(1.0)
    # half the object takes the background's colour: f = (1/2 dark, 1/2 white), b = (1 dark)
    half = two_colours.copy()
    half[:2] = (10, 10, 10)
    assert colour_contrast(half, mask) == pytest.approx(0.5 * ((0.5 - 1) ** 2 / 1.5 + 0.5**2 / 0.5))


def test_colour_contrast_is_nan_without_foreground_or_background() -> None:
    image = _image((1, 2, 3))
    assert np.isnan(colour_contrast(image, np.zeros((8, 8), bool)))
    assert np.isnan(colour_contrast(image, np.ones((8, 8), bool)))


def test_centre_map_sizes_and_centroid() -> None:
    stats = DatasetStats("toy", grid=16)
    left, right = _disk_mask(centre=(4, 8)), _disk_mask(centre=(12, 8))
    stats.add(_image((0, 0, 0), 16), left, 3)
    stats.add(_image((0, 0, 0), 16), right, 3)
    assert stats.count == 2
    assert np.allclose(stats.centre, (left.astype(float) + right) / 2)  # the grid equals the mask size: no resampling
    assert stats.sizes == [left.mean(), right.mean()]
    summary = stats.summary()
    assert summary["centre_of_mass"] == pytest.approx([8.5 / 16, 8.5 / 16], abs=0.01)
    assert summary["classes"] == 1 and summary["images"] == 2
    assert summary["mean_colour_contrast"] == 0.0  # object and background are both black


def test_centre_map_is_resized_to_the_grid_and_classes_count_largest_first() -> None:
    pairs = [
        (_image((9, 9, 9), 32), np.pad(np.ones((16, 16), bool), ((0, 16), (0, 16))), c) for c in (5, 1, 5, 5, 1, 7)
    ]
    stats = collect("toy", pairs, grid=4, limit=5)
    assert stats.count == 5
    assert np.allclose(stats.centre, np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))
    assert stats.class_counts().tolist() == [3, 2]
    assert DatasetStats("empty").class_counts().size == 0


# --- readers ------------------------------------------------------------------------------------


def _row(index, mask, filters=("components", "size"), class_id=0):
    return {
        "id": f"run-{index:016d}",
        "image": np.full((16, 16, 3), 40 * index % 255, np.uint8),
        "mask": mask,
        "seed": 0,
        "index": index,
        "generator": "tiny",
        "class": class_id,
        "truncation": 0.4,
        "latent": [0.0],
        "direction": None,
        "shift": None,
        "dq_score": None,
        "mask_fraction": float(mask.mean()),
        "components": 1,
        "filters": list(filters),
    }


def test_rejected_examples_are_grouped_by_the_last_filter_in_filter_order(tmp_path: Path) -> None:
    mask = _disk_mask()
    rows = [
        _row(0, mask, ("components", "size", "dq")),
        _row(1, mask, ("components",)),
        _row(2, mask, ("components", "size", "dq")),
        _row(3, mask, ("components", "size", "dq")),
    ]
    write_shard(tmp_path / "a.parquet", rows[:2])
    write_shard(tmp_path / "b.parquet", rows[2:])
    examples = rejected_examples([tmp_path / "a.parquet", tmp_path / "b.parquet"], per_filter=2)
    assert list(examples) == ["components", "dq"]
    assert len(examples["components"]) == 1 and len(examples["dq"]) == 2
    assert np.array_equal(examples["dq"][1], pair_tile(rows[2]["image"], mask))  # the first two dq rows, in order
    out = tmp_path / "rejected.png"
    rejected_figure("run", examples, {"components": 1, "dq": 7}, out)
    assert cv2.imread(str(out)) is not None
    rejected_figure("run", {}, {}, tmp_path / "none.png")  # nothing rejected: still a figure
    assert cv2.imread(str(tmp_path / "none.png")) is not None


def test_run_pairs_yield_the_shards_pairs_with_their_class(tmp_path: Path) -> None:
    rows = [_row(i, _disk_mask(radius=2 + i), class_id=10 + i) for i in range(3)]
    write_shard(tmp_path / "shard-00000.parquet", rows)
    write_manifest(tmp_path, [tmp_path / "shard-00000.parquet"], {"run": "run"})
    pairs = list(run_pairs(tmp_path))
    assert [c for _, _, c in pairs] == [10, 11, 12]
    assert all(np.array_equal(m, r["mask"]) for (_, m, _), r in zip(pairs, rows))


def test_dataset_pairs_read_images_masks_and_the_given_classes(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.full((6, 6, 3), (0, 0, 255), np.uint8))  # BGR red
    cv2.imwrite(str(tmp_path / "a_mask.png"), np.pad(np.full((3, 6), 255, np.uint8), ((0, 3), (0, 0))))
    manifest = pd.DataFrame({"id": ["a"], "image": [str(tmp_path / "a.png")], "mask": [str(tmp_path / "a_mask.png")]})
    ((image, mask, class_id),) = dataset_pairs(manifest, {"a": 4})
    assert image[0, 0].tolist() == [255, 0, 0] and mask[:3].all() and not mask[3:].any() and class_id == 4
    assert next(dataset_pairs(manifest))[2] is None


def test_read_filter_report_names_the_file_when_it_is_not_a_report(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"candidates": 10, "kept": 6, "rejected": {"size": 3, "dq": 1}}))
    assert read_filter_report(good) == {
        "candidates": 10,
        "kept": 6,
        "rejected": {"components": 0, "size": 3, "histogram": 0, "dq": 1},
    }
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SynthsodError, match="bad.json: not a filter report"):
        read_filter_report(bad)


# --- figures ------------------------------------------------------------------------------------


def test_training_curves_smooth_each_term_and_run_on_across_rounds() -> None:
    log = pd.DataFrame({"round": [0, 0, 1, 1], "step": [0, 1, 0, 1], "loss": [4.0, 2.0, 2.0, 0.0]})
    curves = training_curves(log)
    assert list(curves.columns) == ["loss"] and curves.index.tolist() == [0, 1, 2, 3]
    long = pd.DataFrame({"step": range(100), "a": np.r_[np.zeros(50), np.ones(50)], "b": 1.0})
    smooth = training_curves(long)
    assert list(smooth.columns) == ["a", "b"] and smooth.index.tolist() == list(range(100))
    assert smooth["a"].iloc[54] == pytest.approx(0.5)  # a 10-step moving average across the jump
    assert smooth["a"].iloc[-1] == 1.0


def test_figures_are_written_as_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    stats = [
        collect(
            name,
            [
                (rng.integers(0, 255, (16, 16, 3), np.uint8), _disk_mask(radius=r), c)
                for r, c in zip((3, 5, 6), classes)
            ],
            grid=8,
        )
        for name, classes in (("synthetic", (1, 2, 3)), ("real", (None, None, None)))
    ]
    out = {name: tmp_path / f"{name}.png" for name in DATASET_FIGURES}
    dataset_figures(stats, out)
    filter_counts_figure(
        {"a": {"candidates": 10, "kept": 6, "rejected": {"components": 0, "size": 3, "histogram": 0, "dq": 1}}},
        tmp_path / "filters.png",
    )
    training_figure({"t": pd.DataFrame({"step": range(5), "ebm": range(5), "lvm": range(5)})}, tmp_path / "train.png")
    for path in [*out.values(), tmp_path / "filters.png", tmp_path / "train.png"]:
        image = cv2.imread(str(path))
        assert image is not None and image.std() > 0, path
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically


CONTOUR = (255, 230, 0)  # pair_tile's contour colour (inside a black rim)


def _enlarged(array: np.ndarray, scale: int) -> np.ndarray:
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def test_pair_tile_draws_the_mask_contour_on_the_boundary_and_leaves_the_rest() -> None:
    ys, xs = np.mgrid[:16, :16]
    mask = (ys - 8) ** 2 + (xs - 7) ** 2 <= 16
    mask[1:4, 12:15] = True  # a second component: each gets its contour
    image = np.full((16, 16, 3), 60, np.uint8)
    image[mask] = (30, 90, 200)
    tile = pair_tile(image, mask)
    scale = TILE_MIN_SIDE // 16  # a 16 px pair is enlarged 8x (nearest neighbour) to stay legible
    assert tile.shape == (2 * TILE_MIN_SIDE, TILE_MIN_SIDE, 3) and tile.dtype == np.uint8
    big, big_mask = _enlarged(image, scale), _enlarged(mask, scale)
    assert np.array_equal(tile[:TILE_MIN_SIDE], big)  # the image itself above
    overlay = tile[TILE_MIN_SIDE:]
    contour = (overlay == CONTOUR).all(-1)
    # the contour: exactly the mask's pixels that touch the background (4-neighbours)
    boundary = big_mask & ~ndimage.binary_erosion(big_mask, border_value=0)
    assert np.array_equal(contour, boundary)
    # the rest is the image, but for a black rim hugging the contour
    changed = (overlay != big).any(-1)
    assert np.array_equal(changed, contour | (changed & (overlay == 0).all(-1)))
    inside = ndimage.distance_transform_cdt(big_mask, metric="chessboard")
    outside = ndimage.distance_transform_cdt(~big_mask, metric="chessboard")
    assert not changed[big_mask & (inside > 3)].any()  # the object's interior is untouched
    assert not changed[~big_mask & (outside > 3)].any()  # and so is the background away from it
    assert changed[~big_mask & (outside == 1)].all()  # the rim is visible just outside the object


def test_pair_tile_enlarges_small_images_only_and_draws_nothing_without_a_mask() -> None:
    rng = np.random.default_rng(0)
    small = rng.integers(0, 200, (20, 40, 3), dtype=np.uint8)
    tile = pair_tile(small, np.zeros((20, 40), bool))
    scale = -(-TILE_MIN_SIDE // 40)  # the longer side reaches TILE_MIN_SIDE: x4
    assert tile.shape == (2 * 20 * scale, 40 * scale, 3)
    assert np.array_equal(tile, np.concatenate([_enlarged(small, scale)] * 2))  # no mask, no contour
    large = rng.integers(0, 200, (TILE_MIN_SIDE, TILE_MIN_SIDE + 8, 3), dtype=np.uint8)
    mask = np.zeros(large.shape[:2], bool)
    mask[40:80, 50:90] = True
    tile = pair_tile(large, mask)
    assert tile.shape == (2 * TILE_MIN_SIDE, TILE_MIN_SIDE + 8, 3)  # large enough: its own size
    assert np.array_equal(tile[:TILE_MIN_SIDE], large)
    contour = (tile[TILE_MIN_SIDE:] == CONTOUR).all(-1)
    assert contour.sum() == 4 * 40 - 4 and contour[40, 50:90].all() and contour[79, 50:90].all()


def test_tile_grid_pads_the_last_row_and_resizes_odd_tiles() -> None:
    tiles = [np.full((4, 2, 3), v, np.uint8) for v in (10, 20, 30)] + [np.full((8, 4, 3), 40, np.uint8)]
    grid = tile_grid(tiles, cols=3)
    assert grid.shape == (8, 6, 3)
    assert grid[4:, 0].tolist() == [[40, 40, 40]] * 4 and not grid[4:, 2:].any()


def test_summary_html_has_the_metrics_and_ratio_tables(tmp_path: Path) -> None:
    metrics = dict.fromkeys(SCALARS, 0.5)
    table = summary_table(
        [
            {"training": "real", "benchmark": "B", "metrics": metrics},
            {"training": "syn", "benchmark": "B", "metrics": {**metrics, "max_f": 0.25}},
        ]
    )
    write_summary(table, tmp_path / "s.csv", tmp_path / "s.md", "real", tmp_path / "s.html")
    page = (tmp_path / "s.html").read_text()
    assert page.count("<table") == 2 and "Ratio to `real`" in page
    assert "<td>0.2500</td>" in page and "<td>0.500</td>" in page  # syn's max F, and its ratio to real
    write_summary(table, tmp_path / "t.csv", tmp_path / "t.md", "real")
    assert not (tmp_path / "t.html").exists()
