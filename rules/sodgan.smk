# SODGAN's learning stages: DEN inversion of the real training set, the few-shot set, and the mask
# generator with its quality discriminator. {gen} is a generator name from config (generators:).


rule den_train:
    input:
        manifest=train_manifest(),
        weights=lambda w: generator_weight_files(w.gen),
    output:
        model="results/den/{gen}/model.pt",
        metrics="results/den/{gen}/train_metrics.json",
    log:
        log_path("den_train", "{gen}"),
    benchmark:
        benchmark_path("den_train", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        den=without(config["den"], "invert", "ablations"),
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/den_train.py"


use rule den_train as den_ablation with:
    output:
        model="results/den/{gen}/ablation-{mode}/model.pt",
        metrics="results/den/{gen}/ablation-{mode}/train_metrics.json",
    log:
        log_path("den_ablation", "{gen}-{mode}"),
    benchmark:
        benchmark_path("den_ablation", "{gen}-{mode}")
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
        mode=_name_pattern(config["den"]["ablations"]),
    priority: 0  # a comparison, not on the way to the samples
    params:
        den=lambda w: {**without(config["den"], "invert", "ablations"), "mode": w.mode},
        generator=lambda w: generator_params(w.gen),


rule den_invert:
    input:
        model="results/den/{gen}/model.pt",
        manifest=train_manifest(),
        weights=lambda w: generator_weight_files(w.gen),
    output:
        latents="results/den/{gen}/latents.parquet",
        metrics="results/den/{gen}/inversion_metrics.json",
    log:
        log_path("den_invert", "{gen}"),
    benchmark:
        benchmark_path("den_invert", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        invert=config["den"]["invert"],
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/den_invert.py"


rule fewshot_select:
    input:
        latents="results/den/{gen}/latents.parquet",
        model=fewshot_uncertainty_model(),
    output:
        selection="results/fewshot/{gen}/selection.parquet",
    log:
        log_path("fewshot_select", "{gen}"),
    benchmark:
        benchmark_path("fewshot_select", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    params:
        fewshot=fewshot_params(),
    script:
        "../workflow_scripts/fewshot_select.py"


rule gmask_train:
    input:
        selection="results/fewshot/{gen}/selection.parquet",
        latents="results/den/{gen}/latents.parquet",
        weights=lambda w: generator_weight_files(w.gen),
    output:
        gmask="results/gmask/{gen}/gmask.pt",
        dq="results/gmask/{gen}/dq.pt",
        metrics="results/gmask/{gen}/train_metrics.json",
    log:
        log_path("gmask_train", "{gen}"),
    benchmark:
        benchmark_path("gmask_train", "{gen}")
    wildcard_constraints:
        gen=_name_pattern(config["generators"]),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        gmask=config["gmask"],
        generator=lambda w: generator_params(w.gen),
    script:
        "../workflow_scripts/gmask_train.py"
