"""Generator quality: the Fréchet distance, the scene classifier, the evaluation report and the sample grid."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from synthsod.data import scenes
from synthsod.errors import SynthsodError
from synthsod.generators.base import GeneratorOutput
from synthsod.generators.biggan import BigGANGenerator
from synthsod.generators.latents import sample_latents
from synthsod.generators.quality import (
    SceneClassifier,
    classify,
    evaluate_generator,
    frechet_distance,
    generate_images,
    images_to_tensor,
    label_width,
    real_scenes,
    sample_grid,
    tensor_to_images,
    to_grey,
    train_scene_classifier,
    write_quality,
)
from synthsod.generators.train import build_trainable_biggan, export_generator, scene_biggan_config

K = scenes.NUM_CLASSES


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def random_generator(one_thread):
    """A random-init 8-class demo generator, exported with calibration batches of 8 (64 take ~25 s on
    one busy core; the tests only need a finite eval-mode model)."""
    return export_generator(build_trainable_biggan(scene_biggan_config(K), seed=0), seed=0, batch_size=8)


# --- Fréchet distance ---------------------------------------------------------------------------------
def _whitened(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """n samples [n, d] whose sample mean is exactly 0 and sample covariance exactly I."""
    x = rng.standard_normal((n, d))
    x -= x.mean(axis=0)
    return x @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(x, rowvar=False))).T)


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    d = 6
    mu_a, mu_b = rng.normal(size=d), rng.normal(size=d)
    s_a, s_b = rng.uniform(0.5, 2.0, d), rng.uniform(0.5, 2.0, d)
    a = _whitened(rng, 200, d) * s_a + mu_a
    b = _whitened(rng, 300, d) * s_b + mu_b
    expected = np.sum((mu_a - mu_b) ** 2) + np.sum((s_a - s_b) ** 2)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    x = _whitened(rng, 50, 1)
    assert frechet_distance(3 * x + 1, 0.5 * x - 2) == pytest.approx(9 + 2.5**2, rel=1e-9)


def test_frechet_distance_is_zero_for_identical_sets_and_symmetric():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))  # correlated features
    b = rng.normal(size=(200, 8)) * 2 + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    assert frechet_distance(a, b) > 1.0
    assert frechet_distance(a + 5.0, b + 5.0) == pytest.approx(frechet_distance(a, b), rel=1e-8)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32))  # singular covariances
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    value = frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_frechet_distance_rejects_mismatched_or_tiny_sets():
    with pytest.raises(SynthsodError, match="shapes"):
        frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(SynthsodError, match="at least 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


# --- the classifier ---------------------------------------------------------------------------------
def test_classifier_learns_the_scene_classes_well_above_chance():
    # 32 px scenes keep this fast; the classifier pools globally, so it works at any size.
    train_images, train_ids = real_scenes(0, scenes.split_indices("eval", 400), size=32)
    test_images, test_ids = real_scenes(0, scenes.split_indices("eval-ref", 200), size=32)
    model = train_scene_classifier(train_images, train_ids, K, steps=250, batch_size=32, seed=0)
    assert not model.training
    predicted, features = classify(model, images_to_tensor(test_images), batch_size=64)
    assert predicted.dtype == np.int64 and predicted.shape == (200,)
    assert features.dtype == np.float64 and features.shape == (200, 128)
    assert np.mean(predicted == test_ids) > 0.6  # chance is 1/8; measured 0.9


def test_classifier_training_is_deterministic():
    images, ids = real_scenes(3, scenes.split_indices("eval", 40), size=32)

    def weights(seed):
        model = train_scene_classifier(images, ids, K, steps=4, batch_size=8, seed=seed)
        return {k: v.clone() for k, v in model.state_dict().items()}

    first, second, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_classify_returns_the_argmax_of_the_logits_and_the_pooled_features():
    torch.manual_seed(0)
    model = SceneClassifier(K).eval()
    x = torch.rand(5, 3, 32, 32) * 2 - 1
    predicted, features = classify(model, x, batch_size=2)
    with torch.no_grad():
        np.testing.assert_array_equal(predicted, model(x).argmax(1).numpy())
        np.testing.assert_allclose(features, model.features(x).numpy(), rtol=1e-5, atol=1e-6)


def test_classifier_training_rejects_bad_labels():
    images = np.zeros((4, 16, 16, 3), np.uint8)
    with pytest.raises(SynthsodError, match="labels"):
        train_scene_classifier(images, np.array([0, 1, 2, K]), K, steps=1)
    with pytest.raises(SynthsodError, match="labels"):
        train_scene_classifier(images, np.array([0, 1]), K, steps=1)


# --- the evaluation -------------------------------------------------------------------------------
class SceneOracle(BigGANGenerator):
    """A stand-in generator that renders the world's own scenes from (class, z), with a fault per truncation.

    truncation 1.0: perfect (z is a scene code, so samples follow the real distribution);
    0.5: renders class c + 1 for class c (same marginal distribution, wrong classes);
    0.25: renders class 0 whatever the class (mode collapse).
    """

    def __init__(self):
        self.z_dim, self.num_classes, self.resolution, self.name = scenes.CODE_DIM, K, 64, "oracle"

    def generate(self, z, class_ids, truncation, with_features=False):
        code_scale = 1.0 / truncation  # undo the truncation: codes follow the world's prior
        shown = {1.0: class_ids, 0.5: (np.asarray(class_ids) + 1) % K, 0.25: np.zeros_like(class_ids)}[truncation]
        images = np.stack([scenes.render(int(c), np.asarray(code) * code_scale, 64).image for c, code in zip(shown, z)])
        return GeneratorOutput(images=images_to_tensor(images), features={})


def test_evaluate_generator_scores_a_perfect_a_misclassed_and_a_collapsed_generator():
    calls = []
    report = evaluate_generator(
        SceneOracle(),
        world_seed=0,
        num_classes=K,
        truncations=(1.0, 0.5, 0.25),
        n_train=400,
        n_test=100,
        n_samples=64,
        classifier_steps=120,
        seed=0,
        progress=lambda stage, done, total: calls.append((stage, done, total)),
    )
    assert report["chance"] == pytest.approx(1 / K)
    assert report["classifier"]["heldout_accuracy"] > 0.5  # measured 0.77
    perfect, misclassed, collapsed = (report["truncations"][k] for k in ("1.0", "0.5", "0.25"))
    real_fd = report["frechet_distance_real_vs_real"]
    assert perfect["class_consistency"] > 0.5
    assert misclassed["class_consistency"] < 0.3
    # a class permutation keeps the distribution of images: its distance stays near the perfect one
    assert misclassed["frechet_distance"] < 2 * real_fd and perfect["frechet_distance"] < 2 * real_fd
    assert collapsed["frechet_distance"] > 3 * max(perfect["frechet_distance"], real_fd)
    assert collapsed["per_class"]["ellipse"] > 0.5
    assert np.mean([v for name, v in collapsed["per_class"].items() if name != "ellipse"]) < 0.3
    # balanced classes: the overall consistency is the mean of the per-class ones
    assert perfect["class_consistency"] == pytest.approx(np.mean(list(perfect["per_class"].values())))
    assert ("classifier", 120, 120) in calls and any(stage.startswith("samples") for stage, _, _ in calls)


def test_evaluate_generator_report_on_a_random_generator(random_generator, tmp_path):
    report = evaluate_generator(
        random_generator,
        world_seed=1,
        num_classes=K,
        truncations=(1.0, 0.5),
        n_train=32,
        n_test=16,
        n_samples=12,
        classifier_steps=3,
        seed=0,
    )
    assert set(report) >= {"classifier", "truncations", "frechet_distance_real_vs_real", "chance"}
    assert set(report["classifier"]) >= {"train_scenes", "heldout_accuracy"}
    assert report["classifier"]["train_scenes"] == 32
    assert 0.0 <= report["classifier"]["heldout_accuracy"] <= 1.0
    assert list(report["truncations"]) == ["1.0", "0.5"]
    for entry in report["truncations"].values():
        assert 0.0 <= entry["class_consistency"] <= 1.0
        assert list(entry["per_class"]) == list(scenes.CLASS_NAMES)
        assert all(0.0 <= v <= 1.0 for v in entry["per_class"].values())
        assert entry["frechet_distance"] >= 0.0 and np.isfinite(entry["frechet_distance"])
    assert np.isfinite(report["frechet_distance_real_vs_real"])
    write_quality(report, tmp_path / "quality.json")
    assert json.loads((tmp_path / "quality.json").read_text()) == json.loads(json.dumps(report))


def test_evaluate_generator_rejects_a_class_count_mismatch(random_generator):
    with pytest.raises(SynthsodError, match="classes"):
        evaluate_generator(
            random_generator, world_seed=0, num_classes=K + 1, n_train=2, n_test=2, n_samples=2, classifier_steps=0
        )


# --- the sample grid --------------------------------------------------------------------------------
def test_sample_grid_writes_one_labelled_row_per_class(random_generator, tmp_path):
    per_class, scale, side = 3, 2, 64 * 2
    path = tmp_path / "grid.png"
    grid = sample_grid(
        random_generator,
        path,
        num_classes=K,
        class_names=scenes.CLASS_NAMES,
        per_class=per_class,
        truncation=0.5,
        seed=4,
        scale=scale,
    )
    margin = label_width(scenes.CLASS_NAMES)
    expected_shape = (K * side, margin + per_class * side, 3)
    on_disk = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert grid.shape == on_disk.shape == expected_shape
    np.testing.assert_array_equal(on_disk, grid)
    # the tile of class c, sample j: sample c * per_class + j conditioned on c, nearest-upscaled
    # (generated in one batch, as the grid is: float rounding depends on the batch)
    z, _ = sample_latents(4, range(K * per_class), 128, 0.5, np.arange(K))
    ids = np.repeat(np.arange(K), per_class)
    images = tensor_to_images(generate_images(random_generator, z, ids, 0.5))
    for c, j in [(0, 0), (5, 2), (K - 1, per_class - 1)]:
        tile = grid[c * side : (c + 1) * side, margin + j * side : margin + (j + 1) * side]
        np.testing.assert_array_equal(tile, images[c * per_class + j].repeat(scale, 0).repeat(scale, 1))
    # each row's label: dark text on a white margin
    for row in range(K):
        label = grid[row * side : (row + 1) * side, :margin]
        assert (label < 100).any() and (label == 255).mean() > 0.5
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary left behind


def test_sample_grid_needs_one_name_per_class(random_generator, tmp_path):
    with pytest.raises(SynthsodError, match="class names"):
        sample_grid(random_generator, tmp_path / "grid.png", num_classes=K, class_names=["a"])


def test_the_shape_judge_sees_grey_images_only():
    rgb = np.zeros((2, 4, 4, 3), np.uint8)
    rgb[0, ..., 0], rgb[1, ..., 2] = 200, 200  # a red and a blue image
    grey = to_grey(rgb)
    assert grey.shape == rgb.shape and (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    assert grey[0, 0, 0, 0] == round(0.2989 * 200) and grey[1, 0, 0, 0] == round(0.114 * 200)
