"""Rule scorecard: results/eval/scorecard.json, every stage's figure against ground truth beside its target."""

import json
from pathlib import Path

import pandas as pd

from synthsod.core.io import write_json_atomic
from synthsod.evaluation.oracle import audit_benchmark, load_oracle
from synthsod.evaluation.scorecard import build_scorecard
from synthsod.workflow import run_rule


def _json(path):
    return json.loads(Path(path).read_text())


def _listed(value):
    return [value] if isinstance(value, str) else list(value)


def main(smk):
    params, inputs = smk.params, smk.input
    sod = {}
    for (name, bench), path in zip(params.evaluations, _listed(inputs.metrics)):
        sod.setdefault(bench, {})[name] = _json(path)["metrics"]
    reports = dict(zip(params.runs, map(_json, _listed(inputs.filter_reports))))
    audits = {Path(p).stem: _json(p) for p in _listed(inputs.audits)}
    runs = {run: {"filter_report": reports[run], "audit": audits.get(run)} for run in params.runs}
    oracle_benchmarks = None
    if "oracle" in inputs.keys():
        oracle = load_oracle(inputs.oracle, params.oracle_sha256)
        oracle_benchmarks = {
            Path(path).parent.name: audit_benchmark(oracle, pd.read_parquet(path), params.size)
            for path in _listed(inputs.benchmarks)
        }
    card = build_scorecard(
        params.targets,
        reference=params.reference,
        sod=sod,
        benchmark=params.benchmarks[0] if params.benchmarks else None,
        quality=_json(inputs.quality) if "quality" in inputs.keys() else None,
        oracle_benchmarks=oracle_benchmarks,
        den=_json(inputs.den),
        den_ablations={Path(p).parent.name.removeprefix("ablation-"): _json(p) for p in _listed(inputs.den_ablations)},
        inversion=_json(inputs.inversion),
        inversion_audit=_json(inputs.inversion_audit) if "inversion_audit" in inputs.keys() else None,
        gmask=_json(inputs.gmask),
        runs=runs,
        discovery=(pd.read_csv(inputs.discovery), params.directions) if "discovery" in inputs.keys() else None,
    )
    write_json_atomic(smk.output.scorecard, card)
    met = sum(c["met"] is True for c in card["checks"])
    return f"scorecard: {met} of {len(card['checks'])} targets met"


run_rule(snakemake, main)  # noqa: F821
