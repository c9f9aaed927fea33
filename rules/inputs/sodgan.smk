# Input functions and targets of rules/sodgan.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def train_manifest():
    return f"results/data/{config['train_dataset']}/manifest.parquet"


def den_ablation_metrics():
    gen = config["generator"]
    return [f"results/den/{gen}/ablation-{mode}/train_metrics.json" for mode in config["den"]["ablations"]]


def sodgan_targets():
    return [f"results/gmask/{config['generator']}/train_metrics.json", *den_ablation_metrics()]


def fewshot_params():
    """The few-shot settings; the uncertainty model's (with its prediction size) only for 'uncertain'."""
    fewshot = config["fewshot"]
    if fewshot["strategy"] != "uncertain":
        return without(fewshot, "uncertainty")
    return {
        **fewshot,
        "uncertainty": {**fewshot["uncertainty"], "size": config["sod"][fewshot["uncertainty"]["model"]]["eval_size"]},
    }


def fewshot_uncertainty_model():
    """The SOD model whose uncertainty ranks the images (strategy 'uncertain' only)."""
    fewshot = config["fewshot"]
    return [f"results/sod/{fewshot['uncertainty']['model']}/model.pt"] if fewshot["strategy"] == "uncertain" else []
