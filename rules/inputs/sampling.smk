# Input functions and targets of rules/sampling.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def runs_on(tensorflow):
    """Run names whose generator is (or is not) BigBiGAN, which samples in the TensorFlow env."""
    return [run for run in config["runs"] if (run_generator(run)["model"] == BIGBIGAN) == tensorflow]


def sampling_targets():
    return [f"results/synthetic/{run}/manifest.json" for run in config["runs"]]


def run_files(run):
    """The files a run's sample and calibration jobs read (the keys of synthsod.synthesis.runs.RunFiles)."""
    spec, gen = run_spec(run), run_spec(run)["generator"]
    bigbigan = run_generator(run)["model"] == BIGBIGAN
    files = {"weights": bigbigan_module_file(gen) if bigbigan else generator_weight_files(gen)}
    pipeline = spec.get("pipeline")  # complete_runs made sure runs that read a pipeline's files name one
    if spec["mask"]["method"] == "gmask":
        files["gmask"] = stage_file(pipeline, "gmask", "gmask.pt")
    else:
        files["direction"] = direction_file(gen, spec["mask"]["direction"])
    if spec["filters"]["dq"] is not None:
        files["dq"] = stage_file(pipeline, "gmask", "dq.pt")
    if spec["latents"]["source"] == "inverted":
        dataset = spec["latents"]["dataset"] or config["train_dataset"]
        files["latents"] = (
            f"results/bigbigan/{dataset}/embeddings.parquet"
            if bigbigan
            else stage_file(pipeline, "den", "latents.parquet")
        )
    return files


def shard_params(wildcards):
    """A shard's settings: the run's minus `pairs` and `threads` (the job's threads), plus this shard's row count."""
    spec = run_spec(wildcards.run)
    rows = shard_rows(spec["pairs"], spec["rows_per_shard"], int(wildcards.shard))
    return {**without(spec, "pairs", "threads"), "rows": rows}


def calibration_file(wildcards):
    dq = run_spec(wildcards.run)["filters"]["dq"]
    return [f"results/synthetic/{wildcards.run}/dq_calibration.json"] if dq and dq["keep_top"] is not None else []
