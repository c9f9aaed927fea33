"""Tests for synthsod.synthesis.shards: round trips, reproducible bytes, manifest verification, CLI."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from synthsod.cli import main
from synthsod.data.datasets import image_to_tensor
from synthsod.errors import SynthsodError
from synthsod.sod.datasets import ShardDataset
from synthsod.synthesis.shards import (
    DEFAULT_PNG,
    LEGACY_PNG,
    MANIFEST_NAME,
    ROW_GROUP_ROWS,
    SCHEMA,
    TILE_MIN_SIDE,
    ShardWriter,
    decode_row,
    pair_tile,
    png_params,
    preview_grid,
    read_shard,
    shard_writer,
    verify_run,
    write_manifest,
    write_shard,
)

SIZE = 16


def make_row(i: int) -> dict:
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    # A smooth image (so JPEG stays close) with per-row noise (so rows differ).
    image = np.stack([xx * 15, yy * 15, np.full_like(xx, 40 * (i % 6))], axis=-1)
    image = np.clip(image + rng.integers(0, 4, image.shape), 0, 255).astype(np.uint8)
    mask = (xx - 8) ** 2 + (yy - 8) ** 2 < (3 + i) ** 2
    return {
        "id": f"s{i:03d}",
        "image": image,
        "mask": mask if i % 2 else mask.astype(np.uint8) * 255,  # both accepted mask dtypes
        "seed": 1000 + i,
        "index": i,
        "generator": "biggan-128",
        "class": 7,
        "truncation": 0.4,
        "latent": rng.standard_normal(4).astype(np.float32),
        "direction": None if i % 2 else "bg-shift",
        "shift": None if i % 2 else 2.5,
        "dq_score": 0.75 if i % 3 else None,
        "mask_fraction": float(mask.mean()),
        "components": 1,
        "filters": ["mask_fraction", "components"],
    }


def make_run(run_dir: Path, sizes: tuple[int, ...] = (3, 2), **kwargs) -> tuple[list[Path], list[dict]]:
    """Shards of ``sizes`` rows each plus a manifest; returns the shard paths and all rows."""
    paths, rows, start = [], [], 0
    for n, size in enumerate(sizes):
        shard_rows = [make_row(i) for i in range(start, start + size)]
        path = run_dir / f"shard-{n:05d}.parquet"
        assert write_shard(path, shard_rows, **kwargs) == size
        paths.append(path)
        rows += shard_rows
        start += size
    write_manifest(run_dir, paths, {"generator": "biggan-128", "n": start})
    return paths, rows


def load_manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / MANIFEST_NAME).read_text())


# --- round trips -----------------------------------------------------------------------------


def test_png_round_trip_through_pyarrow_and_dataset(tmp_path: Path) -> None:
    paths, rows = make_run(tmp_path)
    records = [r for p in paths for r in read_shard(p).to_pylist()]
    assert [r["id"] for r in records] == [row["id"] for row in rows]
    for record, row in zip(records, rows):
        decoded = decode_row(record)
        np.testing.assert_array_equal(decoded["image"], row["image"])  # lossless, RGB order kept
        assert decoded["mask"].dtype == bool
        np.testing.assert_array_equal(decoded["mask"], row["mask"] > 0)
        assert record["image"]["path"] == f"{row['id']}.png"
        np.testing.assert_array_equal(np.float32(record["latent"]), row["latent"])
        for name in (
            "seed",
            "index",
            "generator",
            "class",
            "truncation",
            "direction",
            "shift",
            "dq_score",
            "mask_fraction",
            "components",
            "filters",
        ):
            assert record[name] == row[name], name

    dataset = ShardDataset(tmp_path)
    assert len(dataset) == len(rows)
    for i, row in enumerate(rows):
        item = dataset[i]
        assert item["id"] == row["id"]
        assert item["image"].shape == (3, SIZE, SIZE) and item["mask"].shape == (1, SIZE, SIZE)
        assert torch.equal(item["image"], image_to_tensor(row["image"], SIZE))
        assert torch.equal(item["mask"][0], torch.from_numpy(row["mask"] > 0).float())
    with pytest.raises(IndexError):
        dataset[len(rows)]


def test_stored_bytes_decode_with_pillow(tmp_path: Path) -> None:
    # An independent decoder (the one Hugging Face uses) sees RGB images and 0/255 masks.
    paths, rows = make_run(tmp_path, sizes=(2,))
    for record, row in zip(read_shard(paths[0]).to_pylist(), rows):
        image = Image.open(io.BytesIO(record["image"]["bytes"]))
        mask = Image.open(io.BytesIO(record["mask"]["bytes"]))
        assert image.mode == "RGB" and mask.mode == "L"
        np.testing.assert_array_equal(np.asarray(image), row["image"])
        np.testing.assert_array_equal(np.asarray(mask), np.where(row["mask"] > 0, 255, 0))


def test_jpeg_images_are_close_and_masks_exact(tmp_path: Path) -> None:
    paths, rows = make_run(tmp_path, sizes=(2,), image_format="jpeg", jpeg_quality=95)
    for record, row in zip(read_shard(paths[0]).to_pylist(), rows):
        assert record["image"]["bytes"][:2] == b"\xff\xd8"  # JPEG magic
        assert record["image"]["path"] == f"{row['id']}.jpg"
        decoded = decode_row(record)
        error = np.abs(decoded["image"].astype(int) - row["image"].astype(int))
        assert error.mean() < 3, error.mean()
        np.testing.assert_array_equal(decoded["mask"], row["mask"] > 0)
    assert verify_run(tmp_path) == {"shards": 1, "rows": 2}


def test_dataset_resizes_and_reads_shards_lazily(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path)
    dataset = ShardDataset(tmp_path, size=8)
    paths[1].unlink()  # only the first shard is needed for its rows
    item = dataset[0]
    assert item["image"].shape == (3, 8, 8) and item["mask"].shape == (1, 8, 8)
    assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}


def test_same_rows_give_byte_identical_shards(tmp_path: Path) -> None:
    rows = [make_row(i) for i in range(3)]
    digests = set()
    for name in ("a.parquet", "b.parquet"):
        write_shard(tmp_path / name, rows)
        digests.add(hashlib.sha256((tmp_path / name).read_bytes()).hexdigest())
    assert len(digests) == 1
    write_shard(tmp_path / "c.parquet", [make_row(i) for i in range(1, 4)])
    assert hashlib.sha256((tmp_path / "c.parquet").read_bytes()).hexdigest() not in digests


def photo_row(i: int, side: int = 64) -> dict:
    """A row with a noisy, textured image and a blob mask: PNG settings change its bytes."""
    row = make_row(i)
    rng = np.random.default_rng(100 + i)
    yy, xx = np.mgrid[:side, :side]
    smooth = np.stack([np.sin(xx / (3 + i)) * 90 + 120, np.cos(yy / 5) * 80 + 120, (xx + yy) % 256], axis=-1)
    row["image"] = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    row["mask"] = (xx - side / 2) ** 2 + ((yy - side / 3) / 1.5) ** 2 < (side / 4 + i) ** 2
    return row


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_legacy_png_settings_are_the_former_encoding_and_every_setting_decodes_the_same(tmp_path: Path) -> None:
    """Only the compression changed: the former parameters ([IMWRITE_PNG_COMPRESSION, 6]) are LEGACY_PNG
    byte for byte, and shards written with the new default decode to the same pixels and masks."""
    rows = [photo_row(i) for i in range(4)]
    for row in rows:
        bgr = cv2.cvtColor(row["image"], cv2.COLOR_RGB2BGR)
        former = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])[1].tobytes()
        assert cv2.imencode(".png", bgr, png_params(LEGACY_PNG))[1].tobytes() == former
        assert cv2.imencode(".png", bgr, png_params())[1].tobytes() != former  # the default is another encoding
    settings = [LEGACY_PNG, DEFAULT_PNG, {"compression": 0}, {"strategy": "huffman_only", "filter": "all"}]
    decoded = []
    for n, png in enumerate(settings):
        write_shard(tmp_path / f"{n}.parquet", rows, png=png)
        decoded.append([decode_row(r) for r in read_shard(tmp_path / f"{n}.parquet").to_pylist()])
    assert len({digest(tmp_path / f"{n}.parquet") for n in range(len(settings))}) == len(settings)
    for records in decoded:
        for record, row in zip(records, rows, strict=True):
            np.testing.assert_array_equal(record["image"], row["image"])
            np.testing.assert_array_equal(record["mask"], row["mask"] > 0)


def test_png_settings_are_checked() -> None:
    assert png_params() == png_params(DEFAULT_PNG) == png_params({"compression": 1})
    with pytest.raises(ValueError, match="zlib level 0-9"):
        png_params({"compression": 10})
    with pytest.raises(ValueError, match="strategy must be one of"):
        png_params({"strategy": "lz4"})
    with pytest.raises(ValueError, match="filter must be one of"):
        png_params({"filter": "median"})
    with pytest.raises(ValueError, match="unknown PNG settings"):
        png_params({"level": 1})


def test_shards_are_byte_identical_whatever_the_encoding_threads(tmp_path: Path) -> None:
    """Same rows, same order, same bytes: 1, 2 or 5 encoding threads, reruns, several row groups."""
    count = 2 * ROW_GROUP_ROWS + 5
    rows = [photo_row(i % 7, side=24) | {"id": f"r{i:04d}", "index": i} for i in range(count)]
    for workers in (1, 2, 5, 2):
        assert write_shard(tmp_path / f"w{workers}.parquet", iter(rows), workers=workers) == count
    assert len({digest(p) for p in tmp_path.glob("w*.parquet")}) == 1
    meta = pq.ParquetFile(tmp_path / "w1.parquet").metadata
    assert [meta.row_group(k).num_rows for k in range(meta.num_row_groups)] == [ROW_GROUP_ROWS] * 2 + [5]
    assert read_shard(tmp_path / "w5.parquet").column("id").to_pylist() == [r["id"] for r in rows]


def test_writer_streams_rows_as_they_come(tmp_path: Path) -> None:
    """A ShardWriter holds at most one row group of records and 2 x workers rows waiting to be encoded."""
    pulled = []

    def rows():
        for i in range(3 * ROW_GROUP_ROWS):
            pulled.append(i)
            yield make_row(i % 50) | {"id": f"r{i:04d}"}

    with shard_writer(tmp_path / "s.parquet", workers=3) as writer:
        for row in rows():
            writer.add(row)
            assert len(writer._group) < ROW_GROUP_ROWS and len(writer._waiting) < 2 * 3
    assert writer.rows == len(pulled) == pq.ParquetFile(tmp_path / "s.parquet").metadata.num_rows


def test_a_failing_row_under_threads_leaves_no_file_and_no_thread(tmp_path: Path) -> None:
    import threading

    rows = [make_row(i) for i in range(10)]
    rows[6]["image"] = np.zeros((SIZE, SIZE), np.uint8)  # not HxWx3
    with pytest.raises(ValueError, match="image must be uint8 HxWx3"):
        write_shard(tmp_path / "x.parquet", rows, workers=3)
    with pytest.raises(RuntimeError, match="stop"):
        with shard_writer(tmp_path / "y.parquet", workers=2) as writer:
            writer.add(make_row(0))
            raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name.startswith("shard-encode")]
    with pytest.raises(ValueError, match="workers"):
        ShardWriter(tmp_path / "z.parquet", workers=0)


def test_schema_is_fixed_and_carries_hf_features(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path, sizes=(1,))
    schema = pq.read_schema(paths[0])
    assert schema.equals(SCHEMA, check_metadata=True)
    features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
    assert list(features) == schema.names
    assert features["image"] == {"_type": "Image"} and features["mask"] == {"_type": "Image"}
    assert features["latent"] == {"feature": {"dtype": "float32", "_type": "Value"}, "_type": "Sequence"}
    assert features["id"] == {"dtype": "string", "_type": "Value"}
    assert schema.field("image").type == pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    bad = make_row(1)
    bad["mask"] = np.zeros((SIZE, SIZE + 1), bool)
    with pytest.raises(ValueError, match="mask shape"):
        write_shard(tmp_path / "x.parquet", [make_row(0), bad])
    incomplete = make_row(2)
    del incomplete["seed"]
    with pytest.raises(ValueError, match="seed"):
        write_shard(tmp_path / "x.parquet", [incomplete])
    assert list(tmp_path.iterdir()) == []


def test_hf_datasets_decodes_images(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets", reason="datasets not installed")
    paths, _ = make_run(tmp_path, sizes=(2,))
    dataset = datasets.Dataset.from_parquet(str(paths[0]), cache_dir=str(tmp_path / "cache"))
    assert dataset[0]["image"].size == (SIZE, SIZE)
    assert dataset[0]["mask"].size == (SIZE, SIZE)
    assert dataset[0]["id"] == "s000"


# --- manifest and verification ---------------------------------------------------------------


def test_manifest_lists_shards_and_verify_passes(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path)
    manifest = load_manifest(tmp_path)
    assert manifest["total_rows"] == 5 and manifest["config"]["n"] == 5
    assert [s["file"] for s in manifest["shards"]] == [p.name for p in paths]
    assert [s["rows"] for s in manifest["shards"]] == [3, 2]
    assert manifest["shards"][0]["sha256"] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    assert verify_run(tmp_path) == {"shards": 2, "rows": 5}


def test_verify_catches_corrupt_byte(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path)
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    with pytest.raises(SynthsodError, match=r"shard-00001\.parquet: sha256 does not match"):
        verify_run(tmp_path)
    with pytest.raises(SynthsodError, match="sha256"):
        ShardDataset(tmp_path)  # the dataset verifies before use


def test_verify_catches_missing_shard(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path)
    paths[0].unlink()
    with pytest.raises(SynthsodError, match=r"shard-00000\.parquet: shard missing"):
        verify_run(tmp_path)


def test_verify_catches_edited_counts(tmp_path: Path) -> None:
    make_run(tmp_path)
    manifest = load_manifest(tmp_path)
    manifest["shards"][0]["rows"] = 4
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SynthsodError, match=r"shard-00000\.parquet: has 3 rows, manifest says 4"):
        verify_run(tmp_path)
    manifest["shards"][0]["rows"] = 3
    manifest["total_rows"] = 6
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(SynthsodError, match="total_rows 6"):
        verify_run(tmp_path)


def test_verify_catches_missing_or_bad_manifest(tmp_path: Path) -> None:
    with pytest.raises(SynthsodError, match="manifest.json: manifest missing"):
        verify_run(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(SynthsodError, match="manifest unreadable"):
        verify_run(tmp_path)


def test_verify_catches_undecodable_image(tmp_path: Path) -> None:
    records = read_shard(make_run(tmp_path, sizes=(2,))[0][0]).to_pylist()
    records[1]["image"]["bytes"] = b"\x89PNG not really"
    path = tmp_path / "shard-00000.parquet"
    pq.write_table(pa.Table.from_pylist(records, schema=SCHEMA), path)
    write_manifest(tmp_path, [path], {})
    with pytest.raises(SynthsodError, match=r"shard-00000\.parquet: sample 's001': image bytes"):
        verify_run(tmp_path)
    assert len(ShardDataset(tmp_path)) == 2  # the dataset's quick check does not decode


def test_verify_catches_duplicate_ids_and_foreign_schema(tmp_path: Path) -> None:
    rows = [make_row(0)]
    for name in ("a.parquet", "b.parquet"):
        write_shard(tmp_path / name, rows)
    write_manifest(tmp_path, [tmp_path / "a.parquet", tmp_path / "b.parquet"], {})
    with pytest.raises(SynthsodError, match=r"b\.parquet: id 's000' also in a\.parquet"):
        verify_run(tmp_path)

    table = read_shard(tmp_path / "a.parquet").drop_columns(["dq_score"])
    pq.write_table(table, tmp_path / "a.parquet")
    write_manifest(tmp_path, [tmp_path / "a.parquet"], {})
    with pytest.raises(SynthsodError, match=r"a\.parquet: schema differs"):
        verify_run(tmp_path)


def test_manifest_rejects_shard_outside_run_dir(tmp_path: Path) -> None:
    write_shard(tmp_path / "elsewhere.parquet", [make_row(0)])
    with pytest.raises(SynthsodError, match="not inside the run directory"):
        write_manifest(tmp_path / "run", [tmp_path / "elsewhere.parquet"], {})


# --- preview and CLI -------------------------------------------------------------------------


def test_preview_grid_shows_image_and_overlay(tmp_path: Path) -> None:
    _, rows = make_run(tmp_path)
    out = tmp_path / "grid.png"
    assert preview_grid(tmp_path, out, n=4) == 4
    grid = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    side = TILE_MIN_SIDE  # the 16 px samples are enlarged 8x for the preview
    assert grid.shape == (2 * 2 * side, 2 * side, 3)  # 2x2 tiles, each image above its overlay
    np.testing.assert_array_equal(grid[: 2 * side, :side], pair_tile(rows[0]["image"], rows[0]["mask"] > 0))
    np.testing.assert_array_equal(grid[2 * side :, side:], pair_tile(rows[3]["image"], rows[3]["mask"] > 0))


def test_preview_of_missing_shard_names_it(tmp_path: Path) -> None:
    paths, _ = make_run(tmp_path)
    paths[0].unlink()
    with pytest.raises(SynthsodError, match=r"shard-00000\.parquet: shard unreadable"):
        preview_grid(tmp_path, tmp_path / "grid.png")


def test_cli_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths, _ = make_run(tmp_path)
    assert main(["shards", "verify", str(tmp_path)]) == 0
    assert "ok, 2 shards, 5 rows verified" in capsys.readouterr().out
    paths[1].unlink()
    assert main(["shards", "verify", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "shard-00001.parquet: shard missing" in err and "Traceback" not in err
    assert main(["shards", "verify", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_cli_preview_writes_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_run(tmp_path)
    out = tmp_path / "grid.png"
    assert main(["shards", "preview", str(tmp_path), "--out", str(out), "--n", "3"]) == 0
    assert "(3 samples)" in capsys.readouterr().out
    assert cv2.imread(str(out)).shape == (2 * 2 * TILE_MIN_SIDE, 2 * TILE_MIN_SIDE, 3)  # enlarged 16 px pairs
