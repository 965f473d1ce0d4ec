"""Reading and writing config files: TOML (primary) and JSON, round-trip exact.

A file holds the explicit values only (sparse): a value the user set stays even when it
equals today's default. Datasets are a list of tables (`[[datasets]]` in TOML).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry.atomic import atomic_write_text
from registry.user_paths import user_path
from registry.validation import canonical_keys, validate_config


class ConfigFileError(Exception):
    """A config file that cannot be used; `errors` lists every problem found."""

    def __init__(self, errors: list[str], path: str | os.PathLike[str] | None = None) -> None:
        self.errors = list(errors)
        self.path = str(path) if path is not None else None
        where = f"{self.path}: " if self.path else ""
        super().__init__(where + "; ".join(self.errors))


def _ordered(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Top-level values first and datasets last, as TOML needs tables after plain keys."""
    plain = {k: v for k, v in cfg.items() if k != "datasets"}
    if "datasets" in cfg:
        plain["datasets"] = [dict(entry) for entry in cfg["datasets"]]
    return plain


def _has_carriage_return(value: Any) -> bool:
    if isinstance(value, str):
        return "\r" in value
    if isinstance(value, Mapping):
        return any(_has_carriage_return(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_carriage_return(v) for v in value)
    return False


def dumps_toml(cfg: Mapping[str, Any]) -> str:
    import tomli_w  # a small pure-Python writer; imported here so `--help` stays lean

    if any(v is None for v in cfg.values()):
        raise ValueError("TOML cannot store empty (null) values; remove them first")
    ordered = _ordered(cfg)
    # Multi-line TOML strings turn "\r\n" into "\n"; keep escapes when a \r must survive.
    multiline = not _has_carriage_return(ordered)
    entries = ordered.get("datasets")
    flat = isinstance(entries, list) and all(
        isinstance(e, Mapping) and not any(isinstance(v, Mapping) for v in e.values())
        for e in entries
    )
    if not entries or not flat:
        return tomli_w.dumps(ordered, multiline_strings=multiline)
    # tomli_w inlines small tables; write each entry as its own [[datasets]] table instead,
    # which is what people expect to read and edit.
    head = tomli_w.dumps(
        {k: v for k, v in ordered.items() if k != "datasets"}, multiline_strings=multiline
    )
    parts = [head] if head else []
    for entry in entries:
        parts.append("[[datasets]]\n" + tomli_w.dumps(dict(entry), multiline_strings=multiline))
    return "\n".join(parts)


def loads_toml(text: str) -> dict[str, Any]:
    return tomllib.loads(text)


def dumps_json(cfg: Mapping[str, Any]) -> str:
    return json.dumps(_ordered(cfg), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def loads_json(text: str) -> dict[str, Any]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"a config must be a JSON object, not {type(data).__name__}")
    return data


def _format(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "toml"


def parse_config_text(text: str, fmt: str = "toml") -> dict[str, Any]:
    """Parse TOML or JSON text and check its values; raises ConfigFileError listing every
    unusable value (unknown keys, wrong types, out of range, unknown choices)."""
    try:
        raw = loads_json(text) if fmt == "json" else loads_toml(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise ConfigFileError([f"not valid {fmt.upper()}: {exc}"]) from exc
    # Only unusable values stop a load; a config still missing its dataset or base model is a
    # legitimate work in progress (validate_config reports that when a run starts).
    bad = [str(issue) for issue in validate_config(raw).errors if issue.kind == "value"]
    if bad:
        raise ConfigFileError(bad)
    # Older names (aliases) are read under today's, so the form and a re-save use those.
    return canonical_keys(raw)


# Paths a config file names beside itself (a prompt library is kept with its config).
BESIDE_CONFIG = ("user_prompt_library",)


def resolve_beside(raw: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative BESIDE_CONFIG paths made absolute against `folder` (the config file's; for a
    config that is no file, the folder it was validated in), so a run that reads a copy of
    the config elsewhere finds the same file. Changes and returns `raw`."""
    for key in BESIDE_CONFIG:
        value = raw.get(key)
        if isinstance(value, str) and value.strip() and not user_path(value).is_absolute():
            raw[key] = str(folder.absolute() / user_path(value))
    return raw


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The explicit values stored in a .toml or .json file, after checking them (a relative
    prompt library path comes back resolved against the file's folder)."""
    target = user_path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigFileError(["the file does not exist"], target) from exc
    except IsADirectoryError as exc:
        raise ConfigFileError(["this is a folder, not a config file"], target) from exc
    except OSError as exc:
        raise ConfigFileError([f"cannot read the file: {exc.strerror or exc}"], target) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigFileError([f"not UTF-8 text (byte {exc.start})"], target) from exc
    try:
        return resolve_beside(parse_config_text(text, _format(target)), target.parent)
    except ConfigFileError as exc:
        raise ConfigFileError(exc.errors, target) from exc


def save_config_file(path: str | os.PathLike[str], cfg: Mapping[str, Any]) -> None:
    """Write `cfg` (TOML, or JSON for a .json path) atomically: a temp file, then a rename."""
    target = user_path(path)
    text = dumps_json(cfg) if _format(target) == "json" else dumps_toml(cfg)
    atomic_write_text(target, text)


__all__ = [
    "ConfigFileError",
    "dumps_json",
    "dumps_toml",
    "load_config_file",
    "loads_json",
    "loads_toml",
    "parse_config_text",
    "resolve_beside",
    "save_config_file",
]
