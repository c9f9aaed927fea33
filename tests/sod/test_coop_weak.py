"""Cooperative saliency's weakly supervised row (S-DUTS scribbles, learning while recovering) and its
prediction options: the mean of ``draws`` LVM samples wherever the model predicts."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

import synthsod.sod.coop.train as coop_train
from synthsod.data.datasets import ManifestDataset
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.coop.scribbles import ScribbleLabelled, dataset_ids, read_scribble
from synthsod.sod.point_labels import PointLabelled
from synthsod.sod.train import Recipe, load_sod_model, normalise, save_sod_model

SIZE = 32
MODEL = dict(image_size=SIZE, backbone="resnet18", channels=16, config={"ebm_steps": 2, "lvm_steps": 1})
RECIPE = dict(optimizer="adam", lr=1e-3, backbone_lr=1e-3, weight_decay=0.0, batch_size=2, steps=1)
RECIPE |= dict(schedule="constant", sizes=[SIZE], crop_fraction=1.0, flip=False, checkpoint_every=10)


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=2):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, SIZE, SIZE, generator=gen) * 2 - 1
        self.masks = torch.ones(n, 1, SIZE, SIZE)  # full masks the scribbles must replace

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"id": f"toy{i}", "image": self.images[i], "mask": self.masks[i]}


def scribble(side=64):
    """A 1-px salient stroke (row 10) and a 3-px background stroke (rows 40-42) on an unknown field."""
    labels = np.zeros((side, side), np.uint8)
    labels[10, 4:60] = 1
    labels[40:43, 4:60] = 2
    return labels


def write_scribbles(folder, stems):
    folder.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        cv2.imwrite(str(folder / f"{stem}.png"), scribble())
    return folder


def test_scribbles_become_labels_where_annotated_and_thin_strokes_survive_shrinking(tmp_path):
    path = write_scribbles(tmp_path, ["a"]) / "a.png"
    labels, visible = read_scribble(path, SIZE)  # 64 -> 32: the 1-px stroke covers half of each pixel
    expected_visible = np.zeros((SIZE, SIZE), bool)
    expected_visible[5, 2:30] = True
    expected_visible[20:22, 2:30] = True
    assert np.array_equal(visible > 0, expected_visible)
    assert np.array_equal(labels > 0, expected_visible & (np.arange(SIZE)[:, None] == 5))
    cv2.imwrite(str(path), np.full((8, 8), 255, np.uint8))  # a binary mask, not S-DUTS's 0/1/2
    with pytest.raises(SynthsodError, match=r"a.png: scribble labels are 0 \(unknown\), 1 .* found \[255\]"):
        read_scribble(path, SIZE)


def test_a_scribble_set_replaces_the_masks_and_names_missing_files(tmp_path):
    data = ToyData(3)
    with pytest.raises(SynthsodError, match=r"scribbles: no scribble label for 1 of the 3 .*missing stems: toy2$"):
        ScribbleLabelled(data, write_scribbles(tmp_path / "scribbles", ["toy0", "toy1"]))
    with pytest.raises(SynthsodError, match="nowhere: no such folder of scribble labels"):
        ScribbleLabelled(data, tmp_path / "nowhere")
    item = ScribbleLabelled(data, write_scribbles(tmp_path / "scribbles", ["toy2"]))[1]
    labels, visible = read_scribble(tmp_path / "scribbles" / "toy1.png", SIZE)
    assert torch.equal(item["mask"][0], torch.from_numpy(labels))
    assert torch.equal(item["visible"][0], torch.from_numpy(visible))
    assert item["mask"].sum() < data.masks[1].sum()  # the full mask is gone
    # ids of a prepared dataset come from its manifest, no image decoded (these paths do not exist)
    manifest = pd.DataFrame({"id": ["b", "a"], "image": ["/no/b.jpg", "/no/a.jpg"], "mask": ["/no/b", "/no/a"]})
    wrapped = PointLabelled(torch.utils.data.ConcatDataset([ManifestDataset(manifest, SIZE), data]), 1)
    assert dataset_ids(wrapped) == [
        "b",
        "a",
        "toy0",
        "toy1",
        "toy2",
    ]


class Stop(Exception):
    pass


def test_coop_scribbles_make_training_learn_while_recovering_from_them(tmp_path, monkeypatch):
    folder = write_scribbles(tmp_path / "scribbles", ["toy0", "toy1"])
    seen = {}

    def first_step(lvm, ebm, opt_lvm, opt_ebm, images, targets, cfg, *, ce_weight, visible, generator):
        seen.update(targets=targets, visible=visible)
        raise Stop

    monkeypatch.setattr(coop_train, "coop_step", first_step)
    model = {**MODEL, "config": {**MODEL["config"], "scribbles": str(folder)}}
    with pytest.raises(Stop):
        coop_train.train_coop(ToyData(), Recipe(**RECIPE), model_kwargs=model)
    _, visible = read_scribble(folder / "toy0.png", SIZE)
    assert seen["visible"] is not None  # Algorithm 2: recovered maps, labels where the scribbles are
    assert {tuple(v[0].numpy().ravel()) for v in seen["visible"]} == {tuple(visible.ravel())}
    labels = torch.from_numpy(read_scribble(folder / "toy0.png", SIZE)[0])
    on_scribbles = seen["targets"][:, 0][seen["visible"][:, 0] > 0]
    assert torch.equal(on_scribbles, labels[visible > 0].repeat(2))  # recovery keeps the annotated pixels
    with pytest.raises(SynthsodError, match="coop.scribbles and point_labels both give partial labels"):
        coop_train.train_coop(PointLabelled(ToyData(), 3), Recipe(**RECIPE), model_kwargs=model)


def test_prediction_averages_the_configured_draws_and_refinement_draws_none(tmp_path):
    torch.manual_seed(0)
    options = {**MODEL, "config": {**MODEL["config"], "draws": 10}}  # the paper's 10
    save_sod_model(tmp_path / "model.pt", CoopSaliency(**options), "coop", "bce", options, None)
    model, _ = load_sod_model(tmp_path / "model.pt")
    assert model.config.draws == 10  # the training's coop: section travels with the model file
    calls = []
    decode = model.lvm.decode
    model.lvm.decode = lambda *args, **kwargs: calls.append(1) or decode(*args, **kwargs)
    images = normalise(ToyData().images)
    saliency, _ = model.predict(images)
    assert len(calls) == 10
    model(images)  # forward, the rule sod_predict's path, predicts the same way
    assert len(calls) == 20
    model.refine(images, saliency)  # the EBM alone revises another model's maps
    assert len(calls) == 20
