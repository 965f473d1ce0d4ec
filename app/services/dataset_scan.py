"""Scanning a dataset folder: what the trainer will see, before a run is started.

Every image is probed once (Pillow only: format check, integrity check, size with EXIF
rotation) and the probe is remembered by path + mtime + size, so a re-scan or the browser's
size filter on 10,000 images only stats the files. Folder rules follow the trainer: the
images directly inside the folder, with the trainer's extensions.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.services import buckets as bucket_maths
from app.services.captions import CaptionError, read_caption
from tunerdeck_common.dataset_rules import (
    IMAGE_EXTENSIONS,
    caption_strategy,
    is_mask_file,
    mask_file_for,
    size_filter_reason,
)

if TYPE_CHECKING:
    from PIL import Image

_EXIF_ORIENTATION = 0x0112
_ROTATED = {5, 6, 7, 8}  # orientations that swap width and height

# Histogram bins: the shorter side in pixels, and the aspect ratio width / height.
SIDE_EDGES = (256, 512, 768, 1024, 1536, 2048)
ASPECT_EDGES = (0.5, 0.67, 0.8, 0.95, 1.05, 1.25, 1.5, 2.0)


@dataclass(frozen=True)
class ImageProbe:
    width: int = 0
    height: int = 0
    error: str | None = None  # why the image cannot be read; None when it can

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class FileStat:
    path: Path
    mtime_ns: int
    size: int


def probe_image(path: Path) -> ImageProbe:
    """Open, integrity-check and measure one image without decoding it at full size."""
    from PIL import Image  # only when a scan runs: the page process need not load Pillow

    try:
        with Image.open(path) as img:
            width, height = img.size  # from the header, before any decoding
            if _orientation(img) in _ROTATED:
                width, height = height, width
            if img.format == "PNG":
                img.verify()  # checks every chunk's CRC without decoding pixels
            else:
                if img.format == "JPEG":
                    img.draft("RGB", (64, 64))  # decode at 1/8 scale: still catches truncation
                img.load()
    except Exception as exc:  # Pillow raises many types for broken files
        return ImageProbe(error=_describe(exc))
    if width <= 0 or height <= 0:
        return ImageProbe(error="image has no pixels")
    return ImageProbe(width, height)


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation. For a PNG only an eXIf chunk before the pixels is read:
    Pillow's getexif() would decode the whole image to look after them."""
    if img.format == "PNG":
        raw = img.info.get("exif")
        if not raw:
            return 1
        from PIL import Image

        exif = Image.Exif()
        exif.load(raw)
        return int(exif.get(_EXIF_ORIENTATION, 1))
    return int(img.getexif().get(_EXIF_ORIENTATION, 1))


def _describe(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.replace(" (probably the file is truncated)", "")


def list_image_files(folder: Path) -> list[FileStat]:
    """The images directly in `folder`, sorted by name, with their stat (one scandir)."""
    found: list[FileStat] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if os.path.splitext(entry.name)[1].lower() not in IMAGE_EXTENSIONS:
                continue
            try:
                if not entry.is_file():
                    continue
                st = entry.stat()
            except OSError:
                continue
            found.append(FileStat(Path(entry.path), st.st_mtime_ns, st.st_size))
    found.sort(key=lambda f: f.path.name)
    return found


class ProbeCache:
    """Probes by path, valid while the file's mtime and size are unchanged."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[int, int, ImageProbe]] = {}
        self._lock = threading.Lock()

    def get(self, stat: FileStat) -> ImageProbe:
        key = str(stat.path)
        hit = self._items.get(key)
        if hit is not None and hit[0] == stat.mtime_ns and hit[1] == stat.size:
            return hit[2]
        probe = probe_image(stat.path)
        with self._lock:
            self._items[key] = (stat.mtime_ns, stat.size, probe)
        return probe

    def get_many(self, stats: list[FileStat]) -> list[ImageProbe]:
        # Serial on purpose: for small images threads were measured slower (GIL-bound header
        # parsing); a large JPEG is decoded at 1/8 scale, so it stays cheap too.
        return [self.get(s) for s in stats]


@dataclass
class ScanResult:
    folder: str
    resolution: int
    image_count: int = 0  # files with an image extension
    readable_count: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (file name, why)
    missing_captions: list[str] = field(default_factory=list)  # readable images without a caption
    kind: str = "train"  # the entry's kind: train, regularization or eval
    # Readable images the size filters leave out: (file name, why); they never train.
    filtered: list[tuple[str, str]] = field(default_factory=list)
    missing_masks: list[str] = field(default_factory=list)  # mask_source file: no mask found
    resized_masks: list[str] = field(default_factory=list)  # masks of another size: resized
    unmasked_alpha: list[str] = field(default_factory=list)  # mask_source alpha: no alpha
    side_histogram: dict[str, int] = field(default_factory=dict)  # shorter side -> images
    aspect_histogram: dict[str, int] = field(default_factory=dict)  # width/height -> images
    images_per_bucket: dict[str, int] = field(default_factory=dict)
    samples_per_bucket: dict[str, int] = field(default_factory=dict)  # images x repeats
    smaller_than_resolution: int = 0  # would be upscaled
    repeats: int = 1
    batch_size: int = 1
    steps_per_epoch: int = 0  # this dataset alone
    error: str | None = None  # the folder itself cannot be scanned
    seconds: float = 0.0
    scanned_at: float = field(default_factory=time.time)
    bucket_counts: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    @property
    def trained_count(self) -> int:
        """Readable images that pass the size filters."""
        return self.readable_count - len(self.filtered)

    @property
    def ok(self) -> bool:
        return self.error is None and self.trained_count > 0

    def filter_counts(self) -> dict[str, int]:
        """Why the size filters left images out, with how many each."""
        counts: dict[str, int] = {}
        for _name, why in self.filtered:
            counts[why] = counts.get(why, 0) + 1
        return counts

    def summary(self) -> str:
        if self.error:
            return self.error
        parts = [f"{self.readable_count} images"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable")
        if self.missing_captions:
            parts.append(f"{len(self.missing_captions)} without caption")
        if self.filtered:
            parts.append(f"{len(self.filtered)} left out by size filters")
        if self.missing_masks:
            parts.append(f"{len(self.missing_masks)} without mask")
        if self.resized_masks:
            parts.append(f"{len(self.resized_masks)} masks resized")
        parts.append(f"{len(self.samples_per_bucket)} buckets")
        parts.append(f"~{self.steps_per_epoch} steps/epoch")
        return ", ".join(parts)


def _bin_labels_side() -> list[str]:
    edges = SIDE_EDGES
    labels = [f"< {edges[0]}"]
    labels += [f"{lo}–{hi - 1}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f"≥ {edges[-1]}"]


def _bin_labels_aspect() -> list[str]:
    edges = ASPECT_EDGES
    labels = [f"< {edges[0]:.2f}"]
    labels += [f"{lo:.2f}–{hi:.2f}" for lo, hi in itertools.pairwise(edges)]
    return [*labels, f"≥ {edges[-1]:.2f}"]


SIDE_LABELS = tuple(_bin_labels_side())
ASPECT_LABELS = tuple(_bin_labels_aspect())


def _bin(value: float, edges: tuple[float, ...]) -> int:
    for i, edge in enumerate(edges):
        if value < edge:
            return i
    return len(edges)


def side_bin(width: int, height: int) -> str:
    return SIDE_LABELS[_bin(min(width, height), SIDE_EDGES)]


def aspect_bin(width: int, height: int) -> str:
    return ASPECT_LABELS[_bin(width / height, ASPECT_EDGES)]


def _has_caption(image: Path, entry: Mapping[str, Any]) -> bool:
    source = caption_strategy(entry)
    if source in ("filename", "textfile_or_filename"):
        return True
    if source == "instance_prompt":
        return bool(str(entry["instance_prompt"]).strip())
    try:
        return bool(read_caption(image, entry["caption_extension"]))
    except CaptionError:
        return False


def _check_mask(
    image: Path, size: tuple[int, int], entry: Mapping[str, Any], result: ScanResult
) -> None:
    """Record what the trainer will do about this image's loss mask (the trainer's rules)."""
    source = entry["mask_source"]
    if source == "file":
        mask = mask_file_for(image)
        if mask is None:
            result.missing_masks.append(image.name)
            return
        probe = probe_image(mask)
        if probe.ok and (probe.width, probe.height) != size:
            result.resized_masks.append(
                f"{mask.name}: {probe.width}x{probe.height}, image {size[0]}x{size[1]}"
            )
    elif source == "alpha":
        from PIL import Image

        try:
            with Image.open(image) as img:
                has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
        except Exception:
            return
        if not has_alpha:
            result.unmasked_alpha.append(image.name)


def scan_dataset(
    entry: Mapping[str, Any],
    resolution: int,
    batch_size: int = 1,
    *,
    gradient_accumulation_steps: int = 1,
    cache: ProbeCache | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ScanResult:
    """Scan one effective dataset entry (defaults filled in) at the config's resolution."""
    started = time.perf_counter()
    folder = Path(str(entry.get("path") or "")).expanduser()
    repeats = max(1, int(entry["repeats"]))
    result = ScanResult(
        folder=str(folder), resolution=resolution, repeats=repeats, batch_size=batch_size
    )
    result.kind = str(entry["kind"])
    result.side_histogram = dict.fromkeys(SIDE_LABELS, 0)
    result.aspect_histogram = dict.fromkeys(ASPECT_LABELS, 0)
    if not str(entry.get("path") or "").strip():
        result.error = "no folder chosen"
        return result
    if not folder.is_dir():
        result.error = f"folder {folder} does not exist"
        return result
    try:
        stats = [s for s in list_image_files(folder) if not is_mask_file(s.path, entry)]
    except OSError as exc:
        result.error = f"folder {folder} cannot be read: {exc.strerror}"
        return result
    cache = cache or ProbeCache()
    probes = cache.get_many(stats)
    if progress is not None:
        progress(len(stats), len(stats))
    available = bucket_maths.buckets_for_entry(entry, resolution)
    counts: dict[tuple[int, int], int] = {}
    result.image_count = len(stats)
    for stat, probe in zip(stats, probes, strict=True):
        if not probe.ok:
            result.unreadable.append((stat.path.name, probe.error or "unreadable"))
            continue
        result.readable_count += 1
        w, h = probe.width, probe.height
        result.side_histogram[side_bin(w, h)] += 1
        result.aspect_histogram[aspect_bin(w, h)] += 1
        why = size_filter_reason((w, h), entry)
        if why is not None:
            result.filtered.append((stat.path.name, why))
            continue
        _check_mask(stat.path, (w, h), entry, result)
        if min(w, h) < resolution:
            result.smaller_than_resolution += 1
        bucket = bucket_maths.nearest_bucket((w, h), available)
        counts[bucket] = counts.get(bucket, 0) + 1
        if not _has_caption(stat.path, entry):
            result.missing_captions.append(stat.path.name)
    result.bucket_counts = {b: n * repeats for b, n in sorted(counts.items())}
    result.images_per_bucket = {bucket_maths.bucket_label(b): n for b, n in sorted(counts.items())}
    result.samples_per_bucket = {
        bucket_maths.bucket_label(b): n for b, n in result.bucket_counts.items()
    }
    result.steps_per_epoch = bucket_maths.steps_per_epoch(
        result.bucket_counts, batch_size, gradient_accumulation_steps
    )
    result.seconds = time.perf_counter() - started
    return result


def combined_steps_per_epoch(
    scans: Iterable[ScanResult],
    batch_size: int,
    gradient_accumulation_steps: int = 1,
    num_processes: int = 1,
) -> int:
    """Steps per epoch of several datasets trained together (they share same-bucket batches)."""
    merged = bucket_maths.merge_counts(s.bucket_counts for s in scans)
    return bucket_maths.steps_per_epoch(
        merged, batch_size, gradient_accumulation_steps, num_processes
    )
