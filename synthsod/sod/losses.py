"""Losses of the SOD trainings: F3Net's structure loss, BCE / CE, and the class-agnostic CAS / CACE losses.

``structure_loss`` (F3Net)
    Weighted BCE + weighted IoU on logits [N, 1, H, W] against masks in [0, 1], with the per-pixel
    weight ``w = 1 + 5 |avgpool31(m) - m|`` (31x31 mean, stride 1, zero padding 15, counted over the
    full window as F3Net's ``avg_pool2d`` does), so pixels near boundaries count up to 6x:

        wBCE = sum(w * bce) / sum(w),  wIoU = 1 - (sum(w p m) + 1) / (sum(w (p + m)) - sum(w p m) + 1)

    per image, then averaged. The official code passes ``reduce='none'`` to
    ``binary_cross_entropy_with_logits``; that legacy argument is truthy, so the BCE is already a
    scalar mean and the weighting of the BCE term does nothing there. Here the BCE is per pixel, as
    the paper describes.
``cas_loss`` (CAS paper, eq 1)
    On a softmax output s [N, M, H, W] and a binary mask, with regions r (foreground, background;
    a region without pixels is left out) and ŝ(r) the channel-wise mean of s over r:

        CAS = sum_i alpha * sum_{x in r_i} ||s(x) - ŝ(r_i)||^2 / |r_i|
              - (1 - alpha) * sum_{i != j} ||ŝ(r_i) - ŝ(r_j)||^2

    per image (the double sum runs over ordered pairs, as written), then averaged over the batch.
    Bounds, from s(x) lying on the probability simplex: a region's uniformer term is the variance
    mean ||s||^2 - ||ŝ||^2 <= 1 - 1/M (||s||^2 <= 1 at a vertex, ||ŝ||^2 >= 1/M), approached when its pixels
    spread evenly over the M vertices; a pair's distance ||ŝ(r_i) - ŝ(r_j)||^2 <= 2, approached at two
    distinct vertices, so the discriminator term of two regions (two ordered pairs) is at most 2 * 2 = 4.
    Hence, for two regions, CAS lies in [-4 (1 - alpha), 2 alpha (1 - 1/M)], i.e. [-4 (1 - alpha), alpha]
    for M = 2 (and [0, alpha (1 - 1/M)] for an image of one region); softmax outputs approach but never
    reach the ends. The paper's (alpha N, -(1 - alpha) N] bounds each term by 1 and so misses the ordered
    pairs' factor 2 and the pair distance's 2. The loss does not say which channel is salient:
    :func:`saliency_channel` picks it afterwards by correlation with validation masks. The channel count M
    is a setting of the training (``sod.<name>.cas.channels``, the paper's 2); :func:`check_output_channels`
    says what each loss accepts.
``cace_loss``
    The paper's class-agnostic cross entropy for binary segmentation, read as the minimum over the
    two label assignments of each image's mean BCE: min(BCE(p, y), BCE(p, 1 - y)). (Taken per pixel,
    as the formula's subscripts could suggest, the minimum would be 0 whenever p is 0 or 1 and the
    loss would teach nothing; the paper's remark that the arguments grow combinatorially with the
    number of classes points to label permutations per image.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from synthsod.errors import SynthsodError

STRUCTURE_WINDOW = 31
STRUCTURE_EDGE_WEIGHT = 5.0
CAS_ALPHA = 0.1  # the CAS paper's choice (its Table 7)


def _check(logits: torch.Tensor, masks: torch.Tensor, channels: int | None = 1) -> None:
    if logits.dim() != 4 or (channels is not None and logits.shape[1] != channels):
        raise SynthsodError(f"expected predictions [N, {channels or 'M'}, H, W], got {tuple(logits.shape)}")
    if masks.shape != (logits.shape[0], 1, *logits.shape[2:]):
        raise SynthsodError(f"expected masks [N, 1, H, W] matching {tuple(logits.shape)}, got {tuple(masks.shape)}")


def structure_weights(masks: torch.Tensor) -> torch.Tensor:
    """F3Net's boundary weight 1 + 5 |avgpool31(m) - m| for masks [N, 1, H, W]."""
    pooled = F.avg_pool2d(masks, STRUCTURE_WINDOW, stride=1, padding=STRUCTURE_WINDOW // 2)
    return 1 + STRUCTURE_EDGE_WEIGHT * (pooled - masks).abs()


def structure_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """F3Net's weighted BCE + weighted IoU (module docstring), averaged over the batch."""
    _check(logits, masks)
    weights = structure_weights(masks)
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    wbce = (weights * bce).sum(dim=(2, 3)) / weights.sum(dim=(2, 3))
    probs = torch.sigmoid(logits)
    inter = (probs * masks * weights).sum(dim=(2, 3))
    union = ((probs + masks) * weights).sum(dim=(2, 3))
    wiou = 1 - (inter + 1) / (union - inter + 1)
    return (wbce + wiou).mean()


def bce_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy on logits [N, 1, H, W]."""
    _check(logits, masks)
    return F.binary_cross_entropy_with_logits(logits, masks)


def partial_bce_loss(logits: torch.Tensor, masks: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
    """BCE on logits [N, 1, H, W] averaged over the annotated pixels (``visible`` = 1) only: the partial
    cross-entropy of point and scribble supervision. Unannotated pixels get no gradient; with no
    annotated pixel at all the loss is 0. ``visible=None`` is plain mean BCE."""
    if visible is None:
        return bce_loss(logits, masks)
    _check(logits, masks)
    if visible.shape != masks.shape:
        raise SynthsodError(f"visibility mask {tuple(visible.shape)} must match the masks {tuple(masks.shape)}")
    bce = F.binary_cross_entropy_with_logits(logits, masks, reduction="none")
    return (visible * bce).sum() / visible.sum().clamp(min=1)


def ce_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """2-class cross-entropy on logits [N, 2, H, W] (channel 1 = salient) against binary masks."""
    _check(logits, masks, channels=2)
    return F.cross_entropy(logits, (masks[:, 0] > 0.5).long())


def cas_loss(logits: torch.Tensor, masks: torch.Tensor, alpha: float = CAS_ALPHA) -> torch.Tensor:
    """The CAS loss (module docstring) on logits [N, M, H, W] (softmax over M) and binary masks."""
    _check(logits, masks, channels=None)
    if not 0.0 <= alpha <= 1.0:
        raise SynthsodError(f"CAS alpha must be in [0, 1], got {alpha}")
    s = torch.softmax(logits, dim=1).flatten(2)  # [N, M, P]
    regions = torch.cat([masks <= 0.5, masks > 0.5], dim=1).flatten(2).to(s.dtype)  # [N, 2, P]
    sizes = regions.sum(dim=2)  # [N, 2]
    present = sizes > 0
    means = torch.einsum("nmp,nrp->nrm", s, regions) / sizes.clamp_min(1)[..., None]  # ŝ(r) [N, 2, M]
    # uniformer: sum over each region's pixels of ||s(x) - ŝ(r)||^2 / |r|
    spread = ((s[:, None] - means[..., None]) ** 2).sum(dim=2)  # [N, 2, P]
    uniformer = ((spread * regions).sum(dim=2) / sizes.clamp_min(1) * present).sum(dim=1)
    # discriminator: ordered pairs of present regions (i != j); with two regions, twice the one distance
    both = present.all(dim=1).to(s.dtype)
    discriminator = 2 * ((means[:, 0] - means[:, 1]) ** 2).sum(dim=1) * both
    return (alpha * uniformer - (1 - alpha) * discriminator).mean()


def cace_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Class-agnostic BCE on logits [N, 1, H, W]: per image the smaller of BCE(p, y) and BCE(p, 1 - y)."""
    _check(logits, masks)
    as_labelled = F.binary_cross_entropy_with_logits(logits, masks, reduction="none").mean(dim=(1, 2, 3))
    flipped = F.binary_cross_entropy_with_logits(logits, 1 - masks, reduction="none").mean(dim=(1, 2, 3))
    return torch.minimum(as_labelled, flipped).mean()


def saliency_channel(probs: torch.Tensor, masks: torch.Tensor) -> int:
    """The channel of a CAS model's softmax [N, M, H, W] that correlates best with the masks."""
    _check(probs, masks, channels=None)
    x = probs.transpose(0, 1).flatten(1).double()  # [M, N*H*W]
    y = masks.flatten().double()
    x = x - x.mean(dim=1, keepdim=True)
    y = y - y.mean()
    denom = x.norm(dim=1) * y.norm()
    correlation = (x @ y) / denom.clamp_min(1e-12)
    return int(correlation.argmax())


LOSSES = {"structure": structure_loss, "bce": bce_loss, "ce": ce_loss, "cas": cas_loss, "cace": cace_loss}
OUTPUT_CHANNELS = {"structure": 1, "bce": 1, "ce": 2, "cas": 2, "cace": 1}  # the default (CAS: any M >= 2)


def check_output_channels(loss: str, channels: int) -> None:
    """Refuse a model output of ``channels`` logit maps that ``loss`` cannot train: CAS takes any M >= 2
    softmax channels, every other loss exactly :data:`OUTPUT_CHANNELS`."""
    if loss not in OUTPUT_CHANNELS:
        raise SynthsodError(f"unknown loss '{loss}'; choose one of {', '.join(LOSSES)}")
    if loss == "cas":
        if channels < 2:
            raise SynthsodError(f"the CAS loss needs M >= 2 softmax channels, got {channels}")
    elif channels != OUTPUT_CHANNELS[loss]:
        raise SynthsodError(f"loss '{loss}' needs {OUTPUT_CHANNELS[loss]} output channel(s), got {channels}")


__all__ = [
    "CAS_ALPHA",
    "LOSSES",
    "OUTPUT_CHANNELS",
    "bce_loss",
    "cace_loss",
    "cas_loss",
    "ce_loss",
    "check_output_channels",
    "partial_bce_loss",
    "saliency_channel",
    "structure_loss",
    "structure_weights",
]
