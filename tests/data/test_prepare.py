"""Tests for synthsod.data.prepare: each kind of bad input is caught, reported and handled."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from synthsod.data.prepare import (
    CHECKS,
    MANIFEST_COLUMNS,
    Problem,
    check_pairs,
    format_problems,
    load_image_rgb,
    load_mask_binary,
    prepare_dataset,
)
from synthsod.errors import SynthsodError

SIZE = 16  # all test images are 16x16 unless a test needs otherwise


# --- builders --------------------------------------------------------------------------------


def rgb_image(mode: str = "RGB", size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    w, h = size
    arr = np.zeros((h, w, 3), np.uint8)
    arr[..., 0] = np.arange(w, dtype=np.uint8)[None, :] * 8
    arr[..., 1] = 200
    im = Image.fromarray(arr, "RGB")
    if mode == "RGBA":
        return im.convert("RGBA")
    return im.convert(mode)


def top_rows_mask(rows: int, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    """Binary 0/255 mask whose first ``rows`` rows are foreground."""
    w, h = size
    arr = np.zeros((h, w), np.uint8)
    arr[:rows] = 255
    return Image.fromarray(arr, "L")


def save(im: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


def truncated_jpeg(path: Path) -> Path:
    buf = io.BytesIO()
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(buf, "JPEG")
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data[: len(data) // 2])
    return path


def good_pair(root: Path, stem: str, rows: int = 4, ext: str = ".png") -> None:
    save(rgb_image(), root / "images" / f"{stem}{ext}")
    save(top_rows_mask(rows), root / "masks" / f"{stem}.png")


@pytest.fixture
def messy(tmp_path: Path) -> tuple[Path, Path]:
    """A dataset with three good pairs and one pair of every bad kind."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    good_pair(tmp_path, "good_a", rows=4, ext=".jpg")  # fg 4/16
    good_pair(tmp_path, "good_b", rows=8, ext=".png")  # fg 8/16
    good_pair(tmp_path, "good_c", rows=16, ext=".JPG")  # upper-case extension, fg 1.0
    # kept, converted
    save(rgb_image("L"), images / "gray.png")
    save(top_rows_mask(4), masks / "gray.png")
    save(rgb_image("RGBA"), images / "rgba.png")
    save(top_rows_mask(4), masks / "rgba.png")
    # kept, binarised: 128 is background, 129 foreground (pysodmetrics: gt > 128)
    soft = np.zeros((SIZE, SIZE), np.uint8)
    soft[0, :] = 128
    soft[1, :] = 129
    soft[2, :] = 255
    save(rgb_image(), images / "soft.jpg")
    save(Image.fromarray(soft, "L"), masks / "soft.png")
    # kept, converted and binarised
    save(rgb_image("P"), images / "both.png")
    save(Image.fromarray(soft, "L"), masks / "both.png")
    # skipped
    truncated_jpeg(images / "trunc.jpg")
    save(top_rows_mask(4), masks / "trunc.png")
    save(rgb_image(), images / "garbage.jpg")
    (masks / "garbage.png").write_bytes(b"this is not a png at all" * 4)
    save(rgb_image(), images / "nomask.jpg")
    save(top_rows_mask(4), masks / "noimage.png")
    save(rgb_image(), images / "dup.jpg")
    save(rgb_image(), images / "dup.png")
    save(top_rows_mask(4), masks / "dup.png")
    save(rgb_image(), images / "size.jpg")
    save(top_rows_mask(4, size=(SIZE, 12)), masks / "size.png")
    save(rgb_image(), images / "zeroone.jpg")
    save(Image.fromarray((np.asarray(top_rows_mask(4)) > 0).astype(np.uint8), "L"), masks / "zeroone.png")
    save(rgb_image(), images / "black.jpg")
    save(top_rows_mask(0), masks / "black.png")
    # ignored: not an image extension, hidden (macOS resource fork), a sub-folder
    (images / "notes.txt").write_text("hello")
    (images / "._good_a.jpg").write_bytes(b"\x00\x05\x16\x07")
    (images / "sub").mkdir()
    return images, masks


KEPT = ["both", "good_a", "good_b", "good_c", "gray", "rgba", "soft"]
SKIPPED = ["black", "dup", "garbage", "noimage", "nomask", "size", "trunc", "zeroone"]


# --- check_pairs -----------------------------------------------------------------------------


def test_kept_ids_and_manifest_values(messy: tuple[Path, Path]) -> None:
    images, masks = messy
    table, _ = check_pairs(images, masks)
    assert list(table.columns) == list(MANIFEST_COLUMNS)
    assert table["id"].tolist() == KEPT  # sorted by id
    row = table.set_index("id")
    assert row.loc["good_a", "image"] == str(images / "good_a.jpg")
    assert row.loc["good_c", "image"] == str(images / "good_c.JPG")
    assert row.loc["good_a", "mask"] == str(masks / "good_a.png")
    assert (table["width"] == SIZE).all() and (table["height"] == SIZE).all()
    assert row["image_mode"].to_dict() == {
        "both": "P",
        "good_a": "RGB",
        "good_b": "RGB",
        "good_c": "RGB",
        "gray": "L",
        "rgba": "RGBA",
        "soft": "RGB",
    }
    assert row["mask_soft"].to_dict() == {k: k in ("both", "soft") for k in KEPT}
    assert row.loc["good_a", "fg_fraction"] == pytest.approx(4 / 16)
    assert row.loc["good_b", "fg_fraction"] == pytest.approx(8 / 16)
    assert row.loc["good_c", "fg_fraction"] == pytest.approx(1.0)
    # rows 1 (129) and 2 (255) are foreground, row 0 (128) is not
    assert row.loc["soft", "fg_fraction"] == pytest.approx(2 / 16)
    assert (table["checks"] == CHECKS).all()
    assert table["width"].dtype == np.int64 and table["mask_soft"].dtype == bool


def test_each_problem_named_with_its_action(messy: tuple[Path, Path]) -> None:
    images, masks = messy
    _, problems = check_pairs(images, masks)
    actions = {(Path(p.file).parent.name, Path(p.file).name, p.action) for p in problems}
    assert actions == {
        ("images", "gray.png", "converted"),
        ("images", "rgba.png", "converted"),
        ("images", "both.png", "converted"),
        ("masks", "both.png", "binarised"),
        ("masks", "soft.png", "binarised"),
        ("images", "trunc.jpg", "skipped"),
        ("masks", "garbage.png", "skipped"),
        ("images", "nomask.jpg", "skipped"),
        ("masks", "noimage.png", "skipped"),
        ("images", "dup.jpg", "skipped"),
        ("images", "dup.png", "skipped"),
        ("images", "size.jpg", "skipped"),
        ("masks", "zeroone.png", "skipped"),
        ("masks", "black.png", "skipped"),
    }
    assert len(problems) == len(actions)
    assert {Path(p.file).stem for p in problems if p.action == "skipped"} == set(SKIPPED)


def test_problem_reasons_are_specific(messy: tuple[Path, Path]) -> None:
    images, masks = messy
    _, problems = check_pairs(images, masks)
    reason = {(Path(p.file).parent.name, Path(p.file).name): p.reason for p in problems}
    assert "corrupt" in reason["images", "trunc.jpg"]
    assert "corrupt" in reason["masks", "garbage.png"]
    assert reason["images", "nomask.jpg"] == "image has no mask"
    assert reason["masks", "noimage.png"] == "mask has no image"
    assert "duplicate id 'dup'" in reason["images", "dup.jpg"]
    assert "16x16" in reason["images", "size.jpg"] and "16x12" in reason["images", "size.jpg"]
    assert "0/255" in reason["masks", "zeroone.png"]
    assert "empty" in reason["masks", "black.png"] and "0/255" not in reason["masks", "black.png"]
    assert "RGBA" in reason["images", "rgba.png"]
    assert "mode L " in reason["images", "gray.png"]
    assert "mode P " in reason["images", "both.png"]
    # two grey levels (128, 129) on 2 of 16 rows
    assert "2 grey levels" in reason["masks", "soft.png"]
    assert "12.5%" in reason["masks", "soft.png"]


def test_result_is_the_same_with_threads(messy: tuple[Path, Path]) -> None:
    images, masks = messy
    table1, problems1 = check_pairs(images, masks, threads=1)
    table4, problems4 = check_pairs(images, masks, threads=4)
    pd.testing.assert_frame_equal(table1, table4)
    assert problems1 == problems4


def test_truncated_jpeg_and_garbage_png_are_corrupt(tmp_path: Path) -> None:
    truncated_jpeg(tmp_path / "images" / "a.jpg")
    save(top_rows_mask(4), tmp_path / "masks" / "a.png")
    save(rgb_image(), tmp_path / "images" / "b.png")
    (tmp_path / "masks" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    table, problems = check_pairs(tmp_path / "images", tmp_path / "masks")
    assert table.empty and list(table.columns) == list(MANIFEST_COLUMNS)
    assert [(Path(p.file).name, p.action) for p in problems] == [("a.jpg", "skipped"), ("b.png", "skipped")]
    assert all(p.reason.startswith("unreadable or corrupt file") for p in problems)
    with pytest.raises(SynthsodError, match="a.jpg"):
        load_image_rgb(tmp_path / "images" / "a.jpg")


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA", "CMYK"])
def test_non_rgb_images_are_converted(tmp_path: Path, mode: str) -> None:
    ext = ".jpg" if mode == "CMYK" else ".png"
    path = save(rgb_image(mode), tmp_path / "images" / f"x{ext}")
    save(top_rows_mask(4), tmp_path / "masks" / "x.png")
    table, problems = check_pairs(tmp_path / "images", tmp_path / "masks")
    assert table["image_mode"].tolist() == [mode]
    assert [(p.action, mode in p.reason) for p in problems] == [("converted", True)]
    rgb = load_image_rgb(path)
    assert rgb.shape == (SIZE, SIZE, 3) and rgb.dtype == np.uint8


def test_rgb_image_loads_unchanged(tmp_path: Path) -> None:
    im = rgb_image()
    path = save(im, tmp_path / "x.png")
    np.testing.assert_array_equal(load_image_rgb(path), np.asarray(im))


def test_soft_mask_binarised_strictly_above_128(tmp_path: Path) -> None:
    values = np.array([[0, 1, 127, 128], [129, 200, 254, 255]], np.uint8)
    path = save(Image.fromarray(values, "L"), tmp_path / "m.png")
    expected = np.array([[False, False, False, False], [True, True, True, True]])
    np.testing.assert_array_equal(load_mask_binary(path), expected)
    assert load_mask_binary(path).dtype == bool


def test_rgb_and_palette_masks_are_read_as_grayscale(tmp_path: Path) -> None:
    binary = np.asarray(top_rows_mask(4))
    rgb = Image.fromarray(np.stack([binary] * 3, axis=-1), "RGB")
    save(rgb, tmp_path / "images" / "a.png")
    save(rgb, tmp_path / "masks" / "a.png")
    save(rgb_image(), tmp_path / "images" / "b.png")
    save(top_rows_mask(4).convert("P"), tmp_path / "masks" / "b.png")
    table, problems = check_pairs(tmp_path / "images", tmp_path / "masks")
    assert table["id"].tolist() == ["a", "b"] and problems == []
    assert table["fg_fraction"].tolist() == pytest.approx([0.25, 0.25])
    np.testing.assert_array_equal(load_mask_binary(tmp_path / "masks" / "a.png"), binary > 128)


def test_missing_or_empty_folder_is_an_error(tmp_path: Path) -> None:
    good_pair(tmp_path, "a")
    with pytest.raises(SynthsodError, match="nowhere"):
        check_pairs(tmp_path / "images", tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(SynthsodError, match="empty"):
        check_pairs(tmp_path / "empty", tmp_path / "masks")
    with pytest.raises(SynthsodError, match="same folder"):
        check_pairs(tmp_path / "images", tmp_path / "images")


def test_format_problems_table() -> None:
    assert format_problems([]) == "no problems found"
    text = format_problems(
        [
            Problem("imgs/a.jpg", "image has no mask", "skipped"),
            Problem("m/long_name.png", "mask is not binary", "binarised"),
        ]
    )
    lines = text.splitlines()
    assert lines[0].split() == ["action", "file", "reason"]
    assert lines[1].split(None, 2) == ["skipped", "imgs/a.jpg", "image has no mask"]
    assert lines[2].split(None, 2) == ["binarised", "m/long_name.png", "mask is not binary"]
    # columns aligned: every reason starts at the same offset
    assert len({line.index(word) for line, word in zip(lines, ["reason", "image has", "mask is"])}) == 1


# --- prepare_dataset -------------------------------------------------------------------------


def four_pairs_one_bad(root: Path) -> tuple[Path, Path]:
    for stem in ("a", "b", "c"):
        good_pair(root, stem)
    save(rgb_image(), root / "images" / "d_nomask.jpg")
    save(rgb_image("L"), root / "images" / "e_gray.png")  # a converted pair is not "bad"
    save(top_rows_mask(2), root / "masks" / "e_gray.png")
    return root / "images", root / "masks"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_prepare_under_limit_writes_manifest_and_csv(tmp_path: Path) -> None:
    images, masks = four_pairs_one_bad(tmp_path)
    out = tmp_path / "out"
    summary = prepare_dataset(
        "toy", images, masks, out / "manifest.parquet", out / "bad_inputs.csv", max_bad_fraction=0.2
    )  # 1/5 = 0.2: at limit
    assert (
        summary.name,
        summary.n_pairs_found,
        summary.n_kept,
        summary.n_skipped,
        summary.n_converted,
        summary.n_binarised,
    ) == ("toy", 5, 4, 1, 1, 0)
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert manifest["id"].tolist() == ["a", "b", "c", "e_gray"]
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert manifest["fg_fraction"].tolist() == pytest.approx([0.25, 0.25, 0.25, 0.125])
    rows = read_csv(out / "bad_inputs.csv")
    assert rows == [
        {"file": str(images / "d_nomask.jpg"), "reason": "image has no mask", "action": "skipped"},
        {"file": str(images / "e_gray.png"), "reason": rows[1]["reason"], "action": "converted"},
    ]
    assert "mode L" in rows[1]["reason"]
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]  # no temp files left


def test_prepare_clean_dataset_writes_csv_header(tmp_path: Path) -> None:
    good_pair(tmp_path, "a")
    csv_path = tmp_path / "bad_inputs.csv"
    prepare_dataset(
        "clean", tmp_path / "images", tmp_path / "masks", tmp_path / "manifest.parquet", csv_path, max_bad_fraction=0.0
    )
    assert csv_path.read_text() == "file,reason,action\n"


def test_prepare_over_limit_raises_and_writes_nothing(tmp_path: Path) -> None:
    images, masks = four_pairs_one_bad(tmp_path)
    for i in range(12):  # 12 more masks without images: 13 of 17 pairs bad
        save(top_rows_mask(4), masks / f"orphan_{i:02d}.png")
    manifest_path, csv_path = tmp_path / "manifest.parquet", tmp_path / "bad_inputs.csv"
    manifest_path.write_bytes(b"previous manifest")
    with pytest.raises(SynthsodError) as info:
        prepare_dataset("duts_te", images, masks, manifest_path, csv_path, max_bad_fraction=0.1)
    message = str(info.value)
    assert "duts_te" in message
    assert "13 of 17" in message and "76.5%" in message and "10.0%" in message
    assert f"{images / 'd_nomask.jpg'}: image has no mask" in message
    assert f"{masks / 'orphan_00.png'}: mask has no image" in message
    assert "... and 3 more" in message  # only the first 10 problems are listed
    assert "orphan_11" not in message
    assert manifest_path.read_bytes() == b"previous manifest"
    assert not csv_path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "manifest.parquet", "masks"]


def test_prepare_rejects_bad_limit(tmp_path: Path) -> None:
    good_pair(tmp_path, "a")
    with pytest.raises(SynthsodError, match="max_bad_fraction"):
        prepare_dataset(
            "x", tmp_path / "images", tmp_path / "masks", tmp_path / "m.parquet", tmp_path / "b.csv", max_bad_fraction=5
        )
