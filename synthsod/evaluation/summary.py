"""The results table: one row per (training, benchmark), a ratio table against a reference training,
and the PR / F-measure curves of every training, one plot per benchmark.

Ratios are ``value / reference value`` on the same benchmark for every metric (SODGAN reports F3Net
trained on synthetic data at 98.4 % of F3Net trained on DUTS-TR this way). For MAE, lower is better,
so a ratio below 1 is the better one.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Mapping, Sequence

import pandas as pd

from synthsod.core.io import atomic_path, write_bytes_atomic
from synthsod.core.plots import pyplot, save_figure
from synthsod.errors import SynthsodError
from synthsod.evaluation.metrics import SCALARS
from synthsod.evaluation.scorecard import scorecard_html, scorecard_markdown


def summary_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Records {"training", "benchmark", "metrics": {...}} -> one row each, metric columns in SCALARS order."""
    rows = [
        {"training": r["training"], "benchmark": r["benchmark"], **{k: r["metrics"][k] for k in SCALARS}}
        for r in records
    ]
    return (
        pd.DataFrame(rows, columns=["training", "benchmark", *SCALARS])
        .sort_values(["benchmark", "training"], kind="stable")
        .reset_index(drop=True)
    )


def ratio_table(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """Each other training's metrics divided by ``reference``'s on the same benchmark."""
    if reference not in set(table["training"]):
        raise SynthsodError(f"the reference training '{reference}' has no results")
    ref = table[table["training"] == reference].set_index("benchmark")[list(SCALARS)]
    others = table[table["training"] != reference]
    ratios = others.set_index(["training", "benchmark"])[list(SCALARS)].div(ref, level="benchmark")
    return ratios.reset_index()


def markdown_table(table: pd.DataFrame, digits: int) -> str:
    """``table`` as a Markdown table, floats to ``digits`` places, missing values (NaN, None) empty."""

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return ""
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    lines = [header, rule]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _html_table(table: pd.DataFrame, digits: int) -> str:
    return table.to_html(index=False, border=0, float_format=lambda v: f"{v:.{digits}f}")


def write_summary(
    table: pd.DataFrame,
    csv_path: str | os.PathLike,
    md_path: str | os.PathLike,
    reference: str | None,
    html_path: str | os.PathLike | None = None,
    scorecard: Mapping | None = None,
    ablations: Mapping[str, pd.DataFrame] | None = None,
) -> None:
    """The table as CSV and Markdown (and HTML for the report when ``html_path`` is given), each with
    the ratio table to ``reference`` when there is more than one training, the ``scorecard``
    (:mod:`synthsod.evaluation.scorecard`) first when given, and an ablation section with each sweep's
    table (:mod:`synthsod.evaluation.ablation`, by sweep name) last."""
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    title, note = "SOD results", "One row per (training, benchmark); protocol in synthsod/evaluation/metrics.py."
    ratios = reference is not None and len(set(table["training"])) > 1
    ratio_title = f"Ratio to `{reference}` (value / reference; for MAE lower is better)"
    text = [f"# {title}", "", note, ""]
    if scorecard is not None:
        text += [scorecard_markdown(scorecard)]
    text += ["## Benchmark", "", markdown_table(table, 4)]
    if ratios:
        text += ["", f"## {ratio_title}", "", markdown_table(ratio_table(table, reference), 3)]
    if ablations:
        text += ["", "## Ablations (one table per sweep; plots: results/eval/sweeps/<sweep>.png)"]
    for name, sweep in sorted((ablations or {}).items()):
        text += ["", f"### Sweep `{name}`", "", markdown_table(sweep, 3)]
    write_bytes_atomic(md_path, ("\n".join(text) + "\n").encode())
    if html_path is None:
        return
    page = [f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(note)}</p>"]
    if scorecard is not None:
        page.append(scorecard_html(scorecard))
    page += ["<h2>Benchmark</h2>", _html_table(table, 4)]
    if ratios:
        page += [f"<h2>{html.escape(ratio_title)}</h2>", _html_table(ratio_table(table, reference), 3)]
    if ablations:
        page.append("<h2>Ablations</h2>")
        page += [f"<h3>Sweep {html.escape(name)}</h3>{_html_table(t, 3)}" for name, t in sorted(ablations.items())]
    style = (
        "body{font-family:sans-serif} table{border-collapse:collapse} "
        "th,td{padding:2px 8px;text-align:right;border-bottom:1px solid #ddd}"
    )
    document = (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{style}</style></head><body>{''.join(page)}</body></html>\n"
    )
    write_bytes_atomic(html_path, document.encode())


def plot_curves(curves: Mapping[str, Mapping[str, pd.DataFrame]], out_png: str | os.PathLike) -> None:
    """``curves[benchmark][training]`` = a DataFrame with precision, recall and f columns -> one PNG:
    a PR plot and an F-measure-by-threshold plot per benchmark, every training on each."""
    plt = pyplot()
    benchmarks = sorted(curves)
    fig, axes = plt.subplots(len(benchmarks), 2, figsize=(10, 4 * len(benchmarks)), squeeze=False)
    for row, bench in zip(axes, benchmarks):
        for training, frame in sorted(curves[bench].items()):
            row[0].plot(frame["recall"], frame["precision"], label=training)
            row[1].plot(frame["threshold"], frame["f"], label=training)
        row[0].set(title=f"{bench}: precision-recall", xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
        row[1].set(
            title=f"{bench}: F-measure (beta^2 = 0.3)", xlabel="threshold", ylabel="F", xlim=(0, 255), ylim=(0, 1)
        )
        row[0].legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, out_png)


__all__ = ["plot_curves", "ratio_table", "summary_table", "write_summary"]
