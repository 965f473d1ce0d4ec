"""Checks of one value against its field: type, bounds, choices, pattern. Each problem is one
sentence naming what was given and what is expected."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from registry.field import ConfigField, FieldType


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


def suggest(word: str, options: list[str] | tuple[str, ...]) -> str:
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
            return f"{item!r} is not one of {', '.join(allowed)}{suggest(item, allowed)}"
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
