"""Class selection and per-sample deterministic latents."""

import numpy as np
import pytest

from synthsod.errors import SynthsodError
from synthsod.generators import resolve_classes, sample_latents


def test_classes_all_ids_ranges_and_discard():
    assert resolve_classes(None, 10).tolist() == list(range(10))
    assert resolve_classes({"include": [1, "3-5", " 8 - 9 "]}, 10).tolist() == [1, 3, 4, 5, 8, 9]
    # SODGAN-style discard list: everything but the dog range 151-294
    kept = resolve_classes({"include": "all", "discard": ["151-294", 999]}, 1000)
    assert len(kept) == 1000 - 144 - 1 and 150 in kept and 151 not in kept and 294 not in kept and 295 in kept


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"include": ["5-3"]}, "range"),
        ({"include": [1000]}, "within"),
        ({"include": ["cat"]}, "range"),
        ({"include": [True]}, "range"),
        ({"include": [1, 2], "discard": ["0-9"]}, "no class"),
    ],
)
def test_bad_class_specs_are_explained(spec, match):
    with pytest.raises(SynthsodError, match=match):
        resolve_classes(spec, 1000)


def test_latents_depend_only_on_seed_and_index():
    classes = np.arange(1000)
    z_all, c_all = sample_latents(7, range(10), 128, 0.4, classes)
    z_part, c_part = sample_latents(7, [9, 3], 128, 0.4, classes)
    np.testing.assert_array_equal(z_part, z_all[[9, 3]])
    np.testing.assert_array_equal(c_part, c_all[[9, 3]])
    z_other, _ = sample_latents(8, range(10), 128, 0.4, classes)
    assert not np.allclose(z_other, z_all)
    assert z_all.dtype == np.float32 and z_all.shape == (10, 128)


def test_latents_are_truncated_normal_scaled_by_truncation():
    z, classes = sample_latents(0, range(400), 128, 0.5, np.array([3, 17]))
    assert np.abs(z).max() <= 2 * 0.5
    # a standard normal truncated to [-2, 2] has std ~0.880
    assert z.std() / 0.5 == pytest.approx(0.880, abs=0.01)
    assert set(classes.tolist()) == {3, 17}


def test_cycled_classes_give_every_class_equally_often_with_the_same_latents():
    """SODGAN's released sampler: its 623 kept classes x 20 = 12,460 pairs, each class 20 times."""
    from synthsod.generators.latents import LatentSource

    kept = resolve_classes({"discard": ["151-294", 1, 29, 999]}, 1000)
    cycled = LatentSource(3, 128, 0.4, kept, cycle=True)
    z, ids = cycled.draw(range(len(kept) * 2))
    assert ids[: len(kept)].tolist() == kept.tolist() == ids[len(kept) :].tolist()
    z_random, ids_random = LatentSource(3, 128, 0.4, kept).draw(range(len(kept) * 2))
    np.testing.assert_array_equal(z, z_random)  # only the class assignment changes
    assert len(set(ids_random.tolist())) < len(kept)  # uniform draws miss some classes
    z_part, ids_part = cycled.draw([5, len(kept) + 5])
    assert ids_part.tolist() == [kept[5]] * 2 and np.array_equal(z_part[0], z[5])
