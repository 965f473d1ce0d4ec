"""Checkpoint folders: written whole or not at all, found again for resume, pruned.

A checkpoint is `checkpoints/checkpoint-<step>`, renamed into place from a temp folder after
its marker (`tunerdeck_checkpoint.json`: step, epoch and the size of every file) was written,
so a folder under that name is complete unless the disk or a person changed it since. Resume
with `latest` takes the newest checkpoint that loads, says which damaged ones it skipped and
why, and fails only when none loads. `preflight` is what `python -m trainer` checks before a
model loads (stdlib + safetensors only, no torch): the run folder is writable and a named
checkpoint is one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECKPOINTS = "checkpoints"
PREFIX = "checkpoint-"
MARKER = "tunerdeck_checkpoint.json"
_NAME = re.compile(rf"^{PREFIX}(\d+)$")
# Torch archives up to this size have their checksums verified in full (RNG and scheduler
# states: cheap, and accelerate skips an unreadable RNG state silently); larger ones (the
# optimizer state) only have their zip directory read.
_CRC_CHECK_BYTES = 64 * 2**20


class CheckpointError(Exception):
    """resume_from_checkpoint names nothing that can be resumed from."""


def checkpoints_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINTS


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed into place and holding the marker), oldest first."""
    return [(step, p) for step, p in _numbered(run_dir) if (p / MARKER).exists()]


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
    files = sorted(f for f in tmp.rglob("*") if f.is_file())
    sizes = {f.relative_to(tmp).as_posix(): f.stat().st_size for f in files}
    (tmp / MARKER).write_text(json.dumps({**meta, "files": sizes}))
    for f in [*files, tmp / MARKER]:
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


def read_meta(path: Path) -> dict[str, Any]:
    return json.loads((Path(path) / MARKER).read_text())


def damage(path: Path) -> str | None:
    """Why the checkpoint folder `path` cannot be resumed from, found without reading any
    tensor data: the marker parses and names a step, every file it lists has its saved size,
    every safetensors header parses and every torch archive (`.bin`, `.pkl`, `.pt`, written
    by torch.save) opens. None when it looks whole (a load may still fail)."""
    path = Path(path)
    if not path.is_dir():
        return "no such folder" if not path.exists() else "not a folder"
    if not (path / MARKER).is_file():
        return f"it holds no {MARKER}, so it is not a complete checkpoint of this trainer"
    try:
        meta = read_meta(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"its {MARKER} is unreadable ({exc})"
    if not isinstance(meta, dict) or type(meta.get("step")) is not int or meta["step"] < 0:
        return f"its {MARKER} names no step"
    files = meta.get("files", {})  # checkpoints saved before sizes were recorded list none
    if not isinstance(files, dict):
        return f"its {MARKER} has an unreadable file list"
    for name, size in files.items():
        try:
            actual = (path / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual} bytes, {size} when it was saved"
    for f in sorted(path.rglob("*")):
        if f.suffix == ".safetensors":
            reason = _safetensors_damage(f)
        elif f.suffix in (".bin", ".pkl", ".pt"):
            reason = _torch_archive_damage(f)
        else:
            continue
        if reason:
            return f"{f.relative_to(path).as_posix()} is damaged ({reason})"
    return None


def resume(accelerator: Any, run_dir: Path, value: str, log: Callable[[str, str], None]) -> int:
    """Load the state `resume_from_checkpoint=value` names into `accelerator`; returns the
    step it was saved at (0: nothing to resume, start fresh).

    `latest` tries the checkpoints newest first: a damaged one (see `damage`) or one whose
    `accelerator.load_state` fails is reported through `log(message, "warning")` and the one
    before it is tried; a later successful load replaces everything a failed one loaded in
    part. All processes move on together when any of them fails. A named folder is loaded or
    refused, never swapped for another. Raises CheckpointError when nothing can be loaded.
    """
    if not value:
        return 0
    if value != "latest":
        path = _named(run_dir, value)
        reason = damage(path) or _load(accelerator, path)
        if reason:
            raise CheckpointError(f"cannot resume from {path}: {reason}")
        step = read_meta(path)["step"]
        log(f"resumed from {path} at step {step}", "info")
        return step
    found = _numbered(run_dir)
    if not found:
        log("resume_from_checkpoint=latest: no checkpoint yet, starting from step 0", "info")
        return 0
    skipped = []
    for _, path in reversed(found):
        reason = damage(path) or _load(accelerator, path)
        if reason is None:
            step = read_meta(path)["step"]
            log(f"resumed from {path} at step {step}", "info")
            return step
        skipped.append(f"{path.name}: {reason}")
        log(f"skipped {path.name}, it cannot be resumed from: {reason}", "warning")
    raise CheckpointError(_none_usable(run_dir, skipped))


def preflight(output_dir: str, resume_value: str) -> str | None:
    """What stops a run before any model loads: an output_dir that cannot be created or
    written, or a resume_from_checkpoint that is not a checkpoint (for `latest`: checkpoints
    exist but every one is damaged). Creates output_dir, as the run would. None if fine."""
    run_dir = Path(output_dir).expanduser().resolve()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=run_dir, prefix=".write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return (
            f"output_dir {str(run_dir)!r} cannot be written ({exc.strerror or exc}): "
            "choose a folder you can write to"
        )
    if not resume_value:
        return None
    if resume_value == "latest":
        skipped = []
        for _, path in reversed(_numbered(run_dir)):
            if not (reason := damage(path)):
                return None  # resume tries this one (or a damaged newer one) first
            skipped.append(f"{path.name}: {reason}")
        return _none_usable(run_dir, skipped) if skipped else None
    path = _named(run_dir, resume_value)
    if reason := damage(path):
        return (
            f"resume_from_checkpoint {resume_value!r} is not a checkpoint to resume from "
            f"({path}: {reason}). Give a checkpoint-<step> folder from a run's "
            f"{CHECKPOINTS}/ folder, or 'latest' for the newest one in output_dir"
        )
    return None


def _numbered(run_dir: Path) -> list[tuple[int, Path]]:
    """Every `checkpoint-<step>` folder, oldest first, complete or not."""
    root = checkpoints_dir(run_dir)
    found = []
    if root.is_dir():
        for p in root.iterdir():
            m = _NAME.match(p.name)
            if m and p.is_dir():
                found.append((int(m.group(1)), p))
    return sorted(found)


def _named(run_dir: Path, value: str) -> Path:
    """A path as given, or (when relative and absent) a folder name under checkpoints/."""
    path = Path(value).expanduser()
    if not path.is_absolute() and not path.exists():
        path = checkpoints_dir(run_dir) / value
    return path


def _load(accelerator: Any, path: Path) -> str | None:
    """Load `path` into every process; why it failed on any of them, or None."""
    try:
        accelerator.load_state(str(path))
        reason = None
    except Exception as exc:  # a damaged file fails in whichever library reads it
        reason = f"loading it failed: {type(exc).__name__}: {_brief(exc)}"
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        reason = next((r for r in gather_object([reason]) if r), None)
    return reason


def _none_usable(run_dir: Path, skipped: list[str]) -> str:
    return (
        f"resume_from_checkpoint=latest: no checkpoint in {checkpoints_dir(run_dir)} can be "
        "resumed from (" + "; ".join(skipped) + "). Move the damaged folders away to start "
        "from step 0, or give another checkpoint's path"
    )


def _brief(exc: Exception) -> str:
    """The first line of an error, cut to its first sentence when long (torch's unpickling
    errors go on to advise weights_only=False, which is wrong for a damaged file)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return text.split(". ")[0][:200] if len(text) > 200 else text


def _torch_archive_damage(path: Path) -> str | None:
    try:
        with zipfile.ZipFile(path) as archive:
            if path.stat().st_size <= _CRC_CHECK_BYTES and (bad := archive.testzip()):
                return f"{bad} fails its checksum"
    except Exception as exc:  # zipfile and zlib raise several types for damaged archives
        return f"not a readable torch archive: {_brief(exc)}"
    return None


def _safetensors_damage(path: Path) -> str | None:
    from safetensors import safe_open

    try:
        # Parses the header and checks the tensors' offsets against the file's length.
        with safe_open(str(path), framework="numpy") as f:
            f.keys()
    except Exception as exc:  # safetensors raises its own error types for bad headers
        return f"{type(exc).__name__}: {exc}"
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
