# Input functions and targets of rules/sodgan.smk (a file of functions only: Snakemake's lint keeps
# them apart from the rules).


def train_manifest():
    return f"results/data/{config['train_dataset']}/manifest.parquet"


def sodgan_targets():
    return [f"results/gmask/{config['generator']}/train_metrics.json"]


def demo_mask_oracle():
    """The demo's sampling settings and mask rule when the training set is a demo split of the SODGAN
    generator (then the rule applied to G(z⁺) is an exact reference for G_mask), else None."""
    images = config["datasets"][config["train_dataset"]]["images"]
    demo = config["demo"]
    if images not in demo_split_folders() or demo["generator"] != config["generator"]:
        return None
    return without(demo, "splits", "jpeg_quality", "generator")


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
