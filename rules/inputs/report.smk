# Input functions and targets of rules/report.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def dataset_statistics_inputs(wildcards):
    """Every run's shards against the real training set; its classes are the DEN's inferred ones (when the
    config has a pipeline)."""
    files = {
        "manifests": [f"results/synthetic/{run}/manifest.json" for run in config["runs"]],
        "shards": [path for run in config["runs"] for path in run_shard_files(run)],
        "dataset": f"results/data/{config['train_dataset']}/manifest.parquet",
    }
    if config["pipeline"] is not None:
        files["classes"] = stage_file(config["pipeline"], "den", "latents.parquet")
    return files


def report_targets():
    runs = list(config["runs"])
    figures = [f"results/report/runs/{run}/samples.png" for run in runs]
    if runs:
        figures += ["results/report/filter_counts.png", "results/report/dataset/statistics.json"]
    if config["sod"]:
        figures.append("results/report/training_curves.png")
    return figures
