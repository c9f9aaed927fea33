"""The segmenting-direction search (appendix B.2) on a synthetic generator with known answers.

The synthetic "generator" draws a colourful scene with a disk from z[:6]; z[6:] are transform amounts
t, zero in every pool latent, so shifting by 5 along one of the last four axes applies one known
transform in full:

- axis 6: the segmenting direction, A1 on the disk and A2 elsewhere (two known affine maps);
- axis 7: uniform lighting, one affine map on every pixel;
- axis 8: an additive pixel pattern (not affine at all);
- axis 9: a weak split, two nearly equal maps (exactly affine, so its L_h is the lowest, but D_h is small).

Shifts inside z[:6] move the scene itself, which no pair of colour maps explains.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from synthsod.core.settings import from_section
from synthsod.directions.search import (
    AffinePair,
    SearchConfig,
    direction_figure,
    fit_affine_pair,
    load_candidates,
    rank_directions,
    render_pool,
    restoration_gradient,
    score_pair,
    search_directions,
    shortlist_figures,
)
from synthsod.errors import SynthsodError

SIZE, SCENE_DIMS, Z_DIM = 32, 6, 10
SEGMENTING, UNIFORM, PATTERN, WEAK = 0, 1, 2, 3  # candidate rows of the transform axes 6..9
A1 = (np.array([[0.6, 0.1, 0.0], [0.0, 0.6, 0.1], [0.1, 0.0, 0.6]]), np.array([0.35, 0.3, 0.3]))
A2 = (np.array([[0.5, 0.0, 0.05], [0.05, 0.5, 0.0], [0.0, 0.05, 0.5]]), np.array([-0.05, 0.0, 0.02]))
LIGHTING = (0.8 * np.eye(3), np.full(3, 0.15))
WEAK_PAIR = ((0.97 * np.eye(3), np.zeros(3)), (np.eye(3), np.zeros(3)))
YY, XX = np.mgrid[0:SIZE, 0:SIZE] / SIZE


def scene(u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A smooth colour field in [0.2, 0.8] and a disk, both set by the scene latent u [6]."""
    phase = 3 * np.tanh(u[:3])
    image = np.stack(
        [0.5 + 0.3 * np.sin(2 * np.pi * (XX * (1 + c) + YY * (2 - c)) / 1.5 + phase[c]) for c in range(3)], axis=-1
    )
    cy, cx, radius = 0.5 + 0.2 * np.tanh(u[3]), 0.5 + 0.2 * np.tanh(u[4]), 0.25 + 0.08 * np.tanh(u[5])
    return image, (YY - cy) ** 2 + (XX - cx) ** 2 < radius**2


def towards(image: np.ndarray, operator, amount: float) -> np.ndarray:
    """The image moved ``amount`` of the way to the affine map's output (all of it at amount 1)."""
    matrix, bias = operator
    return image + amount * (image @ matrix.T + bias - image)


def render(z: np.ndarray, class_ids=None) -> np.ndarray:
    images = []
    for row in np.asarray(z, np.float64):
        image, disk = scene(row[:SCENE_DIMS])
        t = row[SCENE_DIMS:] / 5.0
        image = np.where(disk[..., None], towards(image, A1, t[0]), towards(image, A2, t[0]))
        image = towards(image, LIGHTING, t[1])
        image = image + t[2] * 0.2 * np.sin(37 * XX[..., None] * np.arange(1, 4) + 53 * YY[..., None])
        image = np.where(disk[..., None], towards(image, WEAK_PAIR[0], t[3]), towards(image, WEAK_PAIR[1], t[3]))
        images.append(image)
    return (2 * np.stack(images) - 1).astype(np.float32)  # generator range [-1, 1]


def pool(n: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.standard_normal((n, SCENE_DIMS)), np.zeros((n, Z_DIM - SCENE_DIMS))], 1).astype(
        np.float32
    )


def candidates(seed: int = 1) -> np.ndarray:
    transforms = np.eye(Z_DIM)[SCENE_DIMS:]
    scene_moves = np.random.default_rng(seed).standard_normal((6, Z_DIM)) * (np.arange(Z_DIM) < SCENE_DIMS)
    return np.concatenate([transforms, scene_moves]).astype(np.float32)


def matched_error(pair: AffinePair, truth) -> float:
    """Largest parameter error of the fitted pair against the true (A1, A2), under the better labelling."""
    true_matrices = np.stack([m for m, _ in truth])
    true_biases = np.stack([b for _, b in truth])
    errors = []
    for order in ([0, 1], [1, 0]):
        errors.append(
            max(np.abs(pair.matrices[order] - true_matrices).max(), np.abs(pair.biases[order] - true_biases).max())
        )
    return float(min(errors))


@pytest.fixture(scope="module")
def searched():
    z, directions = pool(), candidates()
    return z, directions, search_directions(render, z, None, directions, SearchConfig())


def test_search_recovers_the_two_operators_and_ranks_the_segmenting_direction_first(searched):
    _, _, result = searched
    ranking = result.ranking.set_index("direction")
    assert ranking.loc[SEGMENTING, "rank"] == 1 and ranking.loc[SEGMENTING, "chosen"]
    assert ranking["chosen"].sum() == 1
    assert matched_error(result.pairs[SEGMENTING], (A1, A2)) < 0.03
    assert ranking.loc[SEGMENTING, "restoration_loss"] < 1e-3
    # the disk covers about a quarter of the pool's pixels, and A1 (the brightening map) starts first
    share = ranking.loc[SEGMENTING, "share"]
    assert 0.15 < min(share, 1 - share) < 0.35


def test_uniform_lighting_is_discarded_by_the_share_rule(searched):
    _, _, result = searched
    row = result.ranking.set_index("direction").loc[UNIFORM]
    assert row["discarded"] and max(row["share"], 1 - row["share"]) >= 0.99
    assert pd.isna(row["rank"])


def test_a_weak_split_restores_best_yet_is_not_shortlisted_by_distance(searched):
    # Ranking by L_h alone would pick the weak split; the D_h shortlist keeps it out.
    _, _, result = searched
    ranking = result.ranking.set_index("direction")
    assert ranking.loc[WEAK, "restoration_loss"] < ranking.loc[SEGMENTING, "restoration_loss"]
    assert not ranking.loc[WEAK, "discarded"]
    assert ranking.loc[WEAK, "distance"] < 0.1 * ranking.loc[SEGMENTING, "distance"]
    assert not ranking.loc[WEAK, "top_distance"] and pd.isna(ranking.loc[WEAK, "rank"])


def test_non_affine_shifts_restore_worse(searched):
    _, _, result = searched
    ranking = result.ranking.set_index("direction")
    others = ranking.drop(index=[SEGMENTING, UNIFORM, WEAK])["restoration_loss"]
    assert (others > 100 * ranking.loc[SEGMENTING, "restoration_loss"]).all()


def test_chosen_direction_is_unit_and_brightens_the_smaller_part(searched):
    _, directions, result = searched
    assert np.allclose(result.chosen, directions[SEGMENTING])
    assert result.sign == 1 and result.brighter_share < 0.5


def test_a_flipped_candidate_is_flipped_back():
    # -h applies the inverse-direction transform: the disk darkens and the background brightens
    flipped = candidates()
    flipped[SEGMENTING] *= -1
    result = search_directions(render, pool(), None, flipped, SearchConfig())
    assert result.ranking.set_index("direction").loc[SEGMENTING, "chosen"]
    assert result.sign == -1
    assert np.allclose(result.chosen, -flipped[SEGMENTING]) and result.brighter_share < 0.5


def test_search_is_deterministic(searched):
    z, directions, result = searched
    again = search_directions(render, z, None, directions, SearchConfig())
    pd.testing.assert_frame_equal(result.ranking, again.ranking)
    assert all(np.array_equal(a.weights, b.weights) for a, b in zip(result.pairs, again.pairs))


def test_fit_converges_to_the_exact_operators_with_more_steps():
    z = pool(8)
    base = render_pool(render, z, None)
    shifted = render_pool(render, z + 5 * np.eye(Z_DIM, dtype=np.float32)[SCENE_DIMS], None)
    assert matched_error(fit_affine_pair(base, shifted, steps=1000), (A1, A2)) < 1e-4


def test_restoration_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, (2, 5, 5, 3)).astype(np.float32)
    shifted = rng.uniform(0, 1, (2, 5, 5, 3)).astype(np.float32)
    weights = rng.normal(0, 0.5, (2, 4, 3))
    _, grad = restoration_gradient(AffinePair(weights.astype(np.float32)), base, shifted)
    eps = 1e-3
    for index in [(0, 0, 0), (0, 3, 2), (1, 1, 1), (1, 3, 0)]:
        plus, minus = weights.copy(), weights.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric = (
            restoration_gradient(AffinePair(plus), base, shifted)[0]
            - restoration_gradient(AffinePair(minus), base, shifted)[0]
        ) / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=1e-2, abs=1e-4)


def test_pair_classes_and_restoration_follow_the_better_operator():
    pair = AffinePair(
        np.stack([np.vstack([np.eye(3), np.full((1, 3), 0.2)]), np.vstack([0.5 * np.eye(3), np.zeros((1, 3))])]).astype(
            np.float32
        )
    )
    base = np.array([[0.2, 0.4, 0.6], [0.8, 0.6, 0.4]], np.float32)
    shifted = np.array([[0.4, 0.6, 0.8], [0.4, 0.3, 0.2]], np.float32)  # first by A1, second by A2
    assert pair.classes(base, shifted).tolist() == [0, 1]
    assert np.allclose(pair.restore(base, shifted), shifted)
    scores = score_pair(pair, base[None], shifted[None])
    assert scores["restoration_loss"] == pytest.approx(0, abs=1e-12) and scores["share"] == 0.5
    # D_h: mean distance between the two maps' outputs, |(0.5 c + 0.2)| per pixel
    expected = np.mean([np.linalg.norm(0.5 * c + 0.2) for c in base])
    assert scores["distance"] == pytest.approx(expected, rel=1e-6)


def table(distance, loss, share) -> pd.DataFrame:
    return pd.DataFrame(
        {"direction": range(len(distance)), "restoration_loss": loss, "distance": distance, "share": share}
    )


def test_ranking_discards_by_share_then_shortlists_by_distance_then_orders_by_loss():
    scores = table(
        distance=[0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.95, 0.95, 0.2, 0.1, 0.05],
        loss=[0.5, 0.1, 0.3, 0.01, 0.2, 0.2, 0.2, 0.001, 0.001, 0.2, 0.2, 0.2],
        share=[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.99, 0.005, 0.5, 0.5, 0.989],
    )
    ranked = rank_directions(scores, SearchConfig(top_fraction=0.3, top=2)).set_index("direction")
    assert ranked["discarded"].tolist() == [False] * 7 + [True, True] + [False] * 3
    # 10 kept -> ceil(0.3 x 10) = 3 by distance: 0, 1, 2; ordered by loss: 1, 2 (top 2), 0 unranked
    assert ranked.index[ranked["top_distance"]].tolist() == [0, 1, 2]
    assert ranked.loc[1, "rank"] == 1 and ranked.loc[2, "rank"] == 2 and pd.isna(ranked.loc[0, "rank"])
    assert ranked.index[ranked["chosen"]].tolist() == [1]
    assert pd.isna(ranked.loc[3, "rank"])  # lowest loss of all, but not among the most distant


def test_ranking_breaks_distance_ties_by_index_and_can_choose_nothing():
    tied = rank_directions(
        table([0.5, 0.5, 0.5], [0.1, 0.1, 0.1], [0.5, 0.5, 0.5]), SearchConfig(top_fraction=0.34, top=10)
    )
    assert tied["top_distance"].tolist() == [True, True, False] and tied["rank"].tolist()[:2] == [1, 2]
    none = rank_directions(table([0.5, 0.4], [0.1, 0.1], [1.0, 0.0]), SearchConfig())
    assert none["discarded"].all() and not none["chosen"].any() and none["rank"].isna().all()


def test_figure_rows_are_image_shift_restoration_and_classes(searched):
    z, directions, result = searched
    figures = shortlist_figures(render, z, None, directions, result, SearchConfig(figure_samples=3))
    assert sorted(figures) == list(range(1, int(result.ranking["rank"].max()) + 1))
    picture = figures[1]
    gutter = 2
    assert picture.shape == (4 * SIZE + 3 * gutter, 3 * SIZE + 2 * gutter, 3) and picture.dtype == np.uint8
    base = render_pool(render, z[:1], None)
    shifted = render_pool(render, z[:1] + 5 * directions[SEGMENTING], None)
    first = picture[:SIZE, :SIZE].astype(int)
    assert np.abs(first - np.rint(base[0] * 255)).max() <= 1
    assert np.abs(picture[SIZE + gutter : 2 * SIZE + gutter, :SIZE] - np.rint(shifted[0] * 255)).max() <= 1
    mask = picture[3 * (SIZE + gutter) :, :SIZE]
    classes = result.pairs[SEGMENTING].classes(base[0], shifted[0])
    assert np.array_equal(mask[..., 0] == 255, classes == 0) and set(np.unique(mask)) <= {0, 255}


def test_direction_figure_layout():
    pair = AffinePair(np.stack([np.vstack([np.eye(3), np.zeros((1, 3))])] * 2).astype(np.float32))
    images = np.zeros((2, 4, 5, 3), np.float32)
    assert direction_figure(pair, images, images, gutter=1).shape == (4 * 4 + 3, 2 * 5 + 1, 3)


def test_candidates_load_from_npy_and_bad_files_name_the_file(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.eye(3, 5))
    loaded = load_candidates(good)
    assert loaded.dtype == np.float32 and loaded.shape == (3, 5)
    cases = {
        "vector.npy": np.ones(5),
        "ints.npy": np.ones((2, 5), np.int64),
        "zero.npy": np.zeros((2, 5)),
        "nan.npy": np.full((2, 5), np.nan),
    }
    for name, value in cases.items():
        np.save(tmp_path / name, value)
        with pytest.raises(SynthsodError, match=name):
            load_candidates(tmp_path / name)
    (tmp_path / "text.npy").write_text("not numpy")
    for bad in (tmp_path / "text.npy", tmp_path / "missing.npy", tmp_path / "directions.txt"):
        with pytest.raises(SynthsodError, match=bad.name):
            load_candidates(bad)


def test_candidate_width_must_match_the_latent():
    with pytest.raises(SynthsodError, match="z has 10"):
        search_directions(render, pool(2), None, np.ones((2, 7), np.float32), SearchConfig(steps=1))


def test_config_rejects_bad_values():
    with pytest.raises(SynthsodError, match="discard_share"):
        SearchConfig(discard_share=0.4)
    assert from_section(SearchConfig, {"scale": 3.0, "truncation": 0.4}, where="s", ignore=["truncation"]).scale == 3.0
