# SOD trainings (config sod:) on synthetic runs and/or real datasets, their predictions on each benchmark
# (coop models add uncertainty maps; refine_with adds EBM-refined predictions), the metrics of the
# protocol in synthsod/evaluation/metrics.py, and the summary with its ratio table.


rule sod_train:
    input:
        unpack(sod_training_inputs),
    output:
        model="results/sod/{sod}/model.pt",
        log_csv="results/sod/{sod}/train_log.csv",
    log:
        log_path("sod_train", "{sod}"),
    benchmark:
        benchmark_path("sod_train", "{sod}")
    wildcard_constraints:
        sod=_name_pattern(sod_names("plain", "coop")),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        sod=sod_train_params,
    script:
        "../workflow_scripts/sod_train.py"


# ATAL: point labels grown round by round (results/sod/{sod}/points/round-{r}.parquet), the last model kept.
rule atal_train:
    input:
        unpack(sod_training_inputs),
    output:
        model="results/sod/{sod}/model.pt",
        log_csv="results/sod/{sod}/train_log.csv",
        points=directory("results/sod/{sod}/points"),
    log:
        log_path("atal_train", "{sod}"),
    benchmark:
        benchmark_path("atal_train", "{sod}")
    wildcard_constraints:
        sod=_name_pattern(sod_names("active")),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        sod=sod_train_params,
    script:
        "../workflow_scripts/atal_train.py"


rule sod_predict:
    input:
        model="results/sod/{sod}/model.pt",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        predictions=directory("results/pred/{sod}/{bench}"),
    log:
        log_path("sod_predict", "{sod}/{bench}"),
    benchmark:
        benchmark_path("sod_predict", "{sod}/{bench}")
    wildcard_constraints:
        sod=_name_pattern(sod_names("plain", "active")),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        eval_size=lambda w: config["sod"][w.sod]["eval_size"],
    script:
        "../workflow_scripts/sod_predict.py"


rule coop_predict:
    input:
        model="results/sod/{sod}/model.pt",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        predictions=directory("results/pred/{sod}/{bench}"),
        uncertainty=directory("results/uncertainty/{sod}/{bench}"),
    log:
        log_path("coop_predict", "{sod}/{bench}"),
    benchmark:
        benchmark_path("coop_predict", "{sod}/{bench}")
    wildcard_constraints:
        sod=_name_pattern(sod_names("coop")),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        eval_size=lambda w: config["sod"][w.sod]["eval_size"],
    script:
        "../workflow_scripts/sod_predict.py"


# A training's predictions after the noise-free Langevin revision on a coop model's EBM.
rule ebm_refine:
    input:
        base="results/pred/{base}/{bench}",
        model="results/sod/{coop}/model.pt",
        manifest="results/data/{bench}/manifest.parquet",
    output:
        predictions=directory("results/pred/{base}+{coop}/{bench}"),
    log:
        log_path("ebm_refine", "{base}+{coop}/{bench}"),
    benchmark:
        benchmark_path("ebm_refine", "{base}+{coop}/{bench}")
    wildcard_constraints:
        base=_name_pattern(config["sod"]),
        coop=_name_pattern(sod_names("coop")),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    script:
        "../workflow_scripts/ebm_refine.py"


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
