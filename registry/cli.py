"""The `python -m trainer` argument parser, built from the catalogue, and the reverse:
a config turned back into a copy-pasteable command line.

Imports only the registry (no torch), so `python -m trainer --help` answers at once.
"""

from __future__ import annotations

import argparse
import math
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from registry.catalogue import FIELDS, TABS, fields_for_tab
from registry.evaluator import field_conditions
from registry.family_defaults import by_family
from registry.field import ConfigField, FieldType, Scope

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def parse_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def parse_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def format_value(f: ConfigField, value: Any) -> str:
    """A value written the way its flag parses it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _help(f: ConfigField) -> str:
    text = f.help
    conditions = field_conditions(f)
    if conditions:
        text += " [" + "; ".join(conditions) + "]"
    default = format_value(f, f.default)
    text += f" (default: {default!r})" if default == "" else f" (default: {default})"
    families = by_family(f.name) if f.scope == Scope.CONFIG else {}
    if families:
        text += " (" + ", ".join(f"{k}: {format_value(f, v)}" for k, v in families.items()) + ")"
    return text.replace("%", "%%")  # argparse formats help with %


def _add(group: argparse._ArgumentGroup, f: ConfigField) -> None:
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": _help(f)}
    match f.type:
        case FieldType.BOOL:
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="true|false")
        case FieldType.INT:
            kwargs.update(type=parse_int, metavar="N")
        case FieldType.FLOAT:
            kwargs.update(type=parse_float, metavar="X")
        case FieldType.CHOICE:
            kwargs.update(
                choices=f.choice_values or None, metavar="{" + ",".join(f.choice_values) + "}"
            )
        case FieldType.MULTI_CHOICE | FieldType.LIST:
            kwargs.update(type=parse_list, metavar="A,B,...")
        case FieldType.PATH:
            kwargs.update(metavar="PATH")
        case _:
            kwargs.update(metavar="TEXT")
    group.add_argument(f.flag, *(f"--{a}" for a in f.aliases), **kwargs)


def build_parser(prog: str = "python -m trainer") -> argparse.ArgumentParser:
    """One argument group per tab; flags given override the values from --config."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Fine-tune a diffusion model (LoRA or full) with the options below. "
        "Flags override values from --config; datasets can only come from a config file "
        "([[datasets]] tables). Booleans take true or false (a bare flag means true).",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=None,
        help="A .toml or .json config file (as saved by the UI). Flags given on the command "
        "line override its values.",
    )
    for tab in TABS:
        fields = [f for f in fields_for_tab(tab.name) if f.scope == Scope.CONFIG]
        if not fields:
            continue
        group = parser.add_argument_group(f"{tab.title} options", tab.description)
        for f in fields:
            _add(group, f)
    return parser


def explicit_values(namespace: argparse.Namespace) -> dict[str, Any]:
    """Only the config fields given as flags (the parser leaves the others out)."""
    return {name: value for name, value in vars(namespace).items() if name in FIELDS}


def command_line(
    cfg: Mapping[str, Any],
    launcher: Literal["python", "accelerate"] = "python",
    launch_flags: Sequence[str] = (),
    config_path: str = "config.toml",
) -> str:
    """A shell command that runs `cfg`. Datasets cannot be flags, so when `cfg` has any the
    command reads them from `--config config_path` (save the config there first). For
    `accelerate`, `launch_flags` are the launcher's flags (registry.launch.launch_args)."""
    if launcher == "accelerate":
        words = ["accelerate", "launch", *launch_flags, "-m", "trainer"]
    elif launcher == "python":
        words = ["python", "-m", "trainer"]
    else:
        raise ValueError(f"launcher must be 'python' or 'accelerate', not {launcher!r}")
    if cfg.get("datasets"):
        words += ["--config", config_path]
    for name, f in FIELDS.items():
        if name in cfg:
            words += [f.flag, format_value(f, cfg[name])]
    return shlex.join(words)


__all__ = [
    "build_parser",
    "command_line",
    "explicit_values",
    "format_value",
    "parse_bool",
]
