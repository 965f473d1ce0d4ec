"""Loading SD 1.x / 2.x / SDXL (and the demo model) from a diffusers folder or hub id,
adding LoRA adapters, and encoding prompts. The demo model goes through the same code."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

TEXT_ENCODER_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
LORA_INIT = {"default": True, "gaussian": "gaussian", "pissa": "pissa"}


@dataclass
class Models:
    family: str
    path: str
    unet: Any
    vae: Any
    noise_scheduler: Any
    tokenizers: list[Any]
    text_encoders: list[Any]
    load_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sdxl(self) -> bool:
        return self.family == "sdxl"

    @property
    def pipeline_class(self) -> Any:
        from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

        return StableDiffusionXLPipeline if self.is_sdxl else StableDiffusionPipeline

    def pipeline(self, unet: Any, text_encoders: Sequence[Any], scheduler: Any) -> Any:
        """A diffusers pipeline over these parts (for validation images and full-model saves)."""
        parts: dict[str, Any] = {
            "vae": self.vae,
            "unet": unet,
            "scheduler": scheduler,
            "tokenizer": self.tokenizers[0],
            "text_encoder": text_encoders[0],
        }
        if self.is_sdxl:
            parts |= {"tokenizer_2": self.tokenizers[1], "text_encoder_2": text_encoders[1]}
        else:
            parts |= {
                "safety_checker": None,
                "feature_extractor": None,
                "requires_safety_checker": False,
            }
        return self.pipeline_class(**parts)


def _from_pretrained(cls: Any, path: str, kwargs: dict[str, Any], **extra: Any) -> Any:
    """Local folders load directly; a hub id is tried from the local cache first, so
    nothing is downloaded when the files are already there (or there is no network)."""
    if Path(path).expanduser().is_dir():
        return cls.from_pretrained(str(Path(path).expanduser()), **kwargs, **extra)
    try:
        return cls.from_pretrained(path, local_files_only=True, **kwargs, **extra)
    except OSError:
        return cls.from_pretrained(path, **kwargs, **extra)


def load_models(cfg: Mapping[str, Any], model_path: str) -> Models:
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    family = cfg["model_family"]
    kw: dict[str, Any] = {}
    if family != "demo":
        if cfg["revision"]:
            kw["revision"] = cfg["revision"]
        if cfg["variant"]:
            kw["variant"] = cfg["variant"]
    tok_kw = {k: v for k, v in kw.items() if k == "revision"}
    noise_scheduler = _from_pretrained(DDPMScheduler, model_path, tok_kw, subfolder="scheduler")
    tokenizers = [_from_pretrained(CLIPTokenizer, model_path, tok_kw, subfolder="tokenizer")]
    text_encoders = [_from_pretrained(CLIPTextModel, model_path, kw, subfolder="text_encoder")]
    if family == "sdxl":
        tokenizers.append(
            _from_pretrained(CLIPTokenizer, model_path, tok_kw, subfolder="tokenizer_2")
        )
        text_encoders.append(
            _from_pretrained(
                CLIPTextModelWithProjection, model_path, kw, subfolder="text_encoder_2"
            )
        )
    vae_path = "" if family == "demo" else cfg["pretrained_vae_model_name_or_path"]
    if vae_path:
        vae = _from_pretrained(AutoencoderKL, vae_path, tok_kw)
    else:
        vae = _from_pretrained(AutoencoderKL, model_path, kw, subfolder="vae")
    unet = _from_pretrained(UNet2DConditionModel, model_path, kw, subfolder="unet")
    return Models(family, model_path, unet, vae, noise_scheduler, tokenizers, text_encoders, kw)


def add_lora(models: Models, cfg: Mapping[str, Any]) -> None:
    """peft adapters on the UNet and, if asked, on the text encoder(s)."""
    from peft import LoraConfig

    rank, alpha = cfg["lora_rank"], cfg["lora_alpha"]
    common = {
        "init_lora_weights": LORA_INIT[cfg["lora_init"]],
        "lora_dropout": cfg["lora_dropout"],
        "use_rslora": cfg["use_rslora"],
        "use_dora": cfg["use_dora"],
    }
    models.unet.add_adapter(
        LoraConfig(
            r=rank, lora_alpha=alpha, target_modules=list(cfg["lora_target_modules"]), **common
        )
    )
    if cfg["train_text_encoder"]:
        te_rank = cfg["text_encoder_lora_rank"]
        # Keep the same alpha/rank scale as the UNet adapter.
        te_cfg = LoraConfig(
            r=te_rank,
            lora_alpha=alpha * te_rank / rank,
            target_modules=TEXT_ENCODER_LORA_TARGETS,
            **common,
        )
        for te in models.text_encoders:
            _add_text_encoder_adapter(te, te_cfg)


def _add_text_encoder_adapter(te: Any, config: Any) -> None:
    """What transformers' add_adapter does, done with peft directly: transformers 5 refuses
    add_adapter with the peft 0.21 this project pins."""
    from peft import inject_adapter_in_model

    inject_adapter_in_model(config, te, adapter_name="default")
    te.peft_config = {"default": config}


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
    """(prompt embeds, pooled embeds or None). SDXL: penultimate hidden states of both
    encoders concatenated, pooled projection of the second (as the SDXL pipeline does)."""
    if not sdxl:
        device = next(text_encoders[0].parameters()).device
        return text_encoders[0](ids[0].to(device), return_dict=False)[0], None
    hidden, pooled = [], None
    for te, t in zip(text_encoders, ids, strict=True):
        out = te(t.to(next(te.parameters()).device), output_hidden_states=True)
        hidden.append(out.hidden_states[-2])
        pooled = out[0]  # the last encoder's projected pooled output
    return torch.cat(hidden, dim=-1), pooled


def sdxl_time_ids(
    original_sizes: Sequence[tuple[int, int]],
    crops: Sequence[tuple[int, int]],
    targets: Sequence[tuple[int, int]],
    use_original: bool,
    use_crop: bool,
) -> torch.Tensor:
    rows = []
    for orig, crop, target in zip(original_sizes, crops, targets, strict=True):
        rows.append([*(orig if use_original else target), *(crop if use_crop else (0, 0)), *target])
    return torch.tensor(rows, dtype=torch.float32)


def resolve_model_path(cfg: Mapping[str, Any]) -> str:
    if cfg["model_family"] == "demo":
        from trainer.demo_model import ensure_demo_model

        return str(ensure_demo_model())
    path = cfg["pretrained_model_name_or_path"]
    if not path:
        raise ValueError(
            f"model_family {cfg['model_family']} needs pretrained_model_name_or_path "
            "(a local diffusers folder or a hub id)"
        )
    return path
