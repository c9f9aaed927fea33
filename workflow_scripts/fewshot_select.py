"""Rule fewshot_select: choose the few-shot set D_m from the inverted training pairs."""

import logging

import pandas as pd

from synthsod.fewshot import apply_class_file, select_fewshot
from synthsod.io import atomic_path
from synthsod.workflow import run_rule


def main(smk):
    spec = smk.params.fewshot
    latents = pd.read_parquet(smk.input.latents)
    if spec["class_file"]:
        latents = apply_class_file(latents, spec["class_file"])
    selection = select_fewshot(latents, spec["strategy"], spec["size"], spec["seed"])
    with atomic_path(smk.output.selection) as tmp:
        selection.to_parquet(tmp, index=False)
    logging.getLogger("synthsod").info(
        "few-shot set: %d of %d pairs (%s), %d classes, mean reconstruction error %.4f",
        len(selection), len(latents), spec["strategy"], selection["class"].nunique(), selection["recon_error"].mean(),
    )


run_rule(snakemake, main)  # noqa: F821
