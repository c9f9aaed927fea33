"""Fetching downloads (synthsod.data.fetch) against a local HTTP server, and the fetch rules in the workflow."""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import socket
import stat
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from synthsod.data.fetch import (
    download_problems,
    fetch,
    part_path,
    read_lock,
    record_download,
    rule_name,
    targets,
    unpack,
)
from synthsod.errors import SynthsodError

# ---------------------------------------------------------------------------------------------
# A local server whose routes misbehave on request


@dataclass
class Route:
    body: bytes
    mode: str = "range"  # range | ignore-range | error | truncate | truncate-once
    hits: int = 0


@dataclass
class Server:
    httpd: ThreadingHTTPServer
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)

    def serve(self, path: str, body: bytes, mode: str = "range") -> str:
        self.routes[path] = Route(body, mode)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def ranges(self, path: str) -> list[str | None]:
        return [header for p, header in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: a cut body is a closed connection

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        server: Server = self.server.owner  # type: ignore[attr-defined]
        header = self.headers.get("Range")
        server.requests.append((self.path, header))
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        route.hits += 1
        if route.mode == "error":
            self.send_error(500, "Internal Server Error")
            return
        body, start = route.body, 0
        if header and route.mode in ("range", "truncate-once"):
            start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        cut = route.mode == "truncate" or (route.mode == "truncate-once" and route.hits == 1)
        self.wfile.write(chunk[: len(chunk) // 2] if cut else chunk)


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    state = Server(httpd)
    httpd.owner = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


# ---------------------------------------------------------------------------------------------
# Archives built in memory


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: list[tuple[str, bytes] | zipfile.ZipInfo | tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member in members:
            archive.writestr(*member)
    return buffer.getvalue()


def zip_symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target.encode()


def make_tar(members: list[tuple[str, str, bytes | str]], mode: str = "w:gz") -> bytes:
    """members: (name, kind, data or link target) with kind file | dir | symlink | hardlink."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                archive.addfile(info, io.BytesIO(payload))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}[kind]
            if kind != "dir":
                info.linkname = payload
            archive.addfile(info)
    return buffer.getvalue()


GOOD = [("DUTS/img/a.jpg", b"image a"), ("DUTS/img/sub/b.jpg", b"image b"), ("DUTS/mask/a.png", b"mask a")]
GOOD += [("DUTS/readme.txt", b"not mapped")]


def dataset_spec(url: str, root: Path, sha256: str | None = None) -> dict:
    return {
        "url": url,
        "sha256": sha256,
        "extract": {"DUTS/img": str(root / "data/X/X-Image"), "DUTS/mask": str(root / "data/X/X-Mask")},
    }


def run_fetch(name: str, spec: dict, root: Path, **kwargs) -> str:
    settings = {"lock_file": root / "downloads.lock.json", "cache_dir": root / ".downloads", "timeout_s": 5}
    return fetch(name, spec, **{**settings, "retries": 0, "backoff_s": 0, **kwargs})


def leftovers(folder: Path) -> list[str]:
    """Temporary folders or files left beside the targets."""
    return sorted(p.name for p in folder.rglob(".*") if p.name.endswith((".tmp", ".old")))


# ---------------------------------------------------------------------------------------------
# Good downloads


def test_a_zip_is_unpacked_into_the_mapped_folders_and_recorded(server: Server, tmp_path: Path) -> None:
    body = make_zip(GOOD)
    spec = dataset_spec(server.serve("/DUTS.zip", body), tmp_path)
    summary = run_fetch("X", spec, tmp_path)

    image, mask = tmp_path / "data/X/X-Image", tmp_path / "data/X/X-Mask"
    assert (image / "a.jpg").read_bytes() == b"image a" and (image / "sub/b.jpg").read_bytes() == b"image b"
    assert sorted(p.name for p in mask.iterdir()) == ["a.png"] and (mask / "a.png").read_bytes() == b"mask a"
    assert not list(tmp_path.rglob("readme.txt"))  # outside every mapped folder
    assert read_lock(tmp_path / "downloads.lock.json") == {
        "X": {"url": spec["url"], "sha256": sha(body), "bytes": len(body)}
    }
    assert not list((tmp_path / ".downloads").iterdir())  # the part file is gone once placed
    assert leftovers(tmp_path) == [] and "fetched X" in summary


def test_a_tar_gz_root_is_unpacked_with_its_inner_links(server: Server, tmp_path: Path) -> None:
    body = make_tar(
        [
            ("./saved_model.pb", "file", b"graph"),
            ("./variables", "dir", b""),
            ("./variables/variables.index", "file", b"index"),
            ("./variables/latest", "symlink", "variables.index"),  # stays inside its folder: allowed
            ("./variables/copy.index", "hardlink", "./variables/variables.index"),
        ]
    )
    target = tmp_path / "models/bigbigan"
    spec = {"url": server.serve("/module?format=compressed", body), "extract": {".": str(target)}}
    run_fetch("module", spec, tmp_path, required=[str(target / "saved_model.pb")])

    assert (target / "saved_model.pb").read_bytes() == b"graph"
    assert (target / "variables/latest").is_symlink() and (target / "variables/latest").read_bytes() == b"index"
    assert (target / "variables/copy.index").read_bytes() == b"index"


def test_a_plain_file_goes_to_its_target_checked_against_the_config(server: Server, tmp_path: Path) -> None:
    body = b"weights" * 1000
    target = tmp_path / "models/w/pytorch_model.bin"
    spec = {"url": server.serve("/w.bin", body), "sha256": sha(body).upper(), "to": str(target)}
    run_fetch("w", spec, tmp_path)
    assert target.read_bytes() == body
    assert read_lock(tmp_path / "downloads.lock.json")["w"]["sha256"] == sha(body)


def test_a_partial_download_resumes_with_a_range_request(server: Server, tmp_path: Path) -> None:
    body = bytes(range(256)) * 40
    url = server.serve("/big.bin", body)
    part = part_path(tmp_path / ".downloads", "big", url)
    part.parent.mkdir(parents=True)
    part.write_bytes(body[:3000])
    target = tmp_path / "big.bin"

    run_fetch("big", {"url": url, "sha256": sha(body), "to": str(target)}, tmp_path)
    assert server.ranges("/big.bin") == ["bytes=3000-"]
    assert target.read_bytes() == body and not part.exists()


def test_a_server_ignoring_range_restarts_the_file_cleanly(server: Server, tmp_path: Path) -> None:
    body = b"0123456789" * 500
    url = server.serve("/norange.bin", body, mode="ignore-range")
    part = part_path(tmp_path / ".downloads", "n", url)
    part.parent.mkdir(parents=True)
    part.write_bytes(b"stale bytes of another file")  # appended to, the file would be wrong
    target = tmp_path / "n.bin"

    run_fetch("n", {"url": url, "to": str(target)}, tmp_path)
    assert server.ranges("/norange.bin") == [f"bytes={len(b'stale bytes of another file')}-"]
    assert target.read_bytes() == body


def test_a_complete_partial_file_is_not_downloaded_again(server: Server, tmp_path: Path) -> None:
    body = b"complete" * 100
    url = server.serve("/done.bin", body)
    part = part_path(tmp_path / ".downloads", "d", url)
    part.parent.mkdir(parents=True)
    part.write_bytes(body)
    run_fetch("d", {"url": url, "sha256": sha(body), "to": str(tmp_path / "d.bin")}, tmp_path)
    assert (tmp_path / "d.bin").read_bytes() == body and server.ranges("/done.bin") == [f"bytes={len(body)}-"]


def test_a_cut_connection_is_resumed_by_the_next_try(server: Server, tmp_path: Path) -> None:
    body = b"abcdefgh" * 512
    url = server.serve("/flaky.bin", body, mode="truncate-once")
    run_fetch("f", {"url": url, "sha256": sha(body), "to": str(tmp_path / "f.bin")}, tmp_path, retries=1)
    assert (tmp_path / "f.bin").read_bytes() == body
    assert server.ranges("/flaky.bin") == [None, f"bytes={len(body) // 2}-"]


# ---------------------------------------------------------------------------------------------
# Failures: one plain message, nothing at the target


def test_a_truncated_download_fails_plainly_and_keeps_the_part_for_later(server: Server, tmp_path: Path) -> None:
    body = b"x" * 10000
    url = server.serve("/cut.bin", body, mode="truncate")
    target = tmp_path / "cut.bin"
    with pytest.raises(SynthsodError) as err:
        run_fetch("cut", {"url": url, "to": str(target)}, tmp_path, retries=2)
    message = str(err.value)
    assert url in message and "truncated" in message and "3 tries" in message, message
    assert not target.exists() and leftovers(tmp_path) == []
    assert 0 < part_path(tmp_path / ".downloads", "cut", url).stat().st_size < len(body)
    assert not (tmp_path / "downloads.lock.json").exists()


def test_a_wrong_config_checksum_removes_the_file_and_names_both_digests(server: Server, tmp_path: Path) -> None:
    body = make_zip(GOOD)
    expected = sha(b"the file the config means")
    spec = dataset_spec(server.serve("/wrong.zip", body), tmp_path, sha256=expected)
    with pytest.raises(SynthsodError) as err:
        run_fetch("X", spec, tmp_path)
    message = str(err.value)
    assert "checksum mismatch" in message and spec["url"] in message
    assert expected in message and sha(body) in message and "downloads.X.sha256" in message, message
    assert not (tmp_path / "data").exists() and not (tmp_path / "downloads.lock.json").exists()
    assert not part_path(tmp_path / ".downloads", "X", spec["url"]).exists()


def test_a_later_download_must_match_the_lock_file(server: Server, tmp_path: Path) -> None:
    first, second = b"release one" * 100, b"release two" * 100
    target = tmp_path / "models/w.bin"
    spec = {"url": server.serve("/w.bin", first), "sha256": None, "to": str(target)}
    run_fetch("w", spec, tmp_path)
    lock = read_lock(tmp_path / "downloads.lock.json")
    assert lock["w"]["sha256"] == sha(first)

    server.serve("/w.bin", second)  # the server now sends another file
    with pytest.raises(SynthsodError) as err:
        run_fetch("w", spec, tmp_path)
    message = str(err.value)
    assert "checksum mismatch" in message and sha(first) in message and sha(second) in message, message
    assert "downloads.lock.json" in message and "remove 'w'" in message
    assert target.read_bytes() == first  # untouched
    assert read_lock(tmp_path / "downloads.lock.json") == lock


@pytest.mark.parametrize("status", [500, 404])
def test_a_server_error_fails_plainly(server: Server, tmp_path: Path, status: int) -> None:
    url = server.serve("/broken.zip", b"", mode="error") if status == 500 else server.serve("/other", b"")
    url = url.replace("/other", "/missing.zip")
    spec = dataset_spec(url, tmp_path)
    with pytest.raises(SynthsodError) as err:
        run_fetch("X", spec, tmp_path, retries=2)
    message = str(err.value)
    assert f"HTTP {status}" in message and url in message, message
    # a server error is tried again, a client error is not
    assert len(server.requests) == (3 if status == 500 else 1)
    assert not (tmp_path / "data").exists()


def test_an_unreachable_host_fails_plainly(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/DUTS.zip"
    with pytest.raises(SynthsodError) as err:
        run_fetch("X", dataset_spec(url, tmp_path), tmp_path)
    assert "cannot reach the host" in str(err.value) and url in str(err.value)
    assert not (tmp_path / "data").exists()


def test_a_file_that_is_no_archive_is_damaged_or_lacks_a_folder_is_refused(server: Server, tmp_path: Path) -> None:
    spec = dataset_spec(server.serve("/page.zip", b"<html>moved</html>"), tmp_path)
    with pytest.raises(SynthsodError, match="page.zip .* is neither a zip nor a tar archive"):
        run_fetch("X", spec, tmp_path)

    spec = dataset_spec(server.serve("/other.zip", make_zip([("Other/img/a.jpg", b"a")])), tmp_path)
    with pytest.raises(SynthsodError) as err:
        run_fetch("X", spec, tmp_path)
    assert "has no files under 'DUTS/img', 'DUTS/mask'" in str(err.value) and "Other/img" in str(err.value)

    noise = random.Random(0).randbytes(60000)  # incompressible: the cut falls inside the first member
    damaged = make_tar([("DUTS/img/a.jpg", "file", noise), ("DUTS/mask/a.png", "file", noise)])[:30000]
    spec = dataset_spec(server.serve("/damaged.tar.gz", damaged), tmp_path)
    with pytest.raises(SynthsodError, match=r"^archive damaged.tar.gz .* is damaged"):
        run_fetch("X", spec, tmp_path)

    target = tmp_path / "models/m"
    spec = {"url": server.serve("/m.tar", make_tar([("m/x", "file", b"x")])), "extract": {"m": str(target)}}
    with pytest.raises(SynthsodError, match="does not provide .*saved_model.pb"):
        run_fetch("m", spec, tmp_path, required=[str(target / "saved_model.pb")])
    assert not (tmp_path / "data").exists() and not target.exists() and leftovers(tmp_path) == []


UNSAFE = {
    "zip-dotdot": ("bad.zip", make_zip([*GOOD, ("DUTS/img/../../../evil.txt", b"x")]), "DUTS/img/../../../evil.txt"),
    "zip-absolute": ("bad.zip", make_zip([*GOOD, ("/tmp/evil.txt", b"x")]), "/tmp/evil.txt"),
    "zip-symlink": ("bad.zip", make_zip([*GOOD, zip_symlink("DUTS/img/link", "../../../../etc")]), "DUTS/img/link"),
    "tar-dotdot": (
        "bad.tar.gz",
        make_tar([("DUTS/img/a.jpg", "file", b"a"), ("../evil.txt", "file", b"x")]),
        "../evil.txt",
    ),
    "tar-absolute": ("bad.tar.gz", make_tar([("/tmp/evil.txt", "file", b"x")]), "/tmp/evil.txt"),
    "tar-symlink-out": (
        "bad.tar.gz",
        make_tar([("DUTS/img/a.jpg", "file", b"a"), ("DUTS/img/up", "symlink", "../../..")]),
        "DUTS/img/up",
    ),
    "tar-symlink-absolute": ("bad.tar", make_tar([("DUTS/img/pw", "symlink", "/etc/passwd")], "w"), "DUTS/img/pw"),
    "tar-symlink-other-folder": (  # inside the archive, but outside the mapped folder
        "bad.tar.gz",
        make_tar([("DUTS/mask/a.png", "file", b"m"), ("DUTS/img/a.png", "symlink", "../mask/a.png")]),
        "DUTS/img/a.png",
    ),
    "tar-hardlink-out": (
        "bad.tar.gz",
        make_tar([("DUTS/readme.txt", "file", b"r"), ("DUTS/img/r.txt", "hardlink", "DUTS/readme.txt")]),
        "DUTS/img/r.txt",
    ),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_an_unsafe_archive_member_stops_the_fetch(server: Server, tmp_path: Path, case: str) -> None:
    filename, body, member = UNSAFE[case]
    work = tmp_path / "work"
    spec = dataset_spec(server.serve(f"/{filename}", body), work)
    with pytest.raises(SynthsodError) as err:
        run_fetch("X", spec, work)
    message = str(err.value)
    assert message.startswith(f"unsafe archive {filename} ") and f"member '{member}'" in message, message
    assert not (work / "data/X/X-Image").exists() and not (work / "data/X/X-Mask").exists()
    assert leftovers(tmp_path) == [] and not list(tmp_path.rglob("evil.txt"))
    assert not (work / "downloads.lock.json").exists()


def test_unpack_alone_refuses_an_escaping_member_of_an_otherwise_good_archive(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(make_zip([("root/a.txt", b"a"), ("root/../../b.txt", b"b")]))
    with pytest.raises(SynthsodError, match=r"^unsafe archive .*a.zip: member 'root/../../b.txt' goes up"):
        unpack(archive, {"root": str(tmp_path / "out")})
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "b.txt").exists()


# ---------------------------------------------------------------------------------------------
# The lock file and the config helpers


def test_the_lock_file_keeps_every_download(tmp_path: Path) -> None:
    lock = tmp_path / "sub/downloads.lock.json"
    record_download(lock, "a", "http://x/a", "1" * 64, 3)
    record_download(lock, "b", "http://x/b", "2" * 64, 4)
    assert json.loads(lock.read_text()) == {
        "a": {"url": "http://x/a", "sha256": "1" * 64, "bytes": 3},
        "b": {"url": "http://x/b", "sha256": "2" * 64, "bytes": 4},
    }
    lock.write_text("{broken")
    with pytest.raises(SynthsodError, match="not valid JSON"):
        read_lock(lock)


def test_download_names_targets_and_their_problems() -> None:
    downloads = {
        "DUTS-TR": {"url": "u", "extract": {"a": "data/D/D-Image/", "b": "./data/D/D-Mask"}},
        "DUTS_TR": {"url": "u", "to": "data/D/D-Image"},
        "inner": {"url": "u", "to": "data/D/D-Mask/x.png"},
    }
    assert targets(downloads["DUTS-TR"]) == ["data/D/D-Image", "data/D/D-Mask"]  # normalised
    assert targets(downloads["inner"]) == ["data/D/D-Mask/x.png"]
    assert rule_name("DUTS-TR") == "fetch_DUTS_TR"
    assert download_problems(downloads) == [
        "downloads.DUTS_TR: data/D/D-Image is also provided by download DUTS-TR",
        "downloads.inner: data/D/D-Mask/x.png lies inside data/D/D-Mask (download DUTS-TR); targets must not nest",
        "downloads: 'DUTS_TR' and 'DUTS-TR' both become rule fetch_DUTS_TR; rename one",
    ]
    assert download_problems({"a": downloads["DUTS-TR"], "i": downloads["inner"]})[0].startswith("downloads.i:")
    assert download_problems({"a": downloads["DUTS-TR"]}) == []


# ---------------------------------------------------------------------------------------------
# The workflow: a missing dataset (and backbone) that downloads provide


def _fetch_config(enabled: bool, url: str = "http://127.0.0.1:9/REAL.zip", backbone_url: str | None = None) -> dict:
    from conftest import small_config

    config = small_config()
    config["datasets"]["REAL"] = {"images": "data/REAL/REAL-Image", "masks": "data/REAL/REAL-Mask"}
    config["benchmarks"] = [*config["benchmarks"], "REAL"]
    config["sod"]["coop"]["backbone_weights"] = "models/backbone.pth"
    config["downloads"] = {
        "REAL": {"url": url, "extract": {"REAL/img": "data/REAL/REAL-Image", "REAL/mask": "data/REAL/REAL-Mask"}},
        "backbone": {"url": backbone_url or "http://127.0.0.1:9/backbone.pth", "to": "models/backbone.pth"},
    }
    config["fetch"] = {"enabled": enabled}
    return config


def _dag_edges(dot: str) -> set[tuple[str, str]]:
    """(upstream job, downstream job) pairs of `snakemake --dag`, jobs named by their label's first two lines."""
    labels = {
        n: label.replace("\\n", " ").strip() for n, label in re.findall(r'^\s*(\d+)\[label = "([^"]*)"', dot, re.M)
    }
    return {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)}


@pytest.mark.workflow
def test_the_dry_run_fetches_what_a_download_provides_before_its_consumers(server: Server, tmp_path: Path) -> None:
    from conftest import make_workdir

    urls = server.serve("/REAL.zip", b""), server.serve("/backbone.pth", b"")
    workdir = make_workdir(tmp_path / "work", _fetch_config(True, *urls))
    result = workdir.dry_run()
    assert result.returncode == 0, result.describe()
    assert re.search(r"^rule fetch_REAL:$", result.output, re.M) and "rule fetch_backbone:" in result.output
    listed = result.output.index("rule fetch_REAL:")
    prepare = re.search(r"rule prepare_dataset:\n(?:    .*\n)*?    wildcards: dataset=REAL\n", result.output)
    assert prepare and listed < prepare.start(), result.describe()

    dag = workdir.run("-n", "--nolock", "--dag")
    assert dag.returncode == 0, dag.describe()
    edges = _dag_edges(dag.stdout)
    assert ("fetch_REAL", "prepare_dataset dataset: REAL") in edges, sorted(edges)
    assert ("fetch_backbone", "sod_train sod: coop") in edges, sorted(edges)
    assert not any(a.startswith("fetch") and "DEMO" in b for a, b in edges)


@pytest.mark.workflow
def test_offline_the_start_up_check_names_the_download_of_each_missing_path(tmp_path: Path) -> None:
    from conftest import make_workdir

    workdir = make_workdir(tmp_path / "work", _fetch_config(enabled=False))
    result = workdir.dry_run()
    assert result.returncode != 0, result.describe()
    out = result.output
    assert "synthsod cannot start; these inputs are missing" in out
    assert "dataset REAL: images folder data/REAL/REAL-Image does not exist" in out, result.describe()
    assert "data/REAL/REAL-Image: download REAL provides it (http://127.0.0.1:9/REAL.zip)" in out
    assert "data/REAL/REAL-Mask: download REAL provides it" in out
    assert "models/backbone.pth: download backbone provides it" in out
    assert "Building DAG" not in out and "fetch_" not in out.split("synthsod cannot start")[0]


@pytest.mark.workflow
def test_offline_with_fetching_on_the_start_up_check_names_the_unreachable_downloads(
    server: Server, tmp_path: Path
) -> None:
    """Port 9 on the loopback accepts nothing: the run stops before any job, as without fetching."""
    from conftest import make_workdir

    reachable = server.serve("/backbone.pth", b"")
    workdir = make_workdir(tmp_path / "work", _fetch_config(True, backbone_url=reachable))
    result = workdir.dry_run()
    assert result.returncode != 0, result.describe()
    out = result.output
    assert "synthsod cannot start; these inputs are missing" in out, result.describe()
    assert "data/REAL/REAL-Image: download REAL provides it (http://127.0.0.1:9/REAL.zip); its host cannot" in out
    assert "models/backbone.pth" not in out  # its host answers: it will be fetched
    assert "Building DAG" not in out


@pytest.mark.workflow
def test_the_fetch_rule_runs_the_download_into_the_working_directory(server: Server, tmp_path: Path) -> None:
    from conftest import make_workdir

    body = make_zip([("REAL/img/a.jpg", b"a"), ("REAL/mask/a.png", b"m")])
    urls = server.serve("/REAL.zip", body), server.serve("/backbone.pth", b"weights")
    workdir = make_workdir(tmp_path / "work", _fetch_config(True, *urls))
    result = workdir.run("--cores", "1", "data/REAL/REAL-Image")
    assert result.returncode == 0, result.describe()
    assert (workdir.path / "data/REAL/REAL-Image/a.jpg").read_bytes() == b"a"
    assert (workdir.path / "data/REAL/REAL-Mask/a.png").read_bytes() == b"m"
    assert read_lock(workdir.path / "downloads.lock.json")["REAL"]["sha256"] == sha(body)
    assert "fetched REAL" in (workdir.path / "results/logs/fetch/REAL.log").read_text()
