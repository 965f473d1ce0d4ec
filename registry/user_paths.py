"""Paths typed by a person: `~` and `~user` expanded where they name a home folder.

`Path.expanduser` raises for `~name` when no such user exists; a value typed in a form or a
config must get a message from validation, never an exception, so an unknown `~name` stays a
literal (relative) path here and is judged like any other missing path.
"""

from __future__ import annotations

import os
from pathlib import Path


def user_path(value: str | os.PathLike[str]) -> Path:
    return Path(os.path.expanduser(os.fspath(value)))
