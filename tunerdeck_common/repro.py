"""The reproducibility record: RUN_DIR/reproducibility.json, written when a run starts.

Contract: `build_record(values, argv)` returns a JSON-able dict with the effective config,
the command line, the versions of torch/diffusers/peft/accelerate/transformers (read from
package metadata: nothing is imported), the GPUs (names, memory, driver; NVML, when there is
one) and a fingerprint of each dataset folder and of the base model (file names, sizes and
mtimes, hashed: cheap for 100k files, and any added, removed, resized or rewritten file
changes it). `changes(record, values)` compares a record with the files as they are now and
says, in words, what differs; the Runs page shows that before "Run again".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

RECORD_FILE = "reproducibility.json"
PACKAGES = ("torch", "diffusers", "peft", "accelerate", "transformers", "safetensors")
MAX_FILES = 200_000  # a fingerprint stops counting beyond this many files (and says so)


def fingerprint(path: str | Path) -> dict[str, Any]:
    """{"path", "files", "bytes", "sha256"} of a file or a folder tree (names, sizes, mtimes);
    {"path", "missing": True} when it does not exist."""
    root = Path(path).expanduser()
    if not root.exists():
        return {"path": str(root), "missing": True}
    digest = hashlib.sha256()
    files = total = 0
    entries = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for file in entries[:MAX_FILES]:
        with contextlib.suppress(OSError):
            st = file.stat()
            name = file.name if file == root else file.relative_to(root).as_posix()
            digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            files += 1
            total += st.st_size
    out = {"path": str(root), "files": files, "bytes": total, "sha256": digest.hexdigest()}
    if len(entries) > MAX_FILES:
        out["truncated"] = True
    return out


def _versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def _gpus() -> dict[str, Any]:
    try:
        import pynvml
    except ImportError:
        return {"gpus": [], "driver": None}
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: a CPU machine
        return {"gpus": [], "driver": None}
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total
            gpus.append({"index": i, "name": str(name), "memory_mb": memory // 2**20})
        return {"gpus": gpus, "driver": str(driver)}
    except Exception as exc:  # telemetry refused: record why rather than fail the run
        return {"gpus": [], "driver": None, "error": str(exc)}
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def _sources(values: Mapping[str, Any]) -> dict[str, Any]:
    datasets = [
        {"index": i, **fingerprint(d["path"])}
        for i, d in enumerate(values.get("datasets") or [])
        if d.get("enabled", True) and str(d.get("path") or "").strip()
    ]
    base = str(values.get("pretrained_model_name_or_path") or "").strip()
    model = None
    if values.get("model_family") != "demo" and base:
        local = Path(base).expanduser()
        model = fingerprint(local) if local.exists() else {"hub_id": base}
    return {"datasets": datasets, "base_model": model}


def build_record(values: Mapping[str, Any], argv: list[str]) -> dict[str, Any]:
    return {
        "version": 1,
        "created": time.time(),
        "config": dict(values),
        "command": [sys.executable, "-m", "trainer", *argv],
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": _versions(),
        **_gpus(),
        **_sources(values),
    }


def write_record(run_dir: Path, record: Mapping[str, Any]) -> Path:
    """Atomic: a temp file renamed into place."""
    run_dir.mkdir(parents=True, exist_ok=True)
    target = run_dir / RECORD_FILE
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return target


def read_record(run_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(run_dir) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def changes(record: Mapping[str, Any]) -> list[str]:
    """What differs now from when the run started: datasets and base model, in words."""
    found: list[str] = []
    for then in record.get("datasets") or []:
        now = fingerprint(then["path"])
        if now.get("missing") and not then.get("missing"):
            found.append(f"dataset {then['path']} no longer exists")
        elif now.get("sha256") != then.get("sha256"):
            found.append(
                f"dataset {then['path']} changed: {then.get('files', 0)} files then, "
                f"{now.get('files', 0)} now (or files were edited)"
            )
    model = record.get("base_model") or {}
    if model.get("path"):
        now = fingerprint(model["path"])
        if now.get("sha256") != model.get("sha256"):
            found.append(f"base model {model['path']} changed or is gone")
    return found
