"""LoRA files other tools load, and LoRA files read back to continue training.

Written (`lora_file_tensors`): from the plain LoRA of each trained module (trainer.weights:
peft names, scale folded into lora_B, so alpha = rank) either
  diffusers  unet.<module>.lora_A.weight / lora_B.weight, text_encoder[_2].<module>...
             (what StableDiffusion[XL]Pipeline.save_lora_weights writes), or
  comfyui    kohya sd-scripts' names, which ComfyUI, Forge/A1111 and InvokeAI read:
             <prefix>_<module path with '_'>.lora_down.weight / .lora_up.weight / .alpha, with
             prefix lora_unet (SD 1.x / 2.x: diffusers module names, as kohya trains those on
             the diffusers UNet; SDXL: the original sgm names input_blocks.N / middle_block /
             output_blocks.N, as kohya trains SDXL on its sgm UNet), lora_te (SD 1.x / 2.x text
             encoder) or lora_te1 / lora_te2 (SDXL), text encoder modules under text_model.
Both load with diffusers' load_lora_weights and apply the same update.

Read (`load_init_lora`): a LoRA file of either layout onto freshly added peft adapters,
through diffusers' own readers (lora_state_dict converts kohya names), with each module's
stored strength (alpha / rank) rescaled to the adapter's configured scale, so the model
starts exactly where the file's model is. Adapters the file lacks, or tensors with no
adapter, are an error naming them (the targets or rank differ).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from trainer.adapters import (
    NameOf,
    is_lycoris_file,
    kohya_lycoris,
    load_lycoris_file,
    split_key,
)

TEXT_PREFIXES_KOHYA = {False: ("lora_te",), True: ("lora_te1", "lora_te2")}
DIFFUSERS_PARTS = ("unet", "text_encoder", "text_encoder_2")


def unet_original_names(unet: Any) -> dict[str, str]:
    """diffusers module name -> original (sgm) module name for every module of `unet`."""
    from trainer.original_layout import unet_to_original

    # With adapters in place the base weights sit under <module>.base_layer.
    names = (
        k.replace(".base_layer.", ".")
        for k in unet.state_dict()
        if not any(p in k for p in (".lora_", ".hada_", ".lokr_"))  # adapter tensors
    )
    keys = {k: k for k in names}
    mapped = unet_to_original(keys, unet.config)  # values pass through: original -> diffusers
    return {d.rpartition(".")[0]: o.rpartition(".")[0] for o, d in mapped.items()}


def _base_module(key: str) -> tuple[str, str] | None:
    """(module, "A" | "B") of a peft LoRA key (None: not a lora_A/lora_B weight)."""
    for part in ("A", "B"):
        suffix = f".lora_{part}.weight"
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return None


def kohya_name(part: str, module: str, sdxl: bool, sgm: Mapping[str, str]) -> str:
    """kohya's name of one adapted module (`sgm`: SDXL's diffusers -> original UNet names)."""
    if part == "unet":
        return "lora_unet_" + sgm.get(module, module).replace(".", "_")
    prefix = TEXT_PREFIXES_KOHYA[sdxl][0 if part == "text_encoder" else 1]
    path = module if module.startswith("text_model.") else f"text_model.{module}"
    return f"{prefix}_" + path.replace(".", "_")


def flow_name_of(denoiser: str) -> NameOf:
    """kohya-style names for Flux / SD3 files: the transformer's diffusers module path under
    lora_transformer_ (ComfyUI maps it onto its own, fused, layers), CLIP encoders under
    lora_te1_ / lora_te2_ (CLIP-L, CLIP-G)."""

    def name_of(part: str, module: str) -> str:
        if part == denoiser:
            return "lora_transformer_" + module.replace(".", "_")
        return kohya_name(part, module, True, {})

    return name_of


def to_kohya(
    parts: Mapping[str, Mapping[str, torch.Tensor]], sdxl: bool, unet: Any | None
) -> dict[str, torch.Tensor]:
    """Plain LoRA states per part ("unet", "text_encoder", "text_encoder_2"; peft names, alpha =
    rank) -> one kohya-named state dict."""
    sgm = unet_original_names(unet) if (sdxl and unet is not None) else {}
    if any(split_key(k) for state in parts.values() for k in state):  # LoHa / LoKr
        return kohya_lycoris(parts, lambda part, module: kohya_name(part, module, sdxl, sgm))
    out: dict[str, torch.Tensor] = {}
    for part, state in parts.items():
        for key, value in state.items():
            found = _base_module(key)
            if found is None:
                raise ValueError(
                    f"{key!r} is not a plain LoRA weight (DoRA and other adapter kinds have no "
                    "kohya form): set lora_format to diffusers"
                )
            module, ab = found
            name = kohya_name(part, module, sdxl, sgm)
            out[f"{name}.lora_{'down' if ab == 'A' else 'up'}.weight"] = value
            if ab == "A":
                out[f"{name}.alpha"] = torch.tensor(float(value.shape[0]))
    return out


def load_init_lora(
    file: str | Path,
    pipeline_class: Any,
    modules: Mapping[str, Any],
    sdxl: bool,
) -> dict[str, int]:
    """Load the LoRA in `file` into the peft adapters ("default") of `modules` ({"unet": ...,
    "text_encoder": ...}); returns the number of adapted layers set per part. Raises
    ValueError naming what differs when the file's layers or rank do not fit the adapters."""
    if is_lycoris_file(file):  # kohya LoHa / LoKr
        sgm_names = unet_original_names(modules["unet"]) if sdxl else {}
        return load_lycoris_file(
            file, modules, lambda part, module: kohya_name(part, module, sdxl, sgm_names)
        )
    meta, raw_alphas = _read_metadata_and_alphas(file)
    state, _ = pipeline_class.lora_state_dict(str(file))
    unet = modules.get("unet")
    sgm = unet_original_names(unet) if (sdxl and unet is not None) else {}

    def alpha_of(part: str, name: str, rank: int) -> float:
        alpha = raw_alphas.get(f"{kohya_name(part, name, sdxl, sgm)}.alpha")
        return _stored_alpha(meta, part, rank) if alpha is None else alpha

    counts: dict[str, int] = {}
    for part in DIFFUSERS_PARTS:
        prefix = f"{part}."
        sub = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        module = modules.get(part)
        _check_part_present(file, part, has_layers=bool(sub), has_adapters=module is not None)
        if sub:
            counts[part] = _load_part(file, part, module, sub, alpha_of)
    return counts


def _read_metadata_and_alphas(file: str | Path) -> tuple[dict[str, str], dict[str, float]]:
    """The file's safetensors metadata and its kohya `<module>.alpha` values by key."""
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        meta: dict[str, str] = f.metadata() or {}
        alpha_keys = [k for k in f.keys() if k.endswith(".alpha")]  # noqa: SIM118
        raw_alphas = {k: float(f.get_tensor(k).item()) for k in alpha_keys}
    return meta, raw_alphas


def _check_part_present(file: str | Path, part: str, has_layers: bool, has_adapters: bool) -> None:
    """Refuse a file and a run that disagree on whether `part` is adapted at all."""
    if not has_layers and has_adapters:
        raise ValueError(
            f"init_lora {file} has no {part} layers but this run trains {part} "
            "adapters: turn train_text_encoder off, or choose a LoRA that has them"
        )
    if has_layers and not has_adapters:
        raise ValueError(
            f"init_lora {file} has {part} layers but this run puts no adapters on {part}: "
            "turn train_text_encoder on to continue them"
        )


def _load_part(
    file: str | Path,
    part: str,
    module: Any,
    sub: Mapping[str, torch.Tensor],
    alpha_of: Callable[[str, str, int], float],
) -> int:
    """Set `module`'s "default" adapters from one part's diffusers-named tensors `sub`;
    returns the number of layers set."""
    from peft.utils import set_peft_model_state_dict

    peft_sub = _to_peft_names(part, module, sub)
    layers = _default_lora_layers(module)
    _check_layers_fit(file, part, set(layers), peft_sub)
    for name, layer in layers.items():
        a, b = peft_sub[f"{name}.lora_A.weight"], peft_sub[f"{name}.lora_B.weight"]
        if a.shape != layer.lora_A["default"].weight.shape:
            raise ValueError(
                f"init_lora {file} has rank {a.shape[0]} at {part}.{name} but this run's "
                f"adapters have rank {layer.r['default']}: set the rank to {a.shape[0]}"
            )
        rank = a.shape[0]
        alpha = alpha_of(part, name, rank)
        # Same update B@A*alpha/rank under the adapter's own scale.
        peft_sub[f"{name}.lora_B.weight"] = b * (alpha / rank) / layer.scaling["default"]
    result = set_peft_model_state_dict(module, peft_sub, adapter_name="default")
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    if unexpected:
        raise ValueError(f"init_lora {file}: tensors with no adapter: {unexpected[:3]}")
    return len(layers)


def _to_peft_names(
    part: str, module: Any, sub: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """One part's diffusers-named LoRA tensors under the names peft gives `module`'s layers."""
    from diffusers.utils import convert_unet_state_dict_to_peft
    from diffusers.utils.state_dict_utils import convert_state_dict_to_peft

    peft_sub: dict[str, torch.Tensor] = (
        convert_unet_state_dict_to_peft(dict(sub))
        if part == "unet"
        else convert_state_dict_to_peft(dict(sub))
    )
    if not hasattr(module, "text_model") and part != "unet":
        peft_sub = {k.removeprefix("text_model."): v for k, v in peft_sub.items()}
    return peft_sub


def _default_lora_layers(module: Any) -> dict[str, Any]:
    """`module`'s LoRA layers that carry the "default" adapter, by module name."""
    from peft.tuners.lora import LoraLayer

    return {
        name: m
        for name, m in module.named_modules()
        if isinstance(m, LoraLayer) and "default" in m.scaling
    }


def _check_layers_fit(
    file: str | Path, part: str, layers: set[str], peft_sub: Mapping[str, torch.Tensor]
) -> None:
    """Refuse a file whose adapted modules of `part` are not exactly the run's `layers`."""
    file_modules = {b[0] for k in peft_sub if (b := _base_module(k))}
    missing = sorted(layers - file_modules)
    extra = sorted(file_modules - layers)
    if missing or extra:
        raise ValueError(
            f"init_lora {file} does not fit this run's {part} adapters: "
            + (f"the file lacks {missing[:3]} ({len(missing)} layers); " if missing else "")
            + (f"the run has no adapter on {extra[:3]} ({len(extra)} layers); " if extra else "")
            + "make lora_target_modules (and train_text_encoder) match the file"
        )


def _stored_alpha(meta: Mapping[str, str], part: str, rank: int) -> float:
    """A diffusers file's alpha: its saved adapter config (lora_adapter_metadata), else rank."""
    import json

    raw = meta.get("lora_adapter_metadata")
    if raw:
        try:
            config = json.loads(raw).get(part, {})
            if "lora_alpha" in config and int(config.get("r", rank)) == rank:
                return float(config["lora_alpha"])
        except (ValueError, AttributeError):
            pass
    return float(rank)


def kohya_module_names(keys: Sequence[str]) -> list[str]:
    """The distinct module names (without .lora_down/.lora_up/.alpha) of a kohya state dict."""
    return sorted({k.split(".")[0] for k in keys})
