"""The smallest real training run the tests start: the built-in demo model, no download."""

from __future__ import annotations

from typing import Any


def demo_config(steps: int, **overrides: Any) -> dict[str, Any]:
    """64 px, no validation, checkpoints only at stop/end, a progress event every step."""
    return {
        "model_family": "demo",
        "resolution": 64,
        "max_train_steps": steps,
        "validation_steps": 0,
        "checkpointing_steps": 0,
        "logging_steps": 1,
        **overrides,
    }
