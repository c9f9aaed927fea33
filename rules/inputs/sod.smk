# Input functions and targets of rules/sod.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


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


def sod_training_inputs(wildcards):
    train = config["sod"][wildcards.sod]["train"]
    return {
        "runs": [f"results/synthetic/{run}/manifest.json" for run in train["runs"]],
        "datasets": [f"results/data/{name}/manifest.parquet" for name in train["datasets"]],
    }
