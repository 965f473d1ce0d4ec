"""Optimizers and learning-rate schedules named by the registry.

An optimizer this machine cannot run (wrong device, optional package missing) is refused
with the registry's own sentence, the one the UI shows beside the greyed-out choice.
Schedule-free AdamW trains at one point and is evaluated at another: `averaged_weights`
switches to the evaluated weights around validation and saving.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator, Mapping
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


Cfg = Mapping[str, Any]
Params = list[dict[str, Any]]


def _adam_args(cfg: Cfg) -> dict[str, Any]:
    """The AdamW fields both AdamW variants take."""
    return {
        "betas": (cfg["adam_beta1"], cfg["adam_beta2"]),
        "weight_decay": cfg["adam_weight_decay"],
        "eps": cfg["adam_epsilon"],
    }


def _adamw(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, amsgrad=cfg["adam_amsgrad"], **_adam_args(cfg))


def _adamw8bit(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    import bitsandbytes as bnb

    return bnb.optim.AdamW8bit(params, lr=lr, **_adam_args(cfg))


def _adafactor(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    from transformers.optimization import Adafactor

    relative = cfg["adafactor_relative_step"]
    return Adafactor(
        params,
        lr=None if relative else lr,
        relative_step=relative,
        scale_parameter=cfg["adafactor_scale_parameter"],
        warmup_init=cfg["adafactor_warmup_init"] if relative else False,
        decay_rate=cfg["adafactor_decay_rate"],
        clip_threshold=cfg["adafactor_clip_threshold"],
        weight_decay=cfg["adafactor_weight_decay"],
    )


def _prodigy(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    from prodigyopt import Prodigy

    beta3 = cfg["prodigy_beta3"] or None  # 0 means prodigy's default sqrt(beta2)
    return Prodigy(
        params,
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


def _lion_args(cfg: Cfg) -> dict[str, Any]:
    """The Lion fields both Lion variants take."""
    return {
        "betas": (cfg["lion_beta1"], cfg["lion_beta2"]),
        "weight_decay": cfg["lion_weight_decay"],
    }


def _lion(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    from lion_pytorch import Lion

    return Lion(params, lr=lr, **_lion_args(cfg))


def _lion8bit(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    import bitsandbytes as bnb

    return bnb.optim.Lion8bit(params, lr=lr, **_lion_args(cfg))


def _adamw_schedulefree(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    from schedulefree import AdamWScheduleFree

    # Its warmup is its own (a scheduler's warmup would fight its averaging weights).
    return AdamWScheduleFree(
        params,
        lr=lr,
        betas=(cfg["schedulefree_beta1"], cfg["schedulefree_beta2"]),
        eps=cfg["schedulefree_epsilon"],
        weight_decay=cfg["schedulefree_weight_decay"],
        warmup_steps=cfg["schedulefree_warmup_steps"],
    )


def _came(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    from came_pytorch import CAME

    return CAME(
        params,
        lr=lr,
        betas=(cfg["came_beta1"], cfg["came_beta2"], cfg["came_beta3"]),
        eps=(cfg["came_epsilon1"], cfg["came_epsilon2"]),
        weight_decay=cfg["came_weight_decay"],
    )


def _sgd(cfg: Cfg, params: Params, lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=lr,
        momentum=cfg["sgd_momentum"],
        nesterov=cfg["sgd_nesterov"],
        weight_decay=cfg["sgd_weight_decay"],
    )


# Registry optimizer name -> builder (its package is imported only when chosen).
BUILDERS: dict[str, Callable[[Cfg, Params, float], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "adamw8bit": _adamw8bit,
    "adafactor": _adafactor,
    "prodigy": _prodigy,
    "lion": _lion,
    "lion8bit": _lion8bit,
    "adamw_schedulefree": _adamw_schedulefree,
    "came": _came,
    "sgd": _sgd,
}


def build_optimizer(cfg: Cfg, param_groups: Params, device_type: str) -> torch.optim.Optimizer:
    """The optimizer `cfg["optimizer"]` names over `param_groups` (lr: the first group's);
    OptimizerUnavailable with the registry's reason when it cannot run on `device_type`."""
    name = cfg["optimizer"]
    why = unavailable_reason(name, device_type)
    if why:
        raise OptimizerUnavailable(f"optimizer {name!r} is not available here: {why}")
    lr = param_groups[0]["lr"]
    builder = BUILDERS.get(name)
    if builder is None:
        raise ValueError(f"unknown optimizer {name!r}")
    return builder(cfg, param_groups, lr)


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
