"""SD 1.x / 2.x / SDXL base models (and VAEs) from one file in the original (LDM / ComfyUI /
A1111) layout.

Contract: `load_models_from_file(cfg, path)` returns the same `trainer.families.sd.Models` a
diffusers folder gives, so nothing after loading knows where the weights came from. The file
is read once; its family is checked against model_family from the tensor names
(registry.model_files, the same reading the UI and validation use) before any weight is
converted. The conversion itself is diffusers' single-file code (from_single_file for the
UNet and VAE, its CLIP / OpenCLIP converters for the text encoders).

What a file does not hold (the parts' configs, tokenizers, scheduler) comes from
`single_file_config`, a diffusers folder or Hub id of the same architecture, or when that is
empty from the family's reference repository, read from the local Hugging Face cache only:
nothing is downloaded. Pickle checkpoints (.ckpt ...) are read only with
allow_pickle_checkpoints on.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from registry.model_files import (
    PICKLE_SUFFIXES,
    ModelFileError,
    detect_kind,
    family_mismatch,
    inspect_model_file,
)
from trainer.families._parts import local_first
from trainer.families.base import WrongFamilyError
from trainer.families.sd_models import Models, schedulers

# Where a file's missing pieces come from when single_file_config is empty (cache only).
REFERENCE_REPOS = {
    "sd1x": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd2x": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
OPEN_CLIP_PREFIX = {"sd2x": "cond_stage_model.model.", "sdxl": "conditioner.embedders.1.model."}


def is_model_file(path: str) -> bool:
    return bool(path) and Path(path).expanduser().is_file()


def read_state_dict(path: str, allow_pickle: bool) -> dict[str, torch.Tensor]:
    """Every tensor of a model file (a .ckpt only when allowed; its "state_dict" unwrapped)."""
    p = Path(path).expanduser()
    if p.suffix.lower() in PICKLE_SUFFIXES:
        inspect_model_file(p, allow_pickle=allow_pickle)  # raises the refusal
        loaded = torch.load(str(p), map_location="cpu", weights_only=False)
        state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded
        return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    inspect_model_file(p)  # not safetensors or truncated: the clear message, before loading
    from safetensors.torch import load_file

    return load_file(str(p))


def config_source(cfg: Mapping[str, Any], family: str) -> tuple[str, bool]:
    """(where the parts' configs and tokenizers come from, whether only the cache may serve)."""
    given = str(cfg.get("single_file_config") or "").strip()
    if given:
        return given, False
    return REFERENCE_REPOS[family], True


def _no_config(family: str, source: str) -> ValueError:
    return ValueError(
        f"a {family} single file needs the configs and tokenizers of its parts, and {source!r} "
        "is not in the local Hugging Face cache: set single_file_config to a diffusers folder "
        f"(or a cached Hub id) of the same architecture, or download {source} once"
    )


def load_models_from_file(cfg: Mapping[str, Any], path: str) -> Any:
    """trainer.families.sd.Models of a single-file SD 1.x / 2.x / SDXL checkpoint."""
    import diffusers
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTokenizer

    family = str(cfg["model_family"])
    allow_pickle = bool(cfg.get("allow_pickle_checkpoints"))
    facts = inspect_model_file(path, allow_pickle=allow_pickle)
    state = read_state_dict(path, allow_pickle)
    if facts.kind == "unknown" and state:
        facts.kind = detect_kind(state, {k: list(v.shape) for k, v in state.items()})
    wrong = family_mismatch(facts, "sd1x" if family == "demo" else family)
    if wrong:
        raise WrongFamilyError(wrong)
    if facts.kind == "unknown":
        raise ModelFileError(
            f"{path} holds no Stable Diffusion UNet this trainer recognises (no "
            "model.diffusion_model.* tensors): choose an SD 1.x, 2.x or SDXL checkpoint"
        )
    source, cache_only = config_source(cfg, facts.kind)
    common: dict[str, Any] = {"local_files_only": True} if cache_only else {}

    def from_source(load: Any, **extra: Any) -> Any:
        try:
            if cache_only:
                return load(source, local_files_only=True, **extra)
            return local_first(load, source, {}, **extra)
        except OSError:
            raise _no_config(facts.kind, source) from None

    unet = _single(UNet2DConditionModel, state, source, "unet", common, facts.kind)
    vae = load_vae(cfg, state, source, common, facts.kind)
    tokenizers = [from_source(CLIPTokenizer.from_pretrained, subfolder="tokenizer")]
    text_encoders = [_text_encoder(state, family, source, common, first=True)]
    if facts.kind == "sdxl":
        tokenizers.append(from_source(CLIPTokenizer.from_pretrained, subfolder="tokenizer_2"))
        text_encoders.append(_text_encoder(state, family, source, common, first=False))
    try:
        if cache_only:
            config = diffusers.DDPMScheduler.load_config(
                source, subfolder="scheduler", local_files_only=True
            )
            noise, own = _schedulers_from_config(config)
        else:
            noise, own = schedulers(source, {})
    except OSError:
        raise _no_config(facts.kind, source) from None
    if facts.v_prediction is not None and cfg.get("prediction_type", "auto") == "auto":
        kind = "v_prediction" if facts.v_prediction else "epsilon"
        noise.register_to_config(prediction_type=kind)
        own = type(own).from_config(own.config, prediction_type=kind)
    del state
    models = Models(family, path, unet, vae, noise, tokenizers, text_encoders, {})
    models.inference_scheduler = own
    return models


def _schedulers_from_config(config: Mapping[str, Any]) -> tuple[Any, Any]:
    import diffusers

    own = getattr(diffusers, str(config.get("_class_name", "")), None)
    if not (isinstance(own, type) and issubclass(own, diffusers.SchedulerMixin)):
        own = diffusers.DDPMScheduler
    return diffusers.DDPMScheduler.from_config(config), own.from_config(config)


def _single(
    cls: Any, state: dict[str, torch.Tensor], source: str, sub: str, common: dict, kind: str
) -> Any:
    try:
        return cls.from_single_file(state, config=source, subfolder=sub, **common)
    except OSError:
        raise _no_config(kind, source) from None


def load_vae(
    cfg: Mapping[str, Any],
    state: dict[str, torch.Tensor] | None,
    source: str,
    common: dict[str, Any],
    kind: str,
) -> Any:
    """The replacement VAE when pretrained_vae_model_name_or_path is set (a single file or a
    diffusers VAE folder / Hub id), else the VAE inside the checkpoint."""
    from diffusers import AutoencoderKL

    vae_path = str(cfg.get("pretrained_vae_model_name_or_path") or "").strip()
    if vae_path and is_model_file(vae_path):
        vae_state = read_state_dict(vae_path, bool(cfg.get("allow_pickle_checkpoints")))
        return _single(AutoencoderKL, vae_state, source, "vae", common, kind)
    if vae_path:
        return local_first(AutoencoderKL.from_pretrained, vae_path, {})
    assert state is not None
    return _single(AutoencoderKL, state, source, "vae", common, kind)


def _text_encoder(
    state: dict[str, torch.Tensor], family: str, source: str, common: dict, first: bool
) -> Any:
    """One CLIP text encoder, converted with diffusers' converters chosen by family (not by
    probing key names, which cannot tell two encoders of one width apart)."""
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_open_clip_checkpoint,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sdxl = family == "sdxl"
    sub = "text_encoder" if first else "text_encoder_2"
    cls = CLIPTextModelWithProjection if (sdxl and not first) else CLIPTextModel
    try:
        # Both classes take a CLIPTextConfig (their config_class).
        config = CLIPTextConfig.from_pretrained(source, subfolder=sub, **common)
    except OSError:
        raise _no_config(family, source) from None
    model = cls(config)
    open_clip = OPEN_CLIP_PREFIX.get(family) if (family == "sd2x" or not first) else None
    if open_clip:
        converted = convert_open_clip_checkpoint(model, state, prefix=open_clip)
    else:
        keep = "conditioner.embedders.0.transformer." if sdxl else "cond_stage_model.transformer."
        converted = convert_ldm_clip_checkpoint(
            {k: v for k, v in state.items() if k.startswith(keep)}
        )
    if not hasattr(model, "text_model"):  # transformers 5 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    converted = {k: v for k, v in converted.items() if not k.endswith("position_ids")}
    result = model.load_state_dict(converted, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith("position_ids")]
    if missing or result.unexpected_keys:
        raise ModelFileError(
            f"the {sub} weights in the file do not fit the {sub} config of {source!r} "
            f"(missing {missing[:3]}, unexpected {list(result.unexpected_keys)[:3]}): set "
            "single_file_config to a model of the same architecture"
        )
    return model.eval()
