# SOD trainings (config sod:) on synthetic runs and/or real datasets, and their predictions on each
# benchmark (coop models add uncertainty maps; refine_with adds EBM-refined predictions, coop_refine refines
# other models' folders). Their evaluation and the summary are in rules/evaluation.smk.


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
        resize=prediction_resize(),
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
        resize="square",  # evaluation.protocol ebigbigan concerns its U-Net recipe, not the coop model
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


# Another model's maps (a folder per benchmark, config coop_refine:) refined like ebm_refine's; each name is
# evaluated like a training.
rule ebm_refine_folder:
    input:
        unpack(coop_refine_inputs),
    output:
        predictions=directory("results/pred/{refined}/{bench}"),
    log:
        log_path("ebm_refine_folder", "{refined}/{bench}"),
    benchmark:
        benchmark_path("ebm_refine_folder", "{refined}/{bench}")
    wildcard_constraints:
        refined=_name_pattern(config["coop_refine"]),
        bench=_name_pattern(config["datasets"]),
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        refine=lambda w: config["coop_refine"][w.refined],
    script:
        "../workflow_scripts/ebm_refine_folder.py"
