"""ATAL rounds: a point-labelled SOD training grown by active queries (pieces in :mod:`synthsod.sod.atal.methods`).

Round 0 labels ``initial_points`` random pixels per image (drawn from (seed, id), as
:mod:`synthsod.sod.point_labels` draws them); each point's label is read from the ground truth, as the
paper does, and spread to its superpixel. Every round then:

1. trains the model from scratch on the labelled pixels only (partial BCE) under the cyclic cosine
   schedule, keeping the model at the end of each of the ``cycles`` cycles (TEUE's snapshots);
2. unless the budget is reached, queries ``points_per_round`` new points per image: the snapshots'
   mean probability on the clean image and on each snapshot's own PGD image (AATU) give the margin
   uncertainty; its top ``candidate_fraction`` unlabelled pixels are the candidates; RDS picks the
   points from them by a k-centre cover in the model's pixel features, ranked by dissimilarity to the
   image's labelled points.

The last round's model is the result. ``on_round`` receives each round's point table (columns of
:data:`POINT_COLUMNS`; rows, cols at the training size, y, x their centres as fractions of the side).
Pixel features are the input of the layer that makes the final prediction, upsampled to the image size:
each model class names that layer in its ``pixel_feature_layer`` attribute (U-Net: ``head``; F3Net:
``prediction_heads.1``, the second decoder's head at stride 4, not a side head), and a model without one is
an error.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from synthsod.core.images import to_uint8_nhwc
from synthsod.core.progress import progress
from synthsod.data.datasets import ManifestDataset
from synthsod.errors import SynthsodError
from synthsod.sod.atal.methods import (
    candidate_pixels,
    ensemble_probabilities,
    margin_uncertainty,
    pgd_attack,
    propagate_point_labels,
    rds_select,
    superpixels,
)
from synthsod.sod.point_labels import id_rng, random_points
from synthsod.sod.schedules import snapshot_steps
from synthsod.sod.train import Recipe, normalise, train_sod, training_steps

POINT_COLUMNS = ["id", "row", "col", "y", "x", "label", "superpixel", "round"]
PIXEL_FEATURE_ATTRIBUTE = "pixel_feature_layer"  # a model class attribute: see pixel_feature_layer()


@dataclass
class ActiveSpec:
    """The config's ``sod.<name>.active``. The paper's setting (F3Net on DUTS-TR): 2 random points per image
    in round 0 (``initial_points``), 10 per image in the end (``budget``; its budget curve, Fig. 8a, goes to
    20), candidates from the top K = 3 % most uncertain pixels (``candidate_fraction``), L = 5 snapshots
    (``recipe.cycles``, with ``recipe.schedule: cyclic``), labels spread over SEEDS superpixels covering
    ~2.2 % of DUTS-TR (``superpixels``). It gives no points per round, PGD radius or step: ours are choices.
    One training ends at one budget, so the budget curve is one training per budget (its rounds repeat the
    smaller budgets' rounds: each training is deterministic from its seed)."""

    initial_points: int = 2
    points_per_round: int = 2
    budget: int = 10  # points per image after the last round (the paper: 10, at most 20)
    eps: float = 0.03  # PGD radius on ImageNet-normalised inputs
    alpha: float = 0.01
    pgd_steps: int = 3
    candidate_fraction: float = 0.03  # K
    cover_factor: int = 2
    superpixels: dict = field(default_factory=lambda: {"method": "slic", "segments": 450, "compactness": 10.0})
    seed: int = 0

    def budgets(self) -> list[int]:
        """Points per image after each round: initial, + points_per_round, ..., budget."""
        if not 0 < self.initial_points <= self.budget or self.points_per_round < 1:
            raise SynthsodError(
                f"active learning needs 0 < initial_points <= budget and points_per_round >= 1, got "
                f"{self.initial_points}, {self.budget}, {self.points_per_round}"
            )
        counts = list(range(self.initial_points, self.budget, self.points_per_round))
        return [*counts, self.budget]


class PointLabelledSet(Dataset):
    """``data``'s items with "mask" and "visible" from the points so far, spread over superpixels."""

    def __init__(self, data: Dataset, spec: ActiveSpec):
        self.data, self.spec = data, spec
        self.points: dict[int, pd.DataFrame] = {}
        self._segments: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.data)

    def segments(self, index: int, item: dict) -> np.ndarray:
        if index not in self._segments:
            sp = self.spec.superpixels
            image = to_uint8_nhwc(item["image"].permute(1, 2, 0).numpy()[None])[0]
            self._segments[index] = superpixels(image, sp["method"], sp["segments"], sp["compactness"], self.spec.seed)
        return self._segments[index]

    def add(self, index: int, item: dict, rows: np.ndarray, cols: np.ndarray, round_index: int) -> None:
        """Label pixels (rows, cols) of item ``index`` (``data[index]``, already read) from its ground truth."""
        mask, segments, side = item["mask"][0].numpy(), self.segments(index, item), item["mask"].shape[-1]
        new = pd.DataFrame(
            {
                "id": item["id"],
                "row": rows,
                "col": cols,
                "y": (rows + 0.5) / side,
                "x": (cols + 0.5) / side,
                "label": (mask[rows, cols] > 0.5).astype(np.int8),
                "superpixel": segments[rows, cols].astype(np.int32),
                "round": round_index,
            }
        )
        self.points[index] = pd.concat([self.points.get(index), new], ignore_index=True)

    def table(self) -> pd.DataFrame:
        return pd.concat([self.points[i] for i in sorted(self.points)], ignore_index=True)[POINT_COLUMNS]

    def __getitem__(self, index: int) -> dict:
        item = dict(self.data[index])
        points = self.points[index]
        labels, visible = propagate_point_labels(
            self.segments(index, item), points[["row", "col"]].to_numpy(), points["label"].to_numpy()
        )
        item["mask"], item["visible"] = torch.from_numpy(labels)[None], torch.from_numpy(visible)[None]
        return item


def pixel_feature_layer(model: nn.Module) -> nn.Module:
    """The submodule named by the model's ``pixel_feature_layer``: the layer whose input is the final
    prediction's pixel features (U-Net: ``head``; F3Net: ``prediction_heads.1``, the second decoder's head)."""
    name = getattr(model, PIXEL_FEATURE_ATTRIBUTE, None)
    if not isinstance(name, str):
        raise SynthsodError(
            f"{type(model).__name__} names no pixel-feature layer, so ATAL cannot compare its pixels: give the "
            f"class a '{PIXEL_FEATURE_ATTRIBUTE}' attribute, the name of the module whose input is the final "
            f"prediction's features"
        )
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise SynthsodError(
            f"{type(model).__name__}.{PIXEL_FEATURE_ATTRIBUTE} = {name!r} names no submodule of the model"
        ) from None


def prediction_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w]: the input of :func:`pixel_feature_layer` at its own resolution (no gradients)."""
    captured = []
    handle = pixel_feature_layer(model).register_forward_hook(lambda module, inputs, output: captured.append(inputs[0]))
    try:
        with torch.no_grad():
            model(images)
    finally:
        handle.remove()
    if len(captured) != 1:
        raise SynthsodError(
            f"{type(model).__name__}'s pixel-feature layer {getattr(model, PIXEL_FEATURE_ATTRIBUTE)!r} ran "
            f"{len(captured)} times in one forward pass; it must run once"
        )
    return captured[0]


def pixel_features(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W]: :func:`prediction_features` upsampled (bilinear) to the images' size."""
    features = prediction_features(model, images)
    return F.interpolate(features, size=images.shape[2:], mode="bilinear", align_corners=False)


def adversarial_uncertainty(snapshots: list[nn.Module], images: torch.Tensor, spec: ActiveSpec) -> torch.Tensor:
    """Eq 3 on the snapshot ensemble: clean vs adversarial mean probabilities (each snapshot attacked itself)."""
    clean = ensemble_probabilities(snapshots, images)
    adversarial = torch.stack(
        [ensemble_probabilities([s], pgd_attack(s, images, spec.eps, spec.alpha, spec.pgd_steps)) for s in snapshots]
    )
    return margin_uncertainty(clean, adversarial.mean(dim=0))


def query_points(
    snapshots: list[nn.Module], labelled: PointLabelledSet, count: int, round_index: int, batch_size: int = 16
) -> None:
    """Add ``count`` points per image chosen by adversarial uncertainty and RDS."""
    device = next(snapshots[-1].parameters()).device
    spec = labelled.spec
    with progress(total=len(labelled), desc=f"ATAL queries, round {round_index}", unit="image") as bar:
        for lo in range(0, len(labelled), batch_size):
            indices = list(range(lo, min(lo + batch_size, len(labelled))))
            items = [labelled[i] for i in indices]
            images = normalise(torch.stack([it["image"] for it in items]).to(device))
            uncertainty = adversarial_uncertainty(snapshots, images, spec).cpu()
            features = pixel_features(snapshots[-1], images).cpu()
            for j, (index, item) in enumerate(zip(indices, items)):
                # pixels already labelled (whole superpixels) are never asked again
                rows, cols = candidate_pixels(
                    uncertainty[j, 0], spec.candidate_fraction, exclude=item["visible"][0] > 0.5
                )
                known = labelled.points[index]
                chosen = rds_select(
                    features[j][:, rows, cols].T.numpy(),
                    uncertainty[j, 0, rows, cols].numpy(),
                    features[j][:, known["row"], known["col"]].T.numpy(),
                    count,
                    spec.cover_factor,
                )
                # the item above carries the propagated labels; the new points read the ground truth
                labelled.add(index, labelled.data[index], rows[chosen], cols[chosen], round_index)
            bar.update(len(indices))


def train_active(
    model_name: str,
    loss: str,
    data: Dataset,
    recipe: Recipe,
    spec: ActiveSpec,
    *,
    seed: int = 0,
    model_kwargs: dict | None = None,
    device: torch.device | str = "cpu",
    on_round: Callable[[int, pd.DataFrame], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> nn.Module:
    """Run every round (module docstring); return the last round's model in eval mode."""
    if recipe.schedule != "cyclic":
        raise SynthsodError(
            f"ATAL trains under the cyclic cosine schedule (snapshots): set recipe.schedule: cyclic, "
            f"not '{recipe.schedule}'"
        )
    budgets = spec.budgets()
    labelled = PointLabelledSet(data, spec)
    for index in progress(range(len(data)), desc="ATAL initial points", unit="image"):
        item = data[index]
        side = item["mask"].shape[-1]
        points = random_points((side, side), budgets[0], id_rng(spec.seed, item["id"]))
        labelled.add(index, item, points[:, 0], points[:, 1], 0)
    keep = set(snapshot_steps(training_steps(recipe, len(data)), recipe.cycles))
    model = None
    for round_index, budget in enumerate(budgets):
        snapshots: list[nn.Module] = []
        model = train_sod(
            model_name,
            loss,
            labelled,
            recipe,
            seed=seed,
            model_kwargs=model_kwargs,
            device=device,
            # the callbacks run inside this round's train_sod call, so the loop variables are this round's
            on_step=None if on_step is None else lambda step, value: on_step(round_index, step, value),  # noqa: B023
            after_step=lambda step, m: snapshots.append(copy.deepcopy(m).eval()) if step in keep else None,  # noqa: B023
            desc=f"{model_name} training, ATAL round {round_index}",
        )
        if on_round is not None:
            on_round(round_index, labelled.table())
        if round_index + 1 < len(budgets):
            query_points(snapshots, labelled, budgets[round_index + 1] - budget, round_index + 1)
    return model


def image_uncertainty(
    model: nn.Module, data: Dataset, spec: ActiveSpec, batch_size: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(score [n], features [n, C]) per image of ``data``: the mean adversarial margin uncertainty of
    ``model`` (eq 3, one model as its own ensemble) and its mean-pooled pixel features."""
    device = next(model.parameters()).device
    scores, features = [], []
    with progress(total=len(data), desc="adversarial uncertainty", unit="image") as bar:
        for lo in range(0, len(data), batch_size):
            images = normalise(
                torch.stack([data[i]["image"] for i in range(lo, min(lo + batch_size, len(data)))]).to(device)
            )
            scores.append(adversarial_uncertainty([model], images, spec).mean(dim=(1, 2, 3)).cpu())
            features.append(pixel_features(model, images).mean(dim=(2, 3)).cpu())
            bar.update(len(images))
    return torch.cat(scores).numpy(), torch.cat(features).numpy()


def select_uncertain_images(
    scores: np.ndarray, features: np.ndarray, size: int, candidate_factor: int = 3
) -> list[int]:
    """ATAL as an image selection: the ``candidate_factor`` x ``size`` most uncertain images are the
    candidates, and RDS's k-centre cover (seeded by the most uncertain) picks ``size`` diverse ones."""
    if size < 1:
        raise SynthsodError(f"cannot select {size} images")
    order = np.argsort(-scores, kind="stable")[: candidate_factor * size]
    chosen = rds_select(features[order], scores[order], None, min(size, len(order)))
    return sorted(int(order[i]) for i in chosen)


def uncertain_ids(pairs: pd.DataFrame, model: nn.Module, size: int, image_size: int, attack: ActiveSpec) -> list[str]:
    """The ids of ``size`` rows of ``pairs`` (columns id, image, mask; e.g. DEN latents) that deserve full
    labels by :func:`select_uncertain_images`, scored at ``image_size`` under ``attack``'s PGD."""
    data = ManifestDataset(pairs[["id", "image", "mask"]], image_size)
    scores, features = image_uncertainty(model, data, attack)
    return list(pairs["id"].iloc[select_uncertain_images(scores, features, size)])


__all__ = [
    "POINT_COLUMNS",
    "ActiveSpec",
    "PointLabelledSet",
    "PIXEL_FEATURE_ATTRIBUTE",
    "adversarial_uncertainty",
    "image_uncertainty",
    "pixel_feature_layer",
    "pixel_features",
    "prediction_features",
    "query_points",
    "select_uncertain_images",
    "train_active",
    "uncertain_ids",
]
