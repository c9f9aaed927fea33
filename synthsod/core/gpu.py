"""Lease one GPU per Snakemake job.

Why this exists: Snakemake has no GPU pinning. ``snakemake --cores 8 --resources gpu=2`` only
limits how many jobs that declare ``resources: gpu=1`` run at once; it does not tell a job *which*
GPU to use, so without help every job would land on ``cuda:0``. Each GPU job therefore wraps its
work in :func:`gpu_lease`, which picks a free device itself and makes it the only one visible.

How a device is chosen, in order:

* **SLURM.** Inside a SLURM job (``SLURM_JOB_ID`` set) with a GPU allocation visible through
  ``CUDA_VISIBLE_DEVICES`` or ``SLURM_JOB_GPUS``/``SLURM_STEP_GPUS``, SLURM already gave this job
  its GPU(s): the lease uses that allocation as is, takes no lock and leaves the environment alone
  (``source="slurm"``). An empty allocation means CPU.
* **CPU.** With no GPU on the machine (counted without creating a CUDA context: NVML through
  torch, else ``nvidia-smi -L``), the lease is a CPU lease (``source="cpu"``); nothing is locked.
* **Lock files.** Otherwise the candidates are the ids in ``CUDA_VISIBLE_DEVICES`` if the user
  already restricted it, else ``0..n-1``. Each candidate is tried with a non-blocking exclusive
  ``flock`` on ``<lock_dir>/gpu-<id>.lock``; the first one obtained wins, and
  ``CUDA_VISIBLE_DEVICES`` is set to that id for the duration of the lease (so inside it the GPU
  is ``cuda:0``), then restored. If all are busy the lease polls until ``wait_s`` runs out and
  then raises :class:`~synthsod.errors.SynthsodError`.

Lock files are never deleted (deleting one races with another job that has just opened it) and
their content (pid and host) is only for humans. ``flock`` locks belong to the open file, which
the kernel closes when the process dies, so a killed or crashed job never leaves a GPU locked.
(A child made with ``fork`` shares the open file and keeps the lock alive while it runs.)
The lock directory must be on a local file system: GPUs are per machine, so the default,
``/tmp/synthsod-gpu-locks-<uid>``, is shared by all workflows of this user on this machine;
``SYNTHSOD_GPU_LOCK_DIR`` overrides it.

torch must not initialise CUDA before ``CUDA_VISIBLE_DEVICES`` is set, so take the lease before
the first CUDA call of the process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from synthsod.errors import SynthsodError

if TYPE_CHECKING:
    import torch

CVD = "CUDA_VISIBLE_DEVICES"
LOCK_DIR_ENV = "SYNTHSOD_GPU_LOCK_DIR"
_EMPTY_ALLOCATIONS = {"", "NoDevFiles"}  # what SLURM writes into CUDA_VISIBLE_DEVICES for no GPU


@dataclass(frozen=True)
class Lease:
    """The device a job may use: ``gpu`` is the physical id (or SLURM's allocation), None on CPU."""

    device: Literal["cuda", "cpu"]
    gpu: str | None
    source: Literal["lock", "slurm", "cpu"]


def default_lock_dir(environ: MutableMapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    return Path(environ.get(LOCK_DIR_ENV) or f"/tmp/synthsod-gpu-locks-{os.getuid()}")


def count_gpus() -> int:
    """Number of GPUs on this machine, without creating a CUDA context in this process."""
    try:
        import torch

        nvml_count = getattr(torch.cuda, "_device_count_nvml", None)
        if nvml_count is not None and (n := nvml_count()) >= 0:
            return n
    except ImportError:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    if out.returncode != 0:
        return 0
    return sum(1 for line in out.stdout.splitlines() if line.startswith("GPU "))


def _slurm_allocation(environ: MutableMapping[str, str]) -> str | None:
    """SLURM's GPU allocation ("" if empty), or None when SLURM did not allocate GPUs."""
    if "SLURM_JOB_ID" not in environ:
        return None
    for name in (CVD, "SLURM_STEP_GPUS", "SLURM_JOB_GPUS"):
        if name in environ:
            value = environ[name].strip()
            return "" if value in _EMPTY_ALLOCATIONS else value
    return None


def _split_ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _try_lock(lock_dir: Path, gpu: str) -> int | None:
    """Open and exclusively ``flock`` the lock file of ``gpu``; return the fd, or None if busy."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", gpu)  # UUID / MIG ids may hold '/'
    fd = os.open(lock_dir / f"gpu-{safe}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    return fd


@contextlib.contextmanager
def gpu_lease(
    lock_dir: str | Path | None = None,
    *,
    wait_s: float = 3600.0,
    poll_s: float = 0.5,
    device_count: int | None = None,
    environ: MutableMapping[str, str] | None = None,
) -> Iterator[Lease]:
    """Hold one GPU (or SLURM's allocation, or the CPU) for the block; see the module docstring.

    ``lock_dir`` defaults to :func:`default_lock_dir`; ``device_count`` overrides GPU counting
    (for tests); ``environ`` (default ``os.environ``) is read and gets ``CUDA_VISIBLE_DEVICES``.
    """
    environ = os.environ if environ is None else environ

    slurm = _slurm_allocation(environ)
    if slurm is not None:
        yield Lease("cuda", slurm, "slurm") if slurm else Lease("cpu", None, "slurm")
        return

    n = count_gpus() if device_count is None else device_count
    previous = environ.get(CVD)
    candidates = _split_ids(previous) if previous is not None else [str(i) for i in range(n)]
    if n <= 0 or not candidates:
        yield Lease("cpu", None, "cpu")
        return

    lock_dir = default_lock_dir(environ) if lock_dir is None else Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_s
    while True:
        for gpu in candidates:
            if (fd := _try_lock(lock_dir, gpu)) is not None:
                break
        else:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SynthsodError(
                    f"no GPU became free in {wait_s:g} s: all of {', '.join(candidates)} are "
                    f"locked by other jobs (lock files in {lock_dir})"
                )
            time.sleep(min(poll_s, remaining))
            continue
        break

    try:
        environ[CVD] = gpu
        try:
            yield Lease("cuda", gpu, "lock")
        finally:
            if previous is None:
                environ.pop(CVD, None)
            else:
                environ[CVD] = previous
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def torch_device(lease: Lease) -> torch.device:
    """``cuda:0`` inside a GPU lease (the leased GPU is the only one visible), else ``cpu``."""
    import torch

    return torch.device("cuda:0" if lease.device == "cuda" else "cpu")


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """The project's precision rule: bf16 autocast on CUDA, plain fp32 on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
