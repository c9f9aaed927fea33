"""Diffusion Embedding Network (DEN): invert real images into BigGAN's latent space (SODGAN, sec. 3.2).

Model
    DEN maps an image ``x0`` in [-1, 1] to a latent ``z+`` (``z_dim`` values, bounded like BigGAN's
    truncated prior: ``z = 2 * truncation * tanh(raw)``, so ``|z| <= 2 * truncation``) and class logits
    over the generator's classes. The frozen generator G turns them back into an image.

    It is read as a latent-variable model over images whose approximate posterior is the fixed
    Gaussian diffusion (linear betas, ``T`` steps, index t = 1..T; t = 0 is the clean image)::

        q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
        q(x_t | x_0)     = N(sqrt(abar_t) x_0, (1 - abar_t) I),        abar_t = prod_{s<=t} (1 - beta_s)

    and whose learned reverse transitions go through the generator. The encoder E(x_t, t) is a timm
    MobileNetV3 whose pooled features are modulated FiLM-style by a sinusoidal timestep embedding
    (``h * (1 + scale(t)) + shift(t)``); it predicts ``(z, logits)`` and::

        x0_hat(x_t, t)  = G(z, softmax(logits))
        p(x_{t-1}| x_t) = N(mu_tilde_t(x_t, x0_hat), sigma_t^2 I)
        mu_tilde_t(x_t, x0) = c0_t x0 + ct_t x_t,   c0_t = sqrt(abar_{t-1}) beta_t / (1 - abar_t),
                                                    ct_t = sqrt(1 - beta_t) (1 - abar_{t-1}) / (1 - abar_t)

    ``log sigma_t^2`` is one learned scalar per timestep (``DEN.log_variance``), initialised at the
    posterior variance ``beta_tilde_t = beta_t (1 - abar_{t-1}) / (1 - abar_t)``; ``beta_tilde_1 = 0``,
    so t = 1 starts at ``beta_tilde_2`` instead (the usual clipping).

Losses (per image, D = 3 R R image values; all reported per image value, in nats)
    Negative ELBO (eq. 4). Each image draws one t uniformly from 0..t_max (below), so (t_max + 1)
    times the batch mean of L_t is an unbiased estimate of the sum of the terms it covers::

        L_t (t > 1) = KL(q(x_{t-1} | x_t, x0) || p(x_{t-1} | x_t))
                    = 0.5 sum_pixels [log(sigma_t^2 / beta_tilde_t) + beta_tilde_t / sigma_t^2 - 1]
                      + c0_t^2 / (2 sigma_t^2) * ||x0_hat - x0||^2
        L_1         = -log N(x0; x0_hat, sigma_1^2 I)       (continuous Gaussian decoder; mu_tilde_1 = x0_hat)
        L_T+1       = KL(q(x_T | x0) || N(0, I))             (no parameters: reported, not trained)

    ``weighting="elbo"`` trains E on these terms as they are. Their coefficient on the squared error,
    ``c0_t^2 / (2 sigma_t^2)``, spans orders of magnitude across t (about 1/beta_t near t = 1), so a
    batch's gradient is dominated by whichever images drew a small t: high variance and a strong bias
    towards near-noise-free inputs. ``weighting="simple"`` (the default, DDPM's L_simple) drops the
    coefficients: E minimises ``mean_pixels (x0_hat - x0)^2`` at every t, which has the same minimiser
    per t, equal weight across noise levels and far lower gradient variance. The per-timestep
    variances then learn from the ELBO terms with ``x0_hat`` detached (the L_hybrid split of Nichol &
    Dhariwal 2021), so the bound stays computable in both modes. ``log sigma_t^2`` gets 10x the
    learning rate (Adam moves it by ~lr per step on a log scale); entry t = 0 is unused.

    Latent prior (our addition, weight ``latent_weight``; "den" mode)::

        L_E += latent_weight * mean_j z_j^2 / truncation^2

    twice the negative log-density of the Gaussian N(0, truncation^2 I) per latent value, up to
    constants (BigGAN's prior is that Gaussian truncated to the tanh bound). Without it E soon parks
    many latents at the bound (norm ~9 against ~6 for real samples, on the tiny generator) on a
    generic "mean image" latent, a poor start for the refinement below; with it the encoder's own
    error is no worse and refining from its z beats refining from z = 0 (see ``invert``).

    Generated-sample term (our addition, weight ``sample_weight``; 0 by default, the paper's DEN).
    Each step also draws a batch of ``(z, c)`` from the generator's prior (``truncation`` x the
    truncated normal, classes uniform) and asks E to recover them from the clean ``G(z, c)``::

        L_E += sample_weight * (mean_j (E_z(G(z, c)) - z_j)^2 / truncation^2 + CE(E_logits(G(z, c)), c))

    the encoder half of iGAN's hybrid inversion (Zhu et al., ECCV 2016). The pixel loss alone
    teaches E little about the class (any soft class vector is a valid input to G) or the layout (a
    misplaced object's pixel gradient is weak). In the default demo (the scene world, 300 steps, then 50
    refinement steps), weight 1 lifts the share of inversions with the scene's class from 0.23 to 0.63
    and the oracle IoU of ``G(z+)`` against the images' masks from 0.44 to 0.61 (0.67 with the scenes'
    true codes), and the refined pixel error falls from 0.040 to 0.027, while the encoder's own error
    does not improve (0.19 to 0.21): its z is a better start for the refinement. (Measured without the
    term on 300 inversions, with it on the 200 the demo now inverts.)

    Adversarial term (eq. 5), weight ``adv_weight`` (0 builds no discriminator at all). A small conv
    net D_r is trained alternately with the non-saturating GAN loss::

        L_D  = softplus(-D_r(x0)) + softplus(D_r(x0_hat.detach()))   (-log D_r(x) - log(1 - D_r(G(E(x)))))
        L_E += adv_weight * softplus(-D_r(x0_hat))                   (non-saturating generator side)

    Deviation: the paper's D_r is the GAN's own discriminator, kept fixed. BigGAN-deep's discriminator
    was never released (neither on TF-Hub nor in pytorch-pretrained-biggan), so D_r is trained here,
    with E, from scratch; ``configs/paper/sodgan.yaml`` says so too.

VAE ablation (``mode="vae"``, the paper's comparison; no diffusion, t = 0 always)
    E gives ``mu`` (bounded as above), ``log s^2`` and logits; ``z = mu + s * eps`` when training,
    ``mu`` at inference::

        L = mean_pixels (G(z, softmax(logits)) - x)^2 + beta_kl * KL(N(mu, s^2) || N(0, truncation^2 I)) / D

    With images in [-1, 1], ``beta_kl = 2 sigma_x^2`` for a Gaussian decoder of std ``sigma_x``.

Our reading / additions beyond the paper (each documented where it lives)
    * t is sampled from 0..``max_t_fraction * T`` only. E is a deterministic inverter: from an input
      that is mostly noise no latent can be recovered, those terms only pull ``z`` towards the mean
      image, and inference always sees a clean image. The bound is therefore truncated at t_max.
    * t = 0 (the clean image, which is what E sees at inference) is included in the sampled range
      with the decoder loss ``-log N(x0; x0_hat, sigma_1^2 I)``, so the encoder is trained on its
      inference input too (the t = 0 embedding would otherwise never be seen).
    * The adversarial term is applied to the same reconstructions ``G(E(x_t, t))`` (at t = 0 exactly
      eq. 5's ``G(E(x))``), which avoids a second pass through G.
    * The latent prior term above.
    * During training G receives ``softmax(logits)`` (its class embedding is linear, so any soft class
      vector is valid); the reported class is the argmax, and :func:`invert` uses its one-hot.
    * :func:`invert` optionally refines the encoder's ``z`` by gradient descent on the pixel error (a
      hybrid encoder + optimisation inversion, as in in-domain GAN inversion, Zhu et al. 2020).
      ``refine_steps=0`` is the paper's pure DEN.

Resumability: every step's randomness (batch, t, noise, eps) comes from ``step_generator(seed, step)``
and the weights' init from ``seed``, so a run resumed from a checkpoint ends with the same weights as an
uninterrupted one (bit-exact on CPU).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from synthsod.core.backbones import create_backbone
from synthsod.core.checkpoint import seeded, step_generator
from synthsod.core.gpu import autocast
from synthsod.core.io import atomic_path
from synthsod.core.prior import truncated_normal
from synthsod.core.progress import progress
from synthsod.core.training import TrainingLoop, same_settings
from synthsod.errors import SynthsodError
from synthsod.names import DEN_MODES

log = logging.getLogger(__name__)

MODES = DEN_MODES
WEIGHTINGS = ("simple", "elbo")
LOG_2PI = math.log(2 * math.pi)


# --- configuration --------------------------------------------------------------------------------
@dataclass
class DENConfig:
    """Training settings, the config's ``den:`` section (defaults equal the schema's, a test checks).

    ``max_t_fraction``: t is drawn from 0..round(max_t_fraction * T) (module docstring, "additions").
    ``latent_weight``: weight of the latent prior term ("den" mode; the VAE has its KL instead).
    ``sample_weight``: weight of the generated-sample term (module docstring; 0, the paper, builds none).
    The inversion's refinement settings are :func:`invert`'s arguments (``den.invert`` in the config).

    Measured on the tiny generator (64 or 200 training samples, held-out samples, one CPU thread):
    ``weighting="elbo"`` leaves the encoder at 2-4x the error of "simple" after 100 steps with most
    latents at the bound; ``latent_weight`` 0.1 (vs 0) makes refinement from the encoder's z reach
    0.017 instead of 0.062 MSE in 25 steps; ``refine_lr`` 0.05 beats 0.1 and 0.2 at 100 steps; the
    4x4 low-pass term did not help (0.0092 vs 0.0082 after 100 steps), hence off; ``adv_weight`` 0.01
    neither helped nor hurt there (and costs ~50 % more time per step) but is kept, as in the paper.
    """

    mode: str = "den"
    backbone: str = "mobilenetv3_small_100"
    backbone_weights: str | None = None
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    T: int = 1000
    max_t_fraction: float = 0.3
    weighting: str = "simple"
    adv_weight: float = 0.01
    beta_kl: float = 0.01
    checkpoint_every: int = 100
    latent_weight: float = 0.1
    sample_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SynthsodError(f"den.mode must be one of {MODES}, got {self.mode!r}")
        if self.weighting not in WEIGHTINGS:
            raise SynthsodError(f"den.weighting must be one of {WEIGHTINGS}, got {self.weighting!r}")
        if not 0.0 <= self.max_t_fraction <= 1.0:
            raise SynthsodError(f"den.max_t_fraction must be in [0, 1], got {self.max_t_fraction}")
        valid = dict(
            steps=self.steps >= 0,
            batch_size=self.batch_size > 0,
            lr=self.lr > 0,
            T=self.T > 1,
            checkpoint_every=self.checkpoint_every > 0,
            adv_weight=self.adv_weight >= 0,
            beta_kl=self.beta_kl >= 0,
            latent_weight=self.latent_weight >= 0,
            sample_weight=self.sample_weight >= 0,
        )
        bad = [name for name, ok in valid.items() if not ok]
        if bad:
            raise SynthsodError(f"den: invalid {', '.join(f'{n}={getattr(self, n)!r}' for n in bad)}")

    @property
    def t_max(self) -> int:
        return round(self.max_t_fraction * self.T)


# --- the diffusion ----------------------------------------------------------------------------------
def _gather(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``values[t]`` shaped [N, 1, 1, ...] to broadcast against ``like``, in ``like``'s dtype and device."""
    out = values.to(like.device)[t.to(like.device).long()].to(like.dtype)
    return out.reshape(-1, *([1] * (like.dim() - 1)))


def gaussian_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) in nats (broadcasting)."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise -log N(x; mean, exp(logvar)) in nats (continuous density)."""
    return 0.5 * (LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))


class DiffusionSchedule(nn.Module):
    """Linear beta schedule as float64 buffers indexed by t = 0..T (index 0: the clean image, beta_0 = 0)."""

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        super().__init__()
        self.T = T
        betas = torch.cat(
            [torch.zeros(1, dtype=torch.float64), torch.linspace(beta_start, beta_end, T, dtype=torch.float64)]
        )
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)  # abar_0 = 1
        abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        safe = torch.where(torch.arange(T + 1) == 0, torch.ones_like(alphas_cumprod), 1.0 - alphas_cumprod)
        posterior_variance = betas * (1.0 - abar_prev) / safe  # beta_tilde_t; 0 at t = 0, 1
        for name, value in dict(
            betas=betas,
            alphas_cumprod=alphas_cumprod,
            alphas_cumprod_prev=abar_prev,
            posterior_variance=posterior_variance,
            # beta_tilde_1 = 0: start sigma_1^2 at beta_tilde_2 (and t = 0 likewise).
            posterior_log_variance_clipped=torch.log(
                torch.cat([posterior_variance[2:3].repeat(2), posterior_variance[2:]])
            ),
            posterior_coef_x0=torch.sqrt(abar_prev) * betas / safe,
            posterior_coef_xt=torch.sqrt(1.0 - betas) * (1.0 - abar_prev) / safe,
        ).items():
            self.register_buffer(name, value, persistent=False)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """A draw of x_t ~ q(x_t | x0) = N(sqrt(abar_t) x0, (1 - abar_t) I); t = 0 gives x0."""
        abar = _gather(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1.0 - abar).sqrt() * noise

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One forward step: a draw of x_t ~ q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)."""
        beta = _gather(self.betas, t, x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise

    def q_mean_variance(self, x0: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_t | x0)."""
        abar = _gather(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0, (1.0 - abar).expand_as(x0)

    def posterior_mean_variance(
        self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of q(x_{t-1} | x_t, x0) for t >= 1 (variance 0 at t = 1)."""
        mean = _gather(self.posterior_coef_x0, t, x0) * x0 + _gather(self.posterior_coef_xt, t, xt) * xt
        return mean, _gather(self.posterior_variance, t, x0).expand_as(x0)

    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        """KL(q(x_T | x0) || N(0, I)) per image, summed over values (constant in the model's parameters)."""
        t = torch.full((x0.shape[0],), self.T, dtype=torch.long)
        mean, var = self.q_mean_variance(x0, t)
        kl = gaussian_kl(mean, var.log(), torch.zeros_like(mean), torch.zeros_like(mean))
        return kl.flatten(1).sum(1)

    def elbo_coefficients(self, log_variance: torch.Tensor) -> torch.Tensor:
        """[T + 1] weight of ||x0_hat - x0||^2 in L_t for sigma_t^2 = exp(log_variance[t]).

        ``c0_t^2 / (2 sigma_t^2)`` for t > 1 and ``1 / (2 sigma_1^2)`` for t <= 1 (the decoder term).
        """
        coef = self.posterior_coef_x0.to(log_variance.device).to(log_variance.dtype) ** 2
        coef = coef.clone()
        coef[:2] = 1.0
        return coef / (2.0 * torch.exp(log_variance))

    def loss_terms(
        self, x0: torch.Tensor, x0_hat: torch.Tensor, t: torch.Tensor, log_variance: torch.Tensor
    ) -> torch.Tensor:
        """Per-image bound term L_t in nats (summed over values): KL for t > 1, decoder NLL for t <= 1.

        ``log_variance`` is the [T + 1] vector of the model's log sigma_t^2 (entry 0 unused: the clean
        input t = 0 is scored with the decoder term and sigma_1).
        """
        logvar = _gather(log_variance, t.clamp(min=1), x0)  # t = 0 (clean input) shares sigma_1
        sq_err = ((x0_hat - x0) ** 2).flatten(1).sum(1)
        d = x0[0].numel()
        logvar_flat = logvar.flatten()
        decoder = 0.5 * d * (LOG_2PI + logvar_flat) + 0.5 * sq_err * torch.exp(-logvar_flat)
        # KL of two isotropic Gaussians whose means differ by c0_t (x0 - x0_hat) (see module docstring).
        post_logvar = torch.log(self.posterior_variance.to(x0.device)[t.clamp(min=2).to(x0.device)]).to(x0.dtype)
        coef = self.posterior_coef_x0.to(x0.device)[t.to(x0.device)].to(x0.dtype)
        kl = 0.5 * d * (
            logvar_flat - post_logvar + torch.exp(post_logvar - logvar_flat) - 1.0
        ) + 0.5 * coef**2 * sq_err * torch.exp(-logvar_flat)
        return torch.where(t.to(x0.device) > 1, kl, decoder)


# --- the network --------------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding [N, dim] of integer timesteps (transformer / DDPM style)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _feature_dim(backbone: nn.Module, in_chans: int = 3) -> int:
    was_training = backbone.training
    with torch.no_grad():
        dim = backbone.eval()(torch.zeros(1, in_chans, 32, 32)).shape[1]
    backbone.train(was_training)
    return dim


class DEN(nn.Module):
    """E(x_t, t) -> (z, class_logits) ("den") or (mu, class_logits, log s^2) ("vae"); see the module docstring."""

    def __init__(
        self,
        z_dim: int,
        num_classes: int,
        truncation: float,
        mode: str = "den",
        backbone: str = "mobilenetv3_small_100",
        backbone_weights: str | None = None,
        T: int = 1000,
        time_dim: int = 128,
    ):
        super().__init__()
        if mode not in MODES:
            raise SynthsodError(f"DEN mode must be one of {MODES}, got {mode!r}")
        self.mode, self.truncation, self.z_dim, self.time_dim = mode, float(truncation), z_dim, time_dim
        self.bound = 2.0 * float(truncation)  # BigGAN's truncated normal lives in [-2, 2] * truncation
        self.backbone = create_backbone(backbone, in_chans=3, weights=backbone_weights)
        features = _feature_dim(self.backbone)
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, 4 * time_dim), nn.SiLU(), nn.Linear(4 * time_dim, 2 * features)
        )
        nn.init.zeros_(self.time_mlp[-1].weight)  # FiLM starts as the identity
        nn.init.zeros_(self.time_mlp[-1].bias)
        self.z_head = nn.Linear(features, z_dim)
        self.class_head = nn.Linear(features, num_classes)
        nn.init.zeros_(self.class_head.weight)  # start from the uniform class vector
        nn.init.zeros_(self.class_head.bias)
        if mode == "vae":
            self.logvar_head = nn.Linear(features, z_dim)
            nn.init.zeros_(self.logvar_head.weight)
            nn.init.constant_(self.logvar_head.bias, 2 * math.log(truncation) - 4.0)  # s = truncation / e^2
        self.schedule = DiffusionSchedule(T)
        # Sigma_theta: one learned log-variance per timestep (index t = 0..T), init at beta_tilde_t.
        self.log_variance = nn.Parameter(self.schedule.posterior_log_variance_clipped.float().clone())

    def forward(self, x: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, ...]:
        t = torch.as_tensor(t, device=x.device).long().expand(x.shape[0])
        h = self.backbone(x)
        scale, shift = self.time_mlp(timestep_embedding(t, self.time_dim).to(h.dtype)).chunk(2, dim=1)
        h = h * (1.0 + scale) + shift
        z = self.bound * torch.tanh(self.z_head(h))
        if self.mode == "vae":
            return z, self.class_head(h), self.logvar_head(h).clamp(-20.0, 2.0 * math.log(self.bound))
        return z, self.class_head(h)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, class_logits) of clean images (t = 0; the mean mu in vae mode)."""
        z, logits = self(x, 0)[:2]
        return z, logits


class Discriminator(nn.Module):
    """D_r: a small strided conv net, image [N, 3, R, R] -> logit [N]."""

    def __init__(self, width: int = 32, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for i in range(depth):
            layers += [nn.Conv2d(channels, width * 2**i, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = width * 2**i
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean(dim=(2, 3))).squeeze(1)


def build_den(generator, cfg: DENConfig, truncation: float, seed: int = 0, device: torch.device | str = "cpu") -> DEN:
    """A fresh DEN for ``generator``; its random init depends on ``seed`` only."""
    with seeded(seed):
        den = DEN(
            generator.z_dim,
            generator.num_classes,
            truncation,
            mode=cfg.mode,
            backbone=cfg.backbone,
            backbone_weights=cfg.backbone_weights,
            T=cfg.T,
        )
    return den.to(device)


def _build_discriminator(seed: int, device: torch.device | str) -> Discriminator:
    with seeded(seed + 1):
        return Discriminator().to(device)


def save_den(path: str | Path, den: DEN, cfg: DENConfig, truncation: float) -> None:
    """Write a trained DEN (weights, settings, truncation; no optimiser state) for :func:`load_den`, atomically."""
    payload = {"den": den.state_dict(), "den_config": asdict(cfg), "truncation": float(truncation)}
    with atomic_path(path) as tmp, open(tmp, "wb") as file:
        torch.save(payload, file)


def load_den(checkpoint_path: str | Path, generator, device: torch.device | str = "cpu") -> DEN:
    """The DEN saved by :func:`save_den` (or a :func:`train_den` checkpoint) at ``checkpoint_path``, in eval mode."""
    try:
        payload = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as err:
        raise SynthsodError(f"{checkpoint_path}: cannot read the DEN ({err})") from err
    meta = payload.get("settings", payload)  # a training checkpoint keeps them under "settings"
    if "den_config" not in meta or "den" not in payload:
        raise SynthsodError(f"{checkpoint_path} is not a DEN checkpoint")
    # The backbone's ImageNet file was only the init: the checkpoint holds the trained weights.
    cfg = replace(DENConfig(**meta["den_config"]), backbone_weights=None)
    den = build_den(generator, cfg, meta["truncation"], device="cpu")
    den.load_state_dict(payload["den"])
    return den.to(device).eval()


# --- training --------------------------------------------------------------------------------------
def _num_images(images) -> int:
    return images.shape[0] if torch.is_tensor(images) else len(images)


def _fetch(images, indices: torch.Tensor, resolution: int) -> torch.Tensor:
    """[B, 3, R, R] float32 images for ``indices`` from a tensor or a dataset (items: tensor or {"image"})."""
    if torch.is_tensor(images):
        batch = images[indices]
    else:
        items = [images[int(i)] for i in indices]
        batch = torch.stack([item["image"] if isinstance(item, dict) else item for item in items])
    batch = batch.float()
    if batch.shape[-1] != resolution or batch.shape[-2] != resolution:
        batch = F.interpolate(
            batch, size=(resolution, resolution), mode="bilinear", antialias=True, align_corners=False
        )
    return batch


def _per_image_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return ((a - b) ** 2).flatten(1).mean(1)


@dataclass
class _Parts:
    den: DEN
    optimiser: torch.optim.Optimizer
    disc: Discriminator | None
    disc_optimiser: torch.optim.Optimizer | None

    def stateful(self) -> dict[str, Any]:
        parts: dict[str, Any] = {"den": self.den, "optimiser": self.optimiser}
        if self.disc is not None:
            parts.update(disc=self.disc, disc_optimiser=self.disc_optimiser)
        return parts


def _make_parts(generator, cfg: DENConfig, truncation: float, seed: int, device) -> _Parts:
    den = build_den(generator, cfg, truncation, seed, device).train()
    variance = [den.log_variance]
    rest = [p for name, p in den.named_parameters() if name != "log_variance"]
    # log sigma_t^2 lives on a log scale: a larger step lets it track the error within a short run.
    optimiser = torch.optim.Adam([{"params": rest}, {"params": variance, "lr": 10 * cfg.lr}], lr=cfg.lr)
    if cfg.adv_weight == 0:
        return _Parts(den, optimiser, None, None)
    disc = _build_discriminator(seed, device).train()
    return _Parts(den, optimiser, disc, torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999)))


def _den_loss(
    parts: _Parts, generator, x0: torch.Tensor, cfg: DENConfig, truncation: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Loss for E (diffusion mode) and the reconstructions; see the module docstring."""
    den, schedule = parts.den, parts.den.schedule
    n = x0.shape[0]
    t = torch.randint(0, cfg.t_max + 1, (n,), generator=rng)
    noise = torch.randn(x0.shape, generator=rng).to(x0.device)
    t = t.to(x0.device)
    xt = schedule.q_sample(x0, t, noise)
    with autocast(x0.device):
        z, logits = den(xt, t)
    x0_hat = generator.images(z.float(), torch.softmax(logits.float(), dim=1), truncation)
    d = x0[0].numel()
    mse = _per_image_mse(x0_hat, x0)
    if cfg.weighting == "elbo":
        bound = schedule.loss_terms(x0, x0_hat, t, den.log_variance) / d
        loss = bound.mean()
    else:
        bound = schedule.loss_terms(x0, x0_hat.detach(), t, den.log_variance) / d
        loss = mse.mean() + bound.mean()  # the bound term only moves log sigma_t^2 here
    prior = (z.float() ** 2).mean() / truncation**2
    loss = loss + cfg.latent_weight * prior
    return loss, x0_hat, {"mse": mse.mean().item(), "bound": bound.mean().item(), "z_prior": prior.item()}


def _vae_loss(
    parts: _Parts, generator, x0: torch.Tensor, cfg: DENConfig, truncation: float, rng: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Loss for E in the VAE ablation: reconstruction + beta_kl * KL to the N(0, truncation^2) prior."""
    with autocast(x0.device):
        mu, logits, logvar = parts.den(x0, 0)
    mu, logvar = mu.float(), logvar.float()
    eps = torch.randn(mu.shape, generator=rng).to(mu.device)
    z = mu + torch.exp(0.5 * logvar) * eps
    x0_hat = generator.images(z, torch.softmax(logits.float(), dim=1), truncation)
    mse = _per_image_mse(x0_hat, x0)
    prior_logvar = torch.full_like(mu, 2 * math.log(truncation))
    kl = gaussian_kl(mu, logvar, torch.zeros_like(mu), prior_logvar).sum(1)
    loss = mse.mean() + cfg.beta_kl * kl.mean() / x0[0].numel()
    return loss, x0_hat, {"mse": mse.mean().item(), "kl": kl.mean().item()}


def _sample_loss(den: DEN, generator, cfg: DENConfig, truncation: float, seed: int, step: int) -> torch.Tensor:
    """The generated-sample term (module docstring): E recovers prior draws (z, c) from G(z, c)."""
    device = next(den.parameters()).device
    rng = np.random.default_rng([seed, step, 1])  # its own stream: the real batch's draws stay as they were
    z = torch.from_numpy(truncation * truncated_normal(rng, (cfg.batch_size, generator.z_dim))).float().to(device)
    classes = torch.from_numpy(rng.integers(generator.num_classes, size=cfg.batch_size)).to(device)
    with torch.no_grad():
        x = generator.images(z, F.one_hot(classes, generator.num_classes).float(), truncation)
    with autocast(device):
        z_hat, logits = den(x, 0)[:2]  # the mean mu in vae mode
    return ((z_hat.float() - z) ** 2).mean() / truncation**2 + F.cross_entropy(logits.float(), classes)


def _train_step(
    parts: _Parts, generator, images, cfg: DENConfig, truncation: float, seed: int, step: int
) -> dict[str, float]:
    device = next(parts.den.parameters()).device
    rng = step_generator(seed, step)
    indices = torch.randint(0, _num_images(images), (cfg.batch_size,), generator=rng)
    x0 = _fetch(images, indices, generator.resolution).to(device)
    loss_fn = _vae_loss if cfg.mode == "vae" else _den_loss
    loss, x0_hat, metrics = loss_fn(parts, generator, x0, cfg, truncation, rng)
    if cfg.sample_weight > 0:
        sample = _sample_loss(parts.den, generator, cfg, truncation, seed, step)
        loss = loss + cfg.sample_weight * sample
        metrics["sample"] = sample.item()
    if parts.disc is not None:
        parts.disc.requires_grad_(False)
        with autocast(device):
            adv = F.softplus(-parts.disc(x0_hat)).float().mean()
        loss = loss + cfg.adv_weight * adv
        metrics["adv"] = adv.item()
    parts.optimiser.zero_grad(set_to_none=True)
    loss.backward()
    parts.optimiser.step()
    metrics["loss"] = loss.item()
    if parts.disc is not None:
        parts.disc.requires_grad_(True)
        with autocast(device):
            d_loss = (F.softplus(-parts.disc(x0)) + F.softplus(parts.disc(x0_hat.detach()))).float().mean()
        parts.disc_optimiser.zero_grad(set_to_none=True)
        d_loss.backward()
        parts.disc_optimiser.step()
        metrics["d_loss"] = d_loss.item()
    return metrics


def _ema_update(ema: dict[str, float], metrics: dict[str, float], decay: float = 0.9) -> dict[str, float]:
    return {k: v if k not in ema else decay * ema[k] + (1 - decay) * v for k, v in metrics.items()}


def fit_den(
    generator,
    images,
    cfg: DENConfig,
    *,
    truncation: float,
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path | None = None,
    seed: int = 0,
) -> tuple[DEN, dict[str, Any]]:
    """:func:`train_den` that also returns the trained DEN (in eval mode)."""
    device = torch.device(device)
    if _num_images(images) == 0:
        raise SynthsodError("train_den: no training images")
    generator.net.requires_grad_(False)
    parts = _make_parts(generator, cfg, truncation, seed, device)
    settings = {"den_config": asdict(cfg), "truncation": float(truncation), "seed": int(seed)}
    loop = TrainingLoop(
        cfg.steps,
        parts.stateful(),
        checkpoint_path,
        cfg.checkpoint_every,
        desc=f"DEN training ({cfg.mode})",
        settings=settings,
        check=same_settings(settings, free={"den_config.steps", "den_config.checkpoint_every"}),
        state={"metrics": {}},
    )
    start, ema = loop.start, loop.state["metrics"]
    started = time.perf_counter()
    for step in loop:
        ema = _ema_update(ema, _train_step(parts, generator, images, cfg, truncation, seed, step))
        loop.state["metrics"] = ema
        loop.bar.set_postfix(loss=ema["loss"])
    metrics = {**ema, "steps": max(start, cfg.steps), "resumed_from": start, "seconds": time.perf_counter() - started}
    return parts.den.eval(), metrics


def train_den(
    generator,
    images,
    cfg: DENConfig,
    *,
    truncation: float,
    device: torch.device | str = "cpu",
    checkpoint_path: str | Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train a DEN on ``images`` (a [N, 3, R, R] tensor in [-1, 1], or a dataset of such / of {"image"}).

    Checkpoints (models, optimisers, step, running metrics, config, truncation) go to
    ``checkpoint_path`` every ``cfg.checkpoint_every`` steps and at the end; an existing checkpoint is
    resumed (one at or past ``cfg.steps`` trains nothing). The generator stays frozen. Returns metrics:
    exponential moving averages (decay 0.9) of the last steps' terms (``mse``, ``bound`` or ``kl``,
    ``adv``, ``d_loss``, ``loss``), ``steps``, ``resumed_from`` and ``seconds``. Load the trained model
    with :func:`load_den`, or use :func:`fit_den` to get it back directly.
    """
    return fit_den(
        generator, images, cfg, truncation=truncation, device=device, checkpoint_path=checkpoint_path, seed=seed
    )[1]


# --- inversion -------------------------------------------------------------------------------------
@dataclass
class InversionResult:
    """Per image: latent ``z`` [N, z_dim] float32, ``class_id`` [N] int64, MSE of G(z, class) vs the image
    in [-1, 1] after refinement (``recon_error``) and straight from the encoder (``encoder_error``)."""

    z: np.ndarray
    class_id: np.ndarray
    recon_error: np.ndarray
    encoder_error: np.ndarray


def _lowpass(x: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(x, factor) if factor > 1 else x


def refine_latents(
    generator,
    z: torch.Tensor,
    class_vector: torch.Tensor,
    images: torch.Tensor,
    *,
    truncation: float,
    steps: int,
    lr: float,
    lowpass: int = 0,
    bound: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on z (class fixed) minimising per-image ``mean (G(z) - x)^2`` (+ the same at ``lowpass`` x
    ``lowpass`` average-pooled scale), z projected into [-bound, bound]. Returns the best z per image
    (by pixel MSE, so never worse than the start) and its MSE."""
    bound = 2.0 * truncation if bound is None else bound
    z = z.detach().clone().clamp(-bound, bound).requires_grad_(True)
    optimiser = torch.optim.Adam([z], lr=lr)
    best_z, best_err = z.detach().clone(), None
    for step in range(steps + 1):
        with torch.set_grad_enabled(step < steps):  # the last pass only scores the final z
            recon = generator.images(z, class_vector, truncation)
            err = _per_image_mse(recon, images)
        with torch.no_grad():
            better = err < best_err if best_err is not None else torch.ones_like(err, dtype=torch.bool)
            best_z[better] = z.detach()[better]
            best_err = err.detach().clone() if best_err is None else torch.where(better, err.detach(), best_err)
        if step == steps:
            break
        objective = err
        if lowpass > 1:
            objective = objective + _per_image_mse(_lowpass(recon, lowpass), _lowpass(images, lowpass))
        optimiser.zero_grad(set_to_none=True)
        objective.sum().backward()  # sum: each image's gradient is independent of the batch
        optimiser.step()
        with torch.no_grad():
            z.clamp_(-bound, bound)
    return best_z, best_err


def invert(
    den: DEN,
    generator,
    images,
    *,
    truncation: float,
    batch_size: int = 32,
    refine_steps: int = 0,
    refine_lr: float = 0.05,
    refine_lowpass: int = 0,
) -> InversionResult:
    """Latent codes of ``images`` (tensor [N, 3, R, R] in [-1, 1] or a dataset): encoder, then refinement.

    The class is the argmax of the encoder's logits; :func:`refine_latents` then moves z only. The
    default ``refine_steps=0`` is the encoder's answer alone (the paper's pure DEN); pass
    ``DENConfig.refine_*`` (or the workflow's ``den.invert``) for the hybrid inversion.
    Each image's result is independent of the batch it is in (G and E run in eval mode; the
    refinement's objective is a sum over images and Adam is elementwise).
    """
    device = next(den.parameters()).device
    den.eval()
    results: dict[str, list[np.ndarray]] = {"z": [], "class_id": [], "recon_error": [], "encoder_error": []}
    n = _num_images(images)
    desc = "DEN inversion" + (f" (+{refine_steps} refinement steps)" if refine_steps > 0 else "")
    with progress(total=n, desc=desc, unit="image") as bar:
        for start in range(0, n, batch_size):
            x = _fetch(images, torch.arange(start, min(start + batch_size, n)), generator.resolution).to(device)
            with torch.no_grad(), autocast(device):
                z, logits = den.encode(x)
            z, class_id = z.float(), logits.float().argmax(1)
            one_hot = F.one_hot(class_id, generator.num_classes).float()
            with torch.no_grad():
                enc_err = _per_image_mse(generator.images(z, one_hot, truncation), x)
            err = enc_err
            if refine_steps > 0:
                z, err = refine_latents(
                    generator,
                    z,
                    one_hot,
                    x,
                    truncation=truncation,
                    steps=refine_steps,
                    lr=refine_lr,
                    lowpass=refine_lowpass,
                    bound=den.bound,
                )
            for key, value in dict(z=z, class_id=class_id, recon_error=err, encoder_error=enc_err).items():
                results[key].append(value.detach().cpu().numpy())
            bar.update(len(x))
    return InversionResult(
        z=np.concatenate(results["z"]).astype(np.float32),
        class_id=np.concatenate(results["class_id"]).astype(np.int64),
        recon_error=np.concatenate(results["recon_error"]).astype(np.float64),
        encoder_error=np.concatenate(results["encoder_error"]).astype(np.float64),
    )


@torch.no_grad()
def reconstruction_error(generator, z, class_ids, images, truncation: float, batch_size: int = 64) -> np.ndarray:
    """Per-image MSE (in [-1, 1] units) of G(z, one_hot(class_ids)) against ``images``."""
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)) if not torch.is_tensor(z) else z.float()
    ids = torch.as_tensor(np.asarray(class_ids), dtype=torch.long)
    out = []
    for start in range(0, z.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        x = _fetch(images, torch.arange(start, min(start + batch_size, z.shape[0])), generator.resolution)
        one_hot = F.one_hot(ids[sl], generator.num_classes).float().to(generator.device)
        recon = generator.images(z[sl].to(generator.device), one_hot, truncation)
        out.append(_per_image_mse(recon, x.to(generator.device)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)
