"""BigBiGAN backend: the TF-Hub module's generator (latent -> image) and encoder (image -> latent).

E-BigBiGAN derives its saliency masks from BigBiGAN images, and embeds real images with the BigBiGAN
encoder: a prepared dataset's (:func:`embed_dataset`) or an image-only folder's such as ImageNet's
train set, whose embeddings its saliency table samples (:func:`embed_folder`). The pretrained model is
a TF-Hub module (TF1 Hub format) loaded from a local directory with ``tensorflow_hub.load``; it has two
signatures, each with one input tensor:

``generate``
    z [N, 120] float32 ~ N(0, I) -> ``default``: images [N, 128, 128, 3] in [-1, 1].
``encode``
    x [N, 256, 256, 3] float32 in [-1, 1] -> ``z_mean``, ``z_sample`` (and ``default``): [N, 120].

This is the only synthsod module that uses TensorFlow, and it imports it only when a model is built,
so importing it needs neither TensorFlow nor torch. It never imports torch: it runs in the
``envs/tf.yaml`` environment, which has no torch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from synthsod.core.progress import progress
from synthsod.data.prepare import IMAGE_EXTENSIONS, load_image_rgb
from synthsod.errors import SynthsodError
from synthsod.generators.weights import BIGBIGAN_MODULE_URL as MODULE_URL  # noqa: F401 (re-exported)
from synthsod.generators.weights import bigbigan_module_problem as module_problem

log = logging.getLogger(__name__)

Z_DIM = 120
RESOLUTION = 128  # generator output side
ENCODER_SIZE = 256  # encoder input side
GENERATE, ENCODE = "generate", "encode"
IMAGE_OUTPUT, Z_OUTPUT = "default", "z_mean"
INSTALL_HINT = (
    "run it in the envs/tf.yaml environment, or install by hand: pip install tensorflow-cpu==2.21.0; "
    "pip install --no-deps tf-keras==2.21.0 tensorflow-hub==0.16.1; pip install 'setuptools<81'"
)


def _import_tf() -> tuple[Any, Any]:
    try:
        import tensorflow as tf
        import tensorflow_hub as hub
    except ImportError as exc:
        raise SynthsodError(f"BigBiGAN needs tensorflow-hub ({exc}): {INSTALL_HINT}") from exc
    return tf, hub


def _single_input(module_dir: Path, signature_name: str, signature: Any) -> tuple[str, Any]:
    """(name, TensorSpec) of a signature's one input; the name differs between module exports."""
    args, kwargs = signature.structured_input_signature
    if args or len(kwargs) != 1:
        raise SynthsodError(
            f"BigBiGAN module {module_dir}: signature '{signature_name}' takes inputs "
            f"{sorted(kwargs)}, expected exactly one tensor"
        )
    ((name, spec),) = kwargs.items()
    return name, spec


def _dim(shape: Any, axis: int, default: int) -> int:
    """A static dimension of a signature shape, or ``default`` where the module leaves it open."""
    value = shape[axis] if shape.rank is not None else None
    return default if value is None else int(value)


class BigBiGAN:
    """A BigBiGAN TF-Hub module in a local directory, called with and returning numpy arrays.

    ``z_dim``, ``resolution`` and ``encoder_size`` come from the signatures' static shapes (the
    constants above where a shape is open). ``batch_size`` bounds how many items go through
    TensorFlow at once.
    """

    name = "bigbigan"

    def __init__(self, module_dir: str | os.PathLike, batch_size: int = 16):
        module_dir = Path(module_dir)
        # Checked before importing TensorFlow, so a missing download is reported as such everywhere.
        problem = module_problem(module_dir)
        if problem:
            raise SynthsodError(problem)
        self._tf, hub = _import_tf()
        self.module_dir = module_dir
        self.batch_size = batch_size
        try:
            self._module = hub.load(str(module_dir))  # kept: the signatures need its variables alive
        except Exception as exc:  # TF raises many types for a broken or partly extracted module
            raise SynthsodError(
                f"BigBiGAN module {module_dir} cannot be loaded ({exc}); extract the download again"
            ) from exc
        missing = [s for s in (GENERATE, ENCODE) if s not in self._module.signatures]
        if missing:
            raise SynthsodError(
                f"BigBiGAN module {module_dir} lacks the signature(s) {', '.join(missing)} "
                f"(it has: {', '.join(sorted(self._module.signatures)) or 'none'}); is it a BigBiGAN module?"
            )
        self._generate = self._module.signatures[GENERATE]
        self._encode = self._module.signatures[ENCODE]
        for signature_name, signature, key in (
            (GENERATE, self._generate, IMAGE_OUTPUT),
            (ENCODE, self._encode, Z_OUTPUT),
        ):
            if key not in signature.structured_outputs:
                raise SynthsodError(
                    f"BigBiGAN module {module_dir}: signature '{signature_name}' has "
                    f"no output '{key}' (it has {sorted(signature.structured_outputs)})"
                )
        self._z_input, z_spec = _single_input(module_dir, GENERATE, self._generate)
        self._x_input, x_spec = _single_input(module_dir, ENCODE, self._encode)
        self.z_dim = _dim(z_spec.shape, -1, Z_DIM)
        self.resolution = _dim(self._generate.structured_outputs[IMAGE_OUTPUT].shape, 1, RESOLUTION)
        self.encoder_size = _dim(x_spec.shape, 1, ENCODER_SIZE)

    def _run(
        self, signature: Any, input_name: str, output: str, x: np.ndarray, out_shape: tuple[int, ...]
    ) -> np.ndarray:
        chunks = [
            signature(**{input_name: self._tf.constant(x[i : i + self.batch_size])})[output].numpy()
            for i in range(0, len(x), self.batch_size)
        ]
        return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros((0, *out_shape), np.float32)

    def generate(self, z: np.ndarray) -> np.ndarray:
        """Images [N, R, R, 3] float32 in [-1, 1] (channels last) from latents ``z`` [N, z_dim]."""
        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {list(z.shape)}")
        side = self.resolution
        return self._run(self._generate, self._z_input, IMAGE_OUTPUT, z, (side, side, 3))

    def encode(self, images: np.ndarray) -> np.ndarray:
        """The encoder's ``z_mean`` [N, z_dim] float32 of uint8 RGB images [N, S, S, 3], S = encoder_size."""
        size = self.encoder_size
        if images.dtype != np.uint8 or images.shape[1:] != (size, size, 3):
            raise ValueError(f"images must be uint8 [N, {size}, {size}, 3], got {images.dtype} {list(images.shape)}")
        x = images.astype(np.float32) / 127.5 - 1.0
        return self._run(self._encode, self._x_input, Z_OUTPUT, x, (self.z_dim,))


def encoder_input(image: np.ndarray, size: int = ENCODER_SIZE) -> np.ndarray:
    """Resize a uint8 H x W x 3 image so its shorter side is ``size``, then crop the centre square.

    Shrinking uses area averaging (cv2.INTER_AREA, no aliasing); enlarging uses bicubic
    interpolation (cv2.INTER_CUBIC). When a side has an odd surplus, the crop keeps the extra pixel
    on the right / bottom.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 H x W x 3, got {image.dtype} {list(image.shape)}")
    height, width = image.shape[:2]
    scale = size / min(height, width)
    if scale != 1.0:
        # The shorter side is set exactly; rounding only touches the longer one (never below size).
        new_w = size if width <= height else max(size, round(width * scale))
        new_h = size if height < width else max(size, round(height * scale))
        interpolation = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_CUBIC
        image = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
        height, width = new_h, new_w
    top, left = (height - size) // 2, (width - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def embed_dataset(model: BigBiGAN, manifest: pd.DataFrame, batch_size: int = 16) -> pd.DataFrame:
    """Encode every image of a prepared manifest: columns ``id`` (str) and ``z`` (float32 [z_dim]).

    One row per manifest row, in manifest order. Images are read with
    :func:`synthsod.data.prepare.load_image_rgb` (the conversions the dataset check reported; a file that
    does not decode raises SynthsodError naming it), ``batch_size`` at a time.
    """
    ids, latents = [], []
    with progress(total=len(manifest), desc="BigBiGAN encoding", unit="image") as bar:
        for start in range(0, len(manifest), batch_size):
            rows = manifest.iloc[start : start + batch_size]
            batch = np.stack([encoder_input(load_image_rgb(path), model.encoder_size) for path in rows["image"]])
            latents.extend(model.encode(batch))
            ids.extend(rows["id"].astype(str))
            bar.update(len(rows))
    return pd.DataFrame({"id": pd.Series(ids, dtype="str"), "z": pd.Series(latents, dtype=object)})


def list_folder_images(folder: str | os.PathLike) -> list[str]:
    """The image files under ``folder``, recursively, as sorted POSIX paths relative to it.

    Files with the extensions of :data:`synthsod.data.prepare.IMAGE_EXTENSIONS` (any letter case) count;
    hidden files and folders (names starting with ".") are skipped, symbolic links to folders are not
    followed. The order is that of the path strings, so it does not depend on the file system.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SynthsodError(f"image folder not found: {os.fspath(folder)}")
    found = []
    for current, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        base = Path(current).relative_to(root)
        found += [
            (base / f).as_posix() for f in files if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)
        ]
    if not found:
        raise SynthsodError(
            f"image folder has no image files ({', '.join(IMAGE_EXTENSIONS)}) in it or its sub-folders: "
            f"{os.fspath(folder)}"
        )
    return sorted(found)


def spread(items: list[str], limit: int | None) -> list[str]:
    """``limit`` items evenly spaced over ``items`` (item ``i * n // limit``), or all of them: a limited
    ImageNet keeps every class folder in proportion rather than the first classes."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def _decoded_batches(
    paths: list[str], batch_size: int, size: int, threads: int
) -> Iterator[list[tuple[int, np.ndarray | str]]]:
    """Batches of (index, encoder input or the reason the file is unreadable), decoded by ``threads``
    threads while the previous batch is encoded (one batch ahead, so memory stays at two batches)."""

    def load(i: int) -> tuple[int, np.ndarray | str]:
        try:
            return i, encoder_input(load_image_rgb(paths[i]), size)
        except SynthsodError as err:
            return i, str(err)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        starts = range(0, len(paths), batch_size)
        pending = None
        for start in starts:
            nxt = pool.map(load, range(start, min(start + batch_size, len(paths))))
            if pending is not None:
                yield list(pending)
            pending = nxt
        if pending is not None:
            yield list(pending)


def embed_folder(
    model: BigBiGAN,
    folder: str | os.PathLike,
    *,
    limit: int | None = None,
    max_bad_fraction: float = 0.05,
    batch_size: int = 16,
    threads: int = 1,
    name: str = "source",
) -> tuple[pd.DataFrame, list[str]]:
    """Encode the images of an image-only folder (ImageNet train: class folders of JPEGs): ``(table,
    skipped)``, the table with columns ``id`` and ``z`` as :func:`embed_dataset` writes them, ``skipped`` one
    line per unreadable image.

    Images are :func:`list_folder_images` (sorted), at most ``limit`` of them (:func:`spread`); the id of
    an image is its path relative to ``folder`` (``n01440764/n01440764_10026.JPEG``), so ids are unique.
    Each is read as :func:`embed_dataset` reads a dataset's. An image that does not decode is skipped and
    listed; more than ``max_bad_fraction`` of them raises SynthsodError (naming the first few), because
    a folder that broken is more likely the wrong one. ``threads`` threads decode; the result does not
    depend on them, nor on ``batch_size``.
    """
    if not 0.0 <= max_bad_fraction <= 1.0:
        raise SynthsodError(f"max_bad_fraction must be between 0 and 1, got {max_bad_fraction}")
    paths = spread(list_folder_images(folder), limit)
    full = [os.path.join(os.fspath(folder), p) for p in paths]
    ids, latents, skipped = [], [], []
    with progress(total=len(paths), desc=f"BigBiGAN encoding {name}", unit="image") as bar:
        for batch in _decoded_batches(full, batch_size, model.encoder_size, threads):
            good = [(i, image) for i, image in batch if not isinstance(image, str)]
            skipped += [reason for _, reason in batch if isinstance(reason, str)]
            if good:
                latents.extend(model.encode(np.stack([image for _, image in good])))
                ids.extend(paths[i] for i, _ in good)
            bar.update(len(batch))
    if len(skipped) > max_bad_fraction * len(paths):
        listed = "\n".join(f"  {line}" for line in skipped[:10])
        more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
        raise SynthsodError(
            f"{name}: {len(skipped)} of {len(paths)} images in {os.fspath(folder)} are unreadable "
            f"({len(skipped) / len(paths):.1%}), more than max_bad_fraction {max_bad_fraction:.1%}; nothing was "
            f"written:\n{listed}{more}"
        )
    if not ids:
        raise SynthsodError(f"{name}: none of the {len(paths)} images in {os.fspath(folder)} can be read")
    for line in skipped:
        log.warning("skipped: %s", line)
    table = pd.DataFrame({"id": pd.Series(ids, dtype="str"), "z": pd.Series(latents, dtype=object)})
    return table, skipped


def write_tiny_module(
    out_dir: str | os.PathLike, seed: int = 0, z_dim: int = Z_DIM, resolution: int = RESOLUTION
) -> None:
    """Save a tiny random BigBiGAN stand-in (same signatures, inputs named ``z`` and ``x``) to ``out_dir``.

    generate: dense -> 4x4x8 -> (2x nearest upsampling + 3x3 conv + ReLU) until ``resolution`` ->
    3x3 conv -> tanh. encode: 32x32 average pooling of the 256x256 input -> dense -> z_mean; z_sample
    and default repeat z_mean. The weights depend only on ``seed``. It is written to a temporary
    sibling directory and renamed, so ``out_dir`` (which must not exist, or be empty) is never half-written.
    """
    if resolution < 4 or resolution & (resolution - 1):
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    tf, _ = _import_tf()
    rng = np.random.default_rng(seed)
    channels, pooled = 8, ENCODER_SIZE // 32

    def weight(*shape: int) -> Any:
        fan_in = int(np.prod(shape[:-1]))
        return tf.Variable(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape).astype(np.float32))

    class TinyBigBiGAN(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dense = weight(z_dim, 4 * 4 * channels)
            self.convs = [weight(3, 3, channels, channels) for _ in range(int(np.log2(resolution // 4)))]
            self.to_rgb = weight(3, 3, channels, 3)
            self.encoder = weight(pooled * pooled * 3, z_dim)

        @tf.function(input_signature=[tf.TensorSpec([None, z_dim], tf.float32, name="z")])
        def generate(self, z):
            h = tf.reshape(z @ self.dense, [-1, 4, 4, channels])
            for kernel in self.convs:
                h = tf.nn.relu(tf.nn.conv2d(tf.repeat(tf.repeat(h, 2, axis=1), 2, axis=2), kernel, 1, "SAME"))
            return {IMAGE_OUTPUT: tf.tanh(tf.nn.conv2d(h, self.to_rgb, 1, "SAME"))}

        @tf.function(input_signature=[tf.TensorSpec([None, ENCODER_SIZE, ENCODER_SIZE, 3], tf.float32, name="x")])
        def encode(self, x):
            z_mean = tf.reshape(tf.nn.avg_pool2d(x, 32, 32, "VALID"), [-1, pooled * pooled * 3]) @ self.encoder
            return {"default": z_mean, Z_OUTPUT: z_mean, "z_sample": z_mean}

    module = TinyBigBiGAN()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        tf.saved_model.save(module, str(tmp), signatures={GENERATE: module.generate, ENCODE: module.encode})
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
