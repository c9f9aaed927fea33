"""The demo world's mask rule and split writer."""

import numpy as np
import pytest
import torch
from PIL import Image

from synthsod.data.prepare import check_pairs
from synthsod.generators import create_generator, sample_latents
from synthsod.generators.tiny import write_tiny_biggan
from synthsod.synthesis.demo import MaskRule, demo_mask, keep_large_components, to_uint8, write_demo_split


def _disk(size=64, centre=(32, 32), radius=12):
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def test_mask_rule_finds_a_bright_object_and_drops_small_specks():
    image = np.full((64, 64, 3), 40, np.uint8)
    image[_disk()] = 220
    image[2:4, 2:4] = 220  # a 4-pixel speck: far below 0.2 x the disk
    mask = demo_mask(image, MaskRule(blur_sigma=1.0))
    iou = (mask & _disk()).sum() / (mask | _disk()).sum()
    assert iou > 0.9
    assert not mask[:6, :6].any()


def test_luminance_weights_decide_which_colour_is_foreground():
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :16] = (0, 200, 0)  # green: luminance 117
    image[:, 16:] = (0, 0, 200)  # blue: luminance 23
    mask = demo_mask(image, MaskRule(blur_sigma=0.5, threshold=None))  # Otsu: brighter side of the image
    assert mask[:, :14].all() and not mask[:, 18:].any()
    assert not demo_mask(image, MaskRule(blur_sigma=0.5, threshold=150)).any()  # 117 < 150
    assert demo_mask(image, MaskRule(blur_sigma=0.5, threshold=100))[:, :14].all()


def test_fixed_threshold_is_local():
    image = np.full((32, 32, 3), 60, np.uint8)
    image[4:12, 4:12] = 200
    darker = image.copy()
    darker[20:, 20:] = 0  # changing a far-away region must not move the object's mask
    rule = MaskRule(blur_sigma=1.0, threshold=150)
    np.testing.assert_array_equal(demo_mask(image, rule)[:14, :14], demo_mask(darker, rule)[:14, :14])


def test_constant_image_gives_an_empty_mask():
    assert not demo_mask(np.full((16, 16, 3), 128, np.uint8), MaskRule()).any()


def test_keep_large_components_uses_the_fraction_of_the_largest():
    mask = np.zeros((20, 20), bool)
    mask[0:10, 0:10] = True  # 100 px
    mask[15:20, 15:20] = True  # 25 px: kept at 0.2, dropped at 0.3
    assert keep_large_components(mask, 0.2).sum() == 125
    assert keep_large_components(mask, 0.3).sum() == 100
    assert not keep_large_components(np.zeros((5, 5), bool), 0.2).any()


def test_to_uint8_maps_the_generator_range():
    x = np.array([-1.0, 0.0, 1.0, 2.0], np.float32).reshape(1, 1, 2, 2).repeat(3, axis=1)
    assert to_uint8(x)[0, :, :, 0].tolist() == [[0, 128], [255, 255]]


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny")
    write_tiny_biggan(directory, seed=0)
    return create_generator("tiny", str(directory))


def test_demo_split_is_a_clean_duts_layout_folder(tiny_generator, tmp_path):
    rule = MaskRule(blur_sigma=2.0, min_fg=0.05, max_fg=0.6)
    tried = write_demo_split(
        tiny_generator,
        tmp_path / "images",
        tmp_path / "masks",
        size=6,
        first_index=100,
        seed=0,
        truncation=0.6,
        classes=None,
        rule=rule,
        batch_size=4,
    )
    images = sorted((tmp_path / "images").iterdir())
    assert len(images) == 6 and tried >= 6
    assert all(p.suffix == ".jpg" and p.stem.startswith("demo_") for p in images)
    assert int(images[0].stem.split("_")[1]) >= 100
    manifest, problems = check_pairs(tmp_path / "images", tmp_path / "masks")
    assert problems == [] and len(manifest) == 6  # the demo passes the real-data checks untouched
    for mask_path in sorted((tmp_path / "masks").iterdir()):
        mask = np.array(Image.open(mask_path))
        assert set(np.unique(mask)) <= {0, 255}
        assert rule.min_fg <= (mask > 128).mean() <= rule.max_fg


def test_demo_split_is_byte_identical_when_run_again(tiny_generator, tmp_path):
    kwargs = dict(size=4, first_index=0, seed=1, truncation=0.6, classes=None, rule=MaskRule(), batch_size=3)
    write_demo_split(tiny_generator, tmp_path / "a/images", tmp_path / "a/masks", **kwargs)
    write_demo_split(tiny_generator, tmp_path / "b/images", tmp_path / "b/masks", **kwargs)
    for sub in ("images", "masks"):
        a = {p.name: p.read_bytes() for p in (tmp_path / "a" / sub).iterdir()}
        b = {p.name: p.read_bytes() for p in (tmp_path / "b" / sub).iterdir()}
        assert a == b


def test_layout_rule_is_fitted_deterministically_and_sets_the_mask_size(tiny_generator):
    from synthsod.synthesis.demo import DemoMasker, LayoutReadout

    kwargs = dict(seed=0, truncation=0.6, classes=None)
    a = DemoMasker(tiny_generator, MaskRule(layout_quantile=0.6), **kwargs)
    b = DemoMasker(tiny_generator, MaskRule(layout_quantile=0.6), **kwargs)
    assert isinstance(a.layout, LayoutReadout) and a.layout.tap == tiny_generator.taps[0]
    assert torch.equal(a.layout.direction, b.layout.direction) and a.layout.threshold == b.layout.threshold
    assert float(a.layout.direction.norm()) == pytest.approx(1.0, abs=1e-5)
    z, ids = sample_latents(0, range(10**9, 10**9 + 64), tiny_generator.z_dim, 0.6, np.arange(1000))
    scores = a.layout.scores(tiny_generator.generate(z, ids, 0.6), tiny_generator.resolution)
    assert float((scores > a.layout.threshold).float().mean()) == pytest.approx(0.4, abs=0.01)  # the quantile
    # a higher quantile is a higher threshold: smaller masks
    c = DemoMasker(tiny_generator, MaskRule(layout_quantile=0.8), **kwargs)
    assert c.layout.threshold > a.layout.threshold
    out = tiny_generator.generate(z[:8], ids[:8], 0.6)
    assert c(out).sum() < a(out).sum()


def test_luminance_masker_matches_demo_mask_and_unknown_source_is_refused(tiny_generator):
    from synthsod.errors import SynthsodError
    from synthsod.synthesis.demo import DemoMasker

    rule = MaskRule(source="luminance")
    masker = DemoMasker(tiny_generator, rule, seed=0, truncation=0.6, classes=None)
    z, ids = sample_latents(3, range(4), tiny_generator.z_dim, 0.6, np.arange(1000))
    out = tiny_generator.generate(z, ids, 0.6, with_features=False)
    expected = np.stack([demo_mask(image, rule) for image in to_uint8(out.images)])
    np.testing.assert_array_equal(masker(out), expected)
    with pytest.raises(SynthsodError, match="demo mask source"):
        DemoMasker(tiny_generator, MaskRule(source="edges"), seed=0, truncation=0.6, classes=None)
