"""gpu_lease: one GPU per job via flock, SLURM pass-through, CPU fallback (no GPU needed)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from synthsod.core import gpu
from synthsod.core.gpu import Lease, autocast, gpu_lease, torch_device
from synthsod.errors import SynthsodError

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.pop("SLURM_JOB_ID", None)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, **kwargs)


def test_cpu_when_no_gpu(tmp_path):
    environ: dict[str, str] = {}
    with gpu_lease(tmp_path, device_count=0, environ=environ) as lease:
        assert lease == Lease("cpu", None, "cpu")
        assert "CUDA_VISIBLE_DEVICES" not in environ
        assert torch_device(lease) == torch.device("cpu")
    assert environ == {}
    assert list(tmp_path.iterdir()) == []


def test_slurm_allocation_is_used_without_lock(tmp_path):
    locks = tmp_path / "locks"
    slurm_env = {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "3"}
    with gpu_lease(locks, device_count=8, wait_s=0, environ=slurm_env) as lease:
        assert lease == Lease("cuda", "3", "slurm")
        assert slurm_env["CUDA_VISIBLE_DEVICES"] == "3"
        assert torch_device(lease) == torch.device("cuda:0")
        assert not locks.exists()
        # No lock was taken: neither gpu 0 nor gpu 3 is busy for a non-SLURM lessee.
        with gpu_lease(locks, device_count=1, wait_s=0, environ={}) as other:
            assert other == Lease("cuda", "0", "lock")
        with gpu_lease(locks, device_count=1, wait_s=0, environ={"CUDA_VISIBLE_DEVICES": "3"}) as other:
            assert other.gpu == "3"
    assert slurm_env == {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "3"}


def test_slurm_gpus_variable_and_empty_allocation(tmp_path):
    with gpu_lease(tmp_path, environ={"SLURM_JOB_ID": "1", "SLURM_JOB_GPUS": "5"}) as lease:
        assert lease == Lease("cuda", "5", "slurm")
    with gpu_lease(tmp_path, environ={"SLURM_JOB_ID": "1", "CUDA_VISIBLE_DEVICES": ""}) as lease:
        assert lease.device == "cpu" and lease.gpu is None
    assert list(tmp_path.iterdir()) == []


def test_concurrent_jobs_never_share_a_gpu(tmp_path):
    locks, records = tmp_path / "locks", tmp_path / "records"
    records.mkdir()
    worker = f"""
        import json, os, time
        from synthsod.core.gpu import gpu_lease
        with gpu_lease({str(locks)!r}, device_count=2, wait_s=30, poll_s=0.05) as lease:
            start = time.time()
            cvd = os.environ["CUDA_VISIBLE_DEVICES"]
            time.sleep(0.5)
            end = time.time()
        out = {{"gpu": lease.gpu, "source": lease.source, "cvd": cvd, "start": start, "end": end}}
        with open(os.path.join({str(records)!r}, str(os.getpid())), "w") as f:
            json.dump(out, f)
    """
    procs = [_python(worker) for _ in range(4)]
    assert [p.wait(timeout=30) for p in procs] == [0, 0, 0, 0]

    rows = [json.loads(p.read_text()) for p in records.iterdir()]
    assert len(rows) == 4
    assert all(r["source"] == "lock" and r["cvd"] == r["gpu"] for r in rows)
    assert {r["gpu"] for r in rows} == {"0", "1"}
    for g in ("0", "1"):
        spans = sorted((r["start"], r["end"]) for r in rows if r["gpu"] == g)
        for (_, prev_end), (next_start, _) in zip(spans, spans[1:]):
            assert next_start >= prev_end, f"gpu {g} held by two jobs at once: {spans}"
    assert sorted(p.name for p in locks.iterdir()) == ["gpu-0.lock", "gpu-1.lock"]


def test_killed_holder_frees_the_gpu(tmp_path):
    holder = _python(
        f"""
        import time
        from synthsod.core.gpu import gpu_lease
        with gpu_lease({str(tmp_path)!r}, device_count=1, wait_s=0):
            print("held", flush=True)
            time.sleep(60)
        """,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SynthsodError), gpu_lease(tmp_path, device_count=1, wait_s=0, environ={}):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        with gpu_lease(tmp_path, device_count=1, wait_s=5, poll_s=0.05, environ={}) as lease:
            assert lease == Lease("cuda", "0", "lock")
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert (tmp_path / "gpu-0.lock").exists()  # never deleted


def test_waits_for_a_gpu_released_in_process(tmp_path):
    with gpu_lease(tmp_path, device_count=2, environ={}) as a:
        with gpu_lease(tmp_path, device_count=2, wait_s=0, environ={}) as b:
            assert {a.gpu, b.gpu} == {"0", "1"}
    with gpu_lease(tmp_path, device_count=2, wait_s=0, environ={}) as again:
        assert again.gpu == "0"  # both were released on exit


def test_all_busy_raises_naming_lock_dir(tmp_path):
    environ: dict[str, str] = {}
    with gpu_lease(tmp_path, device_count=1, environ=environ):
        t0 = time.monotonic()
        with pytest.raises(SynthsodError, match="no GPU became free") as err:
            with gpu_lease(tmp_path, device_count=1, wait_s=0.3, poll_s=0.05, environ={}):
                pass
        assert time.monotonic() - t0 >= 0.3
        assert str(tmp_path) in str(err.value)
        assert environ == {"CUDA_VISIBLE_DEVICES": "0"}
    assert environ == {}


def test_preset_visible_devices_are_the_candidates_and_restored(tmp_path):
    environ = {"CUDA_VISIBLE_DEVICES": "2,5"}
    with gpu_lease(tmp_path, device_count=2, wait_s=0, environ=environ) as first:
        assert first == Lease("cuda", "2", "lock")
        assert environ["CUDA_VISIBLE_DEVICES"] == "2"
        inner_env = {"CUDA_VISIBLE_DEVICES": "2,5"}
        with gpu_lease(tmp_path, device_count=2, wait_s=0, environ=inner_env) as second:
            assert second == Lease("cuda", "5", "lock")
            assert inner_env["CUDA_VISIBLE_DEVICES"] == "5"
        assert inner_env == {"CUDA_VISIBLE_DEVICES": "2,5"}
    assert environ == {"CUDA_VISIBLE_DEVICES": "2,5"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-2.lock", "gpu-5.lock"]


def test_env_restored_when_block_raises(tmp_path):
    environ: dict[str, str] = {}
    with contextlib.suppress(RuntimeError), gpu_lease(tmp_path, device_count=1, environ=environ):
        raise RuntimeError
    assert environ == {}
    with gpu_lease(tmp_path, device_count=1, wait_s=0, environ={}) as lease:
        assert lease.gpu == "0"  # the lock was released too


def test_default_lock_dir(tmp_path):
    assert gpu.default_lock_dir({}) == Path(f"/tmp/synthsod-gpu-locks-{os.getuid()}")
    environ = {gpu.LOCK_DIR_ENV: str(tmp_path / "shared")}
    with gpu_lease(device_count=1, wait_s=0, environ=environ) as lease:
        assert lease.gpu == "0"
        assert (tmp_path / "shared" / "gpu-0.lock").exists()


def test_count_gpus_without_nvml_or_nvidia_smi(monkeypatch):
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: -1, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu.count_gpus() == 0
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: 3, raising=False)
    assert gpu.count_gpus() == 3


def test_count_gpus_parses_nvidia_smi(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho 'GPU 1: NVIDIA H100 (UUID: GPU-b)'\n")
    fake.chmod(0o755)
    monkeypatch.setattr(torch.cuda, "_device_count_nvml", lambda: -1, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpu.count_gpus() == 2


def test_autocast_rule():
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        ctx = autocast(torch.device("cuda:0"))
    assert isinstance(ctx, torch.autocast)
    assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16
