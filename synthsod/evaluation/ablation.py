"""Ablation tables: one row per sweep point, the swept values beside what each stage measured.

A sweep (:mod:`synthsod.sweeps`) expands into runs and trainings; :func:`sweep_table` gathers, per point,
the run's kept share and oracle IoU (when the reference segmenter audits it), the G_mask held-out IoU of
the run's pipeline, and the point training's metrics on every benchmark (SODGAN Table 2's columns).
:func:`write_sweep` writes it as CSV and Markdown, and plots each figure against the swept value
(SODGAN Fig. 6 style: a line over numeric values, points over named ones).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from synthsod.core.io import atomic_path, write_bytes_atomic
from synthsod.core.plots import pyplot, save_figure
from synthsod.evaluation.summary import markdown_table

SOD_METRICS = ("max_f", "mae", "s_measure", "max_e")  # Table 2's columns, pysodmetrics names
STAGE_COLUMNS = ("kept_rate", "oracle_iou", "gmask_heldout_iou")


def sweep_table(
    points: Sequence[Mapping[str, Any]],
    *,
    metrics: Mapping[str, Mapping[str, Mapping[str, float]]],
    reports: Mapping[str, Mapping[str, Any]],
    audits: Mapping[str, Mapping[str, Any]],
    gmask: Mapping[str, Mapping[str, Any]],
) -> pd.DataFrame:
    """One row per point (dicts of :class:`synthsod.sweeps.SweepPoint`'s fields). ``metrics[training][bench]``:
    evaluation metrics; ``reports[run]``: filter reports; ``audits[run]``: oracle audits; ``gmask[run]``: the
    G_mask training metrics of the run's pipeline. Missing figures are left empty (NaN)."""
    rows = []
    for point in points:
        run, training = point["run"], point.get("training")
        row: dict[str, Any] = {"point": point["label"], **{k: _cell(v) for k, v in point["values"].items()}}
        row["kept_rate"] = reports.get(run, {}).get("kept_rate")
        row["oracle_iou"] = audits.get(run, {}).get("kept_pairs", {}).get("mean")
        row["gmask_heldout_iou"] = gmask.get(run, {}).get("heldout", {}).get("iou")
        for bench, values in sorted((metrics.get(training) or {}).items()):
            row.update({f"{bench}/{name}": values.get(name) for name in SOD_METRICS})
        rows.append(row)
    table = pd.DataFrame(rows)
    return table.dropna(axis=1, how="all") if len(table) else table


def _cell(value: Any) -> Any:
    """A swept value as a table cell: scalars as they are, null and sections as their JSON text."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def figure_columns(table: pd.DataFrame) -> list[str]:
    """The measured columns (stage figures and benchmark metrics), in table order."""
    return [c for c in table.columns if c in STAGE_COLUMNS or "/" in c]


def plot_sweep(table: pd.DataFrame, swept: Sequence[str], title: str):
    """A matplotlib figure: one panel per measured column against the first swept key."""
    plt = pyplot()
    columns = figure_columns(table)
    n = max(1, len(columns))
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    x_key = swept[0]
    numeric = pd.api.types.is_numeric_dtype(table[x_key]) and not pd.api.types.is_bool_dtype(table[x_key])
    xs = table[x_key] if numeric else range(len(table))
    for ax, column in zip(axes.flat, columns):
        ax.plot(xs, table[column], marker="o", linestyle="-" if numeric else "none")
        ax.set_title(column, fontsize=9)
        if not numeric:
            ax.set_xticks(list(xs), table["point"], rotation=30, fontsize=8)
        ax.set_xlabel(x_key if numeric else "", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(columns) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_sweep(
    table: pd.DataFrame,
    swept: Sequence[str],
    name: str,
    csv: str | os.PathLike,
    md: str | os.PathLike,
    png: str | os.PathLike,
) -> None:
    """The sweep's table as CSV and Markdown (under a heading) and its plot, each written atomically."""
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    text = f"### Sweep `{name}` ({', '.join(swept)})\n\n" + markdown_table(table, 3) + "\n"
    write_bytes_atomic(md, text.encode())
    save_figure(plot_sweep(table, swept, f"sweep {name}"), png)


__all__ = ["SOD_METRICS", "STAGE_COLUMNS", "figure_columns", "plot_sweep", "sweep_table", "write_sweep"]
