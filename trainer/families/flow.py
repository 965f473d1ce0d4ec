"""Flow matching as diffusers' train_dreambooth_lora_flux.py / _sd3.py train it, and the
parts Flux and SD3 share (LoRA on a joint-attention transformer, saving, the loss).

Noising: x_t = (1 - sigma) * x_0 + sigma * noise, target = noise - x_0 (the velocity).
Timesteps: u ~ compute_density_for_timestep_sampling(weighting_scheme, ...) in [0, 1), the
index floor(u * N) into the training scheduler's sigmas (a FlowMatchEulerDiscreteScheduler made
from the model's scheduler config, which applies a fixed `shift` itself), timestep = sigma * N.
Flow shift: `flow_shift` > 0 is a fixed shift sigma' = s*sigma / (1 + (s - 1)*sigma); 0 follows
the model's scheduler: a fixed shift, or (Flux dev: use_dynamic_shifting) the scheduler's
time_shift with mu = calculate_shift(latent tokens of the batch), as the pipeline does at the
same resolution. Loss weights: compute_loss_weighting_for_sd3(weighting_scheme, sigmas).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from trainer.families._parts import TextEncoderUse
from trainer.families.base import (
    Family,
    FixedNoise,
    Noised,
    add_file_metadata,
    replace_dir,
    temp_dir_beside,
)

WEIGHTING_SCHEMES = ("none", "sigma_sqrt", "logit_normal", "mode", "cosmap")

# A joint-attention block has an image stream and a text stream; each image-stream target the
# user picks brings its text-stream twin (the diffusers Flux/SD3 LoRA scripts adapt both).
JOINT_TWINS = {
    "to_q": "add_q_proj",
    "to_k": "add_k_proj",
    "to_v": "add_v_proj",
    "to_out.0": "to_add_out",
    "ff.net.0.proj": "ff_context.net.0.proj",
    "ff.net.2": "ff_context.net.2",
}


def training_scheduler(config: Mapping[str, Any], flow_shift: float) -> Any:
    """The FlowMatchEulerDiscreteScheduler whose sigmas training samples from."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    if flow_shift > 0:
        return FlowMatchEulerDiscreteScheduler.from_config(
            config, shift=flow_shift, use_dynamic_shifting=False
        )
    return FlowMatchEulerDiscreteScheduler.from_config(config)


def resolution_mu(scheduler: Any, image_seq_len: int) -> float:
    """Flux's mu for `image_seq_len` latent tokens, from the scheduler's shift settings."""
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    c = scheduler.config
    return calculate_shift(
        image_seq_len, c.base_image_seq_len, c.max_image_seq_len, c.base_shift, c.max_shift
    )


def sample_sigmas(
    scheduler: Any,
    batch_size: int,
    *,
    weighting_scheme: str,
    logit_mean: float,
    logit_std: float,
    mode_scale: float,
    image_seq_len: int | None = None,
) -> torch.Tensor:
    """Per-sample sigmas in (0, 1], shape (batch_size,), drawn from the global torch RNG."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    u = compute_density_for_timestep_sampling(
        weighting_scheme=weighting_scheme,
        batch_size=batch_size,
        logit_mean=logit_mean,
        logit_std=logit_std,
        mode_scale=mode_scale,
    )
    return sigmas_at(scheduler, u, image_seq_len)


def sigmas_at(scheduler: Any, u: torch.Tensor, image_seq_len: int | None = None) -> torch.Tensor:
    """The sigmas at fractions `u` in [0, 1) of the training scheduler's sigmas."""
    n = scheduler.config.num_train_timesteps
    # u can reach 1.0 (a saturated sigmoid, or 'mode' at u = 0): keep the index in range.
    indices = (u.cpu() * n).long().clamp(0, n - 1)
    sigmas = scheduler.sigmas[indices].float()
    if scheduler.config.use_dynamic_shifting and image_seq_len is not None:
        sigmas = scheduler.time_shift(resolution_mu(scheduler, image_seq_len), 1.0, sigmas)
    return sigmas


def loss_weights(weighting_scheme: str, sigmas: torch.Tensor) -> torch.Tensor:
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    return compute_loss_weighting_for_sd3(weighting_scheme=weighting_scheme, sigmas=sigmas).float()


def flow_noise(
    latents: torch.Tensor,
    sigmas: torch.Tensor,
    num_train_timesteps: int,
    weighting_scheme: str,
    noise: torch.Tensor | None = None,
) -> Noised:
    if noise is None:
        noise = torch.randn_like(latents)
    s = sigmas.to(latents.device, torch.float32).view(-1, *([1] * (latents.ndim - 1)))
    noisy = ((1.0 - s) * latents.float() + s * noise.float()).to(latents.dtype)
    return Noised(
        noisy=noisy,
        timesteps=(sigmas * num_train_timesteps).to(latents.device),
        target=noise.float() - latents.float(),
        weights=loss_weights(weighting_scheme, sigmas).to(latents.device),
        extra={"sigmas": sigmas.to(latents.device)},
    )


def flow_loss(
    pred: torch.Tensor, noised: Noised, *, loss_type: str, huber_schedule: str, huber_c: float
) -> torch.Tensor:
    """Mean over the batch of weight * per-sample loss. Huber thresholds follow the schedule
    with the flow's noise-to-signal ratio sigma / (1 - sigma) where DDPM uses sqrt((1-a)/a)."""
    from trainer.losses import pseudo_huber, smooth_l1

    x = pred.float() - noised.target.float()
    if loss_type == "l2":
        per = x * x
    else:
        sigmas = noised.extra["sigmas"].float()
        if huber_schedule == "constant":
            c = torch.full_like(sigmas, huber_c)
        elif huber_schedule == "exponential":
            c = torch.pow(torch.tensor(huber_c, device=sigmas.device), sigmas)
        else:  # snr: (1 - c) / (1 + nsr)^2 + c with nsr = sigma / (1 - sigma)
            c = (1 - huber_c) * (1 - sigmas) ** 2 + huber_c
        c = c.view(-1, *([1] * (x.ndim - 1)))
        per = pseudo_huber(x, c) if loss_type == "huber" else smooth_l1(x, c)
    if noised.mask is not None:  # in the unpacked latent layout (Flux unpacks in predict)
        per = per * noised.mask.to(per.device, per.dtype)
    per = per.mean(dim=list(range(1, per.ndim)))
    if noised.weights is not None:
        per = per * noised.weights.view(-1).to(per.device)
    return per.mean()


def lora_targets(model: torch.nn.Module, chosen: Sequence[str]) -> list[str]:
    """The chosen targets with their joint-attention twins, kept where the model has them."""
    names = [n for n, _ in model.named_modules()]
    wanted: list[str] = []
    for t in chosen:
        wanted += [t, JOINT_TWINS[t]] if t in JOINT_TWINS else [t]
    present = [
        t for t in dict.fromkeys(wanted) if any(n == t or n.endswith(f".{t}") for n in names)
    ]
    missing = [t for t in chosen if t not in present]
    if not present:
        raise ValueError(
            f"lora_target_modules {list(chosen)} match no layer of this {type(model).__name__}: "
            "choose attention (to_q, to_k, to_v, to_out.0) or feed-forward (ff.net.0.proj, "
            "ff.net.2) layers"
        )
    if missing:  # e.g. conv1 on a transformer: say so rather than train less than asked
        raise ValueError(
            f"lora_target_modules {missing} are not layers of this {type(model).__name__}: "
            "remove them (attention and feed-forward layers are)"
        )
    return present


class FlowFamily(Family):
    """What Flux and SD3 share: a transformer denoiser, CLIP text encoders that may train and
    a T5 that never does, flow-matching noise and loss, LoRA and full saves."""

    denoiser_name = "transformer"
    # Per trainable text encoder (in order): which of its outputs the denoiser is fed, hence
    # which layers reach the loss (an adapter on any other layer would get no gradient).
    text_encoder_use: ClassVar[tuple[TextEncoderUse, ...]]

    def __init__(self, cfg: Mapping[str, Any], path: str, **parts: Any) -> None:
        super().__init__(cfg, path, **parts)
        self.train_scheduler = training_scheduler(self.scheduler.config, cfg["flow_shift"])

    @property
    def noise_scheduler(self) -> Any:
        """The training scheduler (what run metadata reads the prediction from)."""
        return self.train_scheduler

    is_sdxl = False  # read by the shared save helpers (kohya layouts are SD-only)

    def cache_identity(self) -> str:
        return f"t5={self.t5_length}|te={len(self.text_encoders)}"

    @property
    @abstractmethod
    def t5_length(self) -> int:
        """T5 tokens each caption is padded or cut to (t5_max_length, or the model's usual)."""

    # ---- LoRA ------------------------------------------------------------------------------
    def add_lora(self) -> None:
        from peft import LoraConfig
        from peft.utils import get_peft_model_state_dict

        from trainer.adapters import adapter_config
        from trainer.families._parts import (
            LORA_INIT,
            TEXT_ENCODER_LORA_TARGETS,
            add_text_encoder_adapter,
        )

        cfg = self.cfg
        rank, alpha = cfg["lora_rank"], cfg["lora_alpha"]
        common = {
            "init_lora_weights": LORA_INIT[cfg["lora_init"]],
            "lora_dropout": cfg["lora_dropout"],
            "use_rslora": cfg["use_rslora"],
            "use_dora": cfg["use_dora"],
        }
        targets = lora_targets(self.denoiser, cfg["lora_target_modules"])
        self.denoiser.add_adapter(  # LoRA, or LyCORIS with lora_type=lycoris
            adapter_config(
                cfg, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, **common)
            )
        )
        adapted = [self.denoiser]
        te_rank = cfg["text_encoder_lora_rank"]
        ratio = te_rank / rank  # the denoiser adapter's scale: alpha/r (or alpha/sqrt(r))
        te_alpha = alpha * (ratio**0.5 if cfg["use_rslora"] else ratio)
        for i in self.trainable_text_encoders():
            # Adapters only on the layers whose output reaches the loss (see text_encoder_use).
            n = self.text_encoders[i].config.num_hidden_layers
            layers = self.text_encoder_use[i].layers_reaching_loss(n)
            te_cfg = LoraConfig(
                r=te_rank,
                lora_alpha=te_alpha,
                target_modules=TEXT_ENCODER_LORA_TARGETS,
                layers_to_transform=None if len(layers) == n else layers,
                layers_pattern=None if len(layers) == n else "layers",
                **common,
            )
            add_text_encoder_adapter(self.text_encoders[i], adapter_config(cfg, te_cfg))
            adapted.append(self.text_encoders[i])
        if cfg["lora_init"] == "pissa":
            self.initial_adapters = [
                {
                    k: v.detach().to("cpu", copy=True)
                    for k, v in get_peft_model_state_dict(m).items()
                }
                for m in adapted
            ]

    # ---- noise and loss --------------------------------------------------------------------
    def image_seq_len(self, latents: torch.Tensor) -> int:
        """Latent tokens the denoiser sees for these latents (for the resolution shift)."""
        patch = getattr(self.denoiser.config, "patch_size", 1) or 1
        if self.family == "flux":
            patch = 2  # Flux packs 2x2 latent patches into one token
        return (latents.shape[-2] // patch) * (latents.shape[-1] // patch)

    def add_noise(
        self, latents: torch.Tensor, batch: Mapping[str, Any], fixed: FixedNoise | None = None
    ) -> Noised:
        cfg = self.cfg
        if fixed is not None:
            sigmas = sigmas_at(self.train_scheduler, fixed.levels, self.image_seq_len(latents))
            return flow_noise(
                latents, sigmas, self.num_train_timesteps, cfg["weighting_scheme"], fixed.noise
            )
        sigmas = sample_sigmas(
            self.train_scheduler,
            latents.shape[0],
            weighting_scheme=cfg["weighting_scheme"],
            logit_mean=cfg["logit_mean"],
            logit_std=cfg["logit_std"],
            mode_scale=cfg["mode_scale"],
            image_seq_len=self.image_seq_len(latents),
        )
        return flow_noise(latents, sigmas, self.num_train_timesteps, cfg["weighting_scheme"])

    def loss(self, pred: torch.Tensor, noised: Noised) -> torch.Tensor:
        cfg = self.cfg
        return flow_loss(
            pred,
            noised,
            loss_type=cfg["loss_type"],
            huber_schedule=cfg["huber_schedule"],
            huber_c=cfg["huber_c"],
        )

    # ---- saving ----------------------------------------------------------------------------
    def save_weights(
        self,
        accelerator: Any,
        denoiser: Any,
        text_encoders: Sequence[Any],
        ema: Any,
        out_dir: Path,
    ) -> Path:
        from trainer.weights import SAVE_DTYPES, output_file_name

        cfg = self.cfg
        dtype = SAVE_DTYPES[cfg["save_precision"]]
        out_dir = Path(out_dir)
        tmp = temp_dir_beside(out_dir)
        try:
            d = accelerator.unwrap_model(denoiser)
            tes = [accelerator.unwrap_model(t) for t in text_encoders]
            if cfg["model_type"] == "lora":
                trained = [d, *(tes[i] for i in self.trainable_text_encoders())]
                self._write_lora(trained, tmp / output_file_name(cfg, out_dir))
            else:
                if ema is not None:
                    ema.copy_to(d.parameters())
                pipe = self.pipeline(d, tes, self.scheduler, for_saving=True)
                pipe.to(dtype=dtype)
                pipe.save_pretrained(str(tmp), safe_serialization=True)
                pipe.to(dtype=torch.float32)
                from trainer.weights import _load_text_encoders_as_fp32

                _load_text_encoders_as_fp32(tmp)
                _text_encoder_3_as_fp32(tmp)
            return replace_dir(tmp, out_dir)
        except BaseException:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def export_lora(self, modules: Sequence[Any], folder: Path) -> Path | None:
        from trainer.weights import output_file_name

        name = output_file_name(self.cfg, Path(self.cfg["output_dir"]) / "weights")
        return self._write_lora(list(modules), Path(folder) / name)

    def _write_lora(self, modules: Sequence[Any], file: Path) -> Path:
        """The LoRA of `modules` (unwrapped; the denoiser, then the trained text encoders in
        order) as `file`: diffusers' layout (what FluxPipeline / StableDiffusion3Pipeline and
        ComfyUI load), named after the run, with the run's metadata beside diffusers' own."""
        from trainer.lora_metadata import lora_metadata
        from trainer.weights import SAVE_DTYPES, plain_lora

        dtype = SAVE_DTYPES[self.cfg["save_precision"]]
        names = [self.denoiser_name]
        names += [self.text_encoder_names[i] for i in self.trainable_text_encoders()]
        parts = dict(zip(names, modules, strict=True))
        if self.cfg["lora_type"] == "lycoris":  # diffusers' layout has no LoHa / LoKr form
            from trainer.adapters import write_lycoris_file
            from trainer.lora_formats import flow_name_of

            name_of = flow_name_of(self.denoiser_name)
            return write_lycoris_file(self.cfg, self, parts, file, dtype, name_of)
        initial: Sequence[dict[str, torch.Tensor] | None]
        initial = self.initial_adapters or [None] * len(parts)
        kwargs: dict[str, Any] = {}
        plain: dict[str, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        for (name, module), init in zip(parts.items(), initial, strict=True):
            # peft key names, as the Flux/SD3 loaders read them (the UNet loaders' older
            # names would be mistaken for another layout).
            state, meta = plain_lora(module, init)
            saved = {k: v.to("cpu", dtype).contiguous() for k, v in state.items()}
            kwargs[f"{name}_lora_layers"] = saved
            kwargs[f"{name}_lora_adapter_metadata"] = meta
            plain[name] = (saved, meta)
        self.pipeline_class.save_lora_weights(
            str(file.parent), weight_name=file.name, safe_serialization=True, **kwargs
        )
        add_file_metadata(file, lora_metadata(self.cfg, self, plain, "diffusers", file.stem))
        return file

    def pipeline(
        self,
        denoiser: Any,
        text_encoders: Sequence[Any],
        scheduler: Any = None,
        *,
        for_saving: bool = False,
    ) -> Any:
        parts: dict[str, Any] = {
            self.denoiser_name: denoiser,
            "vae": self.vae,
            "scheduler": scheduler or self.scheduler,
        }
        parts |= dict(zip(self.text_encoder_names, text_encoders, strict=False))
        parts |= {
            f"tokenizer{name.removeprefix('text_encoder')}": tok
            for name, tok in zip(self.text_encoder_names, self.tokenizers, strict=False)
        }
        return self.pipeline_class(**self.complete_parts(parts, for_saving))

    def complete_parts(self, parts: dict[str, Any], for_saving: bool) -> dict[str, Any]:
        """Fill in pipeline components this run did not load (SD3 without T5)."""
        return parts


def _text_encoder_3_as_fp32(folder: Path) -> None:
    """As trainer.weights does for text_encoder(_2): T5's config names fp32 so a bare
    from_pretrained gives one dtype with the diffusers parts."""
    import json

    path = folder / "text_encoder_3" / "config.json"
    if path.is_file():
        config = json.loads(path.read_text())
        config.pop("torch_dtype", None)
        config["dtype"] = "float32"
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
