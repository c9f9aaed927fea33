"""Sample filters on hand-made masks and histograms with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from synthsod.core.images import to_gray
from synthsod.errors import SynthsodError
from synthsod.synthesis.filters import (
    drop_small_components,
    histogram_ok,
    interior_peaks,
    mask_size_ok,
    quantile_threshold,
    smoothed_histogram,
)


def test_to_gray_uses_the_luma_weights():
    image = np.zeros((1, 3, 3), np.uint8)
    image[0, 0] = (255, 0, 0)
    image[0, 1] = (0, 255, 0)
    image[0, 2] = (255, 255, 255)
    np.testing.assert_allclose(to_gray(image)[0], [0.2989, 0.587, 0.9999])


def test_components_are_edge_connected_by_default():
    mask = np.zeros((10, 10), bool)
    mask[:5, :5] = True  # 25 px
    mask[5, 5] = True  # touches the block only at a corner
    mask[8:10, 8:10] = True  # 4 px: 0.16 x 25
    cleaned, kept = drop_small_components(mask, 0.2)
    assert kept == 1 and cleaned.sum() == 25 and not cleaned[5, 5]
    cleaned8, kept8 = drop_small_components(mask, 0.2, connectivity=8)
    assert kept8 == 1 and cleaned8.sum() == 26 and cleaned8[5, 5]  # corner pixel joins the block
    _, kept_all = drop_small_components(mask, 0.16)
    assert kept_all == 2  # 4 >= 0.16 x 25: the boundary is inclusive (4-connectivity: 25, 1 and 4 px)


def test_components_on_empty_and_full_masks():
    empty, kept = drop_small_components(np.zeros((4, 4), bool), 0.2)
    assert kept == 0 and not empty.any()
    full, kept = drop_small_components(np.ones((4, 4), bool), 0.2)
    assert kept == 1 and full.all()
    with pytest.raises(SynthsodError, match="connectivity"):
        drop_small_components(np.ones((2, 2), bool), 0.2, connectivity=6)


def test_mask_size_bounds_are_inclusive():
    mask = np.zeros((10, 10), bool)
    assert mask_size_ok(mask, 0.0, 0.5) and not mask_size_ok(mask, 0.01, 0.5)  # empty mask
    assert not mask_size_ok(~mask, 0.0, 0.5) and mask_size_ok(~mask, 0.0, 1.0)  # full mask
    mask[:5] = True
    assert mask_size_ok(mask, 0.0, 0.5) and not mask_size_ok(mask, 0.0, 0.49)


def test_smoothed_histogram_repeats_the_edge_buckets():
    gray = np.array([0.0, 0.0, 1.0, 1.0])  # half in the first bucket, half in the last
    hist = smoothed_histogram(gray, bins=12, window=3)
    assert hist.shape == (12,) and hist.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(hist[[0, 1, 10, 11]], [1 / 3, 1 / 6, 1 / 6, 1 / 3])
    assert not hist[2:10].any()
    with pytest.raises(SynthsodError, match="odd"):
        smoothed_histogram(gray, window=2)


def test_interior_peaks_ties_and_empty_buckets():
    assert interior_peaks([5, 1, 0, 0, 1, 5]).tolist() == []  # two modes, zero valley: no peak
    assert interior_peaks([1, 2, 2, 1]).tolist() == [1, 2]  # plateau counts (>=, as E-BigBiGAN)
    assert interior_peaks([1, 2, 2, 1], strict=True).tolist() == []
    assert interior_peaks([3, 3, 3, 3]).tolist() == [1, 2]  # flat histogram: all interior
    assert interior_peaks([3, 3, 3, 3], strict=True).tolist() == []
    assert interior_peaks([0, 1, 3, 1, 0]).tolist() == [2]


def test_histogram_filter_keeps_contrastive_images_and_rejects_the_rest():
    rng = np.random.default_rng(0)
    bimodal = np.where(rng.random((32, 32)) < 0.4, 0.02, 0.97)
    assert histogram_ok(bimodal)
    grey = np.full((32, 32), 0.5)  # one interior mode
    assert not histogram_ok(grey)
    flat = np.linspace(0, 1, 1200).reshape(30, 40)  # uniform: a flat run, rejected unless strict
    assert not histogram_ok(flat)
    assert histogram_ok(flat, strict=True)
    dark = np.full((8, 8), 0.01)  # all mass in the first bucket: no interior peak
    assert histogram_ok(dark)


def test_quantile_threshold_keeps_the_top_fraction():
    scores = np.arange(100) / 100
    threshold = quantile_threshold(scores, 0.2)
    assert (scores >= threshold).sum() == 20
    assert quantile_threshold(scores, 1.0) == 0.0
    with pytest.raises(SynthsodError, match="keep_top"):
        quantile_threshold(scores, 0.0)
    with pytest.raises(SynthsodError, match="calibration"):
        quantile_threshold([], 0.5)
