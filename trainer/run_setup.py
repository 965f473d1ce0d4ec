"""A run's process-level set-up around the loop: the Accelerator (devices, processes, mixed
precision, trackers), checks that the launch settings took, and the records a run writes
next to its outputs (config snapshot, precision record). No training happens here."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from registry.launch import launch_command_line
from trainer.events import EventSink
from trainer.run_config import RunConfig


def make_accelerator(cfg: RunConfig, run_dir: Path) -> tuple[Any, str | None, dict[str, Any]]:
    """The run's Accelerator, the tracker it logs to (None: none) and the trackers' options."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin

    report_to = cfg["report_to"]
    log_with = None if report_to == "none" else report_to
    init_kwargs: dict[str, Any] = {}
    logging_dir = run_dir
    if report_to == "tensorboard":
        logging_dir = run_dir / cfg["logging_dir"]
    elif report_to == "wandb":
        init_kwargs["wandb"] = {"mode": cfg["wandb_mode"]}
        if cfg["wandb_entity"]:
            init_kwargs["wandb"]["entity"] = cfg["wandb_entity"]
    dynamo = None
    if cfg["dynamo_backend"] != "no":
        dynamo = TorchDynamoPlugin(
            backend=cfg["dynamo_backend"],
            mode=cfg["dynamo_mode"],
            fullgraph=cfg["dynamo_use_fullgraph"],
            dynamic=cfg["dynamo_use_dynamic"],
        )
    _cache_package_checks()
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"],
        mixed_precision=cfg["mixed_precision"],
        cpu=cfg["use_cpu"] or multi_process_without_gpu(),
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(logging_dir)),
        dynamo_plugin=dynamo,
    )
    return accelerator, log_with, init_kwargs


def _cache_package_checks() -> None:
    """accelerate's optimizer wrapper asks whether the LOMO package is installed twice per
    step, each time searching sys.path (about 0.6 ms a step, 1% of a small model's step on
    the CPU). Installed packages do not change during a run: answer once."""
    import functools

    import accelerate.optimizer

    check = accelerate.optimizer.is_lomo_available
    if not hasattr(check, "cache_clear"):  # not wrapped yet (one run per process, usually)
        accelerate.optimizer.is_lomo_available = functools.cache(check)


def multi_process_without_gpu() -> bool:
    """Several processes (torchrun env) on a machine without CUDA: use CPU + gloo, which
    accelerate only does when asked for the CPU explicitly."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def check_launch_fields(cfg: RunConfig, accelerator: Any, sink: EventSink) -> None:
    """The launch settings belong to `accelerate launch`; here we only check they took."""
    wanted = cfg["num_processes"] * cfg["num_machines"]
    if wanted != accelerator.num_processes:
        sink.log(
            f"num_processes x num_machines = {wanted} but this run has "
            f"{accelerator.num_processes} process(es): start it with "
            f"`{launch_command_line(cfg)}` (the UI does) to use several",
            "warning",
        )
    if cfg["num_machines"] > 1:
        sink.log(
            f"machine {cfg['machine_rank']} of {cfg['num_machines']}, rendezvous "
            f"{cfg['rdzv_backend']} at {cfg['main_process_ip']}:{cfg['main_process_port']}"
        )
    elif cfg["num_processes"] > 1:
        port, actual = cfg["main_process_port"], os.environ.get("MASTER_PORT")
        if actual and actual != str(port):
            sink.log(f"main_process_port={port} but this run uses port {actual}", "warning")
    gpu_ids = cfg["gpu_ids"]
    if gpu_ids not in ("", "all") and accelerator.device.type == "cuda":
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            sink.log(
                f"gpu_ids={gpu_ids} is applied by accelerate launch; this run sees every GPU",
                "warning",
            )


def demo_entry(path: Path) -> dict[str, Any]:
    """A dataset entry for the family's built-in demo images (a run without datasets)."""
    from registry.defaults import default_dataset

    entry = default_dataset()
    entry.update({"name": "demo", "path": str(path), "caption_strategy": "textfile"})
    return entry


def precision_record(cfg: RunConfig, accelerator: Any, model: Any) -> dict[str, Any]:
    """What precision each part ran in: how its weights are stored (dtype, or the quantised
    tensor type), the mixed precision of the computation, and the trained weights' dtype."""
    return {
        "mixed_precision": accelerator.mixed_precision,
        "base_model_precision": cfg["base_model_precision"],
        "parts": model.precisions(),
        "trained_weights": "float32",
    }


def write_json(path: Path, value: Any) -> None:
    """Write `value` as JSON atomically (a temp file, then a rename)."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def write_config_snapshot(cfg: RunConfig, run_dir: Path) -> None:
    """The effective configuration next to the outputs; best effort (a read-only dir is fine)."""
    from registry.config_io import save_config_file

    with contextlib.suppress(OSError):
        save_config_file(run_dir / "config.toml", cfg.plain())
