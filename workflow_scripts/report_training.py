"""Rule report_training: the loss curves of every SOD training, for the report."""

import pandas as pd

from synthsod.reporting.figures import training_figure
from synthsod.workflow import run_rule


def main(smk):
    logs = {name: pd.read_csv(path) for name, path in zip(smk.params.trainings, smk.input.logs)}
    training_figure(logs, smk.output.plot)
    return f"training curves of {', '.join(f'{name} ({len(frame)} steps)' for name, frame in logs.items())}"


run_rule(snakemake, main)  # noqa: F821
