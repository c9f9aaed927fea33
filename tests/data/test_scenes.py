"""The scene world: deterministic scenes whose masks are exactly the rendered object, disjoint splits,
DUTS-layout folders that prepare_dataset accepts, and a world a global threshold does not solve."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from synthsod.data import scenes
from synthsod.data.prepare import prepare_dataset
from synthsod.errors import SynthsodError
from synthsod.evaluation.baselines import otsu_saliency


def test_a_scene_depends_on_seed_and_index_only():
    a, b = scenes.scene(3, 17), scenes.scene(3, 17)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask) and a.class_id == b.class_id
    other = scenes.scene(3, 18)
    assert not np.array_equal(a.image, other.image)
    assert not np.array_equal(scenes.scene(4, 17).image, a.image)
    # rendering from the drawn (class, code) is the same scene
    class_id, code = scenes.draw_code(3, 17)
    assert np.array_equal(scenes.render(class_id, code).image, a.image)


def _with_new_background(code: np.ndarray) -> np.ndarray:
    changed = code.copy()
    for part in ("background", "gradient", "noise_amp", "noise", "noise_tint", "stripes", "distractors"):
        start, stop = scenes.CODE_LAYOUT[part]
        changed[start:stop] = -np.sign(code[start:stop]) * np.maximum(np.abs(code[start:stop]), 1.0)
    return changed


@pytest.mark.parametrize("index", range(8))
def test_the_mask_is_exactly_the_rendered_object(index):
    """Another background changes the pixels off the object and keeps those inside it."""
    class_id, code = scenes.draw_code(0, index)
    first, second = scenes.render(class_id, code), scenes.render(class_id, _with_new_background(code))
    assert np.array_equal(first.mask, second.mask)
    changed = np.abs(first.image.astype(int) - second.image.astype(int)).max(axis=2) > 0
    interior = ndimage.binary_erosion(first.mask, iterations=1)
    outside = ~ndimage.binary_dilation(first.mask, iterations=1)
    assert interior.any() and not changed[interior].any()  # fully covered pixels show only the object
    assert changed[outside].mean() > 0.9  # pixels off the object are background


def test_scenes_cover_every_class_and_the_size_range():
    items = list(scenes.scenes(1, range(400)))
    counts = np.bincount([s.class_id for s in items], minlength=scenes.NUM_CLASSES)
    assert (counts > 20).all()
    areas = np.array([s.mask.mean() for s in items])
    assert 0.03 < areas.min() and areas.max() < 0.5
    assert np.quantile(areas, 0.1) < 0.12 and np.quantile(areas, 0.9) > 0.3
    assert all(s.image.shape == (64, 64, 3) and s.image.dtype == np.uint8 for s in items[:5])
    assert scenes.scene(1, 0, size=32).mask.shape == (32, 32)


def test_splits_are_disjoint_index_ranges():
    ranges = [set(scenes.split_indices(name, 5000)) for name in scenes.SPLIT_OFFSETS]
    for i, a in enumerate(ranges):
        for b in ranges[i + 1 :]:
            assert not a & b
    assert list(scenes.split_indices("test", 3, first=2)) == [2 * scenes.SPLIT_STRIDE + 2 + k for k in range(3)]
    with pytest.raises(SynthsodError, match="leave"):
        scenes.split_indices("train", scenes.SPLIT_STRIDE + 1)
    with pytest.raises(SynthsodError, match="unknown scene split"):
        scenes.split_indices("validation", 3)


def test_bad_class_or_code_is_a_clear_error():
    with pytest.raises(SynthsodError, match="class 9"):
        scenes.render(9, np.zeros(scenes.CODE_DIM))
    with pytest.raises(SynthsodError, match="shape"):
        scenes.render(0, np.zeros(5))


def test_a_written_split_goes_through_prepare_dataset(tmp_path):
    count = scenes.write_duts_split(
        tmp_path / "S" / "images", tmp_path / "S" / "masks", seed=0, split="test", size=6, first=10
    )
    assert count == 6
    summary = prepare_dataset(
        "S",
        tmp_path / "S" / "images",
        tmp_path / "S" / "masks",
        tmp_path / "m.parquet",
        tmp_path / "bad.csv",
        max_bad_fraction=0.0,
    )
    assert summary.line() and "6" in summary.line()
    stems = sorted(p.stem for p in (tmp_path / "S" / "masks").iterdir())
    assert stems == [f"scene_{2 * scenes.SPLIT_STRIDE + 10 + k:07d}" for k in range(6)]
    assert [scenes.scene_index(stem) for stem in stems] == list(scenes.split_indices("test", 6, first=10))
    # the mask files hold exactly the scenes' masks
    from synthsod.data.prepare import load_mask_binary

    first = scenes.scene(0, 2 * scenes.SPLIT_STRIDE + 10)
    assert np.array_equal(load_mask_binary(tmp_path / "S" / "masks" / f"{stems[0]}.png"), first.mask)


@pytest.mark.parametrize("name", ["scene_12", "scene_00000x1", "img_0000001", "scene_0000001_b", "0000001"])
def test_names_of_other_files_have_no_scene_index(name):
    assert scenes.scene_index(name) is None


def test_otsu_finds_a_plain_object_of_either_polarity():
    image = np.full((32, 32, 3), 200, np.uint8)
    image[8:20, 10:22] = 30
    assert (otsu_saliency(image) > 0).sum() == 12 * 12
    assert np.array_equal(otsu_saliency(255 - image), otsu_saliency(image))
    assert not otsu_saliency(np.full((8, 8, 3), 7, np.uint8)).any()
