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


def register_state_hooks(accelerator: Any, lora: bool) -> None:
    """For LoRA, save/load only the adapter weights through accelerate's state hooks."""
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
    """LoRA: pytorch_lora_weights.safetensors; full: a diffusers pipeline folder.
    Written to a temp folder beside `out_dir` and renamed into place."""
    dtype = SAVE_DTYPES[cfg["save_precision"]]
    out_dir = Path(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=".weights-", dir=out_dir.parent))
    try:
        u = accelerator.unwrap_model(unet)
        tes = [accelerator.unwrap_model(t) for t in text_encoders]
        if cfg["model_type"] == "lora":
            from diffusers.utils import convert_state_dict_to_diffusers

            parts = {"unet": u}
            if cfg["train_text_encoder"]:
                parts |= dict(zip(["text_encoder", "text_encoder_2"], tes, strict=False))
            initial = models.initial_adapters or [None] * len(parts)
            kwargs: dict[str, Any] = {}
            for (name, module), init in zip(parts.items(), initial, strict=True):
                state, meta = plain_lora(module, init)
                kwargs[f"{name}_lora_layers"] = _cast(convert_state_dict_to_diffusers(state), dtype)
                kwargs[f"{name}_lora_adapter_metadata"] = meta
            models.pipeline_class.save_lora_weights(str(tmp), safe_serialization=True, **kwargs)
        else:
            if ema is not None:
                ema.copy_to(u.parameters())
            pipe = models.pipeline(u, tes, _saved_scheduler(models))
            pipe.to(dtype=dtype)
            pipe.save_pretrained(str(tmp), safe_serialization=True)
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
