"""SOD losses against float64 references and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthsod.errors import SynthsodError
from synthsod.sod.losses import (
    bce_loss,
    cace_loss,
    cas_loss,
    ce_loss,
    check_output_channels,
    partial_bce_loss,
    saliency_channel,
    structure_loss,
    structure_weights,
)


def _masks_and_logits(seed=0, n=2, size=40):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, 1, size, size))
    masks[0, 0, 8:30, 5:25] = 1
    masks[1, 0, 20:, 10:] = 1
    masks[1, 0, 0, 0] = 0.5  # a soft pixel
    logits = rng.normal(0, 2, masks.shape)
    return masks, logits


def structure_reference(logits: np.ndarray, masks: np.ndarray) -> float:
    """F3Net's loss with per-pixel weights, written out with loops in float64."""
    n, _, h, w = masks.shape
    half = 15
    losses = []
    for i in range(n):
        m, x = masks[i, 0], logits[i, 0]
        padded = np.pad(m, half)  # zeros: avg_pool2d counts the padding in its mean
        weight = np.empty_like(m)
        for r in range(h):
            for c in range(w):
                weight[r, c] = 1 + 5 * abs(padded[r : r + 31, c : c + 31].sum() / 31**2 - m[r, c])
        p = 1 / (1 + np.exp(-x))
        bce = -(m * np.log(p) + (1 - m) * np.log(1 - p))
        wbce = (weight * bce).sum() / weight.sum()
        inter = (p * m * weight).sum()
        union = ((p + m) * weight).sum()
        losses.append(wbce + 1 - (inter + 1) / (union - inter + 1))
    return float(np.mean(losses))


def test_structure_loss_matches_a_float64_reference():
    masks, logits = _masks_and_logits()
    got = structure_loss(torch.from_numpy(logits), torch.from_numpy(masks)).item()
    assert got == pytest.approx(structure_reference(logits, masks), rel=1e-12)
    got32 = structure_loss(torch.from_numpy(logits).float(), torch.from_numpy(masks).float()).item()
    assert got32 == pytest.approx(structure_reference(logits, masks), rel=1e-5)


def test_structure_loss_weights_boundary_errors_per_pixel():
    """The BCE term is weighted per pixel (not F3Net's accidental plain mean): an error on a
    boundary pixel costs more than the same error far from it."""
    masks = torch.zeros(1, 1, 90, 90)
    masks[..., 20:70, 20:70] = 1
    weights = structure_weights(masks)
    assert weights[0, 0, 45, 45] == 1 and weights[0, 0, 0, 0] == 1  # pure object / pure background windows
    assert weights[0, 0, 20, 45] == pytest.approx(1 + 5 * (1 - 16 / 31))  # on the edge
    good = torch.where(masks > 0.5, 6.0, -6.0)
    near, far = good.clone(), good.clone()
    near[..., 20, 45] = -6.0  # wrong on the object's edge
    far[..., 45, 45] = -6.0  # wrong in the object's middle
    assert structure_loss(near, masks) > structure_loss(far, masks)
    assert bce_loss(near, masks) == pytest.approx(bce_loss(far, masks).item())  # plain BCE cannot tell


def test_ce_loss_is_two_class_cross_entropy():
    masks = torch.tensor([[[[0.0, 1.0]]]])
    logits = torch.tensor([[[[2.0, 0.0]], [[0.0, 1.0]]]])  # [1, 2, 1, 2]
    expected = (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))) / 2
    assert ce_loss(logits, masks).item() == pytest.approx(expected)
    with pytest.raises(SynthsodError, match=r"predictions \[N, 2, H, W\]"):
        ce_loss(torch.zeros(1, 1, 1, 2), masks)


def _two_region_logits(fg: tuple[float, float], bg: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1x4 image: 2 foreground pixels then 2 background pixels, softmax = fg / bg exactly."""
    masks = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]]]], dtype=torch.float64)
    probs = torch.tensor([fg, fg, bg, bg], dtype=torch.float64).T[None, :, None, :]  # [1, 2, 1, 4]
    return probs.log(), masks


def test_cas_loss_value_on_a_two_region_toy():
    logits, masks = _two_region_logits((0.2, 0.8), (0.9, 0.1))
    # uniform regions: the uniformer is 0; ||ŝ(fg) - ŝ(bg)||^2 = 0.7^2 + 0.7^2, counted for (fg, bg) and (bg, fg)
    assert cas_loss(logits, masks, alpha=0.1).item() == pytest.approx(-0.9 * 2 * 0.98)
    # a non-uniform foreground: s = (0.2, 0.8) and (0.4, 0.6) -> mean (0.3, 0.7), spread 2 x 0.02 / 2
    probs = torch.tensor([[0.2, 0.4, 0.9, 0.9], [0.8, 0.6, 0.1, 0.1]], dtype=torch.float64)[None, :, None, :]
    expected = 0.1 * 0.02 - 0.9 * 2 * (0.6**2 + 0.6**2)
    assert cas_loss(probs.log(), masks, alpha=0.1).item() == pytest.approx(expected)
    # one region only (empty ground truth): no discriminator term, only the uniformer
    assert cas_loss(probs.log(), torch.zeros_like(masks), alpha=0.1).item() == pytest.approx(
        0.1 * ((probs[0, :, 0] - probs[0, :, 0].mean(dim=1, keepdim=True)) ** 2).sum().item() / 4
    )


def test_cas_loss_gradient_on_a_two_region_toy():
    logits, masks = _two_region_logits((0.4, 0.6), (0.6, 0.4))
    jitter = torch.randn(logits.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits = (logits + 0.1 * jitter).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: cas_loss(x, masks, alpha=0.3), (logits,))
    # descending the loss separates the regions' descriptors (the discriminator term)
    loss = cas_loss(logits, masks, alpha=0.1)
    loss.backward()
    with torch.no_grad():
        stepped = logits - 0.5 * logits.grad
        before = torch.softmax(logits, 1)[0, 1, 0]
        after = torch.softmax(stepped, 1)[0, 1, 0]
    assert (after[:2].mean() - after[2:].mean()).abs() > (before[:2].mean() - before[2:].mean()).abs()
    assert cas_loss(stepped, masks, alpha=0.1) < loss


def test_cace_ignores_which_label_is_which():
    masks, logits = _masks_and_logits(seed=1)
    logits, masks = torch.from_numpy(logits), torch.from_numpy(masks)
    assert cace_loss(logits, masks).item() == pytest.approx(cace_loss(logits, 1 - masks).item())
    confident = torch.where(masks > 0.5, 5.0, -5.0).double()
    assert cace_loss(-confident, masks).item() == pytest.approx(bce_loss(confident, masks).item())
    per_image = [
        min(
            F.binary_cross_entropy_with_logits(logits[i], masks[i]).item(),
            F.binary_cross_entropy_with_logits(logits[i], 1 - masks[i]).item(),
        )
        for i in range(2)
    ]
    assert cace_loss(logits, masks).item() == pytest.approx(np.mean(per_image))


def test_saliency_channel_is_the_one_that_follows_the_masks():
    masks = torch.zeros(3, 1, 8, 8)
    masks[:, :, 2:6, 2:6] = 1
    salient = 0.8 * masks + 0.1 + 0.05 * torch.rand(3, 1, 8, 8)
    assert saliency_channel(torch.cat([1 - salient, salient], dim=1), masks) == 1
    assert saliency_channel(torch.cat([salient, 1 - salient], dim=1), masks) == 0


def test_partial_bce_takes_gradient_only_from_annotated_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 8, 8, requires_grad=True)
    masks = (torch.rand(2, 1, 8, 8) > 0.5).float()
    visible = torch.zeros_like(masks)
    visible[0, 0, 2, 3] = visible[1, 0, 5, 5] = visible[1, 0, 0, 7] = 1
    loss = partial_bce_loss(logits, masks, visible)
    (grad,) = torch.autograd.grad(loss, logits)
    assert (grad[visible == 0] == 0).all() and (grad[visible == 1] != 0).all()
    picked = visible.bool()
    expected = F.binary_cross_entropy_with_logits(logits[picked], masks[picked])  # the mean over the 3 points
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(partial_bce_loss(logits, masks), bce_loss(logits, masks))
    assert partial_bce_loss(logits, masks, torch.zeros_like(masks)).item() == 0.0


def _one_hot_logits(channel_map: torch.Tensor, channels: int, scale: float = 60.0) -> torch.Tensor:
    """Logits [1, M, H, W] whose softmax is (within e^-scale) the one-hot of ``channel_map`` [H, W]."""
    return (F.one_hot(channel_map, channels).permute(2, 0, 1)[None].double() * 2 - 1) * scale


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.5, 1.0])
def test_cas_loss_reaches_near_both_ends_of_its_range(alpha):
    """Two regions, M channels: CAS lies in [-4 (1 - alpha), 2 alpha (1 - 1/M)] ([-4 (1 - alpha), alpha] for M = 2)."""
    masks = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    masks[..., :, :4] = 1  # left half foreground
    columns = torch.arange(8).expand(8, 8)
    # lower end: each region constant at its own vertex -> uniformer 0, discriminator 2 x ||e0 - e1||^2 = 4
    separated = _one_hot_logits((columns < 4).long(), 2)
    assert cas_loss(separated, masks, alpha).item() == pytest.approx(-4 * (1 - alpha), abs=1e-9)
    # upper end: each region spread evenly over the M vertices, both with the same mean -> discriminator 0
    for m in (2, 4):
        spread = _one_hot_logits(torch.arange(64).reshape(8, 8) % m, m)  # every column pair holds all M
        assert cas_loss(spread, masks, alpha).item() == pytest.approx(2 * alpha * (1 - 1 / m), abs=1e-9)
    # and nothing in between leaves the range (random and extreme logits, batch of images)
    gen = torch.Generator().manual_seed(0)
    for m in (2, 3):
        for scale in (0.1, 3.0, 50.0):
            logits = torch.randn(16, m, 8, 8, generator=gen, dtype=torch.float64) * scale
            batch_masks = (torch.rand(16, 1, 8, 8, generator=gen) > 0.5).double()
            value = cas_loss(logits, batch_masks, alpha).item()
            assert -4 * (1 - alpha) - 1e-9 <= value <= 2 * alpha * (1 - 1 / m) + 1e-9


def test_output_channels_each_loss_accepts():
    check_output_channels("cas", 2)
    check_output_channels("cas", 5)
    check_output_channels("ce", 2)
    check_output_channels("structure", 1)
    with pytest.raises(SynthsodError, match="M >= 2"):
        check_output_channels("cas", 1)
    with pytest.raises(SynthsodError, match="loss 'ce' needs 2 output channel"):
        check_output_channels("ce", 3)
    with pytest.raises(SynthsodError, match="unknown loss 'dice'"):
        check_output_channels("dice", 1)
