# Input functions and targets of rules/sodgan.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def train_manifest():
    return f"results/data/{config['train_dataset']}/manifest.parquet"


def owner(stage, key):
    """A pipeline whose ``stage`` has the key ``key`` (they all have its settings and generator)."""
    return STAGE_OWNERS[stage][key]


def stage_settings(stage, key):
    """The settings of ``stage`` under the key ``key``."""
    return owner(stage, key).settings[stage]


def stage_file(pipeline, stage, name):
    """File ``name`` of pipeline ``pipeline``'s ``stage``."""
    return f"results/{stage}/{PIPELINES[pipeline].key(stage)}/{name}"


def den_ablation_metrics(pipelines=None):
    """The DEN ablations of the pipelines' DENs (every pipeline's by default)."""
    keys = sorted({PIPELINES[p].key("den") for p in (pipelines or PIPELINES)})
    return [
        f"results/den/{key}/ablation-{mode}/train_metrics.json"
        for key in keys
        for mode in stage_settings("den", key)["ablations"]
    ]


def sodgan_targets():
    return [
        f"results/gmask/{key}/train_metrics.json" for key in stage_keys(PIPELINES, "gmask")
    ] + den_ablation_metrics()


def fewshot_params(key):
    """The few-shot settings; the uncertainty model's (with its prediction size) only for 'uncertain'."""
    fewshot = stage_settings("fewshot", key)
    if fewshot["strategy"] != "uncertain":
        return without(fewshot, "uncertainty")
    return {
        **fewshot,
        "uncertainty": {**fewshot["uncertainty"], "size": config["sod"][fewshot["uncertainty"]["model"]]["eval_size"]},
    }


def fewshot_uncertainty_model(key):
    """The SOD model whose uncertainty ranks the images (strategy 'uncertain' only)."""
    fewshot = stage_settings("fewshot", key)
    return [f"results/sod/{fewshot['uncertainty']['model']}/model.pt"] if fewshot["strategy"] == "uncertain" else []
