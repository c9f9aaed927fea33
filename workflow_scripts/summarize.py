"""Rule summarize: results/eval/summary.csv, .md and .html (with the ratio table) and the curves plot."""

import json
import logging
from pathlib import Path

import pandas as pd

from synthsod.evaluation.summary import plot_curves, summary_table, write_summary
from synthsod.workflow import run_rule


def main(smk):
    table = summary_table([json.loads(Path(p).read_text()) for p in smk.input.metrics])
    scorecard_files = smk.input.get("scorecard") or []  # the rule's input is a list: [] when disabled
    scorecard = json.loads(Path(scorecard_files[0]).read_text()) if scorecard_files else None
    ablations = {Path(path).stem: pd.read_csv(path) for path in smk.input.sweeps}
    write_summary(table, smk.output.csv, smk.output.md, smk.params.reference, smk.output.html, scorecard, ablations)
    curves = {}
    for (sod, bench), path in zip(smk.params.evaluations, smk.input.curves):
        curves.setdefault(bench, {})[sod] = pd.read_csv(path)
    plot_curves(curves, smk.output.plot)
    logging.getLogger("synthsod").info("%s:\n%s", smk.output.md, Path(smk.output.md).read_text())
    return f"summary of {len(table)} (training, benchmark) rows; PR curves of {', '.join(sorted(curves))}"


run_rule(snakemake, main)  # noqa: F821
