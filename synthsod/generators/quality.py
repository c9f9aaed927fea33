"""Quality of a scene-world generator: class consistency and a Fréchet distance in a scene classifier's space.

Why a classifier of our own
    FID's Inception network was trained on ImageNet photographs; on 64 px procedural scenes its features
    say little, and it is a large download. The scene world gives labelled images for free, so a small CNN
    (:class:`SceneClassifier`) trained on real scenes of the "eval" split serves both measures:

    * class consistency: the share of class-conditional samples that the classifier labels with the
      class they were conditioned on (chance is 1/K). A generator that ignores its class input scores
      near chance; one that draws the right objects scores near the classifier's own held-out accuracy.
    * Fréchet distance: FID's formula (:func:`frechet_distance`) on the classifier's pooled features of
      samples versus real held-out scenes. Its scale depends on the feature space, so the report also
      gives the distance between two disjoint real sets of the same size: the value of a perfect
      generator at this sample size (the estimator's bias), against which the generator's value reads.

Every random choice is seeded: the classifier trains from ``step_generator(seed, step)``, the real sets
are fixed index ranges of the world, and sample ``i`` draws its latent from ``(seed, i)`` alone
(:func:`synthsod.generators.latents.sample_latents`), so a report is reproducible and two generators (or two
checkpoints of one training) are measured on the same latents.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pytorch_pretrained_biggan import BigGAN
from scipy import linalg
from torch import nn

from synthsod.core.checkpoint import seeded, step_generator
from synthsod.core.images import to_gray, write_image
from synthsod.core.io import write_json_atomic
from synthsod.data import scenes
from synthsod.errors import SynthsodError
from synthsod.generators.biggan import BigGANGenerator
from synthsod.generators.latents import sample_latents

Progress = Callable[[str, int, int], None]  # (stage, done, total)

CLASSIFIER_WIDTHS = (32, 64, 128, 128)
GENERATE_BATCH = 100  # samples per generator forward pass (bounds memory, not results)


# --- the classifier ---------------------------------------------------------------------------------
class SceneClassifier(nn.Module):
    """A small CNN on images [N, 3, S, S] in [-1, 1]: four conv-BN-ReLU stages with stride 2, global
    average pooling to the feature vector (:meth:`features`, ``widths[-1]``-d) and a linear layer to
    ``num_classes`` logits. Pooling makes it work at any ``S``; stride 2 from the first stage keeps it
    cheap enough to train on a CPU in a minute or two at 64 px."""

    def __init__(self, num_classes: int, widths: Sequence[int] = CLASSIFIER_WIDTHS):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(channels, num_classes)
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features [N, widths[-1]]."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def images_to_tensor(images_uint8: np.ndarray) -> torch.Tensor:
    """Images [N, S, S, 3] uint8 -> float tensor [N, 3, S, S] in [-1, 1] (the generator's range)."""
    return torch.from_numpy(np.ascontiguousarray(images_uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def tensor_to_images(x: torch.Tensor) -> np.ndarray:
    """Float images [N, 3, S, S] in [-1, 1] -> [N, S, S, 3] uint8."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flip and a translation of up to S/16 pixels (edges replicated).

    Scenes place and rotate objects at random, so both keep the label; they stop a short training from
    memorising the few thousand training scenes.
    """
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    pad = max(1, h // 16)
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    return torch.stack([padded[i, :, dy : dy + h, dx : dx + w] for i, (dy, dx) in enumerate(offsets.tolist())])


def train_scene_classifier(
    images_uint8: np.ndarray,
    class_ids: np.ndarray,
    num_classes: int,
    steps: int,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Progress | None = None,
) -> SceneClassifier:
    """A :class:`SceneClassifier` trained on images [N, S, S, 3] uint8 with labels [N]; eval mode, frozen.

    Adam on cross-entropy for ``steps`` steps of ``batch_size`` images drawn with replacement. Step ``k``
    draws its batch and augmentation from ``step_generator(seed, k)`` and the initial weights come from
    ``seed``, so the same call gives the same weights (on the same machine and thread count).
    """
    images_uint8 = np.asarray(images_uint8)
    class_ids = np.asarray(class_ids, dtype=np.int64)
    if images_uint8.ndim != 4 or images_uint8.shape[-1] != 3 or images_uint8.dtype != np.uint8:
        raise SynthsodError(
            f"classifier training images: expected [N, S, S, 3] uint8, got {images_uint8.shape} {images_uint8.dtype}"
        )
    if len(images_uint8) == 0 or len(class_ids) != len(images_uint8):
        raise SynthsodError(f"classifier training: {len(images_uint8)} images but {len(class_ids)} labels")
    if class_ids.min() < 0 or class_ids.max() >= num_classes:
        raise SynthsodError(f"classifier training: labels must be within 0..{num_classes - 1}")
    if steps < 0 or batch_size < 2:
        raise SynthsodError("classifier training: steps must be >= 0 and batch_size >= 2")
    with seeded(seed):
        model = SceneClassifier(num_classes)
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    labels = torch.from_numpy(class_ids)
    for step in range(steps):
        generator = step_generator(seed, step)
        index = torch.randint(len(images_uint8), (batch_size,), generator=generator)
        x = augment(images_to_tensor(images_uint8[index.numpy()]), generator)
        loss = F.cross_entropy(model(x), labels[index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if progress is not None:
            progress("classifier", step + 1, steps)
    return model.eval().requires_grad_(False)


@torch.no_grad()
def classify(
    model: SceneClassifier, images: torch.Tensor | np.ndarray, batch_size: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class ids [N] (int64) and pooled features [N, D] (float64) of images [N, 3, S, S] in [-1, 1]."""
    images = torch.as_tensor(images, dtype=torch.float32)
    model.eval()
    predictions, features = [], []
    for start in range(0, len(images), batch_size):
        feats = model.features(images[start : start + batch_size])
        predictions.append(model.head(feats).argmax(dim=1))
        features.append(feats)
    if not predictions:
        return np.zeros(0, np.int64), np.zeros((0, model.head.in_features), np.float64)
    return (torch.cat(predictions).numpy().astype(np.int64), torch.cat(features).numpy().astype(np.float64))


# --- the Fréchet distance ---------------------------------------------------------------------------
def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D] and [M, D] (FID's formula).

    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` with the sample means and (unbiased)
    covariances. As in the reference FID code, when the matrix square root is not finite (a singular
    product) ``eps * I`` is added to both covariances, and the real part of the root is kept: with
    fewer samples than dimensions the covariances are singular and rounding leaves tiny imaginary
    parts. A result below zero can only be rounding, so it is clipped to 0.
    """
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise SynthsodError(f"Fréchet distance: feature sets of shapes {a.shape} and {b.shape} do not match")
    if len(a) < 2 or len(b) < 2:
        raise SynthsodError("Fréchet distance: each feature set needs at least 2 samples")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    sigma_a, sigma_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():
        # scipy warns about singular products; that case is expected with N < D and handled here.
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma_a @ sigma_b)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma_a)) * eps
            covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    distance = diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean)
    return max(float(distance), 0.0)


# --- sampling the generator -------------------------------------------------------------------------
def _as_generator(net: BigGAN | BigGANGenerator) -> BigGANGenerator:
    return net if isinstance(net, BigGANGenerator) else BigGANGenerator(net, "quality", taps=[])


def balanced_latents(
    net: BigGAN | BigGANGenerator, n: int, num_classes: int, truncation: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Latents [n, z_dim] for samples ``0 .. n-1`` and balanced class ids ``i % num_classes`` [n].

    ``sample_latents`` would draw each class at random; fixed balanced ids instead give every class the
    same number of samples, so per-class consistencies are equally precise, and the latents stay those
    of ``(seed, i)`` (the same ``z`` up to scale at every truncation).
    """
    generator = _as_generator(net)
    z, _ = sample_latents(seed, range(n), generator.z_dim, truncation, np.arange(num_classes))
    return z, np.arange(n, dtype=np.int64) % num_classes


def generate_images(
    net: BigGAN | BigGANGenerator,
    z: np.ndarray,
    class_ids: np.ndarray,
    truncation: float,
    progress: Progress | None = None,
    stage: str = "samples",
) -> torch.Tensor:
    """Images [N, 3, R, R] in [-1, 1] (float32, CPU) of latents ``z`` and classes, in batches."""
    generator = _as_generator(net)
    out = []
    for start in range(0, len(z), GENERATE_BATCH):
        stop = start + GENERATE_BATCH
        images = generator.generate(z[start:stop], class_ids[start:stop], truncation, with_features=False).images
        out.append(images.float().cpu().clamp(-1, 1))
        if progress is not None:
            progress(stage, min(stop, len(z)), len(z))
    return torch.cat(out) if out else torch.zeros(0, 3, generator.resolution, generator.resolution)


def real_scenes(
    world_seed: int,
    indices: Sequence[int],
    size: int = scenes.DEFAULT_SIZE,
    progress: Progress | None = None,
    stage: str = "scenes",
) -> tuple[np.ndarray, np.ndarray]:
    """Images [N, S, S, 3] uint8 and class ids [N] of world scenes ``indices``."""
    images, ids = [], []
    for done, scene in enumerate(scenes.scenes(world_seed, indices, size), 1):
        images.append(scene.image)
        ids.append(scene.class_id)
        if progress is not None and (done % 500 == 0 or done == len(indices)):
            progress(stage, done, len(indices))
    return np.stack(images), np.array(ids, dtype=np.int64)


def _per_class(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, float | None]:
    """Share of correct predictions per class name (None for a class without samples)."""
    names = _class_names(num_classes)
    return {
        names[c]: (float(np.mean(predicted[labels == c] == c)) if np.any(labels == c) else None)
        for c in range(num_classes)
    }


def _class_names(num_classes: int) -> list[str]:
    # The world's names when the generator covers its classes, numbers otherwise.
    if num_classes == scenes.NUM_CLASSES:
        return list(scenes.CLASS_NAMES)
    return [str(c) for c in range(num_classes)]


# --- the report -------------------------------------------------------------------------------------
def evaluate_generator(
    net: BigGAN | BigGANGenerator,
    *,
    world_seed: int,
    num_classes: int,
    truncations: Sequence[float] = (1.0, 0.5),
    n_train: int = 4000,
    n_test: int = 1000,
    n_samples: int = 1000,
    classifier_steps: int = 600,
    seed: int = 0,
    shape_judge: bool = True,
    progress: Progress | None = None,
) -> dict:
    """Class consistency and Fréchet distance of a class-conditional generator of the scene world.

    Classes differ in hue as well as shape, so a generator can be classed right by colour alone.
    ``shape_judge`` trains a second classifier on grey images (the same scenes, steps and seed) and reports
    its accuracy on real scenes and its ``shape_consistency`` on grey samples: how far the samples' shapes,
    not their colours, carry the class.

    The classifier trains on scenes ``0 .. n_train-1`` of split "eval"; its accuracy is measured on
    scenes ``0 .. n_test-1`` of "eval-ref". For each truncation, ``n_samples`` samples with balanced
    classes (:func:`balanced_latents`) are classified, and their features compared with those of
    "eval-ref" scenes ``0 .. n_samples-1``; "eval-ref" scenes ``n_samples .. 2 n_samples-1`` against the
    same set give the real-vs-real reference. ``progress(stage, done, total)`` reports the long loops.

    Returns a JSON-able dict::

        {"classifier": {"train_scenes", "steps", "heldout_scenes", "heldout_accuracy", "per_class_accuracy"},
         "truncations": {"1.0": {"samples", "class_consistency", "per_class": {name: share},
                                 "frechet_distance"}, ...},
         "frechet_distance_real_vs_real", "real_scenes", "chance", "class_names", "settings": {...}}
    """
    generator = _as_generator(net)
    if generator.num_classes != num_classes:
        raise SynthsodError(f"the generator has {generator.num_classes} classes, the evaluation expects {num_classes}")
    if n_train < 1 or n_test < 1 or n_samples < 2:
        raise SynthsodError("generator evaluation: n_train and n_test must be >= 1 and n_samples >= 2")
    size = generator.resolution
    train_images, train_ids = real_scenes(
        world_seed, scenes.split_indices("eval", n_train), size, progress, "real scenes (eval)"
    )
    model = train_scene_classifier(train_images, train_ids, num_classes, classifier_steps, seed=seed, progress=progress)
    shape_model = (
        train_scene_classifier(to_grey(train_images), train_ids, num_classes, classifier_steps, seed=seed)
        if shape_judge
        else None
    )
    del train_images
    # One rendering of "eval-ref" serves the held-out accuracy and both real feature sets.
    ref_images, ref_ids = real_scenes(
        world_seed,
        scenes.split_indices("eval-ref", max(n_test, 2 * n_samples)),
        size,
        progress,
        "real scenes (eval-ref)",
    )
    ref_predicted, ref_features = classify(model, images_to_tensor(ref_images))
    real_a, real_b = ref_features[:n_samples], ref_features[n_samples : 2 * n_samples]
    report: dict = {
        "classifier": {
            "train_scenes": n_train,
            "steps": classifier_steps,
            "heldout_scenes": n_test,
            "heldout_accuracy": float(np.mean(ref_predicted[:n_test] == ref_ids[:n_test])),
            "per_class_accuracy": _per_class(ref_predicted[:n_test], ref_ids[:n_test], num_classes),
        },
        "truncations": {},
        "frechet_distance_real_vs_real": frechet_distance(real_a, real_b),
        **(
            {
                "shape_judge": {
                    "heldout_accuracy": float(
                        np.mean(
                            classify(shape_model, images_to_tensor(to_grey(ref_images[:n_test])))[0] == ref_ids[:n_test]
                        )
                    )
                }
            }
            if shape_model is not None
            else {}
        ),
        "real_scenes": n_samples,
        "chance": 1.0 / num_classes,
        "class_names": _class_names(num_classes),
        "settings": {
            "world_seed": world_seed,
            "seed": seed,
            "n_train": n_train,
            "n_test": n_test,
            "n_samples": n_samples,
            "classifier_steps": classifier_steps,
            "truncations": [float(t) for t in truncations],
        },
    }
    for truncation in truncations:
        key = str(float(truncation))
        z, ids = balanced_latents(generator, n_samples, num_classes, truncation, seed)
        images = generate_images(generator, z, ids, truncation, progress, f"samples (truncation {key})")
        predicted, features = classify(model, images)
        report["truncations"][key] = {
            "samples": n_samples,
            "class_consistency": float(np.mean(predicted == ids)),
            "per_class": _per_class(predicted, ids, num_classes),
            "frechet_distance": frechet_distance(features, real_a),
        }
        if shape_model is not None:
            grey = images_to_tensor(to_grey(tensor_to_images(images)))
            report["truncations"][key]["shape_consistency"] = float(np.mean(classify(shape_model, grey)[0] == ids))
    return report


def to_grey(images_uint8: np.ndarray) -> np.ndarray:
    """RGB uint8 [N, S, S, 3] -> its grey level repeated in three channels (what the shape judge sees)."""
    grey = np.clip(np.rint(to_gray(images_uint8) * 255), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def write_quality(report: dict, path: str | os.PathLike) -> None:
    """Write an :func:`evaluate_generator` report as JSON, atomically."""
    write_json_atomic(path, report)


# --- the sample grid --------------------------------------------------------------------------------
LABEL_FONT, LABEL_SCALE, LABEL_PAD = cv2.FONT_HERSHEY_SIMPLEX, 0.45, 6


def label_width(class_names: Sequence[str]) -> int:
    """Width in pixels of the grid's label margin: the longest name plus padding on both sides."""
    widest = max(cv2.getTextSize(name, LABEL_FONT, LABEL_SCALE, 1)[0][0] for name in class_names)
    return widest + 2 * LABEL_PAD


def sample_grid(
    net: BigGAN | BigGANGenerator,
    path: str | os.PathLike,
    *,
    num_classes: int,
    class_names: Sequence[str],
    per_class: int = 8,
    truncation: float = 1.0,
    seed: int = 0,
    scale: int = 2,
) -> np.ndarray:
    """Write a PNG with one row per class: its name on a white margin, then ``per_class`` samples.

    Row ``c`` holds samples ``c * per_class .. (c + 1) * per_class - 1`` (latents from ``(seed, i)``)
    conditioned on class ``c``, each upscaled ``scale`` times by pixel repetition (nearest neighbour: no
    smoothing that would flatter the samples). Returns the grid [H, W, 3] uint8 (RGB), H = K * R * scale,
    W = label_width(class_names) + per_class * R * scale.
    """
    if len(class_names) != num_classes:
        raise SynthsodError(f"sample grid: {len(class_names)} class names for {num_classes} classes")
    if per_class < 1 or scale < 1:
        raise SynthsodError("sample grid: per_class and scale must be >= 1")
    generator = _as_generator(net)
    n = num_classes * per_class
    z, _ = sample_latents(seed, range(n), generator.z_dim, truncation, np.arange(num_classes))
    ids = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    samples = tensor_to_images(generate_images(generator, z, ids, truncation))
    side = generator.resolution * scale
    samples = samples.repeat(scale, axis=1).repeat(scale, axis=2)  # [n, side, side, 3]
    rows = samples.reshape(num_classes, per_class, side, side, 3).transpose(0, 2, 1, 3, 4)
    tiles = rows.reshape(num_classes * side, per_class * side, 3)
    margin = np.full((num_classes * side, label_width(class_names), 3), 255, np.uint8)
    for c, name in enumerate(class_names):
        (_, text_h), _ = cv2.getTextSize(name, LABEL_FONT, LABEL_SCALE, 1)
        baseline_y = c * side + (side + text_h) // 2
        cv2.putText(margin, name, (LABEL_PAD, baseline_y), LABEL_FONT, LABEL_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    grid = np.ascontiguousarray(np.concatenate([margin, tiles], axis=1))
    write_image(path, grid)
    return grid


__all__ = [
    "SceneClassifier",
    "augment",
    "balanced_latents",
    "classify",
    "evaluate_generator",
    "frechet_distance",
    "generate_images",
    "images_to_tensor",
    "label_width",
    "real_scenes",
    "sample_grid",
    "tensor_to_images",
    "train_scene_classifier",
    "write_quality",
]
