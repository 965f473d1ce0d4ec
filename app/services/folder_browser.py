"""Server-side folder browsing confined to allowed roots (no dialog on the server's display)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class FolderAccessError(ValueError):
    pass


@dataclass(frozen=True)
class Listing:
    root: Path
    current: Path
    folders: tuple[Path, ...]
    parent: Path | None  # None at the root: the browser never leaves it


def within(path: Path, roots: list[Path]) -> Path | None:
    """The allowed root that contains `path` (after resolving links), if any."""
    resolved = path.expanduser().resolve()
    for root in roots:
        root = root.expanduser().resolve()
        if resolved == root or resolved.is_relative_to(root):
            return root
    return None


def list_folders(path: Path, roots: list[Path]) -> Listing:
    root = within(path, roots)
    if root is None:
        raise FolderAccessError(f"{path} is outside the allowed folders")
    current = path.expanduser().resolve()
    if not current.is_dir():
        raise FolderAccessError(f"{current} is not a folder")
    try:
        folders = tuple(
            sorted(
                (p for p in current.iterdir() if p.is_dir() and not p.name.startswith(".")),
                key=lambda p: p.name.lower(),
            )
        )
    except PermissionError as exc:
        raise FolderAccessError(f"{current} cannot be read: {exc.strerror}") from exc
    parent = current.parent if current != root else None
    return Listing(root, current, folders, parent)
