"""Low-fidelity training labels, as in the CAS paper's noisy-label experiment (its Tables 1 and 3).

The paper corrupts the *region* labels of a binary mask, not pixels: a region keeps its pixels but may
carry the wrong class. :class:`LabelNoise` has two settings, ``fraction`` (the share of training images
that are low-fidelity, Table 3's "% of low-fidelity data") and ``flip_probability`` (p, the chance that a
region of such an image carries the wrong label, 0.5 in the paper). ``regions`` says what a region is:

``foreground-background`` (the paper's, default)
    The two regions of a binary mask, the salient object(s) and the rest. With probability p the image's
    labelling is wrong: the two labels are exchanged (the mask is inverted). Each region's label is then
    wrong with probability p, and the regions keep distinct labels, which is all the CAS loss needs
    (the paper's remark that region labels only have to be distinct) and the premise of the class-agnostic
    CE, the minimum over the two labellings of an image.
``components``
    Every connected component (8-connectivity) of the foreground and of the background flips on its own
    with probability p. Components that end up with one label merge, so this is a harsher noise than the
    paper's: an image can lose its foreground/background boundary.

Determinism: whether an image is low-fidelity, and which of its regions flip, depend on (``seed``, image
id) alone, through two separate hash-seeded streams, not on the dataset's order, the batch or the worker.
An image is low-fidelity when its uniform draw is below ``fraction``, so the low-fidelity images at one
fraction include those at any smaller fraction, and an image corrupted at two fractions is corrupted the
same way (a sweep over the fraction adds corrupted images; it does not re-draw them). The fraction holds
in expectation over ids (a Bernoulli draw per image), not as an exact count.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from synthsod.errors import SynthsodError

REGIONS = ("foreground-background", "components")


@dataclass(frozen=True)
class LabelNoise:
    """The corruption of a training set (module docstring); the config's ``sod.<name>.train.label_noise``."""

    flip_probability: float = 0.5
    fraction: float = 1.0
    regions: str = "foreground-background"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("flip_probability", "fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise SynthsodError(f"label_noise.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.regions not in REGIONS:
            raise SynthsodError(f"label_noise.regions must be one of {', '.join(REGIONS)}, got {self.regions!r}")

    @classmethod
    def from_spec(cls, spec: LabelNoise | Mapping[str, Any] | None) -> LabelNoise | None:
        if spec is None or isinstance(spec, LabelNoise):
            return spec
        unknown = set(spec) - set(cls.__dataclass_fields__)
        if unknown:
            raise SynthsodError(f"label_noise: unknown key(s) {', '.join(sorted(unknown))}")
        return cls(**spec)

    @property
    def inert(self) -> bool:
        """No label can change (p = 0 or no low-fidelity image)."""
        return self.flip_probability == 0.0 or self.fraction == 0.0


def _uniforms(seed: int, image_id: Any, stream: str, count: int) -> np.ndarray:
    """``count`` uniforms in [0, 1) from (seed, stream, image id) alone."""
    digest = hashlib.sha256(f"{int(seed)}\0{stream}\0{image_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little")).random(count)


def is_low_fidelity(image_id: Any, noise: LabelNoise) -> bool:
    """Whether the image ``image_id`` is one of the low-fidelity share (``noise.fraction``)."""
    return bool(_uniforms(noise.seed, image_id, "image", 1)[0] < noise.fraction)


def _components(binary: np.ndarray) -> tuple[int, np.ndarray]:
    count, labels = cv2.connectedComponents(binary.astype(np.uint8), connectivity=8)
    return count - 1, labels  # label 0 is the complement


def flip_map(binary: np.ndarray, image_id: Any, noise: LabelNoise) -> np.ndarray:
    """Boolean HxW: the pixels whose label the corruption of ``image_id`` flips (all False when clean)."""
    if noise.inert or not is_low_fidelity(image_id, noise):
        return np.zeros(binary.shape, dtype=bool)
    p = noise.flip_probability
    if noise.regions == "foreground-background":
        swap = _uniforms(noise.seed, image_id, "regions", 1)[0] < p
        return np.full(binary.shape, bool(swap))
    n_fg, fg_labels = _components(binary)
    n_bg, bg_labels = _components(~binary)
    draws = _uniforms(noise.seed, image_id, "regions", n_fg + n_bg) < p  # foreground components first
    flip_fg = np.concatenate([[False], draws[:n_fg]])[fg_labels]
    flip_bg = np.concatenate([[False], draws[n_fg:]])[bg_labels]
    return (flip_fg & binary) | (flip_bg & ~binary)


def corrupt_mask(mask: torch.Tensor, image_id: Any, noise: LabelNoise | Mapping[str, Any] | None) -> torch.Tensor:
    """The low-fidelity label of a binary mask [..., H, W] (values in {0, 1}; > 0.5 is foreground): the
    same shape and dtype, still binary. Unchanged (the same tensor) when the image stays clean."""
    noise = LabelNoise.from_spec(noise)
    if noise is None or noise.inert:
        return mask
    if mask.dim() < 2:
        raise SynthsodError(f"expected a mask [..., H, W], got {tuple(mask.shape)}")
    binary = (mask > 0.5).reshape(-1, *mask.shape[-2:]).cpu().numpy()
    flips = np.stack([flip_map(plane, image_id, noise) for plane in binary])
    if not flips.any():
        return mask
    corrupted = np.logical_xor(binary, flips).reshape(mask.shape)
    return torch.from_numpy(corrupted).to(dtype=mask.dtype, device=mask.device)


class NoisyLabels(Dataset):
    """``data`` with its masks corrupted by ``noise`` (items as ``data``'s; the image id seeds the
    corruption, the index where an item has no "id")."""

    def __init__(self, data: Dataset, noise: LabelNoise | Mapping[str, Any]):
        self.data = data
        self.noise = LabelNoise.from_spec(noise)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.data[index])
        item["mask"] = corrupt_mask(item["mask"], item.get("id", index), self.noise)
        return item


def with_label_noise(data: Dataset, noise: LabelNoise | Mapping[str, Any] | None) -> Dataset:
    """``data`` itself without noise (null), else its :class:`NoisyLabels` view."""
    noise = LabelNoise.from_spec(noise)
    return data if noise is None else NoisyLabels(data, noise)


__all__ = [
    "REGIONS",
    "LabelNoise",
    "NoisyLabels",
    "corrupt_mask",
    "flip_map",
    "is_low_fidelity",
    "with_label_noise",
]
