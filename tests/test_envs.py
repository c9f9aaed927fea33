"""The conda env files repeat pyproject's pins, so --use-conda runs what the tests ran."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pins(requirements):
    pins = {}
    for line in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*(.*)", line.strip())
        if match and not line.startswith("-"):
            pins[match[1].lower().replace("_", "-")] = match[2].replace(" ", "")
    return pins


PYPROJECT = _pins(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))


def test_every_pyproject_dependency_is_pinned():
    loose = {name: spec for name, spec in PYPROJECT.items() if not spec.startswith("==") and name != "snakemake"}
    assert not loose
    assert PYPROJECT["torch"] == "==2.13.0"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_file_pins_match_pyproject(env_file):
    env = yaml.safe_load(env_file.read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = _pins(pip_section)
    assert pins, f"{env_file.name} pins nothing"
    for name, spec in pins.items():
        assert PYPROJECT.get(name) == spec, f"{env_file.name}: {name}{spec} but pyproject has {PYPROJECT.get(name)}"
    assert "-e .." in [entry.split("#")[0].strip() for entry in pip_section]  # the library itself


def test_every_rule_env_exists():
    referenced = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        referenced |= set(re.findall(r'"\.\./(envs/[^"]+)"', smk.read_text()))
    assert referenced and all((ROOT / path).is_file() for path in referenced)
