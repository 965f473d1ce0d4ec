"""Rules between fields of one config (validate_config runs them once every value is known):
conflicting settings, missing pieces, and the file checks of registry/validation_files.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from registry.catalogue._rules import DDPM_FAMILIES, SIZE_MULTIPLE
from registry.issues import Issue, combination
from registry.model_files import (
    SD_FAMILIES,
)
from registry.prompt_library import PromptLibraryError, load_prompt_library
from registry.user_paths import user_path
from registry.validation_files import init_lora_errors, model_path_errors

DEMO_MAX_RESOLUTION = 128


def cross_field_issues(
    values: Mapping[str, Any],
    explicit: Mapping[str, Any],
    errors: list[Issue],
    warnings: list[Issue],
) -> None:
    """Rules that involve two fields at once."""
    _timestep_errors(values, errors)
    _launch_errors(values, errors)
    _schedule_and_validation_issues(values, errors, warnings)
    _model_issues(values, errors, warnings)
    init_lora_errors(values, errors)
    _lycoris_errors(values, errors)


def _timestep_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    if values["min_timestep"] >= values["max_timestep"]:
        errors.append(
            combination(
                "min_timestep",
                f"must be below max_timestep ({values['min_timestep']} >= {values['max_timestep']})",
            )
        )
    if (
        values["timestep_bias_strategy"] == "range"
        and values["model_family"] in DDPM_FAMILIES
        and values["timestep_bias_begin"] >= values["timestep_bias_end"]
    ):
        errors.append(
            combination(
                "timestep_bias_begin",
                f"must be below timestep_bias_end ({values['timestep_bias_begin']} >= "
                f"{values['timestep_bias_end']}): the range strategy favours begin <= t < end",
            )
        )


def _launch_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    if values["num_machines"] > 1 and values["machine_rank"] >= values["num_machines"]:
        errors.append(
            combination(
                "machine_rank",
                f"must be below num_machines ({values['num_machines']}); ranks count from 0",
            )
        )
    if values["num_machines"] > 1 and not values["main_process_ip"]:
        errors.append(
            combination("main_process_ip", "is needed when training on more than one machine")
        )
    if values["num_processes"] < values["num_machines"]:
        errors.append(
            combination(
                "num_processes",
                "counts processes on all machines together, so it cannot be below num_machines",
            )
        )


def _schedule_and_validation_issues(
    values: Mapping[str, Any], errors: list[Issue], warnings: list[Issue]
) -> None:
    steps = values["max_train_steps"]
    if 0 < steps <= values["lr_warmup_steps"] and values["lr_scheduler"] != "constant":
        warnings.append(
            Issue(
                "lr_warmup_steps",
                f"is not below max_train_steps ({steps}): the learning rate never reaches its peak",
                "warning",
            )
        )
    library = values["user_prompt_library"].strip()
    validating = values["validation_steps"] > 0 or values["validation_epoch_interval"] > 0
    if validating and not values["validation_prompt"].strip() and not library:
        warnings.append(
            Issue("validation_prompt", "is empty, so validation renders nothing", "warning")
        )
    if library and validating:
        try:
            load_prompt_library(user_path(library))
        except PromptLibraryError as exc:
            errors.append(combination("user_prompt_library", f"{library!r}: {exc}"))


def _model_issues(values: Mapping[str, Any], errors: list[Issue], warnings: list[Issue]) -> None:
    if values["model_family"] == "demo" and values["resolution"] > DEMO_MAX_RESOLUTION:
        warnings.append(
            Issue(
                "resolution",
                f"the demo model is made for 64-{DEMO_MAX_RESOLUTION} px images; at "
                f"{values['resolution']} px each step is many times slower (about 30x at 512 "
                "on a CPU): try 64",
                "warning",
            )
        )
    multiple = SIZE_MULTIPLE.get(values["model_family"], 8)
    if values["resolution"] % multiple:
        errors.append(
            combination(
                "resolution",
                f"must be a multiple of {multiple} for {values['model_family']} models "
                f"(the latent is cut into 2x2 patches): try "
                f"{max(multiple, values['resolution'] // multiple * multiple)}",
            )
        )
    if values["model_family"] != "demo" and not values["pretrained_model_name_or_path"].strip():
        errors.append(
            combination(
                "pretrained_model_name_or_path",
                "choose a base model (a diffusers folder or a Hub id) for this model_family",
            )
        )
    if values["model_family"] != "demo":
        model_path_errors(values, errors)


def _lycoris_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    """lora_type=lycoris (peft LoHa / LoKr): the standard-LoRA options have no LyCORIS form
    (the trainer would otherwise drop them silently), and the file is kohya's layout only."""
    if values["model_type"] != "lora" or values.get("lora_type") != "lycoris":
        return
    for name, bad, fix in (
        ("use_dora", values["use_dora"], "turn use_dora off"),
        ("use_rslora", values["use_rslora"], "turn use_rslora off"),
        ("lora_init", values["lora_init"] != "default", "set lora_init to default"),
        ("lora_dropout", values["lora_dropout"] > 0, "set lora_dropout to 0"),
    ):
        if bad:
            errors.append(
                combination(
                    name,
                    "is a standard-LoRA option that LyCORIS (LoHa / LoKr) adapters do not have: "
                    f"{fix}, or set lora_type to standard",
                )
            )
    if values["lycoris_algo"] == "lokr" and values["lokr_factor"] == 0:
        errors.append(combination("lokr_factor", "must be -1 (automatic) or 1 or more, not 0"))
    if values.get("lora_format") == "diffusers" and values["model_family"] in (
        "demo",
        *SD_FAMILIES,
    ):
        errors.append(
            combination(
                "lora_format",
                "diffusers' LoRA layout has no LoHa / LoKr form, so LyCORIS adapters are "
                "saved in the kohya layout ComfyUI and A1111 load: set lora_format to comfyui",
            )
        )
