"""The training loop: one function, sections in the order the work happens.

Modelled on diffusers' training scripts: accelerate drives devices, processes, mixed
precision, gradient accumulation and state saving; peft adds the LoRA adapters. Everything
that depends on the model family (loading, precision, LoRA targets, prompt encoding, noise,
targets and loss weights, the denoiser's conditioning, saving, validation pipelines) is the
family's (trainer.families): the loop never names a family.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from registry.launch import launch_command_line
from trainer.events import EventSink
from trainer.run_config import RunConfig
from trainer.stop_signals import StopRequest
from tunerdeck_common.dataset_rules import optimizer_steps


def train(
    cfg: RunConfig,
    *,
    run_id: str,
    callback_url: str | None = None,
    callback_token: str | None = None,
) -> int:
    """Run one training; returns the process exit code (0 completed/stopped, 1 failed)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, TorchDynamoPlugin

    run_dir = Path(cfg["output_dir"]).expanduser().resolve()
    stop = StopRequest()
    stop.install()

    # ---- accelerate: devices, processes, precision, trackers -------------------------------
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
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg["gradient_accumulation_steps"],
        mixed_precision=cfg["mixed_precision"],
        cpu=cfg["use_cpu"] or _multi_process_without_gpu(),
        log_with=log_with,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(logging_dir)),
        dynamo_plugin=dynamo,
    )
    main = accelerator.is_main_process
    sink = EventSink(run_dir, run_id, callback_url, callback_token, enabled=main)
    label = cfg["run_name"] or run_id
    sink.lifecycle("starting", f"run {label} in {run_dir}")
    try:
        _train(cfg, accelerator, sink, stop, run_dir, log_with, init_kwargs)
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            raise
        message = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        sink.lifecycle("failed", message)
        sink.error(message, tb)
        print(tb, file=sys.stderr, flush=True)
        sink.close()
        return 1
    sink.close()
    return 0


def _train(
    cfg: RunConfig,
    accelerator: Any,
    sink: EventSink,
    stop: StopRequest,
    run_dir: Path,
    log_with: str | None,
    init_kwargs: dict[str, Any],
) -> None:
    import torch
    from accelerate.utils import set_seed
    from diffusers.training_utils import EMAModel
    from tqdm.auto import tqdm

    from trainer import checkpoints as ckpt
    from trainer.caches import TensorCache, encode_latent_dist
    from trainer.data import build_train_data, make_dataloader, weigh_samples
    from trainer.eval_loss import make_evaluator, split_eval
    from trainer.families import family_for
    from trainer.intervals import due
    from trainer.optim import averaged_weights, build_lr_scheduler, build_optimizer
    from trainer.samples import run_samples, sample_prompts
    from trainer.watchdog import check_loss
    from trainer.weights import register_state_hooks

    main = accelerator.is_main_process
    device = accelerator.device
    lora = cfg["model_type"] == "lora"

    # ---- process-level settings ------------------------------------------------------------
    _check_launch_fields(cfg, accelerator, sink)
    if cfg["num_cpu_threads_per_process"] > 0:
        torch.set_num_threads(cfg["num_cpu_threads_per_process"])
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = cfg["allow_tf32"]
        torch.backends.cudnn.allow_tf32 = cfg["allow_tf32"]
    set_seed(cfg["seed"])
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config_snapshot(cfg, run_dir)
        ckpt.clear_stale_temps(run_dir)
    if log_with:
        if cfg["run_name"] and "wandb" in init_kwargs:
            init_kwargs["wandb"]["name"] = cfg["run_name"]
        accelerator.init_trackers(cfg["tracker_project_name"], init_kwargs=init_kwargs)
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        accelerator.mixed_precision, torch.float32
    )

    # ---- models ----------------------------------------------------------------------------
    family = family_for(cfg["model_family"])
    sink.stage("loading model")
    with accelerator.main_process_first():  # the demo model is generated once
        model_path = family.resolve_path(cfg)
        model = family.load(cfg, model_path)
    vae, text_encoders = model.vae, list(model.text_encoders)
    # Frozen weights may live in the low-precision dtype (or quantised); trained ones stay fp32.
    trained = model.setup_training(device, weight_dtype)
    denoiser = trained[0]
    trained_te = model.trainable_text_encoders()  # indices into text_encoders
    model.set_attention_backend(cfg["attention_backend"])
    if main:
        _write_json(run_dir / "precision.json", _precision_record(cfg, accelerator, model))
    if cfg["gradient_checkpointing"]:
        denoiser.enable_gradient_checkpointing()
        for i in trained_te:
            text_encoders[i].gradient_checkpointing_enable()
    ema = None
    if not lora and cfg["use_ema"]:
        ema = EMAModel(
            denoiser.parameters(),
            decay=cfg["ema_decay"],
            update_after_step=cfg["ema_update_after_step"],
            model_cls=type(denoiser),
            model_config=denoiser.config,
        )
        ema.to(device)
        accelerator.register_for_checkpointing(ema)

    # ---- data ------------------------------------------------------------------------------
    sink.stage("preparing datasets")
    resolution = cfg["resolution"]
    entries = cfg["datasets"]
    if not entries:
        from trainer.run_config import RunConfig as _RC

        with accelerator.main_process_first():
            builtin = family.default_dataset()
        if builtin is not None:
            entries = [_RC(_demo_entry(builtin))]
    data = build_train_data(
        entries,
        resolution,
        cfg["train_batch_size"],
        cfg["seed"],
        cfg["dataloader_shuffle"],
        warn=lambda msg: sink.log(msg, "warning"),
        num_processes=accelerator.num_processes,
        process_index=accelerator.process_index,
        prior_loss_weight=cfg["prior_loss_weight"],
    )
    # Held-out images (eval_split, eval datasets) never train; encoded now for the eval loss.
    data, held = split_eval(entries, data, cfg["seed"], lambda msg: sink.log(msg, "warning"))
    evaluator = make_evaluator(
        cfg, model, held, accelerator, weight_dtype, lambda msg: sink.log(msg, "warning")
    )
    model.dataset_counts = data.image_counts()
    # Not passed to accelerator.prepare: the sampler deals each process its own batches.
    dataloader = make_dataloader(data, accelerator, cfg["dataloader_num_workers"], cfg["seed"])
    # Filled before step 1 (below); the namespace names what computes the entries, so a
    # different model, VAE or dtype never reads them.
    latent_cache = text_cache = None
    if cfg["cache_latents"]:
        vae_id = f"{model_path}|{cfg['pretrained_vae_model_name_or_path']}|vae|{vae.dtype}"
        latent_cache = TensorCache(run_dir / "cache" / "latents", vae_id)
    if cfg["cache_text_embeddings"] and not trained_te:
        te_id = f"{model_path}|te|{text_encoders[0].dtype}|{model.cache_identity()}"
        text_cache = TensorCache(run_dir / "cache" / "text", te_id)

    # ---- optimizer and schedule ------------------------------------------------------------
    grad_accum = cfg["gradient_accumulation_steps"]
    lr = cfg["learning_rate"]
    if cfg["scale_lr"]:
        lr *= grad_accum * cfg["train_batch_size"] * accelerator.num_processes
    groups = [{"params": [p for p in denoiser.parameters() if p.requires_grad], "lr": lr}]
    te_lr = cfg["text_encoder_lr"]
    for te in trained[1:]:
        groups.append({"params": [p for p in te.parameters() if p.requires_grad], "lr": te_lr})
    optimizer = build_optimizer(cfg, groups, device.type)
    per_epoch = optimizer_steps(len(data.sampler), grad_accum)  # len: this process's batches
    max_steps = cfg["max_train_steps"]
    if max_steps <= 0:
        max_steps = cfg["num_train_epochs"] * per_epoch
    num_epochs = math.ceil(max_steps / per_epoch)
    lr_scheduler = build_lr_scheduler(cfg, optimizer, max_steps, accelerator.num_processes)

    # ---- accelerate prepare, checkpoint hooks, resume --------------------------------------
    prepared = accelerator.prepare(*trained, optimizer, lr_scheduler)
    trained = list(prepared[: len(trained)])
    optimizer, lr_scheduler = prepared[len(trained) :]
    denoiser = trained[0]
    for i, te in zip(trained_te, trained[1:], strict=True):
        text_encoders[i] = te  # the prepared (possibly wrapped) encoders
    register_state_hooks(accelerator, lora, export=model.export_lora)
    global_step = ckpt.resume(accelerator, run_dir, cfg["resume_from_checkpoint"], sink.log)
    first_epoch = global_step // per_epoch
    skip_batches = (global_step % per_epoch) * grad_accum

    # ---- caches: complete before step 1, then the encoders they replace leave the device ---
    if latent_cache is not None or text_cache is not None:
        _fill_caches(
            cfg,
            accelerator,
            sink,
            model,
            data,
            latent_cache,
            text_cache,
            range(first_epoch, num_epochs),
        )

    # ---- helpers used by the loop ----------------------------------------------------------
    vae_dtype = vae.dtype  # read once: diffusers' `dtype` walks every submodule (~1 ms a call)

    def encode_images(batch: dict[str, Any]) -> torch.Tensor:
        if latent_cache is None:
            with torch.no_grad():
                dist = vae.encode(batch["pixel_values"].to(device, dtype=vae_dtype)).latent_dist
            mean, std = dist.mean, dist.std
        else:
            means, stds = [], []
            for key, hit, px in zip(
                batch["cache_keys"], batch["latents"], batch["pixel_values"], strict=True
            ):
                if hit is None:  # a cache file torn or deleted since the fill: encode it again
                    m, s = encode_latent_dist(vae, px[None])
                    hit = {"mean": m[0], "std": s[0]}
                    latent_cache.put(key, hit)
                means.append(hit["mean"].to(device))
                stds.append(hit["std"].to(device))
            mean, std = torch.stack(means), torch.stack(stds)
        # Sample here (not inside the VAE) so cached and uncached runs draw the same noise;
        # contiguous because randn_like follows the memory layout, and the VAE can return
        # channels-last views where the cache returns plain tensors.
        mean, std = mean.contiguous(), std.contiguous()
        latents = mean + std * torch.randn_like(mean)
        return model.scale_latents(latents).to(weight_dtype)

    def encode_text(captions: list[str]) -> dict[str, torch.Tensor]:
        if trained_te:
            return model.encode_prompts(text_encoders, captions)
        if text_cache is None:
            with torch.no_grad():
                return model.encode_prompts(text_encoders, captions)
        hits = []
        for caption in captions:
            hit = text_cache.get(caption)
            if hit is None:  # a cache file torn or deleted since the fill: encode it again
                with torch.no_grad():
                    out = model.encode_prompts(text_encoders, [caption])
                hit = {k: v[0] for k, v in out.items()}
                text_cache.put(caption, hit)
            hits.append(hit)
        return {k: torch.stack([h[k].to(device) for h in hits]) for k in hits[0]}

    def save_checkpoint(step: int) -> None:
        tmp = ckpt.temp_path(run_dir, step)
        with averaged_weights(optimizer):
            accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if main:
            path = ckpt.finalize(run_dir, step, {"step": step, "epoch": step // per_epoch})
            for old in ckpt.prune(run_dir, cfg["checkpoints_total_limit"]):
                sink.log(f"removed old checkpoint {old.name}")
            sink.emit("checkpoint", {"step": step, "path": str(path)})
        accelerator.wait_for_everyone()

    # Read at the first validation only: an edit of the prompt library mid-run cannot break it.
    prompts: list[Any] = []

    def validate(step: int) -> None:
        if not main:
            # The main process's round trip, so a schedule-free run's replicas stay identical.
            with averaged_weights(optimizer):
                pass
            return
        if not prompts:
            prompts.extend(sample_prompts(cfg))
        te_models = [accelerator.unwrap_model(t) for t in text_encoders]
        u = accelerator.unwrap_model(denoiser)
        with averaged_weights(optimizer):  # outside EMA's swap: it moves the weights it finds
            if ema is not None:
                ema.store(u.parameters())
                ema.copy_to(u.parameters())
            try:
                images = run_samples(
                    cfg, model, u, te_models, step, run_dir, device, weight_dtype, prompts
                )
            finally:
                if ema is not None:
                    ema.restore(u.parameters())
        if images:
            sink.emit("validation", {"step": step, "images": images})

    def stop_requested() -> bool:
        flag = stop.requested
        if accelerator.num_processes > 1:  # every process must stop at the same step
            t = torch.tensor([1.0 if flag else 0.0], device=device)
            flag = bool(accelerator.reduce(t, reduction="sum").item() > 0)
        return flag

    # ---- training --------------------------------------------------------------------------
    validation_steps = cfg["validation_steps"]
    checkpointing_steps = cfg["checkpointing_steps"]
    validation_epochs = cfg["validation_epoch_interval"]
    checkpoint_epochs = cfg["checkpoint_epoch_interval"]
    logging_steps = cfg["logging_steps"]
    max_grad_norm = cfg["max_grad_norm"]
    clip_params = [p for g in optimizer.param_groups for p in g["params"]]  # fixed: list once
    validating = validation_steps > 0 or validation_epochs > 0
    if validating and cfg["validation_on_startup"] and global_step == 0:
        validate(0)
    if evaluator is not None and global_step == 0:
        evaluator.report(0, denoiser, text_encoders, accelerator, sink, log_with)
    progress = tqdm(
        total=max_steps,
        initial=global_step,
        desc="steps",
        disable=not main or None,  # None: only when attached to a terminal
        dynamic_ncols=True,
    )
    compiling = cfg["dynamo_backend"] != "no"
    sink.stage("compiling the model (first step)" if compiling else "first training step")
    sink.lifecycle("running", f"training {max_steps} steps")
    for m in trained:
        m.train()
    optimizer.train()  # schedule-free optimizers: step at the training point (no-op for others)
    last_saved = -1
    window_t, window_step = time.perf_counter(), global_step
    stopped = False
    step_loss = torch.zeros((), device=device)
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_steps or stopped:
            break
        loader = dataloader
        if epoch == first_epoch and skip_batches:
            loader = accelerator.skip_first_batches(dataloader, skip_batches)
        # Through the loader: accelerate re-applies its own epoch counter on every iter().
        loader.set_epoch(epoch)
        data.sampler.set_epoch(epoch)
        for batch in loader:
            with accelerator.accumulate(*trained):
                latents = encode_images(batch)
                noised = model.add_noise(latents, batch)
                weigh_samples(
                    noised, batch, cfg["prior_loss_weight"], cfg["masked_loss_probability"]
                )
                embeds = encode_text(batch["captions"])
                pred = model.predict(denoiser, noised, embeds, batch)
                loss = model.loss(pred, noised)
                check_loss(loss, global_step, cfg, accelerator, sink, save_checkpoint)  # NaN/inf
                step_loss += loss.detach() / grad_accum
                accelerator.backward(loss)
                if accelerator.sync_gradients and max_grad_norm > 0:
                    accelerator.clip_grad_norm_(clip_params, max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if not accelerator.sync_gradients:
                continue

            # ---- one optimizer step done: bookkeeping, events, validation, checkpoints -----
            global_step += 1
            if ema is not None:
                ema.step(accelerator.unwrap_model(denoiser).parameters())
            if logging_steps > 0 and global_step % logging_steps == 0:
                loss_value = step_loss
                if accelerator.num_processes > 1:
                    loss_value = accelerator.reduce(step_loss.detach().clone(), reduction="mean")
                loss_f = float(loss_value)
                now = time.perf_counter()
                ips = (global_step - window_step) / max(now - window_t, 1e-9)
                window_t, window_step = now, global_step
                current_lr = lr_scheduler.get_last_lr()[0]
                sink.emit(
                    "progress",
                    {
                        "step": global_step,
                        "max_steps": max_steps,
                        "epoch": epoch,
                        "loss": loss_f,
                        "lr": current_lr,
                        "it_per_s": ips,
                        "eta_s": (max_steps - global_step) / ips if ips > 0 else None,
                    },
                )
                if log_with:
                    accelerator.log({"loss": loss_f, "lr": current_lr}, step=global_step)
                progress.set_postfix(loss=f"{loss_f:.4f}", lr=f"{current_lr:.2e}", refresh=False)
            step_loss = torch.zeros((), device=device)
            progress.update(1)
            if due(global_step, per_epoch, validation_steps, validation_epochs):
                validate(global_step)
            if evaluator is not None and evaluator.due(global_step):
                with averaged_weights(optimizer):
                    evaluator.report(
                        global_step, denoiser, text_encoders, accelerator, sink, log_with
                    )
            if due(global_step, per_epoch, checkpointing_steps, checkpoint_epochs):
                save_checkpoint(global_step)
                last_saved = global_step
            if stop_requested():
                stopped = True
                break
            if global_step >= max_steps:
                break
    progress.close()

    # ---- the end: a stop saves a checkpoint; completion also writes the final weights ------
    if stopped:
        sink.lifecycle("stopping", f"{stop.signal_name or 'stop'} received at step {global_step}")
        if last_saved != global_step:
            save_checkpoint(global_step)
        sink.lifecycle(
            "stopped", f"stopped at step {global_step}; resume with resume_from_checkpoint=latest"
        )
        accelerator.end_training()
        return
    if last_saved != global_step:
        save_checkpoint(global_step)  # so the run can be extended later
    accelerator.wait_for_everyone()
    if main:
        with averaged_weights(optimizer):
            weights_dir = model.save_weights(
                accelerator, denoiser, text_encoders, ema, run_dir / "weights"
            )
        sink.log(f"final weights written to {weights_dir}")
    accelerator.end_training()
    sink.lifecycle("completed", f"trained {global_step} steps")


def _fill_caches(
    cfg: RunConfig,
    accelerator: Any,
    sink: EventSink,
    model: Any,
    data: Any,
    latent_cache: Any,
    text_cache: Any,
    epochs: range,
) -> None:
    """Fill the caches with every variant the remaining epochs will use (the sampler's random
    decisions replayed without decoding images; each process fills its own batches' items);
    then move the VAE and/or the frozen text encoders to the CPU (validation borrows them
    back)."""
    import torch

    from trainer.caches import (
        ThrottledProgress,
        fill_latent_cache,
        fill_text_cache,
        planned_items,
    )

    def epoch_batches(epoch: int) -> Any:
        data.sampler.set_epoch(epoch)
        return iter(data.sampler)

    plans = planned_items(data.dataset, epoch_batches, epochs)
    batch = max(1, cfg["train_batch_size"])
    share = " (this process's share)" if accelerator.num_processes > 1 else ""

    def encode_text(captions: list[str]) -> Any:
        return model.encode_prompts(model.text_encoders, captions)

    if latent_cache is not None:
        log = ThrottledProgress(
            lambda d, t: (
                sink.log(f"caching latents {d}/{t}{share}"),
                sink.stage("caching latents", d, t),
            )
        )
        fill_latent_cache(latent_cache, plans, data.dataset.pixels, model.vae, batch, log)
    if text_cache is not None:
        log = ThrottledProgress(
            lambda d, t: (
                sink.log(f"caching text embeddings {d}/{t}{share}"),
                sink.stage("caching text embeddings", d, t),
            )
        )
        captions = [p.caption for p in plans]
        fill_text_cache(text_cache, captions, encode_text, max(batch, 16), log)
    accelerator.wait_for_everyone()
    moved = []
    if latent_cache is not None:
        data.dataset.latent_cache = latent_cache  # training reads latents, never pixels
        model.vae.to("cpu")
        moved.append(f"VAE on {next(model.vae.parameters()).device}")
    if text_cache is not None:
        for te in model.text_encoders:
            te.to("cpu")
        moved.append(f"text encoders on {next(model.text_encoders[0].parameters()).device}")
    if accelerator.device.type == "cuda":
        torch.cuda.empty_cache()
    sink.log(f"caches complete ({len(plans)} item variants); {', '.join(moved)}")


def _multi_process_without_gpu() -> bool:
    """Several processes (torchrun env) on a machine without CUDA: use CPU + gloo, which
    accelerate only does when asked for the CPU explicitly."""
    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available()


def _check_launch_fields(cfg: RunConfig, accelerator: Any, sink: EventSink) -> None:
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


def _demo_entry(path: Path) -> dict[str, Any]:
    from registry.defaults import default_dataset

    entry = default_dataset()
    entry.update({"name": "demo", "path": str(path), "caption_strategy": "textfile"})
    return entry


def _precision_record(cfg: RunConfig, accelerator: Any, model: Any) -> dict[str, Any]:
    """What precision each part ran in: how its weights are stored (dtype, or the quantised
    tensor type), the mixed precision of the computation, and the trained weights' dtype."""
    return {
        "mixed_precision": accelerator.mixed_precision,
        "base_model_precision": cfg["base_model_precision"],
        "parts": model.precisions(),
        "trained_weights": "float32",
    }


def _write_json(path: Path, value: Any) -> None:
    import json

    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _write_config_snapshot(cfg: RunConfig, run_dir: Path) -> None:
    from registry.config_io import save_config_file

    with contextlib.suppress(OSError):
        save_config_file(run_dir / "config.toml", cfg.plain())
