# Figures for the HTML report (`snakemake --report report.html`) -> results/report/. Each output is marked
# with report(): its category groups it in the report's menu, its caption (report/*.rst) says how to read it.
# The PR / F curves, the metrics table (rules/sod.smk) and the direction pictures (rules/directions.smk)
# are marked where they are made.


rule report_run:
    input:
        manifest="results/synthetic/{run}/manifest.json",
        shards=lambda w: run_shard_files(w.run),
        rejected=lambda w: run_shard_files(w.run, "rejected"),
        filter_report="results/synthetic/{run}/filter_report.json",
    output:
        samples=report(
            "results/report/runs/{run}/samples.png",
            caption="../report/samples.rst",
            category=REPORT_SAMPLES,
            labels={"run": "{run}"},
        ),
        rejected=report(
            "results/report/runs/{run}/rejected.png",
            caption="../report/rejected.rst",
            category=REPORT_FILTERS,
            labels={"run": "{run}", "figure": "rejected examples"},
        ),
    log:
        log_path("report_run", "{run}"),
    benchmark:
        benchmark_path("report_run", "{run}")
    wildcard_constraints:
        run=_name_pattern(config["runs"]),
    conda:
        "../envs/data.yaml"
    params:
        report=without(config["report"], "statistics"),
    script:
        "../workflow_scripts/report_run.py"


rule report_filters:
    input:
        reports=expand("results/synthetic/{run}/filter_report.json", run=config["runs"]),
    output:
        plot=report(
            "results/report/filter_counts.png",
            caption="../report/filter_counts.rst",
            category=REPORT_FILTERS,
            labels={"run": "all", "figure": "filter counts"},
        ),
    log:
        log_path("report_filters", "filters"),
    benchmark:
        benchmark_path("report_filters", "filters")
    conda:
        "../envs/data.yaml"
    params:
        runs=list(config["runs"]),
    script:
        "../workflow_scripts/report_filters.py"


rule report_dataset:
    input:
        unpack(dataset_statistics_inputs),
    output:
        **{
            name: report(
                f"results/report/dataset/{name}.png",
                caption=f"../report/{name}.rst",
                category=REPORT_STATISTICS,
                labels={"figure": name.replace("_", " ")},
            )
            for name in DATASET_FIGURES
        },
        summary="results/report/dataset/statistics.json",
    log:
        log_path("report_dataset", "statistics"),
    benchmark:
        benchmark_path("report_dataset", "statistics")
    conda:
        "../envs/data.yaml"
    params:
        statistics=config["report"]["statistics"],
        runs=list(config["runs"]),
        dataset=config["train_dataset"],
    script:
        "../workflow_scripts/report_dataset.py"


rule report_training:
    input:
        logs=expand("results/sod/{sod}/train_log.csv", sod=config["sod"]),
    output:
        plot=report(
            "results/report/training_curves.png",
            caption="../report/training.rst",
            category=REPORT_TRAINING,
            labels={"figure": "loss curves"},
        ),
    log:
        log_path("report_training", "training"),
    benchmark:
        benchmark_path("report_training", "training")
    conda:
        "../envs/data.yaml"
    params:
        trainings=list(config["sod"]),
    script:
        "../workflow_scripts/report_training.py"
