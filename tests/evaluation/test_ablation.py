"""Sweep tables: one row per point with the stage figures and benchmark metrics; CSV, Markdown, plot."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from synthsod.evaluation.ablation import figure_columns, sweep_table, write_sweep
from synthsod.evaluation.metrics import SCALARS
from synthsod.evaluation.summary import summary_table, write_summary

POINTS = [
    {"label": "0.2", "values": {"truncation": 0.2}, "run": "s.t-0.2", "training": "u.t-0.2"},
    {"label": "1.0", "values": {"truncation": 1.0}, "run": "s", "training": "u"},
]
METRICS = {
    "u.t-0.2": {"B": {"max_f": 0.7, "mae": 0.1, "s_measure": 0.8, "max_e": 0.9, "iou": 0.5}},
    "u": {"B": {"max_f": 0.8, "mae": 0.05, "s_measure": 0.85, "max_e": 0.92, "iou": 0.6}},
}


def _table() -> pd.DataFrame:
    return sweep_table(
        POINTS,
        metrics=METRICS,
        reports={"s.t-0.2": {"kept_rate": 0.5}, "s": {"kept_rate": 0.8}},
        audits={"s": {"kept_pairs": {"mean": 0.9}}},  # the oracle audits only the base here
        gmask={"s.t-0.2": {"heldout": {"iou": 0.6}}, "s": {"heldout": {"iou": 0.6}}},
    )


def test_a_row_per_point_with_its_runs_and_trainings_figures():
    table = _table()
    assert list(table.columns) == [
        "point",
        "truncation",
        "kept_rate",
        "oracle_iou",
        "gmask_heldout_iou",
        "B/max_f",
        "B/mae",
        "B/s_measure",
        "B/max_e",
    ]
    assert table["B/max_f"].tolist() == [0.7, 0.8] and table["kept_rate"].tolist() == [0.5, 0.8]
    assert math.isnan(table["oracle_iou"][0]) and table["oracle_iou"][1] == 0.9
    assert figure_columns(table) == list(table.columns[2:])


def test_columns_nobody_measured_are_left_out_and_sections_become_text():
    points = [{"label": "off", "values": {"filters.dq": None}, "run": "r", "training": None}]
    points.append({"label": "on", "values": {"filters.dq": {"keep_top": 0.8}}, "run": "r2", "training": None})
    table = sweep_table(
        points, metrics={}, reports={"r": {"kept_rate": 1.0}, "r2": {"kept_rate": 0.8}}, audits={}, gmask={}
    )
    assert list(table.columns) == ["point", "filters.dq", "kept_rate"]
    assert table["filters.dq"].tolist() == ["null", '{"keep_top": 0.8}']


def test_written_as_csv_markdown_and_plot_and_in_the_summary(tmp_path):
    table = _table()
    write_sweep(table, ["truncation"], "t", tmp_path / "t.csv", tmp_path / "t.md", tmp_path / "t.png")
    assert pd.read_csv(tmp_path / "t.csv")["B/max_f"].tolist() == [0.7, 0.8]
    text = (tmp_path / "t.md").read_text()
    assert text.startswith("### Sweep `t` (truncation)") and "| 0.2 | 0.200 | 0.500 |  | 0.600 | 0.700 |" in text
    assert (tmp_path / "t.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [{"training": "u", "benchmark": "B", "metrics": {k: 0.5 for k in SCALARS}}]
    write_summary(
        summary_table(records), tmp_path / "s.csv", tmp_path / "s.md", None, tmp_path / "s.html", None, {"t": table}
    )
    md, html = (tmp_path / "s.md").read_text(), (tmp_path / "s.html").read_text()
    assert "## Ablations" in md and "### Sweep `t`" in md and "| 1.0 | 1.000 | 0.800 | 0.900 |" in md
    assert "<h2>Ablations</h2>" in html and "Sweep t" in html


@pytest.mark.parametrize("values", [[0.2, 1.0], ["vae", "den"]])
def test_the_plot_takes_numbers_as_a_line_and_names_as_points(tmp_path, values):
    from synthsod.evaluation.ablation import plot_sweep

    table = _table().assign(truncation=values)
    fig = plot_sweep(table, ["truncation"], "t")
    line = fig.axes[0].lines[0]
    assert line.get_linestyle() == ("-" if isinstance(values[0], float) else "None")
    assert len(fig.axes) == 8  # 7 figures in a 4-wide grid, the empty panel hidden
