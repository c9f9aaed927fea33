"""The Snakemake workflow end to end on a small demo world: config checks, re-run triggers, failures.

Every run uses the repository's Snakefile in a throw-away working directory (see conftest.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import (
    REPO,
    RUN_TIMEOUT_S,
    SMALL_RUN_PAIRS,
    SMALL_SPLIT_SIZES,
    SNAKEFILE,
    SNAKEMAKE,
    DemoRun,
    make_workdir,
    run_snakemake,
    small_config,
    write_yaml,
)
from PIL import Image

from synthsod.cli import main
from synthsod.data.prepare import load_image_rgb
from synthsod.evaluation.baselines import otsu_saliency
from synthsod.evaluation.oracle import load_oracle

pytestmark = pytest.mark.workflow

DEMO_SPLITS = tuple(SMALL_SPLIT_SIZES)  # DEMO-TR, DEMO-TE: also the datasets rule all prepares
GEN = small_config()["generator"]  # the SODGAN generator: the shipped scene BigGAN
PIPE = small_config()["pipeline"]  # the one SODGAN pipeline
KEY = GEN  # its stage keys (synthsod/pipelines.py): no override of the shared sections, so the generator's name
BASE_T = small_config()["runs"]["sodgan"]["truncation"]
SOD = small_config()["sod"]  # the trainings (config.yaml's, at test size): which data each learns from
REFINEMENTS = [(base, coop) for base, spec in SOD.items() for coop in spec.get("refine_with", [])]
BASELINES = small_config()["baselines"]
EVALUATED = sorted([*SOD, *(f"{base}+{coop}" for base, coop in REFINEMENTS), *BASELINES])  # the summary's rows


def benchmark_jobs() -> dict[str, int]:
    """Jobs per rule on one benchmark: every training's, refinement's and baseline's maps and evaluation."""
    coop = sum(spec["model"] == "coop" for spec in SOD.values())
    return {
        "sod_predict": len(SOD) - coop,
        "coop_predict": coop,
        "ebm_refine": len(REFINEMENTS),
        "baseline_predict": len(BASELINES),
        "evaluate": len(EVALUATED),
    }


# ---------------------------------------------------------------------------------------------
# Helpers


def with_value(config: dict[str, Any], keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A copy of ``config`` with ``config[k0][k1]...[kn] = value``."""
    config = copy.deepcopy(config)
    node = config
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value
    return config


def get_value(config: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        config = config[key]
    return config


_RULE_LINE = re.compile(r"^\s*(?:local)?rule (?P<rule>[A-Za-z_]\w*):\s*$")
_WILDCARDS_LINE = re.compile(r"^\s+wildcards: (?P<wildcards>.+?)\s*$")


def planned_jobs(output: str) -> Counter[str]:
    """The jobs a dry run lists, as ``rule`` or ``rule[name=value, ...]`` (one entry per job)."""
    jobs: list[list[str]] = []
    for line in output.splitlines():
        if m := _RULE_LINE.match(line):
            jobs.append([m["rule"], ""])
        elif jobs and (m := _WILDCARDS_LINE.match(line)) and not jobs[-1][1]:
            jobs[-1][1] = m["wildcards"]
    return Counter(f"{rule}[{wc}]" if wc else rule for rule, wc in jobs)


def job_stats(output: str) -> dict[str, int]:
    """The first "Job stats" table of a snakemake run ({} when there is none)."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        return {}
    assert lines[start + 1].split() == ["job", "count"], lines[start : start + 3]
    stats: dict[str, int] = {}
    for line in lines[start + 3 :]:
        name, count = line.split()
        if name == "total":
            assert int(count) == sum(stats.values())
            return stats
        stats[name] = int(count)
    raise AssertionError("job stats table without a total line")


def image_files(folder: Path) -> list[Path]:
    """The files the workflow wrote to a dataset folder (not snakemake's hidden timestamp)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every non-hidden file under ``root``, keyed by path relative to ``root``."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


# ---------------------------------------------------------------------------------------------
# 1. Config rejection before any job runs

BAD_CONFIGS = {
    # id: (keys, value, strings the error must contain: the key's place and what is wrong)
    "unknown-top-level-key": (("benchmark",), ["DEMO-TE"], ["'benchmark' was unexpected"]),
    "unknown-nested-key": (
        ("prepare", "max_bad_fracton"),
        0.1,
        ["'max_bad_fracton' was unexpected", "instance['prepare']"],
    ),
    "wrong-type": (
        ("prepare", "threads"),
        "two",
        ["'two' is not of type 'integer'", "instance['prepare']['threads']"],
    ),
    "out-of-range": (
        ("scenes", "splits", "DEMO-TR", "size"),
        -3,
        ["-3 is less than the minimum of 1", "instance['scenes']['splits']['DEMO-TR']['size']"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_invalid_config_is_rejected_before_any_job(tmp_path: Path, case: str) -> None:
    keys, value, expected = BAD_CONFIGS[case]
    config = with_value(small_config(), keys, value)
    workdir = make_workdir(tmp_path / "work", config)

    result = workdir.dry_run()
    assert result.returncode != 0, result.describe()
    assert "Error validating config file" in result.output, result.describe()
    for text in expected:
        assert text in result.output, result.describe()
    assert "Building DAG" not in result.output, result.describe()
    assert not (workdir.path / "results").exists()


# pipelines and sweeps the schema cannot check: each stops before any job, naming the pipeline or sweep
BAD_EXPERIMENTS = {
    "pipeline-unknown-key": (
        ("pipelines", "ablated"),
        {"gmask": {"atention": "off"}},
        "pipelines.ablated.gmask: unknown key 'atention'",
    ),
    "run-unknown-pipeline": (
        ("runs", "sodgan", "pipeline"),
        "nope",
        "runs.sodgan.pipeline: 'nope' is not under pipelines:",
    ),
    "sweep-unknown-key": (
        ("sweeps",),
        {"t": {"run": "sodgan", "keys": {"truncaton": [0.5]}}},
        "sweeps.t.keys: the run 'sodgan' has no key 'truncaton'",
    ),
    "sweep-name-collision": (
        ("sweeps",),
        {"t": {"run": "ebigbigan", "keys": {"pairs": [4]}, "labels": ["x"]}},
        "sweeps.t: the point's run name 'ebigbigan.t-x' is already under the config",
    ),
}


@pytest.mark.parametrize("case", list(BAD_EXPERIMENTS))
def test_bad_pipelines_and_sweeps_stop_before_any_job(tmp_path: Path, case: str) -> None:
    keys, value, expected = BAD_EXPERIMENTS[case]
    config = with_value(small_config(), keys, value)
    if case == "sweep-name-collision":  # a hand-written run with the name the point would take
        config["runs"]["ebigbigan.t-x"] = config["runs"]["ebigbigan"]
    workdir = make_workdir(tmp_path / "work", config)
    result = workdir.dry_run()
    assert result.returncode != 0, result.describe()
    assert expected in result.output, result.describe()
    assert "Building DAG" not in result.output and not (workdir.path / "results").exists(), result.describe()


def test_the_demo_ablation_trains_one_model_per_distinct_setting(tmp_path: Path) -> None:
    """configs/demo-ablation.yaml on the demo: Table 2's seven rows share the DEN (2 settings: den, vae) and
    the few-shot set they agree on, one G_mask per distinct G_mask setting, one table per sweep."""
    from snakemake.utils import update_config

    ablation = yaml.safe_load((REPO / "configs" / "demo-ablation.yaml").read_text())
    config = small_config()
    update_config(config, ablation)
    result = make_workdir(tmp_path / "work", config).dry_run()
    assert result.returncode == 0, result.describe()
    stats = job_stats(result.output)
    assert stats["den_train"] == stats["den_invert"] == stats["fewshot_select"] == 2, stats
    assert stats["gmask_train"] == len(ablation["pipelines"]) == 6, stats
    assert "den_ablation" not in stats  # the VAE is a pipeline here, not an ablation beside the DEN
    assert stats["sweep_table"] == len(ablation["sweeps"])


def test_invalid_config_real_run_writes_nothing(tmp_path: Path) -> None:
    """Not only a dry run: a real run with a bad value stops before the first job."""
    workdir = make_workdir(tmp_path / "work", with_value(small_config(), ("prepare", "threads"), "two"))
    result = workdir.run("--cores", "2")
    assert result.returncode != 0, result.describe()
    assert "instance['prepare']['threads']" in result.output, result.describe()
    assert "Job stats" not in result.output, result.describe()
    assert not (workdir.path / "results").exists()


# ---------------------------------------------------------------------------------------------
# 2. A full run, then which jobs a changed parameter re-runs


def test_full_run_writes_the_demo_world(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path
    stats = job_stats(demo_run.result.output)
    assert stats == {
        "scene_split": 2,
        "prepare_dataset": 2,
        "generator_quality": 1,
        "oracle_train": 1,
        "den_train": 1,
        "den_ablation": 1,
        "den_invert": 1,
        "fewshot_select": 1,
        "gmask_train": 1,
        "directions_discover": 1,
        "directions_rank": 1,
        "sample_calibrate": 1,
        "sample": 4,
        "shard_manifest": 2,
        "oracle_audit": 2,
        "inversion_audit": 1,
        "sod_train": sum(not spec.get("active") for spec in SOD.values()),
        "atal_train": sum(bool(spec.get("active")) for spec in SOD.values()),
        **benchmark_jobs(),
        "scorecard": 1,
        "summarize": 1,
        "report_run": 2,
        "report_filters": 1,
        "report_dataset": 1,
        "report_training": 1,
        "all": 1,
    }, stats
    # the oracle's look at the inversions, beside the generator's fidelity on the scenes' true codes
    inversions = json.loads((root / "results/eval/inversion" / f"{KEY}.json").read_text())
    assert inversions["inversions"]["pairs"] == inversions["true_codes"]["pairs"] > 0
    assert 0.0 <= inversions["class_accuracy"] <= 1.0
    for split, size in SMALL_SPLIT_SIZES.items():
        images = image_files(root / "results/scenes" / split / "images")
        masks = image_files(root / "results/scenes" / split / "masks")
        assert len(images) == size and len(masks) == size, (split, images, masks)
        assert [p.stem for p in images] == [p.stem for p in masks]
        assert {p.suffix for p in images} == {".jpg"} and {p.suffix for p in masks} == {".png"}

        manifest = pd.read_parquet(root / "results/data" / split / "manifest.parquet")
        assert sorted(manifest["id"]) == [p.stem for p in images]
        bad_inputs = (root / "results/data" / split / "bad_inputs.csv").read_text()
        assert bad_inputs == "file,reason,action\n"  # the scene world has no bad pairs
        mask = np.asarray(Image.open(masks[0]))
        assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255
    # the two splits take disjoint index ranges of the world
    train, test = (set(image_files(root / "results/scenes" / s / "images")) for s in DEMO_SPLITS)
    assert not {p.name for p in train} & {p.name for p in test}
    # the reference segmenter the DAG trained (scenes.oracle.weights: null), its checkpoint cleaned up
    oracle_dir = root / "results/scenes/oracle"
    assert sorted(p.name for p in oracle_dir.iterdir()) == ["oracle.pt"]
    oracle = load_oracle(oracle_dir / "oracle.pt")
    assert oracle.training is False and all(p.dtype == torch.float32 for p in oracle.parameters())


def test_oracle_audits_and_the_scorecard_cover_every_run(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path
    config = demo_run.workdir.config
    for run in config["runs"]:
        audit = json.loads((root / "results/eval/oracle" / f"{run}.json").read_text())
        assert audit["kept_pairs"]["pairs"] == SMALL_RUN_PAIRS, run
        assert 0 <= audit["kept_pairs"]["mean"] <= 1, run
        assert ("dq" in audit) == (config["runs"][run]["filters"].get("dq") is not None), run
    # D_q's audit covers every scored calibration candidate, on both sides of the run's threshold
    candidates = pd.read_parquet(root / "results/synthetic/sodgan/dq_calibration.parquet")
    threshold = json.loads((root / "results/synthetic/sodgan/dq_calibration.json").read_text())["threshold"]
    dq = json.loads((root / "results/eval/oracle/sodgan.json").read_text())["dq"]
    assert dq["threshold"] == threshold
    assert dq["kept"]["pairs"] == int((candidates["dq_score"] >= threshold).sum())
    assert dq["kept"]["pairs"] + dq["rejected"]["pairs"] == len(candidates)
    card = json.loads((root / "results/eval/scorecard.json").read_text())
    assert card["reference_training"] == config["sod_reference"]
    assert set(card["runs"]) == set(config["runs"])
    assert sorted(card["sod"]["DEMO-TE"]) == EVALUATED
    assert set(card["den"]["ablations"]) == set(config["den"]["ablations"])
    assert set(card["oracle_on_real"]) == set(config["benchmarks"])
    targets = config["scorecard"]["targets"]
    expected_keys = {
        "den_error_ratio",
        "gmask_heldout_iou",
        "dq_iou_gain",
        "reference_max_f",
        "discovery_over_chance",
        *(f"run_oracle_iou.{run}" for run in targets["run_oracle_iou"]),
        *(f"max_f_ratio.{name}" for name in targets["max_f_ratio"]),
    }
    assert {check["key"] for check in card["checks"]} == expected_keys
    summary = (root / "results/eval/summary.md").read_text()
    assert summary.index("## Scorecard") < summary.index("## Benchmark")
    for check in card["checks"]:
        assert check["figure"] in summary


def test_summary_lists_every_training_and_refinement_and_coop_writes_uncertainty_maps(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path
    summary = pd.read_csv(root / "results/eval/summary.csv")
    assert sorted(summary["training"]) == EVALUATED
    assert {"otsu", "unet-sodgan+coop"} <= set(EVALUATED)  # a baseline and a refinement among them
    rounds = [pd.read_parquet(root / f"results/sod/unet-atal/points/round-{r}.parquet") for r in (0, 1)]
    active, images = SOD["unet-atal"]["active"], SMALL_SPLIT_SIZES["DEMO-TR"]
    first, second = active["initial_points"], active["initial_points"] + active["points_per_round"]
    assert [len(t) for t in rounds] == [first * images, second * images]
    pd.testing.assert_frame_equal(rounds[1][rounds[1]["round"] == 0].reset_index(drop=True), rounds[0])
    ids = sorted(pd.read_parquet(root / "results/data/DEMO-TE/manifest.parquet")["id"])
    for folder in ("pred/coop", "uncertainty/coop", "pred/unet-sodgan+coop", "pred/otsu"):
        maps = image_files(root / "results" / folder / "DEMO-TE")
        assert [p.stem for p in maps] == ids and {p.suffix for p in maps} == {".png"}, folder
    uncertainty = np.asarray(Image.open(root / "results/uncertainty/coop/DEMO-TE" / f"{ids[0]}.png"))
    image = Image.open(root / "results/scenes/DEMO-TE/images" / f"{ids[0]}.jpg")
    assert uncertainty.shape == (image.height, image.width) and uncertainty.dtype == np.uint8
    # the baseline's maps are otsu_saliency of each benchmark image
    otsu = np.asarray(Image.open(root / "results/pred/otsu/DEMO-TE" / f"{ids[0]}.png"))
    assert np.array_equal(otsu, otsu_saliency(load_image_rgb(image.filename)))


def test_direction_search_ranks_every_discovered_direction(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path / "results/directions" / GEN
    config = demo_run.workdir.config["directions"]
    directions = torch.load(root / "directions.pt", weights_only=True)["directions"]
    assert tuple(directions.shape) == (config["discover"]["directions"], 128)
    history = pd.read_csv(root / "discover_log.csv")
    assert history["step"].tolist() == list(range(1, config["discover"]["steps"] + 1))
    ranking = pd.read_csv(root / "ranking.csv")
    assert ranking["direction"].tolist() == list(range(config["discover"]["directions"]))
    assert list(ranking.columns) == [
        "direction",
        "restoration_loss",
        "distance",
        "share",
        "discarded",
        "top_distance",
        "rank",
        "chosen",
    ]
    ranked = ranking.dropna(subset=["rank"]).sort_values("rank")
    assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1)) and ranking["chosen"].sum() == 1
    chosen = int(ranked["direction"].iloc[0])
    summary = json.loads((root / "search.json").read_text())
    assert summary["chosen"] == chosen and [r["direction"] for r in summary["ranked"]] == ranked["direction"].tolist()
    direction = np.load(root / "search.npy")
    assert np.allclose(
        direction, summary["sign"] * directions[chosen].numpy() / directions[chosen].norm().item(), atol=1e-6
    )
    assert [p.name for p in image_files(root / "top")] == [f"rank-{int(r):02d}.png" for r in ranked["rank"]]


def _job(rule: str, **wildcards: str) -> str:
    return f"{rule}[{', '.join(f'{k}={v}' for k, v in wildcards.items())}]" if wildcards else rule


SPLITS = [_job("scene_split", split=s) for s in DEMO_SPLITS]
PREPARE_BOTH = [_job("prepare_dataset", dataset=s) for s in DEMO_SPLITS]
SHARDS = ("00000", "00001")


def _run_jobs(run: str, shards=SHARDS) -> list[str]:
    """A run's shards, its manifest, and the reference segmenter's audit of its pairs."""
    return [
        *(_job("sample", run=run, shard=k) for k in shards),
        _job("shard_manifest", run=run),
        _job("oracle_audit", run=run),
    ]


SODGAN_RUN = [_job("sample_calibrate", run="sodgan"), *_run_jobs("sodgan")]
EBIG_RUN = _run_jobs("ebigbigan")  # the searched direction's shift near the DEN's inverted latents
GMASK = [_job("gmask_train", key=KEY), *SODGAN_RUN]
FEWSHOT = [_job("fewshot_select", key=KEY), *GMASK]
INVERSION_AUDIT = _job("inversion_audit", key=KEY)  # the oracle's look at the inversions
INVERT = [_job("den_invert", key=KEY), INVERSION_AUDIT, *FEWSHOT, *EBIG_RUN]
ABLATIONS = small_config()["den"]["ablations"]  # den.ablations: the encoders trained beside the DEN
DEN_ABLATION = [_job("den_ablation", key=KEY, mode=mode) for mode in ABLATIONS]
OTHER_MODE = next(mode for mode in ("den", "vae") if mode not in ABLATIONS)
SODGAN = [_job("den_train", key=KEY), *INVERT]  # the chain that learns from DEMO-TR


def _sodgan_chain(key: str) -> list[str]:
    """The SODGAN stages under the stage key ``key`` (all stages keyed alike)."""
    stages = ("den_train", "den_invert", "inversion_audit", "fewshot_select", "gmask_train")
    return [_job(rule, key=key) for rule in stages]


ORACLE = ["oracle_train", INVERSION_AUDIT, *(_job("oracle_audit", run=run) for run in ("sodgan", "ebigbigan"))]


def _refined(base: str, coop: str = "coop") -> list[str]:
    """A training's predictions refined by a coop model's EBM, and their evaluation."""
    return [
        _job("ebm_refine", base=base, coop=coop, bench="DEMO-TE"),
        _job("evaluate", sod=f"{base}+{coop}", bench="DEMO-TE"),
    ]


def _sod(*names: str, train: bool = True) -> list[str]:
    """Trainings ``names`` (ATAL's by its own rule; without ``train`` the models stay), their predictions
    on the demo benchmark (coop's with uncertainty maps), their evaluation, and the EBM refinements either
    side of which they are (the summary comes once)."""
    jobs = []
    for name in names:
        if train:
            jobs.append(_job("atal_train" if SOD[name].get("active") else "sod_train", sod=name))
        predict = "coop_predict" if SOD[name]["model"] == "coop" else "sod_predict"
        jobs += [_job(predict, sod=name, bench="DEMO-TE"), _job("evaluate", sod=name, bench="DEMO-TE")]
    for base, coop in REFINEMENTS:
        if base in names or coop in names:
            jobs += _refined(base, coop)
    return jobs


def _trained_on(kind: str, source: str) -> list[str]:
    """The trainings whose ``train.<kind>`` (runs or datasets) holds ``source``."""
    names = [name for name, spec in SOD.items() if source in spec["train"][kind]]
    assert names, f"no training learns from {kind} {source}: the chains below would test nothing"
    return names


ON_SODGAN = _sod(*_trained_on("runs", "sodgan"))  # every training on the sodgan run (and its refinements)
ON_EBIG = _sod(*_trained_on("runs", "ebigbigan"))
REAL = _sod(*_trained_on("datasets", "DEMO-TR"))  # every training on DEMO-TR
OTSU = [
    *(_job("baseline_predict", baseline=name, bench="DEMO-TE") for name in BASELINES),
    *(_job("evaluate", sod=name, bench="DEMO-TE") for name in BASELINES),
]
BENCH = [*_sod(*SOD, train=False), *OTSU]  # every prediction on DEMO-TE and its evaluation
# everything that reads the real data (the scene world's splits)
ON_DATA = [*PREPARE_BOTH, *SODGAN, *DEN_ABLATION, *ON_SODGAN, *ON_EBIG, *REAL, *OTSU]
SUMMARY = ["summarize", "all"]
DOWNSTREAM = ["scorecard", *SUMMARY]  # the scorecard reads every stage's figures
DIRECTIONS = [_job("directions_discover", gen=GEN), _job("directions_rank", gen=GEN)]


def with_report(jobs: list[str]) -> list[str]:
    """``jobs`` (each once: the chains above overlap) plus the report figures (rules/report.smk) that read their
    outputs: a run's figures follow its manifest; the dataset statistics every manifest, DEMO-TR and the DEN's
    latents; the training curves every training."""
    jobs = list(dict.fromkeys(jobs))
    rules = {job.split("[")[0] for job in jobs}
    manifests = [job for job in jobs if job.startswith("shard_manifest[")]
    figures = [_job("report_run", run=job.removeprefix("shard_manifest[run=").removesuffix("]")) for job in manifests]
    if figures:
        figures.append("report_filters")
    if figures or "den_invert" in rules or _job("prepare_dataset", dataset="DEMO-TR") in jobs:
        figures.append("report_dataset")
    if rules & {"sod_train", "atal_train"}:
        figures.append("report_training")
    return [*jobs, *figures]


# id: (config change or None, the jobs a dry run must list: exactly these, before the report's figures)
PARAM_CHANGES: dict[str, tuple[tuple[tuple[str, ...], Any] | None, list[str]]] = {
    "no-change": (None, []),
    "prepare.max_bad_fraction": ((("prepare", "max_bad_fraction"), 0.2), [*ON_DATA, *DOWNSTREAM]),
    # the scene world: a split alone; the JPEG quality of the splits is not the world the models train on
    "scenes.splits.DEMO-TE.size": (
        (("scenes", "splits", "DEMO-TE", "size"), SMALL_SPLIT_SIZES["DEMO-TE"] + 1),
        [_job("scene_split", split="DEMO-TE"), _job("prepare_dataset", dataset="DEMO-TE"), *BENCH, *DOWNSTREAM],
    ),
    "scenes.jpeg_quality": ((("scenes", "jpeg_quality"), 90), [*SPLITS, *ON_DATA, *DOWNSTREAM]),
    "scenes.quality.samples": (
        (("scenes", "quality", "samples"), 24),
        [_job("generator_quality", gen=GEN), *DOWNSTREAM],
    ),
    # the reference segmenter: retraining it re-scores every run; the scorecard's targets only re-judge
    "scenes.oracle.train": ((("scenes", "oracle", "train", "scenes"), 20), [*ORACLE, *DOWNSTREAM]),
    "scenes.oracle.enabled": ((("scenes", "oracle", "enabled"), False), DOWNSTREAM),
    "scorecard.targets.gmask_heldout_iou": ((("scorecard", "targets", "gmask_heldout_iou"), 0.5), DOWNSTREAM),
    "scorecard.targets.max_f_ratio": ((("scorecard", "targets", "max_f_ratio"), {"unet-ebigbigan": 0.5}), DOWNSTREAM),
    "scorecard.enabled": ((("scorecard", "enabled"), False), SUMMARY),
    # the baselines: evaluated beside the trainings, no training re-runs when they go
    "baselines": ((("baselines",), []), DOWNSTREAM),
    # a shipped generator: no job reads its training settings; weights: null trains it in the DAG
    "generators.scene.train.lr_d": ((("generators", "scene", "train"), {"lr_d": 1e-3}), []),
    "generators.scene.weights=null": (
        (("generators", "scene", "weights"), None),
        [
            _job("generator_train", gen=GEN),
            _job("generator_quality", gen=GEN),
            *DIRECTIONS,
            *SODGAN,
            *DEN_ABLATION,
            *ON_SODGAN,
            *ON_EBIG,
            *DOWNSTREAM,
        ],
    ),
    "den.steps": ((("den", "steps"), 6), [*SODGAN, *DEN_ABLATION, *ON_SODGAN, *ON_EBIG, *DOWNSTREAM]),
    # another ablation adds its own training, the ones done stay
    "den.ablations": (
        (("den", "ablations"), [*ABLATIONS, OTHER_MODE]),
        [_job("den_ablation", key=KEY, mode=OTHER_MODE), *DOWNSTREAM],
    ),
    "den.invert.refine_steps": ((("den", "invert", "refine_steps"), 3), [*INVERT, *ON_SODGAN, *ON_EBIG, *DOWNSTREAM]),
    "den.invert.images": (
        (("den", "invert", "images"), SMALL_SPLIT_SIZES["DEMO-TR"] - 2),
        [*INVERT, *ON_SODGAN, *ON_EBIG, *DOWNSTREAM],
    ),
    "fewshot.size": ((("fewshot", "size"), 5), [*FEWSHOT, *ON_SODGAN, *DOWNSTREAM]),
    "gmask.head": ((("gmask", "head"), "mlp-m"), [*GMASK, *ON_SODGAN, *DOWNSTREAM]),
    # a pipeline's own override re-runs what the shared setting would, for that pipeline
    # a pipeline's own override: its stages from the first changed one get new keys (and files)
    "pipelines.sodgan.gmask.head": (
        (("pipelines", PIPE, "gmask"), {"head": "mlp-m"}),
        [_job("gmask_train", key=f"{KEY}+gmask.head=mlp-m"), *SODGAN_RUN, *ON_SODGAN, *DOWNSTREAM],
    ),
    "pipelines.sodgan.den.steps": (
        (("pipelines", PIPE, "den"), {"steps": 6}),
        [
            *_sodgan_chain(f"{KEY}+den.steps=6"),
            *(_job("den_ablation", key=f"{KEY}+den.steps=6", mode=mode) for mode in ABLATIONS),
            *SODGAN_RUN,
            *EBIG_RUN,
            *ON_SODGAN,
            *ON_EBIG,
            *DOWNSTREAM,
        ],
    ),
    # a run's size only adds shards: the calibration and the finished shards stay
    "runs.sodgan.pairs": (
        (("runs", "sodgan", "pairs"), 8),
        [*_run_jobs("sodgan", shards=("00002",)), *ON_SODGAN, *DOWNSTREAM],
    ),
    "runs.ebigbigan.mask.shift": ((("runs", "ebigbigan", "mask", "shift"), 4.0), [*EBIG_RUN, *ON_EBIG, *DOWNSTREAM]),
    # no run uses the contrast direction: its settings change nothing, until a run takes it
    "directions.contrast.iterations": ((("directions", "contrast", "iterations"), 6), []),
    "runs.ebigbigan.mask.direction=contrast": (
        (("runs", "ebigbigan", "mask", "direction"), "contrast"),
        [_job("direction_contrast", gen=GEN), *EBIG_RUN, *ON_EBIG, *DOWNSTREAM],
    ),
    # the searched direction feeds the ebigbigan run (and the scorecard reads the discovery's log)
    "directions.discover.steps": (
        (("directions", "discover", "steps"), 3),
        [*DIRECTIONS, *EBIG_RUN, *ON_EBIG, *DOWNSTREAM],
    ),
    "directions.search.top": ((("directions", "search", "top"), 3), [DIRECTIONS[1], *EBIG_RUN, *ON_EBIG, *DOWNSTREAM]),
    "sod.unet-real.recipe.steps": ((("sod", "unet-real", "recipe", "steps"), 4), [*_sod("unet-real"), *DOWNSTREAM]),
    "sod.unet-real.eval_size": (
        (("sod", "unet-real", "eval_size"), 48),
        [*_sod("unet-real", train=False), *DOWNSTREAM],
    ),  # the trained model stays
    "sod.unet-atal.active.budget": ((("sod", "unet-atal", "active", "budget"), 9), [*_sod("unet-atal"), *DOWNSTREAM]),
    # ATAL's choice of the few-shot set: the trained unet-atal ranks the DEMO-TR images
    "fewshot.strategy=uncertain": (
        (
            ("fewshot",),
            {"strategy": "uncertain", "size": 6, "class_file": None, "seed": 0, "uncertainty": {"model": "unet-atal"}},
        ),
        [*FEWSHOT, *ON_SODGAN, *DOWNSTREAM],
    ),
    # the uncertainty settings of a strategy not in use change nothing
    "fewshot.uncertainty.eps": ((("fewshot", "uncertainty", "eps"), 0.1), []),
    "sod_reference": ((("sod_reference",), "unet-sodgan"), DOWNSTREAM),
    "sod.coop.recipe.steps": ((("sod", "coop", "recipe", "steps"), 4), [*_sod("coop"), *DOWNSTREAM]),
    "sod.coop.coop.temperature": ((("sod", "coop", "coop", "temperature"), 0.5), [*_sod("coop"), *DOWNSTREAM]),
    # refinement rows come and go without touching any training or prediction
    "sod.unet-sodgan.refine_with": ((("sod", "unet-sodgan", "refine_with"), []), DOWNSTREAM),
    # a sweep: each new point is one run and one training (and the sweep's table); its point at the base's
    # own value is the finished base itself
    "sweeps.t": (
        (("sweeps",), {"t": {"run": "sodgan", "training": "unet-sodgan", "keys": {"truncation": [BASE_T, 0.5]}}}),
        [
            _job("sample_calibrate", run="sodgan.t-0.5"),
            *_run_jobs("sodgan.t-0.5"),
            _job("sod_train", sod="unet-sodgan.t-0.5"),
            _job("sod_predict", sod="unet-sodgan.t-0.5", bench="DEMO-TE"),
            _job("evaluate", sod="unet-sodgan.t-0.5", bench="DEMO-TE"),
            _job("sweep_table", sweep="t"),
            *DOWNSTREAM,
        ],
    ),
    # a pipeline that differs in G_mask only trains its own G_mask on the shared DEN and few-shot set
    "pipelines.heads": (
        (("pipelines",), {PIPE: {}, "head-m": {"gmask": {"head": "mlp-m"}}}),
        [_job("gmask_train", key=f"{KEY}+gmask.head=mlp-m"), "all"],
    ),
    "sod.unet-real.refine_with": (
        (("sod", "unet-real", "refine_with"), ["coop"]),
        [*_refined("unet-real"), *DOWNSTREAM],
    ),
}


@pytest.fixture(scope="module")
def param_change_dry_runs(demo_run: DemoRun, tmp_path_factory: pytest.TempPathFactory):
    """One dry run per entry of PARAM_CHANGES against the finished demo run (run concurrently)."""
    folder = tmp_path_factory.mktemp("param_changes")
    base = demo_run.workdir.config

    def dry_run(case: str):
        change, _ = PARAM_CHANGES[case]
        if change is None:
            return demo_run.workdir.dry_run()
        keys, value = change
        try:
            old = get_value(base, keys)
        except KeyError:  # not in config.yaml: the schema's default applies
            old = None
        assert old != value, f"{case}: the new value must differ from the old one"
        configfile = write_yaml(folder / f"{case}.yaml", with_value(base, keys, value))
        return demo_run.workdir.dry_run(configfile)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(PARAM_CHANGES, pool.map(dry_run, PARAM_CHANGES)))


# changes that re-run more than they should (library issues): strict, so a fix shows up as XPASS
@pytest.mark.parametrize("case", list(PARAM_CHANGES))
def test_param_change_reruns_exactly_what_depends_on_it(param_change_dry_runs, case: str) -> None:
    result = param_change_dry_runs[case]
    expected = with_report(PARAM_CHANGES[case][1])
    assert result.returncode == 0, result.describe()
    jobs = planned_jobs(result.output)
    assert jobs == Counter(expected), result.describe()
    assert job_stats(result.output) == dict(Counter(job.split("[")[0] for job in expected))
    if not expected:
        assert "Nothing to be done" in result.output, result.describe()


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    return [_reversed_keys(v) for v in value] if isinstance(value, list) else value


def test_reordering_the_config_reruns_nothing(demo_run: DemoRun, tmp_path: Path) -> None:
    """Every mapping of the config with its keys in reverse order: the same settings, so nothing to do."""
    configfile = write_yaml(tmp_path / "reordered.yaml", _reversed_keys(demo_run.workdir.config))
    assert list(yaml.safe_load(configfile.read_text())) == list(reversed(list(demo_run.workdir.config)))
    result = demo_run.workdir.dry_run(configfile)
    assert result.returncode == 0 and "Nothing to be done" in result.output, result.describe()


# ---------------------------------------------------------------------------------------------
# 3. The paper config without its data stops at once and lists every missing input


def test_paper_config_without_data_lists_every_missing_input(tmp_path: Path) -> None:
    """Offline (fetching off, so the test does not depend on the network): one message names every missing
    input, and for those a download provides, the download."""
    workdir = tmp_path / "empty"
    workdir.mkdir()
    paper_yaml = REPO / "configs" / "paper" / "sodgan.yaml"
    paper = yaml.safe_load(paper_yaml.read_text())
    downloads = yaml.safe_load((REPO / "config.yaml").read_text())["downloads"]
    # a paper config is applied on top of config.yaml (see its header).
    offline = write_yaml(tmp_path / "offline.yaml", {"fetch": {"enabled": False}})
    result = run_snakemake(workdir, "-n", configfiles=(REPO / "config.yaml", paper_yaml, offline))

    assert result.returncode != 0, result.describe()
    out = result.output
    assert "synthsod cannot start; these inputs are missing" in out, result.describe()
    used = [paper["train_dataset"], *paper["benchmarks"]]
    assert sorted(used) == sorted(["DUTS-TR", "DUTS-TE", "DUT-OMRON", "ECSSD", "HKU-IS", "PASCAL-S"])
    for name in used:
        for role in ("images", "masks"):
            folder = paper["datasets"][name][role]
            assert f"dataset {name}: {role} folder {folder} does not exist" in out, result.describe()
    assert f"data/DUTS-TR/DUTS-TR-Image: download DUTS-TR provides it ({downloads['DUTS-TR']['url']})" in out
    assert "data/HKU-IS/HKU-IS-Image: download" not in out  # no official direct URL: by hand only
    weights = paper["generators"][paper["generator"]]["weights"]
    weights_lines = [line for line in out.splitlines() if weights in line]
    assert weights_lines, result.describe()
    assert "pytorch_model.bin" in weights_lines[0] and "config.json" in weights_lines[0]
    assert "biggan-deep-128" not in out  # a download exists, but no stage uses it
    assert "Building DAG" not in out and "Job stats" not in out, result.describe()
    assert sorted(p.name for p in workdir.iterdir() if p.name != ".snakemake") == []


# ---------------------------------------------------------------------------------------------
# 4. snakemake --lint


def test_lint_is_clean() -> None:
    result = run_snakemake(None, "--lint", cwd=REPO)
    assert result.returncode == 0, result.describe()


_BLOCKER = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "tensorflow", "matplotlib", "cv2"}:
            raise ImportError(f"{name} is blocked: the Snakefile must parse without it")
        return None

sys.meta_path.insert(0, _Blocked())
"""


def test_the_snakefile_parses_without_torch_tensorflow_matplotlib_or_opencv(tmp_path: Path) -> None:
    """A dry run of the test config with those modules made unimportable (a sitecustomize blocks them)."""
    (tmp_path / "sitecustomize.py").write_text(_BLOCKER)
    configfile = write_yaml(tmp_path / "work" / "config.yaml", small_config())
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("SNAKEMAKE_PROFILE", None)
    proc = subprocess.run(
        [
            str(SNAKEMAKE),
            "-s",
            str(SNAKEFILE),
            "--directory",
            str(configfile.parent),
            "-n",
            "--cores",
            "2",
            "--configfile",
            str(configfile),
        ],
        cwd=configfile.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "blocked" not in output, output[-4000:]
    assert "generator_quality" in output  # the DAG was built, not skipped


# ---------------------------------------------------------------------------------------------
# 5. A dataset with too many corrupt files stops with a plain message and loses nothing


def _make_bad_dataset(root: Path, n_good: int, n_corrupt: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    mask = np.zeros((16, 16), np.uint8)
    mask[:4] = 255
    for i in range(n_good + n_corrupt):
        Image.fromarray(mask, "L").save(root / "masks" / f"p{i}.png")
        if i < n_good:
            Image.new("RGB", (16, 16), (10, 120, 200)).save(root / "images" / f"p{i}.jpg")
        else:
            (root / "images" / f"p{i}.jpg").write_bytes(b"this is not a JPEG file")


def test_bad_dataset_fails_plainly_and_keeps_prepared_manifests(demo_run: DemoRun, tmp_path: Path) -> None:
    workdir = demo_run.workdir.copy_to(tmp_path / "work")
    bad_root = workdir.path / "incoming" / "BAD"
    _make_bad_dataset(bad_root, n_good=2, n_corrupt=8)
    config = copy.deepcopy(workdir.config)
    config["datasets"]["BAD"] = {"images": "incoming/BAD/images", "masks": "incoming/BAD/masks"}
    config["benchmarks"] = [*DEMO_SPLITS[1:], "BAD"]  # only BAD is new: its preparation and evaluations
    configfile = write_yaml(tmp_path / "bad.yaml", config)

    kept = [
        workdir.path / "results/data" / s / name for s in DEMO_SPLITS for name in ("manifest.parquet", "bad_inputs.csv")
    ]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in kept}
    inputs_before = file_hashes(bad_root)

    result = workdir.run("--cores", "2", configfile=configfile)

    assert result.returncode != 0, result.describe()
    assert job_stats(result.output) == {
        "prepare_dataset": 1,
        **benchmark_jobs(),
        "scorecard": 1,  # the reference segmenter's IoU on every benchmark
        "summarize": 1,
        "all": 1,
    }, result.describe()
    out = result.output
    assert "dataset 'BAD': 8 of 10 pairs are unusable" in out, result.describe()
    assert "incoming/BAD/images/p2.jpg: unreadable or corrupt file" in out, result.describe()
    assert "Traceback" not in out, result.describe()
    log = (workdir.path / "results/logs/prepare_dataset/BAD.log").read_text()
    assert "dataset 'BAD'" in log and "corrupt" in log and "Traceback" not in log, log

    assert not (workdir.path / "results/data/BAD").exists() or not any((workdir.path / "results/data/BAD").iterdir())
    for path, (mtime_ns, content) in before.items():
        assert path.stat().st_mtime_ns == mtime_ns, path
        assert path.read_bytes() == content, path
    assert file_hashes(bad_root) == inputs_before  # the user's files are untouched


# ---------------------------------------------------------------------------------------------
# 6. Determinism: two runs, same config, same bytes


def test_two_runs_write_identical_splits_manifests_oracle_and_audits(demo_runs: tuple[DemoRun, DemoRun]) -> None:
    for run in demo_runs:
        assert run.result.returncode == 0, run.result.describe()
    first, second = (run.workdir.path / "results" for run in demo_runs)
    expected = {
        "scenes": sum(SMALL_SPLIT_SIZES.values()) * 2 + 1,  # images and masks, and the trained oracle.pt
        "data": len(DEMO_SPLITS) * 2,  # manifest and bad-input list per dataset
        "eval/oracle": len(small_config()["runs"]),  # the reference segmenter's audit of each run
    }
    for sub, expected_files in expected.items():
        hashes = file_hashes(first / sub)
        assert len(hashes) == expected_files, sorted(hashes)
        assert hashes == file_hashes(second / sub), sub


def test_both_sampling_runs_verify_and_two_runs_give_the_same_shards(demo_runs: tuple[DemoRun, DemoRun]) -> None:
    first, second = (run.workdir.path / "results/synthetic" for run in demo_runs)
    for name in ("sodgan", "ebigbigan"):
        assert main(["shards", "verify", str(first / name)]) == 0
        manifest = json.loads((first / name / "manifest.json").read_text())
        assert manifest["total_rows"] == SMALL_RUN_PAIRS and len(manifest["shards"]) == 2
        assert manifest["config"]["run"] == name and manifest["config"]["pairs"] == SMALL_RUN_PAIRS
        report = json.loads((first / name / "filter_report.json").read_text())
        assert report["kept"] == SMALL_RUN_PAIRS and report["candidates"] >= SMALL_RUN_PAIRS
        for rejected in (first / name / "rejected").glob("*.parquet"):
            for row in pd.read_parquet(rejected, columns=["filters"]).itertuples():
                assert row.filters[-1] in ("size", "histogram", "dq"), rejected  # the filter that stopped it
        # byte-identical across two runs of the whole DAG (G_mask and D_q training included)
        assert manifest["shards"] == json.loads((second / name / "manifest.json").read_text())["shards"], name
    calibration = "sodgan/dq_calibration.parquet"  # D_q's scored calibration candidates
    assert (first / calibration).read_bytes() == (second / calibration).read_bytes()


def test_a_killed_sampling_run_resumes_to_the_same_bytes(demo_run: DemoRun, tmp_path: Path) -> None:
    """Kill snakemake (SIGKILL to its process group) after the first shard, then resume."""
    workdir = demo_run.workdir.copy_to(tmp_path / "killed")
    shutil.rmtree(workdir.path / "results/synthetic")
    proc = subprocess.Popen(
        [
            str(SNAKEMAKE),
            "-s",
            str(SNAKEFILE),
            "--directory",
            str(workdir.path),
            "--cores",
            "1",
            "--configfile",
            str(workdir.configfile),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while not list((workdir.path / "results/synthetic").glob("*/shard-*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, "no shard was written"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = list((workdir.path / "results/synthetic").glob("*/manifest.json"))
    assert len(finished) < 2, "the run finished before it was killed"
    assert workdir.run("--unlock").returncode == 0  # a SIGKILL leaves snakemake's lock behind
    result = workdir.run("--cores", "2", "--rerun-incomplete")
    assert result.returncode == 0, result.describe()
    expected = file_hashes(demo_run.workdir.path / "results/synthetic")
    resumed = file_hashes(workdir.path / "results/synthetic")
    shards = {k: v for k, v in expected.items() if k.endswith(".parquet")}
    assert shards and {k: resumed[k] for k in shards} == shards
