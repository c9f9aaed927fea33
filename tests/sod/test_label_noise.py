"""The CAS paper's low-fidelity labels: a seeded share of images whose region labels flip with probability p."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.datasets import training_set
from synthsod.sod.label_noise import LabelNoise, NoisyLabels, corrupt_mask, flip_map, is_low_fidelity

IDS = [f"img-{i:05d}" for i in range(4000)]


def _mask(size: int = 12) -> torch.Tensor:
    """[1, S, S]: two foreground squares (two components) on a background."""
    mask = torch.zeros(1, size, size)
    mask[0, 1:4, 1:4] = 1
    mask[0, 6:10, 6:10] = 1
    return mask


def _stats(noise: LabelNoise) -> tuple[float, float]:
    """(share of low-fidelity images, share of those whose mask changed) over IDS."""
    mask = _mask()
    low = [i for i in IDS if is_low_fidelity(i, noise)]
    changed = [i for i in low if not torch.equal(corrupt_mask(mask, i, noise), mask)]
    clean_changed = [i for i in IDS if i not in set(low) and not torch.equal(corrupt_mask(mask, i, noise), mask)]
    assert not clean_changed  # only low-fidelity images are touched
    return len(low) / len(IDS), len(changed) / len(low)


@pytest.mark.parametrize("fraction, p", [(0.25, 0.5), (0.5, 0.5), (1.0, 0.2), (0.1, 1.0)])
def test_fraction_and_flip_probability_hold_over_many_images(fraction, p):
    share, flipped = _stats(LabelNoise(flip_probability=p, fraction=fraction, seed=3))
    assert share == pytest.approx(fraction, abs=0.03)
    assert flipped == pytest.approx(p, abs=0.05)


def test_a_flipped_image_swaps_its_two_regions():
    noise = LabelNoise(flip_probability=1.0, fraction=1.0)
    mask = _mask()
    assert torch.equal(corrupt_mask(mask, "any", noise), 1 - mask)  # each region carries the other's label
    assert torch.equal(corrupt_mask(torch.zeros(1, 4, 4), "empty", noise), torch.ones(1, 4, 4))


def test_component_regions_flip_on_their_own_with_probability_p():
    noise = LabelNoise(flip_probability=0.3, fraction=1.0, regions="components", seed=1)
    binary = _mask()[0].bool().numpy()  # 3 regions: two foreground squares and the background
    square1, square2 = np.zeros_like(binary), np.zeros_like(binary)
    square1[1:4, 1:4], square2[6:10, 6:10] = True, True
    regions = [square1, square2, ~binary]
    maps = np.stack([flip_map(binary, i, noise) for i in IDS])  # [ids, S, S]
    flips = maps[:, [2, 7, 0], [2, 7, 0]]  # one pixel of each region: [ids, regions]
    for r, region in enumerate(regions):  # each region flips as a whole, with probability p
        assert (maps[:, region] == flips[:, r : r + 1]).all()
        assert flips[:, r].mean() == pytest.approx(0.3, abs=0.03)
    # the three regions' draws are independent: all three flip about p^3 of the time
    assert flips.all(axis=1).mean() == pytest.approx(0.3**3, abs=0.01)


def test_corruption_is_deterministic_per_seed_and_nested_across_fractions():
    mask = _mask()
    a = LabelNoise(flip_probability=0.5, fraction=0.3, regions="components", seed=7)
    again = [corrupt_mask(mask, i, a) for i in IDS[:300]]
    first = [corrupt_mask(mask, i, a) for i in IDS[:300]]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    other_seed = [corrupt_mask(mask, i, LabelNoise(0.5, 0.3, "components", seed=8)) for i in IDS[:300]]
    assert not all(torch.equal(x, y) for x, y in zip(first, other_seed))
    # a larger fraction keeps every image corrupted at the smaller one, corrupted the same way
    larger = LabelNoise(flip_probability=0.5, fraction=0.6, regions="components", seed=7)
    for image_id, corrupted in zip(IDS[:300], first):
        if is_low_fidelity(image_id, a):
            assert is_low_fidelity(image_id, larger)
            assert torch.equal(corrupt_mask(mask, image_id, larger), corrupted)


@pytest.mark.parametrize("regions", ["foreground-background", "components"])
def test_p_zero_leaves_labels_untouched_and_masks_stay_binary(regions):
    mask = _mask()
    for image_id in IDS[:100]:
        assert corrupt_mask(mask, image_id, LabelNoise(0.0, 1.0, regions)) is mask
        assert corrupt_mask(mask, image_id, LabelNoise(0.5, 0.0, regions)) is mask
        noisy = corrupt_mask(mask, image_id, LabelNoise(0.5, 1.0, regions))
        assert noisy.shape == mask.shape and noisy.dtype == mask.dtype
        assert set(noisy.unique().tolist()) <= {0.0, 1.0}
    assert corrupt_mask(mask, "x", None) is mask


def test_settings_are_checked():
    with pytest.raises(SynthsodError, match="flip_probability must be in"):
        LabelNoise(flip_probability=1.5)
    with pytest.raises(SynthsodError, match="regions must be one of"):
        LabelNoise(regions="pixels")
    with pytest.raises(SynthsodError, match="unknown key"):
        LabelNoise.from_spec({"fraction": 0.5, "probability": 0.5})
    assert LabelNoise.from_spec({"fraction": 0.5}) == LabelNoise(flip_probability=0.5, fraction=0.5)


def test_the_training_set_option_corrupts_a_seeded_share_by_image_id(tmp_path):
    rows = []
    for i in range(40):
        image, mask = tmp_path / f"s{i}.png", tmp_path / f"s{i}-mask.png"
        cv2.imwrite(str(image), np.full((12, 12, 3), 128, np.uint8))
        cv2.imwrite(str(mask), (_mask()[0].numpy() * 255).astype(np.uint8))
        rows.append({"id": f"s{i}", "image": str(image), "mask": str(mask)})
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet")
    clean = training_set([], [tmp_path / "manifest.parquet"], 12)
    assert all(torch.equal(clean[i]["mask"], _mask()) for i in range(40))
    settings = {"flip_probability": 1.0, "fraction": 0.5, "seed": 0}
    noisy = training_set([], [tmp_path / "manifest.parquet"], 12, label_noise=settings)
    assert isinstance(noisy, NoisyLabels) and len(noisy) == 40
    swapped = [i for i in range(40) if torch.equal(noisy[i]["mask"], 1 - _mask())]
    assert swapped == [i for i in range(40) if is_low_fidelity(f"s{i}", LabelNoise(**settings))]
    assert 8 < len(swapped) < 32
    assert all(torch.equal(noisy[i]["image"], clean[i]["image"]) for i in range(40))  # images untouched
