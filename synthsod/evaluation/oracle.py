"""The reference segmenter ("oracle") of the scene world: ground truth for images that have none.

Generated images carry no mask, so how good a run's masks are cannot be read off a benchmark. The scene
world can stand in: a U-Net trained on many labelled scenes (the world's ``oracle`` index range, disjoint
from every split) segments scenes almost perfectly, and its mask of a generated image is the reference a
run's mask is scored against (oracle IoU). Its own IoU on real test scenes is reported beside every oracle
figure, as the ceiling those figures can be read against. The weights ship with the project (fp16,
sha256-checked, like the scene generator); rule ``oracle_train`` retrains them.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import TensorDataset

from synthsod.core.io import atomic_path, file_sha256
from synthsod.core.masks import mask_overlap
from synthsod.data import scenes as world
from synthsod.data.datasets import ManifestDataset, image_to_tensor
from synthsod.errors import SynthsodError
from synthsod.sod.predict import probabilities
from synthsod.sod.train import Recipe, build_model, train_sod
from synthsod.synthesis.shards import iter_shard_rows

MODEL = "unet"
LOSS = "ce"
CHANNEL = 1  # the U-Net's foreground channel under the CE loss


@dataclass
class OracleConfig:
    """How the oracle trains; the defaults are the shipped model's run."""

    scenes: int = 12_000
    model_options: dict = field(default_factory=lambda: {"base": 32, "depth": 3})
    recipe: dict = field(
        default_factory=lambda: {
            "optimizer": "adam",
            "lr": 0.002,
            "weight_decay": 0.0,
            "batch_size": 32,
            "steps": 1000,
            "schedule": "step",
            "step_size": 750,
            "gamma": 0.2,
            "sizes": [64],
            "crop_fraction": 0.8,
            "checkpoint_every": 250,
        }
    )
    seed: int = 0


class _Items(TensorDataset):
    def __getitem__(self, index):
        image, mask = super().__getitem__(index)
        return {"image": image, "mask": mask}


def scene_tensors(seed: int, split: str, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images [N, 3, S, S] in [-1, 1] and masks [N, 1, S, S] of the first ``count`` scenes of ``split``."""
    images, masks, _, _ = world.scene_arrays(seed, world.split_indices(split, count), size)
    return torch.stack([image_to_tensor(image, size) for image in images]), torch.from_numpy(masks).float()[:, None]


def train_oracle(
    world_seed: int,
    size: int,
    config: OracleConfig,
    checkpoint_path: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """The oracle trained on ``config.scenes`` scenes (``size`` pixels) of the world's ``oracle`` range (resumable)."""
    images, masks = scene_tensors(world_seed, "oracle", config.scenes, size)
    model = train_sod(
        MODEL,
        LOSS,
        _Items(images, masks),
        Recipe(**config.recipe),
        seed=config.seed,
        model_kwargs=config.model_options,
        device=device,
        checkpoint_path=checkpoint_path,
        desc="reference segmenter",
    )
    return model.cpu()


def save_oracle(path: str | os.PathLike, model: torch.nn.Module, config: OracleConfig) -> None:
    """Weights in fp16 (the shipped file) with the settings that rebuild the model (atomically)."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save({"state_dict": state, "config": asdict(config)}, file)


# what torch.load's weights-only unpickler and load_state_dict raise on a file that holds no oracle
_NOT_AN_ORACLE = (OSError, EOFError, pickle.UnpicklingError, KeyError, IndexError, TypeError, ValueError, RuntimeError)


def load_oracle(path: str | os.PathLike, sha256: str | None = None) -> torch.nn.Module:
    """The oracle saved by :func:`save_oracle` (float32, eval mode); ``sha256`` is checked when given."""
    if not Path(path).is_file():
        raise SynthsodError(f"{path}: not a reference segmenter (no such file)")
    if sha256 is not None and file_sha256(path) != sha256:
        raise SynthsodError(f"{path}: sha256 differs from the configured one (a changed or damaged oracle)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(MODEL, LOSS, saved["config"]["model_options"])
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in saved["state_dict"].items()})
    except _NOT_AN_ORACLE as err:
        raise SynthsodError(f"{path}: not a reference segmenter ({err})") from err
    return model.eval()


@torch.no_grad()
def oracle_masks(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Boolean masks [N, H, W] of images [N, 3, H, W] in [-1, 1] (H, W multiples of 8)."""
    out = [
        probabilities(model, images[i : i + batch_size], channel=CHANNEL)[:, 0] > 0.5
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros((0, *images.shape[2:]), dtype=torch.bool)


def oracle_iou(model: torch.nn.Module, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-image IoU of ``masks`` [N, H, W] against the oracle's masks of ``images`` [N, 3, H, W]."""
    return mask_overlap(masks, oracle_masks(model, images))[0]


def _pairs_iou(model: torch.nn.Module, rows: list[dict]) -> np.ndarray:
    """Oracle IoU of each decoded shard row's mask (float64 [N])."""
    if not rows:
        return np.zeros(0)
    images = torch.stack([image_to_tensor(row["image"], row["image"].shape[0]) for row in rows])
    masks = torch.from_numpy(np.stack([row["mask"] for row in rows]))
    return oracle_iou(model, images, masks).numpy()


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson's r, or None where it is undefined (fewer than 3 values, or a constant one)."""
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _describe(values: np.ndarray) -> dict:
    if values.size == 0:
        return {"pairs": 0}
    return {
        "pairs": int(values.size),
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "share_above_0.5": float((values > 0.5).mean()),
    }


def audit_run(
    model: torch.nn.Module,
    shards: Iterable[str | os.PathLike],
    calibration: str | os.PathLike | None = None,
    threshold: float | None = None,
) -> dict:
    """Oracle IoU of a run's kept pairs, and of D_q's kept vs rejected calibration candidates.

    ``calibration`` (with the run's D_q ``threshold``) is the file of scored candidates that
    :func:`synthsod.synthesis.runs.calibrate` writes; they passed every cheaper filter, so the two sides
    differ by D_q's verdict alone."""
    audit = {"kept_pairs": _describe(_pairs_iou(model, list(iter_shard_rows(shards))))}
    if calibration is not None:
        rows = list(iter_shard_rows([calibration]))
        scores = np.array([row["dq_score"] for row in rows])
        values = _pairs_iou(model, rows)
        kept, rejected = values[scores >= threshold], values[scores < threshold]
        audit["dq"] = {
            "threshold": float(threshold),
            "kept": _describe(kept),
            "rejected": _describe(rejected),
            "kept_minus_rejected": float(kept.mean() - rejected.mean()) if kept.size and rejected.size else None,
            "score_iou_correlation": _correlation(scores, values),
        }
    return audit


@torch.no_grad()
def audit_inversions(model: torch.nn.Module, generator, latents: pd.DataFrame, seed: int) -> dict:
    """How well the DEN's inversions place the object: oracle IoU of ``G(z+, class)`` against each inverted
    image's real mask (the alignment of G_mask's few-shot pairs, so a ceiling on its held-out IoU).

    Where the images are scenes of world ``seed`` (ids from :func:`synthsod.data.scenes.scene_name`), the
    same figure for each scene's true ``(code, class)``, the generator's own fidelity (what a perfect
    inversion reaches), and the share of inversions with the scene's class, are reported beside it."""
    size = generator.resolution
    dataset = ManifestDataset(latents[["id", "image", "mask"]], size)
    masks = torch.stack([dataset[i]["mask"][0] > 0.5 for i in range(len(dataset))])

    truncation = float(latents["truncation"].iloc[0])

    def iou(z: np.ndarray, class_ids: np.ndarray, batch: int = 128) -> np.ndarray:
        images = torch.cat(
            [
                generator.generate(z[i : i + batch], class_ids[i : i + batch], truncation, with_features=False)
                .images.float()
                .cpu()
                for i in range(0, len(z), batch)
            ]
        )
        return oracle_iou(model, images, masks).numpy()

    class_ids = np.array(latents["class"], dtype=np.int64)
    audit = {"inversions": _describe(iou(np.stack(latents["z"].to_numpy()).astype(np.float32), class_ids))}
    indices = [world.scene_index(name) for name in latents["id"]]
    if all(index is not None for index in indices):
        true_class, codes = zip(*(world.draw_code(seed, index) for index in indices))
        audit["true_codes"] = _describe(iou(np.stack(codes), np.array(true_class)))
        audit["class_accuracy"] = float(np.mean(class_ids == np.array(true_class)))
    return audit


def audit_benchmark(model: torch.nn.Module, manifest: pd.DataFrame, size: int) -> dict:
    """The oracle's own IoU on real images with ground truth (the ceiling its other figures are read against)."""
    dataset = ManifestDataset(manifest, size)
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([it["image"] for it in items])
    masks = torch.stack([it["mask"][0] > 0.5 for it in items])
    return _describe(oracle_iou(model, images, masks).numpy())


__all__ = [
    "OracleConfig",
    "audit_benchmark",
    "audit_inversions",
    "audit_run",
    "load_oracle",
    "oracle_iou",
    "oracle_masks",
    "save_oracle",
    "scene_tensors",
    "train_oracle",
]
