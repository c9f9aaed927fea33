"""Check and index a real salient-object-detection dataset (DUTS layout) before anything uses it.

A dataset is two folders: ``images`` (JPEG, or PNG for HKU-IS) and ``masks`` (normally PNG).
Files with the extensions .jpg, .jpeg, .png or .bmp (any letter case) are read from either folder;
other files, sub-folders and hidden files (names starting with ".", such as the ``._name.jpg``
files macOS leaves behind) are ignored. An image and a mask form a pair when their file names
have the same stem (``sun_abc.jpg`` + ``sun_abc.png`` is pair ``sun_abc``).

Every pair is checked in this order; the ``checks`` column of the manifest lists the same steps
(``decoded,paired,unique,size,rgb,binary,nonempty``):

decoded
    Both files open and fully decode with Pillow. Truncated JPEG/PNG files count as corrupt
    (truncated images are never silently padded). Corrupt file -> pair **skipped**.
paired
    The image has a mask and the mask has an image. Otherwise -> **skipped**.
unique
    No folder holds two files with the same stem (``a.jpg`` and ``a.png``): it would be a guess
    which one is meant. Duplicate id -> **skipped**.
size
    Image and mask have the same width and height. Otherwise -> **skipped**.
rgb
    The image is 8-bit RGB. Grayscale (L, LA, I, I;16, 1), RGBA, palette (P) and CMYK images are
    kept and **converted** to RGB; an alpha channel is dropped (not blended onto a background).
binary
    After converting the mask to 8-bit grayscale (Pillow mode "L"), every pixel is 0 or 255.
    A soft mask is kept and **binarised**: foreground is a value > 128, exactly as pysodmetrics
    does with ``gt > 128`` (so 128 is background and 129 is foreground).
nonempty
    The binarised mask has at least one foreground pixel. Otherwise -> **skipped**; a mask whose
    brightest value is 1 was almost certainly saved as 0/1 and has to be saved as 0/255.

A skipped pair reports only why it was skipped; a kept pair can report both a conversion and a
binarisation. Each problem names one file (always ``<id>.<ext>``) and a plain reason.

:func:`prepare_dataset` writes ``manifest.parquet`` (one row per kept pair) and ``bad_inputs.csv``
(one row per problem). If more than ``max_bad_fraction`` of the pairs are skipped it writes
nothing and raises :class:`~synthsod.errors.SynthsodError` listing the problems, because a
dataset that broken is more likely the wrong folder than a few bad files.

Downstream code reads a prepared pair only through :func:`load_image_rgb` and
:func:`load_mask_binary`, which apply the conversions reported here.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
from PIL import Image

from synthsod.core.io import atomic_path, write_bytes_atomic
from synthsod.core.progress import progress
from synthsod.errors import SynthsodError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
CHECKS = "decoded,paired,unique,size,rgb,binary,nonempty"
MANIFEST_COLUMNS = ("id", "image", "mask", "width", "height", "image_mode", "mask_soft", "fg_fraction", "checks")
PROBLEM_COLUMNS = ("file", "reason", "action")
SKIPPED, CONVERTED, BINARISED = "skipped", "converted", "binarised"
# pysodmetrics treats a ground-truth pixel as foreground when gt > 128.
FG_THRESHOLD = 128
# How many problems a SynthsodError message lists before "... and N more".
_MAX_LISTED = 10

T = TypeVar("T")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input file; ``action`` says what was done about it."""

    file: str
    reason: str
    action: str  # "skipped" (pair dropped), "converted" or "binarised" (pair kept)


@dataclass(frozen=True)
class PrepareSummary:
    """Counts of one dataset check; a pair is a stem present in either folder."""

    name: str
    n_pairs_found: int
    n_kept: int
    n_skipped: int
    n_converted: int
    n_binarised: int

    @property
    def bad_fraction(self) -> float:
        return self.n_skipped / self.n_pairs_found if self.n_pairs_found else 0.0

    def line(self) -> str:
        return (
            f"{self.name}: {self.n_pairs_found} pairs found, {self.n_kept} kept, "
            f"{self.n_skipped} skipped, {self.n_converted} converted, "
            f"{self.n_binarised} binarised"
        )


@dataclass(frozen=True)
class _Decoded:
    """What a check needs from one decoded file (the pixels only for masks)."""

    mode: str
    size: tuple[int, int]  # (width, height), as Pillow reports it
    gray: np.ndarray | None = None


@dataclass
class _PairResult:
    row: dict | None = None
    problems: list[Problem] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Reading files


def _read(path: str | os.PathLike, convert: Callable[[Image.Image], T]) -> T:
    """Open and fully decode a file (``.load()`` is what catches truncated data), then convert.

    The conversion runs while the file is open, so nothing depends on Pillow's behaviour after
    ``close()`` and no file handle is left behind.
    """
    with Image.open(path) as im:
        im.load()
        return convert(im)


def _read_or_raise(path: str | os.PathLike, convert: Callable[[Image.Image], T]) -> T:
    try:
        return _read(path, convert)
    except Exception as exc:  # Pillow raises many types for corrupt data; all mean "unreadable"
        raise SynthsodError(f"{os.fspath(path)}: unreadable or corrupt file ({exc})") from exc


def _rgb(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _mask_gray(im: Image.Image) -> np.ndarray:
    return np.asarray(im.convert("L"), dtype=np.uint8)


def load_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 H x W x 3 RGB, converting other modes as the check reported."""
    return _read_or_raise(path, _rgb)


def load_gray(path: str | os.PathLike) -> np.ndarray:
    """Read a mask or saliency map as uint8 H x W grayscale."""
    return _read_or_raise(path, _mask_gray)


def load_mask_binary(path: str | os.PathLike) -> np.ndarray:
    """Read a mask as bool H x W: foreground is > 128 after conversion to 8-bit grayscale."""
    return load_gray(path) > FG_THRESHOLD


def _decode(path: str, as_mask: bool) -> _Decoded | str:
    """Decode one file; return the error text instead of raising so one bad file is one problem."""

    def describe(im: Image.Image) -> _Decoded:
        return _Decoded(mode=im.mode, size=im.size, gray=_mask_gray(im) if as_mask else None)

    try:
        return _read(path, describe)
    except Exception as exc:  # see _read_or_raise
        return str(exc) or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Listing folders


def list_image_files(folder: str | os.PathLike, role: str) -> dict[str, list[str]]:
    """Map stem -> file names (sorted) of the image files in ``folder``."""
    path = Path(folder)
    if not path.is_dir():
        raise SynthsodError(f"{role} folder not found: {os.fspath(folder)}")
    by_stem: dict[str, list[str]] = {}
    for entry in os.scandir(path):
        # Hidden files include macOS "._x.jpg" resource forks, which are not images.
        if entry.name.startswith(".") or not entry.is_file():
            continue
        stem, ext = os.path.splitext(entry.name)
        if ext.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(stem, []).append(entry.name)
    if not by_stem:
        raise SynthsodError(f"{role} folder has no image files ({', '.join(IMAGE_EXTENSIONS)}): {os.fspath(folder)}")
    return {stem: sorted(names) for stem, names in by_stem.items()}


def _join(folder: str | os.PathLike, name: str) -> str:
    # os.path.join keeps the folder exactly as the user gave it (Path would normalise "./x").
    return os.path.join(os.fspath(folder), name)


# ---------------------------------------------------------------------------------------------
# Checking one pair


def _duplicate_problems(folder: str | os.PathLike, stem: str, names: list[str]) -> list[Problem]:
    others = ", ".join(names)
    return [Problem(_join(folder, n), f"duplicate id '{stem}': the folder holds {others}", SKIPPED) for n in names]


def _presence_problems(
    stem: str,
    images: list[str] | None,
    masks: list[str] | None,
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
) -> list[Problem]:
    """Problems that need no decoding: missing partner and duplicate ids."""
    problems: list[Problem] = []
    if images and len(images) > 1:
        problems += _duplicate_problems(images_dir, stem, images)
    if masks and len(masks) > 1:
        problems += _duplicate_problems(masks_dir, stem, masks)
    if not masks:
        for name in images or []:
            problems.append(Problem(_join(images_dir, name), "image has no mask", SKIPPED))
    if not images:
        for name in masks or []:
            problems.append(Problem(_join(masks_dir, name), "mask has no image", SKIPPED))
    return problems


def _mode_reason(mode: str) -> str:
    if mode in ("RGBA", "LA", "PA"):
        detail = "alpha channel dropped"
    elif mode == "P":
        detail = "palette expanded"
    elif mode == "CMYK":
        detail = "CMYK colours converted"
    elif mode.startswith(("I", "F")):
        # Pillow clips (does not rescale) high-bit-depth values when converting to 8 bits.
        detail = "grayscale copied to 3 channels, values above 255 clipped"
    else:
        detail = "grayscale copied to 3 channels"
    return f"image mode {mode} is not RGB; converted to RGB ({detail})"


def _mask_stats(gray: np.ndarray) -> tuple[bool, int, float, float, int]:
    """Return (soft, n_grey_levels, soft_fraction, fg_fraction, max_value) of an 8-bit mask."""
    counts = np.bincount(gray.ravel(), minlength=256)
    total = gray.size
    grey = counts[1:255]
    n_levels = int(np.count_nonzero(grey))
    soft_fraction = float(grey.sum()) / total
    fg_fraction = float(counts[FG_THRESHOLD + 1 :].sum()) / total
    max_value = int(np.flatnonzero(counts).max())
    return n_levels > 0, n_levels, soft_fraction, fg_fraction, max_value


def _empty_reason(max_value: int) -> str:
    reason = f"mask is empty: no pixel > {FG_THRESHOLD} (brightest value {max_value})"
    if max_value == 1:
        reason += "; it looks like a 0/1 mask, save binary masks as 0/255"
    return reason


def _check_pair(
    stem: str,
    images: list[str] | None,
    masks: list[str] | None,
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
) -> _PairResult:
    problems = _presence_problems(stem, images, masks, images_dir, masks_dir)
    if problems:
        return _PairResult(problems=problems)
    assert images and masks  # both present and unique, else problems above
    image_path, mask_path = _join(images_dir, images[0]), _join(masks_dir, masks[0])

    image, mask = _decode(image_path, as_mask=False), _decode(mask_path, as_mask=True)
    for path, decoded in ((image_path, image), (mask_path, mask)):
        if isinstance(decoded, str):
            problems.append(Problem(path, f"unreadable or corrupt file ({decoded})", SKIPPED))
    if problems:
        return _PairResult(problems=problems)
    assert isinstance(image, _Decoded) and isinstance(mask, _Decoded) and mask.gray is not None

    if image.size != mask.size:
        (iw, ih), (mw, mh) = image.size, mask.size
        reason = f"image is {iw}x{ih} but its mask {mask_path} is {mw}x{mh} (width x height)"
        return _PairResult(problems=[Problem(image_path, reason, SKIPPED)])

    soft, n_levels, soft_fraction, fg_fraction, max_value = _mask_stats(mask.gray)
    if fg_fraction == 0.0:
        return _PairResult(problems=[Problem(mask_path, _empty_reason(max_value), SKIPPED)])

    if image.mode != "RGB":
        problems.append(Problem(image_path, _mode_reason(image.mode), CONVERTED))
    if soft:
        reason = (
            f"mask is not binary: {n_levels} grey levels besides 0 and 255 on "
            f"{soft_fraction:.1%} of pixels (mode {mask.mode}); binarised at > {FG_THRESHOLD}"
        )
        problems.append(Problem(mask_path, reason, BINARISED))
    width, height = image.size
    row = {
        "id": stem,
        "image": image_path,
        "mask": mask_path,
        "width": width,
        "height": height,
        "image_mode": image.mode,
        "mask_soft": soft,
        "fg_fraction": fg_fraction,
        "checks": CHECKS,
    }
    return _PairResult(row=row, problems=problems)


# ---------------------------------------------------------------------------------------------
# Checking a dataset


def _manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Build the manifest with fixed dtypes, so an empty one still has the right schema."""
    dtypes = {
        "id": "str",
        "image": "str",
        "mask": "str",
        "width": "int64",
        "height": "int64",
        "image_mode": "str",
        "mask_soft": "bool",
        "fg_fraction": "float64",
        "checks": "str",
    }
    frame = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
    return frame.astype(dtypes).reset_index(drop=True)


def check_pairs(
    images_dir: str | os.PathLike, masks_dir: str | os.PathLike, threads: int = 1
) -> tuple[pd.DataFrame, list[Problem]]:
    """Check every pair; return the manifest of kept pairs (sorted by id) and all problems.

    Problems are ordered by pair id, then in the order of the checks. ``threads`` files are
    decoded at once; the result does not depend on it.
    """
    if threads < 1:
        raise SynthsodError(f"threads must be at least 1, got {threads}")
    images = list_image_files(images_dir, "images")
    masks = list_image_files(masks_dir, "masks")
    if os.path.samefile(images_dir, masks_dir):
        raise SynthsodError(f"images and masks are the same folder: {os.fspath(images_dir)}")
    stems = sorted(images.keys() | masks.keys())

    def check(stem: str) -> _PairResult:
        return _check_pair(stem, images.get(stem), masks.get(stem), images_dir, masks_dir)

    # Executor.map yields in input order, so the output is deterministic whatever finishes first.
    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(progress(pool.map(check, stems), total=len(stems), desc="checking pairs", unit="pair"))
    rows = [r.row for r in results if r.row is not None]
    problems = [p for r in results for p in r.problems]
    return _manifest_frame(rows), problems


def summarise(name: str, manifest: pd.DataFrame, problems: list[Problem]) -> PrepareSummary:
    """Count pairs from a check's result; skipped pairs are the ids with a "skipped" problem."""
    skipped_ids = {Path(p.file).stem for p in problems if p.action == SKIPPED}
    kept = set(manifest["id"])

    def n_kept_with(action: str) -> int:
        return len({Path(p.file).stem for p in problems if p.action == action} & kept)

    return PrepareSummary(
        name=name,
        n_pairs_found=len(kept) + len(skipped_ids),
        n_kept=len(kept),
        n_skipped=len(skipped_ids),
        n_converted=n_kept_with(CONVERTED),
        n_binarised=n_kept_with(BINARISED),
    )


def format_problems(problems: list[Problem]) -> str:
    """Render problems as an aligned plain-text table (action, file, reason), one per line."""
    if not problems:
        return "no problems found"
    header = ("action", "file", "reason")
    rows = [header] + [(p.action, p.file, p.reason) for p in problems]
    w_action = max(len(r[0]) for r in rows)
    w_file = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{w_action}}  {f:<{w_file}}  {r}".rstrip() for a, f, r in rows)


def _problems_csv(problems: list[Problem]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(PROBLEM_COLUMNS)
    writer.writerows((p.file, p.reason, p.action) for p in problems)
    return buf.getvalue().encode()


def _too_many_bad_message(summary: PrepareSummary, problems: list[Problem], max_bad_fraction: float) -> str:
    skipped = [p for p in problems if p.action == SKIPPED]
    lines = [
        f"dataset '{summary.name}': {summary.n_skipped} of {summary.n_pairs_found} pairs are "
        f"unusable ({summary.bad_fraction:.1%}), more than the limit of {max_bad_fraction:.1%} "
        f"(max_bad_fraction); nothing was written. Problems:"
    ]
    lines += [f"  {p.file}: {p.reason}" for p in skipped[:_MAX_LISTED]]
    if len(skipped) > _MAX_LISTED:
        lines.append(f"  ... and {len(skipped) - _MAX_LISTED} more")
    lines.append("Check the folders are the right ones, fix the files, or raise max_bad_fraction.")
    return "\n".join(lines)


def prepare_dataset(
    name: str,
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    manifest_path: str | os.PathLike,
    bad_inputs_path: str | os.PathLike,
    max_bad_fraction: float,
    threads: int = 1,
) -> PrepareSummary:
    """Check a dataset and write its manifest (parquet) and problem list (csv), both atomically.

    Raises SynthsodError, writing nothing, when skipped pairs / all pairs > ``max_bad_fraction``.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise SynthsodError(f"max_bad_fraction must be between 0 and 1, got {max_bad_fraction}")
    manifest, problems = check_pairs(images_dir, masks_dir, threads=threads)
    summary = summarise(name, manifest, problems)
    if summary.bad_fraction > max_bad_fraction:
        # Snakemake deletes the outputs of a failed job, so the message itself must list the files.
        raise SynthsodError(_too_many_bad_message(summary, problems, max_bad_fraction))
    with atomic_path(manifest_path) as tmp:
        manifest.to_parquet(tmp, engine="pyarrow", index=False)
    write_bytes_atomic(bad_inputs_path, _problems_csv(problems))
    return summary
