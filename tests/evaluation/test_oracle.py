"""The scene world's reference segmenter: IoU, fp16 files with sha256 checks, run audits, resumable training."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import synthsod.evaluation.oracle as oracle_module
from synthsod.core.masks import mask_overlap
from synthsod.data import scenes as world
from synthsod.errors import SynthsodError
from synthsod.evaluation.oracle import (
    OracleConfig,
    audit_inversions,
    audit_run,
    load_oracle,
    oracle_iou,
    oracle_masks,
    save_oracle,
    scene_tensors,
    train_oracle,
)
from synthsod.sod.predict import probabilities
from synthsod.sod.train import build_model
from synthsod.synthesis.shards import write_shard

pytestmark = pytest.mark.usefixtures("one_thread")

REPO = Path(__file__).resolve().parents[2]
SMALL_OPTIONS = {"base": 4, "depth": 2}


# --- IoU -------------------------------------------------------------------------------------------


def test_iou_per_image_with_empty_pairs_scoring_one():
    masks = torch.zeros(4, 4, 4, dtype=torch.bool)
    refs = torch.zeros(4, 4, 4, dtype=torch.bool)
    # 0: both empty -> 1 (nothing to find, nothing found)
    masks[1, :2] = True  # 1: disjoint halves -> 0
    refs[1, 2:] = True
    masks[2, :, :3] = True  # 2: 12 vs 8 pixels sharing 8 -> 8 / 12
    refs[2, :, 1:3] = True
    refs[3, 0, 0] = True  # 3: an empty mask against a non-empty reference -> 0
    assert mask_overlap(masks, refs)[0].tolist() == pytest.approx([1.0, 0.0, 8 / 12, 0.0])
    assert mask_overlap(refs, masks)[0].tolist() == pytest.approx([1.0, 0.0, 8 / 12, 0.0])  # symmetric
    # float and uint8 masks count as foreground where non-zero, like bool ones
    assert mask_overlap(masks.float(), (refs * 255).to(torch.uint8))[0].tolist() == pytest.approx(
        [1.0, 0.0, 8 / 12, 0.0]
    )


# --- a stub oracle: foreground where the image is red ---------------------------------------------


class RedOracle(torch.nn.Module):
    """A stand-in reference segmenter: foreground where the red channel is bright (a U-Net's CE output)."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        red = x[:, :1] * self.scale  # ImageNet-normalised red: > 0 for pixels above ~124
        return (torch.cat([-red, red], dim=1),)


SIDE = 16
OBJECT = (slice(4, 12), slice(4, 12))  # an 8 x 8 red square on black


def _image() -> np.ndarray:
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    image[OBJECT] = (255, 0, 0)
    return image


def _mask(rows: slice, cols: slice) -> np.ndarray:
    mask = np.zeros((SIDE, SIDE), bool)
    mask[rows, cols] = True
    return mask


# masks against the square, with their IoU
FULL = (_mask(*OBJECT), 1.0)
HALF = (_mask(slice(4, 8), slice(4, 12)), 0.5)  # half of it
QUARTER = (_mask(slice(4, 12), slice(6, 14)), 48 / 80)  # shifted 2 px: 48 shared of 80
OFF = (_mask(slice(0, 3), slice(0, 3)), 0.0)  # beside it


def _row(index: int, mask: np.ndarray, dq_score: float | None = None) -> dict:
    return {
        "id": f"run-{index:016d}",
        "image": _image(),
        "mask": mask,
        "seed": 0,
        "index": index,
        "generator": "scene",
        "class": 0,
        "truncation": 1.0,
        "latent": [0.0],
        "direction": None,
        "shift": None,
        "dq_score": dq_score,
        "mask_fraction": float(mask.mean()),
        "components": 1,
        "filters": ["components", "size"],
    }


def test_the_stub_oracle_segments_the_square():
    images = torch.from_numpy(_image()).permute(2, 0, 1)[None].float() / 127.5 - 1
    assert torch.equal(oracle_masks(RedOracle(), images)[0], torch.from_numpy(FULL[0]))
    assert oracle_iou(RedOracle(), images, torch.from_numpy(HALF[0])[None]).tolist() == [0.5]


def test_audit_run_scores_kept_pairs_and_splits_calibration_candidates_at_the_threshold(tmp_path):
    # the run's kept pairs, in two shards: IoU 1, 0.5 | 0
    write_shard(tmp_path / "shard-00000.parquet", [_row(0, FULL[0]), _row(1, HALF[0])])
    write_shard(tmp_path / "shard-00001.parquet", [_row(2, OFF[0])])
    # D_q's scored calibration candidates: a score at the threshold counts as kept (score >= threshold)
    candidates = [(0.9, FULL), (0.6, HALF), (0.6, QUARTER), (0.3, OFF), (0.1, OFF)]
    write_shard(tmp_path / "candidates.parquet", [_row(10 + i, m, s) for i, (s, (m, _)) in enumerate(candidates)])
    shards = [tmp_path / "shard-00000.parquet", tmp_path / "shard-00001.parquet"]

    audit = audit_run(RedOracle(), shards, tmp_path / "candidates.parquet", threshold=0.6)

    assert audit["kept_pairs"] == pytest.approx({"pairs": 3, "mean": 0.5, "median": 0.5, "share_above_0.5": 1 / 3})
    dq = audit["dq"]
    assert dq["threshold"] == 0.6
    kept, rejected = [1.0, 0.5, 48 / 80], [0.0, 0.0]
    assert dq["kept"] == pytest.approx(
        {"pairs": 3, "mean": np.mean(kept), "median": np.median(kept), "share_above_0.5": 2 / 3}
    )
    assert dq["rejected"] == pytest.approx({"pairs": 2, "mean": 0.0, "median": 0.0, "share_above_0.5": 0.0})
    assert dq["kept_minus_rejected"] == pytest.approx(np.mean(kept) - np.mean(rejected))
    scores, values = [s for s, _ in candidates], [v for _, (_, v) in candidates]
    assert dq["score_iou_correlation"] == pytest.approx(np.corrcoef(scores, values)[0, 1])

    # a threshold above every score: nothing kept, no difference to report
    high = audit_run(RedOracle(), shards, tmp_path / "candidates.parquet", threshold=0.95)["dq"]
    assert high["kept"] == {"pairs": 0} and high["rejected"]["pairs"] == 5 and high["kept_minus_rejected"] is None
    # without a calibration file (no D_q quantile): the kept pairs only
    assert set(audit_run(RedOracle(), shards)) == {"kept_pairs"}
    write_shard(tmp_path / "empty.parquet", [])
    assert audit_run(RedOracle(), [tmp_path / "empty.parquet"]) == {"kept_pairs": {"pairs": 0}}


# --- the file: fp16 on disk, float32 in memory, sha256-checked --------------------------------------


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("unet", "ce", SMALL_OPTIONS).eval()


def test_save_and_load_round_trip_in_fp16(small_model, tmp_path):
    config = OracleConfig(scenes=8, model_options=SMALL_OPTIONS)
    path = tmp_path / "oracle.pt"
    save_oracle(path, small_model, config)
    saved = torch.load(path, weights_only=True)
    assert saved["config"]["model_options"] == SMALL_OPTIONS and saved["config"]["scenes"] == 8
    floats = [v for v in saved["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically

    loaded = load_oracle(path, hashlib.sha256(path.read_bytes()).hexdigest())
    assert not loaded.training
    for name, value in loaded.state_dict().items():
        original = small_model.state_dict()[name]
        if original.is_floating_point():
            assert value.dtype == torch.float32, name
            assert torch.equal(value, original.half().float()), name  # exactly the fp16 values
        else:
            assert torch.equal(value, original), name
    images, _ = scene_tensors(0, "test", 4, 64)
    before, after = probabilities(small_model, images, 1), probabilities(loaded, images, 1)
    assert torch.allclose(before, after, atol=5e-3)  # fp16 weights: predictions within its precision
    assert torch.equal(oracle_masks(small_model, images), oracle_masks(loaded, images)) or (
        (oracle_masks(small_model, images) != oracle_masks(loaded, images)).float().mean() < 0.01
    )


def test_load_refuses_a_changed_file_and_files_that_are_no_oracle(small_model, tmp_path):
    path = tmp_path / "oracle.pt"
    save_oracle(path, small_model, OracleConfig(model_options=SMALL_OPTIONS))
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(SynthsodError, match=rf"{re.escape(str(path))}: sha256 differs"):
        load_oracle(path, "0" * 64)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one damaged byte
    path.write_bytes(bytes(data))
    with pytest.raises(SynthsodError, match=rf"{re.escape(str(path))}: sha256 differs"):
        load_oracle(path, good)

    not_torch = tmp_path / "notes.pt"
    not_torch.write_bytes(b"these are not weights\n" * 4)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"weight": torch.zeros(2)}, "config": {"model_options": SMALL_OPTIONS}}, other)
    no_config = tmp_path / "no_config.pt"
    torch.save({"weights": torch.zeros(2)}, no_config)
    for bad in (not_torch, other, no_config, tmp_path / "missing.pt"):
        with pytest.raises(SynthsodError, match=rf"{re.escape(str(bad))}: not a reference segmenter"):
            load_oracle(bad)


# --- training ----------------------------------------------------------------------------------------

TINY = OracleConfig(
    scenes=8,
    model_options=SMALL_OPTIONS,
    recipe={
        "optimizer": "adam",
        "lr": 0.003,
        "weight_decay": 0.0,
        "batch_size": 4,
        "steps": 4,
        "schedule": "constant",
        "sizes": [64],
        "checkpoint_every": 1,
    },
)


def test_scene_tensors_are_the_worlds_scenes_of_a_split():
    images, masks = scene_tensors(0, "oracle", 3, 64)
    assert images.shape == (3, 3, 64, 64) and masks.shape == (3, 1, 64, 64)
    for i, index in enumerate(world.split_indices("oracle", 3)):
        item = world.scene(0, index, 64)
        assert torch.equal(masks[i, 0], torch.from_numpy(item.mask).float())
        expected = torch.from_numpy(item.image).permute(2, 0, 1).float() / 127.5 - 1
        assert torch.allclose(images[i], expected, atol=1e-6)
    # the oracle range is none of the splits the workflow evaluates on
    assert not set(world.split_indices("oracle", 10)) & set(world.split_indices("test", 10))


def test_a_killed_oracle_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    uninterrupted = train_oracle(0, 64, TINY)
    assert not uninterrupted.training

    checkpoint = tmp_path / "oracle.ckpt"
    real_train_sod = oracle_module.train_sod

    def killed_after_step_2(*args, **kwargs):
        def stop(step, value):
            if step == 2:
                raise KeyboardInterrupt  # after the checkpoint of step 2 was written

        return real_train_sod(*args, on_step=stop, **kwargs)

    monkeypatch.setattr(oracle_module, "train_sod", killed_after_step_2)
    with pytest.raises(KeyboardInterrupt):
        train_oracle(0, 64, TINY, checkpoint)
    monkeypatch.undo()
    assert torch.load(checkpoint, weights_only=True)["step"] == 2

    resumed = train_oracle(0, 64, TINY, checkpoint)
    for (name, a), b in zip(uninterrupted.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    # another world gives other weights: the scenes are what it learns from
    other = train_oracle(1, 64, TINY)
    assert any(not torch.equal(a, b) for a, b in zip(uninterrupted.state_dict().values(), other.state_dict().values()))


# --- the shipped reference segmenter ------------------------------------------------------------------

SHIPPED_IOU = 0.85


def test_the_shipped_oracle_loads_with_its_sha256_and_segments_real_test_scenes():
    config = yaml.safe_load((REPO / "config.yaml").read_text())["scenes"]
    oracle = config["oracle"]
    path = REPO / (oracle["weights"] or "assets/scene-oracle/oracle.pt")
    if not path.is_file():
        pytest.skip(f"{path.relative_to(REPO)} is not shipped in this checkout (rule oracle_train trains one)")
    assert oracle["sha256"], "config.yaml ships the oracle without scenes.oracle.sha256"
    model = load_oracle(path, oracle["sha256"])
    images, masks = scene_tensors(config["seed"], "test", 200, config["size"])
    scores = oracle_iou(model, images, masks[:, 0] > 0.5)
    assert float(scores.mean()) > SHIPPED_IOU, f"mean IoU {float(scores.mean()):.3f} on 200 test scenes"


def test_inversion_audit_scores_latents_against_the_real_masks_beside_the_true_codes(tmp_path):
    # Inverted "perfectly" (the scenes' own codes and classes), the inversions' figure is the generator's
    # fidelity figure; with every class wrong, the class accuracy is 0 and the IoU changes.
    import pandas as pd

    from synthsod.generators import create_generator

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    spec, oracle = config["generators"]["scene"], config["scenes"]["oracle"]
    if not (REPO / spec["weights"]).is_dir() or not (REPO / oracle["weights"]).is_file():
        pytest.skip("the shipped scene generator or oracle is not in this checkout")
    generator = create_generator("scene", str(REPO / spec["weights"]))
    model = load_oracle(REPO / oracle["weights"], oracle["sha256"])
    images, masks = tmp_path / "images", tmp_path / "masks"
    world.write_duts_split(images, masks, seed=0, split="train", size=16)
    stems = sorted(p.stem for p in images.iterdir())
    classes, codes = zip(*(world.draw_code(0, world.scene_index(stem)) for stem in stems))
    latents = pd.DataFrame(
        {
            "id": stems,
            "image": [str(images / f"{s}.jpg") for s in stems],
            "mask": [str(masks / f"{s}.png") for s in stems],
            "z": list(codes),
            "class": classes,
            "truncation": 1.0,
        }
    )
    perfect = audit_inversions(model, generator, latents, seed=0)
    assert perfect["class_accuracy"] == 1.0 and perfect["inversions"]["pairs"] == 16
    assert perfect["inversions"] == pytest.approx(perfect["true_codes"])
    assert perfect["true_codes"]["mean"] > 0.4, perfect  # the shipped generator draws the objects where they are
    wrong = audit_inversions(model, generator, latents.assign(**{"class": (np.array(classes) + 1) % 8}), seed=0)
    assert wrong["class_accuracy"] == 0.0 and wrong["true_codes"] == pytest.approx(perfect["true_codes"])
    assert wrong["inversions"]["mean"] != pytest.approx(perfect["inversions"]["mean"])
    # images that are no scenes of the world: the inversions only
    renamed = latents.assign(id=[f"img{i}" for i in range(16)])
    assert set(audit_inversions(model, generator, renamed, seed=0)) == {"inversions"}
