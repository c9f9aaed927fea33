"""Rule report_filters: kept and rejected candidates of every run, per filter, for the report."""

from synthsod.reporting.figures import filter_counts_figure, read_filter_report
from synthsod.workflow import run_rule


def main(smk):
    reports = {run: read_filter_report(path) for run, path in zip(smk.params.runs, smk.input.reports)}
    filter_counts_figure(reports, smk.output.plot)
    return "; ".join(f"run {run}: kept {r['kept']} of {r['candidates']} candidates" for run, r in reports.items())


run_rule(snakemake, main)  # noqa: F821
