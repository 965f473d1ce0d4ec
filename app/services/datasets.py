"""The datasets service: the datasets root, the caches and the latest scan of each folder.

One per process (`services.datasets`); pages and routes reach it through
`dataset_service(services)`. `dataset_warnings(config)` is what the run bar calls before
Start: what the trainer would skip, caption or upscale, in words.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.services.dataset_browser import CaptionCache, DatasetRoot
from app.services.dataset_scan import ProbeCache, ScanResult, combined_steps_per_epoch, scan_dataset
from app.services.thumbnails import ThumbnailCache
from registry.validation import Issue, validate_config
from tunerdeck_common.paths import data_dir

_LIST_IN_WARNING = 3  # file names quoted in one warning


class DatasetService:
    def __init__(self, prefs: Any, cache_dir: Path | None = None) -> None:
        self.prefs = prefs  # a WebUIStateStore: the root follows the preferences live
        self.probes = ProbeCache()
        self.captions = CaptionCache()
        self.thumbnails = ThumbnailCache(cache_dir or data_dir() / "cache" / "thumbnails")
        self.scans: dict[str, ScanResult] = {}
        self._lock = threading.Lock()

    @property
    def root(self) -> DatasetRoot:
        return DatasetRoot(Path(self.prefs.prefs.datasets_root))

    def scan(self, entry: Mapping[str, Any], config: Mapping[str, Any]) -> ScanResult:
        """Scan an effective entry under an effective config; remembered for the entry card."""
        result = scan_dataset(
            entry,
            int(config["resolution"]),
            int(config["train_batch_size"]),
            gradient_accumulation_steps=int(config["gradient_accumulation_steps"]),
            cache=self.probes,
        )
        with self._lock:
            self.scans[result.folder] = result
        return result

    def last_scan(self, path: str) -> ScanResult | None:
        return self.scans.get(str(Path(path).expanduser())) if path else None

    def scan_config(self, config: Mapping[str, Any]) -> tuple[list[tuple[int, ScanResult]], int]:
        """Scan every enabled entry of a (sparse) config; returns (index, scan) pairs and the
        estimated optimizer steps per epoch of all of them together."""
        values = validate_config(config).values
        results = [
            (i, self.scan(entry, values))
            for i, entry in enumerate(values.get("datasets") or [])
            if entry.get("enabled")
        ]
        steps = combined_steps_per_epoch(
            [r for _, r in results],
            int(values["train_batch_size"]),
            int(values["gradient_accumulation_steps"]),
            int(values["num_processes"]),
        )
        return results, steps

    def warnings(self, config: Mapping[str, Any]) -> list[Issue]:
        issues: list[Issue] = []
        results, _ = self.scan_config(config)
        for i, result in results:
            issues.extend(scan_warnings(i, result))
        return issues


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST_IN_WARNING])
    return shown + (
        f" and {len(names) - _LIST_IN_WARNING} more" if len(names) > _LIST_IN_WARNING else ""
    )


def scan_warnings(index: int, result: ScanResult) -> list[Issue]:
    """What a person should know about one scanned entry before training on it."""
    path = f"datasets[{index}].path"
    if result.error:
        return [Issue(path=path, message=result.error, severity="warning")]
    out: list[Issue] = []
    if result.readable_count == 0:
        out.append(
            Issue(path=path, message=f"no readable images in {result.folder}", severity="warning")
        )
    if result.unreadable:
        names = [name for name, _ in result.unreadable]
        out.append(
            Issue(
                path=path,
                message=f"{len(names)} unreadable images will be skipped: {_names(names)}",
                severity="warning",
            )
        )
    if result.missing_captions:
        n = len(result.missing_captions)
        out.append(
            Issue(
                path=path,
                message=f"{n} images have no caption and train with an empty one: {_names(result.missing_captions)}",
                severity="warning",
            )
        )
    if result.smaller_than_resolution:
        out.append(
            Issue(
                path=path,
                message=f"{result.smaller_than_resolution} images are smaller than the resolution "
                f"{result.resolution} and will be upscaled",
                severity="warning",
            )
        )
    return out


def dataset_service(services: Any) -> DatasetService:
    """The process's DatasetService, created on first use when the container has none."""
    if getattr(services, "datasets", None) is None:
        services.datasets = DatasetService(services.prefs)
    return services.datasets


def dataset_warnings(config: Mapping[str, Any], services: Any) -> list[Issue]:
    """For the run bar: warnings about the config's datasets (empty when all is well)."""
    return dataset_service(services).warnings(config)
