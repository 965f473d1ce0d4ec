"""Value coercion: the one place where a value changes type on its way into a config.

`normalize` is the conversion a config file or API payload gets (an int for a float field
becomes that float; nothing else is guessed). `from_widget` is what a form control hands back
(the config form and the dataset cards alike): a number box gives floats, a list box gives
text, and an emptied box gives None, which is `BLANK` for a field that needs a value (the form
keeps the last value and says `BLANK_MESSAGE`) and the empty value for text and list fields.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from registry.field import ConfigField, FieldType

BLANK_MESSAGE = "a value is required"
_TEXT_TYPES = frozenset({FieldType.STR, FieldType.PATH, FieldType.TEXT})


class _Blank:
    def __repr__(self) -> str:
        return "BLANK"


BLANK: Final = _Blank()


def normalize(f: ConfigField, value: Any) -> Any:
    """The one conversion allowed: an int for a float field becomes that float (and a fresh
    copy of a list or table, so a config never shares them)."""
    if f.type == FieldType.FLOAT and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, tuple):
        return list(value)
    return copy.deepcopy(value) if isinstance(value, list | dict) else value


def from_widget(f: ConfigField, value: Any) -> Any:
    """A control's value in the config's type where that loses nothing; `BLANK` when the
    control was emptied and the field cannot be empty."""
    if value is None:
        if f.type in _TEXT_TYPES:
            return ""
        return [] if f.type == FieldType.LIST else BLANK
    if f.type == FieldType.INT and isinstance(value, float) and value.is_integer():
        return int(value)
    if f.type == FieldType.LIST and isinstance(value, str):
        return [line.strip() for line in value.splitlines() if line.strip()]
    return normalize(f, value)
