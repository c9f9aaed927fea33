# The synthetic data factory: named sampling runs (config runs:) -> Parquet shards, manifest, filter report.
# One `sample` job per shard index (resources gpu=1), so N GPUs fill a run in parallel. A shard's params
# hold its own row count, not the run's size: raising `pairs` only adds shards.


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


def sampling_targets():
    return [f"results/synthetic/{run}/manifest.json" for run in config["runs"]]


def run_files(run):
    """The files a run's sample and calibration jobs read (the keys of synthsod.runs.RunFiles)."""
    spec, gen = run_spec(run), run_spec(run)["generator"]
    bigbigan = run_generator(run)["model"] == BIGBIGAN
    files = {"weights": bigbigan_module_file(gen) if bigbigan else generator_weight_files(gen)}
    if spec["mask"]["method"] == "gmask":
        files["gmask"] = f"results/gmask/{gen}/gmask.pt"
    else:
        direction = spec["mask"]["direction"]
        files["direction"] = f"results/directions/{gen}/contrast.npy" if direction == "contrast" else direction
    if spec["filters"]["dq"] is not None:
        files["dq"] = f"results/gmask/{gen}/dq.pt"
    if spec["latents"]["source"] == "inverted":
        dataset = spec["latents"]["dataset"] or config["train_dataset"]
        files["latents"] = (f"results/bigbigan/{dataset}/embeddings.parquet" if bigbigan
                            else f"results/den/{gen}/latents.parquet")
    return files


def shard_params(wildcards):
    """A shard's settings: the run's minus `pairs`, plus this shard's row count."""
    spec = run_spec(wildcards.run)
    return {**without(spec, "pairs"), "rows": shard_rows(spec["pairs"], spec["rows_per_shard"], int(wildcards.shard))}


def calibration_file(wildcards):
    dq = run_spec(wildcards.run)["filters"]["dq"]
    return [f"results/synthetic/{wildcards.run}/dq_calibration.json"] if dq and dq["keep_top"] is not None else []


rule direction_contrast:
    input:
        weights=lambda w: generator_weight_files(w.gen),
    output:
        direction="results/directions/{gen}/contrast.npy",
    params:
        contrast=config["directions"]["contrast"],
        generator=lambda w: config["generators"][w.gen],
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
    resources:
        gpu=1,
    log:
        log_path("direction_contrast", "{gen}"),
    benchmark:
        benchmark_path("direction_contrast", "{gen}")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/direction_contrast.py"


rule sample_calibrate:
    input:
        unpack(lambda w: run_files(w.run)),
    output:
        calibration="results/synthetic/{run}/dq_calibration.json",
    params:
        run=lambda w: without(run_spec(w.run), "pairs"),
        generator=lambda w: run_generator(w.run),
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=False)),
    resources:
        gpu=1,
    log:
        log_path("sample_calibrate", "{run}"),
    benchmark:
        benchmark_path("sample_calibrate", "{run}")
    conda:
        "../envs/torch.yaml"
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
    params:
        run=shard_params,
        generator=lambda w: run_generator(w.run),
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=False)),
        shard=r"\d{5}",
    resources:
        gpu=1,
    log:
        log_path("sample", "{run}/{shard}"),
    benchmark:
        benchmark_path("sample", "{run}/{shard}")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/sample.py"


use rule sample as sample_bigbigan with:
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=True)),
        shard=r"\d{5}",
    log:
        log_path("sample_bigbigan", "{run}/{shard}"),
    benchmark:
        benchmark_path("sample_bigbigan", "{run}/{shard}")
    conda:
        "../envs/tf.yaml"


rule bigbigan_embed:
    input:
        manifest="results/data/{dataset}/manifest.parquet",
        module=lambda w: bigbigan_module_file(bigbigan_generator()),
    output:
        embeddings="results/bigbigan/{dataset}/embeddings.parquet",
    params:
        generator=lambda w: config["generators"][bigbigan_generator()],
        embed=config["bigbigan"],
    wildcard_constraints:
        dataset=_name_pattern(config["datasets"]),
    resources:
        gpu=1,
    log:
        log_path("bigbigan_embed", "{dataset}"),
    benchmark:
        benchmark_path("bigbigan_embed", "{dataset}")
    conda:
        "../envs/tf.yaml"
    script:
        "../workflow_scripts/bigbigan_embed.py"


rule shard_manifest:
    input:
        shards=lambda w: expand("results/synthetic/{run}/{stem}.parquet", run=w.run, stem=run_shard_stems(w.run)),
        stats=lambda w: expand("results/synthetic/{run}/stats/{stem}.json", run=w.run, stem=run_shard_stems(w.run)),
    output:
        manifest="results/synthetic/{run}/manifest.json",
        report="results/synthetic/{run}/filter_report.json",
    params:
        run=lambda w: run_spec(w.run),
        generator=lambda w: run_generator(w.run),
    wildcard_constraints:
        run=_name_pattern(config["runs"]),
    log:
        log_path("shard_manifest", "{run}"),
    benchmark:
        benchmark_path("shard_manifest", "{run}")
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/shard_manifest.py"
