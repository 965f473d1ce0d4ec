"""LyCORIS adapters (LoHa, LoKr) for lora_type=lycoris, and their kohya-style files.

The adapters are peft's LoHaConfig / LoKrConfig rather than the lycoris-lora package: peft is
already what every adapter of this trainer is made with, so diffusers' add_adapter, the
accelerate checkpoint hooks (get/set_peft_model_state_dict), the optimiser's parameter
selection and the fp32 cast all work unchanged; it is no new dependency; and its LoHa / LoKr
layers compute LyCORIS's weight update (same factors, same alpha / r scale).

Contracts
  adapter_config(cfg, lora)   the peft config of one module: `lora` itself (the LoraConfig a
                              family built) for lora_type=standard; for lycoris a LoHaConfig /
                              LoKrConfig with the same rank, alpha, targets and layers.
  plain_lycoris(model)        (state, adapter config) as trainer.weights.plain_lora gives
                              them: peft names, each layer's scale folded into its first
                              factor (hada_w1_a; lokr_w1 or lokr_w1_a), so the update is the
                              bare LyCORIS formula (scale 1) and the config says alpha = r.
  kohya_lycoris(parts, ...)   the file's tensors: <kohya module name>.<peft param name> and
                              .alpha chosen so the loader's factor is 1. ComfyUI (and LyCORIS
                              itself) scale LoHa by alpha / hada_w1_b rows, a LoKr with a
                              decomposed factor by alpha / that factor's rank, a LoKr with both
                              factors full by 1: with the scale folded in, the update a loader
                              applies is exactly the trained one.
  load_lycoris_file(...)      a kohya LyCORIS file back onto the peft adapters of the run's
                              modules (init_lora), its update rescaled to the adapters' own
                              scale, so training continues from the file's model. Layers or
                              shapes that differ are a ValueError naming them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch

LOHA_PARAMS = ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2")
LOKR_PARAMS = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
PARAMS = (*LOHA_PARAMS, *LOKR_PARAMS)

NameOf = Callable[[str, str], str]  # (part, peft module name) -> kohya module name


def is_lycoris(cfg: Mapping[str, Any]) -> bool:
    return cfg["lora_type"] == "lycoris"


def adapter_config(cfg: Mapping[str, Any], lora: Any) -> Any:
    """The peft config for one module: `lora` for standard LoRA, else LoHa / LoKr with its
    rank, alpha, target modules and layer selection. The standard-only options (DoRA,
    rsLoRA, init, dropout) are refused for lycoris by the registry's validation."""
    if not is_lycoris(cfg):
        return lora
    from peft import LoHaConfig, LoKrConfig

    common = {
        "r": lora.r,
        "alpha": lora.lora_alpha,
        "target_modules": lora.target_modules,
        "layers_to_transform": lora.layers_to_transform,
        "layers_pattern": lora.layers_pattern,
    }
    if cfg["lycoris_algo"] == "loha":
        return LoHaConfig(**common)
    return LoKrConfig(
        **common,
        decompose_factor=cfg["lokr_factor"],
        decompose_both=cfg["lokr_decompose_both"],
    )


def split_key(key: str) -> tuple[str, str] | None:
    """(module, LyCORIS parameter) of a peft LoHa / LoKr state key, else None."""
    module, _, param = key.rpartition(".")
    return (module, param) if param in PARAMS and module else None


def _layers(model: Any) -> dict[str, Any]:
    from peft.tuners.lycoris_utils import LycorisLayer

    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, LycorisLayer) and "default" in m.scaling
    }


def _folded_param(params: Collection[str]) -> str:
    """The factor a layer's scale is folded into (the update is linear in it)."""
    for name in ("hada_w1_a", "lokr_w1", "lokr_w1_a"):
        if name in params:
            return name
    raise ValueError(f"not a LoHa / LoKr layer: {sorted(params)}")


def plain_lycoris(model: Any) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(peft state, adapter config) of `model`'s LoHa / LoKr adapter at scale 1 (see the
    module docstring)."""
    from peft.utils import get_peft_model_state_dict

    config = model.peft_config["default"]
    state = {k: v.detach().float().cpu() for k, v in get_peft_model_state_dict(model).items()}
    for name, layer in _layers(model).items():
        params = {s[1] for k in state if (s := split_key(k)) and s[0] == name}
        key = f"{name}.{_folded_param(params)}"
        state[key] = state[key] * layer.scaling["default"]
    meta = config.to_dict()
    meta.update(alpha=config.r, rank_pattern={}, alpha_pattern={})
    return state, meta


def file_scale(params: Mapping[str, torch.Tensor], alpha: float | None) -> float:
    """The factor ComfyUI / LyCORIS apply to a layer's bare formula: alpha / rank (LoHa; LoKr
    with a decomposed factor, the second's rank if both are), 1 without alpha or for a LoKr
    whose factors are both full."""
    if alpha is None:
        return 1.0
    if "hada_w1_b" in params:
        return alpha / params["hada_w1_b"].shape[0]
    dim = None
    if "lokr_w1_b" in params:
        dim = params["lokr_w1_b"].shape[0]
    if "lokr_w2_b" in params:
        dim = params["lokr_w2_b"].shape[0]
    return 1.0 if dim is None else alpha / dim


def kohya_lycoris(
    parts: Mapping[str, Mapping[str, torch.Tensor]], name_of: NameOf
) -> dict[str, torch.Tensor]:
    """plain_lycoris states per part ("unet"/"transformer", "text_encoder", ...) -> one
    kohya-named LyCORIS state dict whose loaded update is the trained one."""
    out: dict[str, torch.Tensor] = {}
    for part, state in parts.items():
        grouped: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in state.items():
            found = split_key(key)
            if found is None:
                raise ValueError(f"{key!r} is not a LoHa / LoKr weight")
            grouped.setdefault(found[0], {})[found[1]] = value
        for module, params in grouped.items():
            name = name_of(part, module)
            out |= {f"{name}.{p}": v for p, v in params.items()}
            # Scale folded in (plain_lycoris): alpha = the rank the loader divides by.
            dim = next(
                (
                    params[p].shape[0]
                    for p in ("lokr_w2_b", "lokr_w1_b", "hada_w1_b")
                    if p in params
                ),
                None,
            )
            # No decomposed factor (a full LoKr): loaders apply it at 1 whatever the alpha.
            out[f"{name}.alpha"] = torch.tensor(float(dim if dim is not None else 1))
    return out


def is_lycoris_file(file: str | Path) -> bool:
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        return any(split_key(k) for k in f.keys())  # noqa: SIM118


def load_lycoris_file(
    file: str | Path, modules: Mapping[str, Any], name_of: NameOf
) -> dict[str, int]:
    """Load the kohya LyCORIS `file` into the peft LoHa / LoKr adapters ("default") of
    `modules` ({"unet": ..., "text_encoder": ...}); returns the adapted layers set per part."""
    from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    tensors = load_file(str(file))
    used: set[str] = set()
    counts: dict[str, int] = {}
    for part, module in modules.items():
        layers = _layers(module)
        if not layers:
            raise ValueError(
                f"init_lora {file} is a LyCORIS file but this run's {part} has standard LoRA "
                "adapters: set lora_type to lycoris"
            )
        own = get_peft_model_state_dict(module)
        state: dict[str, torch.Tensor] = {}
        missing: list[str] = []
        for name, layer in layers.items():
            kname = name_of(part, name)
            wanted = {s[1]: v for k, v in own.items() if (s := split_key(k)) and s[0] == name}
            found = {p: tensors[f"{kname}.{p}"] for p in PARAMS if f"{kname}.{p}" in tensors}
            if not found:
                missing.append(kname)
                continue
            if set(found) != set(wanted) or any(found[p].shape != wanted[p].shape for p in wanted):
                raise ValueError(
                    f"init_lora {file} does not fit this run's adapter at {kname}: the file has "
                    f"{ {p: tuple(v.shape) for p, v in found.items()} }, the run "
                    f"{ {p: tuple(v.shape) for p, v in wanted.items()} }; make lycoris_algo, "
                    "lora_rank, lokr_factor and lokr_decompose_both match the file"
                )
            alpha_key = f"{kname}.alpha"
            alpha = float(tensors[alpha_key].item()) if alpha_key in tensors else None
            used |= {f"{kname}.{p}" for p in found} | {alpha_key}
            # The file's update at the adapter's own scale alpha / r.
            factor = file_scale(found, alpha) / layer.scaling["default"]
            folded = _folded_param(found)
            found[folded] = found[folded] * factor
            state |= {f"{name}.{p}": v for p, v in found.items()}
        if missing:
            raise ValueError(
                f"init_lora {file} lacks {missing[:3]} ({len(missing)} layers) that this run "
                "adapts: make lora_target_modules (and train_text_encoder) match the file"
            )
        result = set_peft_model_state_dict(module, state, adapter_name="default")
        unexpected = list(getattr(result, "unexpected_keys", None) or [])
        if unexpected:
            raise ValueError(f"init_lora {file}: tensors with no adapter: {unexpected[:3]}")
        counts[part] = len(layers)
    extra = sorted({k.rpartition(".")[0] for k in tensors} - {k.rpartition(".")[0] for k in used})
    if extra:
        raise ValueError(
            f"init_lora {file} has layers this run does not adapt: {extra[:3]} ({len(extra)}): "
            "make lora_target_modules (and train_text_encoder) match the file"
        )
    return counts


def write_lycoris_file(
    cfg: Mapping[str, Any],
    models: Any,
    parts: Mapping[str, Any],
    file: Path,
    dtype: torch.dtype,
    name_of: NameOf,
) -> Path:
    """The LyCORIS file of `parts` (part name -> trained module, unwrapped) with the run's
    metadata (trainer.lora_metadata), written into `file`'s folder (a temp folder that is
    renamed into place, or a checkpoint being written)."""
    from safetensors.torch import save_file

    from trainer.lora_metadata import lora_metadata

    plain = {name: plain_lycoris(module) for name, module in parts.items()}
    tensors = kohya_lycoris({k: v[0] for k, v in plain.items()}, name_of)
    meta = lora_metadata(cfg, models, plain, "comfyui", file.stem)
    save_file(
        {k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()},
        str(file),
        metadata=meta,
    )
    return file
