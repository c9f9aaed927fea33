"""The config expresses cooperative saliency's paper rows: "Ours F" (DUTS-TR masks), "Ours W" (S-DUTS
scribbles, learning while recovering), 10 draws at prediction, and "BASN R" / "SCRN R" (published maps
refined by the EBM), as configs/paper/coop.yaml writes them."""

from __future__ import annotations

from conftest import merged_config

from synthsod.core.settings import from_section
from synthsod.sod.coop.model import CoopConfig

BENCHMARKS = ["DUTS-TE", "ECSSD", "DUT-OMRON", "HKU-IS", "PASCAL-S", "SOD"]


def test_full_and_weak_rows_differ_only_in_their_scribbles_and_predict_with_10_draws():
    sod = merged_config("configs/paper/coop.yaml")["sod"]
    full, weak = (from_section(CoopConfig, sod[name]["coop"], where=name) for name in ("coop", "coop-scribble"))
    assert full.draws == weak.draws == 10
    assert full.scribbles is None and weak.scribbles == "data/S-DUTS/scribbles"
    assert {k: v for k, v in sod["coop"].items() if k != "coop"} == {
        k: v for k, v in sod["coop-scribble"].items() if k != "coop"
    }
    assert sod["coop-scribble"]["point_labels"] is None  # scribbles, not simulated points


def test_a_refined_folder_per_benchmark_names_its_coop_model():
    refine = merged_config("configs/paper/coop.yaml")["coop_refine"]
    assert refine["basnet+coop"]["model"] == "coop"
    assert sorted(refine["basnet+coop"]["predictions"]) == sorted(BENCHMARKS)
    assert refine["scrn+coop"]["model"] == "coop" and sorted(refine["scrn+coop"]["predictions"]) == sorted(BENCHMARKS)
    assert merged_config()["coop_refine"] == {}  # the default: nothing to refine
