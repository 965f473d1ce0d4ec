"""The training loop: one run's state in one object, its methods in the order the work happens.

Modelled on diffusers' training scripts: accelerate drives devices, processes, mixed
precision, gradient accumulation and state saving; peft adds the LoRA adapters. Everything
that depends on the model family (loading, precision, LoRA targets, prompt encoding, noise,
targets and loss weights, the denoiser's conditioning, saving, validation pipelines) is the
family's (trainer.families): the loop never names a family. Process set-up and the run's
records are trainer.run_setup's; the cache fill is trainer.caches'.
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch

from trainer import checkpoints as ckpt
from trainer.caches import TensorCache, fill_caches, latent_dist, text_embeds
from trainer.data import build_train_data, make_dataloader, weigh_samples
from trainer.eval_loss import make_evaluator, split_eval
from trainer.events import EventSink
from trainer.families import family_for
from trainer.intervals import due
from trainer.optim import averaged_weights, build_lr_scheduler, build_optimizer
from trainer.run_config import RunConfig
from trainer.run_setup import (
    check_launch_fields,
    demo_entry,
    make_accelerator,
    precision_record,
    write_config_snapshot,
    write_json,
)
from trainer.samples import run_samples, sample_prompts
from trainer.stop_signals import StopRequest
from trainer.watchdog import check_loss
from trainer.weights import register_state_hooks
from tunerdeck_common.dataset_rules import optimizer_steps


def train(
    cfg: RunConfig,
    *,
    run_id: str,
    callback_url: str | None = None,
    callback_token: str | None = None,
) -> int:
    """Run one training; returns the process exit code (0 completed/stopped, 1 failed)."""
    run_dir = Path(cfg["output_dir"]).expanduser().resolve()
    stop = StopRequest()
    stop.install()
    accelerator, log_with, init_kwargs = make_accelerator(cfg, run_dir)
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
    run = _Run(cfg, accelerator, sink, stop, run_dir, log_with)
    run.set_up_process(init_kwargs)
    run.load_models()
    run.load_data()
    run.build_optimizer()
    run.prepare_and_resume()
    run.fill_caches()
    run.start()
    run.train_epochs()
    run.finish()


class _Run:
    """One run's state. `_train` calls the public methods once each, in order; everything
    that draws random numbers does so in the same order as a single straight-line loop."""

    def __init__(
        self,
        cfg: RunConfig,
        accelerator: Any,
        sink: EventSink,
        stop: StopRequest,
        run_dir: Path,
        log_with: str | None,
    ) -> None:
        self.cfg, self.accelerator, self.sink, self.stop = cfg, accelerator, sink, stop
        self.run_dir, self.log_with = run_dir, log_with
        self.main: bool = accelerator.is_main_process
        self.device: Any = accelerator.device
        self.lora = cfg["model_type"] == "lora"
        self.ema: Any = None
        self.latent_cache: Any = None
        self.text_cache: Any = None
        # Read at the first validation only: an edit of the prompt library mid-run cannot break it.
        self.prompts: list[Any] = []

    # ---- process-level settings ----------------------------------------------------------------
    def set_up_process(self, init_kwargs: dict[str, Any]) -> None:
        from accelerate.utils import set_seed

        cfg, accelerator = self.cfg, self.accelerator
        check_launch_fields(cfg, accelerator, self.sink)
        if cfg["num_cpu_threads_per_process"] > 0:
            torch.set_num_threads(cfg["num_cpu_threads_per_process"])
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = cfg["allow_tf32"]
            torch.backends.cudnn.allow_tf32 = cfg["allow_tf32"]
        set_seed(cfg["seed"])
        if self.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_config_snapshot(cfg, self.run_dir)
            ckpt.clear_stale_temps(self.run_dir)
        if self.log_with:
            if cfg["run_name"] and "wandb" in init_kwargs:
                init_kwargs["wandb"]["name"] = cfg["run_name"]
            accelerator.init_trackers(cfg["tracker_project_name"], init_kwargs=init_kwargs)
        self.weight_dtype: Any = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
            accelerator.mixed_precision, torch.float32
        )

    # ---- models --------------------------------------------------------------------------------
    def load_models(self) -> None:
        from diffusers.training_utils import EMAModel

        cfg, accelerator = self.cfg, self.accelerator
        self.family: Any = family_for(cfg["model_family"])
        self.sink.stage("loading model")
        with accelerator.main_process_first():  # the demo model is generated once
            self.model_path: Any = self.family.resolve_path(cfg)
            self.model: Any = self.family.load(cfg, self.model_path)
        model = self.model
        self.vae: Any = model.vae
        self.text_encoders: list[Any] = list(model.text_encoders)
        # Frozen weights may live in the low-precision dtype (or quantised); trained ones stay fp32.
        self.trained: list[Any] = list(model.setup_training(self.device, self.weight_dtype))
        self.denoiser: Any = self.trained[0]
        self.trained_te: list[int] = list(model.trainable_text_encoders())  # text_encoders idx
        model.set_attention_backend(cfg["attention_backend"])
        if self.main:
            write_json(self.run_dir / "precision.json", precision_record(cfg, accelerator, model))
        if cfg["gradient_checkpointing"]:
            self.denoiser.enable_gradient_checkpointing()
            for i in self.trained_te:
                self.text_encoders[i].gradient_checkpointing_enable()
        if not self.lora and cfg["use_ema"]:
            self.ema = EMAModel(
                self.denoiser.parameters(),
                decay=cfg["ema_decay"],
                update_after_step=cfg["ema_update_after_step"],
                model_cls=type(self.denoiser),
                model_config=self.denoiser.config,
            )
            self.ema.to(self.device)
            accelerator.register_for_checkpointing(self.ema)

    # ---- data ----------------------------------------------------------------------------------
    def load_data(self) -> None:
        cfg, accelerator, sink, model = self.cfg, self.accelerator, self.sink, self.model
        self.sink.stage("preparing datasets")
        entries = cfg["datasets"]
        if not entries:
            with accelerator.main_process_first():
                builtin = self.family.default_dataset()
            if builtin is not None:
                entries = [RunConfig(demo_entry(builtin))]
        data = build_train_data(
            entries,
            cfg["resolution"],
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
        self.evaluator: Any = make_evaluator(
            cfg, model, held, accelerator, self.weight_dtype, lambda msg: sink.log(msg, "warning")
        )
        self.data: Any = data
        model.dataset_counts = data.image_counts()
        # Not passed to accelerator.prepare: the sampler deals each process its own batches.
        self.dataloader: Any = make_dataloader(
            data, accelerator, cfg["dataloader_num_workers"], cfg["seed"]
        )
        # Filled before step 1 (fill_caches); the namespace names what computes the entries,
        # so a different model, VAE or dtype never reads them.
        cache_dir, model_path = self.run_dir / "cache", self.model_path
        if cfg["cache_latents"]:
            vae_id = f"{model_path}|{cfg['pretrained_vae_model_name_or_path']}|vae|{self.vae.dtype}"
            self.latent_cache = TensorCache(cache_dir / "latents", vae_id)
        if cfg["cache_text_embeddings"] and not self.trained_te:
            te_id = f"{model_path}|te|{self.text_encoders[0].dtype}|{model.cache_identity()}"
            self.text_cache = TensorCache(cache_dir / "text", te_id)

    # ---- optimizer and schedule ----------------------------------------------------------------
    def build_optimizer(self) -> None:
        cfg, accelerator = self.cfg, self.accelerator
        self.grad_accum: int = cfg["gradient_accumulation_steps"]
        lr = cfg["learning_rate"]
        if cfg["scale_lr"]:
            lr *= self.grad_accum * cfg["train_batch_size"] * accelerator.num_processes
        params = [p for p in self.denoiser.parameters() if p.requires_grad]
        groups = [{"params": params, "lr": lr}]
        te_lr = cfg["text_encoder_lr"]
        for te in self.trained[1:]:
            groups.append({"params": [p for p in te.parameters() if p.requires_grad], "lr": te_lr})
        self.optimizer: Any = build_optimizer(cfg, groups, self.device.type)
        # len: this process's batches
        self.per_epoch: int = optimizer_steps(len(self.data.sampler), self.grad_accum)
        max_steps = cfg["max_train_steps"]
        if max_steps <= 0:
            max_steps = cfg["num_train_epochs"] * self.per_epoch
        self.max_steps: int = max_steps
        self.num_epochs = math.ceil(max_steps / self.per_epoch)
        self.lr_scheduler: Any = build_lr_scheduler(
            cfg, self.optimizer, max_steps, accelerator.num_processes
        )

    # ---- accelerate prepare, checkpoint hooks, resume ------------------------------------------
    def prepare_and_resume(self) -> None:
        accelerator, trained = self.accelerator, self.trained
        prepared = accelerator.prepare(*trained, self.optimizer, self.lr_scheduler)
        self.trained = trained = list(prepared[: len(trained)])
        self.optimizer, self.lr_scheduler = prepared[len(trained) :]
        self.denoiser = trained[0]
        for i, te in zip(self.trained_te, trained[1:], strict=True):
            self.text_encoders[i] = te  # the prepared (possibly wrapped) encoders
        register_state_hooks(accelerator, self.lora, export=self.model.export_lora)
        resume = self.cfg["resume_from_checkpoint"]
        self.global_step: int = ckpt.resume(accelerator, self.run_dir, resume, self.sink.log)
        self.first_epoch = self.global_step // self.per_epoch
        self.skip_batches = (self.global_step % self.per_epoch) * self.grad_accum

    # ---- caches: complete before step 1, then the encoders they replace leave the device -------
    def fill_caches(self) -> None:
        # read once: diffusers' `dtype` walks every submodule (~1 ms a call)
        self.vae_dtype: Any = self.vae.dtype
        if self.latent_cache is None and self.text_cache is None:
            return
        epochs = range(self.first_epoch, self.num_epochs)
        caches = (self.latent_cache, self.text_cache)
        fill_caches(self.cfg, self.accelerator, self.sink, self.model, self.data, *caches, epochs)

    # ---- start: samples and eval loss at step 0, progress bar, training mode -------------------
    def start(self) -> None:
        from tqdm.auto import tqdm

        cfg = self.cfg
        validating = cfg["validation_steps"] > 0 or cfg["validation_epoch_interval"] > 0
        if validating and cfg["validation_on_startup"] and self.global_step == 0:
            self.validate(0)
        if self.evaluator is not None and self.global_step == 0:
            self.report_eval_loss(0)
        self.progress: Any = tqdm(
            total=self.max_steps,
            initial=self.global_step,
            desc="steps",
            disable=not self.main or None,  # None: only when attached to a terminal
            dynamic_ncols=True,
        )
        compiling = cfg["dynamo_backend"] != "no"
        self.sink.stage("compiling the model (first step)" if compiling else "first training step")
        self.sink.lifecycle("running", f"training {self.max_steps} steps")
        for m in self.trained:
            m.train()
        self.optimizer.train()  # schedule-free: step at the training point (no-op for others)
        # fixed: listed once
        self.clip_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.last_saved = -1
        self.window_t, self.window_step = time.perf_counter(), self.global_step
        self.stopped = False
        self.step_loss: Any = torch.zeros((), device=self.device)

    # ---- training ------------------------------------------------------------------------------
    def train_epochs(self) -> None:
        accelerator = self.accelerator
        for epoch in range(self.first_epoch, self.num_epochs):
            if self.global_step >= self.max_steps or self.stopped:
                break
            loader = self.dataloader
            if epoch == self.first_epoch and self.skip_batches:
                loader = accelerator.skip_first_batches(self.dataloader, self.skip_batches)
            # Through the loader: accelerate re-applies its own epoch counter on every iter().
            loader.set_epoch(epoch)
            self.data.sampler.set_epoch(epoch)
            for batch in loader:
                self.step(batch)
                if not accelerator.sync_gradients:
                    continue
                if self.after_optimizer_step(epoch):
                    break
        self.progress.close()

    def step(self, batch: dict[str, Any]) -> None:
        """One micro-batch: forward, loss, backward; the optimizer steps when accumulation syncs."""
        cfg, accelerator, model = self.cfg, self.accelerator, self.model
        max_grad_norm = cfg["max_grad_norm"]
        with accelerator.accumulate(*self.trained):
            latents = self.encode_images(batch)
            noised = model.add_noise(latents, batch)
            weigh_samples(noised, batch, cfg["prior_loss_weight"], cfg["masked_loss_probability"])
            embeds = self.encode_text(batch["captions"])
            pred = model.predict(self.denoiser, noised, embeds, batch)
            loss = model.loss(pred, noised)
            # NaN/inf
            check_loss(loss, self.global_step, cfg, accelerator, self.sink, self.save_checkpoint)
            self.step_loss += loss.detach() / self.grad_accum
            accelerator.backward(loss)
            if accelerator.sync_gradients and max_grad_norm > 0:
                accelerator.clip_grad_norm_(self.clip_params, max_grad_norm)
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)

    # ---- one optimizer step done: bookkeeping, events, eval loss, samples, checkpoints ---------
    def after_optimizer_step(self, epoch: int) -> bool:
        """Everything due after optimizer step; True when training ends here (stop or done)."""
        cfg, per_epoch = self.cfg, self.per_epoch
        self.global_step += 1
        step = self.global_step
        if self.ema is not None:
            self.ema.step(self.accelerator.unwrap_model(self.denoiser).parameters())
        logging_steps = cfg["logging_steps"]
        if logging_steps > 0 and step % logging_steps == 0:
            self.log_progress(epoch)
        self.step_loss = torch.zeros((), device=self.device)
        self.progress.update(1)
        if due(step, per_epoch, cfg["validation_steps"], cfg["validation_epoch_interval"]):
            self.validate(step)
        if self.evaluator is not None and self.evaluator.due(step):
            self.report_eval_loss(step)
        if due(step, per_epoch, cfg["checkpointing_steps"], cfg["checkpoint_epoch_interval"]):
            self.save_checkpoint(step)
            self.last_saved = step
        if self.stop_requested():
            self.stopped = True
            return True
        return step >= self.max_steps

    def log_progress(self, epoch: int) -> None:
        accelerator, step, max_steps = self.accelerator, self.global_step, self.max_steps
        loss_value = self.step_loss
        if accelerator.num_processes > 1:
            loss_value = accelerator.reduce(self.step_loss.detach().clone(), reduction="mean")
        loss_f = float(loss_value)
        now = time.perf_counter()
        ips = (step - self.window_step) / max(now - self.window_t, 1e-9)
        self.window_t, self.window_step = now, step
        current_lr = self.lr_scheduler.get_last_lr()[0]
        self.sink.emit(
            "progress",
            {
                "step": step,
                "max_steps": max_steps,
                "epoch": epoch,
                "loss": loss_f,
                "lr": current_lr,
                "it_per_s": ips,
                "eta_s": (max_steps - step) / ips if ips > 0 else None,
            },
        )
        if self.log_with:
            accelerator.log({"loss": loss_f, "lr": current_lr}, step=step)
        self.progress.set_postfix(loss=f"{loss_f:.4f}", lr=f"{current_lr:.2e}", refresh=False)

    # ---- the end: a stop saves a checkpoint; completion also writes the final weights ----------
    def finish(self) -> None:
        step, accelerator, sink = self.global_step, self.accelerator, self.sink
        if self.stopped:
            sink.lifecycle("stopping", f"{self.stop.signal_name or 'stop'} received at step {step}")
            if self.last_saved != step:
                self.save_checkpoint(step)
            sink.lifecycle(
                "stopped", f"stopped at step {step}; resume with resume_from_checkpoint=latest"
            )
            accelerator.end_training()
            return
        if self.last_saved != step:
            self.save_checkpoint(step)  # so the run can be extended later
        accelerator.wait_for_everyone()
        if self.main:
            with averaged_weights(self.optimizer):
                weights_dir = self.model.save_weights(
                    accelerator,
                    self.denoiser,
                    self.text_encoders,
                    self.ema,
                    self.run_dir / "weights",
                )
            sink.log(f"final weights written to {weights_dir}")
        accelerator.end_training()
        sink.lifecycle("completed", f"trained {step} steps")

    # ---- helpers the steps use -----------------------------------------------------------------
    def encode_images(self, batch: dict[str, Any]) -> Any:
        mean, std = latent_dist(self.vae, self.vae_dtype, self.latent_cache, batch, self.device)
        # Sample here (not inside the VAE) so cached and uncached runs draw the same noise;
        # contiguous because randn_like follows the memory layout, and the VAE can return
        # channels-last views where the cache returns plain tensors.
        mean, std = mean.contiguous(), std.contiguous()
        latents = mean + std * torch.randn_like(mean)
        return self.model.scale_latents(latents).to(self.weight_dtype)

    def encode_text(self, captions: list[str]) -> Any:
        model, text_encoders = self.model, self.text_encoders
        if self.trained_te:
            return model.encode_prompts(text_encoders, captions)
        return text_embeds(model, text_encoders, self.text_cache, captions, self.device)

    def save_checkpoint(self, step: int) -> None:
        accelerator, run_dir = self.accelerator, self.run_dir
        tmp = ckpt.temp_path(run_dir, step)
        with averaged_weights(self.optimizer):
            accelerator.save_state(str(tmp))
        accelerator.wait_for_everyone()
        if self.main:
            path = ckpt.finalize(run_dir, step, {"step": step, "epoch": step // self.per_epoch})
            for old in ckpt.prune(run_dir, self.cfg["checkpoints_total_limit"]):
                self.sink.log(f"removed old checkpoint {old.name}")
            self.sink.emit("checkpoint", {"step": step, "path": str(path)})
        accelerator.wait_for_everyone()

    def validate(self, step: int) -> None:
        accelerator, ema = self.accelerator, self.ema
        if not self.main:
            # The main process's round trip, so a schedule-free run's replicas stay identical.
            with averaged_weights(self.optimizer):
                pass
            return
        if not self.prompts:
            self.prompts.extend(sample_prompts(self.cfg))
        te_models = [accelerator.unwrap_model(t) for t in self.text_encoders]
        u = accelerator.unwrap_model(self.denoiser)
        with averaged_weights(self.optimizer):  # outside EMA's swap: it moves the weights it finds
            if ema is not None:
                ema.store(u.parameters())
                ema.copy_to(u.parameters())
            try:
                where = (self.run_dir, self.device, self.weight_dtype)
                images = run_samples(self.cfg, self.model, u, te_models, step, *where, self.prompts)
            finally:
                if ema is not None:
                    ema.restore(u.parameters())
        if images:
            self.sink.emit("validation", {"step": step, "images": images})

    def report_eval_loss(self, step: int) -> None:
        args = (self.denoiser, self.text_encoders, self.accelerator, self.sink, self.log_with)
        if step == 0:  # before training: the weights are the start point either way
            self.evaluator.report(0, *args)
            return
        with averaged_weights(self.optimizer):
            self.evaluator.report(step, *args)

    def stop_requested(self) -> bool:
        flag = self.stop.requested
        if self.accelerator.num_processes > 1:  # every process must stop at the same step
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            flag = bool(self.accelerator.reduce(t, reduction="sum").item() > 0)
        return flag
