"""Generator backend: exact truncation, taps, loading from from_pretrained layout, the tiny model."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from pytorch_pretrained_biggan import BigGAN, BigGANConfig
from pytorch_pretrained_biggan.model import BigGANBatchNorm

from synthsod.errors import SynthsodError
from synthsod.generators import create_generator, resolve_classes, sample_latents
from synthsod.generators.biggan import (
    PRETRAINED_CONFIGS,
    ExactTruncationBatchNorm,
    default_taps,
    save_pretrained,
    tap_shapes,
    truncation_position,
)
from synthsod.generators.tiny import build_tiny_biggan, initialise_random_biggan, write_tiny_biggan
from synthsod.generators.weights import locate_weights


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    write_tiny_biggan(directory, seed=0)
    return directory


# --- truncation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "truncation, row, weight",
    [
        (0.58, 29, 0.0),
        (0.14, 7, 0.0),
        (0.28, 14, 0.0),
        (0.4, 20, 0.0),
        (1.0, 50, 0.0),
        (0.02, 1, 0.0),
        (0.57, 28, 0.5),
        (0.401, 20, 0.05),
    ],
)
def test_truncation_position_reads_the_right_rows(truncation, row, weight):
    got_row, got_weight = truncation_position(truncation, 51)
    assert got_row == row
    assert got_weight == pytest.approx(weight, abs=1e-9)


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.01])
def test_truncation_outside_unit_interval_is_rejected(bad):
    with pytest.raises(SynthsodError, match="truncation"):
        truncation_position(bad, 51)


def _norm_with_row_stats(cls, conditional: bool) -> BigGANBatchNorm:
    """A batch norm whose row k holds mean k (variance 1): the output tells which rows were read."""
    torch.manual_seed(0)
    norm = BigGANBatchNorm(3, condition_vector_dim=4 if conditional else None, conditional=conditional)
    norm.running_means.copy_(torch.arange(51, dtype=torch.float32)[:, None].expand(51, 3))
    norm.running_vars.fill_(1.0)
    if not conditional:
        norm.weight.data.fill_(1.0)
        norm.bias.data.fill_(0.0)
    norm.__class__ = cls
    return norm.eval()


def _read_mean(norm, truncation: float, cond=None) -> float:
    with torch.no_grad():
        out = norm(torch.zeros(1, 3, 2, 2), truncation, cond)
    return float(-out[0, 0, 0, 0] * math.sqrt(1 + norm.eps))


@pytest.mark.parametrize("truncation, package_row", [(0.58, 28), (0.14, 8), (0.28, 15)])
def test_package_interpolation_is_off_by_a_step_and_ours_is_exact(truncation, package_row):
    package = _norm_with_row_stats(BigGANBatchNorm, conditional=False)
    exact = _norm_with_row_stats(ExactTruncationBatchNorm, conditional=False)
    assert _read_mean(package, truncation) == pytest.approx(package_row, abs=1e-3)  # the bug we work around
    assert _read_mean(exact, truncation) == pytest.approx(round(truncation * 50), abs=1e-5)


def test_exact_interpolation_between_rows_is_linear():
    exact = _norm_with_row_stats(ExactTruncationBatchNorm, conditional=False)
    assert _read_mean(exact, 0.57) == pytest.approx(28.5, abs=1e-4)
    assert _read_mean(exact, 0.405) == pytest.approx(20.25, abs=1e-4)


def test_exact_conditional_norm_matches_the_package_where_the_package_is_right():
    cond = torch.randn(2, 4)
    package = _norm_with_row_stats(BigGANBatchNorm, conditional=True)
    exact = _norm_with_row_stats(ExactTruncationBatchNorm, conditional=True)
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(exact(x, 1.0, cond), package(x, 1.0, cond))
    assert _read_mean(exact, 0.58, cond[:1]) != pytest.approx(_read_mean(package, 0.58, cond[:1]), abs=0.5)


# --- taps --------------------------------------------------------------------------------------


def test_default_taps_reproduce_sodgan_for_256_and_generalise():
    config = BigGANConfig.from_dict(PRETRAINED_CONFIGS["biggan-deep-256"])
    taps = default_taps(config)
    assert taps == [0, 2, 4, 6, 9, 11, 12]
    shapes = tap_shapes(config, taps)
    assert sum(c for c, _, _ in shapes.values()) == 7040  # SODGAN's fused channel count
    assert shapes[9] == (512, 64, 64) and shapes[12] == (128, 128, 128)
    assert default_taps(BigGANConfig.from_dict(PRETRAINED_CONFIGS["biggan-deep-128"])) == [0, 2, 4, 6, 9, 10]


# --- loading and generating at the released architectures --------------------------------------


def _save_random_model(model: str, directory) -> None:
    torch.manual_seed(0)
    net = BigGAN(BigGANConfig.from_dict(PRETRAINED_CONFIGS[model]))
    initialise_random_biggan(net, warmup_batches=1, batch_size=2)
    save_pretrained(net, directory)


@pytest.mark.parametrize("model", ["biggan-deep-128", "biggan-deep-256"])
def test_random_init_model_loads_from_pretrained_layout_and_gives_finite_outputs(model, tmp_path):
    _save_random_model(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "pytorch_model.bin"]
    generator = create_generator(model, str(tmp_path))
    z, ids = sample_latents(0, [0, 1], generator.z_dim, 0.4, resolve_classes(None, 1000))
    out = generator.generate(z, ids, 0.4)
    resolution = PRETRAINED_CONFIGS[model]["output_dim"]
    assert out.images.shape == (2, 3, resolution, resolution)
    assert out.images.dtype == torch.float32
    assert torch.isfinite(out.images).all() and out.images.abs().max() <= 1.0
    assert list(out.features) == generator.taps
    for tap, feature in out.features.items():
        assert feature.shape == (2, *generator.feature_shapes[tap])
        assert torch.isfinite(feature).all()
    images_only = generator.generate(z, ids, 0.4, with_features=False)
    assert images_only.features == {}
    torch.testing.assert_close(images_only.images, out.images)


def test_custom_taps_include_the_final_block_output(tiny_dir):
    generator = create_generator("tiny", str(tiny_dir), taps=[1, 9])
    z, ids = sample_latents(0, [0], generator.z_dim, 0.5, np.arange(1000))
    out = generator.generate(z, ids, 0.5)
    assert {t: tuple(f.shape[1:]) for t, f in out.features.items()} == {1: (256, 4, 4), 9: (16, 64, 64)}
    with pytest.raises(SynthsodError, match="taps"):
        create_generator("tiny", str(tiny_dir), taps=[10])


def test_a_sample_does_not_depend_on_its_batch(tiny_dir):
    generator = create_generator("tiny", str(tiny_dir))
    z, ids = sample_latents(0, range(8), generator.z_dim, 0.6, np.arange(1000))
    batch = generator.generate(z, ids, 0.6)
    alone = generator.generate(z[5:6], ids[5:6], 0.6)
    torch.testing.assert_close(alone.images, batch.images[5:6], atol=1e-4, rtol=0)
    torch.testing.assert_close(alone.features[4], batch.features[4][5:6], atol=1e-4, rtol=1e-4)


def test_missing_weights_give_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SynthsodError) as err:
        create_generator("biggan-deep-256", str(tmp_path / "nowhere"))
    message = str(err.value)
    assert "nowhere" in message and "pytorch_model.bin" in message and "config.json" in message
    with pytest.raises(SynthsodError, match="package cache"):
        create_generator("biggan-deep-256")


def test_weights_are_found_in_the_package_cache_without_network(tmp_path, monkeypatch):
    from pytorch_pretrained_biggan.model import PRETRAINED_CONFIG_ARCHIVE_MAP, PRETRAINED_MODEL_ARCHIVE_MAP

    cache = tmp_path / "cache"
    cache.mkdir()
    for name, url in [
        ("aaa", PRETRAINED_MODEL_ARCHIVE_MAP["biggan-deep-128"]),
        ("bbb", PRETRAINED_CONFIG_ARCHIVE_MAP["biggan-deep-128"]),
    ]:
        (cache / name).write_bytes(b"x")
        (cache / f"{name}.json").write_text(json.dumps({"url": url, "etag": None}))
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(cache))
    assert locate_weights("biggan-deep-128") == (cache / "aaa", cache / "bbb")
    assert locate_weights("biggan-deep-256") is None


def test_corrupt_weights_are_reported_with_the_file(tiny_dir, tmp_path):
    (tmp_path / "config.json").write_bytes((tiny_dir / "config.json").read_bytes())
    (tmp_path / "pytorch_model.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(SynthsodError, match="pytorch_model.bin"):
        create_generator("tiny", str(tmp_path))


# --- the tiny model ------------------------------------------------------------------------------


def test_tiny_model_is_deterministic_finite_and_calibrated():
    a, b = build_tiny_biggan(seed=3), build_tiny_biggan(seed=3)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    assert not torch.equal(
        build_tiny_biggan(seed=4).state_dict()["embeddings.weight"], a.state_dict()["embeddings.weight"]
    )
    norm = a.generator.layers[3].bn_1
    assert not torch.allclose(norm.running_means[10], norm.running_means[40])  # per-truncation statistics
    assert not torch.allclose(norm.running_vars[10], torch.ones_like(norm.running_vars[10]))


def test_tiny_generator_images_vary_and_features_are_normalised(tiny_dir):
    generator = create_generator("tiny", str(tiny_dir))
    z, ids = sample_latents(0, range(8), generator.z_dim, 0.6, np.arange(1000))
    out = generator.generate(z, ids, 0.6)
    assert out.images.shape == (8, 3, 64, 64) and torch.isfinite(out.images).all()
    assert out.images.std(dim=0).mean() > 0.1  # samples differ from each other
    deepest = out.features[generator.taps[-1]]
    assert 0.3 < deepest.std() < 3.0  # calibrated: activations stay O(1) at depth


def test_the_torch_free_weight_addresses_are_the_packages():
    from pytorch_pretrained_biggan import model

    from synthsod.generators import weights
    from synthsod.names import PRETRAINED_MODELS

    assert weights.PRETRAINED_MODEL_ARCHIVE_MAP == model.PRETRAINED_MODEL_ARCHIVE_MAP
    assert weights.PRETRAINED_CONFIG_ARCHIVE_MAP == model.PRETRAINED_CONFIG_ARCHIVE_MAP
    assert (weights.WEIGHTS_NAME, weights.CONFIG_NAME) == (model.WEIGHTS_NAME, model.CONFIG_NAME)
    assert PRETRAINED_MODELS == tuple(model.PRETRAINED_MODEL_ARCHIVE_MAP)
