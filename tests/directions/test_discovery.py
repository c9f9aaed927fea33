"""Voynov & Babenko direction discovery: deformators, shifts, training on a frozen generator, resuming, files."""

from __future__ import annotations

import csv
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthsod.core.checkpoint import step_generator
from synthsod.core.settings import from_section
from synthsod.directions.discovery import (
    Deformator,
    DiscoveryConfig,
    DiscoveryResult,
    Reconstructor,
    discover_directions,
    load_directions,
    random_shifts,
    save_directions,
)
from synthsod.errors import SynthsodError
from synthsod.generators import BigGANGenerator
from synthsod.generators.latents import LatentSource
from synthsod.generators.tiny import build_tiny_biggan

# A BigGAN-deep small enough to build in ~2 s: 32 px, z_dim 16, 10 classes (~70 k parameters).
SMALL_BIGGAN = dict(
    output_dim=32,
    z_dim=16,
    class_embed_dim=16,
    channel_width=4,
    num_classes=10,
    layers=[(False, 16, 16), (True, 16, 8), (True, 8, 4), (True, 4, 2), (False, 2, 1)],
    attention_layer_position=3,
    eps=1e-4,
    n_stats=51,
)
CLASSES = np.array([1, 4, 7])
# timm's smallest ResNet keeps the BigGAN runs fast; the default ResNet-18 is built in one test.
FAST = dict(directions=4, batch_size=4, lr=1e-3, backbone="test_resnet", truncation=0.4)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def generator(one_thread):
    return BigGANGenerator(build_tiny_biggan(seed=0, config=SMALL_BIGGAN), name="tiny")


def generator_state(generator) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in generator.net.state_dict().items()}


def gram_error(directions: torch.Tensor | np.ndarray) -> float:
    d = torch.as_tensor(directions, dtype=torch.float64)
    return (d @ d.T - torch.eye(len(d), dtype=torch.float64)).abs().max().item()


# --- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes, key",
    [
        ({"deformator": "rotation"}, "deformator"),
        ({"directions": 0}, "directions"),
        ({"steps": 0}, "steps"),
        ({"shift_min": 7.0, "shift_max": 6.0}, "shift_min"),
        ({"lr": 0.0}, "lr"),
        ({"truncation": 1.5}, "truncation"),
    ],
)
def test_config_rejects_bad_values_naming_the_key(changes, key):
    with pytest.raises(SynthsodError, match=key):
        DiscoveryConfig(**changes)


def test_config_from_its_section_takes_other_readers_keys_and_refuses_unknown_ones():
    section = {"directions": 8, "steps": 3, "classes": {"include": "all"}}
    cfg = from_section(DiscoveryConfig, section, where="directions.discover", ignore=("classes",))
    assert (cfg.directions, cfg.steps, cfg.deformator) == (8, 3, "ortho")
    with pytest.raises(SynthsodError, match="directions.discover: unknown settings classes"):
        from_section(DiscoveryConfig, section, where="directions.discover")


# --- deformator and shifts -------------------------------------------------------------------------
def test_ortho_directions_are_orthonormal_and_start_near_the_axes():
    deformator = Deformator(z_dim=16, directions=5, kind="ortho", seed=3)
    directions = deformator.directions().detach()
    assert directions.shape == (5, 16)
    assert gram_error(directions) < 1e-5
    assert (directions - torch.eye(16)[:5]).abs().max() < 0.02  # S = 1e-3 N(0, 1): nearly the axes
    with torch.no_grad():  # any S gives an orthonormal set
        deformator.S.copy_(torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    assert gram_error(deformator.directions().detach()) < 1e-5
    assert torch.equal(Deformator(16, 5, "ortho", seed=3).S, Deformator(16, 5, "ortho", seed=3).S)
    assert not torch.equal(Deformator(16, 5, "ortho", seed=3).S, Deformator(16, 5, "ortho", seed=4).S)


def test_linear_directions_are_unit_length():
    deformator = Deformator(z_dim=6, directions=4, kind="linear")
    assert torch.equal(deformator.directions(), torch.eye(6)[:4])
    with torch.no_grad():
        deformator.W.mul_(torch.arange(1.0, 5.0)).add_(0.3)  # columns of different lengths
    norms = deformator.directions().detach().norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(4))
    overcomplete = Deformator(z_dim=3, directions=5, kind="linear").directions().detach()
    assert overcomplete.shape == (5, 3) and torch.isfinite(overcomplete).all()
    torch.testing.assert_close(overcomplete.norm(dim=1), torch.ones(5))


@pytest.mark.parametrize("kind", ["ortho", "linear"])
def test_forward_is_the_shift_times_the_selected_direction(kind):
    deformator = Deformator(z_dim=8, directions=5, kind=kind, seed=1)
    with torch.no_grad():
        (deformator.S if kind == "ortho" else deformator.W).add_(0.2)
    indices, shifts = torch.tensor([4, 0, 2, 4]), torch.tensor([1.5, -0.5, 6.0, -3.0])
    out = deformator(indices, shifts)
    rows = deformator.directions()
    expected = torch.stack([s * rows[k] for k, s in zip(indices.tolist(), shifts.tolist())])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.norm(dim=1), shifts.abs())


def test_ortho_needs_at_most_z_dim_directions():
    with pytest.raises(SynthsodError, match="17 directions"):
        Deformator(z_dim=16, directions=17, kind="ortho")
    Deformator(z_dim=16, directions=16, kind="ortho")


def test_random_shifts_cover_both_signs_within_the_bounds_deterministically():
    indices, shifts = random_shifts(torch.Generator().manual_seed(5), 4000, 7, shift_max=6.0, shift_min=0.5)
    assert indices.dtype == torch.long and shifts.dtype == torch.float32 and shifts.shape == (4000,)
    assert set(indices.tolist()) == set(range(7))
    assert shifts.abs().min() >= 0.5 and shifts.abs().max() <= 6.0
    assert (shifts > 0).float().mean().item() == pytest.approx(0.5, abs=0.05)
    # |eps| < shift_min is pushed out to +-shift_min: that mass (0.5 / 6 of it) piles up at the bounds
    assert (shifts.abs() == 0.5).float().mean().item() == pytest.approx(0.5 / 6, abs=0.02)
    assert (shifts == 0.5).sum() > 100 and (shifts == -0.5).sum() > 100  # each keeps its sign
    again = random_shifts(torch.Generator().manual_seed(5), 4000, 7)
    assert torch.equal(indices, again[0]) and torch.equal(shifts, again[1])
    assert not torch.equal(shifts, random_shifts(torch.Generator().manual_seed(6), 4000, 7)[1])
    _, wide = random_shifts(torch.Generator().manual_seed(0), 1000, 3, shift_max=2.0, shift_min=2.0)
    assert set(wide.abs().tolist()) == {2.0}


# --- training on the tiny BigGAN -------------------------------------------------------------------
def test_training_moves_deformator_and_reconstructor_never_the_generator(generator, tmp_path, monkeypatch):
    generator.net.train().requires_grad_(True)  # handed over unfrozen: discovery freezes it first
    before = generator_state(generator)
    seen, calls = [], []
    original_images = generator.images

    def images(z, one_hot, truncation):
        seen.append((z.requires_grad, torch.is_grad_enabled()))
        calls.append((z.detach().clone(), one_hot.argmax(dim=1), truncation))
        return original_images(z, one_hot, truncation)

    monkeypatch.setattr(generator, "images", images)
    checkpoint, log_csv = tmp_path / "ckpt.pt", tmp_path / "log.csv"
    cfg = DiscoveryConfig(**FAST, steps=3, checkpoint_every=2)
    result = discover_directions(generator, cfg, CLASSES, checkpoint_path=checkpoint, log_path=log_csv)

    assert not generator.net.training
    assert all(not p.requires_grad and p.grad is None for p in generator.net.parameters())
    after = generator.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert seen == [(False, False), (True, True)] * 3  # G(z) without grad; G(z + eps h) through z only
    source = LatentSource(cfg.seed, 16, cfg.truncation, CLASSES)
    for step in range(3):  # step s renders samples s*B..(s+1)*B-1; the shifted image keeps the class
        z, ids = source.draw(range(4 * step, 4 * step + 4))
        (base_z, base_ids, t), (shifted_z, shifted_ids, _) = calls[2 * step], calls[2 * step + 1]
        assert torch.equal(base_z, torch.from_numpy(z)) and t == cfg.truncation
        assert base_ids.tolist() == shifted_ids.tolist() == ids.tolist()
        _, eps = random_shifts(step_generator(cfg.seed, step), 4, 4, cfg.shift_max, cfg.shift_min)
        torch.testing.assert_close((shifted_z - base_z).norm(dim=1), eps.abs())

    assert result.directions.shape == (4, 16) and result.directions.dtype == np.float32
    assert gram_error(result.directions) < 1e-5
    initial = Deformator(16, 4, "ortho", seed=cfg.seed).directions().detach().numpy()
    assert np.abs(result.directions - initial).max() > 1e-4  # the deformator learned
    assert [row["step"] for row in result.history] == [1, 2, 3]
    assert all(np.isfinite(row[k]) for row in result.history for k in ("loss", "accuracy", "shift_error"))

    payload = torch.load(checkpoint, weights_only=True)
    assert payload["step"] == 3 and payload["state"]["history"] == result.history
    with torch.random.fork_rng(devices=[]):  # the reconstructor's weights moved from their init
        torch.manual_seed(cfg.seed)
        init = Reconstructor(4, cfg.backbone).state_dict()
    moved = [k for k, v in init.items() if v.is_floating_point() and not torch.equal(v, payload["reconstructor"][k])]
    assert "classify.weight" in moved and any(k.startswith("backbone.") for k in moved)

    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "loss", "accuracy", "shift_error"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["loss"]) == result.history[-1]["loss"]


def test_default_resnet18_reconstructor_runs_a_step(generator):
    cfg = DiscoveryConfig(directions=3, steps=1, batch_size=2, deformator="linear")
    result = discover_directions(generator, cfg, CLASSES)
    assert result.directions.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(result.directions, axis=1), 1.0, rtol=1e-5)
    assert np.isfinite(result.history[0]["loss"])


def test_resumed_run_ends_bit_identical_to_an_uninterrupted_one(generator, tmp_path, caplog):
    straight = discover_directions(
        generator,
        DiscoveryConfig(**FAST, steps=6, checkpoint_every=2),
        CLASSES,
        checkpoint_path=tmp_path / "straight.pt",
    )
    first = discover_directions(
        generator,
        DiscoveryConfig(**FAST, steps=3, checkpoint_every=2),
        CLASSES,
        checkpoint_path=tmp_path / "resumed.pt",
    )
    assert len(first.history) == 3
    with caplog.at_level(logging.INFO, logger="synthsod"):
        resumed = discover_directions(
            generator,
            DiscoveryConfig(**FAST, steps=6, checkpoint_every=2),
            CLASSES,
            checkpoint_path=tmp_path / "resumed.pt",
        )
    assert "resuming from step 3 of 6" in caplog.text
    assert resumed.resumed_from == 3
    assert np.array_equal(straight.directions, resumed.directions)
    assert straight.history == resumed.history and len(resumed.history) == 6
    a = torch.load(tmp_path / "straight.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed.pt", weights_only=True)
    assert a["step"] == b["step"] == 6
    for part in ("deformator", "reconstructor"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    assert not np.array_equal(first.directions, resumed.directions)

    # a checkpoint at or past the end trains nothing; one made with other settings is refused
    again = discover_directions(
        generator, DiscoveryConfig(**FAST, steps=6), CLASSES, checkpoint_path=tmp_path / "resumed.pt"
    )
    assert np.array_equal(again.directions, straight.directions) and again.history == straight.history
    with pytest.raises(SynthsodError, match="lr"):
        discover_directions(
            generator,
            DiscoveryConfig(**{**FAST, "lr": 5e-4}, steps=8),
            CLASSES,
            checkpoint_path=tmp_path / "resumed.pt",
        )
    with pytest.raises(SynthsodError, match="classes"):
        discover_directions(
            generator, DiscoveryConfig(**FAST, steps=8), np.array([2, 3]), checkpoint_path=tmp_path / "resumed.pt"
        )


# --- learning on a toy generator -------------------------------------------------------------------
class LinearGenerator:
    """A stand-in generator whose image is a fixed linear map of z: G(z + eps h) - G(z) = eps A h."""

    def __init__(self, z_dim: int = 8, resolution: int = 16, num_classes: int = 3, seed: int = 0):
        rng = torch.Generator().manual_seed(seed)
        self.z_dim, self.resolution, self.num_classes = z_dim, resolution, num_classes
        self.device = torch.device("cpu")
        self.A = 0.15 * torch.randn(z_dim, 3 * resolution**2, generator=rng)

    def images(self, z, one_hot, truncation):
        return (z @ self.A).view(-1, 3, self.resolution, self.resolution)

    def one_hot(self, ids):
        return F.one_hot(torch.as_tensor(ids), self.num_classes).float()


def test_discovery_learns_to_tell_the_directions_apart():
    cfg = DiscoveryConfig(
        directions=4, steps=200, batch_size=16, lr=1e-3, backbone="test_resnet", checkpoint_every=1000
    )
    history = discover_directions(LinearGenerator(), cfg, np.arange(3)).history
    # each step's accuracy is measured on a fresh batch, before the step trains on it; chance is 0.25
    late_accuracy = np.mean([row["accuracy"] for row in history[-50:]])
    early_error = np.mean([row["shift_error"] for row in history[:10]])
    late_error = np.mean([row["shift_error"] for row in history[-50:]])
    assert late_accuracy > 0.75, late_accuracy
    assert late_error < 0.5 * early_error, (early_error, late_error)


# --- files -----------------------------------------------------------------------------------------
def test_save_and_load_directions_round_trip(tmp_path):
    directions = torch.linalg.qr(torch.randn(16, 5, generator=torch.Generator().manual_seed(0))).Q.T.numpy()
    history = [
        {"step": 1, "loss": 2.0, "accuracy": 0.25, "shift_error": 3.0},
        {"step": 2, "loss": 1.5, "accuracy": 0.5, "shift_error": 2.0},
    ]
    result = DiscoveryResult(directions, history, DiscoveryConfig(directions=5, deformator="linear"))
    save_directions(tmp_path / "dirs" / "directions.pt", result, "tiny")
    payload = torch.load(tmp_path / "dirs" / "directions.pt", weights_only=True)
    assert payload["generator"] == "tiny" and payload["deformator"] == "linear"
    assert payload["final"] == history[-1] and payload["config"]["directions"] == 5
    assert list((tmp_path / "dirs").iterdir()) == [tmp_path / "dirs" / "directions.pt"]  # no temp file left
    loaded = load_directions(tmp_path / "dirs" / "directions.pt", z_dim=16)
    assert loaded.dtype == np.float32 and np.array_equal(loaded, directions)

    np.save(tmp_path / "found.npy", 3.0 * directions.astype(np.float64))
    loaded = load_directions(tmp_path / "found.npy")
    assert loaded.dtype == np.float32 and np.allclose(loaded, 3.0 * directions)  # not normalised
    with pytest.raises(SynthsodError, match="16"):
        load_directions(tmp_path / "found.npy", z_dim=128)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("vector.npy", np.ones(16), "matrix"),
        ("cube.npy", np.ones((2, 3, 4)), "matrix"),
        ("ints.npy", np.ones((3, 16), dtype=np.int64), "floats"),
        ("nan.npy", np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN"),
        ("zero.npy", np.array([[1.0, 0.0], [0.0, 0.0]]), "zero"),
        ("empty.npy", np.zeros((0, 16)), "matrix"),
        ("text.npy", b"not an array\n", "cannot read"),
        ("text.pt", b"not a torch file\n", "cannot read"),
        ("nodirs.pt", {"weights": torch.ones(2, 2)}, "cannot read"),
        ("vector.pt", {"directions": torch.ones(16)}, "matrix"),
        ("directions.npz", np.ones((2, 2)), "must be a .npy matrix"),
        ("directions.csv", b"1,0\n0,1\n", "must be a .npy matrix"),
    ],
)
def test_bad_direction_files_are_refused_naming_the_file(tmp_path, name, content, reason):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        torch.save(content, path)
    elif name.endswith(".npz"):
        np.savez(path, directions=content)
    else:
        np.save(path, content)
    with pytest.raises(SynthsodError, match=reason) as err:
        load_directions(path)
    assert str(path) in str(err.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(SynthsodError, match="missing.npy"):
        load_directions(tmp_path / "missing.npy")
