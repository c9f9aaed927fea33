"""The quality-aware discriminator D_q (SODGAN, Sec. 3.4): does this mask belong to this image?

D_q is a MobileNetV3 (timm, 4 input channels) followed by one linear logit. Its input is the image in
[-1, 1] concatenated with the mask mapped from [0, 1] to [-1, 1], so both channels groups share one
range and an empty mask is a strong signal rather than a zero input. Pairs smaller than ``input_size``
(224 by default, the ImageNet resolution the backbone is built for) are bilinearly upsampled first:
on the demo's 64x64 pairs MobileNetV3 reduces the maps to 2x2 and memorises its training pairs
(held-out AUC 0.5 against mismatched masks after 120 steps), at 224 it generalises (AUC 0.84).

Training (eq 12) is the standard GAN discriminator objective written as a binary cross-entropy on
logits: real pairs (x_real, y_real) from the few-shot set are labelled 1, synthetic pairs
(G(z+), G_mask(z+)) are labelled 0. G_mask's adversarial term (eq 11) uses the non-saturating form
-log D_q(G(z+), G_mask(z+)), which gives G_mask useful gradients while D_q still wins easily, unlike
the literal log(1 - D_q(...)) that saturates there.

After training, :meth:`QualityDiscriminator.score` (a probability per pair) filters the synthetic
pool: low scores mark image-mask pairs whose mask does not fit the image.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.backbones import create_backbone, output_features
from synthsod.core.checkpoint import seeded
from synthsod.core.gpu import autocast
from synthsod.core.io import atomic_path
from synthsod.errors import SynthsodError

DEFAULT_BACKBONE = "mobilenetv3_small_100"
DEFAULT_INPUT_SIZE = 224


def pair_input(images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] images in [-1, 1] and [N, 1, H, W] masks in [0, 1] -> [N, 4, H, W] in [-1, 1]."""
    if images.dim() != 4 or images.shape[1] != 3:
        raise SynthsodError(f"D_q expects images [N, 3, H, W], got {tuple(images.shape)}")
    if masks.dim() == 3:
        masks = masks[:, None]
    if masks.shape != (images.shape[0], 1, *images.shape[2:]):
        raise SynthsodError(
            f"D_q expects masks [N, 1, H, W] matching the images {tuple(images.shape)}, got {tuple(masks.shape)}"
        )
    return torch.cat([images, masks.to(images.dtype) * 2 - 1], dim=1)


class QualityDiscriminator(nn.Module):
    """MobileNetV3 on (image, mask) -> one logit: high when the mask fits the image."""

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        weights: str | None = None,
        input_size: int = DEFAULT_INPUT_SIZE,
        seed: int = 0,
    ):
        super().__init__()
        with seeded(seed):
            self.backbone = create_backbone(backbone, in_chans=4, weights=weights)
            self.classifier = nn.Linear(output_features(self.backbone), 1)
        self.input_size = int(input_size)

    def forward(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """Logits [N]."""
        x = pair_input(images, masks)
        if min(x.shape[-2:]) < self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.classifier(self.backbone(x))[:, 0]

    @torch.no_grad()
    def score(self, images: torch.Tensor, masks: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Probabilities [N] (float32, on CPU) that each pair is a good one; eval mode, batched."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        scores = []
        try:
            for lo in range(0, images.shape[0], batch_size):
                with autocast(device):
                    logits = self(images[lo : lo + batch_size].to(device), masks[lo : lo + batch_size].to(device))
                scores.append(torch.sigmoid(logits.float()).cpu())
        finally:
            self.train(was_training)
        return torch.cat(scores) if scores else torch.empty(0)


def save_dq(path: str | os.PathLike, dq: QualityDiscriminator | None, backbone: str, **info: Any) -> None:
    """Write a trained D_q (or the record that there is none) for :func:`load_dq`, atomically."""
    payload = {
        "state_dict": None if dq is None else dq.state_dict(),
        "backbone": backbone,
        "input_size": None if dq is None else dq.input_size,
        **info,
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(payload, file)


def load_dq(path: str | os.PathLike, device: torch.device | str = "cpu") -> QualityDiscriminator | None:
    """The D_q saved by :func:`save_dq` in eval mode, or None when G_mask was trained without one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload["state_dict"] is None:
            return None
        dq = QualityDiscriminator(payload["backbone"], None, payload["input_size"])
        dq.load_state_dict(payload["state_dict"])
    except (OSError, KeyError, TypeError, RuntimeError, EOFError) as err:
        raise SynthsodError(f"{path}: not a D_q checkpoint ({err})") from err
    return dq.to(device).eval()


def dq_step(
    dq: QualityDiscriminator,
    opt: torch.optim.Optimizer,
    real_images: torch.Tensor,
    real_masks: torch.Tensor,
    fake_images: torch.Tensor,
    fake_masks: torch.Tensor,
    mismatched: bool = False,
) -> float:
    """One update of D_q (eq 12): BCE with logits, real pairs -> 1, fake pairs -> 0; returns the loss.

    Real and fake pairs go through the network in one batch, so batch norm sees the same statistics for
    both and cannot tell them apart by batch alone. ``mismatched`` (our addition) also labels 0 each real
    image with the next real pair's mask: a matching-aware discriminator (GAN-CLS, Reed et al. 2016),
    which must check that the mask fits the image rather than only that it looks like a real mask.
    """
    device = next(dq.parameters()).device
    real_masks = _as_mask(real_masks)
    image_parts, mask_parts = [real_images, fake_images.detach()], [real_masks, _as_mask(fake_masks).detach()]
    negatives = fake_images.shape[0]
    if mismatched and real_images.shape[0] > 1:
        image_parts.append(real_images)
        mask_parts.append(real_masks.roll(1, dims=0))
        negatives += real_images.shape[0]
    images = torch.cat(image_parts).to(device)
    masks = torch.cat(mask_parts).to(device)
    labels = torch.cat([torch.ones(real_images.shape[0]), torch.zeros(negatives)]).to(device)
    dq.train()
    with autocast(device):
        logits = dq(images, masks)
    loss = F.binary_cross_entropy_with_logits(logits.float(), labels)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


def adversarial_loss(dq: QualityDiscriminator, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """G_mask's non-saturating term of eq 11: mean -log D_q(image, mask), differentiable in ``masks``.

    D_q runs in eval mode so that G_mask's update neither moves its batch-norm statistics nor depends on them.
    """
    was_training = dq.training
    dq.eval()
    try:
        with autocast(next(dq.parameters()).device):
            logits = dq(images, masks)
    finally:
        dq.train(was_training)
    return F.softplus(-logits.float()).mean()  # -log sigmoid(x)


def _as_mask(masks: torch.Tensor) -> torch.Tensor:
    return masks[:, None] if masks.dim() == 3 else masks


__all__ = [
    "DEFAULT_BACKBONE",
    "QualityDiscriminator",
    "adversarial_loss",
    "dq_step",
    "load_dq",
    "pair_input",
    "save_dq",
]
