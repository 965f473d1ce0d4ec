"""Checkpoint folders: written whole or not at all, found again for resume, pruned."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
PREFIX = "checkpoint-"
MARKER = "tunerdeck_checkpoint.json"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed into place and holding the marker), oldest first."""
    root = checkpoints_dir(run_dir)
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _NAME.match(p.name)
            if m and (p / MARKER).exists():
                found.append((int(m.group(1)), p))
    return sorted(found)


def temp_path(run_dir: Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f".tmp-{PREFIX}{step}"


def final_path(run_dir: Path, step: int) -> Path:
    return checkpoints_dir(run_dir) / f"{PREFIX}{step}"


def clear_stale_temps(run_dir: Path) -> None:
    """Half-written checkpoints left by a killed process are never resumed from."""
    root = checkpoints_dir(run_dir)
    if root.is_dir():
        for p in root.glob(f".tmp-{PREFIX}*"):
            shutil.rmtree(p, ignore_errors=True)


def finalize(run_dir: Path, step: int, meta: dict[str, Any]) -> Path:
    """Write the marker, fsync, and rename the temp folder into place (atomic on POSIX)."""
    tmp, final = temp_path(run_dir, step), final_path(run_dir, step)
    (tmp / MARKER).write_text(json.dumps(meta))
    for f in tmp.rglob("*"):
        if f.is_file():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
    if final.exists():  # the same step saved again (e.g. a stop right after a save)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def prune(run_dir: Path, keep: int) -> list[Path]:
    if keep <= 0:
        return []
    removed = []
    for _, p in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed


def resolve_resume(run_dir: Path, value: str) -> Path | None:
    """`latest` -> newest complete checkpoint (None if there is none); else a folder path."""
    if not value:
        return None
    if value == "latest":
        found = list_checkpoints(run_dir)
        return found[-1][1] if found else None
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.exists():
        path = checkpoints_dir(run_dir) / value
    if not (path / MARKER).exists():
        raise FileNotFoundError(f"resume_from_checkpoint: {value!r} is not a complete checkpoint")
    return path


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / MARKER).read_text())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
