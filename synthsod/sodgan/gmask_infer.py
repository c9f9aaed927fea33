"""G_mask after training: its file (save / load), mask prediction on generated images, and the IoU / Dice
of predicted masks against real ones (held-out evaluation)."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from synthsod.core.gpu import autocast
from synthsod.core.io import atomic_path
from synthsod.core.masks import mask_overlap
from synthsod.core.progress import progress
from synthsod.data.datasets import ManifestDataset
from synthsod.errors import SynthsodError
from synthsod.generators.latent_table import latent_arrays
from synthsod.sodgan.gmask import (
    GMask,
    foreground_probability,
)
from synthsod.sodgan.gmask_train import GMaskConfig

if TYPE_CHECKING:
    from synthsod.generators import BigGANGenerator


@torch.no_grad()
def save_gmask(path: str | os.PathLike, gmask: GMask, cfg: GMaskConfig, **info: Any) -> None:
    """Write a trained G_mask with what :func:`load_gmask` needs to rebuild it (atomically)."""
    payload = {
        "state_dict": gmask.state_dict(),
        "config": asdict(cfg),
        "resolution": gmask.resolution,
        "feature_shapes": dict(gmask.fusion.feature_shapes),
        **info,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(payload, file)


def load_gmask(path: str | os.PathLike, device: torch.device | str = "cpu") -> GMask:
    """The G_mask saved by :func:`save_gmask`, in eval mode on ``device``."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        cfg = payload["config"]
        gmask = GMask(
            payload["feature_shapes"],
            payload["resolution"],
            head=cfg["head"],
            attention=cfg["attention"],
            channels_per_tap=cfg["channels_per_tap"],
            reduction=cfg["reduction"],
        )
        gmask.load_state_dict(payload["state_dict"])
    except (OSError, KeyError, TypeError, RuntimeError, EOFError) as err:
        raise SynthsodError(f"{path}: not a G_mask checkpoint ({err})") from err
    return gmask.to(device).eval()


@torch.no_grad()  # inference: no autograd graph over the G_mask forward
def predict_masks(
    gmask: GMask, generator: BigGANGenerator, z, class_ids, truncation: float, batch_size: int = 16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate images and G_mask's foreground probabilities: ([N, 3, R, R] in [-1, 1], [N, 1, R, R]) on CPU."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not torch.is_tensor(z) else z.float()
    class_ids = torch.as_tensor(np.asarray(class_ids), dtype=torch.long)
    was_training = gmask.training
    gmask.eval()
    images, probs = [], []
    try:
        with progress(total=z.shape[0], desc="G_mask prediction", unit="image") as bar:
            for lo in range(0, z.shape[0], batch_size):
                out = generator.generate(z[lo : lo + batch_size], class_ids[lo : lo + batch_size], truncation)
                with autocast(generator.device):
                    logits = gmask(out.features)
                images.append(out.images.cpu())
                probs.append(foreground_probability(logits).cpu())
                bar.update(len(out.images))
    finally:
        gmask.train(was_training)
    return torch.cat(images), torch.cat(probs)


def mask_metrics(probs: torch.Tensor, targets: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Mean per-image IoU and Dice of ``probs > threshold`` against binary ``targets`` (both [N, 1, H, W]).

    An image whose prediction and target are both empty scores 1 on both (nothing to find, nothing found).
    """
    iou, dice = mask_overlap(probs > threshold, targets > 0.5)
    return {"iou": float(iou.mean()), "dice": float(dice.mean())}


def heldout_metrics(
    gmask: GMask,
    generator: BigGANGenerator,
    rows: pd.DataFrame,
    truncation: float,
) -> dict:
    """IoU / Dice of G_mask(G(z⁺)) against the real masks of latent-table ``rows`` (their images' masks)."""
    if rows.empty:
        return {}
    z, ids = latent_arrays(rows)
    _, probs = predict_masks(gmask, generator, z, ids, truncation)
    real = torch.stack([item["mask"] for item in ManifestDataset(rows, generator.resolution)])
    return {"pairs": len(rows), **mask_metrics(probs, real)}
