"""Parquet shards of synthetic image–mask pairs, their manifest, verification and a PyTorch view.

A run directory holds shards (``*.parquet``) and ``manifest.json``. Every shard has the same
schema, :data:`SCHEMA` (one row per sample, in this column order):

==============  ==============================  ===============================================
column          Arrow type                      meaning
==============  ==============================  ===============================================
id              string                          sample id, unique across the run
image           struct<bytes: binary,           RGB image, PNG (default) or JPEG bytes;
                path: string>                   path is the file name ``<id>.png``/``.jpg``
mask            struct<bytes: binary,           mask, single-channel 0/255 PNG bytes;
                path: string>                   path is ``<id>.png``
seed            int64                           random seed of the sample
index           int64                           global sample index in the run
generator       string                          generator name
class           int64                           class the generator was conditioned on
truncation      float64                         truncation value
latent          list<float32>                   latent vector
direction       string (null)                   latent direction applied, if any
shift           float64 (null)                  shift along ``direction``, if any
dq_score        float64 (null)                  D_q quality score, if scored
mask_fraction   float64                         fraction of foreground pixels
components      int64                           connected components in the mask
filters         list<string>                    filters that ran on the sample
==============  ==============================  ===============================================

``image``/``mask`` use the struct Hugging Face ``datasets`` uses for its ``Image`` feature, and
the schema metadata key ``b"huggingface"`` carries the matching features JSON, so
``datasets.Dataset.from_parquet`` decodes both columns to PIL images.

Shards are reproducible: OpenCV encodes with fixed parameters, Parquet is written with fixed
settings (:data:`PARQUET_OPTIONS`, row groups of :data:`ROW_GROUP_ROWS` rows) and carries no
timestamps, so the same rows always give byte-identical files (and the same sha256), whatever the
number of encoding threads.

PNG settings (a run's ``png:``, :data:`DEFAULT_PNG`) are OpenCV's: the zlib ``compression`` level,
the zlib ``strategy`` and the PNG row ``filter``. The default, ``rle`` with the ``paeth`` filter, encodes
256² images about 4x as fast as the zlib level 6 with libpng's adaptive filters used before
(:data:`LEGACY_PNG`), at the same size or smaller (README "Benchmarks"): after the Paeth filter a
photo-like image is mostly small residuals that Huffman coding packs as well as a costly LZ77
search. Under ``rle`` every level above 0 gives the same bytes; level 0 stores. PNG is lossless
whatever the settings: decoded pixels never depend on them.

Writing streams (:class:`ShardWriter`): rows are encoded as they come, on ``workers`` threads
(OpenCV releases the GIL while it encodes), and written a row group at a time, so a shard of any
size takes the memory of one row group.

``manifest.json`` (:data:`FORMAT_VERSION`) lists each shard's file name (relative to the run
directory), row count and sha256, the total row count and the run's resolved config.

Reading for training: :class:`synthsod.sod.datasets.ShardDataset` (this module needs no torch).
"""

from __future__ import annotations

import json
import math
import os
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from synthsod.core.io import atomic_path, file_sha256, write_bytes_atomic, write_json_atomic
from synthsod.core.progress import progress
from synthsod.errors import SynthsodError

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

_ENCODED = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # HF's Image storage type


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


def _list(item: pa.DataType) -> pa.DataType:
    # Parquet names list items "element"; naming them so here makes a read-back schema equal SCHEMA.
    return pa.list_(pa.field("element", item))


def _sequence(dtype: str) -> dict:
    return {"feature": _value(dtype), "_type": "Sequence"}


# name, Arrow type, Hugging Face feature: one list so the two descriptions cannot drift apart.
_COLUMNS: list[tuple[str, pa.DataType, dict]] = [
    ("id", pa.string(), _value("string")),
    ("image", _ENCODED, {"_type": "Image"}),
    ("mask", _ENCODED, {"_type": "Image"}),
    ("seed", pa.int64(), _value("int64")),
    ("index", pa.int64(), _value("int64")),
    ("generator", pa.string(), _value("string")),
    ("class", pa.int64(), _value("int64")),
    ("truncation", pa.float64(), _value("float64")),
    ("latent", _list(pa.float32()), _sequence("float32")),
    ("direction", pa.string(), _value("string")),
    ("shift", pa.float64(), _value("float64")),
    ("dq_score", pa.float64(), _value("float64")),
    ("mask_fraction", pa.float64(), _value("float64")),
    ("components", pa.int64(), _value("int64")),
    ("filters", _list(pa.string()), _sequence("string")),
]

HF_FEATURES: dict[str, dict] = {name: feature for name, _, feature in _COLUMNS}
SCHEMA = pa.schema(
    [pa.field(name, dtype) for name, dtype, _ in _COLUMNS],
    metadata={b"huggingface": json.dumps({"info": {"features": HF_FEATURES}}).encode()},
)
PROVENANCE_FIELDS: tuple[str, ...] = tuple(name for name, _, _ in _COLUMNS if name not in ("id", "image", "mask"))

# Fixed encoder parameters: the same pixels always give the same bytes.
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]  # figures (write_png); shards take a run's `png:`

PNG_STRATEGIES = {
    "default": cv2.IMWRITE_PNG_STRATEGY_DEFAULT,
    "filtered": cv2.IMWRITE_PNG_STRATEGY_FILTERED,
    "huffman_only": cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY,
    "rle": cv2.IMWRITE_PNG_STRATEGY_RLE,
    "fixed": cv2.IMWRITE_PNG_STRATEGY_FIXED,
}
PNG_FILTERS = {
    "none": cv2.IMWRITE_PNG_FILTER_NONE,
    "sub": cv2.IMWRITE_PNG_FILTER_SUB,
    "up": cv2.IMWRITE_PNG_FILTER_UP,
    "avg": cv2.IMWRITE_PNG_FILTER_AVG,
    "paeth": cv2.IMWRITE_PNG_FILTER_PAETH,
    "fast": cv2.IMWRITE_PNG_FAST_FILTERS,  # libpng picks per row among none, sub, up
    "all": cv2.IMWRITE_PNG_ALL_FILTERS,  # libpng picks per row among all five
}
DEFAULT_PNG: dict[str, Any] = {"compression": 1, "strategy": "rle", "filter": "paeth"}  # the schema's default
LEGACY_PNG: dict[str, Any] = {"compression": 6, "strategy": "default", "filter": "all"}  # the bytes of zlib level 6

ROW_GROUP_ROWS = 64  # rows per Parquet row group: what a writer holds encoded at most
# Fixed Parquet settings (pyarrow's defaults of 26.0, spelled out so a new default cannot change the bytes).
PARQUET_OPTIONS: dict[str, Any] = {
    "version": "2.6",
    "compression": "snappy",
    "use_dictionary": True,
    "write_statistics": True,
    "data_page_version": "1.0",
}


def png_params(png: Mapping[str, Any] | None = None) -> list[int]:
    """OpenCV's PNG parameters for a run's ``png:`` settings (missing keys: :data:`DEFAULT_PNG`).

    The compression level goes first: OpenCV resets the strategy to "default" when it reads the level.
    """
    png = {**DEFAULT_PNG, **(png or {})}
    unknown = set(png) - set(DEFAULT_PNG)
    if unknown:
        raise ValueError(f"unknown PNG settings {sorted(unknown)}; known: {', '.join(DEFAULT_PNG)}")
    level = png["compression"]
    if not (isinstance(level, int) and 0 <= level <= 9):
        raise ValueError(f"PNG compression must be a zlib level 0-9, got {level!r}")
    if png["strategy"] not in PNG_STRATEGIES:
        raise ValueError(f"PNG strategy must be one of {', '.join(PNG_STRATEGIES)}, got {png['strategy']!r}")
    if png["filter"] not in PNG_FILTERS:
        raise ValueError(f"PNG filter must be one of {', '.join(PNG_FILTERS)}, got {png['filter']!r}")
    return [
        cv2.IMWRITE_PNG_COMPRESSION,
        level,
        cv2.IMWRITE_PNG_STRATEGY,
        PNG_STRATEGIES[png["strategy"]],
        cv2.IMWRITE_PNG_FILTER,
        PNG_FILTERS[png["filter"]],
    ]


# --- encoding --------------------------------------------------------------------------------


def _encode(ext: str, pixels: np.ndarray, params: list[int]) -> bytes:
    ok, buf = cv2.imencode(ext, pixels, params)
    if not ok:
        raise ValueError(f"OpenCV could not encode a {pixels.shape} array as {ext}")
    return buf.tobytes()


def _record(row: Mapping[str, Any], image_format: str, jpeg_quality: int, png: list[int]) -> dict:
    """One sample dict -> one Parquet record (images encoded with OpenCV parameters ``png`` / JPEG
    ``jpeg_quality``, latent as float32)."""
    unknown = set(row) - set(HF_FEATURES)
    if unknown:
        raise ValueError(f"row {row.get('id')!r} has unknown fields {sorted(unknown)}")
    missing = [name for name in HF_FEATURES if name not in row]
    if missing:
        raise ValueError(f"row {row.get('id')!r} lacks fields {missing}")
    sample_id = str(row["id"])
    image = np.asarray(row["image"])
    mask = np.asarray(row["mask"])
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"row {sample_id!r}: image must be uint8 HxWx3, got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"row {sample_id!r}: mask shape {mask.shape} != image size {image.shape[:2]}")

    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # OpenCV encodes BGR
    if image_format == "png":
        image_bytes, image_name = _encode(".png", bgr, png), f"{sample_id}.png"
    else:
        params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]
        image_bytes, image_name = _encode(".jpg", bgr, params), f"{sample_id}.jpg"
    mask_bytes = _encode(".png", np.multiply(mask > 0, 255, dtype=np.uint8), png)  # 0 / 255

    record = {name: row[name] for name in PROVENANCE_FIELDS}
    record["latent"] = np.asarray(row["latent"], np.float32).tolist()
    record["filters"] = [str(name) for name in row["filters"]]
    return {
        "id": sample_id,
        "image": {"bytes": image_bytes, "path": image_name},
        "mask": {"bytes": mask_bytes, "path": f"{sample_id}.png"},
        **record,
    }


class ShardWriter:
    """Rows in, one Parquet shard out, streamed: :func:`shard_writer` opens one (atomically).

    :meth:`add` hands a row's encoding to one of ``workers`` threads (1: encoded at once, on the
    caller's thread) and keeps at most ``2 x workers`` rows waiting for it; encoded records are written
    in order, a row group of :data:`ROW_GROUP_ROWS` at a time. The bytes depend on the rows alone.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        image_format: str = "png",
        jpeg_quality: int = 95,
        png: Mapping[str, Any] | None = None,
        workers: int = 1,
    ):
        if image_format not in ("png", "jpeg"):
            raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._options = (image_format, jpeg_quality, png_params(png))
        self._file = pq.ParquetWriter(path, SCHEMA, **PARQUET_OPTIONS)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="shard-encode") if workers > 1 else None
        self._waiting: deque[Future] = deque()
        self._max_waiting = 2 * workers
        self._group: list[dict] = []
        self.rows = 0

    def add(self, row: Mapping[str, Any]) -> None:
        """Queue one row (the :data:`SCHEMA` fields, ``image`` / ``mask`` as arrays) for the shard."""
        if self._pool is None:
            self._take(_record(row, *self._options))
            return
        self._waiting.append(self._pool.submit(_record, row, *self._options))
        while len(self._waiting) >= self._max_waiting:
            self._take(self._waiting.popleft().result())

    def _take(self, record: dict) -> None:
        self._group.append(record)
        self.rows += 1
        if len(self._group) == ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._group:
            self._file.write_table(pa.Table.from_pylist(self._group, schema=SCHEMA), row_group_size=ROW_GROUP_ROWS)
            self._group = []

    def close(self) -> int:
        """Encode and write what is left, close the file; return the row count."""
        try:
            while self._waiting:
                self._take(self._waiting.popleft().result())
            self._flush()
        finally:
            self._shutdown()
        return self.rows

    def _shutdown(self) -> None:
        """Stop the encoding threads (dropping what waits) and close the file; safe to call twice."""
        if self._pool is not None:
            for future in self._waiting:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
        self._waiting.clear()
        self._file.close()


@contextmanager
def shard_writer(path: str | os.PathLike, **options: Any) -> Iterator[ShardWriter]:
    """A :class:`ShardWriter` (``options``: its keyword arguments) on a temporary file beside ``path``,
    renamed onto ``path`` when the block ends normally; on an exception ``path`` is left as it was."""
    with atomic_path(path) as tmp:
        writer = ShardWriter(tmp, **options)
        try:
            yield writer
        except BaseException:
            writer._shutdown()
            raise
        writer.close()  # before atomic_path renames the file


def write_shard(
    path: str | os.PathLike,
    rows: Iterable[Mapping[str, Any]],
    *,
    image_format: str = "png",
    jpeg_quality: int = 95,
    png: Mapping[str, Any] | None = None,
    workers: int = 1,
) -> int:
    """Write ``rows`` as one Parquet shard at ``path`` (atomically) and return the row count.

    Each row holds ``image`` (uint8 HxWx3 RGB), ``mask`` (bool or uint8 HxW, foreground > 0) and
    every provenance field of :data:`SCHEMA`; ``image_format`` is "png" (lossless) or "jpeg"; ``png``
    the PNG settings (:func:`png_params`; masks are PNG in either format); ``workers`` encoding threads.
    ``rows`` may be a generator: it is consumed as the shard is written.
    """
    with shard_writer(path, image_format=image_format, jpeg_quality=jpeg_quality, png=png, workers=workers) as out:
        for row in rows:
            out.add(row)
    return out.rows


# --- reading ---------------------------------------------------------------------------------


def read_shard(path: str | os.PathLike) -> pa.Table:
    """The shard at ``path`` as a pyarrow Table (images still encoded)."""
    return pq.read_table(path, schema=SCHEMA)


def _decode(data: bytes | None, flags: int) -> np.ndarray | None:
    if not data:
        return None
    try:
        return cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error:
        return None


def decode_row(record: Mapping[str, Any]) -> dict:
    """A shard record -> the same dict with ``image`` uint8 HxWx3 RGB and ``mask`` bool HxW.

    Raises SynthsodError when a picture does not decode or image and mask sizes disagree.
    """
    sample_id = record.get("id")
    image = _decode(record["image"]["bytes"], cv2.IMREAD_COLOR)
    if image is None:
        raise SynthsodError(f"sample {sample_id!r}: image bytes do not decode")
    mask = _decode(record["mask"]["bytes"], cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise SynthsodError(f"sample {sample_id!r}: mask bytes do not decode")
    if mask.shape != image.shape[:2]:
        raise SynthsodError(f"sample {sample_id!r}: mask size {mask.shape} != image size {image.shape[:2]}")
    return {
        **record,
        "image": cv2.cvtColor(image, cv2.COLOR_BGR2RGB),
        "mask": mask > 127,
    }


# --- manifest and verification ---------------------------------------------------------------


def write_manifest(
    run_dir: str | os.PathLike, shard_paths: Iterable[str | os.PathLike], config: Mapping[str, Any]
) -> Path:
    """Write ``run_dir/manifest.json`` listing ``shard_paths`` in order; return its path.

    Shards must lie inside ``run_dir``; ``config`` is the run's resolved config (JSON-able).
    """
    run_dir = Path(run_dir)
    root = run_dir.resolve()
    shards = []
    for shard in progress(list(map(Path, shard_paths)), desc=f"hashing the shards of {run_dir}", unit="shard"):
        try:
            name = shard.resolve().relative_to(root).as_posix()
        except ValueError:
            raise SynthsodError(f"{shard}: shard is not inside the run directory {run_dir}") from None
        rows = pq.ParquetFile(shard).metadata.num_rows
        shards.append({"file": name, "rows": rows, "sha256": file_sha256(shard)})
    manifest = {
        "format_version": FORMAT_VERSION,
        "shards": shards,
        "total_rows": sum(entry["rows"] for entry in shards),
        "config": dict(config),
    }
    path = run_dir / MANIFEST_NAME
    write_json_atomic(path, manifest)
    return path


def load_manifest(run_dir: Path) -> dict:
    path = run_dir / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise SynthsodError(f"{path}: manifest missing") from None
    except (OSError, ValueError) as exc:
        raise SynthsodError(f"{path}: manifest unreadable ({exc})") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise SynthsodError(f"{path}: format_version {version!r}, expected {FORMAT_VERSION}")
    entries = manifest.get("shards")
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and {"file", "rows", "sha256"} <= e.keys() for e in entries
    ):
        raise SynthsodError(f"{path}: 'shards' must list entries with file, rows and sha256")
    return manifest


def _check_shard(run_dir: Path, entry: Mapping[str, Any]) -> Path:
    """The shard's path, after checking it exists and its sha256, row count and schema."""
    path = run_dir / entry["file"]
    if not path.is_file():
        raise SynthsodError(f"{path}: shard missing")
    if file_sha256(path) != entry["sha256"]:
        raise SynthsodError(f"{path}: sha256 does not match the manifest (file changed or corrupt)")
    try:
        meta = pq.ParquetFile(path).metadata
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise SynthsodError(f"{path}: not a readable Parquet file ({exc})") from None
    if meta.num_rows != entry["rows"]:
        raise SynthsodError(f"{path}: has {meta.num_rows} rows, manifest says {entry['rows']}")
    if not schema.equals(SCHEMA, check_metadata=True):
        raise SynthsodError(f"{path}: schema differs from synthsod.synthesis.shards.SCHEMA")
    return path


def verify_run(run_dir: str | os.PathLike, *, decode: bool = True) -> dict:
    """Check a run directory against its manifest; return ``{"shards", "rows"}`` counts.

    Checks each shard's presence, sha256, row count and schema, the manifest's total, that ids
    are unique across shards and (when ``decode``) that every image and mask decodes with
    matching sizes. Raises SynthsodError naming the file and the reason on the first problem.
    """
    run_dir = Path(run_dir)
    manifest = load_manifest(run_dir)
    seen: dict[str, str] = {}
    total = 0
    columns = None if decode else ["id"]  # without decoding, ids are all that is read
    for entry in progress(manifest["shards"], desc=f"verifying {run_dir}", unit="shard"):
        path = _check_shard(run_dir, entry)
        total += entry["rows"]
        for record in pq.read_table(path, columns=columns).to_pylist():
            sample_id = record["id"]
            if sample_id in seen:
                raise SynthsodError(f"{path}: id {sample_id!r} also in {seen[sample_id]}")
            seen[sample_id] = entry["file"]
            if decode:
                try:
                    decode_row(record)
                except SynthsodError as exc:
                    raise SynthsodError(f"{path}: {exc}") from None
    if total != manifest.get("total_rows"):
        raise SynthsodError(
            f"{run_dir / MANIFEST_NAME}: total_rows {manifest.get('total_rows')!r} != sum of shard rows {total}"
        )
    return {"shards": len(manifest["shards"]), "rows": total}


# --- preview ---------------------------------------------------------------------------------


def iter_rows(run_dir: str | os.PathLike) -> Iterator[dict]:
    """A run's decoded rows in manifest order, one shard in memory at a time."""
    run_dir = Path(run_dir)
    yield from iter_shard_rows(run_dir / entry["file"] for entry in load_manifest(run_dir)["shards"])


def iter_shard_rows(paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
    """Decoded rows of the given shard files in order; a bad shard or row raises naming the file."""
    for path in paths:
        try:
            records = read_shard(path).to_pylist()
        except (OSError, pa.ArrowException) as exc:
            raise SynthsodError(f"{path}: shard unreadable ({exc})") from None
        for record in records:
            try:
                yield decode_row(record)
            except SynthsodError as exc:
                raise SynthsodError(f"{path}: {exc}") from None


TILE_MIN_SIDE = 128  # small images are enlarged (nearest neighbour) so a 1-pixel contour stays legible


def pair_tile(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image above a copy of it with the mask's contour drawn on it (yellow inside a dark rim, visible on
    any background), so the mask can be judged against the pixels it claims; images smaller than
    :data:`TILE_MIN_SIDE` are enlarged first."""
    scale = max(1, -(-TILE_MIN_SIDE // max(image.shape[:2])))
    if scale > 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        mask = cv2.resize(mask.astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) > 0
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    overlay = np.ascontiguousarray(image.copy())
    cv2.drawContours(overlay, contours, -1, (0, 0, 0), 3)
    cv2.drawContours(overlay, contours, -1, (255, 230, 0), 1)
    return np.concatenate([image, overlay], axis=0)


def tile_grid(tiles: list[np.ndarray], cols: int | None = None) -> np.ndarray:
    """Tiles (resized to the first one's size) in a grid of ``cols`` columns (square when None),
    the last row padded with black."""
    if not tiles:
        raise ValueError("no tiles")
    size = tiles[0].shape[1::-1]
    tiles = [t if t.shape == tiles[0].shape else cv2.resize(t, size, interpolation=cv2.INTER_AREA) for t in tiles]
    cols = cols or math.ceil(math.sqrt(len(tiles)))
    rows = math.ceil(len(tiles) / cols)
    tiles = tiles + [np.zeros_like(tiles[0])] * (rows * cols - len(tiles))
    return np.concatenate([np.concatenate(tiles[r * cols : (r + 1) * cols], axis=1) for r in range(rows)], axis=0)


def write_png(path: str | os.PathLike, rgb: np.ndarray) -> None:
    """An RGB uint8 array as a PNG, atomically."""
    write_bytes_atomic(path, _encode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), _PNG_PARAMS))


def preview_grid(run_dir: str | os.PathLike, out_png: str | os.PathLike, n: int = 16) -> int:
    """Write a PNG grid of the first ``n`` samples (image above its mask overlay); return the count.

    Tiles take the first image's size; each is :func:`pair_tile` (the image above its mask's contour).
    """
    tiles = []
    for row in iter_rows(run_dir):
        tiles.append(pair_tile(row["image"], row["mask"]))
        if len(tiles) == n:
            break
    if not tiles:
        raise SynthsodError(f"{run_dir}: no samples to preview")
    write_png(out_png, tile_grid(tiles))
    return len(tiles)
