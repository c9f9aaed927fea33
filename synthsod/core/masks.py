"""Overlap of binary masks, per image: the one IoU / Dice every stage reports (G_mask's held-out metrics,
the reference segmenter's audits)."""

from __future__ import annotations

import torch


def mask_overlap(pred: torch.Tensor, true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (IoU, Dice) [N] (float64) of masks [N, ...]; any non-zero value is foreground.

    An image whose two masks are both empty scores 1 on both (nothing to find, nothing found).
    """
    pred, true = pred.flatten(1).bool(), true.flatten(1).bool()
    inter = (pred & true).sum(1).double()
    union = (pred | true).sum(1).double()
    sizes = pred.sum(1).double() + true.sum(1).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    dice = torch.where(sizes > 0, 2 * inter / sizes.clamp(min=1), torch.ones_like(sizes))
    return iou, dice


__all__ = ["mask_overlap"]
