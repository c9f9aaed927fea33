# SODGAN's learning stages: DEN inversion of the real training set, the few-shot set, and the mask
# generator with its quality discriminator. {key} is a stage key of a named pipeline (config pipelines:;
# synthsod/pipelines.py): pipelines whose settings agree up to a stage share its files.


rule den_train:
    input:
        manifest=train_manifest(),
        weights=lambda w: generator_weight_files(owner("den", w.key).generator),
        fetched=lambda w: fetched_inputs(stage_settings("den", w.key)["backbone_weights"]),
    output:
        model="results/den/{key}/model.pt",
        metrics="results/den/{key}/train_metrics.json",
    log:
        log_path("den_train", "{key}"),
    benchmark:
        benchmark_path("den_train", "{key}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "den")),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        den=lambda w: without(stage_settings("den", w.key), "invert", "ablations"),
        generator=lambda w: generator_params(owner("den", w.key).generator),
    script:
        "../workflow_scripts/den_train.py"


use rule den_train as den_ablation with:
    output:
        model="results/den/{key}/ablation-{mode}/model.pt",
        metrics="results/den/{key}/ablation-{mode}/train_metrics.json",
    log:
        log_path("den_ablation", "{key}-{mode}"),
    benchmark:
        benchmark_path("den_ablation", "{key}-{mode}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "den")),
        mode=_name_pattern(DEN_MODES),
    priority: 0  # a comparison, not on the way to the samples
    params:
        den=lambda w: {**without(stage_settings("den", w.key), "invert", "ablations"), "mode": w.mode},
        generator=lambda w: generator_params(owner("den", w.key).generator),


rule den_invert:
    input:
        model="results/den/{key}/model.pt",
        manifest=train_manifest(),
        weights=lambda w: generator_weight_files(owner("den", w.key).generator),
    output:
        latents="results/den/{key}/latents.parquet",
        metrics="results/den/{key}/inversion_metrics.json",
    log:
        log_path("den_invert", "{key}"),
    benchmark:
        benchmark_path("den_invert", "{key}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "den")),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        invert=lambda w: stage_settings("den", w.key)["invert"],
        generator=lambda w: generator_params(owner("den", w.key).generator),
    script:
        "../workflow_scripts/den_invert.py"


rule fewshot_select:
    input:
        latents=lambda w: stage_file(owner("fewshot", w.key).name, "den", "latents.parquet"),
        model=lambda w: fewshot_uncertainty_model(w.key),
        fetched=lambda w: fetched_inputs(stage_settings("fewshot", w.key)["class_file"]),
    output:
        selection="results/fewshot/{key}/selection.parquet",
    log:
        log_path("fewshot_select", "{key}"),
    benchmark:
        benchmark_path("fewshot_select", "{key}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "fewshot")),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    params:
        fewshot=lambda w: fewshot_params(w.key),
    script:
        "../workflow_scripts/fewshot_select.py"


rule gmask_train:
    input:
        selection=lambda w: stage_file(owner("gmask", w.key).name, "fewshot", "selection.parquet"),
        latents=lambda w: stage_file(owner("gmask", w.key).name, "den", "latents.parquet"),
        weights=lambda w: generator_weight_files(owner("gmask", w.key).generator),
        fetched=lambda w: fetched_inputs(stage_settings("gmask", w.key)["dq"]["backbone_weights"]),
    output:
        gmask="results/gmask/{key}/gmask.pt",
        dq="results/gmask/{key}/dq.pt",
        metrics="results/gmask/{key}/train_metrics.json",
    log:
        log_path("gmask_train", "{key}"),
    benchmark:
        benchmark_path("gmask_train", "{key}")
    wildcard_constraints:
        key=_name_pattern(stage_keys(PIPELINES, "gmask")),
    priority: SODGAN_CHAIN_PRIORITY
    conda:
        "../envs/torch.yaml"
    resources:
        gpu=1,
    params:
        gmask=lambda w: stage_settings("gmask", w.key),
        generator=lambda w: generator_params(owner("gmask", w.key).generator),
    script:
        "../workflow_scripts/gmask_train.py"
