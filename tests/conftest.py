"""Shared fixtures: run the repository's Snakefile with `snakemake` in throw-away working directories.

Snakemake resolves relative paths (``configfile: "config.yaml"``, the outputs, the dataset folders)
against the working directory given by ``--directory``; the workflow-specific profile
``profiles/default`` is found next to the Snakefile. The runs below therefore pass a *complete*
small config with ``--configfile``, so they do not depend on a ``config.yaml`` in the working
directory (snakemake only requires the ``configfile:`` file when no ``--configfile`` is given).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

# The small demo world the workflow tests run: the whole DAG takes about a minute on two CPU cores.
TEST_CONFIG = yaml.safe_load((REPO / "configs" / "test.yaml").read_text())  # the small scenario
SMALL_SPLIT_SIZES = {split: spec["size"] for split, spec in TEST_CONFIG["scenes"]["splits"].items()}
SMALL_RUN_PAIRS = TEST_CONFIG["runs"]["sodgan"]["pairs"]  # every sampling run: 2 shards of 3 pairs
SMALL_RUN_ROWS = TEST_CONFIG["runs"]["sodgan"]["rows_per_shard"]
RUN_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's torch work on one thread, then restore the setting (use with ``pytestmark``).

    On a shared two-core machine two OpenMP threads per process spin against other jobs: measured
    there, tests/test_den.py took 6 min with two threads and 45 s with one (the tiny generator's build
    alone 41 s against 16 s). One thread costs little when the machine is idle.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def load_repo_config() -> dict[str, Any]:
    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)


def small_config() -> dict[str, Any]:
    """config.yaml with configs/test.yaml applied, as Snakemake merges config files (a fresh copy every call,
    without shared sub-objects).

    The shipped scene generator's weights directory becomes absolute: the runs use other working directories.
    """
    from snakemake.utils import update_config  # here: the TensorFlow env's tests import this file, without snakemake

    config = copy.deepcopy(load_repo_config())
    update_config(config, copy.deepcopy(TEST_CONFIG))
    config["generators"]["scene"]["weights"] = str(REPO / config["generators"]["scene"]["weights"])
    # YAML anchors (config.yaml's shared U-Net recipe) load as one shared object: a test changing one
    # training's recipe would change them all. A JSON round trip gives every section its own copy.
    return json.loads(json.dumps(config))


def merged_config(*files: str | Path) -> dict[str, Any]:
    """config.yaml with ``files`` (relative to the repository) layered on top as ``--configfile`` would,
    validated against the schema (defaults filled in)."""
    from snakemake.utils import update_config, validate

    from synthsod.workflow import layer_config

    paths = [REPO / name for name in files]
    config = load_repo_config()
    for path in paths:
        update_config(config, yaml.safe_load(path.read_text()))
    layer_config(config, REPO / "config.yaml", paths)
    validate(config, str(REPO / "schemas" / "config.schema.yaml"))
    return config


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


@dataclass
class SnakemakeResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (snakemake writes its log, dry-run listing and errors to stderr)."""
        return self.stdout + self.stderr

    def describe(self) -> str:
        return f"$ {' '.join(self.args)}\n(rc {self.returncode})\n{self.output[-8000:]}"


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    # A user-wide profile would change the command line under test.
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def run_snakemake(
    workdir: Path | None,
    *args: str,
    configfiles: tuple[Path | str, ...] = (),
    cwd: Path | None = None,
    timeout: float = RUN_TIMEOUT_S,
) -> SnakemakeResult:
    """Run ``snakemake -s <repo>/Snakefile [--directory workdir] [--configfile ...] args``.

    ``workdir=None`` leaves out ``-s`` and ``--directory`` (snakemake then uses ``cwd``, e.g. the
    repository root for ``--lint``).
    """
    cmd = [str(SNAKEMAKE)]
    if workdir is not None:
        cmd += ["-s", str(SNAKEFILE), "--directory", str(workdir)]
    cmd += list(args)
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    proc = subprocess.run(
        cmd,
        cwd=cwd or workdir or REPO,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return SnakemakeResult(cmd, proc.returncode, proc.stdout, proc.stderr)


@dataclass
class Workdir:
    """A snakemake working directory holding ``test_config.yaml`` (a complete config)."""

    path: Path
    config: dict[str, Any]

    @property
    def configfile(self) -> Path:
        return self.path / "test_config.yaml"

    def run(self, *args: str, configfile: Path | None = None, **kwargs: Any) -> SnakemakeResult:
        return run_snakemake(self.path, *args, configfiles=(configfile or self.configfile,), **kwargs)

    def dry_run(self, configfile: Path | None = None) -> SnakemakeResult:
        # --nolock: several dry runs may look at the same directory at once.
        return self.run("-n", "--nolock", "--cores", "2", configfile=configfile)

    def copy_to(self, dest: Path) -> Workdir:
        """Copy the whole directory (outputs, .snakemake metadata, mtimes) to ``dest``."""
        shutil.copytree(self.path, dest, symlinks=True)
        return Workdir(dest, copy.deepcopy(self.config))


def make_workdir(path: Path, config: dict[str, Any]) -> Workdir:
    path.mkdir(parents=True, exist_ok=True)
    write_yaml(path / "test_config.yaml", config)
    return Workdir(path, config)


@dataclass
class DemoRun:
    workdir: Workdir
    result: SnakemakeResult


@pytest.fixture(scope="session")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoRun, DemoRun]:
    """Two independent full runs of the small demo DAG (rule all), in two directories.

    They run at the same time: the second one is only there to check the outputs are reproducible,
    and running both at once costs far less wall time than one after the other.
    """
    workdirs = [make_workdir(tmp_path_factory.mktemp(f"demo_run{i}"), small_config()) for i in (1, 2)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda w: w.run("--cores", "2"), workdirs))
    return DemoRun(workdirs[0], results[0]), DemoRun(workdirs[1], results[1])


@pytest.fixture(scope="session")
def demo_run(demo_runs: tuple[DemoRun, DemoRun]) -> DemoRun:
    """A working directory where the small demo DAG has run once (treat it as read-only)."""
    run = demo_runs[0]
    assert run.result.returncode == 0, run.result.describe()
    return run
