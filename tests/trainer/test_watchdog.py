"""The NaN watchdog: a loss that turns NaN at step 3 stops the run with a checkpoint of step 2
(whose weights are finite), an "alert" event naming the usual causes, and a failed state."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trainer import watchdog

from .conftest import fast, read_events, run_in_process, states


def test_the_causes_fit_the_config() -> None:
    causes = watchdog.likely_causes(
        {
            "mixed_precision": "fp16",
            "learning_rate": 5e-3,
            "model_type": "lora",
            "optimizer": "adamw",
            "max_grad_norm": 0.0,
        }
    )
    assert causes[0].startswith("fp16")
    assert any("learning_rate 0.005" in c for c in causes)
    assert any("max_grad_norm" in c for c in causes)
    calm = watchdog.likely_causes(
        {
            "mixed_precision": "bf16",
            "learning_rate": 1e-4,
            "model_type": "lora",
            "optimizer": "adamw",
            "max_grad_norm": 1.0,
        }
    )
    assert len(calm) == 1 and "dataset" in calm[0]


def test_a_nan_loss_at_step_3_stops_with_the_step_2_checkpoint(
    demo_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors.torch import load_file

    from trainer import losses

    real = losses.training_loss
    calls = {"n": 0}

    def nan_at_third(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(losses, "training_loss", nan_at_third)
    run_dir = tmp_path / "run"
    rc, _ = run_in_process(fast(run_dir, max_train_steps=6))
    assert rc == 1
    events = read_events(run_dir)
    (alert,) = [e["data"] for e in events if e["type"] == "alert"]
    assert alert["kind"] == "nan" and alert["step"] == 3
    assert "checkpoint of step 2" in alert["message"] and alert["causes"]
    assert states(run_dir)[-1] == "failed"
    steps = [e["data"]["step"] for e in events if e["type"] == "progress"]
    assert steps == [1, 2]  # nothing trained on the bad loss
    checkpoint = run_dir / "checkpoints" / "checkpoint-2"
    assert checkpoint.is_dir()
    tensors = [t for f in checkpoint.glob("*.safetensors") for t in load_file(f).values()]
    assert tensors and all(bool(torch.isfinite(t).all()) for t in tensors)
    assert math.isfinite(sum(float(t.float().sum()) for t in tensors))
