"""Timestep bias: the sampled training timesteps shift as configured (SimpleTuner's meaning)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.trainer.conftest import effective
from trainer.timestep_bias import sample_timesteps, timestep_weights

N = 20_000  # draws per check: a share's standard error is below 0.004


def _share(strategy: str, lo: int, hi: int, *, min_t: int = 0, max_t: int = 1000, **kw) -> float:
    weights = timestep_weights(1000, strategy, **kw)
    t = sample_timesteps(weights, N, min_t, max_t, torch.Generator().manual_seed(0))
    assert int(t.min()) >= min_t and int(t.max()) < max_t
    return float(((t >= lo) & (t < hi)).float().mean())


def test_later_draws_the_last_portion_multiplier_times_as_often() -> None:
    # 750 timesteps at weight 1, 250 at weight 2: the last quarter gets 500 / 1250 = 0.4.
    weights = timestep_weights(1000, "later", multiplier=2.0, portion=0.25)
    assert torch.allclose(weights[750:], torch.full((250,), 2 / 1250))
    assert torch.allclose(weights[:750], torch.full((750,), 1 / 1250))
    assert _share("later", 750, 1000, multiplier=2.0, portion=0.25) == pytest.approx(0.4, abs=0.02)


def test_earlier_and_range_favour_their_timesteps() -> None:
    # earlier, half the schedule at 3x: 1500 / (1500 + 500) = 0.75 of the draws.
    assert _share("earlier", 0, 500, multiplier=3.0, portion=0.5) == pytest.approx(0.75, abs=0.02)
    # range [200, 500) at 4x: 1200 / (1200 + 700).
    share = _share("range", 200, 500, multiplier=4.0, begin=200, end=500)
    assert share == pytest.approx(1200 / 1900, abs=0.02)
    # A multiplier below 1 makes the favoured part rarer: 250 * 0.5 / (750 + 125) = 1/7.
    assert _share("later", 750, 1000, multiplier=0.5) == pytest.approx(1 / 7, abs=0.02)


def test_min_and_max_timestep_still_bound_the_draw() -> None:
    # Allowed [100, 800): 650 at weight 1, [750, 800) at weight 2: 100 / 750 of the draws.
    share = _share("later", 750, 800, min_t=100, max_t=800, multiplier=2.0, portion=0.25)
    assert share == pytest.approx(100 / 750, abs=0.02)


def test_none_and_an_empty_portion_are_uniform() -> None:
    uniform = torch.full((1000,), 1 / 1000)
    assert torch.allclose(timestep_weights(1000, "none", multiplier=5.0), uniform)
    # int(0.0004 * 1000) = 0 timesteps favoured: nothing changes (not the whole schedule).
    assert torch.allclose(timestep_weights(1000, "later", multiplier=5.0, portion=0.0004), uniform)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="above 0"):
        timestep_weights(1000, "later", multiplier=0.0)
    with pytest.raises(ValueError, match="begin < end"):
        timestep_weights(1000, "range", begin=500, end=500)
    from registry.validation import validate_config

    issues = validate_config(
        {"timestep_bias_strategy": "range", "timestep_bias_begin": 600, "timestep_bias_end": 400}
    ).errors
    assert [i.path for i in issues] == ["timestep_bias_begin"]


def test_flow_families_hide_the_bias_with_a_reason() -> None:
    from registry.evaluator import PlatformContext, evaluate

    states = evaluate({"model_family": "flux"}, PlatformContext("cpu"))
    assert not states["timestep_bias_strategy"].visible
    assert "only for" in (states["timestep_bias_strategy"].reason or "")
    assert evaluate({"model_family": "sdxl"}, PlatformContext("cpu"))[
        "timestep_bias_strategy"
    ].visible


@pytest.mark.slow
def test_the_sd_family_samples_training_timesteps_with_the_bias(
    sd1x_pipeline: Path, tmp_path: Path
) -> None:
    from trainer.families import load_family

    (tmp_path / "ds").mkdir()
    cfg = effective(
        {
            "model_family": "sd1x",
            "pretrained_model_name_or_path": str(sd1x_pipeline),
            "output_dir": str(tmp_path / "run"),
            "datasets": [{"path": str(tmp_path / "ds")}],
            "timestep_bias_strategy": "later",
            "timestep_bias_multiplier": 2.0,
            "min_timestep": 100,
        }
    )
    model = load_family(cfg)
    torch.manual_seed(0)
    t = model.add_noise(torch.zeros(N, 4, 1, 1), {}).timesteps
    assert int(t.min()) >= 100
    # [100, 1000): 650 at weight 1, 250 at weight 2: the last quarter gets 500 / 1150.
    assert float((t >= 750).float().mean()) == pytest.approx(500 / 1150, abs=0.02)
