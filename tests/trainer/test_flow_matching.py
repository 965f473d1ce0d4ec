"""The flow-matching pieces against the formulas of diffusers' training utilities
(compute_density_for_timestep_sampling, compute_loss_weighting_for_sd3) and of the SD3 paper,
written out here independently, for every weighting scheme."""

from __future__ import annotations

import math

import pytest
import torch

from trainer.families.flow import (
    WEIGHTING_SCHEMES,
    flow_loss,
    flow_noise,
    loss_weights,
    sample_sigmas,
    training_scheduler,
)

N = 1000
SD3_CONFIG = {"num_train_timesteps": N, "shift": 3.0}
FLUX_DEV_CONFIG = {
    "num_train_timesteps": N,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
ARGS = {"logit_mean": 0.3, "logit_std": 0.8, "mode_scale": 1.29}


def expected_u(scheme: str, batch: int, seed: int) -> torch.Tensor:
    """The density draw, as the SD3 paper / diffusers define it, from the same RNG state."""
    torch.manual_seed(seed)
    if scheme == "logit_normal":
        z = torch.normal(ARGS["logit_mean"], ARGS["logit_std"], size=(batch,))
        return 1 / (1 + torch.exp(-z))
    u = torch.rand(batch)
    if scheme == "mode":
        return 1 - u - ARGS["mode_scale"] * (torch.cos(math.pi * u / 2) ** 2 - 1 + u)
    return u


def shifted(sigma: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * sigma / (1 + (shift - 1) * sigma)


@pytest.mark.parametrize("scheme", WEIGHTING_SCHEMES)
def test_sigmas_follow_the_density_and_the_models_shift(scheme: str) -> None:
    sched = training_scheduler(SD3_CONFIG, flow_shift=0.0)
    torch.manual_seed(7)
    got = sample_sigmas(sched, 64, weighting_scheme=scheme, **ARGS)
    u = expected_u(scheme, 64, 7)
    # Index floor(u*N) into the descending table sigma_i = shift((N - i) / N).
    index = (u * N).long().clamp(0, N - 1)
    want = shifted((N - index).float() / N, 3.0)
    torch.testing.assert_close(got, want)
    assert ((got > 0) & (got <= 1)).all()


def test_logit_normal_centres_on_logit_mean() -> None:
    sched = training_scheduler({"num_train_timesteps": N, "shift": 1.0}, flow_shift=0.0)
    torch.manual_seed(0)
    sigmas = sample_sigmas(
        sched, 20000, weighting_scheme="logit_normal", logit_mean=1.0, logit_std=0.5, mode_scale=0
    )
    # sigma = 1 - floor(u N)/N, so logit(1 - sigma) ~ N(1.0, 0.5) (to the table's resolution).
    x = torch.logit(1 - sigmas.double() + 0.5 / N)
    assert abs(x.mean().item() - 1.0) < 0.02
    assert abs(x.std().item() - 0.5) < 0.02


def test_a_fixed_flow_shift_replaces_the_models() -> None:
    sched = training_scheduler(FLUX_DEV_CONFIG, flow_shift=5.0)
    torch.manual_seed(3)
    got = sample_sigmas(sched, 32, weighting_scheme="none", **ARGS, image_seq_len=4096)
    index = (expected_u("none", 32, 3) * N).long()
    torch.testing.assert_close(got, shifted((N - index).float() / N, 5.0))


@pytest.mark.parametrize(("tokens", "mu"), [(256, 0.5), (4096, 1.15), (2176, 0.825)])
def test_flux_dev_shift_depends_on_resolution(tokens: int, mu: float) -> None:
    """mu grows linearly from base_shift at 256 latent tokens to max_shift at 4096, and
    sigma' = e^mu / (e^mu + 1/sigma - 1), as FluxPipeline shifts at that size."""
    sched = training_scheduler(FLUX_DEV_CONFIG, flow_shift=0.0)
    torch.manual_seed(5)
    got = sample_sigmas(sched, 32, weighting_scheme="none", **ARGS, image_seq_len=tokens)
    index = (expected_u("none", 32, 5) * N).long()
    sigma = (N - index).double() / N  # dynamic shifting: the table itself is unshifted
    want = math.exp(mu) / (math.exp(mu) + 1 / sigma - 1)
    torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-5)


def test_saturated_densities_stay_in_the_table() -> None:
    sched = training_scheduler(SD3_CONFIG, flow_shift=0.0)
    got = sample_sigmas(
        sched, 8, weighting_scheme="logit_normal", logit_mean=60.0, logit_std=1.0, mode_scale=0
    )
    torch.testing.assert_close(got, torch.full((8,), float(sched.sigmas[-1])))


@pytest.mark.parametrize("scheme", WEIGHTING_SCHEMES)
def test_loss_weights(scheme: str) -> None:
    sigmas = torch.tensor([0.05, 0.3, 0.5, 0.9, 1.0])
    want = {
        "sigma_sqrt": sigmas**-2,
        "cosmap": 2 / (math.pi * (1 - 2 * sigmas + 2 * sigmas**2)),
    }.get(scheme, torch.ones_like(sigmas))
    torch.testing.assert_close(loss_weights(scheme, sigmas), want)


def test_noise_and_velocity_target() -> None:
    torch.manual_seed(0)
    latents = torch.randn(3, 4, 8, 8)
    sigmas = torch.tensor([0.1, 0.5, 0.95])
    n = flow_noise(latents, sigmas, N, "sigma_sqrt")
    s = sigmas.view(-1, 1, 1, 1)
    # x_t = (1 - s) x0 + s e and v = e - x0, so x0 = x_t - s v and e = x_t + (1 - s) v.
    torch.testing.assert_close(n.noisy - s * n.target, latents, atol=1e-5, rtol=1e-5)
    noise = n.noisy + (1 - s) * n.target
    assert abs(noise.std().item() - 1) < 0.15  # unit Gaussian noise, not the latents
    torch.testing.assert_close(n.timesteps, sigmas * N)
    torch.testing.assert_close(n.weights, sigmas**-2)


def test_weighted_l2_loss() -> None:
    torch.manual_seed(1)
    latents = torch.randn(2, 4, 8, 8)
    n = flow_noise(latents, torch.tensor([0.2, 0.8]), N, "cosmap")
    pred = torch.randn_like(latents)
    per = ((pred - n.target) ** 2).mean(dim=(1, 2, 3))
    want = (per * n.weights).mean()
    got = flow_loss(pred, n, loss_type="l2", huber_schedule="constant", huber_c=0.1)
    torch.testing.assert_close(got, want)
    assert flow_loss(n.target, n, loss_type="huber", huber_schedule="snr", huber_c=0.1) == 0
