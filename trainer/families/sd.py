"""Stable Diffusion 1.x / 2.x (and, in subclasses, the demo model and SDXL): a UNet with DDPM
noise, epsilon or v-prediction targets, min-SNR weighting.

The SD pieces SDXL shares live here too: `Models` (the loaded parts; defined in
trainer.families.sd_models, below both loaders), `load_models` (a diffusers folder, a
cached hub id, or a single file through trainer.single_file), `add_lora`, `tokenize` and
`encode_tokens`. Saving is trainer.weights and the loss trainer.losses, called here rather
than copied, so one fix there serves every SD family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

# A module import: trainer.single_file builds on this package, so either may load first.
from trainer import single_file, timestep_bias
from trainer.families._parts import (
    LORA_INIT,
    TEXT_ENCODER_LORA_TARGETS,
    TextEncoderUse,
    add_text_encoder_adapter,
    from_pretrained,
)
from trainer.families.base import Family, FixedNoise, Noised
from trainer.families.sd_models import (
    SD_TEXT_ENCODER_USE,
    Models,
    schedulers,
    text_encoder_use,
)

VALIDATION_SCHEDULERS = {
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "dpmpp_2m": "DPMSolverMultistepScheduler",
}


def load_models(cfg: Mapping[str, Any], model_path: str) -> Models:
    """SD 1.x / 2.x / SDXL (or the demo model) from a diffusers folder, a cached hub id, or a
    single-file checkpoint."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    family = cfg["model_family"]
    if family != "demo" and Path(model_path).expanduser().is_file():
        return single_file.load_models_from_file(cfg, model_path)
    kw: dict[str, Any] = {}
    if family != "demo":
        if cfg["revision"]:
            kw["revision"] = cfg["revision"]
        if cfg["variant"]:
            kw["variant"] = cfg["variant"]
    tok_kw = {k: v for k, v in kw.items() if k == "revision"}
    noise_scheduler, inference_scheduler = schedulers(model_path, tok_kw)
    tokenizers = [from_pretrained(CLIPTokenizer, model_path, tok_kw, subfolder="tokenizer")]
    text_encoders = [from_pretrained(CLIPTextModel, model_path, kw, subfolder="text_encoder")]
    if family == "sdxl":
        tokenizers.append(
            from_pretrained(CLIPTokenizer, model_path, tok_kw, subfolder="tokenizer_2")
        )
        text_encoders.append(
            from_pretrained(CLIPTextModelWithProjection, model_path, kw, subfolder="text_encoder_2")
        )
    vae_path = "" if family == "demo" else cfg["pretrained_vae_model_name_or_path"]
    if vae_path and Path(vae_path).expanduser().is_file():
        vae = single_file.load_vae(cfg, None, model_path, {}, family)
    elif vae_path:
        vae = from_pretrained(AutoencoderKL, vae_path, tok_kw)
    else:
        vae = from_pretrained(AutoencoderKL, model_path, kw, subfolder="vae")
    unet = from_pretrained(UNet2DConditionModel, model_path, kw, subfolder="unet")
    models = Models(family, model_path, unet, vae, noise_scheduler, tokenizers, text_encoders, kw)
    models.inference_scheduler = inference_scheduler
    return models


def add_lora(models: Models, cfg: Mapping[str, Any]) -> None:
    """peft adapters on the UNet and, if asked, on the text encoder(s). With PiSSA the
    adapters' initial tensors are kept in models.initial_adapters (the base weights change)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from trainer.adapters import adapter_config

    rank, alpha = cfg["lora_rank"], cfg["lora_alpha"]
    if cfg["lora_init"] == "pissa":
        _check_pissa_targets(models.unet, cfg["lora_target_modules"])
    common = {
        "init_lora_weights": LORA_INIT[cfg["lora_init"]],
        "lora_dropout": cfg["lora_dropout"],
        "use_rslora": cfg["use_rslora"],
        "use_dora": cfg["use_dora"],
    }
    targets = list(cfg["lora_target_modules"])
    models.unet.add_adapter(  # LoRA, or LyCORIS with lora_type=lycoris (trainer.adapters)
        adapter_config(cfg, LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, **common))
    )
    adapted = [models.unet]
    if cfg["train_text_encoder"]:
        te_rank = cfg["text_encoder_lora_rank"]
        # The same scale as the UNet adapter: alpha/r, or alpha/sqrt(r) with rsLoRA.
        ratio = te_rank / rank
        te_alpha = alpha * (ratio**0.5 if cfg["use_rslora"] else ratio)
        uses = text_encoder_use(models.family)
        for te, use in zip(models.text_encoders, uses, strict=True):
            n = te.config.num_hidden_layers
            layers = use.layers_reaching_loss(n)
            te_cfg = LoraConfig(
                r=te_rank,
                lora_alpha=te_alpha,
                target_modules=TEXT_ENCODER_LORA_TARGETS,
                layers_to_transform=None if len(layers) == n else layers,
                layers_pattern=None if len(layers) == n else "layers",
                **common,
            )
            add_text_encoder_adapter(te, adapter_config(cfg, te_cfg))
            adapted.append(te)
    if cfg["lora_init"] == "pissa":
        models.initial_adapters = [
            {k: v.detach().to("cpu", copy=True) for k, v in get_peft_model_state_dict(m).items()}
            for m in adapted
        ]
    if cfg.get("init_lora"):  # continue an existing LoRA file (either layout)
        from trainer.lora_formats import load_init_lora

        parts = dict(zip(["unet", "text_encoder", "text_encoder_2"], adapted, strict=False))
        load_init_lora(cfg["init_lora"], models.pipeline_class, parts, models.is_sdxl)


def _check_pissa_targets(unet: Any, targets: Sequence[str]) -> None:
    """peft's PiSSA init decomposes linear weights only (a convolution fails deep inside peft);
    which targets are convolutions depends on the model (SD 1.x's proj_in/proj_out are)."""
    conv = sorted(
        {
            t
            for name, module in unet.named_modules()
            for t in targets
            if (name == t or name.endswith(f".{t}")) and not isinstance(module, torch.nn.Linear)
        }
    )
    if conv:
        raise ValueError(
            f"lora_init=pissa works on linear layers only, and lora_target_modules {conv} "
            "are convolutions in this model: remove them or choose another lora_init"
        )


def tokenize(models: Models, captions: Sequence[str]) -> list[torch.Tensor]:
    return [
        tok(
            list(captions),
            padding="max_length",
            max_length=tok.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids
        for tok in models.tokenizers
    ]


def encode_tokens(
    text_encoders: Sequence[Any], ids: Sequence[torch.Tensor], sdxl: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(prompt embeds, pooled embeds or None), taken as the family's text_encoder_use says:
    SDXL concatenates the penultimate hidden states of both encoders and uses the projected
    pooled output of the second (as the SDXL pipeline does)."""
    uses = text_encoder_use("sdxl" if sdxl else "sd1x")
    hidden, pooled = [], None
    for te, t, use in zip(text_encoders, ids, uses, strict=True):
        out = te(t.to(next(te.parameters()).device), output_hidden_states=use.skip_last > 0)
        hidden.append(out.hidden_states[-1 - use.skip_last] if use.skip_last else out[0])
        if use.pooled:
            pooled = out[0]  # CLIPTextModelWithProjection: the projected pooled output
    return torch.cat(hidden, dim=-1), pooled


class SD(Family):
    names: ClassVar[tuple[str, ...]] = ("sd1x", "sd2x")
    pipeline_class_name = "StableDiffusionPipeline"
    denoiser_name = "unet"
    text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)
    trainable_text_encoder_names: ClassVar[tuple[str, ...]] = ("text_encoder",)
    # Per text encoder, which outputs reach the UNet: the final hidden state.
    text_encoder_use: ClassVar[tuple[TextEncoderUse, ...]] = SD_TEXT_ENCODER_USE

    def __init__(self, cfg: Mapping[str, Any], path: str, models: Models) -> None:
        self.models = models  # what the module functions and trainer.weights take
        super().__init__(
            cfg,
            path,
            denoiser=models.unet,
            vae=models.vae,
            text_encoders=models.text_encoders,
            tokenizers=models.tokenizers,
            scheduler=models.inference_scheduler or models.noise_scheduler,
        )
        self.noise_scheduler = models.noise_scheduler  # DDPM over the model's config
        if cfg["prediction_type"] != "auto":
            self.noise_scheduler.register_to_config(prediction_type=cfg["prediction_type"])

    @classmethod
    def load(cls, cfg: Mapping[str, Any], path: str) -> SD:
        cls.check_folder(cfg, path)
        return cls(cfg, path, load_models(cfg, path))

    @property
    def dataset_counts(self) -> dict[str, dict[str, int]]:
        return self.models.dataset_counts

    @dataset_counts.setter
    def dataset_counts(self, counts: dict[str, dict[str, int]]) -> None:
        # Kept on Models: the saved files' metadata is written from it (trainer.weights).
        self.models.dataset_counts = counts

    @property
    def prediction_type(self) -> str:
        return str(self.noise_scheduler.config.prediction_type)

    @property
    def pipeline_class(self) -> Any:
        return self.models.pipeline_class

    # ---- LoRA and prompts ------------------------------------------------------------------
    def add_lora(self) -> None:
        add_lora(self.models, self.cfg)
        self.initial_adapters = self.models.initial_adapters

    def encode_prompts(
        self, text_encoders: Sequence[Any], captions: Sequence[str]
    ) -> dict[str, torch.Tensor]:
        embeds, pooled = encode_tokens(
            text_encoders, tokenize(self.models, captions), self.models.is_sdxl
        )
        out = {"prompt_embeds": embeds}
        if pooled is not None:
            out["pooled_prompt_embeds"] = pooled
        return out

    # ---- noise, forward, loss --------------------------------------------------------------
    def add_noise(
        self, latents: torch.Tensor, batch: Mapping[str, Any], fixed: FixedNoise | None = None
    ) -> Noised:
        """DDPM noising; the random draws in the order the trainer has always made them.
        `fixed`: its noise at its levels over the whole schedule (no offset, no perturbation)."""
        cfg, sched = self.cfg, self.noise_scheduler
        if fixed is not None:
            n = sched.config.num_train_timesteps
            timesteps = (fixed.levels * n).long().clamp(0, n - 1).to(latents.device)
            noisy = sched.add_noise(latents, fixed.noise, timesteps)
            target = fixed.noise
            if self.prediction_type == "v_prediction":
                target = sched.get_velocity(latents, fixed.noise, timesteps)
            return Noised(noisy=noisy, timesteps=timesteps, target=target)
        device = latents.device
        noise = torch.randn_like(latents)
        if cfg["noise_offset"]:
            noise += cfg["noise_offset"] * torch.randn(
                latents.shape[0], latents.shape[1], 1, 1, device=device, dtype=latents.dtype
            )
        n_train = sched.config.num_train_timesteps
        t_max = min(cfg["max_timestep"], n_train)
        if cfg["timestep_bias_strategy"] == "none":  # uniform: the draws runs always made
            timesteps = torch.randint(
                cfg["min_timestep"], t_max, (latents.shape[0],), device=device
            )
        else:
            weights = timestep_bias.timestep_weights(
                n_train,
                cfg["timestep_bias_strategy"],
                multiplier=cfg["timestep_bias_multiplier"],
                portion=cfg["timestep_bias_portion"],
                begin=cfg["timestep_bias_begin"],
                end=cfg["timestep_bias_end"],
            )
            timesteps = timestep_bias.sample_timesteps(
                weights, latents.shape[0], cfg["min_timestep"], t_max
            ).to(device)
        timesteps = timesteps.long()
        model_noise = noise
        if cfg["input_perturbation"]:
            model_noise = noise + cfg["input_perturbation"] * torch.randn_like(noise)
        noisy = sched.add_noise(latents, model_noise, timesteps)
        if self.prediction_type == "v_prediction":
            target = sched.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return Noised(noisy=noisy, timesteps=timesteps, target=target)

    def unet_kwargs(
        self, embeds: Mapping[str, torch.Tensor], batch: Mapping[str, Any], dtype: torch.dtype
    ) -> dict[str, Any]:
        """Extra conditioning of the UNet call (SDXL adds its time ids and pooled embeds)."""
        return {}

    def predict(
        self,
        denoiser: Any,
        noised: Noised,
        embeds: Mapping[str, torch.Tensor],
        batch: Mapping[str, Any],
    ) -> torch.Tensor:
        x = noised.noisy
        return denoiser(
            x,
            noised.timesteps,
            embeds["prompt_embeds"].to(x.device, x.dtype),
            return_dict=False,
            **self.unet_kwargs(embeds, batch, x.dtype),
        )[0]

    def loss(self, pred: torch.Tensor, noised: Noised) -> torch.Tensor:
        from trainer.losses import training_loss

        cfg = self.cfg
        kind = cfg["loss_type"]
        huber = kind in ("huber", "smooth_l1")
        return training_loss(
            pred,
            noised.target,
            noised.timesteps,
            loss_type=kind,
            huber_schedule=cfg["huber_schedule"] if huber else "constant",
            huber_c=cfg["huber_c"] if huber else 0.0,
            snr_gamma=cfg["snr_gamma"],
            prediction_type=self.prediction_type,
            noise_scheduler=self.noise_scheduler,
            mask=noised.mask,
            weights=noised.weights,
        )

    # ---- saving and validation -------------------------------------------------------------
    def save_weights(
        self,
        accelerator: Any,
        denoiser: Any,
        text_encoders: Sequence[Any],
        ema: Any,
        out_dir: Path,
    ) -> Path:
        from trainer.weights import save_final_weights

        return save_final_weights(
            self.cfg, self.models, accelerator, denoiser, list(text_encoders), ema, Path(out_dir)
        )

    def export_lora(self, modules: Sequence[Any], folder: Path) -> Path | None:
        from trainer.weights import export_checkpoint_lora

        return export_checkpoint_lora(self.cfg, self.models, list(modules), Path(folder))

    def pipeline(self, denoiser: Any, text_encoders: Sequence[Any], scheduler: Any = None) -> Any:
        return self.models.pipeline(denoiser, list(text_encoders), scheduler or self.scheduler)

    def set_attention_backend(self, backend: str) -> None:
        from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

        if backend == "xformers":
            self.denoiser.enable_xformers_memory_efficient_attention()
        elif backend == "eager":
            self.denoiser.set_attn_processor(AttnProcessor())
        else:
            self.denoiser.set_attn_processor(AttnProcessor2_0())

    def validation_scheduler(self, cfg: Mapping[str, Any]) -> Any:
        import diffusers

        name = VALIDATION_SCHEDULERS.get(cfg["validation_scheduler"], "DDIMScheduler")
        return getattr(diffusers, name).from_config(self.noise_scheduler.config)

    def validation_call(self, cfg: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "guidance_scale": cfg["validation_guidance_scale"],
            "guidance_rescale": cfg["validation_guidance_rescale"],
            "negative_prompt": cfg["validation_negative_prompt"] or None,
        }


class Demo(SD):
    """The built-in tiny demo model (generated locally on first use; an SD 1.x shape)."""

    names = ("demo",)

    @classmethod
    def check_folder(cls, cfg: Mapping[str, Any], path: str) -> None:
        return None  # always the generated demo folder

    @classmethod
    def default_dataset(cls) -> Path | None:
        from tunerdeck_common.demo_dataset import ensure_demo_dataset

        return ensure_demo_dataset()
