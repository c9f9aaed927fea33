"""Wheels that let the project run on a GPU machine whose Python already holds torch and the science stack.

Usage (here, in the repository root): ``python benchmarks/gpu/wheels.py [--out .whl] [--python 3.12]``

It takes the installed versions of what the workflow needs beyond that stack (snakemake and its
dependencies, pytorch-pretrained-biggan, pysodmetrics, jsonschema) from this environment, so the
GPU machine runs the versions the tests ran here, and puts one wheel of each into ``--out``: the
binary wheel for that Python on manylinux x86-64 when PyPI has one, else a wheel built here from the
sdist (only pure-Python packages lack binary wheels among these). Torch, numpy and the rest of
:data:`STACK` are left to the machine. ``benchmarks/gpu/check.sh`` installs the folder there with
``--no-deps`` into a separate target, so nothing of the machine's own environment changes.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOTS = ("snakemake", "pytorch-pretrained-biggan", "pysodmetrics", "jsonschema")
# Heavy or compiled packages a CUDA image with PyTorch has (and must keep: its torch is built for its GPU).
STACK = {
    "torch", "torchvision", "triton", "numpy", "scipy", "pandas", "pyarrow", "pillow", "opencv-python-headless",
    "scikit-image", "matplotlib", "timm", "huggingface-hub", "safetensors", "tqdm", "pyyaml", "requests",
    "urllib3", "jinja2", "markupsafe", "packaging", "psutil", "wrapt", "networkx", "sympy", "filelock",
    "fsspec", "typing-extensions", "setuptools", "attrs", "six", "python-dateutil", "pygments", "scikit-learn",
    "joblib", "threadpoolctl", "narwhals", "cloudpickle", "tabulate", "pytest", "pluggy", "iniconfig",
}  # fmt: skip
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: tuple[str, ...] = ROOTS, stack: set[str] = STACK) -> dict[str, str]:
    """Installed ``{name: version}`` of ``roots`` and everything they require here, minus ``stack``
    (requirements behind an extra or for another platform are skipped)."""
    found, todo = {}, [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in stack:
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue  # a requirement for another platform (pyreadline3 on Windows, ...)
        for requirement in metadata.requires(name) or []:
            if "extra ==" not in requirement:
                todo.append(canonical(re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0)))
    return dict(sorted(found.items()))


def fetch(name: str, version: str, out: Path, python: str) -> str:
    """One wheel of ``name==version`` into ``out``: PyPI's binary for ``python``, else one built here."""
    pip = [sys.executable, "-m", "pip"]
    binary = [*pip, "download", "-q", "--no-deps", "--only-binary=:all:", "--implementation", "cp"]
    binary += ["--python-version", python, *(f"--platform={p}" for p in PLATFORMS), "-d", str(out)]
    if subprocess.run([*binary, f"{name}=={version}"], capture_output=True).returncode == 0:
        return "downloaded"
    with tempfile.TemporaryDirectory() as tmp:
        built = subprocess.run(
            [*pip, "wheel", "-q", "--no-deps", "-w", tmp, f"{name}=={version}"], capture_output=True, text=True
        )
        if built.returncode != 0:
            raise SystemExit(f"{name}=={version}: no binary wheel for Python {python} and no build: {built.stderr}")
        wheel = next(Path(tmp).glob("*.whl"))
        if not wheel.name.endswith("-none-any.whl"):
            raise SystemExit(f"{name}=={version}: only a compiled wheel for this machine's Python ({wheel.name})")
        shutil.move(wheel, out / wheel.name)
    return "built"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(".whl"))
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python (major.minor)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, version in closure().items():
        print(f"{name}=={version}: {fetch(name, version, args.out, args.python)}", flush=True)
    total = sum(f.stat().st_size for f in args.out.glob("*.whl"))
    print(f"{len(list(args.out.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    main()
