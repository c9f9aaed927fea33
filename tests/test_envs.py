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
# envs/tf.yaml (BigBiGAN) adds TensorFlow, which pyproject does not have, and pins no torch package.
TF_ENV = "tf.yaml"
TF_PINS = {"tensorflow": "==2.21.0", "tf-keras": "==2.21.0", "tensorflow-hub": "==0.16.1", "setuptools": "<81"}
TORCH_PACKAGES = {"torch", "torchvision", "timm", "pytorch-pretrained-biggan"}


def _env_pip_section(env_file):
    env = yaml.safe_load(env_file.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


def test_every_pyproject_dependency_is_pinned():
    loose = {name: spec for name, spec in PYPROJECT.items() if not spec.startswith("==") and name != "snakemake"}
    assert not loose
    assert PYPROJECT["torch"] == "==2.13.0"


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_file_pins_match_pyproject(env_file):
    pip_section = _env_pip_section(env_file)
    pins = _pins(pip_section)
    assert pins, f"{env_file.name} pins nothing"
    allowed = PYPROJECT | TF_PINS if env_file.name == TF_ENV else PYPROJECT
    for name, spec in pins.items():
        assert allowed.get(name) == spec, f"{env_file.name}: {name}{spec} but the pin is {allowed.get(name)}"
    assert "-e .." in [entry.split("#")[0].strip() for entry in pip_section]  # the library itself


def test_tf_env_pins_tensorflow_and_no_torch():
    pins = _pins(_env_pip_section(ROOT / "envs" / TF_ENV))
    assert {name: pins.get(name) for name in TF_PINS} == TF_PINS
    assert not TORCH_PACKAGES & pins.keys()


def test_ci_tf_venv_installs_the_tf_env_versions():
    # CI installs tensorflow-cpu (same version, CPU-only build) with --no-deps for the packages that
    # would otherwise pull in the "tensorflow" distribution as well.
    ci = (ROOT / ".ci" / "run").read_text()
    assert "tensorflow-cpu" + TF_PINS["tensorflow"] in ci
    assert f"--no-deps tf-keras{TF_PINS['tf-keras']} tensorflow-hub{TF_PINS['tensorflow-hub']}" in ci
    assert f"'setuptools{TF_PINS['setuptools']}'" in ci


def test_every_rule_env_exists():
    referenced = set()
    for smk in (ROOT / "rules").glob("*.smk"):
        referenced |= set(re.findall(r'"\.\./(envs/[^"]+)"', smk.read_text()))
    assert referenced and all((ROOT / path).is_file() for path in referenced)
