"""Rule fetch_<name>: one download from its official location to its target paths, checked and unpacked."""

from synthsod.data.fetch import fetch
from synthsod.workflow import run_rule


def main(smk):
    settings = smk.params.fetch
    return fetch(
        smk.params.name,
        smk.params.download,
        lock_file=settings["lock_file"],
        cache_dir=settings["cache_dir"],
        timeout_s=settings["timeout_s"],
        retries=settings["retries"],
        required=list(smk.output.inside),
    )


run_rule(snakemake, main)  # noqa: F821
