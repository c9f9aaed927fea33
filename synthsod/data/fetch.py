"""Fetch weights and datasets from their official locations: resumable, checksummed, unpacked safely.

A download (config ``downloads:``) is one URL and either one file (``to: path``) or an archive (zip, tar,
tar.gz) whose folders go to target folders (``extract: {archive folder: target folder}``, ``.`` for the
archive's root). ``fetch`` does it all:

1. download into ``<cache_dir>/<name>-<url digest>.part``, resuming a partial file with an HTTP Range request
   (a server that ignores Range sends the whole file, which then replaces the partial one), with a timeout per
   read and a number of retries for server errors (5xx), unreachable hosts, timeouts and cut connections;
2. check its sha256 against the config's ``sha256``, else against the lock file's entry, if any (a mismatch
   removes the file and leaves the targets untouched);
3. unpack (archives) into temporary folders beside the targets, refusing any member that would land outside
   its folder, then rename them onto the targets; a plain file is renamed onto its target;
4. record ``{url, sha256, bytes}`` under the download's name in the lock file (first download), so every
   later download is checked against it.

Nothing appears at a target before every check passed and the unpack finished. The part file stays in the
cache after a failed try (the next one resumes it) and is removed after success or a checksum mismatch.
Standard library only: the workflow's start-up checks import this module while the Snakefile parses.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import logging
import os
import posixpath
import re
import shutil
import socket
import stat
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthsod.core.io import atomic_path, file_sha256, write_json_atomic
from synthsod.errors import SynthsodError

log = logging.getLogger(__name__)

LOCK_FILE = "downloads.lock.json"
CACHE_DIR = ".downloads"
BLOCK = 1 << 20  # bytes per read
USER_AGENT = "synthsod-fetch (python urllib)"


# ---------------------------------------------------------------------------------------------
# A download's targets (no I/O: the Snakefile calls these while it parses)


def targets(spec: dict) -> list[str]:
    """The paths a download provides (normalised): its ``to`` file, or its ``extract`` target folders."""
    if spec.get("extract"):
        return [os.path.normpath(target) for target in spec["extract"].values()]
    return [os.path.normpath(spec["to"])]


def is_archive(spec: dict) -> bool:
    return bool(spec.get("extract"))


def rule_name(name: str) -> str:
    """The Snakemake rule that fetches download ``name`` (its non-word characters become ``_``)."""
    return "fetch_" + re.sub(r"\W", "_", name)


def download_problems(downloads: dict) -> list[str]:
    """Config problems of the downloads: a path two downloads provide, nested targets, clashing rule names."""
    lines = []
    owners: dict[str, str] = {}
    for name, spec in downloads.items():
        for target in targets(spec):
            if target in owners:
                lines.append(f"downloads.{name}: {target} is also provided by download {owners[target]}")
            owners.setdefault(target, name)
    paths = sorted(owners)
    for outer in paths:
        for inner in paths:
            if inner != outer and inner.startswith(outer.rstrip("/") + "/"):
                lines.append(
                    f"downloads.{owners[inner]}: {inner} lies inside {outer} (download {owners[outer]}); "
                    "targets must not nest"
                )
    rules: dict[str, str] = {}
    for name in downloads:
        other = rules.setdefault(rule_name(name), name)
        if other != name:
            lines.append(f"downloads: '{name}' and '{other}' both become rule {rule_name(name)}; rename one")
    return lines


def offline_hint(name: str, spec: dict, path: str, unreachable: bool = False) -> str:
    """The start-up check's line for a missing ``path`` that download ``name`` would provide (its host
    ``unreachable`` from here, or fetching switched off)."""
    why = "its host cannot be reached from here" if unreachable else "fetch.enabled is false"
    fix = "" if unreachable else ", or set fetch.enabled: true"
    return f"{path}: download {name} provides it ({spec['url']}); {why}: fetch it elsewhere and put it there{fix}"


def unreachable_urls(urls: Iterable[str], timeout_s: float = 5.0) -> list[str]:
    """The URLs whose host accepts no connection within ``timeout_s`` (one TCP connect per host and port).

    The start-up check asks this before it plans fetch jobs, so an offline machine stops at once with the
    list of what to put where, instead of failing job by job."""
    verdict: dict[tuple[str, int], bool] = {}
    bad = []
    for url in urls:
        parts = urllib.parse.urlsplit(url)
        address = (parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80))
        if address not in verdict:
            try:
                with socket.create_connection(address, timeout=timeout_s):
                    verdict[address] = True
            except OSError:
                verdict[address] = False
        if not verdict[address]:
            bad.append(url)
    return bad


# ---------------------------------------------------------------------------------------------
# The lock file


def read_lock(lock_file: str | os.PathLike) -> dict[str, dict]:
    """The lock file's entries ({} when there is none yet)."""
    path = Path(lock_file)
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
    except ValueError as err:
        raise SynthsodError(f"lock file {path} is not valid JSON ({err}); fix it or remove it") from None
    if not isinstance(entries, dict):
        raise SynthsodError(f"lock file {path} must hold a JSON object {{name: {{url, sha256, bytes}}}}")
    return entries


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``<lock_file>.flock`` (parallel fetch jobs update one lock file)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file.with_name(lock_file.name + ".flock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_download(lock_file: str | os.PathLike, name: str, url: str, sha256: str, size: int) -> None:
    """Write ``{url, sha256, bytes}`` under ``name`` into the lock file, atomically (other entries kept)."""
    lock_file = Path(lock_file)
    with _exclusive(lock_file):
        entries = read_lock(lock_file)
        entries[name] = {"url": url, "sha256": sha256, "bytes": size}
        write_json_atomic(lock_file, entries)


def expected_sha256(name: str, spec: dict, lock: dict[str, dict], lock_file: str | os.PathLike) -> tuple[str, str]:
    """(sha256, where it comes from) for download ``name``: the config's, else the lock file's; ("", "") if none."""
    if spec.get("sha256"):
        return spec["sha256"].lower(), f"config downloads.{name}.sha256"
    entry = lock.get(name)
    if entry and entry.get("sha256"):
        return entry["sha256"].lower(), f"{lock_file}, recorded from {entry.get('url', '?')}"
    return "", ""


def verify_sha256(path: Path, url: str, expected: str, source: str, lock_hint: str = "") -> str:
    """The file's sha256; on a mismatch with ``expected`` the file is removed and SynthsodError says both."""
    got = file_sha256(path)
    if expected and got != expected:
        path.unlink(missing_ok=True)
        raise SynthsodError(
            f"checksum mismatch for {url}: expected sha256 {expected} ({source}), got {got}; "
            f"the downloaded file was removed{lock_hint}"
        )
    return got


# ---------------------------------------------------------------------------------------------
# Downloading with resume, timeout and retries


class _Retry(Exception):
    """A failed try that another try may fix (server error, unreachable host, timeout, cut connection)."""


def part_path(cache_dir: str | os.PathLike, name: str, url: str) -> Path:
    """The partial download of ``url`` (another URL under the same name gets another file)."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{re.sub(r'[^A-Za-z0-9._-]', '_', name)}-{digest}.part"


_COMPLETE = object()  # _open's answer when the partial file already holds the whole file


def _open(url: str, start: int, timeout_s: float):
    headers = {"User-Agent": USER_AGENT}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout_s)
    except urllib.error.HTTPError as err:
        err.close()
        if err.code == 416 and start:  # nothing left from `start`: the partial file is complete, or stale
            total = re.fullmatch(r"bytes \*/(\d+)", err.headers.get("Content-Range", "") or "")
            return _COMPLETE if total and int(total.group(1)) == start else None
        reason = f"the server answered HTTP {err.code} {err.reason}"
        if err.code >= 500 or err.code in (408, 429):
            raise _Retry(reason) from None
        raise SynthsodError(f"cannot download {url}: {reason}") from None
    except urllib.error.URLError as err:
        raise _Retry(f"cannot reach the host ({err.reason})") from None
    except TimeoutError:
        raise _Retry(f"no answer within {timeout_s} s") from None
    except (ConnectionError, http.client.HTTPException) as err:
        raise _Retry(f"the connection failed ({err.__class__.__name__}: {err})") from None


def _resumed_from(response, start: int) -> int:
    """Where the response's body starts in the file: ``start`` for a matching 206, else 0 (whole file)."""
    if not start or response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return start if match and int(match.group(1)) == start else -1


def _receive(response, part: Path, offset: int, timeout_s: float) -> int:
    """Write the body to ``part`` from ``offset`` (appending) or from scratch; the file's size at the end."""
    length = response.headers.get("Content-Length")
    length = int(length) if length and length.isdigit() else None
    received = 0
    with open(part, "ab" if offset else "wb") as file:
        try:
            while block := response.read(BLOCK):
                file.write(block)
                received += len(block)
        except http.client.IncompleteRead as err:
            file.write(err.partial)
            received += len(err.partial)
            raise _Retry(f"the connection closed after {offset + received} bytes (truncated)") from None
        except TimeoutError:
            raise _Retry(f"no data for {timeout_s} s after {offset + received} bytes") from None
        except (ConnectionError, http.client.HTTPException) as err:
            raise _Retry(f"the connection failed after {offset + received} bytes ({err})") from None
    if length is not None and received < length:
        raise _Retry(f"the connection closed after {offset + received} of {offset + length} bytes (truncated)")
    return offset + received


def _try_once(url: str, part: Path, timeout_s: float) -> int:
    start = part.stat().st_size if part.is_file() else 0
    response = _open(url, start, timeout_s)
    if response is _COMPLETE:
        return start
    if response is None:  # 416: the partial file is stale
        part.unlink()
        start = 0
        response = _open(url, 0, timeout_s)
    with response:
        offset = _resumed_from(response, start)
        if offset < 0:
            part.unlink()
            raise _Retry("the server resumed from another byte than asked")
        if start and not offset:
            log.info("%s: the server ignored the Range request; downloading the whole file again", url)
        elif offset:
            log.info("%s: resuming after %d bytes", url, offset)
        return _receive(response, part, offset, timeout_s)


def download(url: str, part: str | os.PathLike, timeout_s: float = 30, retries: int = 3, backoff_s: float = 1.0) -> int:
    """Download ``url`` into ``part`` (resuming what it holds); its size. SynthsodError after ``retries + 1``
    failed tries, or at once for a client error (4xx); ``part`` then keeps what arrived."""
    part = Path(part)
    part.parent.mkdir(parents=True, exist_ok=True)
    reason = ""
    for attempt in range(retries + 1):
        if attempt:
            log.warning("%s: try %d of %d failed (%s); retrying", url, attempt, retries + 1, reason)
            time.sleep(backoff_s * attempt)
        try:
            return _try_once(url, part, timeout_s)
        except _Retry as err:
            reason = str(err)
    tries = f"{retries + 1} {'try' if retries == 0 else 'tries'}"
    raise SynthsodError(f"cannot download {url}: {reason} ({tries}; the next run resumes from {part})")


# ---------------------------------------------------------------------------------------------
# Safe unpacking


@dataclass
class Member:
    """An archive member: its path in the archive, kind (file, dir, symlink, hardlink, other) and link."""

    name: str
    kind: str
    link: str = ""


def _zip_members(archive: zipfile.ZipFile) -> Iterator[tuple[Member, Any]]:
    for info in archive.infolist():
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            yield Member(info.filename, "symlink", archive.read(info).decode("utf-8", "replace")), info
        else:
            yield Member(info.filename, "dir" if info.is_dir() else "file"), info


def _tar_members(archive: tarfile.TarFile) -> Iterator[tuple[Member, Any]]:
    for info in archive:
        if info.isdir():
            kind = "dir"
        elif info.isreg():
            kind = "file"
        elif info.issym():
            kind = "symlink"
        elif info.islnk():
            kind = "hardlink"
        else:
            kind = "other"
        yield Member(info.name, kind, info.linkname), info


@contextlib.contextmanager
def _open_archive(path: Path, label: str):
    """(members, open a member's bytes) of a zip or tar archive (any compression tarfile reads)."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            yield _zip_members(archive), archive.open
        return
    try:
        archive = tarfile.open(path, "r:*")
    except tarfile.TarError:
        raise SynthsodError(f"{label} is neither a zip nor a tar archive") from None
    with archive:
        yield _tar_members(archive), archive.extractfile


def _parts(name: str) -> list[str] | None:
    """A member path as parts, or None when it is absolute (``/x``, ``C:x``); ``\\`` counts as a separator."""
    name = name.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    return [part for part in name.split("/") if part not in ("", ".")]


def _folder_parts(folder: str) -> list[str]:
    parts = _parts(folder)
    if parts is None or ".." in parts:
        raise SynthsodError(f"archive folder '{folder}' must be a relative path inside the archive")
    return parts


def _unsafe(label: str, member: str, reason: str) -> SynthsodError:
    return SynthsodError(f"unsafe archive {label}: member '{member}' {reason}; nothing was unpacked")


def _within(parts: list[str], folder: list[str]) -> bool:
    return parts[: len(folder)] == folder


def _link_target(member: Member, parts: list[str], label: str) -> list[str]:
    """The archive path a link points to; unsafe when absolute or going up out of the archive."""
    link = member.link.replace("\\", "/")
    if member.kind == "hardlink":  # tar hard links name another member's archive path
        resolved = _parts(link)
        where = link
    else:  # symbolic links are relative to the link's own folder
        if link.startswith("/") or re.match(r"^[A-Za-z]:", link):
            raise _unsafe(label, member.name, f"is a symlink to the absolute path {link}")
        where = posixpath.normpath(posixpath.join("/".join(parts[:-1]), link))
        resolved = None if where == ".." or where.startswith("../") else _parts(where)
    if resolved is None or ".." in resolved:
        raise _unsafe(label, member.name, f"is a {member.kind} pointing outside the archive ({link})")
    return resolved


def _inside(root: Path, dest: Path) -> bool:
    """Whether ``dest`` (following symlinks already made) stays inside ``root``."""
    real_root, real = os.path.realpath(root), os.path.realpath(dest)
    return real == real_root or real.startswith(real_root + os.sep)


def _place(member: Member, parts: list[str], folder: list[str], root: Path, opener, info, label: str) -> None:
    """Write one member under ``root`` (the temporary folder of its archive folder)."""
    dest = root.joinpath(*parts[len(folder) :])
    if not _inside(root, dest.parent):
        raise _unsafe(label, member.name, "would be written through a link outside its folder")
    if member.kind == "dir":
        dest.mkdir(parents=True, exist_ok=True)
        if not _inside(root, dest):
            raise _unsafe(label, member.name, "is a folder reached through a link outside its folder")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.is_file():  # a member given twice: the later one wins (as tar does)
        dest.unlink()
    if member.kind in ("symlink", "hardlink"):
        target = _link_target(member, parts, label)
        if not _within(target, folder):
            raise _unsafe(label, member.name, f"is a {member.kind} pointing outside its folder ({member.link})")
        if member.kind == "symlink":
            os.symlink(member.link, dest)
            return
        source = root.joinpath(*target[len(folder) :])
        if not source.is_file() or not _inside(root, source):
            raise _unsafe(label, member.name, f"is a hard link to {member.link}, which is not an earlier file")
        shutil.copyfile(source, dest)
        return
    if member.kind != "file":
        raise _unsafe(label, member.name, "is a device, FIFO or other special file")
    with opener(info) as src, open(dest, "wb") as out:
        shutil.copyfileobj(src, out, BLOCK)


def _missing_parents(target: Path) -> list[Path]:
    """The folders above ``target`` that do not exist yet."""
    return [parent for parent in Path(target).absolute().parents if not parent.exists()]


def _temp_folder(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))


def _replace_folder(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` onto ``target``; a folder already there is moved aside first and removed after."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


def _unpack_members(archive: Path, label: str, folders: list, temps: dict[str, Path]) -> tuple[dict, set[str]]:
    """Check every member and write the mapped ones into their temporary folders; (files per target, the
    archive's top folders)."""
    counts = dict.fromkeys(temps, 0)
    seen: set[str] = set()
    try:
        with _open_archive(archive, label) as (members, opener):
            for member, info in members:
                parts = _parts(member.name)
                if parts is None:
                    raise _unsafe(label, member.name, "has an absolute path")
                if ".." in parts:
                    raise _unsafe(label, member.name, "goes up with '..'")
                if member.kind in ("symlink", "hardlink"):
                    _link_target(member, parts, label)  # checked even where it is not unpacked
                seen.add("/".join(parts[:2]))
                match = next(((f, dst) for f, dst in folders if _within(parts, f) and len(parts) > len(f)), None)
                if match is None:
                    continue
                folder, dst = match
                _place(member, parts, folder, temps[str(dst)], opener, info, label)
                counts[str(dst)] += member.kind != "dir"
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise SynthsodError(f"archive {label} is damaged ({err.__class__.__name__}: {err})") from None
    return counts, seen - {""}


def unpack(
    archive: str | os.PathLike, extract: dict[str, str], label: str | None = None, required: Iterable[str] = ()
) -> dict[str, int]:
    """Unpack the archive's folders into their target folders (``extract``: archive folder -> target folder);
    files per target. Members outside every mapped folder are skipped, but every member is checked: an
    absolute path, a ``..`` part, a link pointing outside its folder or a special file stops it with one
    SynthsodError naming the archive and the member, and leaves nothing at any target. So does a damaged
    archive, a mapped folder without files, or a ``required`` path (inside a target folder) it lacks."""
    archive = Path(archive)
    label = label or str(archive)
    folders = sorted(((_folder_parts(src), Path(dst)) for src, dst in extract.items()), key=lambda f: -len(f[0]))
    created = sorted({parent for _, dst in folders for parent in _missing_parents(dst)}, key=lambda p: -len(p.parts))
    temps = {str(dst): _temp_folder(dst) for _, dst in folders}
    placed = False
    try:
        counts, seen = _unpack_members(archive, label, folders, temps)
        empty = [src for src, dst in extract.items() if not counts[str(Path(dst))]]
        if empty:
            raise SynthsodError(
                f"archive {label} has no files under {', '.join(repr(e) for e in empty)} (the download's extract:); "
                f"it holds: {', '.join(sorted(seen)[:20]) or 'nothing'}"
            )
        absent = [path for path in required if not _unpacked(temps, path)]
        if absent:
            raise SynthsodError(
                f"archive {label} does not provide {', '.join(absent)}, which the workflow reads "
                "(check the download's extract: folders)"
            )
        for dst, tmp in temps.items():
            _replace_folder(tmp, Path(dst))
        placed = True
    finally:
        for tmp in temps.values():
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        for parent in [] if placed else created:  # folders made for the targets, deepest first
            with contextlib.suppress(OSError):
                parent.rmdir()
    return counts


def _unpacked(temps: dict[str, Path], path: str) -> bool:
    """Whether ``path`` (inside a target folder) exists in that target's temporary folder."""
    path = os.path.normpath(path)
    for target, tmp in temps.items():
        if path.startswith(os.path.normpath(target) + os.sep):
            return (tmp / os.path.relpath(path, os.path.normpath(target))).exists()
    return False


def place_file(source: Path, target: str | os.PathLike) -> None:
    """Move ``source`` onto ``target`` atomically (a copy first when they are on different file systems)."""
    with atomic_path(target) as tmp:
        shutil.move(source, tmp)


# ---------------------------------------------------------------------------------------------
# One download, start to end


def fetch(
    name: str,
    spec: dict,
    *,
    lock_file: str | os.PathLike = LOCK_FILE,
    cache_dir: str | os.PathLike = CACHE_DIR,
    timeout_s: float = 30,
    retries: int = 3,
    backoff_s: float = 1.0,
    required: Iterable[str] = (),
) -> str:
    """Download ``spec['url']``, check its sha256, place it at its targets and record it in the lock file;
    the summary line. Raises SynthsodError (targets untouched) for a server error, an unreachable host, a
    truncated download, a checksum mismatch, an unsafe archive member, or an archive without the
    ``required`` paths (files inside its target folders that rules read)."""
    url = spec["url"]
    lock = read_lock(lock_file)
    expected, source = expected_sha256(name, spec, lock, lock_file)
    part = part_path(cache_dir, name, url)
    log.info("fetching %s from %s into %s", name, url, ", ".join(targets(spec)))
    size = download(url, part, timeout_s=timeout_s, retries=retries, backoff_s=backoff_s)
    from_lock = expected and not spec.get("sha256")
    hint = f" (if the new file is right, remove '{name}' from {lock_file})" if from_lock else ""
    digest = verify_sha256(part, url, expected, source, hint)
    if is_archive(spec):
        label = f"{Path(url.split('?')[0]).name} (download {name}, {url})"
        try:
            counts = unpack(part, spec["extract"], label=label, required=required)
        except SynthsodError:
            part.unlink()  # a complete download that cannot be used: nothing to resume
            raise
        part.unlink()
        placed = ", ".join(f"{n} files in {dst}" for dst, n in counts.items())
    else:
        place_file(part, spec["to"])
        placed = str(os.path.normpath(spec["to"]))
    if not spec.get("sha256") and not expected:
        log.info("%s: first download; sha256 %s recorded in %s", name, digest, lock_file)
    record_download(lock_file, name, url, digest, size)
    return f"fetched {name}: {size} bytes, sha256 {digest[:12]}... -> {placed}"
