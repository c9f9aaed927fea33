"""The demo DAG through a real single-node SLURM (profiles/slurm-local, snakemake-executor-plugin-slurm).

The fixture brings up Debian's slurm 22.05 on this machine: munged, slurmctld and slurmd with one node
of 2 CPUs and 2 fake GPUs (a GRES whose device files are plain files), no accounting (so the plugin's
status command is squeue, with MinJobAge long enough for it and for ``scontrol show job`` afterwards).
The config goes to /etc/slurm/slurm.conf because the plugin's job step drops SLURM_CONF from the
environment of the inner srun. Only the daemons and files the fixture started / wrote are removed.
It skips, with the reason, where SLURM cannot run here: not root, packages missing, a SLURM already
configured.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, DemoRun, make_workdir, small_config

pytestmark = pytest.mark.workflow

SLURM_DIR = Path("/etc/slurm")
MARKER = "# written by synthsod tests/test_slurm.py"
DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo")
TIMEOUT_S = 1200


def _missing_reason() -> str | None:
    if os.geteuid() != 0:
        return "the single-node SLURM needs root (daemons and /etc/slurm)"
    missing = [tool for tool in DAEMONS if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists()]
    if missing:
        return f"SLURM not installed ({', '.join(missing)} missing: apt-get install slurm-wlm munge)"
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        return "snakemake-executor-plugin-slurm is not installed (.ci/run installs it)"
    conf = SLURM_DIR / "slurm.conf"
    if conf.exists() and MARKER not in conf.read_text():
        return f"{conf} exists: this machine already has a SLURM, which the test leaves alone"
    return None


def _config(host: str, state: Path) -> str:
    return f"""{MARKER}
ClusterName=synthsod-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort=26817
SlurmdPort=26818
AuthType=auth/munge
StateSaveLocation={state}/ctld
SlurmdSpoolDir={state}/spool
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
MinJobAge=3600
GresTypes=gpu
NodeName={host} CPUs=2 RealMemory=8000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def _daemon(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory):
    reason = _missing_reason()
    if reason:
        pytest.skip(reason)
    host = socket.gethostname().split(".")[0]
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("ctld", "spool"):
        (state / sub).mkdir()
    devices = [state / f"gpu{i}" for i in (0, 1)]
    for device in devices:
        device.touch()
    SLURM_DIR.mkdir(parents=True, exist_ok=True)
    written = [SLURM_DIR / "slurm.conf", SLURM_DIR / "gres.conf"]
    written[0].write_text(_config(host, state))
    written[1].write_text(MARKER + "\n" + "".join(f"NodeName={host} Name=gpu File={d}\n" for d in devices))
    started: list[str] = []
    try:
        if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            subprocess.run([_daemon("munged"), "--force"], check=True, capture_output=True)
            started.append("munged")
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_daemon(daemon)], check=True, capture_output=True)
            started.append(daemon)
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout:
            if time.monotonic() > deadline:
                pytest.fail(f"the SLURM node did not come up: {(state / 'slurmctld.log').read_text()[-2000:]}")
            time.sleep(1)
        yield state
    finally:
        for daemon in reversed(started):  # stop what we started, and wait until it is gone
            subprocess.run(["pkill", "-x", daemon], check=False)
            for _ in range(50):
                if subprocess.run(["pgrep", "-x", daemon], capture_output=True).returncode != 0:
                    break
                time.sleep(0.2)
        for path in written:
            path.unlink(missing_ok=True)


def gpu_rules() -> set[str]:
    """Rules that declare `resources: gpu=1` (with the `use rule ... as` copies that inherit it)."""
    rules = set()
    for smk in (REPO / "rules").glob("*.smk"):
        blocks = re.split(r"^(?=rule |use rule )", smk.read_text(), flags=re.M)
        for block in blocks:
            if m := re.match(r"rule (\w+):", block):
                if re.search(r"^\s+gpu=1,", block, flags=re.M):
                    rules.add(m[1])
            elif (m := re.match(r"use rule (\w+) as (\w+)", block)) and m[1] in rules:
                rules.add(m[2])
    return rules


def submitted_jobs() -> dict[str, str]:
    """SLURM job comment (the plugin writes rule_<rule>_wildcards_...) -> its per-job TRES request."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        if comment := re.search(r"Comment=(rule_\S+)", line):
            tres = re.search(r"TresPerJob=(\S+)", line)
            jobs[comment[1]] = tres[1] if tres else ""
    return jobs


def digests(root: Path, pattern: str) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob(pattern))}


def test_demo_dag_on_slurm_requests_gpus_and_matches_the_local_run(
    slurm_cluster, demo_run: DemoRun, tmp_path: Path
) -> None:
    workdir = make_workdir(tmp_path / "slurm_run", small_config())
    result = workdir.run("--profile", str(REPO / "profiles" / "slurm-local"), timeout=TIMEOUT_S)
    assert result.returncode == 0, result.describe()

    jobs = submitted_jobs()
    gpu = gpu_rules()
    assert {"den_train", "den_ablation", "gmask_train", "sample", "sod_train", "directions_rank", "oracle_train"} <= gpu
    ran = {re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment)[1]: tres for comment, tres in jobs.items()}
    assert len(jobs) >= 30, jobs  # every job of the small DAG went through sbatch
    for comment, tres in jobs.items():
        rule = re.match(r"rule_(.+?)(?:_wildcards_.*)?$", comment)[1]
        assert (tres == "gres:gpu:1") == (rule in gpu), (comment, tres)
    assert "summarize" in ran and ran["summarize"] == ""

    local, cluster = demo_run.workdir.path, workdir.path
    for pattern in ("results/synthetic/*/shard-*.parquet", "results/scenes/*/*/*", "results/directions/*/ranking.csv"):
        expected = digests(local, pattern)
        assert expected and digests(cluster, pattern) == expected, pattern
    pd.testing.assert_frame_equal(
        pd.read_csv(cluster / "results/eval/summary.csv"), pd.read_csv(local / "results/eval/summary.csv")
    )
