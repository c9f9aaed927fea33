"""Rule ebm_refine_folder: another model's saliency maps (a folder named under coop_refine:) refined by a coop
model's EBM (noise-free Langevin), written where the evaluate rule reads predictions."""

from pathlib import Path

import pandas as pd

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.sod.predict import refine_predictions
from synthsod.sod.train import load_sod_model
from synthsod.workflow import run_rule


def main(smk):
    out_dir = Path(smk.output.predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    with gpu_lease() as lease:
        model, _ = load_sod_model(smk.input.model, torch_device(lease))
        count = refine_predictions(model, pd.read_parquet(smk.input.manifest), smk.input.base, out_dir)
    return (
        f"{smk.wildcards.refined} on {smk.wildcards.bench}: {count} maps of {smk.input.base} refined by the EBM "
        f"of {smk.params.refine['model']}"
    )


run_rule(snakemake, main)  # noqa: F821
