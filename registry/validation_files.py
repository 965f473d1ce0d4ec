"""Validation that reads files: the base model and VAE paths (folder or single file, family
matching the config) and an initial LoRA to continue (its family and rank)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry.issues import Issue, combination
from registry.model_files import (
    MODEL_FILE_SUFFIXES,
    SD_FAMILIES,
    ModelFileError,
    family_mismatch,
    inspect_model_file,
    lora_rank_of,
    read_header,
)
from registry.model_folders import folder_family, wrong_family_message
from registry.user_paths import user_path


def model_path_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    """Base model and VAE paths the trainer could not load, refused before it downloads or
    parses anything. Only what exists on this machine is judged; other values may be Hub ids.
    Single files are judged from their safetensors header (registry.model_files)."""
    family = values["model_family"]
    allow_pickle = bool(values.get("allow_pickle_checkpoints"))
    base = values["pretrained_model_name_or_path"].strip()
    if base:
        path = user_path(base)
        if path.is_file() or path.suffix.lower() in MODEL_FILE_SUFFIXES:
            problem = _single_file_problem(path, family, allow_pickle, "base")
            if problem:
                errors.append(combination("pretrained_model_name_or_path", problem))
        elif path.is_dir() and (wrong := wrong_family_message(family, base, *folder_family(path))):
            errors.append(combination("pretrained_model_name_or_path", wrong))
        elif path.is_dir() and not (path / "model_index.json").is_file():
            errors.append(
                combination(
                    "pretrained_model_name_or_path",
                    f"the folder {base!r} has no model_index.json, so it is not a diffusers "
                    "model: choose the folder that holds model_index.json (with unet/, vae/, "
                    "text_encoder/ ...), a single .safetensors checkpoint, or a Hugging Face "
                    "Hub id",
                )
            )
    vae = values["pretrained_vae_model_name_or_path"].strip()
    if vae:
        path = user_path(vae)
        if path.is_file() or path.suffix.lower() in MODEL_FILE_SUFFIXES:
            problem = _single_file_problem(path, family, allow_pickle, "vae")
            if problem:
                errors.append(combination("pretrained_vae_model_name_or_path", problem))
        elif path.is_dir() and not (path / "config.json").is_file():
            inner = path / "vae"
            hint = (
                f"choose its vae subfolder {str(inner)!r}"
                if (inner / "config.json").is_file()
                else "choose a diffusers VAE folder (with config.json), a .safetensors VAE file "
                "or a Hugging Face Hub id"
            )
            errors.append(
                combination(
                    "pretrained_vae_model_name_or_path",
                    f"the folder {vae!r} has no config.json, so it is not a diffusers VAE: {hint}",
                )
            )


def _single_file_problem(path: Path, family: str, allow_pickle: bool, role: str) -> str | None:
    """Why the single file at `path` cannot be the base model / VAE of `family` (None: it can)."""
    if family not in SD_FAMILIES:
        return (
            f"{str(path)!r} is a single file; for {family} the "
            f"{'base model' if role == 'base' else 'VAE'} must be a diffusers folder or a "
            "Hugging Face Hub id (single files are read for SD 1.x, 2.x and SDXL)"
        )
    if not path.is_file():
        return f"no file {str(path)!r}: check the path"
    try:
        facts = inspect_model_file(path, allow_pickle=allow_pickle)
    except ModelFileError as exc:
        return str(exc)
    if facts.kind == "unknown":
        return None  # a pickle let through, or a layout only the loader can judge
    if role == "vae":
        if facts.kind == "vae" or facts.has_vae:
            return None
        return f"{str(path)!r} holds no VAE (it is {facts.label}): choose a VAE file or folder"
    return family_mismatch(facts, family)


def _lycoris_algo_of(header: Mapping[str, Any]) -> str | None:
    """'loha' / 'lokr' for a kohya-style LyCORIS file (hada_* / lokr_* tensors), else None."""
    for k in header:
        if k.endswith(".hada_w1_a"):
            return "loha"
        if ".lokr_w1" in k or ".lokr_w2" in k:
            return "lokr"
    return None


def init_lora_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    """init_lora: an existing LoRA file whose rank matches lora_rank (read from its header);
    and a DoRA run cannot be written in kohya's layout (it has no DoRA form)."""
    if (
        values["model_type"] == "lora"
        and values.get("use_dora")
        and values.get("lora_format") == "comfyui"
        and values["model_family"] in ("demo", *SD_FAMILIES)
    ):
        errors.append(
            combination(
                "lora_format",
                "use_dora adapters have no ComfyUI/kohya form: set lora_format to diffusers",
            )
        )
    raw = str(values.get("init_lora") or "").strip()
    if not raw or values["model_type"] != "lora":
        return
    if values["lora_init"] == "pissa":
        errors.append(
            combination(
                "init_lora",
                "lora_init=pissa rewrites the base weights, so an existing LoRA cannot be "
                "continued with it: set lora_init to default, or clear init_lora",
            )
        )
        return
    path = user_path(raw)
    if not path.is_file():
        errors.append(combination("init_lora", f"no file {raw!r}: choose a LoRA .safetensors"))
        return
    try:
        header, _, _ = read_header(path)
    except ModelFileError as exc:
        errors.append(combination("init_lora", str(exc)))
        return
    algo = _lycoris_algo_of(header)
    if algo or values.get("lora_type") == "lycoris":
        want = values["lycoris_algo"] if values.get("lora_type") == "lycoris" else None
        if algo != want:
            errors.append(
                combination(
                    "init_lora",
                    f"{raw!r} is "
                    + (f"a LyCORIS {algo} file" if algo else "not a LyCORIS file")
                    + f" but this run trains {f'LyCORIS {want}' if want else 'a standard LoRA'}"
                    + " adapters: "
                    + (
                        f"set lora_type to lycoris and lycoris_algo to {algo}"
                        if algo
                        else "set lora_type to standard, or choose a LyCORIS file"
                    ),
                )
            )
        return  # the rank of a LyCORIS file is checked against the adapters when loading
    found = lora_rank_of(header)
    if found is None:
        errors.append(
            combination(
                "init_lora",
                f"{raw!r} is not a LoRA (no lora_A / lora_down tensors): choose a LoRA file",
            )
        )
    elif found != values["lora_rank"]:
        errors.append(
            combination(
                "init_lora",
                f"{raw!r} has rank {found} but lora_rank is {values['lora_rank']}: set lora_rank "
                f"to {found} to continue training it",
            )
        )
