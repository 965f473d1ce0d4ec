"""What a checkpoint holds for the models, and the final weights of a run.

LoRA checkpoints hold only the adapter tensors (not the frozen base model); the final LoRA
is written with the pipeline's save_lora_weights so diffusers' load_lora_weights reads it.

A saved LoRA applied to the original base model reproduces the trained model, whatever the
alpha, rsLoRA, DoRA or init: each adapter's scale is folded into its lora_B (so the file is a
plain LoRA with alpha = rank, which every loader applies at the right strength, with or
without the adapter metadata that is saved too), and a PiSSA adapter, trained against
residual base weights, is converted into a rank-2r LoRA for the original weights. A full
fine-tune is a pipeline folder that loads with a bare from_pretrained and carries the base
model's own scheduler.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

SAVE_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register_state_hooks(accelerator: Any, lora: bool, export: Any = None) -> None:
    """For LoRA, save/load only the adapter weights through accelerate's state hooks.
    `export(modules, folder)`, if given, also writes each checkpoint's LoRA as the file other
    tools load (see export_checkpoint_lora)."""
    if not lora:
        return
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict

    def save_hook(models: list[Any], weights: list[Any], output_dir: str) -> None:
        if accelerator.is_main_process:
            for i, model in enumerate(models):
                state = get_peft_model_state_dict(accelerator.unwrap_model(model))
                save_file(
                    {k: v.detach().cpu().contiguous() for k, v in state.items()},
                    os.path.join(output_dir, f"adapter_{i}.safetensors"),
                )
            if export is not None:
                export([accelerator.unwrap_model(m) for m in models], Path(output_dir))
        weights.clear()  # nothing else of the models goes into the checkpoint

    def load_hook(models: list[Any], input_dir: str) -> None:
        for i, model in enumerate(models):
            state = load_file(os.path.join(input_dir, f"adapter_{i}.safetensors"))
            result = set_peft_model_state_dict(accelerator.unwrap_model(model), state)
            if getattr(result, "unexpected_keys", None):
                raise RuntimeError(f"checkpoint adapter {i} does not match the model")
        models.clear()

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)


def _cast(state: Mapping[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", dtype).contiguous() for k, v in state.items()}


def plain_lora(
    model: Any, initial: Mapping[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(peft-format state dict, LoraConfig dict) of `model`'s adapter as a plain LoRA at scale
    1 for the model's original base weights.

    `initial`: the adapter's tensors right after a PiSSA init. PiSSA trains W_res + s*B*A
    with W_res = W - s*B0*A0, so the update to W is s*(B*A - B0*A0) = [s*B | -s*B0] @ [A ; A0]:
    a LoRA of twice the rank (the conversion peft's subtract_mutated_init does for a PeftModel;
    the DoRA magnitude is unchanged since W + update = W_res + s*B*A).
    """
    from peft.tuners.lora import LoraLayer
    from peft.utils import get_peft_model_state_dict

    config = model.peft_config["default"]
    if config.peft_type in ("LOHA", "LOKR"):  # LyCORIS: the same, folded in its own way
        from trainer.adapters import plain_lycoris

        return plain_lycoris(model)
    state = {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(model).items()}
    rank = config.r
    for name, module in model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.scaling:
            continue
        a_key, b_key = f"{name}.lora_A.weight", f"{name}.lora_B.weight"
        scale = module.scaling["default"]  # alpha/r or alpha/sqrt(r), patterns included
        if initial is not None:
            state[a_key] = torch.cat([state[a_key], initial[a_key].float()], dim=0)
            state[b_key] = torch.cat([state[b_key], -initial[b_key].float()], dim=1)
        state[b_key] = state[b_key] * scale
        rank = state[a_key].shape[0]
    meta = config.to_dict()
    meta.update(
        r=rank,
        lora_alpha=rank,
        use_rslora=False,
        rank_pattern={},
        alpha_pattern={},
        # A loader must not run the init again: PiSSA would rewrite the base weights.
        init_lora_weights=True,
    )
    return state, meta


def save_final_weights(
    cfg: Mapping[str, Any],
    models: Any,
    accelerator: Any,
    unet: Any,
    text_encoders: list[Any],
    ema: Any,
    out_dir: Path,
) -> Path:
    """LoRA: one <run name>.safetensors in lora_format, with metadata; full: a diffusers
    pipeline folder (and with save_single_file one original-layout <run name>.safetensors in
    it). Written to a temp folder beside `out_dir` and renamed into place."""
    dtype = SAVE_DTYPES[cfg["save_precision"]]
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".weights-", dir=out_dir.parent))
    try:
        u = accelerator.unwrap_model(unet)
        tes = [accelerator.unwrap_model(t) for t in text_encoders]
        if cfg["model_type"] == "lora":
            parts = {"unet": u}
            if cfg["train_text_encoder"]:
                parts |= dict(zip(["text_encoder", "text_encoder_2"], tes, strict=False))
            initial = models.initial_adapters or [None] * len(parts)
            plain = {
                name: plain_lora(module, init)
                for (name, module), init in zip(parts.items(), initial, strict=True)
            }
            write_lora_file(cfg, models, plain, tmp / output_file_name(cfg, out_dir), dtype, u)
        else:
            if ema is not None:
                ema.copy_to(u.parameters())
            pipe = models.pipeline(u, tes, _saved_scheduler(models))
            pipe.to(dtype=dtype)
            pipe.save_pretrained(str(tmp), safe_serialization=True)
            if cfg.get("save_single_file"):
                write_single_file(cfg, models, u, tes, tmp / output_file_name(cfg, out_dir), dtype)
            pipe.to(dtype=torch.float32)
            _load_text_encoders_as_fp32(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _saved_scheduler(models: Any) -> Any:
    """The base model's own scheduler, with the prediction type the model was trained for."""
    own = models.inference_scheduler or models.noise_scheduler
    trained = models.noise_scheduler.config.prediction_type
    if own.config.get("prediction_type") == trained:
        return own
    return type(own).from_config(own.config, prediction_type=trained)


def _load_text_encoders_as_fp32(folder: Path) -> None:
    """transformers loads a model in the dtype its config.json names, diffusers loads its own
    models in fp32: a half-precision text encoder next to an fp32 UNet fails at the first
    matmul. Naming fp32 makes a bare from_pretrained give one dtype (torch_dtype still
    chooses another); the weights stay in the saved precision."""
    import json

    for name in ("text_encoder", "text_encoder_2"):
        path = folder / name / "config.json"
        if not path.is_file():
            continue
        config = json.loads(path.read_text())
        config.pop("torch_dtype", None)
        config["dtype"] = "float32"
        # Inside the temp folder that save_final_weights renames into place as a whole.
        path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def output_file_name(cfg: Mapping[str, Any], out_dir: Path) -> str:
    """<run name>.safetensors: run_name, else the run folder's name, made file-name safe."""
    import re

    name = str(cfg.get("run_name") or "").strip() or Path(out_dir).parent.name or "lora"
    return (re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "lora") + ".safetensors"


def write_lora_file(
    cfg: Mapping[str, Any],
    models: Any,
    plain: Mapping[str, tuple[dict[str, torch.Tensor], dict[str, Any]]],
    file: Path,
    dtype: torch.dtype,
    unet: Any,
) -> Path:
    """One LoRA .safetensors in cfg's lora_format (comfyui: kohya keys; diffusers: the
    pipeline's save_lora_weights layout), with the run's metadata (trainer.lora_metadata)."""
    from safetensors import safe_open

    from trainer.lora_formats import to_kohya
    from trainer.lora_metadata import lora_metadata

    fmt = cfg["lora_format"]
    meta = lora_metadata(cfg, models, plain, fmt, file.stem)
    if fmt == "comfyui":
        tensors = to_kohya({k: v[0] for k, v in plain.items()}, models.is_sdxl, unet)
        save_file(_cast(tensors, dtype), str(file), metadata=meta)
        return file
    from diffusers.utils import convert_state_dict_to_diffusers

    kwargs: dict[str, Any] = {}
    for name, (state, adapter) in plain.items():
        kwargs[f"{name}_lora_layers"] = _cast(convert_state_dict_to_diffusers(state), dtype)
        kwargs[f"{name}_lora_adapter_metadata"] = adapter
    models.pipeline_class.save_lora_weights(
        str(file.parent), weight_name=file.name, safe_serialization=True, **kwargs
    )
    with safe_open(str(file), framework="pt") as f:  # add ours beside diffusers' metadata
        meta = dict(f.metadata() or {}) | meta
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    save_file(tensors, str(file), metadata=meta)
    return file


def write_single_file(
    cfg: Mapping[str, Any], models: Any, unet: Any, text_encoders: list[Any], file: Path, dtype: Any
) -> Path:
    """The whole model as one original-layout .safetensors (what ComfyUI / A1111 load and
    trainer.single_file reads back), at `dtype`."""
    from trainer.lora_metadata import model_metadata
    from trainer.original_layout import pipeline_to_original

    state = pipeline_to_original(models.family, unet, models.vae, list(text_encoders), dtype)
    save_file(state, str(file), metadata=model_metadata(cfg, models, file.stem))
    return file


def export_checkpoint_lora(
    cfg: Mapping[str, Any], models: Any, modules: list[Any], folder: Path
) -> Path:
    """A checkpoint's LoRA as one <run name>.safetensors in `folder` (the checkpoint folder,
    still a temp folder when accelerate's save hook runs), in lora_format with the same
    metadata as the final file. `modules`: the trained modules, denoiser first."""
    parts = dict(zip(["unet", "text_encoder", "text_encoder_2"], modules, strict=False))
    initial = models.initial_adapters or [None] * len(parts)
    plain = {
        name: plain_lora(module, init)
        for (name, module), init in zip(parts.items(), initial, strict=True)
    }
    file = Path(folder) / output_file_name(cfg, Path(cfg["output_dir"]) / "weights")
    dtype = SAVE_DTYPES[cfg["save_precision"]]
    return write_lora_file(cfg, models, plain, file, dtype, modules[0])
