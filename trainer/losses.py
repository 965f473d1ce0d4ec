"""The training loss of one batch: the elementwise loss, its timestep-scheduled threshold, and
min-SNR weighting.

Contract: pure functions of tensors, plain config values and the noise scheduler (anything with
`alphas_cumprod` and `config.num_train_timesteps`, as diffusers' DDPMScheduler); nothing here
reads a config object or touches accelerate.

Loss types, with the meaning kohya sd-scripts and SimpleTuner give them (x = pred - target,
c = the scheduled threshold of the sample's timestep):
  l2         x^2 (mean squared error)
  huber      pseudo-Huber, 2c * (sqrt(x^2 + c^2) - c): about x^2 for |x| << c, about 2c|x| beyond
  smooth_l1  2 * (sqrt(x^2 + c^2) - c): about x^2 / c for |x| << c, about 2|x| beyond

Threshold schedules (T = num_train_timesteps, huber_c > 0):
  constant     c = huber_c
  exponential  c = huber_c ** (t / T): 1 at t = 0 falling to huber_c at t = T
  snr          c = (1 - huber_c) / (1 + sigma_t)^2 + huber_c, sigma_t = sqrt((1 - a_t) / a_t)
               with a_t = alphas_cumprod[t]: about 1 for nearly clean inputs, huber_c when noisy
"""

from __future__ import annotations

from typing import Any

import torch

LOSS_TYPES = ("l2", "huber", "smooth_l1")
HUBER_SCHEDULES = ("constant", "exponential", "snr")


def smooth_l1(x: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Elementwise 2 * (sqrt(x^2 + c^2) - c), for c > 0.

    Computed as 2x^2 / (sqrt(x^2 + c^2) + c), the same value without the cancellation that
    loses small errors in fp32 (x = 1e-3, c = 0.5 would be off by about 1%)."""
    x2 = x * x
    return 2 * x2 / (torch.sqrt(x2 + c * c) + c)


def pseudo_huber(x: torch.Tensor, c: torch.Tensor | float) -> torch.Tensor:
    """Elementwise 2c * (sqrt(x^2 + c^2) - c), for c > 0: smooth_l1 scaled by c."""
    return c * smooth_l1(x, c)


def _snr(noise_scheduler: Any, timesteps: torch.Tensor) -> torch.Tensor:
    from diffusers.training_utils import compute_snr

    return compute_snr(noise_scheduler, timesteps).float()


def huber_threshold(
    schedule: str, huber_c: float, timesteps: torch.Tensor, noise_scheduler: Any
) -> torch.Tensor:
    """The threshold c of each sample, shape (batch,), on the timesteps' device."""
    t = timesteps.to(torch.float32)
    if schedule == "constant":
        return torch.full_like(t, huber_c)
    if schedule == "exponential":
        total = noise_scheduler.config.num_train_timesteps
        return torch.pow(torch.tensor(huber_c, device=t.device), t / total)
    if schedule == "snr":
        sigma = _snr(noise_scheduler, timesteps).rsqrt()  # sqrt((1 - a_t) / a_t) = 1 / sqrt(snr)
        return (1 - huber_c) / (1 + sigma) ** 2 + huber_c
    raise ValueError(f"unknown huber_schedule {schedule!r}; use one of {HUBER_SCHEDULES}")


def per_sample_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    loss_type: str,
    huber_schedule: str = "snr",
    huber_c: float = 0.1,
    noise_scheduler: Any = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss of each sample (mean over every non-batch dimension), in fp32, shape (batch,).
    A `mask` (broadcastable to pred, values in [0, 1]) multiplies the elementwise loss first."""
    x = pred.float() - target.float()
    if loss_type == "l2":
        per = x * x
    elif loss_type in ("huber", "smooth_l1"):
        c = huber_threshold(huber_schedule, huber_c, timesteps, noise_scheduler)
        c = c.to(x.device).view(-1, *([1] * (x.ndim - 1)))
        per = pseudo_huber(x, c) if loss_type == "huber" else smooth_l1(x, c)
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; use one of {LOSS_TYPES}")
    if mask is not None:
        per = per * mask.to(per.device, per.dtype)
    return per.mean(dim=list(range(1, per.ndim)))


def min_snr_weights(
    noise_scheduler: Any, timesteps: torch.Tensor, gamma: float, prediction_type: str
) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023), as diffusers' training scripts apply them:
    min(snr, gamma) / snr for epsilon targets, / (snr + 1) for v-prediction."""
    snr = _snr(noise_scheduler, timesteps)
    clipped = torch.clamp(snr, max=gamma)
    return clipped / (snr + 1) if prediction_type == "v_prediction" else clipped / snr


def training_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    timesteps: torch.Tensor,
    *,
    loss_type: str,
    huber_schedule: str,
    huber_c: float,
    snr_gamma: float,
    prediction_type: str,
    noise_scheduler: Any,
    mask: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The scalar loss of a batch: per-sample loss (masked elementwise by `mask`), min-SNR
    weighted when snr_gamma > 0, times the per-sample `weights` (shape (batch,)), averaged."""
    per = per_sample_loss(
        pred,
        target,
        timesteps,
        loss_type=loss_type,
        huber_schedule=huber_schedule,
        huber_c=huber_c,
        noise_scheduler=noise_scheduler,
        mask=mask,
    )
    if weights is not None:
        per = per * weights.view(-1).to(per.device, per.dtype)
    if snr_gamma > 0:
        per = per * min_snr_weights(noise_scheduler, timesteps, snr_gamma, prediction_type).to(
            per.device
        )
    return per.mean()
