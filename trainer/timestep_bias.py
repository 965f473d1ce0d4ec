"""Timestep bias for DDPM training: sampling weights over the training timesteps.

The options mean what SimpleTuner's `timestep_bias_*` options mean, so its configs carry over:

- `none`: every timestep is equally likely (the trainer then draws uniformly, as always);
- `earlier` / `later`: the first / last `int(portion * num_timesteps)` timesteps get weight
  `multiplier`, the others weight 1 (low timesteps are the fine-detail end of the schedule,
  high ones the composition end);
- `range`: timesteps `begin <= t < end` get weight `multiplier`.

The weights are normalised to sum to 1. A portion that rounds to no timestep biases none.
`min_timestep` / `max_timestep` still bound the draw: timesteps outside
`[min_timestep, max_timestep)` get weight 0 before sampling.
"""

from __future__ import annotations

import torch

STRATEGIES = ("none", "earlier", "later", "range")


def timestep_weights(
    num_timesteps: int,
    strategy: str,
    *,
    multiplier: float = 1.0,
    portion: float = 0.25,
    begin: int = 0,
    end: int = 1000,
) -> torch.Tensor:
    """Sampling probabilities of timesteps 0..num_timesteps-1 (float32, sums to 1)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"timestep_bias_strategy must be one of {', '.join(STRATEGIES)}")
    weights = torch.ones(num_timesteps, dtype=torch.float32)
    if strategy != "none":
        if multiplier <= 0:
            raise ValueError("timestep_bias_multiplier must be above 0")
        count = int(portion * num_timesteps)
        if strategy == "earlier":
            lo, hi = 0, count
        elif strategy == "later":
            lo, hi = num_timesteps - count, num_timesteps
        else:
            if not 0 <= begin < end <= num_timesteps:
                raise ValueError(
                    f"timestep_bias_begin/end must satisfy 0 <= begin < end <= {num_timesteps}"
                )
            lo, hi = begin, end
        weights[lo:hi] *= multiplier
    return weights / weights.sum()


def sample_timesteps(
    weights: torch.Tensor,
    count: int,
    min_timestep: int,
    max_timestep: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """`count` timesteps (int64, on the CPU) drawn with `weights`, within [min, max)."""
    bounded = weights.clone()
    bounded[:min_timestep] = 0
    bounded[max_timestep:] = 0
    if not bounded.sum() > 0:
        raise ValueError(f"no timestep left to sample in [{min_timestep}, {max_timestep})")
    return torch.multinomial(bounded, count, replacement=True, generator=generator)
