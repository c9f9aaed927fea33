# The synthetic data factory: named sampling runs (config runs:) -> Parquet shards, manifest, filter report.
# One `sample` job per shard index (resources gpu=1), so N GPUs fill a run in parallel. A shard's params
# hold its own row count, not the run's size: raising `pairs` only adds shards.


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
        shards=lambda w: run_shard_files(w.run),
        stats=lambda w: run_shard_files(w.run, "stats", "json"),
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
