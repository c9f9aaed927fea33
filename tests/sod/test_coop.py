"""Cooperative LVM + EBM: posterior inference (visible pixels only), one Algorithm-1 step, prediction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from synthsod.errors import SynthsodError
from synthsod.sod.coop.ebm import EnergyModel
from synthsod.sod.coop.model import (
    CoopConfig,
    binary_entropy,
    conditioned,
    coop_step,
    posterior_energy,
    predict,
    recover,
    warmup_weight,
)

SIZE = 16


class TinyLVM(nn.Module):
    """A small G_α(X, h): a 3x3 convolution of the image plus a per-pixel projection of h."""

    def __init__(self, latent_dim=8):
        super().__init__()
        self.latent_dim = latent_dim
        self.conv = nn.Conv2d(3, 1, 3, padding=1)
        self.latent = nn.Linear(latent_dim, SIZE * SIZE)

    def forward(self, images, h):
        return self.conv(images) + self.latent(h).view(-1, 1, SIZE, SIZE)


@pytest.fixture
def parts():
    torch.manual_seed(0)
    images = torch.randn(2, 3, SIZE, SIZE)
    targets = (images[:, :1] > 0).float()
    return TinyLVM(), EnergyModel(image_size=SIZE), images, targets


def test_recovery_takes_gradient_only_from_visible_pixels(parts):
    lvm, _, images, targets = parts
    visible = torch.zeros_like(targets)
    visible[..., :4, :4] = 1  # a scribble in one corner
    h = torch.randn(2, 8, requires_grad=True)

    def grad_for(target):
        (grad,) = torch.autograd.grad(posterior_energy(conditioned(lvm, images), target, h, 0.3, visible).sum(), h)
        return grad

    changed_hidden = targets.clone()
    changed_hidden[..., 8:, 8:] = 1 - changed_hidden[..., 8:, 8:]  # flip labels nobody annotated
    torch.testing.assert_close(grad_for(changed_hidden), grad_for(targets), rtol=0, atol=0)
    changed_visible = targets.clone()
    changed_visible[..., 0, 0] = 1 - changed_visible[..., 0, 0]
    assert not torch.allclose(grad_for(changed_visible), grad_for(targets))
    recovered = recover(
        lvm, parts[1], images, targets * visible, visible, CoopConfig(), generator=torch.Generator().manual_seed(0)
    )
    assert recovered.shape == targets.shape
    with pytest.raises(SynthsodError, match="visibility mask"):
        recover(lvm, parts[1], images, targets, visible[:, :, :8], CoopConfig())


def test_one_cooperative_step_moves_both_models_the_right_way(parts):
    lvm, ebm, images, targets = parts
    cfg = CoopConfig(ebm_steps=2, lvm_steps=2)
    opt_lvm = torch.optim.Adam(lvm.parameters(), lr=1e-2)
    opt_ebm = torch.optim.Adam(ebm.parameters(), lr=1e-3)
    before_lvm = [p.detach().clone() for p in lvm.parameters()]
    samples = torch.sigmoid(lvm(images, torch.randn(2, 8, generator=torch.Generator().manual_seed(9)))).detach()
    ebm.eval()  # fixed batch-norm statistics: the energy is then a function of each pair alone
    gap_before = (ebm(targets, images).mean() - ebm(samples, images).mean()).item()
    for step in range(5):
        losses = coop_step(
            lvm,
            ebm,
            opt_lvm,
            opt_ebm,
            images,
            targets,
            cfg,
            ce_weight=1.0,
            generator=torch.Generator().manual_seed(step),
        )
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before_lvm, lvm.parameters()))
    gap_after = (ebm(targets, images).mean() - ebm(samples, images).mean()).item()
    assert gap_after < gap_before  # eq 5: the data's energy falls relative to the samples'


def test_prediction_is_the_refined_mean_and_uncertainty_its_entropy(parts):
    lvm, ebm, images, _ = parts
    ebm.eval()
    cfg = CoopConfig(ebm_steps=0, draws=4)  # no revision: the prediction is the mean of the draws
    gen = torch.Generator().manual_seed(1)
    saliency, uncertainty = predict(lvm, ebm, images, cfg, generator=gen)
    gen = torch.Generator().manual_seed(1)
    draws = torch.stack([torch.sigmoid(lvm(images, torch.randn(2, 8, generator=gen))) for _ in range(4)]).detach()
    torch.testing.assert_close(saliency, draws.mean(0))
    torch.testing.assert_close(uncertainty, binary_entropy(draws.mean(0)))
    assert binary_entropy(torch.tensor(0.5)).item() == pytest.approx(0.6931, abs=1e-4)


def test_recovery_keeps_the_annotated_labels_and_fills_the_rest_from_the_models(parts):
    lvm, ebm, images, targets = parts
    visible = torch.zeros_like(targets)
    visible[..., ::5, ::5] = 1  # points
    recovered = recover(
        lvm, ebm.eval(), images, targets * visible, visible, CoopConfig(), generator=torch.Generator().manual_seed(0)
    )
    assert torch.equal(recovered[visible == 1], targets[visible == 1])
    hidden = recovered[visible == 0]
    assert 0 <= hidden.min() and hidden.max() <= 1 and hidden.std() > 0


def test_warmup_weight_falls_linearly_to_zero():
    cfg = CoopConfig(warmup_weight=2.0, warmup_fraction=0.5)
    assert [warmup_weight(cfg, step, 100) for step in (0, 25, 50, 80)] == pytest.approx([2.0, 1.0, 0.0, 0.0])
    assert warmup_weight(CoopConfig(), 99, 100) == pytest.approx(0.01)
    assert warmup_weight(CoopConfig(warmup_fraction=0.0), 0, 100) == 0.0
