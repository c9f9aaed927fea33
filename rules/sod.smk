# SOD trainings (config sod:) on synthetic runs and/or real datasets, their predictions on each benchmark,
# the metrics of the protocol in synthsod/metrics.py, and the summary with its ratio table.


rule sod_train:
    input:
        unpack(sod_training_inputs),
    output:
        model="results/sod/{sod}/model.pt",
        log_csv="results/sod/{sod}/train_log.csv",
    params:
        sod=lambda w: without(config["sod"][w.sod], "eval_size", "benchmarks"),
    wildcard_constraints:
        sod=_name_pattern(config["sod"]),
    resources:
        gpu=1,
    log:
        log_path("sod_train", "{sod}"),
    benchmark:
        benchmark_path("sod_train", "{sod}")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/sod_train.py"


rule sod_predict:
    input:
        model="results/sod/{sod}/model.pt",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        predictions=directory("results/pred/{sod}/{bench}"),
    params:
        eval_size=lambda w: config["sod"][w.sod]["eval_size"],
    wildcard_constraints:
        sod=_name_pattern(config["sod"]),
        bench=_name_pattern(config["datasets"]),
    resources:
        gpu=1,
    log:
        log_path("sod_predict", "{sod}/{bench}"),
    benchmark:
        benchmark_path("sod_predict", "{sod}/{bench}")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/sod_predict.py"


rule evaluate:
    input:
        predictions="results/pred/{sod}/{bench}",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        metrics="results/eval/{sod}/{bench}/metrics.json",
        curves="results/eval/{sod}/{bench}/curves.csv",
    wildcard_constraints:
        sod=_name_pattern(config["sod"]),
        bench=_name_pattern(config["datasets"]),
    log:
        log_path("evaluate", "{sod}/{bench}"),
    benchmark:
        benchmark_path("evaluate", "{sod}/{bench}")
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
        plot="results/eval/pr_curves.png",
    params:
        reference=config["sod_reference"],
        evaluations=sod_evaluations(),
    log:
        log_path("summarize", "summary"),
    benchmark:
        benchmark_path("summarize", "summary")
    conda:
        "../envs/torch.yaml"
    script:
        "../workflow_scripts/summarize.py"
