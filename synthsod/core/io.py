"""Atomic file writes: a reader (or a resumed run) never sees a half-written artifact."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    The temporary name sits in the same directory, so the final ``os.replace`` is atomic on POSIX.
    On any exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_csv_atomic(path: str | os.PathLike, rows: list[dict], columns: list[str]) -> None:
    """Rows as CSV with a header of ``columns`` (a missing value is empty, other keys are left out), atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(path, buffer.getvalue().encode())


def file_sha256(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MISSING_SHOWN = 10  # missing stems named in an error (then a count)


def png_files_by_stem(folder: str | os.PathLike, ids: Iterable[Any], item: str, images: str) -> dict[str, Path]:
    """``{id: folder/<id>.png}`` for every id, checked up front: a missing folder, or one without a file for
    some ids, is one error naming the folder and the missing stems (``item``: what a file is, e.g. "saliency
    map"; ``images``: what the ids are, e.g. "benchmark images")."""
    from synthsod.errors import SynthsodError

    folder, ids = Path(folder), [str(i) for i in ids]
    if not folder.is_dir():
        raise SynthsodError(f"{folder}: no such folder of {item}s (<image stem>.png)")
    found = {path.stem: path for path in folder.iterdir() if path.suffix.lower() == ".png" and path.is_file()}
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(missing[:MISSING_SHOWN])
        if len(missing) > MISSING_SHOWN:
            shown += f", ... ({len(missing) - MISSING_SHOWN} more)"
        raise SynthsodError(
            f"{folder}: no {item} for {len(missing)} of the {len(ids)} {images} (the folder holds "
            f"{len(found)} PNG files; each must be <image stem>.png); missing stems: {shown}"
        )
    return {i: found[i] for i in ids}
