"""A prompt library: named validation prompts, each with its own seed and negative prompt.

The file is TOML or JSON (by its suffix). Each top-level key names one prompt; its value is
the prompt text, or a table with `prompt` (required), `seed` and `negative_prompt`:

    # TOML                                   // JSON (SimpleTuner's user_prompt_library form)
    portrait = "a photo of sks person"       {"portrait": "a photo of sks person",
    [beach]                                   "beach": {"prompt": "sks on a beach",
    prompt = "sks person on a beach"                    "seed": 7}}
    seed = 7
    negative_prompt = "blurry"

An entry without a seed uses validation_seed; without a negative prompt, the config's
validation_negative_prompt. `load_prompt_library` raises PromptLibraryError whose message
names the line (a file that does not parse) or the key (an entry that is wrong). Pure
stdlib: the registry validates the file before a run, the trainer reads it at each validation.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_KEYS = ("prompt", "seed", "negative_prompt")
MAX_SEED = 2**32 - 1
MAX_BYTES = 1_000_000  # a library of prompts is a few kilobytes; a bigger file is a wrong pick
MAX_ENTRIES = 100  # each one is rendered at every validation


class PromptLibraryError(ValueError):
    """The library cannot be used; the message says where and what to change."""


@dataclass(frozen=True, slots=True)
class LibraryPrompt:
    name: str
    prompt: str
    seed: int | None = None  # None: validation_seed
    negative_prompt: str | None = None  # None: validation_negative_prompt


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:  # JSON itself lets the last one win silently
            raise PromptLibraryError(f"the name {key!r} appears twice: names must be unique")
        seen[key] = value
    return seen


def _parse(text: str, path: Path) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as exc:
            raise PromptLibraryError(
                f"line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})"
            ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends with "(at line N, column M)"
        raise PromptLibraryError(f"not valid TOML: {exc}") from None


def _entry(name: str, value: Any) -> LibraryPrompt:
    where = f"entry {name!r}"
    if not name.strip():
        raise PromptLibraryError("an entry has an empty name: give every prompt a short name")
    if isinstance(value, str):
        value = {"prompt": value}
    if not isinstance(value, dict):
        raise PromptLibraryError(
            f"{where}: must be the prompt text or a table with prompt, seed and "
            f"negative_prompt, not {type(value).__name__}"
        )
    unknown = [k for k in value if k not in ENTRY_KEYS]
    if unknown:
        raise PromptLibraryError(
            f"{where}: unknown key {unknown[0]!r} (an entry takes {', '.join(ENTRY_KEYS)})"
        )
    prompt = value.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PromptLibraryError(f"{where}: needs a non-empty text 'prompt'")
    seed = value.get("seed")
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        raise PromptLibraryError(
            f"{where}: seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}"
        )
    negative = value.get("negative_prompt")
    if negative is not None and not isinstance(negative, str):
        raise PromptLibraryError(f"{where}: negative_prompt must be text, not {negative!r}")
    return LibraryPrompt(name, prompt.strip(), seed, negative)


def parse_prompt_library(text: str, path: Path) -> list[LibraryPrompt]:
    """The entries of a library file's text, in file order (`path` picks TOML or JSON)."""
    data = _parse(text, path)
    if not isinstance(data, dict):
        raise PromptLibraryError(
            f"the file must hold named prompts ({{name: prompt}}), not a {type(data).__name__}"
        )
    if not data:
        raise PromptLibraryError("the library has no prompts: add at least one name = prompt")
    if len(data) > MAX_ENTRIES:
        raise PromptLibraryError(
            f"{len(data)} prompts: at most {MAX_ENTRIES}, as every one renders at each validation"
        )
    return [_entry(str(name), value) for name, value in data.items()]


def load_prompt_library(path: str | Path) -> list[LibraryPrompt]:
    target = Path(path)
    if not target.is_file():
        raise PromptLibraryError("no such file: choose a .toml or .json prompt library")
    if target.stat().st_size > MAX_BYTES:
        raise PromptLibraryError(f"over {MAX_BYTES // 1000} kB: is this the prompt library?")
    try:
        text = target.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PromptLibraryError(f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PromptLibraryError(f"cannot read it: {exc.strerror or exc}") from None
    return parse_prompt_library(text, target)


__all__ = [
    "LibraryPrompt",
    "PromptLibraryError",
    "load_prompt_library",
    "parse_prompt_library",
]
