"""Training the cooperative pair: resume, learning while recovering from points, save/load, prediction
with uncertainty maps, and the EBM refinement of another model's maps."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from synthsod.data.prepare import load_gray
from synthsod.errors import SynthsodError
from synthsod.sod.coop.model import CoopSaliency
from synthsod.sod.coop.train import train_coop
from synthsod.sod.point_labels import PointLabelled
from synthsod.sod.predict import refine_predictions, write_predictions
from synthsod.sod.train import Recipe, load_sod_model, normalise, save_sod_model

SIZE = 32
MODEL = dict(image_size=SIZE, backbone="resnet18", channels=16, config={"ebm_steps": 2, "lvm_steps": 2, "draws": 2})
RECIPE = dict(
    optimizer="adam",
    lr=1e-3,
    backbone_lr=1e-3,
    weight_decay=0.0,
    batch_size=2,
    steps=4,
    schedule="constant",
    sizes=[SIZE],
    checkpoint_every=2,
)


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=4, flip_region=None):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, SIZE, SIZE, generator=gen) * 2 - 1
        self.masks = (self.images[:, :1] > 0).float()
        if flip_region is not None:
            self.masks[..., flip_region] = 1 - self.masks[..., flip_region]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"id": f"toy{i}", "image": self.images[i], "mask": self.masks[i]}


def same_weights(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_a_killed_coop_training_resumes_to_the_same_lvm_and_ebm(tmp_path):
    uninterrupted = train_coop(ToyData(), Recipe(**RECIPE), seed=1, model_kwargs=MODEL)
    checkpoint = tmp_path / "ckpt.pt"

    def kill(step, losses):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_coop(ToyData(), Recipe(**RECIPE), seed=1, model_kwargs=MODEL, checkpoint_path=checkpoint, on_step=kill)
    assert torch.load(checkpoint, weights_only=True)["step"] == 2
    resumed = train_coop(ToyData(), Recipe(**RECIPE), seed=1, model_kwargs=MODEL, checkpoint_path=checkpoint)
    assert same_weights(uninterrupted, resumed)
    assert not same_weights(uninterrupted, train_coop(ToyData(), Recipe(**RECIPE), seed=2, model_kwargs=MODEL))


def test_coop_trains_at_its_ebm_size_only():
    with pytest.raises(SynthsodError, match=r"recipe sizes must be \[32\]"):
        train_coop(ToyData(), Recipe(**{**RECIPE, "sizes": [16, 32]}), model_kwargs=MODEL)


def test_learning_while_recovering_never_reads_unannotated_labels():
    recipe = Recipe(**{**RECIPE, "crop_fraction": 0.8})  # crops and resizes: no leak across disk borders either

    def trained(data):
        return train_coop(PointLabelled(data, count=5, radius=1, seed=0), recipe, model_kwargs=MODEL)

    visible = [PointLabelled(ToyData(), count=5, radius=1)[i]["visible"].bool() for i in range(4)]
    hidden_flipped, visible_flipped = ToyData(), ToyData()
    for i, seen in enumerate(visible):
        hidden_flipped.masks[i][~seen] = 1 - hidden_flipped.masks[i][~seen]
    visible_flipped.masks[0][visible[0]] = 1 - visible_flipped.masks[0][visible[0]]
    reference = trained(ToyData())
    assert same_weights(reference, trained(hidden_flipped))
    assert not same_weights(reference, trained(visible_flipped))


def test_a_saved_coop_model_predicts_maps_uncertainty_and_refines_other_maps(tmp_path):
    model = train_coop(ToyData(), Recipe(**{**RECIPE, "steps": 1}), model_kwargs=MODEL)
    save_sod_model(tmp_path / "model.pt", model, "coop", "bce", MODEL, None)
    loaded, channel = load_sod_model(tmp_path / "model.pt")
    assert isinstance(loaded, CoopSaliency) and channel is None
    images = ToyData().images[:2]
    torch.testing.assert_close(loaded(images)[0], model(images)[0])
    torch.testing.assert_close(loaded(images)[0], loaded(images)[0])  # fixed draws: deterministic

    rows = []
    for i in range(3):  # benchmark images of their own sizes
        path = tmp_path / f"im{i}.png"
        cv2.imwrite(str(path), np.full((40 + 8 * i, 36, 3), 60 * i, np.uint8))
        rows.append({"id": f"im{i}", "image": str(path)})
    manifest = pd.DataFrame(rows)
    assert (
        write_predictions(
            loaded, manifest, tmp_path / "pred", SIZE, None, batch_size=2, uncertainty_dir=tmp_path / "unc"
        )
        == 3
    )
    for i in range(3):
        assert load_gray(tmp_path / "pred" / f"im{i}.png").shape == (40 + 8 * i, 36)
        assert load_gray(tmp_path / "unc" / f"im{i}.png").shape == (40 + 8 * i, 36)
    with pytest.raises(SynthsodError, match="only the coop model gives uncertainty"):
        write_predictions(torch.nn.Conv2d(3, 1, 1), manifest, tmp_path / "x", SIZE, None, uncertainty_dir=tmp_path)

    base = tmp_path / "base"
    base.mkdir()
    for i in range(3):
        cv2.imwrite(str(base / f"im{i}.png"), np.full((40 + 8 * i, 36), 128, np.uint8))
    assert refine_predictions(loaded, manifest, base, tmp_path / "refined") == 3
    refined = load_gray(tmp_path / "refined" / "im0.png").astype(float)
    image = (
        torch.from_numpy(
            cv2.resize(
                cv2.imread(str(tmp_path / "im0.png"))[..., ::-1], (SIZE, SIZE), interpolation=cv2.INTER_AREA
            ).copy()
        )
        .permute(2, 0, 1)
        .float()
        / 127.5
        - 1
    )
    expected = loaded.refine(normalise(image[None]), torch.full((1, 1, SIZE, SIZE), 128 / 255))
    expected = cv2.resize(expected[0, 0].numpy(), (36, 40), interpolation=cv2.INTER_LINEAR) * 255
    assert np.abs(refined - expected).max() <= 1.0

    class TowardsOne(torch.nn.Module):  # an energy whose descent brightens every pixel
        image_size = SIZE

        def forward(self, saliency, images):
            return ((saliency - 1) ** 2).flatten(1).sum(1)

    loaded.ebm = TowardsOne()
    refine_predictions(loaded, manifest, base, tmp_path / "brighter")
    assert (load_gray(tmp_path / "brighter" / "im0.png") > 140).all()
    (base / "im2.png").unlink()
    with pytest.raises(SynthsodError, match="base: no saliency map for 1 of the 3 benchmark images.* stems: im2$"):
        refine_predictions(loaded, manifest, base, tmp_path / "refined2")
