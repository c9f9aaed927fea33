"""Rule sod_predict: a trained SOD model's saliency maps for one benchmark (PNG per image)."""

import logging
from pathlib import Path

import pandas as pd
import torch

from synthsod.gpu import gpu_lease, torch_device
from synthsod.sod_predict import write_predictions
from synthsod.sod_train import build_model
from synthsod.workflow import run_rule


def main(smk):
    saved = torch.load(smk.input.model, map_location="cpu", weights_only=False)
    options = {**saved["model_options"], "backbone_weights": None} if saved["model"] == "f3net" else saved["model_options"]
    out_dir = Path(smk.output.predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    with gpu_lease() as lease:
        model = build_model(saved["model"], saved["loss"], options)
        model.load_state_dict(saved["state_dict"])
        model.to(torch_device(lease))
        count = write_predictions(model, pd.read_parquet(smk.input.manifest), out_dir, smk.params.eval_size,
                                  saved["channel"])
    logging.getLogger("synthsod").info("%s on %s: %d saliency maps", smk.wildcards.sod, smk.wildcards.bench, count)


run_rule(snakemake, main)  # noqa: F821
