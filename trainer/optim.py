"""Optimizers and learning-rate schedules named by the registry."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

import torch


class OptimizerUnavailable(RuntimeError):
    pass


def build_optimizer(
    cfg: Mapping[str, Any], param_groups: list[dict[str, Any]], device_type: str
) -> torch.optim.Optimizer:
    name = cfg["optimizer"]
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
        if device_type != "cuda" or importlib.util.find_spec("bitsandbytes") is None:
            raise OptimizerUnavailable(
                "optimizer adamw8bit needs an NVIDIA GPU (CUDA) and the bitsandbytes package "
                f"(device here: {device_type}); choose adamw instead"
            )
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
