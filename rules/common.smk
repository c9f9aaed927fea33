# Helpers shared by the rules: which datasets and generators the targets use, and where things live.
# Rules only wire files; every rule passes the config section it reads as params.

import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from synthsod.names import (
    BIGBIGAN,
    BUILT_MODELS,
    COOP,
    CONTRAST,
    DATASET_FIGURES,
    SCENE,
    SEARCH,
    TINY,
    WEIGHT_FILES,
    shard_count,
    shard_rows,
)
from synthsod.workflow import (
    config_problems,
    format_missing,
    format_problems,
    missing_inputs,
    searched_generators,
)


def log_path(rule_name, stem):
    return f"results/logs/{rule_name}/{stem}.log"


def benchmark_path(rule_name, stem):
    return f"results/benchmarks/{rule_name}/{stem}.tsv"


def used_datasets():
    sod = [
        name for spec in config["sod"].values() for name in [*spec["train"]["datasets"], *(spec["benchmarks"] or [])]
    ]
    return list(dict.fromkeys([config["train_dataset"], *config["benchmarks"], *sod]))


def demo_split_folders():
    """Dataset folders that the demo rule writes (so they need not exist before the run)."""
    return {f"results/demo/{split}/{role}" for split in config["demo"]["splits"] for role in ("images", "masks")}


def used_generators():
    uses_demo = any(config["datasets"].get(name, {}).get("images") in demo_split_folders() for name in used_datasets())
    runs = [spec["generator"] for spec in config["runs"].values()]
    return sorted(
        {
            config["generator"],
            *runs,
            *searched_generators(config),
            *([config["demo"]["generator"]] if uses_demo else []),
        }
    )


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


def bigbigan_module_file(name):
    """The file a BigBiGAN generator's rules depend on: the SavedModel in its weights directory."""
    return f"{config['generators'][name]['weights']}/saved_model.pb"


def bigbigan_generator():
    """The BigBiGAN generator that embeds datasets (results/bigbigan/ holds one module's embeddings)."""
    names = [name for name, spec in config["generators"].items() if spec["model"] == BIGBIGAN]
    if len(names) != 1:
        raise WorkflowError(f"BigBiGAN embeddings need exactly one generator with model: bigbigan, found {names}")
    return names[0]


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


def train_manifest():
    return f"results/data/{config['train_dataset']}/manifest.parquet"


def sodgan_targets():
    return [f"results/gmask/{config['generator']}/train_metrics.json"]


def without(section, *keys):
    """A config section minus the sub-sections another rule reads (so each rule gets only its own keys)."""
    return {k: v for k, v in section.items() if k not in keys}


def demo_mask_oracle():
    """The demo's sampling settings and mask rule when the training set is a demo split of the SODGAN
    generator (then the rule applied to G(z⁺) is an exact reference for G_mask), else None."""
    images = config["datasets"][config["train_dataset"]]["images"]
    demo = config["demo"]
    if images not in demo_split_folders() or demo["generator"] != config["generator"]:
        return None
    return without(demo, "splits", "jpeg_quality", "generator")


# --- the scene world (rules/scenes.smk) ---
def scene_split_folders():
    return {f"results/scenes/{split}/{role}" for split in config["scenes"]["splits"] for role in ("images", "masks")}


def scene_targets():
    scenes = config["scenes"]
    return [
        *(
            expand("results/generators/{gen}/quality.json", gen=scene_generators())
            if scenes["quality"]["enabled"]
            else []
        ),
        *(["results/scenes/baseline.json"] if scenes["baseline"]["enabled"] else []),
    ]


# --- sampling runs (rules/sampling.smk) ---
def run_spec(run):
    return config["runs"][run]


def run_generator(run):
    return config["generators"][run_spec(run)["generator"]]


def runs_on(tensorflow):
    """Run names whose generator is (or is not) BigBiGAN, which samples in the TensorFlow env."""
    return [run for run in config["runs"] if (run_generator(run)["model"] == BIGBIGAN) == tensorflow]


def run_shard_stems(run):
    spec = run_spec(run)
    return [f"shard-{k:05d}" for k in range(shard_count(spec["pairs"], spec["rows_per_shard"]))]


def run_shard_files(run, kind="", ext="parquet"):
    """One file per shard of a run: the shards themselves, or their ``stats/`` or ``rejected/`` files."""
    folder = Path("results/synthetic", run, kind)
    return [str(folder / f"{stem}.{ext}") for stem in run_shard_stems(run)]


def sampling_targets():
    return [f"results/synthetic/{run}/manifest.json" for run in config["runs"]]


# --- latent directions (rules/directions.smk) ---
def torch_generators():
    return [name for name, spec in config["generators"].items() if spec["model"] != BIGBIGAN]


def bigbigan_generators():
    return [name for name, spec in config["generators"].items() if spec["model"] == BIGBIGAN]


def direction_file(gen, direction):
    """A run's mask.direction as a file: the built ones live under results/directions/{gen}/."""
    return f"results/directions/{gen}/{direction}.npy" if direction in (CONTRAST, SEARCH) else direction


def candidate_directions(gen):
    """The directions the search ranks: a user file (BigBiGAN's must be), else the discovered ones."""
    return config["directions"]["search"]["candidates"].get(gen, f"results/directions/{gen}/directions.pt")


def search_weight_files(gen):
    return [bigbigan_module_file(gen)] if gen in bigbigan_generators() else generator_weight_files(gen)


def direction_targets():
    return [f"results/directions/{gen}/ranking.csv" for gen in searched_generators(config)]


def run_files(run):
    """The files a run's sample and calibration jobs read (the keys of synthsod.synthesis.runs.RunFiles)."""
    spec, gen = run_spec(run), run_spec(run)["generator"]
    bigbigan = run_generator(run)["model"] == BIGBIGAN
    files = {"weights": bigbigan_module_file(gen) if bigbigan else generator_weight_files(gen)}
    if spec["mask"]["method"] == "gmask":
        files["gmask"] = f"results/gmask/{gen}/gmask.pt"
    else:
        files["direction"] = direction_file(gen, spec["mask"]["direction"])
    if spec["filters"]["dq"] is not None:
        files["dq"] = f"results/gmask/{gen}/dq.pt"
    if spec["latents"]["source"] == "inverted":
        dataset = spec["latents"]["dataset"] or config["train_dataset"]
        files["latents"] = (
            f"results/bigbigan/{dataset}/embeddings.parquet" if bigbigan else f"results/den/{gen}/latents.parquet"
        )
    return files


def shard_params(wildcards):
    """A shard's settings: the run's minus `pairs`, plus this shard's row count."""
    spec = run_spec(wildcards.run)
    return {**without(spec, "pairs"), "rows": shard_rows(spec["pairs"], spec["rows_per_shard"], int(wildcards.shard))}


def calibration_file(wildcards):
    dq = run_spec(wildcards.run)["filters"]["dq"]
    return [f"results/synthetic/{wildcards.run}/dq_calibration.json"] if dq and dq["keep_top"] is not None else []


def fewshot_params():
    """The few-shot settings; the uncertainty model's (with its prediction size) only for 'uncertain'."""
    fewshot = config["fewshot"]
    if fewshot["strategy"] != "uncertain":
        return without(fewshot, "uncertainty")
    return {
        **fewshot,
        "uncertainty": {**fewshot["uncertainty"], "size": config["sod"][fewshot["uncertainty"]["model"]]["eval_size"]},
    }


def fewshot_uncertainty_model():
    """The SOD model whose uncertainty ranks the images (strategy 'uncertain' only)."""
    fewshot = config["fewshot"]
    return [f"results/sod/{fewshot['uncertainty']['model']}/model.pt"] if fewshot["strategy"] == "uncertain" else []


# --- SOD trainings (rules/sod.smk) ---
def sod_benchmarks(sod):
    return config["sod"][sod]["benchmarks"] or config["benchmarks"]


def sod_kind(name):
    """coop (own prediction rule), active (ATAL: own training rule) or plain."""
    spec = config["sod"][name]
    return "coop" if spec["model"] == COOP else "active" if spec["active"] is not None else "plain"


def sod_names(*kinds):
    return [name for name in config["sod"] if sod_kind(name) in kinds]


def sod_train_params(wildcards):
    """A training's settings; eval_size and coop: shape only the coop model (eval_size is its EBM's size)."""
    spec = config["sod"][wildcards.sod]
    dropped = ["benchmarks", "refine_with"] + (["eval_size", "coop"] if spec["model"] != COOP else [])
    return without(spec, *dropped)


def refined_evaluations():
    """(base+coop, benchmark) pairs: a training's predictions refined by a coop model's EBM."""
    return [
        (f"{base}+{coop}", bench)
        for base, spec in config["sod"].items()
        for coop in spec["refine_with"]
        for bench in sod_benchmarks(base)
    ]


def sod_evaluations():
    """(training, benchmark) pairs the summary covers, refined predictions included."""
    return [(sod, bench) for sod in config["sod"] for bench in sod_benchmarks(sod)] + refined_evaluations()


def evaluation_names():
    return list(dict.fromkeys(sod for sod, _ in sod_evaluations()))


def sod_training_inputs(wildcards):
    train = config["sod"][wildcards.sod]["train"]
    return {
        "runs": [f"results/synthetic/{run}/manifest.json" for run in train["runs"]],
        "datasets": [f"results/data/{name}/manifest.parquet" for name in train["datasets"]],
    }


def sod_targets():
    return ["results/eval/summary.csv"] if config["sod"] else []


def _name_pattern(names):
    return "|".join(map(re.escape, names)) or "(?!)"


# Stop before any job when the config is inconsistent or user-supplied inputs are missing: one message
# listing all of them.
_problems = config_problems(config)
if _problems:
    raise WorkflowError(format_problems(_problems))
_missing = missing_inputs(
    config,
    used_datasets(),
    [*used_generators(), *(scene_generators() if config["scenes"]["quality"]["enabled"] else [])],
    produced=lambda path: path in demo_split_folders() | scene_split_folders(),
)
if _missing:
    raise WorkflowError(format_missing(_missing))


# --- the report's figures (rules/report.smk) ---
REPORT_SAMPLES, REPORT_FILTERS, REPORT_STATISTICS = "Synthetic samples", "Filters", "Dataset statistics"
REPORT_TRAINING, REPORT_BENCHMARK, REPORT_DIRECTIONS = "Training", "Benchmark", "Directions"


def dataset_statistics_inputs(wildcards):
    """Every run's shards against the real training set; its classes are the DEN's inferred ones."""
    return {
        "manifests": [f"results/synthetic/{run}/manifest.json" for run in config["runs"]],
        "shards": [path for run in config["runs"] for path in run_shard_files(run)],
        "dataset": f"results/data/{config['train_dataset']}/manifest.parquet",
        "classes": f"results/den/{config['generator']}/latents.parquet",
    }


def report_targets():
    runs = list(config["runs"])
    figures = [f"results/report/runs/{run}/samples.png" for run in runs]
    if runs:
        figures += ["results/report/filter_counts.png", "results/report/dataset/statistics.json"]
    if config["sod"]:
        figures.append("results/report/training_curves.png")
    return figures
