# Helpers shared by the rules: which datasets and generators the targets use, and where things live.
# Rules only wire files; every rule passes the config section it reads as params.

import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from synthsod.data import fetch as fetching
from synthsod.errors import SynthsodError
from synthsod.names import (
    BIGBIGAN,
    BUILT_MODELS,
    COOP,
    CONTRAST,
    DATASET_FIGURES,
    DEN_MODES,
    SCENE,
    SEARCH,
    TINY,
    WEIGHT_FILES,
    shard_count,
    shard_rows,
)
from synthsod.pipelines import STAGES, complete_runs, resolve_pipelines, stage_keys, stage_owners
from synthsod.sweeps import expand_sweeps
from synthsod.workflow import (
    config_problems,
    format_missing,
    format_problems,
    missing_inputs,
    searched_generators,
)

# Sweeps become runs and trainings; the named SODGAN pipelines get their stage keys; each run gets its
# pipeline's generator.
try:
    SWEEPS = expand_sweeps(config)
    PIPELINES = resolve_pipelines(config)
except SynthsodError as err:
    raise WorkflowError(f"config: {err}") from None
STAGE_OWNERS = {stage: stage_owners(PIPELINES, stage) for stage in STAGES}
_run_problems = complete_runs(config, PIPELINES)


def log_path(rule_name, stem):
    return f"results/logs/{rule_name}/{stem}.log"


def benchmark_path(rule_name, stem):
    return f"results/benchmarks/{rule_name}/{stem}.tsv"


def used_datasets():
    sod = [
        name for spec in config["sod"].values() for name in [*spec["train"]["datasets"], *(spec["benchmarks"] or [])]
    ]
    return list(dict.fromkeys([config["train_dataset"], *config["benchmarks"], *sod]))


def used_generators():
    runs = [spec["generator"] for spec in config["runs"].values()]
    return sorted({*(p.generator for p in PIPELINES.values()), *runs, *searched_generators(config)})


def built_generators(model=None):
    """Generators the workflow builds itself (tiny or scene models without a weights directory), or only
    those of ``model``."""
    return [
        name
        for name, spec in config["generators"].items()
        if spec["model"] in BUILT_MODELS and spec["weights"] is None and model in (None, spec["model"])
    ]


def scene_generators():
    """Generators trained on the scene world (shipped or built): each gets a quality evaluation."""
    return [name for name, spec in config["generators"].items() if spec["model"] == SCENE]


def generator_weight_files(name):
    """The weight files a rule using generator `name` depends on ([] for the package cache)."""
    spec = config["generators"][name]
    if name in built_generators():
        return [f"results/generators/{name}/{f}" for f in WEIGHT_FILES]
    if spec["weights"] is not None:
        return [str(Path(spec["weights"]) / f) for f in WEIGHT_FILES]
    return []


def prepared_manifests():
    return expand("results/data/{dataset}/manifest.parquet", dataset=used_datasets())


def without(section, *keys):
    """A config section minus the sub-sections another rule reads (so each rule gets only its own keys)."""
    return {k: v for k, v in section.items() if k not in keys}


def scene_world(*keys):
    """The scene world's identity (seed, size) plus ``keys`` of the scenes: section."""
    return {k: config["scenes"][k] for k in ("seed", "size", *keys)}


ORACLE_BUILT = "results/scenes/oracle/oracle.pt"  # where rule oracle_train writes it


def oracle_file():
    """The reference segmenter: the configured file, or the one the workflow trains."""
    return config["scenes"]["oracle"]["weights"] or ORACLE_BUILT


def scene_split_folders():
    return {f"results/scenes/{split}/{role}" for split in config["scenes"]["splits"] for role in ("images", "masks")}


def run_spec(run):
    return config["runs"][run]


def run_generator(run):
    return config["generators"][run_spec(run)["generator"]]


def generator_params(name):
    """Generator ``name``'s settings as the rules that use it read them: its ``train`` section only matters to
    generator_train, so retuning it (shipped weights never read it) re-runs nothing else."""
    return without(config["generators"][name], "train")


def run_shard_stems(run):
    spec = run_spec(run)
    return [f"shard-{k:05d}" for k in range(shard_count(spec["pairs"], spec["rows_per_shard"]))]


def run_shard_files(run, kind="", ext="parquet"):
    """One file per shard of a run: the shards themselves, or their ``stats/`` or ``rejected/`` files."""
    folder = Path("results/synthetic", run, kind)
    return [str(folder / f"{stem}.{ext}") for stem in run_shard_stems(run)]


def sod_benchmarks(sod):
    return config["sod"][sod]["benchmarks"] or config["benchmarks"]


# The SODGAN chain (scene splits and their preparation, DEN, inversion, few-shot set, G_mask, sampling) is the
# DAG's longest path: its jobs go first when the scheduler has a choice, so the trainings that need none of it
# fill the other slots meanwhile.
SODGAN_CHAIN_PRIORITY = 10

# Categories of the HTML report (snakemake --report), shared by the rule files that add figures to it.
REPORT_SAMPLES, REPORT_FILTERS, REPORT_STATISTICS = "Synthetic samples", "Filters", "Dataset statistics"
REPORT_TRAINING, REPORT_BENCHMARK, REPORT_DIRECTIONS = "Training", "Benchmark", "Directions"
REPORT_ABLATIONS = "Ablations"


def _name_pattern(names):
    return "|".join(map(re.escape, names)) or "(?!)"


def download_paths():
    """Every path a download provides -> the download's name: its targets and, inside a target folder, the
    files rules read there (a generator's weight files or BigBiGAN module), which its fetch rule declares too."""
    paths = {target: name for name, spec in config["downloads"].items() for target in fetching.targets(spec)}
    for spec in config["generators"].values():
        folder = spec.get("weights") and os.path.normpath(spec["weights"])
        if folder in paths and fetching.is_archive(config["downloads"][paths[folder]]):
            files = ["saved_model.pb"] if spec["model"] == BIGBIGAN else WEIGHT_FILES
            paths.update({os.path.join(folder, name): paths[folder] for name in files})
    return paths


DOWNLOAD_PATHS = download_paths()


# Stop before any job when the config is inconsistent or user-supplied inputs are missing: one message
# listing all of them.
# A path that a download provides counts as made when fetch.enabled (its fetch job runs first); offline, the
# message also says which download would provide each missing one.
_problems = _run_problems or [  # the run checks need every run's generator
    *config_problems(config),
    *fetching.download_problems(config["downloads"]),
]
if _problems:
    raise WorkflowError(format_problems(_problems))
_offline = {}  # missing path -> the download that would provide it (fetch.enabled: false)
_to_fetch = {}  # missing path -> the download that provides it (fetch.enabled: true)


def _produced(path):
    if path in scene_split_folders():
        return True
    name = DOWNLOAD_PATHS.get(os.path.normpath(path))
    if name is not None and not Path(path).exists():
        (_to_fetch if config["fetch"]["enabled"] else _offline)[path] = name
    return name is not None and config["fetch"]["enabled"]


_missing = missing_inputs(
    config,
    used_datasets(),
    [*used_generators(), *(scene_generators() if config["scenes"]["quality"]["enabled"] else [])],
    produced=_produced,
)
# offline with fetching on: the hosts of what must be fetched accept no connection
_unreachable = set(fetching.unreachable_urls({config["downloads"][name]["url"] for name in _to_fetch.values()}))
_hints = [fetching.offline_hint(name, config["downloads"][name], path) for path, name in _offline.items()]
_hints += [
    fetching.offline_hint(name, config["downloads"][name], path, unreachable=True)
    for path, name in _to_fetch.items()
    if config["downloads"][name]["url"] in _unreachable
]
if _missing or _hints:
    raise WorkflowError(format_missing([*_missing, *_hints]))
