"""The scene world: procedural object scenes with exact masks, a miniature of ImageNet + DUTS.

Every scene is a pure function of ``(class_id, code)``: ``code`` is a 128-d vector drawn from the
standard normal truncated to [-2, 2] (the distribution BigGAN samples ``z`` from at truncation 1), and
each of its coordinates sets one property of the scene through a fixed map (:data:`CODE_LAYOUT`):
position, area, rotation and shape parameters of the salient object, its colour, shading and texture,
and the background's base colour, gradient, low-frequency noise, stripes and low-contrast distractors.
Scene ``(seed, index)`` draws its class and code from a generator seeded by ``(seed, index)`` alone,
so splits are index ranges (:data:`SPLIT_OFFSETS`) and any scene can be rebuilt on its own.

Classes differ in shape and in typical hue and texture (:data:`CLASSES`); hue, saturation and value
vary within a class, and the background's colour is independent of the object's, so the contrast
between them ranges from strong to weak and no global colour threshold segments the world.

Rendering is anti-aliased: shapes are drawn on a 4x canvas and area-averaged into a coverage map
``alpha``; the image blends object over background by ``alpha`` and the mask is exactly
``alpha >= 0.5``. Distractors are drawn before the object, never over it, so the mask is the object.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.special import ndtr

from synthsod.core.prior import TRUNCNORM_BOUND, truncated_normal
from synthsod.errors import SynthsodError

CODE_DIM = 128
SUPERSAMPLE = 4
DEFAULT_SIZE = 64

# name, hue in degrees, object texture. Hues sit 45 degrees apart; each class varies +-15 around its own.
CLASSES: tuple[tuple[str, float, str], ...] = (
    ("ellipse", 0.0, "radial"),
    ("rectangle", 225.0, "stripes"),
    ("triangle", 90.0, "linear"),
    ("star", 45.0, "plain"),
    ("ring", 180.0, "linear"),
    ("cross", 270.0, "stripes"),
    ("crescent", 135.0, "radial"),
    ("blob", 315.0, "plain"),
)
CLASS_NAMES = tuple(name for name, _, _ in CLASSES)
NUM_CLASSES = len(CLASSES)

# Disjoint index ranges of the world, one per split (each split holds at most SPLIT_STRIDE scenes).
SPLIT_STRIDE = 1_000_000
SPLIT_OFFSETS = {
    "pretrain": 0,
    "train": SPLIT_STRIDE,
    "test": 2 * SPLIT_STRIDE,
    "eval": 3 * SPLIT_STRIDE,
    "eval-ref": 4 * SPLIT_STRIDE,
    "oracle": 5 * SPLIT_STRIDE,  # the reference segmenter's training scenes (synthsod/evaluation/oracle.py)
}

# Which code coordinates drive what (start, stop); coordinates 123.. are unused.
_NOISE_FREQS = [(fx, fy) for fx in range(0, 4) for fy in range(-3, 4) if (fx, fy) > (0, 0)]  # 24 vectors
CODE_LAYOUT = {
    "position": (0, 2),
    "area": (2, 3),
    "rotation": (3, 4),
    "shape": (4, 6),
    "blob": (6, 12),
    "hue": (12, 13),
    "saturation": (13, 14),
    "value": (14, 15),
    "shading": (15, 17),
    "texture": (17, 20),
    "background": (20, 23),
    "gradient": (23, 27),
    "noise_amp": (27, 28),
    "noise": (28, 76),
    "noise_tint": (76, 79),
    "stripes": (79, 83),
    "distractors": (83, 107),
}
_N_DISTRACTORS, _DISTRACTOR_DIMS = 3, 8


@dataclass
class Scene:
    """One scene: ``image`` [S, S, 3] uint8, ``mask`` [S, S] bool (the salient object), its class."""

    image: np.ndarray
    mask: np.ndarray
    class_id: int
    code: np.ndarray

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.class_id]


def draw_code(seed: int, index: int) -> tuple[int, np.ndarray]:
    """Class id and code [128] (float32) of scene ``index`` of the world ``seed``."""
    rng = np.random.default_rng([int(seed), int(index)])
    class_id = int(rng.integers(NUM_CLASSES))
    return class_id, truncated_normal(rng, CODE_DIM).astype(np.float32)


def split_indices(split: str, size: int, first: int = 0) -> range:
    """World indices of scenes ``first .. first + size - 1`` of ``split``."""
    if split not in SPLIT_OFFSETS:
        raise SynthsodError(f"unknown scene split '{split}'; choose one of {', '.join(SPLIT_OFFSETS)}")
    if first < 0 or size < 0 or first + size > SPLIT_STRIDE:
        raise SynthsodError(f"scene split '{split}': indices {first}..{first + size} leave 0..{SPLIT_STRIDE}")
    offset = SPLIT_OFFSETS[split]
    return range(offset + first, offset + first + size)


def scene_name(index: int) -> str:
    """The file stem of scene ``index`` in a split's DUTS layout."""
    return f"scene_{index:07d}"


def scene_index(name: str) -> int | None:
    """The world index of a file stem written by :func:`write_duts_split` (None for any other name)."""
    prefix, _, digits = str(name).partition("_")
    return int(digits) if prefix == "scene" and len(digits) == 7 and digits.isdigit() else None


def scene(seed: int, index: int, size: int = DEFAULT_SIZE) -> Scene:
    """Scene ``index`` of the world ``seed`` at ``size`` x ``size`` pixels."""
    class_id, code = draw_code(seed, index)
    return render(class_id, code, size)


def scenes(seed: int, indices: Iterable[int], size: int = DEFAULT_SIZE) -> Iterable[Scene]:
    for index in indices:
        yield scene(seed, index, size)


def scene_arrays(
    seed: int, indices: Iterable[int], size: int = DEFAULT_SIZE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scenes ``indices`` stacked: images [N, S, S, 3] uint8, masks [N, S, S] bool, class ids [N] int64 and
    codes [N, 128] float32."""
    items = list(scenes(seed, indices, size))
    return (
        np.stack([it.image for it in items]),
        np.stack([it.mask for it in items]),
        np.array([it.class_id for it in items], np.int64),
        np.stack([it.code for it in items]),
    )


# --- the code map ------------------------------------------------------------------------------------
def _uniform(z: np.ndarray | float) -> np.ndarray:
    """A truncated-normal coordinate mapped to [0, 1] uniformly (its CDF)."""
    lo, hi = ndtr(-TRUNCNORM_BOUND), ndtr(TRUNCNORM_BOUND)
    return np.clip((ndtr(np.asarray(z, dtype=np.float64)) - lo) / (hi - lo), 0.0, 1.0)


def _part(code: np.ndarray, name: str) -> np.ndarray:
    start, stop = CODE_LAYOUT[name]
    return np.asarray(code[start:stop], dtype=np.float64)


def _hsv(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    hsv = np.array([[[hue_deg % 360.0 / 2.0, saturation * 255.0, value * 255.0]]], dtype=np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) / 255.0


# --- shapes: polygons in unit coordinates (about radius 1), holes drawn after the fills -----------
def _circle(radius: float = 1.0, aspect: float = 1.0, centre=(0.0, 0.0), n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] + radius * np.cos(t), centre[1] + radius * aspect * np.sin(t)], axis=1)


def _shape_polygons(class_id: int, code: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(filled polygons, hole polygons) of the object in unit coordinates."""
    p, q = _uniform(_part(code, "shape"))
    name = CLASS_NAMES[class_id]
    if name == "ellipse":
        return [_circle(aspect=0.45 + 0.5 * p)], []
    if name == "rectangle":
        a = 0.4 + 0.55 * p
        return [np.array([[-1, -a], [1, -a], [1, a], [-1, a]], float)], []
    if name == "triangle":
        apex = 0.6 + 0.8 * p  # height of the apex relative to the base's half-width
        return [np.array([[-1.0, 0.55], [1.0, 0.55], [0.3 * (q - 0.5), 0.55 - 1.3 * apex]], float)], []
    if name == "star":
        inner = 0.38 + 0.2 * p
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)], []
    if name == "ring":
        return [_circle()], [_circle(radius=0.48 + 0.2 * p)]
    if name == "cross":
        w = 0.28 + 0.17 * p
        return [
            np.array([[-1, -w], [1, -w], [1, w], [-1, w]], float),
            np.array([[-w, -1], [w, -1], [w, 1], [-w, 1]], float),
        ], []
    if name == "crescent":
        offset = 0.35 + 0.3 * p
        return [_circle()], [_circle(radius=0.8 + 0.15 * q, centre=(offset, -0.15))]
    if name == "blob":
        amp, phase = _part(code, "blob")[:3], _uniform(_part(code, "blob")[3:]) * 2 * np.pi
        t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
        r = 1.0 + sum(0.09 * a * np.cos(k * t + f) for k, a, f in zip((2, 3, 4), amp, phase))
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)], []
    raise AssertionError(name)


def _fill(canvas_size: int, fills: Sequence[np.ndarray], holes: Sequence[np.ndarray], transform) -> np.ndarray:
    """Coverage [S, S] in [0, 1] of polygons mapped to canvas pixels by ``transform``, area-averaged."""
    big = canvas_size * SUPERSAMPLE
    canvas = np.zeros((big, big), np.uint8)
    shift = 4  # sub-pixel precision of cv2.fillPoly: coordinates in 1/16 pixel

    def draw(polygons, value):
        points = [
            np.round(transform(poly) * big * (1 << shift) - 0.5 * (1 << shift)).astype(np.int32) for poly in polygons
        ]
        for poly in points:  # one call each: fillPoly would XOR overlapping polygons (the cross)
            cv2.fillPoly(canvas, [poly], value, lineType=cv2.LINE_8, shift=shift)

    draw(fills, 255)
    if holes:
        draw(holes, 0)
    return cv2.resize(canvas, (canvas_size, canvas_size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0


def _unit_area(fills, holes) -> float:
    """Area of the shape in unit coordinates, measured on a raster of [-1.5, 1.5]^2."""
    coverage = _fill(64, fills, holes, lambda poly: (poly + 1.5) / 3.0)
    return float(coverage.mean()) * 9.0


def _placement(code: np.ndarray, fills, holes) -> tuple[float, float, float, float]:
    """Centre (x, y) in [0, 1], radius and rotation of the object."""
    area = 0.06 + 0.36 * float(_uniform(_part(code, "area"))[0])
    radius = float(np.sqrt(area / _unit_area(fills, holes)))
    extent = max(float(np.abs(poly).max()) for poly in fills) * radius
    u, v = _uniform(_part(code, "position"))
    margin = min(0.85 * extent, 0.5)
    cx, cy = margin + u * (1 - 2 * margin), margin + v * (1 - 2 * margin)
    angle = float(_uniform(_part(code, "rotation"))[0]) * 2 * np.pi
    return cx, cy, radius, angle


def _similarity(cx: float, cy: float, radius: float, angle: float):
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])

    def transform(poly: np.ndarray) -> np.ndarray:
        return poly @ rotation.T * radius + np.array([cx, cy])

    return transform


# --- background and object colour fields -------------------------------------------------------------
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    return np.meshgrid(t, t)  # x, y in [0, 1]


def _background(code: np.ndarray, size: int) -> np.ndarray:
    x, y = _grid(size)
    hue, sat, val = _uniform(_part(code, "background"))
    base = _hsv(360 * hue, 0.65 * sat, 0.15 + 0.75 * val)
    amp, angle, hue_shift, val_shift = _uniform(_part(code, "gradient"))
    far = _hsv(
        360 * hue + 120 * (hue_shift - 0.5), 0.65 * sat, np.clip(0.15 + 0.75 * val + 0.6 * (val_shift - 0.5), 0, 1)
    )
    ramp = (x - 0.5) * np.cos(2 * np.pi * angle) + (y - 0.5) * np.sin(2 * np.pi * angle) + 0.5
    image = base + (0.9 * amp * ramp)[..., None] * (far - base)
    # Low-frequency noise: a Gaussian field over 24 frequency vectors (cos and sin), 1/f amplitudes.
    coeffs = _part(code, "noise").reshape(len(_NOISE_FREQS), 2)
    field = np.zeros_like(x)
    for (fx, fy), (a, b) in zip(_NOISE_FREQS, coeffs):
        phase = 2 * np.pi * (fx * x + fy * y)
        field += (a * np.cos(phase) + b * np.sin(phase)) / np.hypot(fx, fy)
    field /= np.sqrt(sum(2 / (fx * fx + fy * fy) for fx, fy in _NOISE_FREQS))
    tint = 1.0 + 0.4 * (_uniform(_part(code, "noise_tint")) - 0.5)
    image = image + (0.22 * _uniform(_part(code, "noise_amp"))[0] * field)[..., None] * tint
    # Stripes on a share of the scenes (amplitude 0 below the 40th percentile).
    s_amp, s_freq, s_angle, s_phase = _uniform(_part(code, "stripes"))
    amplitude = 0.16 * max(0.0, (s_amp - 0.4) / 0.6)
    if amplitude:
        direction = x * np.cos(np.pi * s_angle) + y * np.sin(np.pi * s_angle)
        image = image + (amplitude * np.sin(2 * np.pi * ((2 + 6 * s_freq) * direction + s_phase)))[..., None]
    return image


def _object_colour(
    class_id: int, code: np.ndarray, size: int, cx: float, cy: float, radius: float, angle: float
) -> np.ndarray:
    _, class_hue, texture = CLASSES[class_id]
    hue = class_hue + 30 * (_uniform(_part(code, "hue"))[0] - 0.5)
    sat = 0.5 + 0.45 * _uniform(_part(code, "saturation"))[0]
    val = 0.4 + 0.6 * _uniform(_part(code, "value"))[0]
    colour = _hsv(hue, sat, val)
    x, y = _grid(size)
    # Shading: a light ramp across the object in a direction of its own.
    s_amp, s_angle = _uniform(_part(code, "shading"))
    u = ((x - cx) * np.cos(2 * np.pi * s_angle) + (y - cy) * np.sin(2 * np.pi * s_angle)) / max(radius, 1e-3)
    light = 1.0 + 0.3 * s_amp * np.clip(u, -1, 1)
    t_amp, t_freq, t_phase = _uniform(_part(code, "texture"))
    if texture == "radial":  # a lit ball: brighter towards one side of the centre
        r = np.hypot(x - cx + 0.3 * radius, y - cy + 0.3 * radius) / max(radius, 1e-3)
        light = light * (1.25 - 0.5 * (0.4 + 0.6 * t_amp) * np.clip(r, 0, 1.5))
    elif texture == "stripes":  # stripes along the object's own axis
        along = ((x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)) / max(radius, 1e-3)
        light = light * (
            1.0 + (0.12 + 0.18 * t_amp) * np.sin(np.pi * (2.0 + 2.0 * t_freq) * along + 2 * np.pi * t_phase)
        )
    elif texture == "linear":  # a strong ramp along the object's axis
        along = ((x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)) / max(radius, 1e-3)
        light = light * (1.0 + (0.15 + 0.2 * t_amp) * np.clip(along, -1, 1))
    return colour[None, None, :] * light[..., None]


def _distractor_shapes(code: np.ndarray) -> list[tuple[float, float, float, float, bool, float, float]]:
    """Present distractors: (x, y, radius, angle, square, aspect, contrast)."""
    params = _part(code, "distractors").reshape(_N_DISTRACTORS, _DISTRACTOR_DIMS)
    shapes = []
    for row in params:
        present, x, y, size, kind, angle, aspect, contrast = _uniform(row)
        if present < 0.5:
            continue
        radius = np.sqrt((0.005 + 0.02 * size) / np.pi)
        shapes.append(
            (
                0.08 + 0.84 * x,
                0.08 + 0.84 * y,
                radius,
                2 * np.pi * angle,
                kind > 0.5,
                0.5 + 0.5 * aspect,
                0.16 * (contrast - 0.5),
            )
        )
    return shapes


def render(class_id: int, code: np.ndarray, size: int = DEFAULT_SIZE) -> Scene:
    """The scene of class ``class_id`` and code ``code`` [128] at ``size`` x ``size`` pixels."""
    if not 0 <= class_id < NUM_CLASSES:
        raise SynthsodError(f"scene class {class_id} is not within 0..{NUM_CLASSES - 1}")
    code = np.asarray(code, dtype=np.float64)
    if code.shape != (CODE_DIM,):
        raise SynthsodError(f"scene code has shape {code.shape}, expected ({CODE_DIM},)")
    image = _background(code, size)
    fills, holes = _shape_polygons(class_id, code)
    cx, cy, radius, angle = _placement(code, fills, holes)
    alpha = _fill(size, fills, holes, _similarity(cx, cy, radius, angle))
    # Distractors: small shapes a little lighter or darker than the background beneath them.
    for dx, dy, dr, da, square, aspect, contrast in _distractor_shapes(code):
        poly = (
            np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]], float)
            if square
            else _circle(aspect=aspect, n=32)
        )
        cover = _fill(size, [poly], [], _similarity(dx, dy, dr, da)) * (1.0 - alpha)
        image = image + (contrast * cover)[..., None]
    image = np.clip(image, 0, 1)
    colour = np.clip(_object_colour(class_id, code, size, cx, cy, radius, angle), 0, 1)
    image = image * (1 - alpha[..., None]) + colour * alpha[..., None]
    pixels = np.round(image * 255).astype(np.uint8)
    return Scene(image=pixels, mask=alpha >= 0.5, class_id=int(class_id), code=code.astype(np.float32))


def render_batch(class_ids: Sequence[int], codes: np.ndarray, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Images [N, S, S, 3] uint8 of many (class, code) pairs."""
    return np.stack([render(int(c), code, size).image for c, code in zip(class_ids, codes)])


def write_duts_split(
    images_dir: str | Path,
    masks_dir: str | Path,
    *,
    seed: int,
    split: str,
    size: int,
    first: int = 0,
    resolution: int = DEFAULT_SIZE,
    jpeg_quality: int = 95,
) -> int:
    """Write scenes of ``split`` as ``scene_{index}.jpg`` / ``.png`` (DUTS layout); return how many.

    The folders are replaced whole, so a rerun never mixes two versions of a split.
    """
    from synthsod.core.images import write_image
    from synthsod.core.progress import progress

    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    indices = split_indices(split, size, first)
    for index in progress(indices, desc=f"scenes for {images_dir.parent.name}", unit="scene"):
        item = scene(seed, index, resolution)
        name = scene_name(index)
        write_image(images_dir / f"{name}.jpg", item.image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        write_image(masks_dir / f"{name}.png", item.mask.astype(np.uint8) * 255)
    return len(indices)
