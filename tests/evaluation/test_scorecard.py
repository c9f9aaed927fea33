"""The demo's scorecard: each stage's figure beside its target, missing figures, ratios, and its rendering."""

from __future__ import annotations

import html

import pandas as pd
import pytest

from synthsod.evaluation.metrics import SCALARS
from synthsod.evaluation.scorecard import build_scorecard, discovery_accuracy, scorecard_html, scorecard_markdown
from synthsod.evaluation.summary import summary_table, write_summary

TARGETS = {
    "den_error_ratio": 0.3,
    "gmask_heldout_iou": 0.85,
    "run_oracle_iou": {"sodgan": 0.85, "ebigbigan": 0.6},
    "dq_iou_gain": 0.05,
    "reference_max_f": 0.9,
    "max_f_ratio": {"syn": 0.95, "atal": 0.9, "absent": 0.5},
    "discovery_over_chance": 5.0,
}


def _den(ratio: float, mode: str = "den") -> dict:
    return {
        "mode": mode,
        "recon_error_untrained": 0.5,
        "recon_error_trained": 0.5 * ratio,
        "error_ratio": ratio,
        "steps": 10,  # other keys are not copied
    }


def _audit(mean: float | None, dq: tuple[float, float] | None = None) -> dict:
    audit = {"kept_pairs": {"pairs": 0} if mean is None else {"pairs": 4, "mean": mean, "median": mean}}
    if dq is not None:
        kept, rejected = dq
        audit["dq"] = {
            "threshold": 0.5,
            "kept": {"pairs": 3, "mean": kept},
            "rejected": {"pairs": 1, "mean": rejected},
            "kept_minus_rejected": kept - rejected,
            "score_iou_correlation": 0.4,
        }
    return audit


def _report(kept_rate: float) -> dict:
    return {"kept_rate": kept_rate, "candidates": 10, "rejected": {"size": 2, "dq": 1, "histogram": 0}}


SOD = {
    "A-TE": {
        "real": {"max_f": 0.8, "mae": 0.1},
        "syn": {"max_f": 0.76},
        "atal": {"max_f": 0.7},
        "otsu": {"max_f": 0.4},
    },
    "B-TE": {"real": {"max_f": 0.5}, "syn": {"max_f": 0.5}},
}


def _card(**changes) -> dict:
    history = pd.DataFrame({"step": range(1, 11), "accuracy": [i / 10 for i in range(10)]})
    kwargs = dict(
        reference="real",
        sod=SOD,
        den=_den(0.2),
        den_ablations={"vae": _den(0.6, "vae")},
        gmask={"train": {"pairs": 6, "iou": 0.95}, "heldout": {"pairs": 20, "iou": 0.8, "dice": 0.88}},
        runs={
            "sodgan": {"filter_report": _report(0.7), "audit": _audit(0.9, dq=(0.8, 0.6))},
            "ebigbigan": {"filter_report": _report(1.0), "audit": _audit(None)},
            "unaudited": {"filter_report": _report(0.5), "audit": None},
        },
        discovery=(history, 8),
    )
    kwargs.update(changes)
    targets = kwargs.pop("targets", TARGETS)
    return build_scorecard(targets, **kwargs)


def _checks(card: dict) -> dict:
    return {check["key"]: check for check in card["checks"]}


def test_checks_compare_each_figure_with_its_target_in_the_right_direction():
    checks = _checks(_card())
    # at most: the DEN's error ratio; at least: everything else
    assert {k: v for k, v in checks["den_error_ratio"].items() if k != "figure"} == {
        "key": "den_error_ratio",
        "value": 0.2,
        "target": "<= 0.3",
        "met": True,
    }
    assert _checks(_card(den=_den(0.4)))["den_error_ratio"]["met"] is False
    assert _checks(_card(den=_den(0.3)))["den_error_ratio"]["met"] is True  # the target itself is met
    assert checks["gmask_heldout_iou"]["target"] == ">= 0.85"
    assert checks["gmask_heldout_iou"]["value"] == 0.8 and checks["gmask_heldout_iou"]["met"] is False
    assert checks["run_oracle_iou.sodgan"]["value"] == 0.9 and checks["run_oracle_iou.sodgan"]["met"] is True
    assert checks["dq_iou_gain"]["value"] == pytest.approx(0.2) and checks["dq_iou_gain"]["met"] is True
    assert _checks(_card(runs={"sodgan": {"audit": _audit(0.9, dq=(0.6, 0.58))}}))["dq_iou_gain"]["met"] is False
    assert checks["reference_max_f"]["value"] == 0.8 and checks["reference_max_f"]["met"] is False
    assert "G_mask (6 shots)" in checks["gmask_heldout_iou"]["figure"]


def test_a_missing_figure_is_reported_as_missing_never_as_met():
    card = _card(gmask={"train": {"pairs": 6}})  # no held-out pairs
    checks = _checks(card)
    assert checks["gmask_heldout_iou"]["value"] is None and checks["gmask_heldout_iou"]["met"] is None
    # a run that kept no pairs has no mean IoU; a training the config does not have no ratio
    assert checks["run_oracle_iou.ebigbigan"]["value"] is None and checks["run_oracle_iou.ebigbigan"]["met"] is None
    assert checks["max_f_ratio.absent"]["value"] is None and checks["max_f_ratio.absent"]["met"] is None
    # without the reference's metrics nothing can be divided by it
    no_ref = _checks(_card(sod={"A-TE": {"syn": {"max_f": 0.7}}}))
    assert no_ref["reference_max_f"]["met"] is None
    assert all(no_ref[f"max_f_ratio.{name}"]["met"] is None for name in ("syn", "atal", "absent"))
    # a run without an audit gets no oracle check; stages without data none either
    assert "run_oracle_iou.unaudited" not in checks
    bare = build_scorecard(TARGETS, reference=None, sod={})
    assert bare["checks"] == [] and bare["runs"] == {} and bare["reference_training"] is None


def test_a_figure_without_a_target_is_not_checked():
    card = _card(targets={"den_error_ratio": 0.3, "run_oracle_iou": {"sodgan": 0.85}})
    assert [c["key"] for c in card["checks"]] == ["den_error_ratio", "run_oracle_iou.sodgan"]
    assert card["gmask"]["heldout_iou"] == 0.8  # still reported
    assert card["runs"]["sodgan"]["dq"]["kept"]["mean"] == 0.8
    assert card["max_f_ratio"]["syn"] == pytest.approx(0.95)


def test_max_f_ratios_are_against_the_reference_on_the_first_benchmark():
    card = _card()
    ratios = card["max_f_ratio"]
    assert ratios["benchmark"] == "A-TE"
    assert {k: v for k, v in ratios.items() if k != "benchmark"} == pytest.approx(
        {"syn": 0.76 / 0.8, "atal": 0.7 / 0.8, "otsu": 0.5}
    )
    checks = _checks(card)
    assert checks["max_f_ratio.syn"]["value"] == pytest.approx(0.95) and checks["max_f_ratio.syn"]["met"] is True
    assert checks["max_f_ratio.atal"]["value"] == pytest.approx(0.875) and checks["max_f_ratio.atal"]["met"] is False
    assert "real" not in card["max_f_ratio"]  # the reference is not divided by itself
    assert card["sod"]["B-TE"] == {"real": {"max_f": 0.5}, "syn": {"max_f": 0.5}}  # every benchmark's metrics


def test_discovery_accuracy_averages_the_last_fifth_of_the_steps():
    history = pd.DataFrame({"step": range(1, 11), "accuracy": [i / 10 for i in range(10)]})
    assert discovery_accuracy(history) == pytest.approx((0.8 + 0.9) / 2)
    assert discovery_accuracy(history.head(7)) == pytest.approx((0.5 + 0.6) / 2)  # ceil(1.4) = 2 steps
    assert discovery_accuracy(history.head(3)) == pytest.approx(0.2)  # at least the last step
    card = _card()
    assert card["directions"] == pytest.approx(
        {"discovery_accuracy": 0.85, "chance": 1 / 8, "over_chance": 0.85 * 8, "steps": 10}
    )
    check = _checks(card)["discovery_over_chance"]
    assert check["value"] == pytest.approx(6.8) and check["met"] is True and "K = 8" in check["figure"]


def test_den_and_run_details_are_carried_into_the_card():
    card = _card()
    assert card["den"] == {
        "mode": "den",
        "recon_error_untrained": 0.5,
        "recon_error_trained": 0.1,
        "error_ratio": 0.2,
        "ablations": {
            "vae": {"mode": "vae", "recon_error_untrained": 0.5, "recon_error_trained": 0.3, "error_ratio": 0.6}
        },
    }
    assert card["runs"]["sodgan"]["kept_rate"] == 0.7 and card["runs"]["unaudited"]["candidates"] == 10
    assert "oracle_iou" not in card["runs"]["unaudited"]
    # the inversion's refined reconstruction error, against the untrained encoder's (den_invert's metrics)
    inversion = {"images": 12, "refine_steps": 2, "recon_error_encoder": 0.3, "recon_error_refined": 0.05}
    with_inversion = _card(inversion=inversion)
    assert with_inversion["den"]["inversion"] == pytest.approx(
        {"images": 12, "refine_steps": 2, "recon_error": 0.05, "error_ratio": 0.1}
    )
    assert "| DEN inversion with 2 refinement steps: error / untrained encoder's | 0.100 |" in scorecard_markdown(
        with_inversion
    )
    # the oracle's audit of the inversions, beside the generator's fidelity on the true codes
    audit = {"inversions": {"pairs": 12, "mean": 0.4}, "true_codes": {"pairs": 12, "mean": 0.7}, "class_accuracy": 0.5}
    audited = _card(inversion=inversion, inversion_audit=audit)
    assert audited["den"]["inversion"]["oracle_audit"] == audit
    text = scorecard_markdown(audited)
    assert "| DEN inversions: oracle IoU of G(z⁺) vs the images' masks | 0.400 |" in text
    assert "(a perfect inversion) | 0.700 |" in text
    assert "| DEN inversions: share with the scene's class | 0.500 |" in text
    unaudited_text = scorecard_markdown(_card(inversion=inversion, inversion_audit={"inversions": {"mean": 0.4}}))
    assert "oracle IoU of G(z⁺)" in unaudited_text and "perfect inversion" not in unaudited_text
    assert "oracle IoU of G(z⁺)" not in scorecard_markdown(with_inversion)


QUALITY = {
    "classifier": {"heldout_accuracy": 0.97},
    "frechet_distance_real_vs_real": 0.002,
    "chance": 0.125,
    "truncations": {"1.0": {"class_consistency": 0.9, "shape_consistency": 0.8, "frechet_distance": 0.01, "n": 3}},
}


def test_markdown_and_html_list_every_check_with_its_verdict():
    card = _card(quality=QUALITY, oracle_benchmarks={"A-TE": {"pairs": 6, "mean": 0.93}})
    verdicts = {True: "met", False: "MISSED", None: "missing"}
    assert {check["met"] for check in card["checks"]} == {True, False, None}  # every verdict occurs
    markdown = scorecard_markdown(card)
    page = scorecard_html(card)
    for check in card["checks"]:
        value = "missing" if check["value"] is None else f"{check['value']:.3f}"
        row = f"| {check['figure']} | {value} | {check['target']} | {verdicts[check['met']]} |"
        assert row in markdown, row
        cells = [check["figure"], value, check["target"], verdicts[check["met"]]]
        assert "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) in page, cells
    # figures without a target come below
    assert "| reference segmenter on A-TE (real, ground truth): IoU | 0.930 |" in markdown
    assert "| DEN ablation 'vae': reconstruction error after / before | 0.600 |" in markdown
    assert "| run sodgan: kept share of candidates | 0.700 (rejected: size 2, dq 1) |" in markdown
    assert "| generator at truncation 1.0: class / shape consistency, Fréchet distance | 0.900 / 0.800, " in markdown
    assert page.count("<table>") == 2 and "&lt;= 0.3" in page


def _table():
    metrics = dict.fromkeys(SCALARS, 0.5)
    return summary_table(
        [
            {"training": "real", "benchmark": "A-TE", "metrics": metrics},
            {"training": "syn", "benchmark": "A-TE", "metrics": {**metrics, "max_f": 0.25}},
        ]
    )


def test_write_summary_puts_the_scorecard_first_in_markdown_and_html(tmp_path):
    card = _card()
    write_summary(_table(), tmp_path / "s.csv", tmp_path / "s.md", "real", tmp_path / "s.html", card)
    markdown = (tmp_path / "s.md").read_text()
    assert scorecard_markdown(card) in markdown
    assert markdown.index("## Scorecard") < markdown.index("## Benchmark") < markdown.index("## Ratio to `real`")
    page = (tmp_path / "s.html").read_text()
    assert scorecard_html(card) in page
    assert page.index("Scorecard") < page.index("<h2>Benchmark</h2>")
    assert page.count("<table") == 4  # the scorecard's two, the metrics and the ratios
    # without one: no scorecard section
    write_summary(_table(), tmp_path / "t.csv", tmp_path / "t.md", "real", tmp_path / "t.html")
    assert "Scorecard" not in (tmp_path / "t.md").read_text() and "Scorecard" not in (tmp_path / "t.html").read_text()
    assert pd.read_csv(tmp_path / "s.csv").equals(pd.read_csv(tmp_path / "t.csv"))
