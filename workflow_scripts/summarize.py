"""Rule summarize: results/eval/summary.csv and summary.md (with the ratio table) and the curves plot."""

import json
import logging
from pathlib import Path

import pandas as pd

from synthsod.summary import plot_curves, summary_table, write_summary
from synthsod.workflow import run_rule


def main(smk):
    table = summary_table([json.loads(Path(p).read_text()) for p in smk.input.metrics])
    write_summary(table, smk.output.csv, smk.output.md, smk.params.reference)
    curves = {}
    for (sod, bench), path in zip(smk.params.evaluations, smk.input.curves):
        curves.setdefault(bench, {})[sod] = pd.read_csv(path)
    plot_curves(curves, smk.output.plot)
    logging.getLogger("synthsod").info("summary of %d (training, benchmark) rows:\n%s", len(table),
                                       Path(smk.output.md).read_text())


run_rule(snakemake, main)  # noqa: F821
