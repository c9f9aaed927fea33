"""Rule report_run: a run's sample grid and its rejected examples per filter, for the report."""

from pathlib import Path

from synthsod.reporting.figures import read_filter_report, rejected_examples, rejected_figure
from synthsod.synthesis.shards import preview_grid
from synthsod.workflow import run_rule


def main(smk):
    run, settings = smk.wildcards.run, smk.params.report
    shown = preview_grid(Path(smk.input.manifest).parent, smk.output.samples, n=settings["samples"])
    counts = read_filter_report(smk.input.filter_report)["rejected"]
    examples = rejected_examples(smk.input.rejected, settings["rejected_per_filter"])
    rejected_figure(run, examples, counts, smk.output.rejected)
    shown_rejected = ", ".join(f"{name} ({len(tiles)})" for name, tiles in examples.items()) or "no filter"
    return f"run {run}: {shown} samples in the grid, rejected examples for {shown_rejected}"


run_rule(snakemake, main)  # noqa: F821
