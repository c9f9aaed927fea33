# Evaluation: every training's predictions on its benchmarks (the benchmark protocol, evaluation.protocol:
# pysodmetrics or ebigbigan), and the summary with the synthetic-vs-real ratio table.


rule baseline_predict:
    input:
        manifest="results/data/{bench}/manifest.parquet",
    output:
        predictions=directory("results/pred/{baseline}/{bench}"),
    log:
        log_path("baseline_predict", "{baseline}/{bench}"),
    benchmark:
        benchmark_path("baseline_predict", "{baseline}/{bench}")
    wildcard_constraints:
        baseline=_name_pattern(config["baselines"]),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/data.yaml"
    script:
        "../workflow_scripts/baseline_predict.py"


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
    params:
        protocol=config["evaluation"]["protocol"],
    script:
        "../workflow_scripts/evaluate.py"


rule summarize:
    input:
        metrics=[f"results/eval/{sod}/{bench}/metrics.json" for sod, bench in sod_evaluations()],
        curves=[f"results/eval/{sod}/{bench}/curves.csv" for sod, bench in sod_evaluations()],
        scorecard=scorecard_file(),
        sweeps=[f"results/eval/sweeps/{sweep}.csv" for sweep in SWEEPS],
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


rule oracle_audit:
    input:
        unpack(oracle_audit_inputs),
    output:
        audit="results/eval/oracle/{run}.json",
    log:
        log_path("oracle_audit", "{run}"),
    benchmark:
        benchmark_path("oracle_audit", "{run}")
    wildcard_constraints:
        run=_name_pattern(oracle_runs()),
    conda:
        "../envs/torch.yaml"
    params:
        sha256=config["scenes"]["oracle"]["sha256"],
    script:
        "../workflow_scripts/oracle_audit.py"


rule inversion_audit:
    input:
        oracle=oracle_file(),
        latents="results/den/{key}/latents.parquet",
        weights=lambda w: generator_weight_files(owner("den", w.key).generator),
    output:
        audit="results/eval/inversion/{key}.json",
    log:
        log_path("inversion_audit", "{key}"),
    benchmark:
        benchmark_path("inversion_audit", "{key}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "den")),
    conda:
        "../envs/torch.yaml"
    params:
        sha256=config["scenes"]["oracle"]["sha256"],
        generator=lambda w: generator_params(owner("den", w.key).generator),
        seed=config["scenes"]["seed"],
    script:
        "../workflow_scripts/inversion_audit.py"


rule scorecard:
    input:
        unpack(scorecard_inputs),
    output:
        scorecard="results/eval/scorecard.json",
    log:
        log_path("scorecard", "scorecard"),
    benchmark:
        benchmark_path("scorecard", "scorecard")
    conda:
        "../envs/torch.yaml"
    params:
        targets=config["scorecard"]["targets"],
        reference=config["sod_reference"],
        benchmarks=config["benchmarks"],
        evaluations=sod_evaluations(),
        runs=list(config["runs"]),
        directions=config["directions"]["discover"]["directions"],
        oracle_sha256=config["scenes"]["oracle"]["sha256"],
        size=config["scenes"]["size"],
    script:
        "../workflow_scripts/scorecard.py"


rule sweep_table:
    input:
        unpack(sweep_inputs),
    output:
        csv="results/eval/sweeps/{sweep}.csv",
        md="results/eval/sweeps/{sweep}.md",
        plot=report(
            "results/eval/sweeps/{sweep}.png",
            caption="../report/sweep.rst",
            category=REPORT_ABLATIONS,
            labels={"sweep": "{sweep}"},
        ),
    log:
        log_path("sweep_table", "{sweep}"),
    benchmark:
        benchmark_path("sweep_table", "{sweep}")
    wildcard_constraints:
        sweep=_name_pattern(SWEEPS),
    conda:
        "../envs/torch.yaml"
    params:
        points=lambda w: sweep_points(w.sweep),
        benchmarks=lambda w: sweep_benchmarks(w.sweep),
    script:
        "../workflow_scripts/sweep_table.py"
