"""Validation of a whole config (from a file, the UI or an API payload) against the catalogue.

Each bad value gets one clear message naming the option. Nothing is coerced except that an
int given for a float field becomes that float; a bool is never a number and a string is
never a number. A value the evaluator would ignore (hidden or greyed out) is a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from registry.catalogue import DATASET_FIELDS, FIELDS
from registry.catalogue._rules import SIZE_MULTIPLE
from registry.coercion import normalize
from registry.defaults import default_config, default_dataset
from registry.evaluator import FieldState, PlatformContext, evaluator_for
from registry.family_defaults import family_overrides
from registry.field import ConfigField, FieldType, Scope
from registry.issues import Issue, ValidationResult, combination
from registry.platform import any_platform
from registry.user_paths import user_path
from registry.validation_rules import cross_field_issues
from registry.value_checks import check_value, describe, suggest

# ---------------------------------------------------------------- whole config


def _unknown_key(
    key: str, known: Mapping[str, ConfigField], other: Mapping[str, ConfigField], where: str
) -> str:
    if key in other:
        return f"{key!r} is {where}"
    return f"unknown option {key!r}{suggest(key, list(known))}"


@cache
def _alias_map(scope: Scope) -> dict[str, str]:
    fields = FIELDS if scope == Scope.CONFIG else DATASET_FIELDS
    return {alias: f.name for f in fields.values() for alias in f.aliases}


def canonical_keys(
    raw: Mapping[str, Any], scope: Scope = Scope.CONFIG, errors: list[Issue] | None = None
) -> dict[str, Any]:
    """`raw` with every alias key (an older or another tool's name) under its field's name.
    An alias given beside its field's name is an error (which one would win is a guess); it
    is dropped, and listed in `errors` when given."""
    aliases = _alias_map(scope)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = aliases.get(key, key) if isinstance(key, str) else key
        if name != key and name in raw:
            if errors is not None:
                errors.append(
                    Issue(
                        key, f"is another name of {name!r}, which is also set: keep only {name!r}"
                    )
                )
            continue
        out[name] = value
    return out


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
def _legacy_caption_source(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    """An entry written with caption_source (the older name of caption_strategy) has its
    value in the new terms (sidecar is textfile); the alias maps the key itself."""
    from tunerdeck_common.dataset_rules import LEGACY_CAPTION_SOURCES

    value = entry.get("caption_source")
    if "caption_strategy" in entry or value not in LEGACY_CAPTION_SOURCES:
        return entry
    return {**entry, "caption_source": LEGACY_CAPTION_SOURCES[value]}


def _regularization_images_error(values: Mapping[str, Any]) -> str | None:
    """A regularization dataset must hold images before a run starts: without them it would
    silently regularize nothing."""
    from tunerdeck_common.dataset_rules import IMAGE_EXTENSIONS, is_mask_file

    if values["kind"] != "regularization" or not values["path"].strip():
        return None
    folder = user_path(values["path"])
    try:
        found = any(
            p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and not is_mask_file(p, values)
            for p in folder.iterdir()
        )
    except OSError:
        found = False
    if found:
        return None
    return (
        f"is a regularization dataset but {folder} holds no images: add class images to "
        "it, or set its kind to train or disable it"
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
            canonical_keys(_legacy_caption_source(entry), Scope.DATASET, errors),
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
            split_problem = _eval_split_problem(values["eval_split"])
            if split_problem and values["kind"] != "eval":
                errors.append(combination(f"{prefix}eval_split", split_problem))
            multiple = SIZE_MULTIPLE.get(top["model_family"], 8)
            if values["bucketing"] and values["bucket_step"] % multiple:
                errors.append(
                    combination(
                        f"{prefix}bucket_step",
                        f"must be a multiple of {multiple} for {top['model_family']} models "
                        f"(the latent is cut into 2x2 patches): try "
                        f"{max(multiple, values['bucket_step'] // multiple * multiple)}",
                    )
                )
            if not values["path"].strip() and not errors_at(errors, f"{prefix}path"):
                errors.append(
                    combination(f"{prefix}path", "choose the folder of images for this dataset")
                )
            reg_problem = _regularization_images_error(values)
            if reg_problem:
                errors.append(combination(f"{prefix}path", reg_problem))
            if (
                values["caption_strategy"] == "instance_prompt" or values["prepend_instance_prompt"]
            ) and not values["instance_prompt"].strip():
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
            combination("datasets", "no enabled dataset: add a folder of images to train on")
        )
    return entries


def _eval_split_problem(split: float) -> str | None:
    """eval_split: 0 (none), a fraction below 1, or a whole count of 2 or more images."""
    if split == 1:
        return (
            "1 is ambiguous (every image, or one?): use a fraction below 1 such as 0.1, a "
            "count of 2 or more images, or a separate dataset used for evaluation (kind = eval)"
        )
    if split > 1 and split != int(split):
        return f"must be a fraction below 1 or a whole number of images, not {split!r}"
    return None


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
    context = ctx or any_platform()
    raw = canonical_keys(raw, Scope.CONFIG, result.errors)
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
    cross_field_issues(values, explicit, result.errors, result.warnings)
    values["datasets"] = _validate_datasets(
        raw.get("datasets", []), values, context, result.errors, result.warnings
    )
    return result


__all__ = [
    "Issue",
    "ValidationResult",
    "canonical_keys",
    "check_value",
    "describe",
    "normalize",
    "validate_config",
]
