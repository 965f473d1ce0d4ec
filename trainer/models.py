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


@dataclass(frozen=True)
class TextEncoderUse:
    """Which outputs of one text encoder a family feeds to the UNet: the prompt embeddings
    come from the final hidden state (skip_last=0, after the final layer norm) or from the
    hidden state `skip_last` layers before it; `pooled` means its pooled, final-layer output
    is used too. encode_tokens reads these, and add_lora puts adapters only on the layers
    that reach the loss (an adapter on an unused layer gets no gradient: DDP refuses it,
    and it would be saved untrained)."""

    skip_last: int = 0
    pooled: bool = False

    def layers_reaching_loss(self, num_layers: int) -> list[int]:
        if self.pooled or self.skip_last == 0:
            return list(range(num_layers))
        return list(range(num_layers - self.skip_last))


# Per family, one entry per text encoder; families not listed use DEFAULT_TEXT_ENCODER_USE.
TEXT_ENCODER_USE: dict[str, tuple[TextEncoderUse, ...]] = {
    # The SDXL pipeline: penultimate hidden states of both encoders, and the projected pooled
    # output of the second.
    "sdxl": (TextEncoderUse(skip_last=1), TextEncoderUse(skip_last=1, pooled=True)),
}
DEFAULT_TEXT_ENCODER_USE = (TextEncoderUse(),)


def text_encoder_use(family: str) -> tuple[TextEncoderUse, ...]:
    return TEXT_ENCODER_USE.get(family, DEFAULT_TEXT_ENCODER_USE)


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
    # The base model's own scheduler (class and config of its scheduler/ folder): what a
    # saved full model carries; training uses noise_scheduler (DDPM over the same config).
    inference_scheduler: Any = None
    # PiSSA only: the adapters' initial tensors (unet, then text encoders), needed to turn
    # the trained adapters into plain LoRAs for the original base weights (weights.py).
    initial_adapters: list[dict[str, torch.Tensor]] | None = None

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
    return _local_first(cls.from_pretrained, path, kwargs, **extra)


def _local_first(load: Any, path: str, kwargs: dict[str, Any], **extra: Any) -> Any:
    """Local folders load directly; a hub id is tried from the local cache first, so
    nothing is downloaded when the files are already there (or there is no network)."""
    if Path(path).expanduser().is_dir():
        return load(str(Path(path).expanduser()), **kwargs, **extra)
    try:
        return load(path, local_files_only=True, **kwargs, **extra)
    except OSError:
        return load(path, **kwargs, **extra)


def _schedulers(path: str, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    """(DDPM scheduler for training, the base model's own scheduler) from one config."""
    import diffusers

    config = _local_first(diffusers.DDPMScheduler.load_config, path, kwargs, subfolder="scheduler")
    own = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(own, type) and issubclass(own, diffusers.SchedulerMixin)):
        own = diffusers.DDPMScheduler  # not a diffusers scheduler: keep the training one
    return diffusers.DDPMScheduler.from_config(config), own.from_config(config)


def load_models(cfg: Mapping[str, Any], model_path: str) -> Models:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    family = cfg["model_family"]
    if family != "demo" and Path(model_path).expanduser().is_file():
        from trainer.single_file import load_models_from_file

        return load_models_from_file(cfg, model_path)
    kw: dict[str, Any] = {}
    if family != "demo":
        if cfg["revision"]:
            kw["revision"] = cfg["revision"]
        if cfg["variant"]:
            kw["variant"] = cfg["variant"]
    tok_kw = {k: v for k, v in kw.items() if k == "revision"}
    noise_scheduler, inference_scheduler = _schedulers(model_path, tok_kw)
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
    if vae_path and Path(vae_path).expanduser().is_file():
        from trainer.single_file import load_vae

        vae = load_vae(cfg, None, model_path, {}, family)
    elif vae_path:
        vae = _from_pretrained(AutoencoderKL, vae_path, tok_kw)
    else:
        vae = _from_pretrained(AutoencoderKL, model_path, kw, subfolder="vae")
    unet = _from_pretrained(UNet2DConditionModel, model_path, kw, subfolder="unet")
    models = Models(family, model_path, unet, vae, noise_scheduler, tokenizers, text_encoders, kw)
    models.inference_scheduler = inference_scheduler
    return models


def add_lora(models: Models, cfg: Mapping[str, Any]) -> None:
    """peft adapters on the UNet and, if asked, on the text encoder(s). With PiSSA the
    adapters' initial tensors are kept in models.initial_adapters (the base weights change)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    rank, alpha = cfg["lora_rank"], cfg["lora_alpha"]
    if cfg["lora_init"] == "pissa":
        _check_pissa_targets(models.unet, cfg["lora_target_modules"])
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
            _add_text_encoder_adapter(te, te_cfg)
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
    """(prompt embeds, pooled embeds or None), taken as TEXT_ENCODER_USE says: SDXL
    concatenates the penultimate hidden states of both encoders and uses the projected
    pooled output of the second (as the SDXL pipeline does)."""
    uses = text_encoder_use("sdxl" if sdxl else "")
    hidden, pooled = [], None
    for te, t, use in zip(text_encoders, ids, uses, strict=True):
        out = te(t.to(next(te.parameters()).device), output_hidden_states=use.skip_last > 0)
        hidden.append(out.hidden_states[-1 - use.skip_last] if use.skip_last else out[0])
        if use.pooled:
            pooled = out[0]  # CLIPTextModelWithProjection: the projected pooled output
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
