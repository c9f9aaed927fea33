"""Rule prepare_dataset: check a DUTS-layout dataset, write its manifest and bad-input report."""

from synthsod.data.prepare import prepare_dataset
from synthsod.workflow import run_rule


def main(smk):
    summary = prepare_dataset(
        smk.wildcards.dataset,
        smk.input.images,
        smk.input.masks,
        smk.output.manifest,
        smk.output.bad_inputs,
        max_bad_fraction=smk.params.prepare["max_bad_fraction"],
        threads=smk.threads,
    )
    return summary.line()


run_rule(snakemake, main)  # noqa: F821
