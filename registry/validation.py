"""Validation of a whole config (from a file, the UI or an API payload) against the catalogue.

Each bad value gets one clear message naming the option. Nothing is coerced except that an
int given for a float field becomes that float; a bool is never a number and a string is
never a number. A value the evaluator would ignore (hidden or greyed out) is a warning.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

from registry.catalogue import ALL_FIELDS, DATASET_FIELDS, FIELDS
from registry.catalogue._rules import SIZE_MULTIPLE
from registry.defaults import default_config, default_dataset
from registry.evaluator import FieldState, PlatformContext, evaluator_for
from registry.family_defaults import family_overrides
from registry.field import ConfigField, FieldType, Platform, Scope
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

Severity = Literal["error", "warning"]
# "value": the value itself is unusable (unknown key, type, range, choice): a file with one
# cannot be loaded. "platform": this machine cannot run it. "combination": fields that
# conflict or something still missing (e.g. no dataset yet): fine to save, not to train.
IssueKind = Literal["value", "platform", "combination"]


@dataclass(frozen=True, slots=True)
class Issue:
    path: str  # "learning_rate", "datasets[0].repeats", or "" for the config as a whole
    message: str
    severity: Severity = "error"
    kind: IssueKind = "value"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(slots=True)
class ValidationResult:
    values: dict[str, Any]  # the effective config: defaults overlaid by the valid explicit values
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def issues_for(self, path: str) -> list[Issue]:
        return [i for i in (*self.errors, *self.warnings) if i.path == path]


# ---------------------------------------------------------------- one value


def describe(value: Any) -> str:
    """A value as a user would recognise it in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {'true' if value else 'false'}"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {value!r}" if value else "empty text"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a table"
    return f"a {type(value).__name__}"


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() and abs(number) < 1e15 else f"{number:g}"


def _suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.75)
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"


def _type_error(f: ConfigField, value: Any) -> str | None:
    match f.type:
        case FieldType.BOOL:
            if not isinstance(value, bool):
                return f"must be true or false, not {describe(value)}"
        case FieldType.INT:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and not isinstance(value, bool):
                    return f"must be a whole number, not {value!r}"
                return f"must be a whole number, not {describe(value)}"
        case FieldType.FLOAT:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"must be a number, not {describe(value)}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"must be a finite number, not {value!r}"
        case FieldType.STR | FieldType.PATH | FieldType.TEXT | FieldType.CHOICE:
            if not isinstance(value, str):
                return f"must be text, not {describe(value)}"
        case FieldType.MULTI_CHOICE | FieldType.LIST:
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                return f"must be a list of text values, not {describe(value)}"
    return None


# Numbers past what a JSON reader (JavaScript's doubles) holds exactly are never a setting;
# a field without its own bounds is still refused beyond them.
SAFE_NUMBER = 2**53 - 1


def _bounds_error(f: ConfigField, value: float) -> str | None:
    if abs(value) > SAFE_NUMBER:
        # (repr of a huge int is refused past 4300 digits: say its size instead)
        digits = int(abs(int(value)).bit_length() * 0.30103) + 1
        shown = f"{value:.3g}" if isinstance(value, float) else f"a {digits}-digit number"
        if value > 0 and f.maximum is not None:
            return f"must be at most {_fmt(f.maximum)} (got {shown})"
        if value < 0 and f.minimum is not None:
            return f"must be at least {_fmt(f.minimum)} (got {shown})"
        return f"must be between -{SAFE_NUMBER} and {SAFE_NUMBER} (got {shown})"
    if f.minimum is not None:
        if f.exclusive_minimum and value <= f.minimum:
            return f"must be greater than {_fmt(f.minimum)} (got {value!r})"
        if value < f.minimum:
            return f"must be at least {_fmt(f.minimum)} (got {value!r})"
    if f.maximum is not None:
        if f.exclusive_maximum and value >= f.maximum:
            return f"must be less than {_fmt(f.maximum)} (got {value!r})"
        if value > f.maximum:
            return f"must be at most {_fmt(f.maximum)} (got {value!r})"
    if f.multiple_of and value % f.multiple_of:
        below = int(value // f.multiple_of * f.multiple_of)
        return (
            f"must be a multiple of {f.multiple_of} (got {value!r}; "
            f"try {below} or {below + f.multiple_of})"
        )
    return None


def _choice_error(f: ConfigField, value: Any) -> str | None:
    if not f.choices:  # a provider's choices are known only at render time
        return None
    allowed = f.choice_values
    items = [value] if f.type == FieldType.CHOICE else list(value)
    for item in items:
        if item not in allowed:
            return f"{item!r} is not one of {', '.join(allowed)}{_suggest(item, allowed)}"
    if f.type == FieldType.MULTI_CHOICE and len(set(items)) != len(items):
        return "lists a value more than once"
    return None


@cache
def _compiled_pattern(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def check_value(f: ConfigField, value: Any) -> str | None:
    """Why `value` cannot be used for `f` (a message for an inline error), or None if it can."""
    problem = _type_error(f, value)
    if problem:
        return problem
    if f.type in (FieldType.INT, FieldType.FLOAT):
        return _bounds_error(f, value)
    if f.type in (FieldType.CHOICE, FieldType.MULTI_CHOICE):
        return _choice_error(f, value)
    if (
        f.pattern
        and isinstance(value, str)
        and value
        and not _compiled_pattern(f.pattern).fullmatch(value)
    ):
        expected = f.extra.get("pattern_help") or f"text matching {f.pattern}"
        return f"{value!r} is not valid here: expected {expected}"
    return None


def normalize(f: ConfigField, value: Any) -> Any:
    """The one conversion allowed: an int for a float field becomes that float."""
    if f.type == FieldType.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


# ---------------------------------------------------------------- whole config


@lru_cache(maxsize=1)
def _permissive_context() -> PlatformContext:
    """Without a platform, judge as if everything were available (a file may be for a GPU box)."""
    packages = {p for f in ALL_FIELDS for c in f.choices for p in c.packages}
    return PlatformContext(device=Platform.CUDA.value, packages=frozenset(packages))


def _unknown_key(
    key: str, known: Mapping[str, ConfigField], other: Mapping[str, ConfigField], where: str
) -> str:
    if key in other:
        return f"{key!r} is {where}"
    return f"unknown option {key!r}{_suggest(key, list(known))}"


def _apply(
    raw: Mapping[str, Any],
    fields: Mapping[str, ConfigField],
    other: Mapping[str, ConfigField],
    other_where: str,
    prefix: str,
    values: dict[str, Any],
    errors: list[Issue],
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check each explicit key; valid ones go into `values`. Returns the valid explicit values."""
    explicit: dict[str, Any] = {}
    for key, value in raw.items():
        if key in skip:
            continue
        path = f"{prefix}{key}"
        spec = fields.get(key) if isinstance(key, str) else None
        if spec is None:
            errors.append(Issue(path, _unknown_key(str(key), fields, other, other_where)))
            continue
        problem = check_value(spec, value)
        if problem:
            errors.append(Issue(path, problem))
            continue
        explicit[key] = values[key] = normalize(spec, value)
    return explicit


def _platform_errors(
    fields: Mapping[str, ConfigField],
    values: Mapping[str, Any],
    states: Mapping[str, FieldState],
    prefix: str,
    errors: list[Issue],
) -> None:
    for name, state in states.items():
        if not state.unavailable_choices or not state.active:
            continue
        value = values[name]
        picked = [value] if fields[name].type == FieldType.CHOICE else list(value)
        for item in picked:
            if item in state.unavailable_choices:
                errors.append(
                    Issue(
                        f"{prefix}{name}",
                        f"{item!r} is not available here: {state.unavailable_choices[item]}",
                        kind="platform",
                    )
                )


def _ignored_warnings(
    fields: Mapping[str, ConfigField],
    explicit: Mapping[str, Any],
    states: Mapping[str, FieldState],
    prefix: str,
    warnings: list[Issue],
) -> None:
    for name, value in explicit.items():
        state = states[name]
        if state.active or value == fields[name].default:
            continue
        warnings.append(
            Issue(
                f"{prefix}{name}", f"is set to {value!r} but is ignored: {state.reason}", "warning"
            )
        )


# The demo pipeline and dataset are tiny: larger sizes only cost time.
DEMO_MAX_RESOLUTION = 128


def _combination(path: str, message: str) -> Issue:
    return Issue(path, message, "error", "combination")


def _cross_field(
    values: Mapping[str, Any],
    explicit: Mapping[str, Any],
    errors: list[Issue],
    warnings: list[Issue],
) -> None:
    """Rules that involve two fields at once."""
    if values["min_timestep"] >= values["max_timestep"]:
        errors.append(
            _combination(
                "min_timestep",
                f"must be below max_timestep ({values['min_timestep']} >= {values['max_timestep']})",
            )
        )
    if values["num_machines"] > 1 and values["machine_rank"] >= values["num_machines"]:
        errors.append(
            _combination(
                "machine_rank",
                f"must be below num_machines ({values['num_machines']}); ranks count from 0",
            )
        )
    if values["num_machines"] > 1 and not values["main_process_ip"]:
        errors.append(
            _combination("main_process_ip", "is needed when training on more than one machine")
        )
    if values["num_processes"] < values["num_machines"]:
        errors.append(
            _combination(
                "num_processes",
                "counts processes on all machines together, so it cannot be below num_machines",
            )
        )
    steps = values["max_train_steps"]
    if 0 < steps <= values["lr_warmup_steps"] and values["lr_scheduler"] != "constant":
        warnings.append(
            Issue(
                "lr_warmup_steps",
                f"is not below max_train_steps ({steps}): the learning rate never reaches its peak",
                "warning",
            )
        )
    if values["validation_steps"] > 0 and not values["validation_prompt"].strip():
        warnings.append(
            Issue("validation_prompt", "is empty, so validation renders nothing", "warning")
        )
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
            _combination(
                "resolution",
                f"must be a multiple of {multiple} for {values['model_family']} models "
                f"(the latent is cut into 2x2 patches): try "
                f"{max(multiple, values['resolution'] // multiple * multiple)}",
            )
        )
    if values["model_family"] != "demo" and not values["pretrained_model_name_or_path"].strip():
        errors.append(
            _combination(
                "pretrained_model_name_or_path",
                "choose a base model (a diffusers folder or a Hub id) for this model_family",
            )
        )
    if values["model_family"] != "demo":
        _model_path_errors(values, errors)
    _init_lora_errors(values, errors)


def _model_path_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
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
                errors.append(_combination("pretrained_model_name_or_path", problem))
        elif path.is_dir() and (wrong := wrong_family_message(family, base, *folder_family(path))):
            errors.append(_combination("pretrained_model_name_or_path", wrong))
        elif path.is_dir() and not (path / "model_index.json").is_file():
            errors.append(
                _combination(
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
                errors.append(_combination("pretrained_vae_model_name_or_path", problem))
        elif path.is_dir() and not (path / "config.json").is_file():
            inner = path / "vae"
            hint = (
                f"choose its vae subfolder {str(inner)!r}"
                if (inner / "config.json").is_file()
                else "choose a diffusers VAE folder (with config.json), a .safetensors VAE file "
                "or a Hugging Face Hub id"
            )
            errors.append(
                _combination(
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


def _init_lora_errors(values: Mapping[str, Any], errors: list[Issue]) -> None:
    """init_lora: an existing LoRA file whose rank matches lora_rank (read from its header);
    and a DoRA run cannot be written in kohya's layout (it has no DoRA form)."""
    if (
        values["model_type"] == "lora"
        and values.get("use_dora")
        and values.get("lora_format") == "comfyui"
        and values["model_family"] in ("demo", *SD_FAMILIES)
    ):
        errors.append(
            _combination(
                "lora_format",
                "use_dora adapters have no ComfyUI/kohya form: set lora_format to diffusers",
            )
        )
    raw = str(values.get("init_lora") or "").strip()
    if not raw or values["model_type"] != "lora":
        return
    if values["lora_init"] == "pissa":
        errors.append(
            _combination(
                "init_lora",
                "lora_init=pissa rewrites the base weights, so an existing LoRA cannot be "
                "continued with it: set lora_init to default, or clear init_lora",
            )
        )
        return
    path = user_path(raw)
    if not path.is_file():
        errors.append(_combination("init_lora", f"no file {raw!r}: choose a LoRA .safetensors"))
        return
    try:
        header, _, _ = read_header(path)
    except ModelFileError as exc:
        errors.append(_combination("init_lora", str(exc)))
        return
    found = lora_rank_of(header)
    if found is None:
        errors.append(
            _combination(
                "init_lora",
                f"{raw!r} is not a LoRA (no lora_A / lora_down tensors): choose a LoRA file",
            )
        )
    elif found != values["lora_rank"]:
        errors.append(
            _combination(
                "init_lora",
                f"{raw!r} has rank {found} but lora_rank is {values['lora_rank']}: set lora_rank "
                f"to {found} to continue training it",
            )
        )


def _validate_datasets(
    raw: Any,
    top: Mapping[str, Any],
    ctx: PlatformContext,
    errors: list[Issue],
    warnings: list[Issue],
) -> list[dict[str, Any]]:
    if not isinstance(raw, list | tuple):
        errors.append(
            Issue(
                "datasets", f"must be a list of dataset tables ([[datasets]]), not {describe(raw)}"
            )
        )
        return []
    evaluator = evaluator_for(ctx, Scope.DATASET)
    entries: list[dict[str, Any]] = []
    for i, entry in enumerate(raw):
        prefix = f"datasets[{i}]."
        if not isinstance(entry, Mapping):
            errors.append(
                Issue(
                    f"datasets[{i}]", f"must be a table of dataset options, not {describe(entry)}"
                )
            )
            continue
        values = default_dataset()
        explicit = _apply(
            entry,
            DATASET_FIELDS,
            FIELDS,
            "a top-level option, not a dataset option",
            prefix,
            values,
            errors,
        )
        states = evaluator.evaluate(values)
        _ignored_warnings(DATASET_FIELDS, explicit, states, prefix, warnings)
        if values["enabled"]:
            multiple = SIZE_MULTIPLE.get(top["model_family"], 8)
            if values["bucketing"] and values["bucket_step"] % multiple:
                errors.append(
                    _combination(
                        f"{prefix}bucket_step",
                        f"must be a multiple of {multiple} for {top['model_family']} models "
                        f"(the latent is cut into 2x2 patches): try "
                        f"{max(multiple, values['bucket_step'] // multiple * multiple)}",
                    )
                )
            if not values["path"].strip() and not errors_at(errors, f"{prefix}path"):
                errors.append(
                    _combination(f"{prefix}path", "choose the folder of images for this dataset")
                )
            if (
                values["caption_source"] == "instance_prompt"
                and not values["instance_prompt"].strip()
            ):
                warnings.append(
                    Issue(
                        f"{prefix}instance_prompt",
                        "is empty, so every image trains on an empty caption",
                        "warning",
                    )
                )
        entries.append(values)
    if (
        top["model_family"] != "demo"
        and not any(e["enabled"] for e in entries)
        and not errors_at(errors, "datasets")
    ):
        errors.append(
            _combination("datasets", "no enabled dataset: add a folder of images to train on")
        )
    return entries


def errors_at(issues: list[Issue], prefix: str) -> bool:
    return any(i.path == prefix or i.path.startswith(prefix + "[") for i in issues)


def validate_config(raw: Mapping[str, Any], ctx: PlatformContext | None = None) -> ValidationResult:
    """Check a sparse config; `values` is the effective config (bad values fall back to defaults).

    With `ctx`, choices this machine cannot run (e.g. adamw8bit without CUDA) are errors and
    fields it cannot use are judged as hidden; without it, everything counts as available.
    """
    values = default_config()
    result = ValidationResult(values=values)
    if not isinstance(raw, Mapping):
        result.errors.append(Issue("", f"a config must be a table of options, not {describe(raw)}"))
        return result
    context = ctx or _permissive_context()
    explicit = _apply(
        raw,
        FIELDS,
        DATASET_FIELDS,
        "a dataset option: put it in a [[datasets]] entry",
        "",
        values,
        result.errors,
        skip=("datasets",),
    )
    # The chosen family's defaults fill every field the config leaves unset.
    for key, value in family_overrides(values["model_family"]).items():
        if key not in explicit:
            values[key] = value
    states = evaluator_for(context, Scope.CONFIG).evaluate(values)
    _platform_errors(FIELDS, values, states, "", result.errors)
    _ignored_warnings(FIELDS, explicit, states, "", result.warnings)
    _cross_field(values, explicit, result.errors, result.warnings)
    values["datasets"] = _validate_datasets(
        raw.get("datasets", []), values, context, result.errors, result.warnings
    )
    return result


__all__ = ["Issue", "ValidationResult", "check_value", "describe", "normalize", "validate_config"]
