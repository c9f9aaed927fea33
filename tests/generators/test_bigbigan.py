"""Tests for synthsod.generators.bigbigan: loading a TF-Hub module, generate / encode, encoder input, embeddings
of a prepared dataset and of an image-only source folder (bigbigan.sources, rule bigbigan_embed).

The error and preprocessing tests need no TensorFlow and run in every env. The others build small
modules in tmp_path (the real weights cannot be downloaded here) and skip where TensorFlow is absent:
``write_tiny_module`` (a TF2 SavedModel, inputs named ``z`` / ``x`` as in the released module) and a
TF1 Hub format module like the released one (graph-mode SavedModel with empty tags, inputs named
``default``), whose outputs are known in closed form.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from synthsod.data.prepare import load_image_rgb, prepare_dataset
from synthsod.errors import SynthsodError
from synthsod.generators.bigbigan import (
    MODULE_URL,
    BigBiGAN,
    embed_dataset,
    embed_folder,
    encoder_input,
    list_folder_images,
    module_problem,
    spread,
    write_tiny_module,
)
from synthsod.generators.latent_table import read_latent_table

REPO = Path(__file__).resolve().parents[2]
NO_TF = "TensorFlow absent: BigBiGAN tests run in the tf env (.ci/run builds it)"


def needs_tf():
    return pytest.importorskip("tensorflow_hub", reason=NO_TF)


def pixel_ids(height: int, width: int) -> np.ndarray:
    """uint8 H x W x 3 image whose pixel (r, c) holds (r % 256, c % 256, (r // 256) * 16 + c // 256)."""
    r, c = np.mgrid[:height, :width]
    return np.stack([r % 256, c % 256, (r // 256) * 16 + c // 256], axis=-1).astype(np.uint8)


# --- errors that need no TensorFlow ----------------------------------------------------------


def test_missing_directory_names_path_and_download(tmp_path):
    missing = tmp_path / "bigbigan-resnet50"
    with pytest.raises(SynthsodError) as err:
        BigBiGAN(missing)
    message = str(err.value)
    assert f"{missing} does not exist" in message
    assert MODULE_URL in message and "generators.<name>.weights" in message


def test_directory_without_saved_model(tmp_path):
    (tmp_path / "variables").mkdir()
    with pytest.raises(SynthsodError, match=re.escape(f"{tmp_path} has no saved_model.pb")):
        BigBiGAN(tmp_path)


def test_missing_tensorflow_gives_install_hint(tmp_path, monkeypatch):
    (tmp_path / "saved_model.pb").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail here
    monkeypatch.setitem(sys.modules, "tensorflow_hub", None)
    with pytest.raises(SynthsodError) as err:
        BigBiGAN(tmp_path)
    message = str(err.value)
    assert message.startswith("BigBiGAN needs tensorflow-hub") and "envs/tf.yaml" in message
    assert "pip install tensorflow-cpu==2.21.0" in message
    assert "pip install --no-deps tf-keras==2.21.0 tensorflow-hub==0.16.1" in message


# --- encoder_input (no TensorFlow) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "top", "left"),
    [
        (256, 301, 0, 22),  # landscape, odd surplus: the extra column stays on the right
        (300, 256, 22, 0),  # portrait
        (256, 256, 0, 0),
    ],
)
def test_encoder_input_crops_the_centre_without_resizing_at_size(height, width, top, left):
    image = pixel_ids(height, width)
    np.testing.assert_array_equal(encoder_input(image), image[top : top + 256, left : left + 256])


def test_encoder_input_shrinks_by_area_averaging():
    # 1024 x 1200 -> 256 x 300 (factor 4), then columns 22..277; each output pixel is the mean of a
    # 4 x 4 block (bilinear or nearest would sample only the middle or a corner of the block).
    image = np.random.default_rng(0).integers(0, 256, (1024, 1200, 3), dtype=np.uint8)
    block_means = image.reshape(256, 4, 300, 4, 3).mean(axis=(1, 3))
    out = encoder_input(image)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8
    assert np.abs(out - block_means[:, 22:278]).max() <= 0.5 + 1e-9  # rounding only


def test_encoder_input_enlarges_then_crops_the_centre():
    # 64 x 128 -> 256 x 512 (factor 4), crop columns 128..383 = source columns 32..95. The dark and
    # bright bands (source columns < 24 and >= 104) and their interpolation halos are all cut off.
    image = np.full((64, 128, 3), 128, np.uint8)
    image[:, :24] = 0
    image[:, 104:] = 255
    out = encoder_input(image)
    assert out.shape == (256, 256, 3)
    assert (out == 128).all()


def test_encoder_input_other_size_and_bad_input():
    assert encoder_input(pixel_ids(40, 60), size=20).shape == (20, 20, 3)
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        encoder_input(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        encoder_input(np.zeros((8, 8, 3), np.float32))


# --- modules built here (TensorFlow) ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    needs_tf()
    path = tmp_path_factory.mktemp("bigbigan") / "tiny"
    write_tiny_module(path, seed=0)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_dir) -> BigBiGAN:
    return BigBiGAN(tiny_dir)


# Closed-form TF1 module: generate = tanh(reshape(z @ W)), encode = mean of x over all pixels and
# channels, repeated z_dim times (so it shows exactly how encode mapped uint8 to [-1, 1]).
TF1_Z_DIM, TF1_RESOLUTION, TF1_ENCODER_SIZE = 7, 8, 16
TF1_WEIGHT = np.random.default_rng(1).normal(0.0, 0.5, (TF1_Z_DIM, TF1_RESOLUTION**2 * 3)).astype(np.float32)


def write_tf1_hub_module(out_dir: Path) -> None:
    needs_tf()
    import tensorflow as tf

    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        z = tf.compat.v1.placeholder(tf.float32, [None, TF1_Z_DIM])
        weight = tf.compat.v1.get_variable("w", initializer=TF1_WEIGHT)
        images = tf.tanh(tf.reshape(z @ weight, [-1, TF1_RESOLUTION, TF1_RESOLUTION, 3]))
        x = tf.compat.v1.placeholder(tf.float32, [None, TF1_ENCODER_SIZE, TF1_ENCODER_SIZE, 3])
        z_mean = tf.tile(tf.reduce_mean(x, axis=[1, 2, 3])[:, None], [1, TF1_Z_DIM])
        session.run(tf.compat.v1.global_variables_initializer())
        signature = tf.compat.v1.saved_model.predict_signature_def
        builder = tf.compat.v1.saved_model.Builder(str(out_dir))
        builder.add_meta_graph_and_variables(
            session,
            tags=[],
            signature_def_map={
                "generate": signature({"default": z}, {"default": images}),
                "encode": signature({"default": x}, {"default": z_mean, "z_mean": z_mean, "z_sample": z_mean}),
            },
        )
        builder.save()
    # hub.load only checks that this file exists (it then loads the empty tag set, as for the real module).
    (out_dir / "tfhub_module.pb").write_bytes(b"")


def test_tiny_module_loads_with_tensorflow_hub(tiny_dir):
    hub = needs_tf()
    assert module_problem(tiny_dir) is None
    signatures = hub.load(str(tiny_dir)).signatures
    assert {"generate", "encode"} <= set(signatures)
    assert list(signatures["generate"].structured_input_signature[1]) == ["z"]
    assert list(signatures["encode"].structured_input_signature[1]) == ["x"]


def test_generate_shape_range_and_determinism(tiny, tiny_dir, tmp_path):
    assert (tiny.name, tiny.z_dim, tiny.resolution, tiny.encoder_size, tiny.batch_size) == (
        "bigbigan",
        120,
        128,
        256,
        16,
    )
    z = np.random.default_rng(0).standard_normal((5, 120)).astype(np.float32)
    images = tiny.generate(z)
    assert images.shape == (5, 128, 128, 3) and images.dtype == np.float32
    assert images.min() >= -1.0 and images.max() <= 1.0 and images.std() > 0.1
    assert not np.allclose(images[0], images[1])  # each latent its own image
    np.testing.assert_array_equal(tiny.generate(z), images)
    np.testing.assert_allclose(BigBiGAN(tiny_dir, batch_size=2).generate(z), images, atol=1e-6)  # batching
    assert tiny.generate(np.zeros((0, 120), np.float32)).shape == (0, 128, 128, 3)
    write_tiny_module(tmp_path / "same", seed=0)
    write_tiny_module(tmp_path / "other", seed=1)
    np.testing.assert_array_equal(BigBiGAN(tmp_path / "same").generate(z), images)
    assert not np.allclose(BigBiGAN(tmp_path / "other").generate(z), images)
    with pytest.raises(ValueError, match=r"\[N, 120\]"):
        tiny.generate(np.zeros((2, 7), np.float32))


def test_tiny_module_sizes_follow_arguments(tmp_path):
    needs_tf()
    write_tiny_module(tmp_path / "small", z_dim=16, resolution=32)
    model = BigBiGAN(tmp_path / "small")
    assert (model.z_dim, model.resolution) == (16, 32)
    assert model.generate(np.zeros((3, 16), np.float32)).shape == (3, 32, 32, 3)
    with pytest.raises(ValueError, match="power of two"):
        write_tiny_module(tmp_path / "odd", resolution=48)


def test_encode_shape_scaling_and_batching(tiny, tiny_dir):
    hub = needs_tf()
    images = np.random.default_rng(0).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    z = tiny.encode(images)
    assert z.shape == (5, 120) and z.dtype == np.float32
    direct = hub.load(str(tiny_dir)).signatures["encode"](x=images.astype(np.float32) / 127.5 - 1.0)["z_mean"]
    np.testing.assert_allclose(z, direct.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(BigBiGAN(tiny_dir, batch_size=2).encode(images), z, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"uint8 \[N, 256, 256, 3\]"):
        tiny.encode(images[:, :128, :128])
    with pytest.raises(ValueError, match="uint8"):
        tiny.encode(images.astype(np.float32))


def test_tf1_hub_module_inputs_and_sizes_come_from_the_signatures(tmp_path):
    write_tf1_hub_module(tmp_path / "tf1")
    model = BigBiGAN(tmp_path / "tf1")
    assert (model.z_dim, model.resolution, model.encoder_size) == (TF1_Z_DIM, TF1_RESOLUTION, TF1_ENCODER_SIZE)
    z = np.random.default_rng(2).standard_normal((3, TF1_Z_DIM)).astype(np.float32)
    expected = np.tanh(z @ TF1_WEIGHT).reshape(3, TF1_RESOLUTION, TF1_RESOLUTION, 3)
    np.testing.assert_allclose(model.generate(z), expected, atol=1e-5)
    size = TF1_ENCODER_SIZE
    images = np.stack([np.full((size, size, 3), value, np.uint8) for value in (0, 255, 51)])
    np.testing.assert_allclose(model.encode(images)[:, 0], [-1.0, 1.0, 51 / 127.5 - 1.0], atol=1e-6)


def malformed_signatures(tf, case: str) -> dict:
    """Signatures of a module that is not BigBiGAN-shaped in one way (``case``)."""

    def fn(body, *shapes):
        return tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32) for shape in shapes])

    generate = fn(lambda z: {"default": tf.reshape(z, [-1, 2, 2, 1])}, [None, 4])
    encode = fn(lambda x: {"z_mean": tf.reshape(x, [-1, 12])}, [None, 2, 2, 3])
    if case == "no encode":
        return {"generate": generate}
    if case == "two inputs":
        return {
            "generate": fn(lambda z, label: {"default": tf.reshape(z + label, [-1, 2, 2, 1])}, [None, 4], [None, 1]),
            "encode": encode,
        }
    return {"generate": generate, "encode": fn(lambda x: {"default": tf.reshape(x, [-1, 12])}, [None, 2, 2, 3])}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no encode", r"lacks the signature\(s\) encode \(it has: generate\)"),
        ("two inputs", r"signature 'generate' takes inputs \['label', 'z'\], expected exactly one"),
        ("no z_mean", r"signature 'encode' has no output 'z_mean' \(it has \['default'\]\)"),
    ],
)
def test_module_that_is_not_bigbigan_shaped(tmp_path, case, message):
    needs_tf()
    import tensorflow as tf

    tf.saved_model.save(tf.Module(), str(tmp_path), signatures=malformed_signatures(tf, case))
    with pytest.raises(SynthsodError, match=re.escape(f"BigBiGAN module {tmp_path}") + ".* " + message):
        BigBiGAN(tmp_path)


def test_unloadable_module(tmp_path):
    needs_tf()
    (tmp_path / "saved_model.pb").write_bytes(b"not a protocol buffer")
    with pytest.raises(SynthsodError, match=re.escape(f"BigBiGAN module {tmp_path} cannot be loaded")):
        BigBiGAN(tmp_path)


# --- embeddings of a prepared dataset --------------------------------------------------------


def prepared_manifest(root: Path) -> Path:
    """A dataset of three pairs (RGB landscape, grayscale portrait, RGB square) checked by prepare."""
    rng = np.random.default_rng(3)
    shapes = {"a_wide": ((60, 90), "RGB"), "b_gray": ((100, 70), "L"), "c_square": ((256, 256), "RGB")}
    for stem, ((height, width), mode) in shapes.items():
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(root / "images" / f"{stem}.png")
        mask = np.zeros((height, width), np.uint8)
        mask[: height // 2] = 255
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    manifest = root / "manifest.parquet"
    prepare_dataset("TINY", root / "images", root / "masks", manifest, root / "bad_inputs.csv", max_bad_fraction=0.0)
    return manifest


def test_embed_dataset_encodes_every_image_in_order(tiny, tmp_path):
    manifest = pd.read_parquet(prepared_manifest(tmp_path))
    embeddings = embed_dataset(tiny, manifest, batch_size=2)
    assert list(embeddings.columns) == ["id", "z"]
    assert embeddings["id"].tolist() == manifest["id"].tolist() == ["a_wide", "b_gray", "c_square"]
    expected = tiny.encode(np.stack([encoder_input(load_image_rgb(path)) for path in manifest["image"]]))
    for z, want in zip(embeddings["z"], expected):
        assert z.dtype == np.float32 and z.shape == (120,)
        np.testing.assert_allclose(z, want, rtol=1e-5, atol=1e-5)
    assert not np.allclose(embeddings["z"][0], embeddings["z"][1])
    embeddings.to_parquet(tmp_path / "embeddings.parquet", index=False)
    back = pd.read_parquet(tmp_path / "embeddings.parquet")
    np.testing.assert_array_equal(np.stack(back["z"]), np.stack(embeddings["z"]))


def test_embed_dataset_names_a_file_that_does_not_decode(tiny, tmp_path):
    manifest = pd.read_parquet(prepared_manifest(tmp_path))
    broken = manifest["image"][1]
    Path(broken).write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(SynthsodError, match=re.escape(f"{broken}: unreadable or corrupt file")):
        embed_dataset(tiny, manifest)


# --- the workflow script ---------------------------------------------------------------------


def run_embed_script(manifest: Path, weights: Path, out: Path, log: Path) -> subprocess.CompletedProcess:
    """Run workflow_scripts/bigbigan_embed.py with the ``snakemake`` object a rule would give it."""
    driver = textwrap.dedent(f"""
        import runpy
        from types import SimpleNamespace as ns
        smk = ns(input=ns(manifest={str(manifest)!r}), output=ns(embeddings={str(out)!r}), log=[{str(log)!r}],
                 params=ns(generator={{"weights": {str(weights)!r}}}, embed={{"batch_size": 2}}))
        runpy.run_path({str(REPO / "workflow_scripts" / "bigbigan_embed.py")!r}, init_globals={{"snakemake": smk}})
    """)
    return subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=120, check=False)


def test_embed_script_writes_embeddings_and_logs(tiny_dir, tmp_path):
    manifest = prepared_manifest(tmp_path / "data")
    out, log = tmp_path / "bigbigan" / "embeddings.parquet", tmp_path / "embed.log"
    proc = run_embed_script(manifest, tiny_dir, out, log)
    assert proc.returncode == 0, proc.stderr
    embeddings = pd.read_parquet(out)
    assert embeddings["id"].tolist() == ["a_wide", "b_gray", "c_square"]
    assert np.stack(embeddings["z"]).shape == (3, 120)
    assert f"3 images of {manifest} encoded to 120-d BigBiGAN z_mean" in log.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["embeddings.parquet"]  # no temporary left


def test_embed_script_reports_missing_module_in_one_line(tmp_path):
    manifest = prepared_manifest(tmp_path / "data")
    out = tmp_path / "embeddings.parquet"
    proc = run_embed_script(manifest, tmp_path / "nowhere", out, tmp_path / "embed.log")
    assert proc.returncode == 1
    assert f"{tmp_path / 'nowhere'} does not exist" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# --- image-only sources (bigbigan.sources: ImageNet train) ---------------------------------------


def imagenet_like(root: Path) -> dict[str, np.ndarray]:
    """ImageNet's train layout in small: class folders of JPEGs (and one PNG, one upper-case extension), plus
    files that are not images. Returns relative path -> the RGB pixels as stored."""
    rng = np.random.default_rng(5)
    written = {}
    for rel, (height, width) in {
        "n02/n02_7.JPEG": (40, 60),
        "n01/n01_2.jpeg": (64, 48),
        "n01/n01_10.jpg": (30, 30),
        "n03/deeper/n03_1.png": (50, 80),
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        written[rel] = load_image_rgb(path)  # as decoded (JPEG is lossy)
    (root / "n01" / "labels.txt").write_text("not an image")
    (root / "n01" / "._n01_2.jpeg").write_bytes(b"macOS resource fork")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.jpg").write_bytes(b"hidden folder")
    return written


class StubEncoder:
    """encoder_size and encode as BigBiGAN has them: z = the mean of each channel and of the whole image."""

    encoder_size = 16
    z_dim = 4

    def __init__(self):
        self.batches: list[int] = []

    def encode(self, images: np.ndarray) -> np.ndarray:
        assert images.dtype == np.uint8 and images.shape[1:] == (16, 16, 3)
        self.batches.append(len(images))
        means = images.astype(np.float32).mean(axis=(1, 2))
        return np.concatenate([means, means.mean(axis=1, keepdims=True)], axis=1)


def test_folder_images_are_listed_recursively_in_path_order(tmp_path):
    imagenet_like(tmp_path)
    assert list_folder_images(tmp_path) == [
        "n01/n01_10.jpg",
        "n01/n01_2.jpeg",
        "n02/n02_7.JPEG",
        "n03/deeper/n03_1.png",
    ]


def test_missing_or_empty_folders_are_named(tmp_path):
    with pytest.raises(SynthsodError, match=re.escape(f"image folder not found: {tmp_path / 'nope'}")):
        list_folder_images(tmp_path / "nope")
    (tmp_path / "n01").mkdir()
    (tmp_path / "n01" / "readme.txt").write_text("")
    with pytest.raises(SynthsodError, match=r"no image files \(\.jpg, .*\) in it or its sub-folders"):
        list_folder_images(tmp_path)


def test_a_limit_spreads_evenly_over_the_sorted_paths():
    items = [f"c{c}/{i}" for c in range(4) for i in range(5)]  # 4 classes of 5 images
    assert spread(items, 4) == ["c0/0", "c1/0", "c2/0", "c3/0"]  # every class, not the first class
    assert spread(items, 8)[::2] == spread(items, 4)
    assert spread(items, None) == spread(items, 100) == items


def test_embed_folder_encodes_each_image_once_in_path_order(tmp_path):
    written = imagenet_like(tmp_path)
    model = StubEncoder()
    table, skipped = embed_folder(model, tmp_path, batch_size=3, threads=2)
    assert table["id"].tolist() == sorted(written) and not skipped
    expected = model.encode(np.stack([encoder_input(written[rel], 16) for rel in sorted(written)]))
    np.testing.assert_allclose(np.stack(table["z"]), expected)
    assert model.batches == [3, 1, 4]  # two batches of the folder, then the check above
    for batch_size, threads in ((1, 1), (4, 3)):  # neither changes the result
        again, _ = embed_folder(StubEncoder(), tmp_path, batch_size=batch_size, threads=threads)
        assert again["id"].tolist() == table["id"].tolist()
        np.testing.assert_array_equal(np.stack(again["z"]), np.stack(table["z"]))
    limited, _ = embed_folder(StubEncoder(), tmp_path, limit=2)
    assert limited["id"].tolist() == ["n01/n01_10.jpg", "n02/n02_7.JPEG"]  # items 0 and 2 of 4


def test_unreadable_images_are_skipped_up_to_the_bad_fraction(tmp_path, caplog):
    imagenet_like(tmp_path)
    broken = tmp_path / "n02" / "n02_9.JPEG"
    broken.write_bytes(b"\xff\xd8\xff truncated JPEG")
    table, skipped = embed_folder(StubEncoder(), tmp_path, max_bad_fraction=0.2, batch_size=2)
    assert "n02/n02_9.JPEG" not in table["id"].tolist() and len(table) == 4
    assert len(skipped) == 1 and f"{broken}: unreadable or corrupt file" in skipped[0]
    assert f"skipped: {broken}" in caplog.text
    with pytest.raises(SynthsodError) as err:  # 1 of 5 is more than 10 %
        embed_folder(StubEncoder(), tmp_path, max_bad_fraction=0.1, name="bigbigan.sources.imagenet-train")
    message = str(err.value)
    assert message.startswith("bigbigan.sources.imagenet-train: 1 of 5 images in")
    assert "more than max_bad_fraction 10.0%" in message and str(broken) in message


def test_embed_folder_with_the_module_equals_embed_dataset_of_the_same_images(tiny, tmp_path):
    written = imagenet_like(tmp_path / "train")
    table, _ = embed_folder(tiny, tmp_path / "train", batch_size=2)
    manifest = pd.DataFrame({"id": sorted(written), "image": [str(tmp_path / "train" / r) for r in sorted(written)]})
    dataset = embed_dataset(tiny, manifest, batch_size=3)
    assert table["id"].tolist() == dataset["id"].tolist()
    np.testing.assert_allclose(np.stack(table["z"]), np.stack(dataset["z"]), rtol=1e-5, atol=1e-5)
    assert np.stack(table["z"]).shape == (4, 120) and np.stack(table["z"]).dtype == np.float32


def test_embed_script_encodes_a_source_folder(tiny_dir, tmp_path):
    imagenet_like(tmp_path / "train")
    (tmp_path / "train" / "n02" / "bad.jpg").write_bytes(b"not a JPEG")
    out, log = tmp_path / "bigbigan" / "embeddings.parquet", tmp_path / "embed.log"
    source = {"images": str(tmp_path / "train"), "limit": None, "max_bad_fraction": 0.25, "threads": 2}
    driver = textwrap.dedent(f"""
        import runpy, sys
        from types import SimpleNamespace as ns
        smk = ns(input=ns(images={source["images"]!r}), output=ns(embeddings={str(out)!r}), log=[{str(log)!r}],
                 threads=2, wildcards=ns(dataset="imagenet-train"),
                 params=ns(generator={{"weights": {str(tiny_dir)!r}}}, embed={{"batch_size": 2, "source": {source!r}}}))
        runpy.run_path({str(REPO / "workflow_scripts" / "bigbigan_embed.py")!r}, init_globals={{"snakemake": smk}})
        print("torch imported:", "torch" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "torch imported: False" in proc.stdout
    table = read_latent_table(out)  # the latent-table format: id and z only
    assert list(table.columns) == ["id", "z"]
    assert table["id"].tolist() == ["n01/n01_10.jpg", "n01/n01_2.jpeg", "n02/n02_7.JPEG", "n03/deeper/n03_1.png"]
    text = log.read_text()
    assert f"4 images of {source['images']} encoded to 120-d BigBiGAN z_mean" in text
    assert "1 unreadable skipped" in text and "bad.jpg: unreadable or corrupt file" in text


# --- the rule: a source is embedded from its folder, a run names it in latents.dataset ----------------


def _source_workdir(tmp_path: Path, images: Path | None) -> tuple[Path, Path]:
    """A working directory and a config (config.yaml + configs/test.yaml) with a BigBiGAN generator (a
    module directory with a saved_model.pb only: a dry run does not load it), the source imagenet-train
    and a BigBiGAN run sampling its embeddings at alpha 0."""
    pytest.importorskip("snakemake", reason="snakemake runs in the torch env")
    from tests.conftest import make_workdir, small_config

    module = tmp_path / "bigbigan-resnet50"
    module.mkdir()
    (module / "saved_model.pb").write_bytes(b"")
    np.save(tmp_path / "h_bg.npy", np.ones(120, np.float32))
    config = small_config()
    config["generators"]["bigbigan"] = {"model": "bigbigan", "weights": str(module)}
    config["bigbigan"] = {"batch_size": 8, "sources": {"imagenet-train": {"images": str(images), "threads": 2}}}
    config["runs"]["ebig-imagenet"] = {
        "generator": "bigbigan",
        "pipeline": None,
        "pairs": 4,
        "rows_per_shard": 4,
        "truncation": None,
        "latents": {"source": "inverted", "alpha": 0.0, "dataset": "imagenet-train"},
        "mask": {"method": "direction", "direction": str(tmp_path / "h_bg.npy"), "shift": 5.0},
        "filters": {"size": {"min": 0.0, "max": 0.5}},
    }
    workdir = make_workdir(tmp_path / "work", config)
    return workdir.path, workdir.configfile


def test_dry_run_embeds_the_source_folder_for_a_run_that_names_it(tmp_path):
    from tests.conftest import run_snakemake

    imagenet_like(tmp_path / "ImageNet" / "train")
    work, configfile = _source_workdir(tmp_path, tmp_path / "ImageNet" / "train")
    target = "results/synthetic/ebig-imagenet/manifest.json"
    result = run_snakemake(work, "-n", "--cores", "2", target, configfiles=(configfile,))
    assert result.returncode == 0, result.describe()
    out = result.output
    embed = out[out.index("rule bigbigan_embed:") :].split("\n\n")[0]
    assert "output: results/bigbigan/imagenet-train/embeddings.parquet" in embed, embed
    assert f"input: {tmp_path / 'ImageNet' / 'train'}" in embed and "manifest.parquet" not in embed, embed
    assert "threads: 2" in embed, embed
    assert "prepare_dataset" not in out  # no dataset is prepared for a source
    assert "results/bigbigan/imagenet-train/embeddings.parquet" in out[out.index("rule sample_bigbigan") :]


@pytest.mark.parametrize("case", ["missing", "collision"])
def test_a_missing_source_folder_or_a_name_clash_is_named(tmp_path, case):
    from tests.conftest import run_snakemake, write_yaml

    work, configfile = _source_workdir(tmp_path, tmp_path / "ImageNet" / "train")
    if case == "collision":
        imagenet_like(tmp_path / "ImageNet" / "train")
        config = yaml.safe_load(configfile.read_text())
        config["datasets"]["imagenet-train"] = config["datasets"]["DEMO-TR"]
        write_yaml(configfile, config)
    result = run_snakemake(
        work, "-n", "--cores", "2", "results/bigbigan/imagenet-train/embeddings.parquet", configfiles=(configfile,)
    )
    assert result.returncode != 0
    if case == "missing":
        want = f"bigbigan.sources.imagenet-train.images: folder {tmp_path / 'ImageNet' / 'train'} does not exist"
    else:
        want = "bigbigan.sources.imagenet-train: 'imagenet-train' is also a dataset under datasets:"
    assert want in result.output, result.describe()


# --- sampling: E-BigBiGAN's direction shift near encoder embeddings, to verified shards ---------


def test_bigbigan_run_samples_near_embeddings_into_verified_shards(tiny, tiny_dir, tmp_path):
    """The whole BigBiGAN path without torch: embeddings -> inverted latents + a direction -> shards."""
    from synthsod.directions.files import save_direction
    from synthsod.synthesis.runs import RunFiles, open_run, write_run_shard
    from synthsod.synthesis.shards import read_shard, verify_run, write_manifest

    embeddings = embed_dataset(tiny, pd.read_parquet(prepared_manifest(tmp_path / "data")))
    embeddings.to_parquet(tmp_path / "embeddings.parquet", index=False)
    save_direction(tmp_path / "h_bg.npy", np.random.default_rng(0).standard_normal(120))
    run = {
        "pairs": 4,
        "rows_per_shard": 2,
        "truncation": None,
        "classes": {},
        "latents": {"source": "inverted", "alpha": 0.2, "dataset": None},
        "mask": {"method": "direction", "threshold": 0.5, "direction": "h_bg", "shift": 5.0, "compare": "base"},
        "filters": {"components": {"fraction": 0.2, "connectivity": 4}, "size": None, "histogram": None, "dq": None},
        "image_format": "png",
        "jpeg_quality": 95,
        "batch_size": 3,
        "max_candidates_factor": 5,
        "seed": 0,
    }
    files = RunFiles(
        weights=str(tiny_dir), latents=str(tmp_path / "embeddings.parquet"), direction=str(tmp_path / "h_bg.npy")
    )
    sampler = open_run("bb", run, {"model": "bigbigan"}, files)
    run_dir = tmp_path / "run"
    for k in (0, 1):
        write_run_shard(
            sampler,
            k,
            2,
            files,
            {
                "shard": run_dir / f"shard-{k:05d}.parquet",
                "stats": run_dir / f"stats/{k}.json",
                "rejected": run_dir / f"rejected/{k}.parquet",
            },
        )
    write_manifest(run_dir, sorted(run_dir.glob("shard-*.parquet")), {"run": "bb"})
    assert verify_run(run_dir) == {"shards": 2, "rows": 4}
    rows = read_shard(run_dir / "shard-00000.parquet").to_pylist()
    assert all(r["generator"] == "bigbigan" and r["class"] is None and r["truncation"] is None for r in rows)
    assert all(r["direction"] == "h_bg" and r["shift"] == 5.0 and len(r["latent"]) == 120 for r in rows)
    table = np.stack(embeddings["z"])
    for r in rows:  # each latent lies near one embedding (alpha 0.2 noise)
        assert np.min(np.linalg.norm(table - np.asarray(r["latent"]), axis=1)) < 0.2 * np.sqrt(120) * 1.5
    assert "torch" not in sys.modules  # TensorFlow path: torch stays out
    # TensorFlow generating on the producer thread, PNG on 3 threads: the same bytes as one thread in turn
    alone = {name: tmp_path / "alone" / f"{name}.parquet" for name in ("shard", "stats", "rejected")}
    write_run_shard(sampler, 0, 2, files, alone, workers=1, overlap=False)
    overlapped = {name: tmp_path / "overlapped" / f"{name}.parquet" for name in ("shard", "stats", "rejected")}
    write_run_shard(sampler, 0, 2, files, overlapped, workers=3, overlap=True)
    for name in ("shard", "rejected"):
        first = (run_dir / f"{'shard-00000' if name == 'shard' else 'rejected/0'}.parquet").read_bytes()
        assert alone[name].read_bytes() == overlapped[name].read_bytes() == first, name


# --- the segmenting-direction search ranks user candidates without torch ------------------------


def test_direction_search_ranks_bigbigan_candidates_without_torch(tiny_dir, tmp_path):
    candidates = tmp_path / "candidates.npy"
    np.save(candidates, np.random.default_rng(0).standard_normal((5, 120)).astype(np.float32))
    out = tmp_path / "directions"
    outputs = {
        "ranking": out / "ranking.csv",
        "direction": out / "search.npy",
        "summary": out / "search.json",
        "figures": out / "top",
    }
    search = {
        "scale": 5.0,
        "samples": 3,
        "batch_size": 2,
        "steps": 5,
        "lr": 0.005,
        "discard_share": 0.99,
        "top_fraction": 0.5,
        "top": 2,
        "figure_samples": 2,
        "truncation": 0.4,
        "classes": {},
        "seed": 0,
    }
    driver = textwrap.dedent(f"""
        import runpy, sys
        from types import SimpleNamespace as ns
        smk = ns(input=ns(weights=[{str(tiny_dir / "saved_model.pb")!r}], candidates={str(candidates)!r}),
                 output=ns(**{ {k: str(v) for k, v in outputs.items()}!r}), log=[{str(tmp_path / "rank.log")!r}],
                 wildcards=ns(gen="bigbigan"),
                 params=ns(generator={{"model": "bigbigan", "weights": {str(tiny_dir)!r}}}, search={search!r}))
        runpy.run_path({str(REPO / "workflow_scripts" / "directions_rank.py")!r}, init_globals={{"snakemake": smk}})
        print("torch imported:", "torch" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", driver], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "torch imported: False" in proc.stdout
    ranking = pd.read_csv(outputs["ranking"])
    assert ranking["direction"].tolist() == list(range(5)) and ranking["chosen"].sum() == 1
    chosen = int(ranking.loc[ranking["chosen"], "direction"].iloc[0])
    direction = np.load(outputs["direction"])
    original = np.load(candidates)[chosen]
    assert np.allclose(np.abs(direction), np.abs(original / np.linalg.norm(original)), atol=1e-6)
    ranks = ranking["rank"].dropna().astype(int).tolist()
    assert sorted(p.name for p in outputs["figures"].iterdir()) == [f"rank-{r:02d}.png" for r in sorted(ranks)]
