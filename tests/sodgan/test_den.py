"""DEN: the diffusion algebra, the bound's terms, learning to invert the tiny generator, VAE mode, resuming."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthsod.errors import SynthsodError
from synthsod.generators import create_generator, sample_latents
from synthsod.generators.tiny import write_tiny_biggan
from synthsod.sodgan.den import (
    DEN,
    DENConfig,
    DiffusionSchedule,
    build_den,
    fit_den,
    gaussian_kl,
    gaussian_nll,
    invert,
    load_den,
    reconstruction_error,
    train_den,
)

TRUNCATION = 0.6


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def generator(tmp_path_factory, one_thread):
    directory = tmp_path_factory.mktemp("tiny_den")
    write_tiny_biggan(directory, seed=0)
    return create_generator("tiny", str(directory))


def tiny_samples(generator, seed: int, n: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` images of the tiny generator at TRUNCATION (all classes) and their latents."""
    z, ids = sample_latents(seed, range(n), generator.z_dim, TRUNCATION, np.arange(generator.num_classes))
    return generator.generate(z, ids, TRUNCATION, with_features=False).images, z


# --- the forward diffusion -------------------------------------------------------------------------
def test_composing_the_one_step_gaussians_gives_the_closed_form_exactly():
    # x_t = sqrt(1 - b_t) x_{t-1} + sqrt(b_t) e_t: the mean coefficient and the variance obey
    # m_t = sqrt(1 - b_t) m_{t-1}, v_t = (1 - b_t) v_{t-1} + b_t from m_0 = 1, v_0 = 0.
    schedule = DiffusionSchedule(T=1000)
    m, v = torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    means, variances = [m], [v]
    for t in range(1, schedule.T + 1):
        beta = schedule.betas[t]
        m, v = torch.sqrt(1 - beta) * m, (1 - beta) * v + beta
        means.append(m)
        variances.append(v)
    abar = schedule.alphas_cumprod
    torch.testing.assert_close(torch.stack(means), abar.sqrt(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(torch.stack(variances), 1 - abar, rtol=1e-12, atol=1e-14)
    assert schedule.betas.dtype == torch.float64
    assert schedule.betas[1].item() == pytest.approx(1e-4) and schedule.betas[-1].item() == pytest.approx(0.02)


@pytest.mark.parametrize("t_end", [50, 300])
def test_iterated_forward_steps_match_the_closed_form_in_distribution(t_end):
    schedule = DiffusionSchedule(T=1000)
    rng = torch.Generator().manual_seed(t_end)
    m = 40_000  # samples per starting value
    x0 = torch.tensor([-1.0, -0.3, 0.5, 1.0], dtype=torch.float64).expand(m, 4)
    x = x0.clone()
    for t in range(1, t_end + 1):
        x = schedule.q_step(x, torch.full((m,), t), torch.randn(x.shape, generator=rng, dtype=torch.float64))
    t = torch.full((m,), t_end)
    mean, var = schedule.q_mean_variance(x0, t)
    # Sample means have standard error sqrt(var / m); sample variances var * sqrt(2 / (m - 1)) (Gaussian).
    # Five standard errors: a false alarm has probability ~1e-6 per value.
    mean_tol = 5 * math.sqrt(var[0, 0].item() / m)
    var_tol = 5 * var[0, 0].item() * math.sqrt(2 / (m - 1))
    assert torch.all((x.mean(0) - mean[0]).abs() < mean_tol), (x.mean(0), mean[0], mean_tol)
    assert torch.all((x.var(0) - var[0]).abs() < var_tol), (x.var(0), var[0], var_tol)
    # q_sample draws from the same closed form.
    direct = schedule.q_sample(x0, t, torch.randn(x0.shape, generator=rng, dtype=torch.float64))
    assert torch.all((direct.mean(0) - mean[0]).abs() < mean_tol)


def test_q_sample_at_t0_is_the_image():
    schedule = DiffusionSchedule(T=100)
    x0 = torch.randn(3, 3, 8, 8)
    assert torch.equal(schedule.q_sample(x0, torch.zeros(3, dtype=torch.long), torch.randn_like(x0)), x0)


def test_posterior_is_the_product_of_the_two_gaussians():
    # q(x_{t-1} | x_t, x0) ~ q(x_t | x_{t-1}) q(x_{t-1} | x0): precisions add, means are precision-weighted.
    schedule = DiffusionSchedule(T=1000)
    t = torch.arange(2, 1001)
    x0, xt = torch.randn(len(t), 5, dtype=torch.float64), torch.randn(len(t), 5, dtype=torch.float64)
    beta, abar_prev = schedule.betas[t, None], schedule.alphas_cumprod[t - 1, None]
    precision = 1 / (1 - abar_prev) + (1 - beta) / beta
    expected_mean = (abar_prev.sqrt() * x0 / (1 - abar_prev) + (1 - beta).sqrt() * xt / beta) / precision
    mean, var = schedule.posterior_mean_variance(x0, xt, t)
    torch.testing.assert_close(mean, expected_mean, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(var, (1 / precision).expand_as(var), rtol=1e-9, atol=1e-15)
    # t = 1: x0 is known exactly.
    mean1, var1 = schedule.posterior_mean_variance(x0[:1], xt[:1], torch.tensor([1]))
    torch.testing.assert_close(mean1, x0[:1])
    assert torch.all(var1 == 0)


# --- Gaussian helpers and the bound --------------------------------------------------------------
def test_gaussian_kl_on_known_gaussians():
    zero = torch.zeros(())
    assert gaussian_kl(zero, zero, zero, zero).item() == 0.0
    assert gaussian_kl(torch.tensor(1.0), zero, zero, zero).item() == pytest.approx(0.5)
    s1, s2 = 0.5, 2.0  # KL(N(0, s1^2) || N(0, s2^2)) = log(s2 / s1) + s1^2 / (2 s2^2) - 1/2
    kl = gaussian_kl(zero, torch.tensor(2 * math.log(s1)), zero, torch.tensor(2 * math.log(s2)))
    assert kl.item() == pytest.approx(math.log(s2 / s1) + s1**2 / (2 * s2**2) - 0.5, rel=1e-6)
    # Against torch.distributions, elementwise and broadcasting.
    m1, m2 = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    lv1, lv2 = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(m1, (0.5 * lv1).exp()), torch.distributions.Normal(m2, (0.5 * lv2).exp())
    )
    torch.testing.assert_close(gaussian_kl(m1, lv1, m2, lv2), expected)
    x = torch.randn(7, dtype=torch.float64)
    torch.testing.assert_close(gaussian_nll(x, m2, lv2), -torch.distributions.Normal(m2, (0.5 * lv2).exp()).log_prob(x))


def test_bound_terms_are_the_explicit_kl_and_decoder_nll():
    schedule = DiffusionSchedule(T=1000)
    log_variance = schedule.posterior_log_variance_clipped + 0.3 * torch.randn(1001, dtype=torch.float64)
    t = torch.tensor([1, 2, 10, 300, 1000, 0])
    x0 = torch.rand(6, 3, 4, 4, dtype=torch.float64) * 2 - 1
    x0_hat = torch.rand(6, 3, 4, 4, dtype=torch.float64) * 2 - 1
    xt = schedule.q_sample(x0, t, torch.randn_like(x0))
    terms = schedule.loss_terms(x0, x0_hat, t, log_variance)
    true_mean, true_var = schedule.posterior_mean_variance(x0, xt, t)
    model_mean, _ = schedule.posterior_mean_variance(x0_hat, xt, t)
    model_logvar = log_variance[t].reshape(-1, 1, 1, 1).expand_as(x0)
    for i in range(len(t)):
        if t[i] > 1:
            expected = gaussian_kl(true_mean[i], true_var[i].log(), model_mean[i], model_logvar[i]).sum()
        else:  # the decoder: -log N(x0; x0_hat, sigma_1^2); t = 0 (the clean input) uses sigma_1 as well
            expected = gaussian_nll(x0[i], x0_hat[i], log_variance[1].expand_as(x0[i])).sum()
        assert terms[i].item() == pytest.approx(expected.item(), rel=1e-9), int(t[i])
    assert torch.all(schedule.prior_kl(x0) >= 0) and torch.all(schedule.prior_kl(x0) < 1e-3 * x0[0].numel())


def test_elbo_weighting_coefficients_are_finite_and_positive():
    den = DEN(z_dim=8, num_classes=5, truncation=TRUNCATION, backbone="mobilenetv3_small_050", T=1000)
    schedule = den.schedule
    init = den.log_variance.detach().double()
    torch.testing.assert_close(init[2:], schedule.posterior_variance[2:].log(), rtol=1e-6, atol=1e-6)
    assert init[1] == init[2] == init[0]  # beta_tilde_1 = 0: clipped to beta_tilde_2
    coefficients = schedule.elbo_coefficients(init)
    assert torch.all(torch.isfinite(coefficients)) and torch.all(coefficients > 0)
    # At the init sigma_t^2 = beta_tilde_t the squared-error weight spans orders of magnitude across t:
    # why "simple" (unweighted) is the default.
    assert coefficients.max() / coefficients[2:].min() > 100


def test_config_is_validated():
    with pytest.raises(SynthsodError, match="mode"):
        DENConfig(mode="gan")
    with pytest.raises(SynthsodError, match="weighting"):
        DENConfig(weighting="snr")
    with pytest.raises(SynthsodError, match="max_t_fraction"):
        DENConfig(max_t_fraction=1.5)
    with pytest.raises(SynthsodError, match="batch_size"):
        DENConfig(batch_size=0)
    assert DENConfig(T=1000, max_t_fraction=0.3).t_max == 300


# --- learning -------------------------------------------------------------------------------------
def test_den_learns_to_invert_the_tiny_generator(generator, capsys):
    train, _ = tiny_samples(generator, seed=0, n=64)
    held_out, _ = tiny_samples(generator, seed=1, n=16)
    cfg = DENConfig(steps=60, batch_size=16, adv_weight=0.0, checkpoint_every=1000)
    untrained = invert(
        build_den(generator, cfg, TRUNCATION, seed=0), generator, held_out, truncation=TRUNCATION, refine_steps=0
    )
    frozen = {k: v.clone() for k, v in generator.net.state_dict().items()}
    started = time.perf_counter()
    den, metrics = fit_den(generator, train, cfg, truncation=TRUNCATION, seed=0)
    train_s = time.perf_counter() - started
    # Gradients went through G to E only: G's weights are untouched and hold no gradients.
    assert all(torch.equal(v, frozen[k]) for k, v in generator.net.state_dict().items())
    assert all(p.grad is None for p in generator.net.parameters())
    trained = invert(den, generator, held_out, truncation=TRUNCATION, refine_steps=0)
    refined = invert(den, generator, held_out, truncation=TRUNCATION, refine_steps=20)
    mean_image = ((held_out - train.mean(0, keepdim=True)) ** 2).flatten(1).mean(1)
    report = (
        f"DEN held-out MSE: untrained {untrained.encoder_error.mean():.4f},"
        f" trained {trained.encoder_error.mean():.4f} (train-set mean image {mean_image.mean():.4f}),"
        f" refined {refined.recon_error.mean():.4f};"
        f" {cfg.steps} steps in {train_s:.1f} s; final metrics {metrics}"
    )
    with capsys.disabled():
        print("\n" + report)
    assert np.all(np.isfinite(trained.encoder_error))
    assert trained.encoder_error.mean() < 0.7 * untrained.encoder_error.mean(), report
    assert trained.encoder_error.mean() < mean_image.mean().item(), report
    # Refinement starts from the encoder's z (encoder_error is the same) and only keeps improvements.
    np.testing.assert_allclose(refined.encoder_error, trained.encoder_error, rtol=1e-5)
    assert np.all(refined.recon_error <= refined.encoder_error + 1e-6)
    assert refined.recon_error.mean() < 0.6 * trained.encoder_error.mean(), report
    # The reported errors are what G produces from the returned latents and classes.
    for result in (trained, refined):
        assert result.z.dtype == np.float32 and result.z.shape == (16, generator.z_dim)
        assert result.class_id.dtype == np.int64 and np.all((0 <= result.class_id) & (result.class_id < 1000))
        assert np.abs(result.z).max() <= 2 * TRUNCATION + 1e-6
        errors = reconstruction_error(generator, result.z, result.class_id, held_out, TRUNCATION)
        np.testing.assert_allclose(errors, result.recon_error, rtol=1e-4, atol=1e-7)


def test_the_generated_sample_term_pulls_the_encoder_towards_the_true_latents(generator):
    # Pixel loss alone vs pixel loss + the generated-sample term, same seed and steps: only the second
    # sees (z, G(z)) pairs, so its latents of held-out samples must lie closer to the true ones (at this
    # learning rate the pixel loss alone drifts to the bound), and it logs its own term.
    train, _ = tiny_samples(generator, seed=0, n=32)
    held_out, z_true = tiny_samples(generator, seed=1, n=32)
    errors, logged = {}, {}
    for weight in (0.0, 1.0):
        cfg = DENConfig(
            steps=40,
            batch_size=8,
            lr=3e-3,
            adv_weight=0.0,
            sample_weight=weight,
            checkpoint_every=1000,
            backbone="mobilenetv3_small_050",
        )
        den, metrics = fit_den(generator, train, cfg, truncation=TRUNCATION, seed=0)
        with torch.no_grad():
            z_hat = den.encode(held_out)[0]
        errors[weight] = ((z_hat - torch.as_tensor(z_true)) ** 2).mean().item()
        logged[weight] = "sample" in metrics
    assert logged == {0.0: False, 1.0: True}
    assert errors[1.0] < 0.5 * errors[0.0], errors


class _ItemDataset(torch.utils.data.Dataset):
    """Items like ManifestDataset's: {"id", "image"}."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict:
        return {"id": f"img{i}", "image": self.images[i]}


def test_vae_mode_trains_and_stays_in_the_bound(generator):
    images, _ = tiny_samples(generator, seed=2, n=8)
    cfg = DENConfig(
        mode="vae", steps=3, batch_size=4, adv_weight=0.01, checkpoint_every=1000, backbone="mobilenetv3_small_050"
    )
    # Items at half the generator's resolution are resized on the fly (as a ManifestDataset of another size).
    dataset = _ItemDataset(F.avg_pool2d(images, 2))
    den, metrics = fit_den(generator, dataset, cfg, truncation=TRUNCATION, seed=0)
    assert {"mse", "kl", "adv", "d_loss", "loss"} <= metrics.keys()
    assert all(math.isfinite(v) for k, v in metrics.items() if isinstance(v, float)), metrics
    mu, logits, logvar = den(images[:2], 0)
    assert mu.shape == logvar.shape == (2, generator.z_dim) and logits.shape == (2, generator.num_classes)
    result = invert(den, generator, dataset, truncation=TRUNCATION, batch_size=5, refine_steps=2)
    assert result.z.shape == (8, generator.z_dim) and np.all(np.isfinite(result.recon_error))
    assert np.abs(result.z).max() <= 2 * TRUNCATION + 1e-6


def _tensors(state) -> dict:
    """Flatten nested state dicts (models, optimisers) to {path: tensor or value}."""
    if isinstance(state, dict):
        return {f"{k}/{p}": v for k, sub in state.items() for p, v in _tensors(sub).items()}
    if isinstance(state, (list, tuple)):
        return {f"{i}/{p}": v for i, sub in enumerate(state) for p, v in _tensors(sub).items()}
    return {"": state}


def test_a_resumed_run_ends_with_the_same_weights(generator, tmp_path):
    images, _ = tiny_samples(generator, seed=3, n=8)
    # ELBO weighting and the discriminator on, so every part of the state is exercised.
    cfg = dict(
        steps=4,
        batch_size=4,
        adv_weight=0.01,
        weighting="elbo",
        sample_weight=0.5,
        checkpoint_every=2,
        backbone="mobilenetv3_small_050",
    )
    whole, split = tmp_path / "whole.pt", tmp_path / "split.pt"
    train_den(generator, images, DENConfig(**cfg), truncation=TRUNCATION, checkpoint_path=whole, seed=5)
    first = train_den(
        generator, images, DENConfig(**{**cfg, "steps": 2}), truncation=TRUNCATION, checkpoint_path=split, seed=5
    )
    second = train_den(generator, images, DENConfig(**cfg), truncation=TRUNCATION, checkpoint_path=split, seed=5)
    assert (first["resumed_from"], second["resumed_from"]) == (0, 2)
    a, b = torch.load(whole, weights_only=True), torch.load(split, weights_only=True)
    assert a["step"] == b["step"] == 4
    for part in ("den", "optimiser", "disc", "disc_optimiser"):
        ta, tb = _tensors(a[part]), _tensors(b[part])
        assert ta.keys() == tb.keys()
        for key in ta:
            if torch.is_tensor(ta[key]):
                assert torch.equal(ta[key], tb[key]), f"{part}/{key}"
            else:
                assert ta[key] == tb[key], f"{part}/{key}"
    assert a["state"]["metrics"] == b["state"]["metrics"]
    # A finished checkpoint trains nothing more; load_den rebuilds the trained encoder.
    again = train_den(generator, images, DENConfig(**cfg), truncation=TRUNCATION, checkpoint_path=split, seed=5)
    assert again["resumed_from"] == 4
    den = load_den(split, generator)
    for key, value in den.state_dict().items():
        assert torch.equal(value, a["den"][key]), key
    assert den.log_variance.grad is None and not den.training
