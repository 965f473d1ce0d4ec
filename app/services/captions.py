"""Captions of dataset images: where they come from, and atomic edits of sidecar files.

The caption the trainer will use comes from `tunerdeck_common.dataset_rules.caption_for` (torch-free),
so the browser shows exactly what the model is trained with.
"""

from __future__ import annotations

from pathlib import Path

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
