"""Checks made before Start, without torch: will this run get past its first minutes?

Contract: `preflight(values, output_root=..., datasets_root=...)` takes the effective config
(validation's `values`, datasets with their defaults filled in) and returns `Finding`s, each
with a message and a fix; `blocking` ones mean the run cannot work as configured, the others
are worth knowing. Checks:
  disk        - free space where the run folder goes >= the planned checkpoints and weights
                (sizes from registry.estimate: trained parameters, optimizer states)
  dataset     - each enabled dataset folder exists, is readable and has readable images
  captions    - images without a caption (counted per dataset)
  small       - images smaller than the training resolution (they are upscaled)
  base_model  - the base model is a local folder/file, or in the Hugging Face cache (a Hub id
                that is not cached is a download; with HF_HUB_OFFLINE=1 it cannot be)
  output      - the run's output folder can be created and written
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.dataset_scan import ProbeCache, scan_dataset
from registry.estimate import (
    GB,
    checkpoint_bytes,
    count_parameters,
    planned_checkpoints,
    run_disk_bytes,
)

MB = 1024**2


@dataclass(frozen=True)
class Finding:
    check: str
    message: str
    fix: str
    blocking: bool
    path: str = ""  # the config field to jump to ("" when none fits)

    def __str__(self) -> str:
        return f"{self.message} Fix: {self.fix}"


def _existing_parent(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path("/")


def _check_disk(values: Mapping[str, Any], run_root: Path, params: dict) -> list[Finding]:
    count = planned_checkpoints(values)
    each = checkpoint_bytes(values, params)
    needed = run_disk_bytes(values, params)
    try:
        free = shutil.disk_usage(_existing_parent(run_root)).free
    except OSError:
        return []
    if free >= needed:
        return []
    return [
        Finding(
            "disk",
            f"Not enough free disk space for this run: about {needed / GB:.1f} GB for "
            f"{count} checkpoint(s) of ~{each / GB:.2f} GB and the final weights, "
            f"{free / GB:.1f} GB free at {_existing_parent(run_root)}.",
            "Free some space, keep fewer checkpoints (checkpoints_total_limit), save less "
            "often (checkpointing_steps) or choose another output root.",
            blocking=True,
            path="checkpoints_total_limit",
        )
    ]


def _check_output(run_root: Path) -> list[Finding]:
    parent = _existing_parent(run_root)
    problem = ""
    if not parent.is_dir():
        problem = f"{parent} is a file, not a folder"
    else:
        try:
            with tempfile.NamedTemporaryFile(dir=parent, prefix=".tunerdeck-preflight-"):
                pass
        except OSError as exc:
            problem = f"{parent} is not writable ({exc.strerror or exc})"
    if not problem:
        return []
    return [
        Finding(
            "output",
            f"The run folder cannot be created: {problem}.",
            "Choose an output_dir (or an output root in the preferences) you can write to.",
            blocking=True,
            path="output_dir",
        )
    ]


def _check_base_model(values: Mapping[str, Any], offline: bool) -> list[Finding]:
    if values["model_family"] == "demo":
        return []
    name = str(values["pretrained_model_name_or_path"]).strip()
    path = Path(name).expanduser()
    if path.exists() or name.startswith(("/", "./", "../", "~")):
        if path.exists():
            return []
        return [
            Finding(
                "base_model",
                f"The base model {name} does not exist.",
                "Choose the folder with model_index.json (or a .safetensors file).",
                blocking=True,
                path="pretrained_model_name_or_path",
            )
        ]
    if _in_hub_cache(name, str(values.get("revision") or "") or None):
        return []
    if offline:
        return [
            Finding(
                "base_model",
                f"{name} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set, so "
                "it cannot be downloaded.",
                "Download it once with network access (or unset HF_HUB_OFFLINE), or choose a "
                "local folder.",
                blocking=True,
                path="pretrained_model_name_or_path",
            )
        ]
    return [
        Finding(
            "base_model",
            f"{name} is not in the local Hugging Face cache: the run will download it first.",
            "Nothing to do if this machine is online; otherwise download it beforehand.",
            blocking=False,
            path="pretrained_model_name_or_path",
        )
    ]


def _in_hub_cache(repo_id: str, revision: str | None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        found = try_to_load_from_cache(repo_id, "model_index.json", revision=revision)
    except Exception:  # an id huggingface_hub refuses (bad characters): not cached
        return False
    return isinstance(found, str)


def _resolve_dataset(entry: Mapping[str, Any], datasets_root: Path | None) -> dict[str, Any]:
    given = str(entry.get("path") or "")
    if given and datasets_root is not None and not Path(given).expanduser().is_absolute():
        return {**entry, "path": str(datasets_root / given)}
    return dict(entry)


def _check_datasets(
    values: Mapping[str, Any], datasets_root: Path | None, cache: ProbeCache
) -> list[Finding]:
    found: list[Finding] = []
    resolution = int(values["resolution"])
    for index, raw in enumerate(values.get("datasets") or []):
        if not raw.get("enabled", True):
            continue
        entry = _resolve_dataset(raw, datasets_root)
        label = raw.get("name") or raw.get("path") or f"dataset {index + 1}"
        where = f"datasets[{index}].path"
        scan = scan_dataset(entry, resolution, cache=cache)
        if scan.error:
            found.append(
                Finding(
                    "dataset",
                    f"Dataset {label}: {scan.error}.",
                    "Choose a folder of images you can read.",
                    True,
                    where,
                )
            )
            continue
        if scan.readable_count == 0:
            found.append(
                Finding(
                    "dataset",
                    f"Dataset {label}: no readable images ({scan.image_count} image files).",
                    "Add PNG/JPEG/WebP images to the folder, or disable this dataset.",
                    True,
                    where,
                )
            )
            continue
        if scan.unreadable:
            names = ", ".join(n for n, _ in scan.unreadable[:3])
            found.append(
                Finding(
                    "dataset",
                    f"Dataset {label}: {len(scan.unreadable)} image(s) cannot be read "
                    f"({names}...); training skips them.",
                    "Re-save or remove those files.",
                    False,
                    where,
                )
            )
        if scan.missing_captions:
            found.append(
                Finding(
                    "captions",
                    f"Dataset {label}: {len(scan.missing_captions)} of {scan.readable_count} "
                    "images have no caption; they train with an empty caption.",
                    "Write captions in the Datasets tab (or set an instance prompt).",
                    False,
                    where,
                )
            )
        if scan.smaller_than_resolution:
            found.append(
                Finding(
                    "small",
                    f"Dataset {label}: {scan.smaller_than_resolution} of {scan.readable_count} "
                    f"images are smaller than {resolution} px and will be upscaled (blurry).",
                    f"Use larger images or a lower resolution than {resolution}.",
                    False,
                    "resolution",
                )
            )
    return found


def preflight(
    values: Mapping[str, Any],
    *,
    output_root: Path,
    datasets_root: Path | None = None,
    offline: bool | None = None,
    cache: ProbeCache | None = None,
) -> list[Finding]:
    """Every finding for the effective config `values`, blocking ones first."""
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    run_root = Path(output_root).expanduser() / str(values.get("output_dir") or "")
    params: dict = {}
    model = Path(str(values.get("pretrained_model_name_or_path") or "")).expanduser()
    with contextlib.suppress(OSError):
        if model.is_dir():
            params = count_parameters(model)
    found = [
        *_check_output(run_root),
        *_check_disk(values, run_root, params),
        *_check_base_model(values, offline),
        *_check_datasets(values, datasets_root, cache or ProbeCache()),
    ]
    return sorted(found, key=lambda f: not f.blocking)


__all__ = ["Finding", "checkpoint_bytes", "planned_checkpoints", "preflight"]
