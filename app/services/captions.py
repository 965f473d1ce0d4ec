"""Captions of dataset images: where they come from, and atomic edits of sidecar files.

`caption_for` follows the trainer's rules (trainer/data.py `_caption_for`) so the browser
shows the caption the model will actually be trained with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from state.atomic import atomic_write_text

DEFAULT_EXTENSION = ".txt"


class CaptionError(ValueError):
    """A caption that cannot be read or written, with a message for the page."""


def sidecar_path(image: Path, extension: str = DEFAULT_EXTENSION) -> Path:
    if not extension.startswith("."):
        extension = "." + extension
    return image.with_suffix(extension)


def read_caption(image: Path, extension: str = DEFAULT_EXTENSION) -> str | None:
    """The sidecar's text (stripped), or None when there is no sidecar file."""
    path = sidecar_path(image, extension)
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise CaptionError(f"{path.name} is not UTF-8 text: {exc.reason}") from exc
    except OSError as exc:
        raise CaptionError(f"{path.name} cannot be read: {exc.strerror}") from exc


def write_caption(image: Path, text: str, extension: str = DEFAULT_EXTENSION) -> Path:
    """Replace the sidecar atomically: a crash leaves the old caption or the new, never half."""
    if not image.is_file():
        raise CaptionError(f"{image.name} does not exist any more")
    path = sidecar_path(image, extension)
    cleaned = text.strip()
    try:
        atomic_write_text(path, cleaned + "\n" if cleaned else "")
    except OSError as exc:
        raise CaptionError(f"{path.name} cannot be written: {exc.strerror}") from exc
    return path


def caption_for(image: Path, entry: Mapping[str, Any]) -> str:
    """The caption the trainer uses for `image` under an effective dataset entry."""
    source = entry.get("caption_source", "sidecar")
    if source == "instance_prompt":
        caption = str(entry.get("instance_prompt", ""))
    elif source == "filename":
        caption = image.stem.replace("_", " ").replace("-", " ")
    else:
        try:
            caption = read_caption(image, entry.get("caption_extension", DEFAULT_EXTENSION)) or ""
        except CaptionError:
            caption = ""
    prefix = entry.get("caption_prefix", "")
    if prefix:
        caption = f"{prefix}, {caption}" if caption else prefix
    return caption
