"""ATAL's algorithms: PGD, regions, eq 3 / 6 / 8 / 10, the greedy k-centre cover, superpixel label propagation."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from synthsod.errors import SynthsodError
from synthsod.sod.atal.methods import (
    REGION_INSENSITIVE,
    REGION_SAFE,
    REGION_SENSITIVE,
    candidate_pixels,
    ensemble_probabilities,
    greedy_k_center,
    margin_uncertainty,
    pgd_attack,
    pixel_regions,
    propagate_point_labels,
    rank_by_dissimilarity,
    rds_select,
    superpixels,
)
from synthsod.sod.schedules import cyclic_cosine_lr, snapshot_steps


def small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))


def own_target_bce(model: nn.Module, images: torch.Tensor, clean: torch.Tensor) -> float:
    with torch.no_grad():
        target = (torch.sigmoid(model(clean)) > 0.5).float()
        return float(F.binary_cross_entropy_with_logits(model(images), target))


# --- AATU ------------------------------------------------------------------------------------------------------


def test_pgd_stays_in_the_eps_ball_raises_the_loss_and_leaves_parameter_grads_alone():
    model = small_net()
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    adv = pgd_attack(model, images, eps=0.05, alpha=0.02, steps=5)
    assert adv.shape == images.shape and not adv.requires_grad
    assert (adv - images).abs().max() <= 0.05 + 1e-6
    assert (adv - images).abs().max() >= 0.05 - 1e-6  # 5 steps of 0.02 reach the ball's edge
    assert own_target_bce(model, adv, images) > own_target_bce(model, images, images) + 1e-3
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(pgd_attack(model, images, eps=0.05, alpha=0.02, steps=0), images)


def test_pgd_takes_the_first_output_works_under_no_grad_and_clamps_only_when_asked():
    model = small_net()
    images = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        adv = pgd_attack(lambda x: (model(x), model(x) * 0), images, eps=0.3, alpha=0.3, steps=2)
    assert (adv < 0).any() or (adv > 1).any()  # unclamped: a 0.3 step leaves [0, 1] somewhere
    bounded = pgd_attack(model, images, eps=0.3, alpha=0.3, steps=2, bounds=(0.0, 1.0))
    assert bounded.min() >= 0 and bounded.max() <= 1
    with pytest.raises(SynthsodError, match="logits"):
        pgd_attack(lambda x: x, images, eps=0.1, alpha=0.1, steps=1)
    with pytest.raises(SynthsodError, match="alpha > 0"):
        pgd_attack(model, images, eps=0.1, alpha=0.0, steps=1)


def test_pixel_regions_follow_the_class_flip_and_the_clean_distance_to_the_boundary():
    p_clean = torch.tensor([0.9, 0.55, 0.9, 0.1, 0.55, 0.3])
    p_adv = torch.tensor([0.8, 0.6, 0.3, 0.6, 0.45, 0.7])
    expected = [REGION_SAFE, REGION_SAFE, REGION_INSENSITIVE, REGION_INSENSITIVE, REGION_SENSITIVE, REGION_SENSITIVE]
    assert pixel_regions(p_clean, p_adv).tolist() == expected


# --- TEUE ------------------------------------------------------------------------------------------------------


def test_cyclic_cosine_lr_matches_eq_8_by_hand():
    # T = 80, L = 4: cycles of 20 iterations
    assert cyclic_cosine_lr(0.1, 0, 80, 4) == pytest.approx(0.1)
    assert cyclic_cosine_lr(0.1, 10, 80, 4) == pytest.approx(0.05)  # half way: cos(pi / 2) = 0
    assert cyclic_cosine_lr(0.1, 19, 80, 4) == pytest.approx(0.000615583, rel=1e-5)  # 0.05 (1 + cos(0.95 pi))
    assert cyclic_cosine_lr(0.1, 20, 80, 4) == pytest.approx(0.1)  # restart
    assert cyclic_cosine_lr(0.1, 30, 80, 4) == pytest.approx(0.05)
    assert cyclic_cosine_lr(0.1, 10, 80, 4, min_lr=0.01) == pytest.approx(0.055)
    # T = 10, L = 4: ceil gives cycles of 3, so iteration 4 is a third into the second cycle
    assert cyclic_cosine_lr(1.0, 4, 10, 4) == pytest.approx(0.5 * (1 + math.cos(math.pi / 3)))
    with pytest.raises(SynthsodError, match="outside"):
        cyclic_cosine_lr(0.1, 80, 80, 4)
    with pytest.raises(SynthsodError, match="cycles"):
        cyclic_cosine_lr(0.1, 0, 3, 4)


def test_snapshots_are_the_last_iteration_of_each_cycle():
    assert snapshot_steps(80, 4) == [19, 39, 59, 79]
    assert snapshot_steps(10, 4) == [2, 5, 8, 9]  # the last cycle is cut short by the end of training
    assert snapshot_steps(5, 1) == [4]
    for t in snapshot_steps(80, 4):  # each snapshot sits at its cycle's lowest rate
        assert cyclic_cosine_lr(0.1, t, 80, 4) < 0.001


def test_ensemble_is_the_mean_sigmoid_of_the_snapshots_without_grad():
    images = torch.zeros(2, 3, 4, 4)
    half = lambda x: torch.zeros(x.shape[0], 1, *x.shape[2:])  # noqa: E731
    ninety = lambda x: torch.full((x.shape[0], 1, *x.shape[2:]), math.log(9.0))  # noqa: E731
    probs = ensemble_probabilities([half, ninety], images)
    assert probs.shape == (2, 1, 4, 4) and torch.allclose(probs, torch.full_like(probs, 0.7))
    assert not ensemble_probabilities([small_net()], images).requires_grad
    with pytest.raises(SynthsodError, match="at least one"):
        ensemble_probabilities([], images)


def test_margin_uncertainty_is_zero_on_confident_agreement_and_largest_on_a_flip():
    p_clean = torch.tensor([0.95, 0.05, 0.9, 0.9, 0.6, 0.7]).view(1, 1, 1, 6)
    p_adv = torch.tensor([0.95, 0.05, 0.6, 0.1, 0.4, 0.95]).view(1, 1, 1, 6)
    u = margin_uncertainty(p_clean, p_adv)
    assert u.shape == p_clean.shape
    # agree, agree, lose confidence, confident flip, flip near the boundary, gain confidence
    assert u.flatten().tolist() == pytest.approx([0.0, 0.0, 0.3, 0.8, 0.2, 0.0])


# --- RDS -------------------------------------------------------------------------------------------------------


def test_candidate_pixels_are_exactly_the_top_fraction_and_skip_excluded_pixels():
    values = np.random.default_rng(0).permutation(100).reshape(10, 10).astype(np.float32)
    rows, cols = candidate_pixels(values, top_fraction=0.03)
    assert values[rows, cols].tolist() == [99, 98, 97]
    exclude = values >= 98
    rows, cols = candidate_pixels(torch.from_numpy(values), top_fraction=0.03, exclude=exclude)
    assert values[rows, cols].tolist() == [97, 96, 95]
    assert len(candidate_pixels(values, top_fraction=0.1)[0]) == 10
    with pytest.raises(SynthsodError, match="fraction"):
        candidate_pixels(values, top_fraction=0.0)


def covering_radius(points: np.ndarray, centres: list[int]) -> float:
    return float(np.linalg.norm(points[:, None] - points[centres][None], axis=2).min(axis=1).max())


@pytest.mark.parametrize("seed", range(6))
def test_greedy_cover_is_within_twice_the_optimal_radius(seed):
    points = np.random.default_rng(seed).normal(size=(8, 2))
    chosen = greedy_k_center(points, 3)
    assert len(set(chosen)) == 3 and chosen[0] == 0
    optimum = min(covering_radius(points, list(c)) for c in itertools.combinations(range(8), 3))
    assert covering_radius(points, chosen) <= 2 * optimum + 1e-9


def test_greedy_cover_adds_the_farthest_point_and_respects_initial_centres():
    line = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])
    assert greedy_k_center(line, 3) == [0, 4, 3]
    assert greedy_k_center(line, 2, initial=[4]) == [0, 3]  # 0 is 10 from the centre 10; then 3 is 3 from 0
    assert greedy_k_center(np.zeros((4, 2)), 3) == [0, 1, 2]  # duplicates: no centre twice
    with pytest.raises(SynthsodError, match="cannot choose"):
        greedy_k_center(line, 5, initial=[0])


def test_rank_by_dissimilarity_keeps_the_candidates_least_like_the_labelled_set():
    labelled = np.array([[1.0, 0.0], [1.0, 0.1]])
    candidates = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 1.0]])
    assert rank_by_dissimilarity(candidates, labelled, 2) == [2, 1]
    assert rank_by_dissimilarity(candidates, labelled, 4) == [2, 1, 3, 0]
    assert rank_by_dissimilarity(candidates, np.zeros((0, 2)), 2) == [0, 1]


def test_rds_covers_the_candidates_and_avoids_what_is_labelled():
    rng = np.random.default_rng(0)
    centres = np.array([[5.0, 0.0], [0.0, 5.0], [-5.0, 0.0]])  # clusters A, B, C
    features = np.repeat(centres, 3, axis=0) + rng.normal(scale=0.1, size=(9, 2))
    uncertainty = np.roll(np.linspace(1.0, 0.1, 9), 1)  # the most uncertain (index 1) is in cluster A
    picked = rds_select(features, uncertainty, np.array([[1.0, 0.0]]), k=2)
    assert len(picked) == 2 and picked[0] in (6, 7, 8) and all(i >= 3 for i in picked)  # C first, none of A
    assert rds_select(features, uncertainty, None, k=1) == [1]  # no labels: the cover's start, the most uncertain
    assert sorted(rds_select(features[:2], uncertainty[:2], None, k=5)) == [0, 1]


# --- Region label acquisition ----------------------------------------------------------------------------------


def test_point_labels_spread_over_exactly_their_superpixels():
    segments = np.zeros((6, 6), np.int32)
    segments[:3, 3:], segments[3:, :3], segments[3:, 3:] = 1, 2, 3
    labels, visible = propagate_point_labels(segments, np.array([[0, 0], [5, 5], [4, 4]]), np.array([1, 0, 0]))
    assert labels.dtype == visible.dtype == np.float32
    np.testing.assert_array_equal(visible, np.isin(segments, (0, 3)))
    np.testing.assert_array_equal(labels, segments == 0)
    # two points that disagree inside superpixel 1 label themselves only
    labels, visible = propagate_point_labels(segments, np.array([[0, 3], [2, 5]]), np.array([1, 0]))
    assert visible.sum() == 2 and visible[0, 3] == visible[2, 5] == 1
    assert labels[0, 3] == 1 and labels[2, 5] == 0
    with pytest.raises(SynthsodError, match="outside"):
        propagate_point_labels(segments, np.array([[6, 0]]), np.array([1]))


def test_slic_superpixels_follow_the_colour_edge_and_carry_point_labels():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = (220, 30, 30)
    image[:, 16:] = (30, 30, 220)
    segments = superpixels(image, "slic", n_segments=8)
    assert segments.dtype == np.int32 and segments.shape == (32, 32) and segments.min() == 0
    assert not set(np.unique(segments[:, :16])) & set(np.unique(segments[:, 16:]))  # no segment crosses the edge
    points = np.array([[5, 5], [20, 28]])
    labels, visible = propagate_point_labels(segments, points, np.array([1, 0]))
    first, second = segments == segments[5, 5], segments == segments[20, 28]
    np.testing.assert_array_equal(visible, first | second)
    np.testing.assert_array_equal(labels, first)


def test_seeds_needs_opencv_contrib(monkeypatch):
    monkeypatch.delattr(cv2, "ximgproc", raising=False)
    with pytest.raises(SynthsodError, match="opencv-contrib.*slic"):
        superpixels(np.zeros((8, 8, 3), np.uint8), "seeds")
    with pytest.raises(SynthsodError, match="unknown superpixel method"):
        superpixels(np.zeros((8, 8, 3), np.uint8), "watershed")
