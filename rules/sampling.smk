# The synthetic data factory: named sampling runs (config runs:) -> Parquet shards, manifest, filter report.
# One `sample` job per shard index (resources gpu=1), so N GPUs fill a run in parallel. A shard's params
# hold its own row count, not the run's size: raising `pairs` only adds shards.


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


rule sample_calibrate:
    input:
        unpack(lambda w: run_files(w.run)),
    output:
        calibration="results/synthetic/{run}/dq_calibration.json",
    log:
        log_path("sample_calibrate", "{run}"),
    benchmark:
        benchmark_path("sample_calibrate", "{run}")
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=False)),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        run=lambda w: without(run_spec(w.run), "pairs"),
        generator=lambda w: run_generator(w.run),
    script:
        "../workflow_scripts/sample.py"


rule sample:
    input:
        unpack(lambda w: run_files(w.run)),
        calibration=calibration_file,
    output:
        shard="results/synthetic/{run}/shard-{shard}.parquet",
        stats="results/synthetic/{run}/stats/shard-{shard}.json",
        rejected="results/synthetic/{run}/rejected/shard-{shard}.parquet",
    log:
        log_path("sample", "{run}/{shard}"),
    benchmark:
        benchmark_path("sample", "{run}/{shard}")
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=False)),
        shard=r"\d{5}",
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        run=shard_params,
        generator=lambda w: run_generator(w.run),
    script:
        "../workflow_scripts/sample.py"


use rule sample as sample_bigbigan with:
    log:
        log_path("sample_bigbigan", "{run}/{shard}"),
    benchmark:
        benchmark_path("sample_bigbigan", "{run}/{shard}")
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=True)),
        shard=r"\d{5}",
    conda:
        "../envs/tf.yaml"


rule shard_manifest:
    input:
        shards=lambda w: run_shard_files(w.run),
        stats=lambda w: run_shard_files(w.run, "stats", "json"),
    output:
        manifest="results/synthetic/{run}/manifest.json",
        report="results/synthetic/{run}/filter_report.json",
    log:
        log_path("shard_manifest", "{run}"),
    benchmark:
        benchmark_path("shard_manifest", "{run}")
    wildcard_constraints:
        run=_name_pattern(config["runs"]),
    conda:
        "../envs/data.yaml"
    params:
        run=lambda w: run_spec(w.run),
        generator=lambda w: run_generator(w.run),
    script:
        "../workflow_scripts/shard_manifest.py"
