"""Rule baseline_predict: an untrained baseline's saliency maps for one benchmark (PNG per image)."""

import pandas as pd

from synthsod.evaluation.baselines import write_baseline_predictions
from synthsod.workflow import run_rule


def main(smk):
    name, bench = smk.wildcards.baseline, smk.wildcards.bench
    count = write_baseline_predictions(name, pd.read_parquet(smk.input.manifest), smk.output.predictions)
    return f"baseline {name} on {bench}: {count} saliency maps"


run_rule(snakemake, main)  # noqa: F821
