"""The optional optimizers (schedule-free AdamW, CAME, Lion 8-bit): each optimizes with its own
parameters; one whose package (or device) is missing is greyed out in the form and refused by
the trainer with the same words; schedule-free AdamW resumes exactly across epoch checkpoints."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.trainer.conftest import effective, losses, read_events, run_in_process
from trainer.optim import OptimizerUnavailable, averaged_weights, build_optimizer

NEW = {
    "adamw_schedulefree": ("schedulefree", "cpu"),
    "came": ("came_pytorch", "cpu"),
    "lion8bit": ("bitsandbytes", "cuda"),
}


def _fit(name: str, device: str, **params: Any) -> tuple[float, float]:
    """Loss before and after 100 steps of fitting a linear map (evaluated at the weights the
    optimizer would save)."""
    torch.manual_seed(0)
    x = torch.randn(64, 16, device=device)
    target = x @ torch.randn(16, 4, device=device)
    layer = torch.nn.Linear(16, 4, device=device)
    cfg = effective({"optimizer": name, "learning_rate": 0.05, **params})
    opt = build_optimizer(cfg, [{"params": list(layer.parameters()), "lr": 0.05}], device)
    with torch.no_grad():
        before = float(torch.nn.functional.mse_loss(layer(x), target))
    if hasattr(opt, "train"):
        opt.train()
    for _ in range(100):
        loss = torch.nn.functional.mse_loss(layer(x), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
    with averaged_weights(opt), torch.no_grad():
        after = float(torch.nn.functional.mse_loss(layer(x), target))
    return before, after


@pytest.mark.parametrize("name", sorted(NEW))
def test_each_new_optimizer_lowers_the_loss(name: str) -> None:
    device = NEW[name][1]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU (CUDA)")
    before, after = _fit(name, device)
    assert after < 0.5 * before, (before, after)


def test_the_optimizers_own_parameters_reach_it() -> None:
    cfg = effective(
        {"optimizer": "came", "came_beta3": 0.99, "came_epsilon2": 1e-12, "came_weight_decay": 0.1}
    )
    opt = build_optimizer(
        cfg, [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3}], "cpu"
    )
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.999, 0.99) and group["eps"] == (1e-30, 1e-12)
    assert group["weight_decay"] == 0.1
    cfg = effective({"optimizer": "adamw_schedulefree", "schedulefree_warmup_steps": 7})
    opt = build_optimizer(
        cfg, [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3}], "cpu"
    )
    assert opt.param_groups[0]["warmup_steps"] == 7


def _hide(monkeypatch: pytest.MonkeyPatch, package: str) -> None:
    """This machine without `package`: the one detection both the form and the trainer use."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == package else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize("name", sorted(NEW))
def test_a_missing_package_greys_out_and_is_refused_with_the_same_words(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.evaluator import PlatformContext, evaluate
    from registry.platform import installed_packages
    from registry.validation import validate_config

    package, device = NEW[name]
    _hide(monkeypatch, package)
    here = PlatformContext(device, installed_packages())
    assert package not in here.packages
    reason = evaluate({}, here)["optimizer"].unavailable_choices[name]
    assert f"pip install {package}" in reason
    refused = validate_config({"optimizer": name}, here).errors
    assert [i.message for i in refused] == [f"{name!r} is not available here: {reason}"]
    cfg = effective({"optimizer": name})
    with pytest.raises(OptimizerUnavailable) as exc:
        build_optimizer(cfg, [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3}], device)
    assert str(exc.value) == f"optimizer {name!r} is not available here: {reason}"


def test_lion8bit_is_greyed_out_and_refused_without_cuda() -> None:
    from registry.evaluator import PlatformContext, evaluate

    reason = evaluate({}, PlatformContext("cpu", frozenset({"bitsandbytes"})))[
        "optimizer"
    ].unavailable_choices["lion8bit"]
    assert reason == "needs an NVIDIA GPU (CUDA)"
    with pytest.raises(OptimizerUnavailable, match=r"not available here: needs an NVIDIA GPU"):
        build_optimizer(
            effective({"optimizer": "lion8bit"}),
            [{"params": [torch.nn.Parameter(torch.zeros(2))], "lr": 1e-3}],
            "cpu",
        )


def test_schedule_free_hides_the_learning_rate_schedule() -> None:
    from registry.evaluator import PlatformContext, evaluate

    states = evaluate(
        {"optimizer": "adamw_schedulefree", "lr_scheduler": "cosine"},
        PlatformContext("cpu", frozenset({"schedulefree"})),
    )
    assert not states["lr_scheduler"].visible and not states["lr_warmup_steps"].visible
    assert "schedulefree_warmup_steps" in (states["lr_scheduler"].reason or "")
    assert states["schedulefree_warmup_steps"].active


_SCHEDULE_FREE_RUN = """\
resolution = 64
train_batch_size = 16
max_train_steps = 0
num_train_epochs = 2
optimizer = "adamw_schedulefree"
learning_rate = 1e-3
schedulefree_warmup_steps = 2
checkpoint_epoch_interval = 1
checkpoints_total_limit = 0
validation_epoch_interval = 2
validation_inference_steps = 2
# SimpleTuner's names of checkpointing_steps and validation_steps
checkpoint_step_interval = 0
validation_step_interval = 0
"""


@pytest.mark.slow
def test_schedule_free_run_checkpoints_at_epoch_ends_and_resumes_exactly(tmp_path: Path) -> None:
    from registry.config_io import load_config_file

    # The demo dataset has 48 images: batch 16 makes 3 steps an epoch, 6 in two epochs.
    path = tmp_path / "run.toml"
    path.write_text(_SCHEDULE_FREE_RUN)
    raw = load_config_file(path)
    assert raw["checkpointing_steps"] == 0 and raw["validation_steps"] == 0  # aliases read
    assert "checkpoint_step_interval" not in raw

    full = tmp_path / "full"
    code, _ = run_in_process({**raw, "output_dir": str(full)})
    assert code == 0, read_events(full)[-1]
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == [
        "checkpoint-3",
        "checkpoint-6",
    ]
    events = read_events(full)
    assert [e["data"]["step"] for e in events if e["type"] == "checkpoint"] == [3, 6]
    assert [e["data"]["step"] for e in events if e["type"] == "validation"] == [6]

    resumed = tmp_path / "resumed"
    shutil.copytree(full / "checkpoints" / "checkpoint-3", resumed / "checkpoints" / "checkpoint-3")
    raw2 = {**raw, "output_dir": str(resumed), "resume_from_checkpoint": "latest"}
    assert run_in_process(raw2)[0] == 0
    expected = {s: v for s, v in losses(full).items() if s > 3}
    assert losses(resumed) == expected
