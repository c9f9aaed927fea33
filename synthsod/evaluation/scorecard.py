"""The demo's scorecard: every stage's figure against ground truth, each beside its target.

On the scene world every claim of the papers can be measured: the real masks score G_mask on held-out
inversions, the reference segmenter (:mod:`synthsod.evaluation.oracle`) scores generated pairs, and the
benchmark scores the SOD models trained on each data source. :func:`build_scorecard` gathers the
figures the stages wrote into one dict (``results/eval/scorecard.json``); ``checks`` lists each target
as {figure, value, target, met}. :func:`scorecard_markdown` / :func:`scorecard_html` render it for
``summary.md`` and the HTML report.

Targets (config ``scorecard.targets``; a figure without data is reported as missing, never as met)
    den_error_ratio          DEN reconstruction error after training / before, at most
    gmask_heldout_iou        G_mask on G(z⁺) of held-out training images vs their real masks, at least
    run_oracle_iou           run -> mean oracle IoU of its kept pairs, at least
    dq_iou_gain              D_q: mean oracle IoU of kept minus rejected candidates, at least
    reference_max_f          the reference training's max F on the first benchmark, at least
    max_f_ratio              training -> its max F / the reference's, at least
    discovery_over_chance    direction discovery's reconstructor accuracy / chance (1 / K), at least
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

DISCOVERY_TAIL = 0.2  # the reconstructor's accuracy is averaged over the last 20 % of its steps
AT_MOST = ("den_error_ratio",)


def _check(figure: str, key: str, value: float | None, target: float | None) -> dict | None:
    if target is None:
        return None
    at_most = key in AT_MOST
    met = None if value is None else bool(value <= target if at_most else value >= target)
    return {
        "figure": figure,
        "key": key,
        "value": value,
        "target": f"{'<=' if at_most else '>='} {target:g}",
        "met": met,
    }


def _generator_figures(quality: Mapping[str, Any]) -> dict:
    per_truncation = {
        t: {k: v for k, v in figures.items() if k in ("class_consistency", "frechet_distance", "shape_consistency")}
        for t, figures in quality["truncations"].items()
    }
    return {
        "judge_accuracy": quality["classifier"]["heldout_accuracy"],
        "frechet_distance_real_vs_real": quality["frechet_distance_real_vs_real"],
        "chance": quality["chance"],
        "truncations": per_truncation,
    }


def discovery_accuracy(history: pd.DataFrame) -> float:
    """The reconstructor's direction accuracy over the last :data:`DISCOVERY_TAIL` of the logged steps."""
    tail = history.tail(max(1, int(np.ceil(len(history) * DISCOVERY_TAIL))))
    return float(tail["accuracy"].mean())


def build_scorecard(
    targets: Mapping[str, Any],
    *,
    reference: str | None,
    sod: Mapping[str, Mapping[str, Mapping[str, float]]],
    benchmark: str | None = None,
    quality: Mapping[str, Any] | None = None,
    oracle_benchmarks: Mapping[str, Mapping[str, float]] | None = None,
    den: Mapping[str, Any] | None = None,
    den_ablations: Mapping[str, Mapping[str, Any]] | None = None,
    inversion: Mapping[str, Any] | None = None,
    inversion_audit: Mapping[str, Any] | None = None,
    gmask: Mapping[str, Any] | None = None,
    runs: Mapping[str, Mapping[str, Any]] | None = None,
    discovery: tuple[pd.DataFrame, int] | None = None,
) -> dict:
    """The scorecard dict. ``sod[benchmark][training]`` holds evaluation metrics (baselines included);
    ``runs[run]`` = {"filter_report": ..., "audit": ...} (audit: :func:`synthsod.evaluation.oracle.audit_run`);
    ``discovery`` = (history of the discovery, number of directions); ``inversion_audit``:
    :func:`synthsod.evaluation.oracle.audit_inversions`. The reference's targets are read on
    ``benchmark`` (default: the alphabetically first)."""
    card: dict[str, Any] = {"reference_training": reference}
    checks: list[dict | None] = []
    if quality is not None:
        card["generator"] = _generator_figures(quality)
    if oracle_benchmarks:
        card["oracle_on_real"] = dict(oracle_benchmarks)
    if den is not None:
        keys = ("mode", "recon_error_untrained", "recon_error_trained", "error_ratio")
        card["den"] = {k: den[k] for k in keys}
        card["den"]["ablations"] = {mode: {k: m[k] for k in keys} for mode, m in (den_ablations or {}).items()}
        if inversion is not None:  # the encoder's z refined on each image (den.invert.refine_steps)
            card["den"]["inversion"] = {
                "images": inversion["images"],
                "refine_steps": inversion["refine_steps"],
                "recon_error": inversion["recon_error_refined"],
                "error_ratio": inversion["recon_error_refined"] / den["recon_error_untrained"],
            }
            if inversion_audit is not None:
                card["den"]["inversion"]["oracle_audit"] = dict(inversion_audit)
        checks.append(
            _check(
                "DEN: reconstruction error after / before training",
                "den_error_ratio",
                den["error_ratio"],
                targets.get("den_error_ratio"),
            )
        )
    if gmask is not None:
        held = gmask.get("heldout", {})
        card["gmask"] = {
            "shots": gmask.get("train", {}).get("pairs"),
            "heldout_pairs": held.get("pairs"),
            "heldout_iou": held.get("iou"),
            "heldout_dice": held.get("dice"),
            "train_iou": gmask.get("train", {}).get("iou"),
        }
        checks.append(
            _check(
                f"G_mask ({card['gmask']['shots']} shots): held-out IoU vs real masks",
                "gmask_heldout_iou",
                held.get("iou"),
                targets.get("gmask_heldout_iou"),
            )
        )
    card["runs"] = {}
    for run, parts in (runs or {}).items():
        report, audit = parts.get("filter_report"), parts.get("audit")
        entry: dict[str, Any] = {}
        if report is not None:
            entry.update(kept_rate=report["kept_rate"], candidates=report["candidates"], rejected=report["rejected"])
        if audit is not None:
            entry["oracle_iou"] = audit["kept_pairs"]
            checks.append(
                _check(
                    f"run {run}: oracle IoU of its masks",
                    f"run_oracle_iou.{run}",
                    audit["kept_pairs"].get("mean"),
                    (targets.get("run_oracle_iou") or {}).get(run),
                )
            )
            if "dq" in audit:
                entry["dq"] = audit["dq"]
                checks.append(
                    _check(
                        f"run {run}: D_q kept - rejected oracle IoU",
                        "dq_iou_gain",
                        audit["dq"]["kept_minus_rejected"],
                        targets.get("dq_iou_gain"),
                    )
                )
        card["runs"][run] = entry
    if discovery is not None:
        history, directions = discovery
        accuracy = discovery_accuracy(history)
        card["directions"] = {
            "discovery_accuracy": accuracy,
            "chance": 1 / directions,
            "over_chance": accuracy * directions,
            "steps": int(history["step"].max()),
        }
        checks.append(
            _check(
                f"direction discovery: reconstructor accuracy / chance (K = {directions})",
                "discovery_over_chance",
                accuracy * directions,
                targets.get("discovery_over_chance"),
            )
        )
    card["sod"] = {bench: {name: dict(m) for name, m in sorted(trainings.items())} for bench, trainings in sod.items()}
    if reference is not None and sod:
        bench = benchmark or sorted(sod)[0]
        ref = sod[bench].get(reference, {}).get("max_f")
        checks.append(_check(f"{reference} on {bench}: max F", "reference_max_f", ref, targets.get("reference_max_f")))
        ratios = {name: m["max_f"] / ref for name, m in sod[bench].items() if ref and name != reference}
        card["max_f_ratio"] = {"benchmark": bench, **ratios}
        for name, target in (targets.get("max_f_ratio") or {}).items():
            checks.append(
                _check(f"{name} on {bench}: max F / {reference}'s", f"max_f_ratio.{name}", ratios.get(name), target)
            )
    card["checks"] = [c for c in checks if c is not None]
    return card


def _fmt(value: Any) -> str:
    if value is None:
        return "missing"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _verdict(check: Mapping[str, Any]) -> str:
    return {True: "met", False: "MISSED", None: "missing"}[check["met"]]


def _rows(card: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    return [(c["figure"], _fmt(c["value"]), c["target"], _verdict(c)) for c in card["checks"]]


def _details(card: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) lines of the figures without a target."""
    lines = []
    gen = card.get("generator")
    if gen:
        for t, figures in sorted(gen["truncations"].items()):
            lines.append(
                (
                    f"generator at truncation {t}: class / shape consistency, Fréchet distance",
                    f"{_fmt(figures.get('class_consistency'))} / {_fmt(figures.get('shape_consistency'))}, "
                    f"{_fmt(figures.get('frechet_distance'))} (real vs real "
                    f"{_fmt(gen['frechet_distance_real_vs_real'])})",
                )
            )
    for bench, audit in card.get("oracle_on_real", {}).items():
        lines.append((f"reference segmenter on {bench} (real, ground truth): IoU", _fmt(audit.get("mean"))))
    inversion = card.get("den", {}).get("inversion")
    if inversion:
        lines.append(
            (
                f"DEN inversion with {inversion['refine_steps']} refinement steps: error / untrained encoder's",
                _fmt(inversion["error_ratio"]),
            )
        )
    audit = (inversion or {}).get("oracle_audit")
    if audit:
        figure = _fmt(audit["inversions"].get("mean"))
        lines.append(("DEN inversions: oracle IoU of G(z⁺) vs the images' masks", figure))
        if "true_codes" in audit:
            lines.append(
                (
                    "generator fidelity: the same for each scene's true code and class (a perfect inversion)",
                    _fmt(audit["true_codes"].get("mean")),
                )
            )
            lines.append(("DEN inversions: share with the scene's class", _fmt(audit["class_accuracy"])))
    for mode, m in card.get("den", {}).get("ablations", {}).items():
        lines.append((f"DEN ablation '{mode}': reconstruction error after / before", _fmt(m["error_ratio"])))
    for run, entry in card.get("runs", {}).items():
        if "kept_rate" in entry:
            rejected = ", ".join(f"{k} {v}" for k, v in entry["rejected"].items() if v)
            lines.append(
                (f"run {run}: kept share of candidates", f"{_fmt(entry['kept_rate'])} (rejected: {rejected or 'none'})")
            )
        if "dq" in entry:
            dq = entry["dq"]
            lines.append(
                (
                    f"run {run}: oracle IoU of D_q kept / rejected candidates",
                    f"{_fmt(dq['kept'].get('mean'))} ({dq['kept']['pairs']}) / "
                    f"{_fmt(dq['rejected'].get('mean'))} ({dq['rejected']['pairs']})",
                )
            )
    return lines  # the other trainings' ratios: the summary's ratio table, printed beside the scorecard


def scorecard_markdown(card: Mapping[str, Any]) -> str:
    lines = ["## Scorecard (the demo against ground truth)", "", "| figure | value | target | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(card)]
    lines += ["", "| more figures | value |", "|---|---|"]
    lines += [f"| {a} | {b} |" for a, b in _details(card)]
    return "\n".join(lines) + "\n"


def scorecard_html(card: Mapping[str, Any]) -> str:
    def table(header, rows):
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
        return f"<table><tr>{head}</tr>{body}</table>"

    return (
        "<h2>Scorecard (the demo against ground truth)</h2>"
        + table(("figure", "value", "target", ""), _rows(card))
        + "<h3>More figures</h3>"
        + table(("figure", "value"), _details(card))
    )


__all__ = ["build_scorecard", "discovery_accuracy", "scorecard_html", "scorecard_markdown"]
