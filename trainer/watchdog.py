"""Stop a run at its first non-finite (NaN or inf) loss, before that loss touches the weights.

Contract: `check_loss(loss, step, cfg, accelerator, sink, save_checkpoint)` is called on every
micro-batch's loss, before backward. While every process's loss is finite it only costs one
device sync. On the first non-finite loss (on any process: the flag is reduced across them)
it saves a checkpoint of the last good optimizer step (the weights and optimizer states have
not seen the bad loss), emits an "alert" event {kind: "nan", step, message, causes}, and
raises NonFiniteLoss, which ends the run as failed with the same message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the message says where and what usually causes it."""


def likely_causes(cfg: Mapping[str, Any]) -> list[str]:
    """The usual causes for an effective config, most likely first, each with what to try."""
    causes: list[str] = []
    if cfg["mixed_precision"] == "fp16":
        causes.append(
            "fp16 overflows easily (its largest value is 65504): use bf16 on GPUs that support "
            "it, or mixed_precision=no"
        )
    lr = float(cfg["learning_rate"])
    limit = 1e-3 if cfg["model_type"] == "lora" else 1e-5
    if cfg["optimizer"] != "prodigy" and lr > limit:
        causes.append(
            f"learning_rate {lr:g} is high for {cfg['model_type']} training: try {limit / 10:g}"
        )
    if cfg["optimizer"] in ("prodigy", "lion"):
        causes.append(
            f"{cfg['optimizer']} is sensitive to its settings: try adamw with learning_rate 1e-4"
        )
    if not float(cfg["max_grad_norm"]):
        causes.append("gradient clipping is off: set max_grad_norm to 1.0")
    causes.append("a corrupt or extreme image in the dataset (check the images of the last batch)")
    return causes


def check_loss(
    loss: Any,
    step: int,
    cfg: Mapping[str, Any],
    accelerator: Any,
    sink: Any,
    save_checkpoint: Callable[[int], None],
) -> None:
    import torch

    bad = (~torch.isfinite(loss.detach())).any().float().reshape(1)
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="sum")
    if not bad.item():
        return
    causes = likely_causes(cfg)
    message = (
        f"The loss became NaN or infinite at step {step + 1}; the run was stopped and a "
        f"checkpoint of step {step} (the last good one) was saved. Usual causes: "
        + "; ".join(causes)
        + "."
    )
    save_checkpoint(step)
    sink.emit("alert", {"kind": "nan", "step": step + 1, "message": message, "causes": causes})
    raise NonFiniteLoss(message)
