"""Rules sod_predict and coop_predict: a trained SOD model's saliency maps for one benchmark (PNG per image),
and for a coop model its uncertainty maps."""

from pathlib import Path

import pandas as pd

from synthsod.core.gpu import gpu_lease, torch_device
from synthsod.sod.predict import write_predictions
from synthsod.sod.train import load_sod_model
from synthsod.workflow import run_rule


def main(smk):
    out_dir = Path(smk.output.predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    uncertainty_dir = getattr(smk.output, "uncertainty", None)  # rule coop_predict
    if uncertainty_dir is not None:
        Path(uncertainty_dir).mkdir(parents=True, exist_ok=True)
    with gpu_lease() as lease:
        model, channel = load_sod_model(smk.input.model, torch_device(lease))
        count = write_predictions(
            model,
            pd.read_parquet(smk.input.manifest),
            out_dir,
            smk.params.eval_size,
            channel,
            uncertainty_dir=uncertainty_dir,
            resize=smk.params.resize,
        )
    return f"{smk.wildcards.sod} on {smk.wildcards.bench}: {count} saliency maps"


run_rule(snakemake, main)  # noqa: F821
