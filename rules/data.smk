# Real-data preparation: check a DUTS-layout dataset and index its good pairs.


rule prepare_dataset:
    input:
        images=lambda w: config["datasets"][w.dataset]["images"],
        masks=lambda w: config["datasets"][w.dataset]["masks"],
        fetched=lambda w: fetched_inputs(*config["datasets"][w.dataset].values()),  # downloaded folders: fetched first
    output:
        manifest="results/data/{dataset}/manifest.parquet",
        bad_inputs="results/data/{dataset}/bad_inputs.csv",
    log:
        log_path("prepare_dataset", "{dataset}"),
    benchmark:
        benchmark_path("prepare_dataset", "{dataset}")
    wildcard_constraints:
        dataset=_name_pattern(config["datasets"]),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/data.yaml"
    threads: config["prepare"]["threads"]
    params:
        dataset=lambda w: config["datasets"][w.dataset],
        prepare=config["prepare"],
    script:
        "../workflow_scripts/prepare_dataset.py"
