"""The training losses: the scheduled pseudo-Huber loss and smooth L1 as kohya sd-scripts and
SimpleTuner define them, their threshold schedules, min-SNR weighting, and that choosing a
loss really changes what a (tiny) training optimises."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler

from trainer.losses import (
    huber_threshold,
    min_snr_weights,
    per_sample_loss,
    pseudo_huber,
    smooth_l1,
    training_loss,
)


@pytest.fixture(scope="module")
def scheduler() -> DDPMScheduler:
    # The SD 1.x / SDXL training schedule.
    return DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"
    )


def test_pseudo_huber_and_smooth_l1_on_known_values() -> None:
    x = torch.tensor([0.0, 3.0, -4.0])
    # c = 4: sqrt(0 + 16) - 4 = 0, sqrt(9 + 16) - 4 = 1, sqrt(16 + 16) - 4 = 4(sqrt 2 - 1)
    expected = torch.tensor([0.0, 1.0, 4 * (math.sqrt(2) - 1)])
    assert torch.allclose(pseudo_huber(x, 4.0), 8 * expected)
    assert torch.allclose(smooth_l1(x, 4.0), 2 * expected)


def test_pseudo_huber_is_l2_for_small_errors_and_linear_for_large_ones() -> None:
    c = 0.5
    small = torch.tensor([1e-3, -2e-3])
    assert torch.allclose(pseudo_huber(small, c), small**2, rtol=1e-4)
    assert torch.allclose(smooth_l1(small, c), small**2 / c, rtol=1e-4)
    large = torch.tensor([1e4, -3e4], dtype=torch.float64)
    assert torch.allclose(pseudo_huber(large, c), 2 * c * large.abs(), rtol=1e-4)
    assert torch.allclose(smooth_l1(large, c), 2 * large.abs(), rtol=1e-4)


def test_constant_schedule_is_huber_c_everywhere(scheduler: DDPMScheduler) -> None:
    t = torch.tensor([0, 500, 999])
    assert torch.allclose(huber_threshold("constant", 0.1, t, scheduler), torch.full((3,), 0.1))


def test_exponential_schedule_runs_from_one_to_huber_c(scheduler: DDPMScheduler) -> None:
    t = torch.tensor([0, 500, 1000])
    c = huber_threshold("exponential", 0.1, t, scheduler)
    # kohya: exp(-alpha t) with alpha = -ln(huber_c) / num_train_timesteps
    alpha = -math.log(0.1) / 1000
    assert torch.allclose(c, torch.exp(-alpha * t.double()).float())
    assert torch.allclose(c, torch.tensor([1.0, math.sqrt(0.1), 0.1]))


def test_snr_schedule_follows_the_noise_level(scheduler: DDPMScheduler) -> None:
    t = torch.tensor([0, 400, 999])
    c = huber_threshold("snr", 0.1, t, scheduler)
    a = scheduler.alphas_cumprod[t].double()
    sigma = ((1 - a) / a).sqrt()
    assert torch.allclose(c.double(), (1 - 0.1) / (1 + sigma) ** 2 + 0.1, rtol=1e-5)
    # nearly clean at t=0 (c close to 1), nearly pure noise at the end (c close to huber_c)
    assert c[0] > 0.9 and abs(float(c[2]) - 0.1) < 0.01
    assert c[0] > c[1] > c[2]


def test_unknown_schedule_or_loss_is_refused(scheduler: DDPMScheduler) -> None:
    t = torch.tensor([1])
    with pytest.raises(ValueError, match="huber_schedule"):
        huber_threshold("cosine", 0.1, t, scheduler)
    with pytest.raises(ValueError, match="loss_type"):
        per_sample_loss(torch.ones(1, 2), torch.zeros(1, 2), t, loss_type="l1")


def test_per_sample_loss_uses_each_samples_own_threshold(scheduler: DDPMScheduler) -> None:
    pred = torch.full((2, 4, 8, 8), 0.7)
    target = torch.zeros(2, 4, 8, 8)
    t = torch.tensor([0, 999])
    per = per_sample_loss(
        pred, target, t, loss_type="huber", huber_schedule="snr", huber_c=0.1,
        noise_scheduler=scheduler,
    )  # fmt: skip
    c = huber_threshold("snr", 0.1, t, scheduler)
    assert per.shape == (2,)
    assert torch.allclose(per, pseudo_huber(torch.tensor(0.7), c))
    l2 = per_sample_loss(pred, target, t, loss_type="l2")
    assert torch.allclose(l2, torch.full((2,), 0.49))
    assert not torch.allclose(per, l2)


def test_min_snr_weights_match_the_formula(scheduler: DDPMScheduler) -> None:
    from diffusers.training_utils import compute_snr

    t = torch.tensor([10, 500, 990])
    snr = compute_snr(scheduler, t)
    eps = min_snr_weights(scheduler, t, 5.0, "epsilon")
    assert torch.allclose(eps, torch.minimum(snr, torch.tensor(5.0)) / snr)
    v = min_snr_weights(scheduler, t, 5.0, "v_prediction")
    assert torch.allclose(v, torch.minimum(snr, torch.tensor(5.0)) / (snr + 1))
    assert eps[0] < 1 and eps[2] == 1  # easy low-noise steps are down-weighted
    loss = training_loss(
        torch.ones(3, 4, 2, 2), torch.zeros(3, 4, 2, 2), t, loss_type="l2",
        huber_schedule="snr", huber_c=0.1, snr_gamma=5.0, prediction_type="epsilon",
        noise_scheduler=scheduler,
    )  # fmt: skip
    assert torch.isclose(loss, eps.mean())


@pytest.mark.slow
def test_huber_loss_changes_what_training_sees(tmp_path: Path) -> None:
    from tests.trainer.conftest import fast, losses, run_in_process

    runs = {}
    for kind in ("l2", "huber"):
        out = tmp_path / kind
        code, _ = run_in_process(
            fast(out, loss_type=kind, max_train_steps=3, num_cpu_threads_per_process=1)
        )
        assert code == 0
        runs[kind] = losses(out)
    assert sorted(runs["l2"]) == sorted(runs["huber"]) == [1, 2, 3]
    # Same seed, same batches and noise: only the loss differs. Pseudo-Huber with c <= 1 is
    # below the squared error for every element, so every logged value is lower.
    assert all(runs["huber"][s] < runs["l2"][s] * 0.95 for s in runs["l2"]), runs
