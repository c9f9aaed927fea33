"""The demo world: a closed, download-free stand-in for DUTS built from the tiny generator.

Each "real" image is a sample of the tiny generator; its mask is a fixed function of that sample, by
one of two rules (``source``):

``layout`` (default)
    the salient object is where the generator's coarse layout features point one way:
    ``U(d . f_tap) > t`` with ``f_tap`` the coarsest tapped feature map (4x4 on the tiny model)
    bilinearly upsampled to the image, ``d`` its top principal direction and ``t`` the
    ``layout_quantile`` of the scores, both fitted once on reference samples the splits never use.
    This mirrors SODGAN's premise (the object layout lives in the generator's hidden features), so a
    mask generator can learn it from a few shots.
``luminance``
    pixels of the Gaussian-smoothed (``blur_sigma``) luminance ``0.2989 R + 0.587 G + 0.114 B`` above
    the image's Otsu threshold (``threshold: null``) or a fixed grey level. A function of the pixels
    alone, but on the random tiny generator it is a weak, texture-like signal: no per-pixel head
    learns it from a few dozen shots (held-out IoU at the level of the all-foreground guess).

Both rules then drop 8-connected components smaller than ``keep_component_fraction`` x the largest.
A sample whose mask covers less than ``min_fg`` or more than ``max_fg`` of the image is skipped (the
next index is tried), so every demo mask is a plausible salient object. The demo proves that each
stage learns, not the paper's numbers.

Images are written as JPEG and masks as 0/255 PNG in DUTS layout, so the demo goes through
exactly the same ``prepare_dataset`` path as DUTS-TR.
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.filters import threshold_otsu

from synthsod.core.images import LUMA, to_uint8_nhwc, write_image
from synthsod.core.progress import progress
from synthsod.errors import SynthsodError
from synthsod.generators import BigGANGenerator, GeneratorOutput, resolve_classes, sample_latents
from synthsod.synthesis.filters import drop_small_components

SOURCES = ("layout", "luminance")
REFERENCE_FIRST_INDEX = 10**9  # the layout read-out is fitted on sample indices no split reaches
REFERENCE_SAMPLES = 64


@dataclass(frozen=True)
class MaskRule:
    source: str = "layout"
    layout_quantile: float = 0.6  # layout: fraction of reference pixels below the threshold
    blur_sigma: float = 2.0  # luminance: smoothing before thresholding
    threshold: float | None = None  # luminance: fixed grey level, or None for Otsu per image
    keep_component_fraction: float = 0.2
    min_fg: float = 0.05
    max_fg: float = 0.6


def to_uint8(images) -> np.ndarray:
    """Generator output [N, 3, H, W] in [-1, 1] (tensor or array) -> uint8 [N, H, W, 3]."""
    x = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=np.float32)
    return to_uint8_nhwc(x.transpose(0, 2, 3, 1))


def keep_large_components(mask: np.ndarray, fraction: float) -> np.ndarray:
    """Drop 8-connected components smaller than ``fraction`` x the largest one."""
    return drop_small_components(mask, fraction, connectivity=8)[0]


def demo_mask(image: np.ndarray, rule: MaskRule) -> np.ndarray:
    """The luminance rule (module docstring) on one uint8 HxWx3 image -> bool HxW."""
    luminance = image.astype(np.float64) @ LUMA
    smooth = cv2.GaussianBlur(luminance, ksize=(0, 0), sigmaX=rule.blur_sigma, borderType=cv2.BORDER_REFLECT)
    if rule.threshold is not None:
        foreground = smooth > rule.threshold
    elif np.ptp(smooth) == 0:
        return np.zeros(smooth.shape, dtype=bool)
    else:
        foreground = smooth > threshold_otsu(smooth)
    return keep_large_components(foreground, rule.keep_component_fraction)


@dataclass(frozen=True)
class LayoutReadout:
    """The layout rule's fitted parts: which tap, the direction ``d`` and the threshold ``t``."""

    tap: int
    direction: torch.Tensor
    threshold: float

    def scores(self, output: GeneratorOutput, resolution: int) -> torch.Tensor:
        """``U(d . f_tap)`` [N, R, R] on the image grid."""
        f = output.features[self.tap]
        score = torch.einsum("nchw,c->nhw", f, self.direction.to(f.device))[:, None]
        return F.interpolate(score, size=(resolution, resolution), mode="bilinear", align_corners=False)[:, 0]


def fit_layout_readout(
    generator: BigGANGenerator, seed: int, truncation: float, class_ids: np.ndarray, quantile: float
) -> LayoutReadout:
    """Top principal direction of the coarsest tap's pixels and the ``quantile`` of its scores."""
    tap = generator.taps[0]
    indices = range(REFERENCE_FIRST_INDEX, REFERENCE_FIRST_INDEX + REFERENCE_SAMPLES)
    z, ids = sample_latents(seed, indices, generator.z_dim, truncation, class_ids)
    out = generator.generate(z, ids, truncation)
    f = out.features[tap].double().cpu()
    pixels = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    direction = torch.linalg.eigh(torch.cov(pixels.T)).eigenvectors[:, -1]
    direction = direction * torch.sign(direction[direction.abs().argmax()])  # eigh's sign is arbitrary
    readout = LayoutReadout(tap, direction.float(), 0.0)
    scores = readout.scores(out, generator.resolution)
    return dataclasses.replace(readout, threshold=float(torch.quantile(scores.flatten().cpu(), quantile)))


class DemoMasker:
    """The demo's mask rule bound to one generator and the demo's sampling settings."""

    def __init__(
        self, generator: BigGANGenerator, rule: MaskRule, *, seed: int, truncation: float, classes: dict | None
    ):
        if rule.source not in SOURCES:
            raise SynthsodError(f"demo mask source '{rule.source}': choose one of {', '.join(SOURCES)}")
        self.generator, self.rule = generator, rule
        self.class_ids = resolve_classes(classes, generator.num_classes)
        self.layout = (
            fit_layout_readout(generator, seed, truncation, self.class_ids, rule.layout_quantile)
            if rule.source == "layout"
            else None
        )

    @property
    def needs_features(self) -> bool:
        return self.layout is not None

    def __call__(self, output: GeneratorOutput) -> np.ndarray:
        """Bool masks [N, R, R] for one batch of generator output."""
        if self.layout is None:
            return np.stack([demo_mask(image, self.rule) for image in to_uint8(output.images)])
        foreground = (self.layout.scores(output, self.generator.resolution) > self.layout.threshold).cpu().numpy()
        return np.stack([keep_large_components(m, self.rule.keep_component_fraction) for m in foreground])


def write_demo_split(
    generator: BigGANGenerator,
    images_dir: str | Path,
    masks_dir: str | Path,
    *,
    size: int,
    first_index: int,
    seed: int,
    truncation: float,
    classes: dict | None,
    rule: MaskRule,
    jpeg_quality: int = 90,
    batch_size: int = 16,
    max_tries_per_image: int = 20,
) -> int:
    """Write ``size`` image/mask pairs ``demo_{index}.jpg/.png`` in DUTS layout; return how many were tried."""
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        shutil.rmtree(folder, ignore_errors=True)  # a rerun replaces the split whole
        folder.mkdir(parents=True)
    masker = DemoMasker(generator, rule, seed=seed, truncation=truncation, classes=classes)
    written, index = 0, first_index
    limit = first_index + size * max_tries_per_image
    with progress(total=size, desc=f"demo pairs for {images_dir.parent.name}", unit="pair") as bar:
        while written < size:
            if index >= limit:
                raise RuntimeError(f"demo mask rule kept {written} of {index - first_index} samples: loosen demo.mask")
            indices = list(range(index, min(index + batch_size, limit)))
            index = indices[-1] + 1
            z, ids = sample_latents(seed, indices, generator.z_dim, truncation, masker.class_ids)
            output = generator.generate(z, ids, truncation, with_features=masker.needs_features)
            for i, image, mask in zip(indices, to_uint8(output.images), masker(output)):
                if written == size or not rule.min_fg <= mask.mean() <= rule.max_fg:
                    continue
                name = f"demo_{i:07d}"
                write_image(images_dir / f"{name}.jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                write_image(masks_dir / f"{name}.png", mask.astype(np.uint8) * 255, [])
                written += 1
                bar.update()
            bar.set_postfix(samples=index - first_index)
    return index - first_index
