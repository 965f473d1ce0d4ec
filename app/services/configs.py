"""Config operations the page offers: import/export text, diff against defaults, command lines.

Named-config storage is state.config_store.ConfigStore; parsing, validation and command
lines are the registry's. This module only adapts them to what the page needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from registry.catalogue import FIELDS
from registry.cli import command_line
from registry.config_io import ConfigFileError, dumps_json, dumps_toml, parse_config_text
from registry.defaults import default_config
from registry.family_defaults import default_for
from registry.launch import launch_args

Format = Literal["toml", "json"]

# A config is a few KiB; anything near this is not one (and must not tie up the server).
MAX_CONFIG_BYTES = 1024 * 1024


def too_large(filename: str, size: int) -> str | None:
    """The message for a config upload over the limit, else None."""
    if size <= MAX_CONFIG_BYTES:
        return None
    return (
        f"{filename} is {size / 1024:,.0f} KiB: a config file may be at most "
        f"{MAX_CONFIG_BYTES // 1024:,} KiB"
    )


def format_for(filename: str) -> Format:
    suffix = Path(filename).suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix == ".toml":
        return "toml"
    raise ConfigFileError([f"{filename}: only .toml and .json config files can be imported"])


def import_text(text: str, filename: str) -> dict[str, Any]:
    """Parse and check an uploaded or pasted config; raises ConfigFileError listing every
    problem. The registry's parser judges it exactly like `python -m trainer --config`."""
    oversized = too_large(filename, len(text.encode("utf-8")))
    if oversized:
        raise ConfigFileError([oversized])
    fmt = format_for(filename)
    try:
        return parse_config_text(text, fmt)
    except ConfigFileError as exc:
        raise ConfigFileError([f"{filename}: {e}" for e in exc.errors]) from exc
    except RecursionError:  # the parsers recurse per nesting level
        raise ConfigFileError(
            [f"{filename}: nested too deeply to be a config (tables or lists inside each other)"]
        ) from None


def export_text(config: dict[str, Any], fmt: Format) -> str:
    return dumps_toml(config) if fmt == "toml" else dumps_json(config)


@dataclass(frozen=True)
class DiffRow:
    name: str
    default: Any
    value: Any

    @property
    def same_as_default(self) -> bool:
        return self.value == self.default


def diff_against_defaults(config: dict[str, Any]) -> list[DiffRow]:
    """Every explicitly set value, in catalogue order, with its default (for the config's
    model family) beside it."""
    family = config.get("model_family")
    family = family if isinstance(family, str) else None
    return [DiffRow(n, default_for(n, family), config[n]) for n in FIELDS if n in config]


def command_lines(
    config: dict[str, Any], accelerate_overrides: dict[str, Any] | None
) -> dict[str, str]:
    """Both command lines; remembered launcher settings apply unless the config sets them."""
    launch_config = {**(accelerate_overrides or {}), **config}
    family = launch_config.get("model_family")
    effective = {**default_config(family if isinstance(family, str) else None), **launch_config}
    return {
        "python": command_line(config, "python"),
        "accelerate": command_line(launch_config, "accelerate", launch_args(effective)),
    }
