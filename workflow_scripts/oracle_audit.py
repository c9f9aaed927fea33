"""Rule oracle_audit: the reference segmenter's IoU of a run's masks, and of D_q's kept vs rejected candidates."""

import json
from pathlib import Path

from synthsod.core.io import write_json_atomic
from synthsod.evaluation.oracle import audit_run, load_oracle
from synthsod.workflow import run_rule


def main(smk):
    oracle = load_oracle(smk.input.oracle, smk.params.sha256)
    shards = [smk.input.shards] if isinstance(smk.input.shards, str) else list(smk.input.shards)
    calibration = smk.input.get("candidates")
    threshold = json.loads(Path(smk.input.threshold).read_text())["threshold"] if calibration else None
    audit = audit_run(oracle, shards, calibration, threshold)
    write_json_atomic(smk.output.audit, audit)
    message = f"run {smk.wildcards.run}: oracle IoU of its pairs {audit['kept_pairs'].get('mean')}"
    if "dq" in audit:
        dq = audit["dq"]
        message += f"; of D_q's kept {dq['kept'].get('mean')} vs rejected {dq['rejected'].get('mean')} candidates"
    return message


run_rule(snakemake, main)  # noqa: F821
