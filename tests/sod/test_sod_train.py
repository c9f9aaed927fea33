"""SOD training: schedules, epoch sampling, augmentation, loss wiring, and resume after a kill."""

from __future__ import annotations

import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.fit import fit_sod, model_options, save_training
from synthsod.sod.losses import cas_loss
from synthsod.sod.predict import prediction_channel, probabilities
from synthsod.sod.train import (
    Recipe,
    augment,
    batch_indices,
    load_sod_model,
    lr_factor,
    model_loss,
    save_sod_model,
    train_sod,
)


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=6, size=32):
        gen = torch.Generator().manual_seed(0)
        self.images = torch.rand(n, 3, size, size, generator=gen) * 2 - 1
        self.masks = (self.images[:, :1] > 0).float()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "mask": self.masks[i]}


SMALL = dict(
    optimizer="adam",
    lr=1e-3,
    backbone_lr=1e-3,
    weight_decay=0.0,
    batch_size=2,
    steps=6,
    schedule="step",
    step_size=3,
    gamma=0.2,
    sizes=[16, 32],
    checkpoint_every=2,
)


def test_triangular_schedule_is_f3nets_per_epoch_triangle():
    recipe = Recipe(epochs=4)  # 10 steps per epoch below
    factors = [lr_factor(recipe, step, 10) for step in (0, 9, 10, 25, 39)]
    assert factors == pytest.approx([2 / 5, 2 / 5, 4 / 5, 4 / 5, 2 / 5])  # 1 - |2 (e + 1) / 5 - 1|
    assert lr_factor(Recipe(schedule="step", step_size=8000, gamma=0.2), 8000, 10) == pytest.approx(0.2)
    assert lr_factor(Recipe(schedule="step", step_size=8000, gamma=0.2), 7999, 10) == 1.0


def test_each_epoch_visits_every_sample_once():
    seen = torch.cat([batch_indices(0, step, 7, 3) for step in range(3)])  # 3 steps = one epoch of 7
    assert sorted(seen.tolist()) == list(range(7))
    assert not torch.equal(torch.cat([batch_indices(0, s, 7, 3) for s in range(3, 6)]), seen)  # reshuffled


def test_augment_crops_flips_and_resizes_the_batch_to_one_size():
    images = torch.arange(2 * 3 * 20 * 20, dtype=torch.float32).reshape(2, 3, 20, 20)
    masks = (images[:, :1] > images.mean()).float()
    out_images, out_masks = augment(
        images, masks, Recipe(sizes=[8], crop_fraction=0.5), torch.Generator().manual_seed(1)
    )
    assert out_images.shape == (2, 3, 8, 8) and out_masks.shape == (2, 1, 8, 8)
    assert 0 <= out_masks.min() and out_masks.max() <= 1


def test_losses_that_do_not_fit_the_model_are_refused():
    with pytest.raises(SynthsodError, match="F3Net predicts one channel; loss 'cas' needs 2"):
        model_loss("f3net", "cas")
    with pytest.raises(SynthsodError, match="unknown loss 'dice'"):
        model_loss("unet", "dice")


@pytest.mark.parametrize("loss", ["ce", "cas"])
def test_a_killed_training_resumes_to_the_same_weights(tmp_path, loss):
    data = ToyData()
    kwargs = dict(model_kwargs={"base": 4, "depth": 2}, seed=3)
    uninterrupted = train_sod("unet", loss, data, Recipe(**SMALL), **kwargs)

    checkpoint = tmp_path / "ckpt.pt"

    def kill_at_step_5(step, value):
        if step == 4:
            raise KeyboardInterrupt  # after the checkpoint of step 4 was written

    with pytest.raises(KeyboardInterrupt):
        train_sod("unet", loss, data, Recipe(**SMALL), checkpoint_path=checkpoint, on_step=kill_at_step_5, **kwargs)
    assert torch.load(checkpoint, weights_only=True)["step"] == 4
    resumed = train_sod("unet", loss, data, Recipe(**SMALL), checkpoint_path=checkpoint, **kwargs)
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(SynthsodError, match="another recipe"):
        train_sod("unet", loss, data, Recipe(**{**SMALL, "lr": 0.5}), checkpoint_path=checkpoint, **kwargs)


@pytest.mark.parametrize("loss, channel", [("ce", 1), ("bce", None)])
def test_a_saved_model_loads_back_with_its_saliency_channel(tmp_path, loss, channel):
    data = ToyData()
    model = train_sod("unet", loss, data, Recipe(**{**SMALL, "steps": 2}), model_kwargs={"base": 4, "depth": 2})
    images, masks = data.images[:2], data.masks[:2]
    assert prediction_channel(model, loss, images, masks) == channel
    save_sod_model(tmp_path / "model.pt", model, "unet", loss, {"base": 4, "depth": 2}, channel)
    loaded, saved_channel = load_sod_model(tmp_path / "model.pt")
    assert saved_channel == channel
    torch.testing.assert_close(probabilities(loaded, images, channel), probabilities(model, images, channel))
    with pytest.raises(SynthsodError, match="not a SOD model checkpoint"):
        load_sod_model(tmp_path / "missing.pt")


def test_training_lowers_the_loss_on_a_learnable_toy():
    values = []
    train_sod(
        "unet",
        "ce",
        ToyData(n=8),
        Recipe(**{**SMALL, "steps": 40, "schedule": "constant", "lr": 1e-2, "sizes": [32]}),
        model_kwargs={"base": 4, "depth": 2},
        on_step=lambda step, value: values.append(value),
    )
    assert sum(values[-5:]) / 5 < 0.7 * sum(values[:5]) / 5


def test_cas_alpha_reaches_the_loss():
    outputs, masks = [torch.randn(2, 3, 8, 8)], (torch.rand(2, 1, 8, 8) > 0.5).float()
    value = model_loss("unet", "cas", {"alpha": 0.5})(outputs, masks)
    assert value.item() == pytest.approx(cas_loss(outputs[0], masks, alpha=0.5).item())
    assert value.item() != pytest.approx(model_loss("unet", "cas")(outputs, masks).item())


def _cas_spec(model, options, channels):
    recipe = {**SMALL, "steps": 1, "sizes": [16], "checkpoint_every": 100}
    return {
        "model": model,
        "loss": "cas",
        "model_options": options,
        "backbone_weights": None,
        "cas": {"channels": channels, "alpha": 0.1},
        "recipe": recipe,
        "seed": 0,
        "eval_size": 32,
    }


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(
    "model, options", [("unet", {"base": 4, "depth": 2}), ("deeplabv3-resnet101", {"backbone": "resnet50"})]
)
def test_cas_trains_any_channel_model_with_m_channels_and_predicts_one_map(tmp_path, model, options):
    spec = _cas_spec(model, options, channels=3)
    data = ToyData(n=4)
    trained = fit_sod(spec, data)
    assert trained.model_options["out_channels"] == 3 and trained.channel in (0, 1, 2)
    save_training(tmp_path / "model.pt", tmp_path / "log.csv", spec, trained)
    loaded, channel = load_sod_model(tmp_path / "model.pt")
    assert channel == trained.channel
    maps = probabilities(loaded, data.images[:2], channel)
    assert maps.shape == (2, 1, 32, 32) and 0 <= maps.min() and maps.max() <= 1
    torch.testing.assert_close(maps, probabilities(trained.model, data.images[:2], channel))


def test_cas_channels_and_model_options_must_agree():
    spec = _cas_spec("unet", {"base": 4, "out_channels": 2}, channels=3)
    with pytest.raises(SynthsodError, match=r"out_channels \(2\) and cas.channels \(3\) differ"):
        model_options(spec)
    assert "out_channels" not in model_options({**spec, "loss": "ce", "model_options": {}})
