"""The cooperative-saliency latent-variable model G_α(X, h)."""

from __future__ import annotations

import torch

from synthsod.sod.coop.lvm import LatentSaliencyModel


def test_lvm_maps_images_and_latents_to_logits_that_depend_on_the_latent():
    torch.manual_seed(0)
    lvm = LatentSaliencyModel().eval()
    images = torch.randn(2, 3, 64, 64)
    h = torch.randn(2, 8, requires_grad=True)
    logits = lvm(images, h)
    assert logits.shape == (2, 1, 64, 64)
    other = lvm(images, torch.randn(2, 8))
    assert not torch.allclose(logits, other)  # the latent changes the prediction
    (grad,) = torch.autograd.grad(logits.sum(), h)
    assert grad.abs().sum() > 0  # posterior Langevin on h needs this gradient
    assert lvm(images[:1], h[:1].detach()).shape == (1, 1, 64, 64)
