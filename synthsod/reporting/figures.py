"""The figures of the HTML report (``snakemake --report``): what the data look like and how training went.

* :func:`rejected_figure`: a few rejected candidates of a run, one row per filter that rejected them;
* :func:`filter_counts_figure`: kept and rejected candidates of every run, per filter;
* :func:`dataset_figures`: SODGAN's Fig. 5 panels (:mod:`synthsod.reporting.dataset_stats`) for synthetic runs
  against a real dataset: centre-bias maps, object size, colour contrast, class distribution;
* :func:`training_figure`: the loss curves of every SOD training.

Readers turn the workflow's files into the (image, mask, class) pairs the statistics take: a run's
shards (:func:`run_pairs`) and a prepared dataset's manifest (:func:`dataset_pairs`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from synthsod.core.plots import pyplot, save_figure
from synthsod.data.prepare import load_image_rgb, load_mask_binary
from synthsod.errors import SynthsodError
from synthsod.names import DATASET_FIGURES
from synthsod.reporting.dataset_stats import DatasetStats
from synthsod.synthesis.filter_spec import FILTER_ORDER
from synthsod.synthesis.shards import iter_rows, iter_shard_rows, pair_tile, tile_grid

Pair = tuple[np.ndarray, np.ndarray, "int | None"]
SMOOTHING = 0.1  # training curves: moving-average window as a fraction of the steps


# --- readers ---------------------------------------------------------------------------------


def run_pairs(run_dir: str | os.PathLike) -> Iterator[Pair]:
    """A synthetic run's kept pairs with the class BigGAN was conditioned on."""
    for row in iter_rows(run_dir):
        yield row["image"], row["mask"], row["class"]


def dataset_pairs(manifest: pd.DataFrame, classes: Mapping[str, int] | None = None) -> Iterator[Pair]:
    """A prepared dataset's pairs (manifest rows in order); ``classes`` maps ids to a class when known."""
    for sample_id, image, mask in zip(manifest["id"], manifest["image"], manifest["mask"]):
        yield load_image_rgb(image), load_mask_binary(mask), None if classes is None else classes.get(sample_id)


def read_filter_report(path: str | os.PathLike) -> dict:
    try:
        report = json.loads(Path(path).read_text())
        return {
            "candidates": int(report["candidates"]),
            "kept": int(report["kept"]),
            "rejected": {name: int(report["rejected"].get(name, 0)) for name in FILTER_ORDER},
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SynthsodError(f"{path}: not a filter report ({exc})") from None


# --- filters ---------------------------------------------------------------------------------


def rejected_examples(rejected_shards: Iterable[str | os.PathLike], per_filter: int) -> dict[str, list[np.ndarray]]:
    """Up to ``per_filter`` tiles (image above mask overlay) per rejecting filter, in filter order.

    A rejected row's ``filters`` lists the filters that ran on it; the last one rejected it.
    """
    tiles: dict[str, list[np.ndarray]] = {}
    for row in iter_shard_rows(rejected_shards):
        name = row["filters"][-1]
        if len(tiles.setdefault(name, [])) < per_filter:
            tiles[name].append(pair_tile(row["image"], row["mask"]))
    order = [*FILTER_ORDER, *sorted(set(tiles) - set(FILTER_ORDER))]
    return {name: tiles[name] for name in order if name in tiles}


def rejected_figure(
    run: str, examples: Mapping[str, list[np.ndarray]], counts: Mapping[str, int], out_png: str | os.PathLike
) -> None:
    """One row per rejecting filter (its total count in the title), or a note that none was rejected."""
    plt = pyplot()
    if not examples:
        fig, ax = plt.subplots(figsize=(6, 1.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"run {run}: no rejected examples", ha="center", va="center")
    else:
        width = max(len(t) for t in examples.values())
        fig, axes = plt.subplots(len(examples), 1, figsize=(1.6 * width + 1, 3.2 * len(examples)), squeeze=False)
        for ax, (name, tiles) in zip(axes[:, 0], examples.items()):
            ax.imshow(tile_grid(tiles, cols=width))  # a short row is padded to the full width
            ax.set_title(f"{name}: {counts.get(name, len(tiles))} rejected (first {len(tiles)} shown)", fontsize=9)
            ax.axis("off")
        fig.suptitle(f"run {run}: rejected candidates (image above mask)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, out_png)


def filter_counts_figure(reports: Mapping[str, dict], out_png: str | os.PathLike) -> None:
    """Horizontal stacked bars per run: kept, then rejected by each filter, as fractions of the candidates."""
    plt = pyplot()
    runs = list(reports)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(runs) + 1.5))
    left = np.zeros(len(runs))
    for part in ["kept", *FILTER_ORDER]:
        counts = np.array([reports[r]["kept"] if part == "kept" else reports[r]["rejected"][part] for r in runs])
        if part != "kept" and not counts.any():
            continue
        share = counts / np.array([max(reports[r]["candidates"], 1) for r in runs])
        bars = ax.barh(runs, share, left=left, label=part)
        ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], label_type="center", fontsize=8)
        left += share
    ax.set(xlim=(0, 1), xlabel="fraction of candidates", title="filter outcomes per run (counts on the bars)")
    ax.invert_yaxis()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=len(FILTER_ORDER) + 1, fontsize=8)
    fig.tight_layout()
    save_figure(fig, out_png)


# --- dataset statistics (SODGAN Fig. 5) ------------------------------------------------------------


def _centre_bias(plt, stats: Sequence[DatasetStats]):
    fig, axes = plt.subplots(1, len(stats), figsize=(3 * len(stats) + 1, 3.2), squeeze=False)
    top = max([float(s.centre.max()) for s in stats] + [1e-6])  # one colour scale, so panels compare
    for ax, s in zip(axes[0], stats):
        image = ax.imshow(s.centre, cmap="jet", vmin=0, vmax=top)
        ax.set_title(f"{s.name} ({s.count})", fontsize=9)
        ax.axis("off")
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8, label="P(salient)")
    fig.suptitle("centre bias: mean mask", fontsize=10)
    return fig


def _histograms(plt, stats: Sequence[DatasetStats], values: str, title: str, xlabel: str):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 21)
    for s in stats:
        data = np.asarray(getattr(s, values), float)
        data = data[np.isfinite(data)]
        if len(data):
            ax.hist(
                data,
                bins=bins,
                weights=np.full(len(data), 1 / len(data)),
                histtype="step",
                linewidth=1.5,
                label=f"{s.name} (mean {data.mean():.2f})",
            )
    ax.set(title=title, xlabel=xlabel, ylabel="fraction of images", xlim=(0, 1))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _class_distribution(plt, stats: Sequence[DatasetStats]):
    fig, ax = plt.subplots(figsize=(6, 3.5))
    known = [s for s in stats if s.classes]
    for s in known:
        counts = s.class_counts()
        ax.plot(
            np.arange(1, len(counts) + 1), counts / counts.sum(), marker=".", label=f"{s.name} ({len(counts)} classes)"
        )
    if known:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no class is known for these datasets", ha="center", va="center", transform=ax.transAxes)
    ax.set(title="class distribution (classes sorted by frequency)", xlabel="class rank", ylabel="fraction of images")
    fig.tight_layout()
    return fig


def dataset_figures(stats: Sequence[DatasetStats], out: Mapping[str, str | os.PathLike]) -> None:
    """Write the panels named in DATASET_FIGURES to ``out[name]``."""
    plt = pyplot()
    figures = {
        "centre_bias": lambda: _centre_bias(plt, stats),
        "object_size": lambda: _histograms(plt, stats, "sizes", "object size", "foreground fraction of the image"),
        "colour_contrast": lambda: _histograms(
            plt,
            stats,
            "contrasts",
            "colour contrast between object and background",
            "chi-square distance of the RGB histograms",
        ),
        "classes": lambda: _class_distribution(plt, stats),
    }
    for name in DATASET_FIGURES:
        save_figure(figures[name](), out[name])


# --- training --------------------------------------------------------------------------------------


def training_curves(log: pd.DataFrame) -> pd.DataFrame:
    """A train_log.csv -> one loss column per term against a running step (ATAL's rounds run on), smoothed."""
    losses = log.drop(columns=[c for c in ("step", "round") if c in log.columns])
    window = max(1, int(round(SMOOTHING * len(log))))
    curves = losses.rolling(window, min_periods=1).mean()
    curves.index = np.arange(len(log)) if "round" in log.columns else log.get("step", pd.Series(range(len(log))))
    return curves


def training_figure(logs: Mapping[str, pd.DataFrame], out_png: str | os.PathLike) -> None:
    """One panel per (training, loss term): terms differ in scale (an EBM's loss runs far below zero)."""
    plt = pyplot()
    panels = [
        (name, column, curves)
        for name, log in logs.items()
        for curves in [training_curves(log)]
        for column in curves.columns
    ]
    cols = min(3, max(len(panels), 1))
    rows = max(1, -(-len(panels) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, column, curves) in zip(axes.ravel(), panels):
        ax.plot(curves.index, curves[column])
        if "round" in logs[name].columns:  # mark where each active-learning round starts
            for start in np.flatnonzero(np.diff(logs[name]["round"].to_numpy())) + 1:
                ax.axvline(start, color="grey", linewidth=0.5, linestyle="--")
        ax.set(
            title=name if len(curves.columns) == 1 else f"{name}: {column}",
            xlabel="step",
            ylabel=f"{column} (moving average)",
        )
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    save_figure(fig, out_png)


__all__ = [
    "DATASET_FIGURES",
    "dataset_figures",
    "dataset_pairs",
    "filter_counts_figure",
    "read_filter_report",
    "rejected_examples",
    "rejected_figure",
    "run_pairs",
    "training_curves",
    "training_figure",
]
