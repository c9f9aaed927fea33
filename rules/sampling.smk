# The synthetic data factory: named sampling runs (config runs:) -> Parquet shards, manifest, filter report.
# One `sample` job per shard index (resources gpu=1), so N GPUs fill a run in parallel. A shard's params
# hold its own row count, not the run's size: raising `pairs` only adds shards. A run's `threads` are the
# jobs' threads, not params: the bytes do not depend on them, so changing them re-runs nothing.


rule sample_calibrate:
    input:
        unpack(lambda w: run_files(w.run)),
    output:
        calibration="results/synthetic/{run}/dq_calibration.json",
        candidates="results/synthetic/{run}/dq_calibration.parquet",
    log:
        log_path("sample_calibrate", "{run}"),
    benchmark:
        benchmark_path("sample_calibrate", "{run}")
    wildcard_constraints:
        run=_name_pattern(runs_on(tensorflow=False)),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    threads: lambda w: run_spec(w.run)["threads"]
    resources:
        gpu=1,
    params:
        run=lambda w: without(run_spec(w.run), "pairs", "threads"),
        generator=lambda w: generator_params(run_spec(w.run)["generator"]),
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
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    threads: lambda w: run_spec(w.run)["threads"]
    resources:
        gpu=1,
    params:
        run=shard_params,
        generator=lambda w: generator_params(run_spec(w.run)["generator"]),
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
        run=lambda w: without(run_spec(w.run), "threads"),
        generator=lambda w: generator_params(run_spec(w.run)["generator"]),
    script:
        "../workflow_scripts/shard_manifest.py"
