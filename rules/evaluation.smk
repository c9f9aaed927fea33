# Evaluation: every training's predictions on its benchmarks (the benchmark protocol), and the summary
# with the synthetic-vs-real ratio table.


rule evaluate:
    input:
        predictions="results/pred/{sod}/{bench}",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        metrics="results/eval/{sod}/{bench}/metrics.json",
        curves="results/eval/{sod}/{bench}/curves.csv",
    log:
        log_path("evaluate", "{sod}/{bench}"),
    benchmark:
        benchmark_path("evaluate", "{sod}/{bench}")
    wildcard_constraints:
        sod=_name_pattern(evaluation_names()),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/evaluate.py"


rule summarize:
    input:
        metrics=[f"results/eval/{sod}/{bench}/metrics.json" for sod, bench in sod_evaluations()],
        curves=[f"results/eval/{sod}/{bench}/curves.csv" for sod, bench in sod_evaluations()],
    output:
        csv="results/eval/summary.csv",
        md="results/eval/summary.md",
        html=report(
            "results/eval/summary.html",
            caption="../report/metrics.rst",
            category=REPORT_BENCHMARK,
            labels={"figure": "metrics table"},
        ),
        plot=report(
            "results/eval/pr_curves.png",
            caption="../report/pr_curves.rst",
            category=REPORT_BENCHMARK,
            labels={"figure": "PR and F curves"},
        ),
    log:
        log_path("summarize", "summary"),
    benchmark:
        benchmark_path("summarize", "summary")
    conda:
        "../envs/torch.yaml"
    params:
        reference=config["sod_reference"],
        evaluations=sod_evaluations(),
    script:
        "../workflow_scripts/summarize.py"
