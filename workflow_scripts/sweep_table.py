"""Rule sweep_table: results/eval/sweeps/<sweep>.csv, .md and .png, one row per sweep point."""

import json
from pathlib import Path

from synthsod.evaluation.ablation import sweep_table, write_sweep
from synthsod.workflow import run_rule


def _json(path):
    return json.loads(Path(path).read_text())


def main(smk):
    points, inputs = smk.params.points, smk.input
    metrics = {}
    for (training, bench), path in zip(smk.params.benchmarks, inputs.metrics):
        metrics.setdefault(training, {})[bench] = _json(path)["metrics"]
    reports = dict(zip([p["run"] for p in points if p["run"]], map(_json, inputs.reports)))
    audits = dict(zip([p["run"] for p in points if p["audit"]], map(_json, inputs.audits)))
    gmask = dict(zip([p["run"] for p in points if p["gmask"]], map(_json, inputs.gmask)))
    table = sweep_table(points, metrics=metrics, reports=reports, audits=audits, gmask=gmask)
    swept = list(points[0]["values"]) if points else []
    write_sweep(table, swept, smk.wildcards.sweep, smk.output.csv, smk.output.md, smk.output.plot)
    return f"sweep {smk.wildcards.sweep}: {len(table)} points"


run_rule(snakemake, main)  # noqa: F821
