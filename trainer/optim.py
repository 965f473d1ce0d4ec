"""Optimizers and learning-rate schedules named by the registry.

An optimizer this machine cannot run (wrong device, optional package missing) is refused
with the registry's own sentence, the one the UI shows beside the greyed-out choice.
Schedule-free AdamW trains at one point and is evaluated at another: `averaged_weights`
switches to the evaluated weights around validation and saving.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

# Optimizers that replace the learning-rate schedule (their own warmup, constant rate).
SCHEDULE_FREE = frozenset({"adamw_schedulefree"})


class OptimizerUnavailable(RuntimeError):
    pass


def unavailable_reason(name: str, device_type: str) -> str | None:
    """Why optimizer `name` cannot run here, in the registry's words; None when it can."""
    from registry.catalogue import FIELDS
    from registry.evaluator import package_reason, platform_reason

    choice = next((c for c in FIELDS["optimizer"].choices if c.value == name), None)
    if choice is None:
        return None
    if choice.platforms and device_type not in choice.platforms:
        return platform_reason(choice.platforms)
    if choice.packages and not any(_installed(p) for p in choice.packages):
        return package_reason(choice.packages)
    return None


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


@contextmanager
def averaged_weights(optimizer: Any) -> Iterator[None]:
    """Within: the weights a schedule-free optimizer evaluates (its average x), as validation,
    checkpoints and the final weights need; after: the training point again. A no-op for other
    optimizers (accelerate's wrapper forwards train/eval only where the optimizer has them)."""
    switch = callable(getattr(optimizer, "eval", None)) and callable(
        getattr(optimizer, "train", None)
    )
    if switch:
        optimizer.eval()
    try:
        yield
    finally:
        if switch:
            optimizer.train()


def build_optimizer(
    cfg: Mapping[str, Any], param_groups: list[dict[str, Any]], device_type: str
) -> torch.optim.Optimizer:
    name = cfg["optimizer"]
    why = unavailable_reason(name, device_type)
    if why:
        raise OptimizerUnavailable(f"optimizer {name!r} is not available here: {why}")
    lr = param_groups[0]["lr"]
    if name == "adamw":
        return torch.optim.AdamW(
            param_groups,
            lr=lr,
            betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
            weight_decay=cfg["adam_weight_decay"],
            eps=cfg["adam_epsilon"],
            amsgrad=cfg["adam_amsgrad"],
        )
    if name == "adamw8bit":
        import bitsandbytes as bnb

        return bnb.optim.AdamW8bit(
            param_groups,
            lr=lr,
            betas=(cfg["adam_beta1"], cfg["adam_beta2"]),
            weight_decay=cfg["adam_weight_decay"],
            eps=cfg["adam_epsilon"],
        )
    if name == "adafactor":
        from transformers.optimization import Adafactor

        relative = cfg["adafactor_relative_step"]
        return Adafactor(
            param_groups,
            lr=None if relative else lr,
            relative_step=relative,
            scale_parameter=cfg["adafactor_scale_parameter"],
            warmup_init=cfg["adafactor_warmup_init"] if relative else False,
            decay_rate=cfg["adafactor_decay_rate"],
            clip_threshold=cfg["adafactor_clip_threshold"],
            weight_decay=cfg["adafactor_weight_decay"],
        )
    if name == "prodigy":
        from prodigyopt import Prodigy

        beta3 = cfg["prodigy_beta3"] or None  # 0 means prodigy's default sqrt(beta2)
        return Prodigy(
            param_groups,
            lr=lr,
            betas=(cfg["prodigy_beta1"], cfg["prodigy_beta2"]),
            beta3=beta3,
            d0=cfg["prodigy_d0"],
            d_coef=cfg["prodigy_d_coef"],
            weight_decay=cfg["prodigy_weight_decay"],
            use_bias_correction=cfg["prodigy_use_bias_correction"],
            safeguard_warmup=cfg["prodigy_safeguard_warmup"],
            decouple=cfg["prodigy_decouple"],
        )
    if name == "lion":
        from lion_pytorch import Lion

        return Lion(
            param_groups,
            lr=lr,
            betas=(cfg["lion_beta1"], cfg["lion_beta2"]),
            weight_decay=cfg["lion_weight_decay"],
        )
    if name == "lion8bit":
        import bitsandbytes as bnb

        return bnb.optim.Lion8bit(
            param_groups,
            lr=lr,
            betas=(cfg["lion_beta1"], cfg["lion_beta2"]),
            weight_decay=cfg["lion_weight_decay"],
        )
    if name == "adamw_schedulefree":
        from schedulefree import AdamWScheduleFree

        # Its warmup is its own (a scheduler's warmup would fight its averaging weights).
        return AdamWScheduleFree(
            param_groups,
            lr=lr,
            betas=(cfg["schedulefree_beta1"], cfg["schedulefree_beta2"]),
            eps=cfg["schedulefree_epsilon"],
            weight_decay=cfg["schedulefree_weight_decay"],
            warmup_steps=cfg["schedulefree_warmup_steps"],
        )
    if name == "came":
        from came_pytorch import CAME

        return CAME(
            param_groups,
            lr=lr,
            betas=(cfg["came_beta1"], cfg["came_beta2"], cfg["came_beta3"]),
            eps=(cfg["came_epsilon1"], cfg["came_epsilon2"]),
            weight_decay=cfg["came_weight_decay"],
        )
    if name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=cfg["sgd_momentum"],
            nesterov=cfg["sgd_nesterov"],
            weight_decay=cfg["sgd_weight_decay"],
        )
    raise ValueError(f"unknown optimizer {name!r}")


def build_lr_scheduler(
    cfg: Mapping[str, Any], optimizer: torch.optim.Optimizer, total_steps: int, num_processes: int
) -> Any:
    """Step counts are multiplied by num_processes because accelerate steps a prepared
    scheduler once per process (as the diffusers training scripts do)."""
    from diffusers.optimization import get_polynomial_decay_schedule_with_warmup, get_scheduler

    if cfg["optimizer"] in SCHEDULE_FREE:
        return get_scheduler("constant", optimizer)  # the optimizer is its own schedule
    name = cfg["lr_scheduler"]
    warmup = 0 if name == "constant" else cfg["lr_warmup_steps"] * num_processes
    total = total_steps * num_processes
    if name == "polynomial":
        return get_polynomial_decay_schedule_with_warmup(
            optimizer, warmup, total, lr_end=cfg["lr_end"], power=cfg["lr_power"]
        )
    return get_scheduler(
        name,
        optimizer,
        num_warmup_steps=warmup,
        num_training_steps=total,
        num_cycles=cfg["lr_num_cycles"] if name == "cosine_with_restarts" else 1,
    )
