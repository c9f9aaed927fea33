"""The package follows the DAG: no library module imports a later stage or the Snakemake glue, and
importing a stage's package loads nothing heavy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "synthsod"
# Stages in DAG order; a module may import its own stage and earlier ones. workflow / cli are the glue.
STAGES = [
    "errors",
    "names",
    "pipelines",  # the config's experiments (stdlib only): named pipelines, then sweeps
    "sweeps",
    "core",
    "data",
    "generators",
    "sodgan",
    "directions",
    "synthesis",
    "sod",
    "evaluation",
    "reporting",
]
GLUE = {"workflow", "cli", "__main__", "synthsod"}  # "synthsod": the package's own __init__
RANK = {"errors": 0, **{stage: i for i, stage in enumerate(STAGES)}}


def _stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("synthsod"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("synthsod")]
    return found


def test_no_module_imports_a_later_stage_or_the_glue():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        stage = _stage(module)
        if stage in GLUE:
            continue
        assert stage in RANK, f"{module}: stage '{stage}' is not in STAGES"
        for target in _imports(path):
            other = _stage(target) if target != "synthsod" else "errors"
            if other in GLUE or RANK.get(other, -1) > RANK[stage]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, wrong


def test_stage_packages_import_nothing_heavy():
    packages = [p.parent.name for p in PACKAGE.glob("*/__init__.py")]
    code = (
        "import sys\n"
        + "".join(f"import synthsod.{p}\n" for p in packages)
        + "heavy = sorted({'torch', 'cv2', 'matplotlib', 'tensorflow', 'pandas'} & set(sys.modules))\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert len(packages) >= 9 and out == "", out


def test_tests_mirror_the_package_layout():
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert folders and folders <= packages, sorted(folders - packages)
