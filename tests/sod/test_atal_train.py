"""ATAL rounds on a toy set: budgets, point tables, queries that avoid labelled regions, determinism,
and training that reads labels only where points were placed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.atal.train import (
    POINT_COLUMNS,
    ActiveSpec,
    PointLabelledSet,
    pixel_features,
    select_uncertain_images,
    train_active,
)
from synthsod.sod.models import UNet
from synthsod.sod.train import Recipe
from synthsod.sodgan.fewshot import select_fewshot

SIZE = 32
RECIPE = dict(
    optimizer="adam",
    lr=3e-3,
    backbone_lr=3e-3,
    weight_decay=0.0,
    batch_size=4,
    steps=6,
    schedule="cyclic",
    cycles=3,
    sizes=[SIZE],
    checkpoint_every=100,
)
SPEC = dict(
    initial_points=2,
    points_per_round=3,
    budget=8,
    pgd_steps=2,
    superpixels={"method": "slic", "segments": 30, "compactness": 10.0},
)


class ToyData(torch.utils.data.Dataset):
    def __init__(self, n=6):
        gen = torch.Generator().manual_seed(0)
        # smooth colour gradients plus mild noise (SLIC merges pure noise into one segment)
        ramp = torch.linspace(-0.6, 0.6, SIZE)
        self.images = ramp[None, None, :, None] * torch.rand(n, 3, 1, 1, generator=gen) + 0.05 * torch.randn(
            n, 3, SIZE, SIZE, generator=gen
        )
        self.images[:, :, 8:24, 8:24] += 0.6  # a bright square object
        self.masks = torch.zeros(n, 1, SIZE, SIZE)
        self.masks[:, :, 8:24, 8:24] = 1

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"id": f"t{i}", "image": self.images[i].clamp(-1, 1), "mask": self.masks[i]}


def run(data=None, **spec):
    tables = {}
    model = train_active(
        "unet",
        "bce",
        data or ToyData(),
        Recipe(**RECIPE),
        ActiveSpec(**{**SPEC, **spec}),
        model_kwargs={"base": 4, "depth": 2},
        on_round=lambda r, t: tables.setdefault(r, t),
    )
    return model, tables


def test_budgets_grow_by_the_round_size_up_to_the_budget():
    assert ActiveSpec(initial_points=2, points_per_round=2, budget=10).budgets() == [2, 4, 6, 8, 10]
    assert ActiveSpec(initial_points=2, points_per_round=3, budget=6).budgets() == [2, 5, 6]
    with pytest.raises(SynthsodError, match="initial_points <= budget"):
        ActiveSpec(initial_points=4, budget=3).budgets()


def test_rounds_add_points_outside_labelled_superpixels_with_ground_truth_labels():
    model, tables = run()
    assert sorted(tables) == [0, 1, 2]
    final = tables[2]
    assert list(final.columns) == POINT_COLUMNS
    assert (final.groupby("id").size() == 8).all()  # 2 + 3 + 3 (budget)
    assert (final.groupby(["id", "round"]).size().unstack().to_numpy() == [2, 3, 3]).all()
    data = ToyData()
    truth = data.masks[:, 0].numpy()
    index = {f"t{i}": i for i in range(len(data))}
    assert all(row.label == truth[index[row.id], row.row, row.col] for row in final.itertuples())
    for _, points in final.groupby("id"):  # a query never lands in a superpixel labelled in an earlier round
        for r in (1, 2):
            earlier = set(points[points["round"] < r]["superpixel"])
            assert not earlier & set(points[points["round"] == r]["superpixel"])
    assert isinstance(model, UNet) and not model.training


def test_active_learning_is_deterministic():
    _, first = run()
    _, second = run()
    pd.testing.assert_frame_equal(first[2], second[2])


def test_rounds_read_the_ground_truth_only_at_the_queried_points():
    """Flipping every pixel outside the final points' superpixels leaves the run unchanged."""
    _, tables = run()
    data = ToyData()
    labelled = PointLabelledSet(data, ActiveSpec(**SPEC))
    flipped = ToyData()
    for i in range(len(data)):
        points = tables[2][tables[2]["id"] == f"t{i}"]
        labelled.points[i] = points
        seen = labelled[i]["visible"][0] > 0.5
        flipped.masks[i, 0][~seen] = 1 - flipped.masks[i, 0][~seen]
    _, again = run(flipped)
    pd.testing.assert_frame_equal(tables[2], again[2])


def test_pixel_features_are_the_head_input_at_full_size():
    model = UNet(base=4, depth=2, out_channels=1).eval()
    features = pixel_features(model, torch.randn(2, 3, SIZE, SIZE))
    assert features.shape == (2, 4, SIZE, SIZE)


def test_atal_needs_the_cyclic_schedule_and_the_partial_bce():
    with pytest.raises(SynthsodError, match="cyclic cosine"):
        train_active("unet", "bce", ToyData(), Recipe(**{**RECIPE, "schedule": "constant"}), ActiveSpec(**SPEC))
    with pytest.raises(SynthsodError, match="partial BCE"):
        train_active(
            "unet", "ce", ToyData(), Recipe(**RECIPE), ActiveSpec(**SPEC), model_kwargs={"base": 4, "depth": 2}
        )


def test_uncertain_image_selection_prefers_uncertain_and_diverse_images():
    scores = np.array([0.9, 0.85, 0.1, 0.8, 0.05, 0.7])
    features = np.array([[0, 0], [0, 0.01], [5, 5], [3, 0], [9, 9], [0, 3.0]])
    # candidates: the 4 most uncertain (0, 1, 3, 5); the cover from 0 adds the farthest ones, not the twin 1
    assert select_uncertain_images(scores, features, size=2, candidate_factor=2) == [0, 3]
    # all six are candidates here: the cover reaches the far, certain images first
    assert select_uncertain_images(scores, features, size=3, candidate_factor=2) == [0, 2, 4]


def test_fewshot_takes_the_ids_the_uncertainty_model_chose():
    latents = pd.DataFrame({"id": ["b", "a", "c"], "class": [1, 2, 3], "recon_error": [0.1, 0.2, 0.3]})
    assert list(select_fewshot(latents, "uncertain", 2, 0, chosen_ids=["c", "a"])["id"]) == ["a", "c"]
    with pytest.raises(SynthsodError, match="needs the ids"):
        select_fewshot(latents, "uncertain", 2, 0)
