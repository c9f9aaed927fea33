"""Each paper config stands alone on top of the defaults: nothing of the demo, the expected jobs in a dry run."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, load_repo_config, merged_config, run_snakemake
from test_workflow import planned_jobs

PAPER = REPO / "configs" / "paper"

# Each paper table: the config files applied on top of config.yaml, and rules its DAG must contain.
STACKS = {
    "sodgan": (
        ("sodgan.yaml",),
        {"prepare_dataset", "den_train", "den_invert", "fewshot_select", "gmask_train", "sample", "sod_train"},
    ),
    "sodgan-ablation": (
        ("sodgan.yaml", "sodgan-ablation.yaml"),
        {"den_train", "gmask_train", "sample", "sod_train", "sweep_table"},
    ),
    "atal": (("atal.yaml",), {"prepare_dataset", "sod_train", "atal_train", "evaluate", "sweep_table"}),
    "cas": (("cas.yaml",), {"prepare_dataset", "sod_train", "evaluate", "sweep_table"}),
    "coop": (("coop.yaml",), {"prepare_dataset", "sod_train", "coop_predict", "ebm_refine_folder", "evaluate"}),
    "ebigbigan": (
        ("ebigbigan.yaml",),
        {"bigbigan_embed", "sample_bigbigan", "sod_train", "sod_predict", "evaluate"},
    ),
}
# Rules that only the demo world needs.
DEMO_RULES = {"scene_split", "tiny_generator", "generator_train", "generator_quality", "oracle_train"}
DEMO_RULES |= {"oracle_audit", "inversion_audit"}
NAMED_SECTIONS = ("datasets", "generators", "pipelines", "runs", "sod", "sweeps")


def _files(stack: str) -> list[str]:
    return [f"configs/paper/{name}" for name in STACKS[stack][0]]


def test_every_paper_config_is_covered_by_a_stack() -> None:
    covered = {name for files, _ in STACKS.values() for name in files}
    assert covered == {path.name for path in PAPER.glob("*.yaml")}


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_the_merged_config_carries_nothing_of_the_demo(stack: str) -> None:
    config = merged_config(*_files(stack))
    own = [yaml.safe_load((REPO / name).read_text()) for name in _files(stack)]
    demo = load_repo_config()
    for section in NAMED_SECTIONS:
        from_files = {name for layer in own for name in (layer.get(section) or {})}
        assert set(config[section]) <= from_files, (section, set(config[section]) - from_files)
    used = {config["train_dataset"], *config["benchmarks"]}
    for spec in config["sod"].values():
        used |= {*spec["train"]["datasets"], *(spec.get("benchmarks") or [])}
    assert not used & set(demo["datasets"]), used
    assert all(spec["model"] not in ("scene", "tiny") for spec in config["generators"].values())
    assert not config["scenes"]["quality"]["enabled"] and not config["scenes"]["oracle"]["enabled"]


def _place_user_inputs(workdir: Path, config: dict) -> None:
    """Stand-ins for what a user puts on disk: dataset folders, weights, backbone and direction files."""
    for spec in config["datasets"].values():
        for role in ("images", "masks"):
            (workdir / spec[role]).mkdir(parents=True, exist_ok=True)
    for spec in config["bigbigan"]["sources"].values():
        (workdir / spec["images"]).mkdir(parents=True, exist_ok=True)
    for spec in config["generators"].values():
        folder = workdir / spec["weights"]
        folder.mkdir(parents=True, exist_ok=True)
        for name in ("pytorch_model.bin", "config.json", "saved_model.pb"):
            (folder / name).write_text("{}")
    files = [config["den"]["backbone_weights"], config["gmask"]["dq"]["backbone_weights"]]
    files += [spec["backbone_weights"] for spec in config["sod"].values()]
    for path in filter(None, files):
        (workdir / path).parent.mkdir(parents=True, exist_ok=True)
        (workdir / path).write_bytes(b"")
    for spec in config["sod"].values():
        if (spec.get("coop") or {}).get("scribbles"):
            (workdir / spec["coop"]["scribbles"]).mkdir(parents=True, exist_ok=True)
    for spec in config["coop_refine"].values():
        for folder in spec["predictions"].values():
            (workdir / folder).mkdir(parents=True, exist_ok=True)
    for spec in config["runs"].values():
        direction = spec["mask"].get("direction")
        if isinstance(direction, str) and direction.endswith(".npy"):
            (workdir / direction).parent.mkdir(parents=True, exist_ok=True)
            np.save(workdir / direction, np.zeros(120, dtype=np.float32))


@pytest.mark.parametrize("stack", sorted(STACKS))
def test_a_dry_run_lists_the_tables_jobs_and_no_demo_job(stack: str, tmp_path: Path) -> None:
    config = merged_config(*_files(stack))
    _place_user_inputs(tmp_path, config)
    files = (REPO / "config.yaml", *(REPO / name for name in _files(stack)))
    result = run_snakemake(tmp_path, "-n", "--cores", "8", "--resources", "gpu=2", configfiles=files)
    assert result.returncode == 0, result.describe()
    rules = {re.sub(r"\[.*", "", job) for job in planned_jobs(result.output)}
    assert STACKS[stack][1] <= rules, (STACKS[stack][1] - rules, result.describe())
    assert not rules & DEMO_RULES, rules & DEMO_RULES
