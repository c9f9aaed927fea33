"""Rule inversion_audit: how well the DEN's inversions place the object (oracle IoU of G(z+) vs the real
masks), beside the generator's own fidelity on the scenes' true codes."""

import pandas as pd

from synthsod.core.io import write_json_atomic
from synthsod.evaluation.oracle import audit_inversions, load_oracle
from synthsod.workflow import load_generator, run_rule


def main(smk):
    oracle = load_oracle(smk.input.oracle, smk.params.sha256)
    generator = load_generator(smk, "cpu")
    audit = audit_inversions(oracle, generator, pd.read_parquet(smk.input.latents), smk.params.seed)
    write_json_atomic(smk.output.audit, audit)
    message = f"{smk.wildcards.key}: oracle IoU of the inversions {audit['inversions'].get('mean')}"
    if "true_codes" in audit:
        message += f", of the true codes {audit['true_codes'].get('mean')}"
    return message


run_rule(snakemake, main)  # noqa: F821
