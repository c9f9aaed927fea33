# Input functions and targets of rules/sod.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def sod_kind(name):
    """coop (own prediction rule), active (ATAL: own training rule) or plain."""
    spec = config["sod"][name]
    return "coop" if spec["model"] == COOP else "active" if spec["active"] is not None else "plain"


def sod_names(*kinds):
    return [name for name in config["sod"] if sod_kind(name) in kinds]


def sod_train_params(wildcards):
    """A training's settings; eval_size and coop: shape only the coop model (eval_size is its EBM's size),
    cas only a CAS training."""
    spec = config["sod"][wildcards.sod]
    dropped = ["benchmarks", "refine_with"] + (["eval_size", "coop"] if spec["model"] != COOP else [])
    dropped += ["cas"] if spec["loss"] != "cas" else []
    return without(spec, *dropped)


def sod_training_inputs(wildcards):
    spec = config["sod"][wildcards.sod]
    return {
        "runs": [f"results/synthetic/{run}/manifest.json" for run in spec["train"]["runs"]],
        "datasets": [f"results/data/{name}/manifest.parquet" for name in spec["train"]["datasets"]],
        "fetched": fetched_inputs(spec["backbone_weights"]),  # a downloaded backbone: fetched first
    }


def coop_refine_problems():
    """What is wrong with config coop_refine: (its model, its benchmarks, its names), one line each."""
    lines = []
    taken = {*config["sod"], *config["baselines"], *(name for name, _ in refined_evaluations())}
    for name, spec in config["coop_refine"].items():
        where = f"coop_refine.{name}"
        if name in taken:
            lines.append(f"{where}: '{name}' is already a training, baseline or refined row; rename it")
        if config["sod"].get(spec["model"], {}).get("model") != COOP:
            lines.append(f"{where}.model: '{spec['model']}' is not a coop training under sod:")
        for bench in spec["predictions"]:
            if bench not in config["datasets"]:
                lines.append(f"{where}.predictions: '{bench}' is not a dataset under datasets:")
    return lines


def coop_refine_evaluations():
    """(name, benchmark) pairs of the refined prediction folders (config coop_refine:), checked first."""
    problems = coop_refine_problems()
    if problems:
        raise WorkflowError(format_problems(problems))
    return [(name, bench) for name, spec in config["coop_refine"].items() for bench in spec["predictions"]]


def coop_refine_inputs(wildcards):
    """The folder of maps to refine, the coop model and the benchmark's manifest."""
    spec = config["coop_refine"][wildcards.refined]
    if wildcards.bench not in spec["predictions"]:
        raise WorkflowError(
            f"coop_refine.{wildcards.refined}: no predictions for {wildcards.bench} "
            f"(it lists {', '.join(spec['predictions'])})"
        )
    return {
        "base": spec["predictions"][wildcards.bench],
        "model": f"results/sod/{spec['model']}/model.pt",
        "manifest": f"results/data/{wildcards.bench}/manifest.parquet",
    }
