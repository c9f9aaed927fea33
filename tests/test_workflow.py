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
    TEST_CONFIG,
    DemoRun,
    make_workdir,
    run_snakemake,
    small_config,
    write_yaml,
)
from PIL import Image

from synthsod.cli import main

pytestmark = pytest.mark.workflow

DEMO_SPLITS = tuple(SMALL_SPLIT_SIZES)  # DEMO-TR, DEMO-TE: also the datasets rule all prepares


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
        ("demo", "splits", "DEMO-TR", "size"),
        -3,
        ["-3 is less than the minimum of 1", "instance['demo']['splits']['DEMO-TR']['size']"],
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
        "tiny_generator": 1,
        "demo_split": 2,
        "prepare_dataset": 4,
        "den_train": 1,
        "scene_split": 2,
        "scene_baseline": 1,
        "generator_quality": 1,
        "den_invert": 1,
        "fewshot_select": 1,
        "gmask_train": 1,
        "direction_contrast": 1,
        "directions_discover": 1,
        "directions_rank": 1,
        "sample_calibrate": 1,
        "sample": 4,
        "shard_manifest": 2,
        "sod_train": 3,
        "atal_train": 1,
        "sod_predict": 3,
        "coop_predict": 1,
        "ebm_refine": 1,
        "evaluate": 5,
        "summarize": 1,
        "report_run": 2,
        "report_filters": 1,
        "report_dataset": 1,
        "report_training": 1,
        "all": 1,
    }, stats
    for name in ("pytorch_model.bin", "config.json"):
        assert (root / "results/generators/tiny" / name).stat().st_size > 0
    for split, size in SMALL_SPLIT_SIZES.items():
        images = image_files(root / "results/demo" / split / "images")
        masks = image_files(root / "results/demo" / split / "masks")
        assert len(images) == size and len(masks) == size, (split, images, masks)
        assert [p.stem for p in images] == [p.stem for p in masks]
        assert {p.suffix for p in images} == {".jpg"} and {p.suffix for p in masks} == {".png"}

        manifest = pd.read_parquet(root / "results/data" / split / "manifest.parquet")
        assert sorted(manifest["id"]) == [p.stem for p in images]
        bad_inputs = (root / "results/data" / split / "bad_inputs.csv").read_text()
        assert bad_inputs == "file,reason,action\n"  # the demo world has no bad pairs
        mask = np.asarray(Image.open(masks[0]))
        assert set(np.unique(mask)) <= {0, 255} and mask.max() == 255


def test_summary_lists_every_training_and_refinement_and_coop_writes_uncertainty_maps(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path
    summary = pd.read_csv(root / "results/eval/summary.csv")
    assert sorted(summary["training"]) == ["coop", "unet-atal", "unet-real", "unet-synthetic", "unet-synthetic+coop"]
    rounds = [pd.read_parquet(root / f"results/sod/unet-atal/points/round-{r}.parquet") for r in (0, 1)]
    assert [len(t) for t in rounds] == [3 * SMALL_SPLIT_SIZES["DEMO-TR"], 6 * SMALL_SPLIT_SIZES["DEMO-TR"]]
    pd.testing.assert_frame_equal(rounds[1][rounds[1]["round"] == 0].reset_index(drop=True), rounds[0])
    ids = sorted(pd.read_parquet(root / "results/data/DEMO-TE/manifest.parquet")["id"])
    for folder in ("pred/coop", "uncertainty/coop", "pred/unet-synthetic+coop"):
        maps = image_files(root / "results" / folder / "DEMO-TE")
        assert [p.stem for p in maps] == ids and {p.suffix for p in maps} == {".png"}, folder
    uncertainty = np.asarray(Image.open(root / "results/uncertainty/coop/DEMO-TE" / f"{ids[0]}.png"))
    image = Image.open(root / "results/demo/DEMO-TE/images" / f"{ids[0]}.jpg")
    assert uncertainty.shape == (image.height, image.width) and uncertainty.dtype == np.uint8


def test_direction_search_ranks_every_discovered_direction(demo_run: DemoRun) -> None:
    root = demo_run.workdir.path / "results/directions/tiny"
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


PREPARE_BOTH = [_job("prepare_dataset", dataset=s) for s in DEMO_SPLITS]
SCENE_SPLITS = ("SCENE-TR", "SCENE-TE")
PREPARE_SCENES = [*(_job("prepare_dataset", dataset=s) for s in SCENE_SPLITS), "scene_baseline"]
DEMO_BOTH = [_job("demo_split", split=s) for s in DEMO_SPLITS]
SHARDS = ("00000", "00001")


def _run_jobs(run: str, shards=SHARDS) -> list[str]:
    return [*(_job("sample", run=run, shard=k) for k in shards), _job("shard_manifest", run=run)]


SODGAN_RUN = [_job("sample_calibrate", run="sodgan"), *_run_jobs("sodgan")]
EBIG_RUN = _run_jobs("ebigbigan")  # direction shift near the DEN's inverted latents
GMASK = [_job("gmask_train", gen="tiny"), *SODGAN_RUN]
FEWSHOT = [_job("fewshot_select", gen="tiny"), *GMASK]
INVERT = [_job("den_invert", gen="tiny"), *FEWSHOT, *EBIG_RUN]
SODGAN = [_job("den_train", gen="tiny"), *INVERT]  # the chain that learns from DEMO-TR


def _sod(sod: str) -> list[str]:
    """A SOD training, its prediction and evaluation on the demo benchmark (the summary comes once)."""
    return [
        _job("sod_train", sod=sod),
        _job("sod_predict", sod=sod, bench="DEMO-TE"),
        _job("evaluate", sod=sod, bench="DEMO-TE"),
    ]


def _refined(base: str, coop: str = "coop") -> list[str]:
    """A training's predictions refined by a coop model's EBM, and their evaluation."""
    return [
        _job("ebm_refine", base=base, coop=coop, bench="DEMO-TE"),
        _job("evaluate", sod=f"{base}+{coop}", bench="DEMO-TE"),
    ]


REFINED = _refined("unet-synthetic")  # sod.unet-synthetic.refine_with: [coop]
COOP = [
    _job("sod_train", sod="coop"),
    _job("coop_predict", sod="coop", bench="DEMO-TE"),
    _job("evaluate", sod="coop", bench="DEMO-TE"),
    *REFINED,
]
SYN = [*_sod("unet-synthetic"), *REFINED, *COOP[:3]]  # every training on the synthetic runs
ATAL = [_job("atal_train", sod="unet-atal"), *_sod("unet-atal")[1:]]
REAL = [*_sod("unet-real"), *ATAL]  # every training on DEMO-TR
BENCH = [
    *(
        _job(rule, sod=sod, bench="DEMO-TE")
        for sod in ("unet-synthetic", "unet-real", "unet-atal")
        for rule in ("sod_predict", "evaluate")
    ),
    *COOP[1:],
]
DOWNSTREAM = ["summarize", "all"]
DIRECTIONS = [_job("directions_discover", gen="tiny"), _job("directions_rank", gen="tiny")]


def with_report(jobs: list[str]) -> list[str]:
    """``jobs`` plus the report figures (rules/report.smk) that read their outputs: a run's figures follow
    its manifest; the dataset statistics every manifest, DEMO-TR and the DEN's latents; the training
    curves every training."""
    rules = {job.split("[")[0] for job in jobs}
    figures = [
        _job("report_run", run=run) for run in ("sodgan", "ebigbigan") if _job("shard_manifest", run=run) in jobs
    ]
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
    "prepare.max_bad_fraction": (
        (("prepare", "max_bad_fraction"), 0.2),
        [*PREPARE_BOTH, *PREPARE_SCENES, *SODGAN, *SYN, *REAL, *DOWNSTREAM],
    ),
    "demo.splits.DEMO-TE.size": (
        (("demo", "splits", "DEMO-TE", "size"), SMALL_SPLIT_SIZES["DEMO-TE"] + 1),
        [_job("demo_split", split="DEMO-TE"), _job("prepare_dataset", dataset="DEMO-TE"), *BENCH, *DOWNSTREAM],
    ),
    "demo.mask.blur_sigma": (
        (("demo", "mask", "blur_sigma"), 3.0),
        [*DEMO_BOTH, *PREPARE_BOTH, *SODGAN, *SYN, *REAL, *DOWNSTREAM],
    ),
    "generators.tiny.seed": (
        (("generators", "tiny", "seed"), 1),
        [
            _job("tiny_generator", gen="tiny"),
            _job("direction_contrast", gen="tiny"),
            *DIRECTIONS,
            *DEMO_BOTH,
            *PREPARE_BOTH,
            *SODGAN,
            *SYN,
            *REAL,
            *DOWNSTREAM,
        ],
    ),
    "den.steps": ((("den", "steps"), 6), [*SODGAN, *SYN, *DOWNSTREAM]),
    # the scene world: a split, the generator's evaluation, the baseline, each alone
    "scenes.splits.SCENE-TE.size": (
        (("scenes", "splits", "SCENE-TE", "size"), 9),
        [_job("scene_split", split="SCENE-TE"), _job("prepare_dataset", dataset="SCENE-TE"), "scene_baseline", "all"],
    ),
    "scenes.quality.samples": ((("scenes", "quality", "samples"), 24), [_job("generator_quality", gen="scene"), "all"]),
    "scenes.baseline.recipe.steps": ((("scenes", "baseline", "recipe", "steps"), 4), ["scene_baseline", "all"]),
    # training settings of shipped weights are not read; weights: null trains the generator in the DAG
    "generators.scene.train.lr_d": ((("generators", "scene", "train"), {"lr_d": 1e-3}), []),
    "generators.scene.weights=null": (
        (("generators", "scene", "weights"), None),
        [_job("generator_train", gen="scene"), _job("generator_quality", gen="scene"), "all"],
    ),
    "den.invert.refine_steps": ((("den", "invert", "refine_steps"), 3), [*INVERT, *SYN, *DOWNSTREAM]),
    "fewshot.size": ((("fewshot", "size"), 5), [*FEWSHOT, *SYN, *DOWNSTREAM]),
    "gmask.head": ((("gmask", "head"), "mlp-m"), [*GMASK, *SYN, *DOWNSTREAM]),
    # a run's size only adds shards: the calibration and the finished shards stay
    "runs.sodgan.pairs": (
        (("runs", "sodgan", "pairs"), 8),
        [_job("sample", run="sodgan", shard="00002"), _job("shard_manifest", run="sodgan"), *SYN, *DOWNSTREAM],
    ),
    "runs.ebigbigan.mask.shift": ((("runs", "ebigbigan", "mask", "shift"), 4.0), [*EBIG_RUN, *SYN, *DOWNSTREAM]),
    "directions.contrast.iterations": (
        (("directions", "contrast", "iterations"), 6),
        [_job("direction_contrast", gen="tiny"), *EBIG_RUN, *SYN, *DOWNSTREAM],
    ),
    "directions.discover.steps": ((("directions", "discover", "steps"), 3), [*DIRECTIONS, "all"]),
    "directions.search.top": ((("directions", "search", "top"), 3), [DIRECTIONS[1], "all"]),
    # the searched direction feeds a run: only that run and what trains on it re-run
    "runs.ebigbigan.mask.direction=search": (
        (("runs", "ebigbigan", "mask", "direction"), "search"),
        [*EBIG_RUN, *SYN, *DOWNSTREAM],
    ),
    "sod.unet-real.recipe.steps": ((("sod", "unet-real", "recipe", "steps"), 4), [*_sod("unet-real"), *DOWNSTREAM]),
    "sod.unet-real.eval_size": (
        (("sod", "unet-real", "eval_size"), 48),
        [*_sod("unet-real")[1:], *DOWNSTREAM],
    ),  # the trained model stays
    "sod.unet-atal.active.budget": ((("sod", "unet-atal", "active", "budget"), 9), [*ATAL, *DOWNSTREAM]),
    # ATAL's choice of the few-shot set: the trained unet-atal ranks the DEMO-TR images
    "fewshot.strategy=uncertain": (
        (
            ("fewshot",),
            {"strategy": "uncertain", "size": 6, "class_file": None, "seed": 0, "uncertainty": {"model": "unet-atal"}},
        ),
        [*FEWSHOT, *SYN, *DOWNSTREAM],
    ),
    # the uncertainty settings of a strategy not in use change nothing
    "fewshot.uncertainty.eps": ((("fewshot", "uncertainty", "eps"), 0.1), []),
    "sod_reference": ((("sod_reference",), "unet-synthetic"), DOWNSTREAM),
    "sod.coop.recipe.steps": ((("sod", "coop", "recipe", "steps"), 4), [*COOP, *DOWNSTREAM]),
    "sod.coop.coop.temperature": ((("sod", "coop", "coop", "temperature"), 0.5), [*COOP, *DOWNSTREAM]),
    # refinement rows come and go without touching any training or prediction
    "sod.unet-synthetic.refine_with": ((("sod", "unet-synthetic", "refine_with"), []), DOWNSTREAM),
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
    workdir = tmp_path / "empty"
    workdir.mkdir()
    paper_yaml = REPO / "configs" / "paper.yaml"
    paper = yaml.safe_load(paper_yaml.read_text())
    # configs/paper.yaml is applied on top of config.yaml (see its header).
    result = run_snakemake(workdir, "-n", configfiles=(REPO / "config.yaml", paper_yaml))

    assert result.returncode != 0, result.describe()
    out = result.output
    assert "synthsod cannot start; these inputs are missing" in out, result.describe()
    used = [paper["train_dataset"], *paper["benchmarks"]]
    assert sorted(used) == sorted(["DUTS-TR", "DUTS-TE", "DUT-OMRON", "ECSSD", "HKU-IS", "PASCAL-S"])
    for name in used:
        for role in ("images", "masks"):
            folder = paper["datasets"][name][role]
            assert f"dataset {name}: {role} folder {folder} does not exist" in out, result.describe()
    weights = paper["generators"][paper["generator"]]["weights"]
    weights_lines = [line for line in out.splitlines() if weights in line]
    assert weights_lines, result.describe()
    assert "pytorch_model.bin" in weights_lines[0] and "config.json" in weights_lines[0]
    assert "biggan-deep-128" not in out  # defined, but no stage uses it
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
        "sod_predict": 3,
        "coop_predict": 1,
        "ebm_refine": 1,
        "evaluate": 5,
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


def test_two_runs_write_identical_demo_splits_and_manifests(demo_runs: tuple[DemoRun, DemoRun]) -> None:
    for run in demo_runs:
        assert run.result.returncode == 0, run.result.describe()
    first, second = (run.workdir.path / "results" for run in demo_runs)
    scene_splits = TEST_CONFIG["scenes"]["splits"]
    expected = {
        "demo": sum(SMALL_SPLIT_SIZES.values()) * 2,  # images and masks
        "scenes": sum(spec["size"] for spec in scene_splits.values()) * 2 + 1,  # and baseline.json
        "data": (len(DEMO_SPLITS) + len(scene_splits)) * 2,  # manifest and bad-input list per dataset
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


def test_two_runs_write_identical_generator_weights(demo_runs: tuple[DemoRun, DemoRun]) -> None:
    """The tiny generator's from_pretrained files are byte-identical too (not only its samples)."""
    first, second = (run.workdir.path / "results/generators/tiny" for run in demo_runs)
    hashes = file_hashes(first)
    assert sorted(hashes) == ["config.json", "pytorch_model.bin"]
    assert hashes == file_hashes(second)
