"""Rule ebm_refine: another training's saliency maps refined by a coop model's EBM (noise-free Langevin)."""

from pathlib import Path

import pandas as pd

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.predict import refine_predictions
from synthsod.sod.train import load_sod_model
from synthsod.workflow import run_rule


def main(smk):
    out_dir = Path(smk.output.predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    with gpu_lease() as lease:
        model, _ = load_sod_model(smk.input.model, torch_device(lease))
        if not isinstance(model, CoopSaliency):
            raise SynthsodError(f"{smk.input.model}: not a coop model, so it has no EBM to refine with")
        count = refine_predictions(model, pd.read_parquet(smk.input.manifest), smk.input.base, out_dir)
    return f"{smk.wildcards.base} refined by {smk.wildcards.coop} on {smk.wildcards.bench}: {count} saliency maps"


run_rule(snakemake, main)  # noqa: F821
