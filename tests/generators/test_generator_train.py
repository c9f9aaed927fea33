"""The scene generator's training: deterministic, resumable across the phase change, exported as a
released model; and the shipped weights load through the released models' loader."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from synthsod.core.checkpoint import step_generator
from synthsod.data import scenes
from synthsod.errors import SynthsodError
from synthsod.generators import create_generator
from synthsod.generators.biggan import load_biggan
from synthsod.generators.train import (
    DISCRIMINATOR,
    GANTrainConfig,
    diff_augment,
    load_discriminator,
    pretrain_set,
    save_scene_gan,
    train_scene_gan,
)

REPO = Path(__file__).resolve().parents[2]
SMALL = GANTrainConfig(
    channel_width=4,
    d_width=4,
    batch_size=4,
    steps_reconstruct=2,
    steps_adversarial=2,
    checkpoint_every=1,
    pretrain_size=12,
    calibration_batch=4,
)


@pytest.fixture(scope="module")
def data():
    return pretrain_set(0, SMALL.pretrain_size)


def _state(net):
    return {k: v.clone() for k, v in net.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_pretrain_set_has_images_classes_and_codes_but_no_masks(data):
    assert data.images.shape == (12, 64, 64, 3) and data.class_ids.shape == (12,) and data.codes.shape == (12, 128)
    assert not hasattr(data, "masks")
    first = scenes.scene(0, 0)
    assert np.array_equal(data.images[0], first.image) and data.class_ids[0] == first.class_id


def test_two_trainings_from_one_seed_give_identical_weights(data, tmp_path):
    g1, d1 = train_scene_gan(tmp_path / "a", data, scenes.NUM_CLASSES, SMALL)
    g2, d2 = train_scene_gan(tmp_path / "b", data, scenes.NUM_CLASSES, SMALL)
    assert _same(_state(g1), _state(g2)) and _same(_state(d1), _state(d2))
    g3, _ = train_scene_gan(tmp_path / "c", data, scenes.NUM_CLASSES, dataclasses.replace(SMALL, seed=1))
    assert not _same(_state(g1), _state(g3))
    log = (tmp_path / "a" / "train_log.csv").read_text().splitlines()
    assert len(log) == 1 + SMALL.total_steps and "adversarial" in log[-1] and "reconstruct" in log[1]


def test_a_resumed_training_equals_an_uninterrupted_one(data, tmp_path):
    whole, whole_d = train_scene_gan(tmp_path / "whole", data, scenes.NUM_CLASSES, SMALL)
    # "killed" after the first adversarial step (its checkpoint), then run again with the full schedule
    train_scene_gan(tmp_path / "resumed", data, scenes.NUM_CLASSES, dataclasses.replace(SMALL, steps_adversarial=1))
    resumed, resumed_d = train_scene_gan(tmp_path / "resumed", data, scenes.NUM_CLASSES, SMALL)
    assert _same(_state(whole), _state(resumed)) and _same(_state(whole_d), _state(resumed_d))
    assert (tmp_path / "whole" / "train_log.csv").read_text() == (tmp_path / "resumed" / "train_log.csv").read_text()
    with pytest.raises(SynthsodError, match="other settings"):
        train_scene_gan(tmp_path / "resumed", data, scenes.NUM_CLASSES, dataclasses.replace(SMALL, lr_g=1e-3))
    # the adversarial phase's settings are fixed once it has begun ...
    with pytest.raises(SynthsodError, match="adv_weight differ after the adversarial phase began"):
        train_scene_gan(tmp_path / "resumed", data, scenes.NUM_CLASSES, dataclasses.replace(SMALL, adv_weight=0.5))


def test_the_adversarial_phase_may_be_retuned_and_moved_until_it_begins(data, tmp_path):
    early = dataclasses.replace(SMALL, steps_reconstruct=1, steps_adversarial=0)
    train_scene_gan(tmp_path / "t", data, scenes.NUM_CLASSES, early)  # checkpoint at step 1
    later = dataclasses.replace(SMALL, steps_reconstruct=3, steps_adversarial=1, adv_weight=0.5)
    resumed, _ = train_scene_gan(tmp_path / "t", data, scenes.NUM_CLASSES, later)
    fresh, _ = train_scene_gan(tmp_path / "fresh", data, scenes.NUM_CLASSES, later)
    assert _same(_state(resumed), _state(fresh))


def test_an_exported_generator_is_a_released_model(data, tmp_path):
    generator, discriminator = train_scene_gan(tmp_path / "t", data, scenes.NUM_CLASSES, SMALL)
    save_scene_gan(generator, discriminator, tmp_path / "out")
    loaded = create_generator("scene", str(tmp_path / "out"))
    z, ids = np.zeros((2, 128), np.float32), np.array([0, 5])
    out = loaded.generate(z, ids, truncation=0.5)
    assert torch.isfinite(out.images).all() and out.features
    # fp16 storage: the loaded model matches the exported one to half precision
    with torch.no_grad():
        direct = generator(torch.zeros(2, 128), loaded.one_hot(ids), 0.5)
    assert (direct - out.images).abs().max() < 0.05
    disc = load_discriminator(tmp_path / "out" / DISCRIMINATOR)
    assert disc(out.images, torch.tensor(ids)).shape == (2,)


def test_diff_augment_is_deterministic_per_generator():
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    a, b = diff_augment(x, step_generator(0, 5)), diff_augment(x, step_generator(0, 5))
    assert torch.equal(a, b) and not torch.equal(a, diff_augment(x, step_generator(0, 6)))
    assert not torch.equal(a, x)


# --- the shipped generator ------------------------------------------------------------------------
def _shipped():
    spec = yaml.safe_load((REPO / "config.yaml").read_text())["generators"]["scene"]
    return REPO / spec["weights"], spec["sha256"]


def test_the_shipped_weights_load_match_their_sha256_and_give_finite_images():
    weights, sha256 = _shipped()
    assert (weights / "pytorch_model.bin").stat().st_size <= 5 * 2**20
    generator = create_generator("scene", str(weights), sha256=sha256)
    assert generator.num_classes == scenes.NUM_CLASSES and generator.resolution == 64
    z, ids = np.random.default_rng(0).standard_normal((4, 128)).astype(np.float32), np.arange(4)
    out = generator.generate(np.clip(z, -2, 2) * 0.7, ids, truncation=0.7)
    assert torch.isfinite(out.images).all() and out.images.abs().max() <= 1
    assert out.features and all(torch.isfinite(f).all() for f in out.features.values())
    assert load_discriminator(weights / DISCRIMINATOR)(out.images, torch.arange(4)).isfinite().all()


def test_a_damaged_weights_file_is_refused(tmp_path):
    weights, sha256 = _shipped()
    for name in ("pytorch_model.bin", "config.json"):
        (tmp_path / name).write_bytes((weights / name).read_bytes())
    with open(tmp_path / "pytorch_model.bin", "r+b") as f:
        f.seek(-100, 2)
        f.write(b"\0" * 10)
    with pytest.raises(SynthsodError, match="sha256"):
        load_biggan("scene", tmp_path, sha256)


def test_the_shipped_generator_draws_objects_of_the_class_it_is_asked_for():
    """A judge trained on real scenes labels class-conditional samples with their class (chance: 1/8)."""
    from synthsod.generators.quality import (
        balanced_latents,
        classify,
        generate_images,
        real_scenes,
        train_scene_classifier,
    )

    weights, sha256 = _shipped()
    generator = create_generator("scene", str(weights), sha256=sha256)
    images, ids = real_scenes(0, scenes.split_indices("eval", 800))
    judge = train_scene_classifier(images, ids, scenes.NUM_CLASSES, steps=200, seed=0)
    z, classes = balanced_latents(generator, 160, scenes.NUM_CLASSES, 1.0, seed=0)
    predicted, _ = classify(judge, generate_images(generator, z, classes, 1.0))
    assert (predicted == classes).mean() > 0.5
