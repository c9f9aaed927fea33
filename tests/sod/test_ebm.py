"""The cooperative-saliency EBM and its Langevin revision."""

from __future__ import annotations

import pytest
import torch

from synthsod.errors import SynthsodError
from synthsod.sod.coop.ebm import EnergyModel, langevin


def test_noise_free_langevin_on_a_quadratic_moves_to_its_minimum_at_the_expected_rate():
    """U(Y) = |Y - mu|^2 / (2 sigma^2): each noise-free step scales Y - mu by 1 - delta^2 / (2 sigma^2)."""
    mu, sigma, delta = torch.tensor([[0.3, -1.0, 2.0]]), 2.0, 0.4
    y0 = torch.tensor([[5.0, 5.0, -5.0]])

    def energy(y):
        return ((y - mu) ** 2).sum(dim=1) / (2 * sigma**2)

    for k in (1, 5, 20):
        y = langevin(energy, y0, steps=k, step_size=delta, noise=False)
        expected = mu + (1 - delta**2 / (2 * sigma**2)) ** k * (y0 - mu)
        torch.testing.assert_close(y, expected, rtol=1e-6, atol=1e-6)


def test_langevin_noise_has_the_step_size_scale_and_follows_the_generator():
    def flat(y):
        return (0 * y).sum(dim=1)  # depends on y, gradient zero

    y = langevin(flat, torch.zeros(1, 20000), steps=1, step_size=0.4, generator=torch.Generator().manual_seed(0))
    assert y.std().item() == pytest.approx(0.4, rel=0.03)  # no gradient: pure delta x N(0, I)
    again = langevin(flat, torch.zeros(1, 20000), steps=1, step_size=0.4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, again)


def test_energy_decreases_along_a_noise_free_revision_of_the_ebm():
    torch.manual_seed(0)
    ebm = EnergyModel(image_size=32).eval()
    images = torch.randn(2, 3, 32, 32)
    y = torch.rand(2, 1, 32, 32)
    energies = [ebm(y, images)]
    for _ in range(5):
        y = langevin(lambda s: ebm(s, images), y, steps=1, step_size=0.4, noise=False)
        energies.append(ebm(y, images))
    for before, after in zip(energies, energies[1:]):
        assert (after < before).all()


def test_ebm_shapes_and_checks():
    ebm = EnergyModel(image_size=32)
    assert ebm(torch.rand(3, 1, 32, 32), torch.randn(3, 3, 32, 32)).shape == (3,)
    with pytest.raises(SynthsodError, match="built for 32 px"):
        ebm(torch.rand(1, 1, 64, 64), torch.randn(1, 3, 64, 64))
    with pytest.raises(SynthsodError, match="multiple of 8"):
        EnergyModel(image_size=30)
