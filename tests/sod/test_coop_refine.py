"""EBM refinement of another model's prediction folder (config coop_refine:, rule ebm_refine_folder): the
folder check, the config checks, and a real run whose maps the existing evaluate rule scores."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_workdir, small_config
from test_workflow import planned_jobs

from synthsod.data.prepare import load_gray
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.predict import prediction_files, refine_predictions
from synthsod.sod.train import save_sod_model

pytestmark = pytest.mark.workflow

SIZE = 32
MODEL = dict(image_size=SIZE, backbone="resnet18", channels=16, config={"ebm_steps": 3})
NAME, BENCH = "basnet+coop", "DEMO-TE"


def write_maps(folder: Path, stems, value=128, shape=(40, 36)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}.png"), np.full(shape, value, np.uint8))
    return folder


def test_a_folder_must_hold_one_map_per_benchmark_image(tmp_path):
    ids = [f"im{i}" for i in range(14)]
    with pytest.raises(SynthsodError, match=r"nowhere: no such folder of saliency maps"):
        prediction_files(tmp_path / "nowhere", ids)
    folder = write_maps(tmp_path / "maps", ids[:2])
    (folder / "im2.jpg").write_bytes(b"")  # not a PNG: missing all the same
    with pytest.raises(SynthsodError) as err:
        prediction_files(folder, ids)
    message = str(err.value)
    assert message.startswith(f"{folder}: no saliency map for 12 of the 14 benchmark images (the folder holds 2")
    assert "missing stems: im2, im3, im4, im5, im6, im7, im8, im9, im10, im11, ... (2 more)" in message
    other = write_maps(tmp_path / "other", ["x0", "x1"])  # another benchmark's maps
    with pytest.raises(SynthsodError, match=r"other: no saliency map for 2 of the 2 .*missing stems: im0, im1$"):
        prediction_files(other, ids[:2])
    assert prediction_files(folder, ids[:2]) == {"im0": folder / "im0.png", "im1": folder / "im1.png"}
    with pytest.raises(SynthsodError, match="only a coop model's EBM refines saliency maps, not Conv2d"):
        refine_predictions(torch.nn.Conv2d(3, 1, 1), pd.DataFrame({"id": ids[:2]}), folder, tmp_path / "out")


def refine_config(predictions="maps/basnet", **changes):
    config = small_config()
    config["coop_refine"] = {NAME: {"model": "coop", "predictions": {BENCH: predictions}, **changes}}
    return config


def test_a_dry_run_refines_the_folder_and_evaluates_it_like_a_training(tmp_path):
    workdir = make_workdir(tmp_path / "work", refine_config())
    (workdir.path / "maps" / "basnet").mkdir(parents=True)
    result = workdir.dry_run()
    assert result.returncode == 0, result.describe()
    jobs = planned_jobs(result.output)
    assert jobs[f"ebm_refine_folder[refined={NAME}, bench={BENCH}]"] == 1, result.describe()
    assert jobs[f"evaluate[sod={NAME}, bench={BENCH}]"] == 1, result.describe()
    assert f"results/eval/{NAME}/{BENCH}/metrics.json" in result.output.split("rule summarize:")[1]


def test_a_missing_folder_is_named_before_any_job(tmp_path):
    result = make_workdir(tmp_path / "work", refine_config()).dry_run()
    assert result.returncode != 0
    assert re.search(r"Missing input files for rule ebm_refine_folder:.*maps/basnet", result.output, re.S), (
        result.describe()
    )


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (refine_config(model="unet-real"), f"coop_refine.{NAME}.model: 'unet-real' is not a coop training under sod:"),
        (
            {**refine_config(), "coop_refine": {"unet-real": {"model": "coop", "predictions": {BENCH: "m"}}}},
            "coop_refine.unet-real: 'unet-real' is already a training, baseline or refined row; rename it",
        ),
        (
            {**refine_config(), "coop_refine": {"x": {"model": "coop", "predictions": {"NOPE": "m"}}}},
            "coop_refine.x.predictions: 'NOPE' is not a dataset under datasets:",
        ),
    ],
)
def test_inconsistent_refinements_stop_before_any_job(tmp_path, config, expected):
    result = make_workdir(tmp_path / "work", config).dry_run()
    assert result.returncode != 0 and expected in result.output, result.describe()
    assert "Building DAG" not in result.output


def test_the_rule_refines_every_map_with_the_coop_ebm_and_evaluate_scores_them(tmp_path):
    workdir = make_workdir(tmp_path / "work", refine_config())
    root = workdir.path
    torch.manual_seed(0)
    model = CoopSaliency(**MODEL).eval()
    with torch.no_grad():
        model.ebm.fc[-1].weight.mul_(1000)  # a steep energy: the revision visibly moves the maps
    save_sod_model(root / "results/sod/coop/model.pt", model, "coop", "bce", MODEL, None)
    rows = []
    for i in range(3):
        image, mask = root / f"bench/im{i}.png", root / f"bench/gt{i}.png"
        image.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(image), np.full((40, 36, 3), 70 * i, np.uint8))
        cv2.imwrite(str(mask), np.pad(np.full((20, 20), 255, np.uint8), ((10, 10), (8, 8))))
        rows.append({"id": f"im{i}", "image": str(image), "mask": str(mask)})
    manifest = pd.DataFrame(rows)
    (root / f"results/data/{BENCH}").mkdir(parents=True)
    manifest.to_parquet(root / f"results/data/{BENCH}/manifest.parquet")
    write_maps(root / "maps/basnet", ["im0", "im1", "im2"], value=150)

    target = f"results/eval/{NAME}/{BENCH}/metrics.json"
    result = workdir.run("--cores", "1", target, "--allowed-rules", "ebm_refine_folder", "evaluate")
    assert result.returncode == 0, result.describe()
    metrics = json.loads((root / target).read_text())
    assert metrics["training"] == NAME and metrics["images"] == 3
    assert (root / f"results/logs/ebm_refine_folder/{NAME}/{BENCH}.log").exists()
    assert (root / f"results/benchmarks/ebm_refine_folder/{NAME}/{BENCH}.tsv").exists()

    expected = tmp_path / "expected"
    refine_predictions(model, manifest, root / "maps/basnet", expected)
    for i in range(3):
        refined = load_gray(root / f"results/pred/{NAME}/{BENCH}/im{i}.png")
        assert refined.shape == (40, 36)
        assert np.array_equal(refined, load_gray(expected / f"im{i}.png"))
    assert not np.array_equal(load_gray(expected / "im0.png"), np.full((40, 36), 150, np.uint8))  # it revised
