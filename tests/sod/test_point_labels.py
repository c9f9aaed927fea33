"""Simulated point annotations: distinct points drawn from (seed, id) alone, disks of visibility."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.point_labels import PointLabelled, id_rng, point_visibility, random_points


def test_points_are_distinct_and_come_from_the_seed_and_id_only():
    a = random_points((8, 8), 64, id_rng(0, "img1"))
    assert len({tuple(p) for p in a}) == 64  # every pixel once: no repeats
    np.testing.assert_array_equal(
        random_points((20, 30), 5, id_rng(0, "img1")), random_points((20, 30), 5, id_rng(0, "img1"))
    )
    assert not np.array_equal(
        random_points((20, 30), 5, id_rng(0, "img1")), random_points((20, 30), 5, id_rng(0, "img2"))
    )
    with pytest.raises(SynthsodError, match="cannot draw 65 distinct points in a 8x8 image"):
        random_points((8, 8), 65, id_rng(0, "x"))


def test_visibility_is_a_disk_of_the_radius_around_each_point():
    visible = point_visibility((9, 9), np.array([[4, 4]]), radius=2)
    rows, cols = np.nonzero(visible)
    assert ((rows - 4) ** 2 + (cols - 4) ** 2 <= 4).all() and visible.sum() == 13  # the discrete disk of radius 2
    assert point_visibility((9, 9), np.array([[0, 8], [3, 3]]), radius=0).sum() == 2


def test_point_labelled_items_keep_the_mask_and_add_visibility_independent_of_it():
    class Data(torch.utils.data.Dataset):
        def __init__(self, value):
            self.value = value

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {"id": f"s{i}", "image": torch.zeros(3, 16, 16), "mask": torch.full((1, 16, 16), self.value)}

    zeros, ones = PointLabelled(Data(0.0), count=3, radius=0), PointLabelled(Data(1.0), count=3, radius=0)
    assert zeros[0]["visible"].shape == (1, 16, 16) and zeros[0]["visible"].sum() == 3
    assert torch.equal(zeros[0]["visible"], ones[0]["visible"])  # the labels do not steer the points
    assert not torch.equal(zeros[0]["visible"], zeros[1]["visible"])
    assert torch.equal(ones[1]["mask"], torch.ones(1, 16, 16))
