"""Browsing datasets inside the datasets root of the preferences, and paging their images.

Every path that comes from the page goes through `DatasetRoot.resolve`, which refuses one
that ends up outside the root, whether by `..` or by a symbolic link, with a message that
says which. Listing 10,000 images costs one scandir; probes (sizes) and captions are only
read for the page shown, unless a filter needs them, and are remembered by mtime + size.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from app.services.captions import DEFAULT_EXTENSION, CaptionError, read_caption, sidecar_path
from app.services.dataset_scan import FileStat, ImageProbe, ProbeCache, list_image_files
from app.services.folder_browser import Listing, list_folders

DEFAULT_PAGE_SIZE = 100


class OutsideRootError(ValueError):
    """A path outside the datasets root; the message names the root and the cause."""


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class DatasetRoot:
    root: Path

    @property
    def resolved(self) -> Path:
        return self.root.expanduser().resolve()

    def resolve(self, path: str | os.PathLike[str]) -> Path:
        """An absolute, link-free path inside the root (relative paths start at the root)."""
        text = str(path).strip()
        if not text:
            raise OutsideRootError("no folder given")
        if "\x00" in text:  # os.path.realpath raises on it: refuse as a bad path instead
            raise OutsideRootError("a path cannot contain a NUL character")
        root = self.resolved
        raw = Path(text).expanduser()
        candidate = raw if raw.is_absolute() else root / raw
        lexical = Path(os.path.normpath(candidate))
        if ".." in raw.parts and not (
            _inside(lexical, root) or _inside(lexical, Path(os.path.normpath(self.root)))
        ):
            raise OutsideRootError(f"{text} goes above the datasets root {root} with '..': refused")
        resolved = candidate.resolve()
        if not _inside(resolved, root):
            if _inside(lexical, root) or _inside(
                lexical, Path(os.path.normpath(self.root.expanduser()))
            ):
                raise OutsideRootError(
                    f"{text} is a symbolic link (or inside one) to {resolved}, outside the datasets root {root}: refused"
                )
            raise OutsideRootError(f"{text} is outside the datasets root {root}")
        return resolved

    def relative(self, path: Path) -> str:
        rel = path.relative_to(self.resolved).as_posix()
        return "" if rel == "." else rel

    def folders(self, path: str | os.PathLike[str] = "") -> Listing:
        """Sub-folders for the folder picker (the UI part's listing, confined to this root)."""
        return list_folders(self.resolve(path or self.resolved), [self.resolved])


@dataclass(frozen=True)
class ImageFilter:
    no_caption: bool = False
    text: str = ""  # in the caption or the file name, any case
    min_side: int | None = None  # the shorter side, in pixels
    max_side: int | None = None

    @property
    def needs_probes(self) -> bool:
        return self.min_side is not None or self.max_side is not None

    @property
    def needs_captions(self) -> bool:
        return self.no_caption or bool(self.text.strip())


@dataclass(frozen=True)
class ImageItem:
    path: Path
    name: str
    caption: str | None  # None: no sidecar file
    probe: ImageProbe

    @property
    def size_text(self) -> str:
        return f"{self.probe.width}×{self.probe.height}" if self.probe.ok else "unreadable"


@dataclass(frozen=True)
class ImagePage:
    items: tuple[ImageItem, ...]
    total: int  # images matching the filter
    folder_total: int  # images in the folder
    page: int  # from 1
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


class CaptionCache:
    """Sidecar texts by path, valid while the sidecar's mtime and size are unchanged."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def get(self, image: Path, extension: str) -> str | None:
        path = sidecar_path(image, extension)
        try:
            st = path.stat()
        except OSError:
            return None
        key = str(path)
        hit = self._items.get(key)
        if hit is not None and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            return hit[2]
        try:
            text = read_caption(image, extension)
        except CaptionError:
            text = ""
        if text is None:
            return None
        with self._lock:
            self._items[key] = (st.st_mtime_ns, st.st_size, text)
        return text


def _matches(
    stat: FileStat, caption: str | None, probe: ImageProbe | None, flt: ImageFilter
) -> bool:
    if flt.no_caption and caption:
        return False
    text = flt.text.strip().lower()
    if text and text not in (caption or "").lower() and text not in stat.path.name.lower():
        return False
    if probe is not None:
        if not probe.ok:
            return False
        side = min(probe.width, probe.height)
        if flt.min_side is not None and side < flt.min_side:
            return False
        if flt.max_side is not None and side > flt.max_side:
            return False
    return True


def list_images(
    folder: Path,
    flt: ImageFilter | None = None,
    page: int = 1,
    page_size: int = DEFAULT_PAGE_SIZE,
    *,
    probes: ProbeCache,
    captions: CaptionCache,
    caption_extension: str = DEFAULT_EXTENSION,
) -> ImagePage:
    """One page of a folder's images (sorted by name) that pass the filter."""
    flt = flt or ImageFilter()
    page_size = max(1, page_size)
    stats = list_image_files(folder)
    if flt.needs_probes or flt.needs_captions:
        probe_list = probes.get_many(stats) if flt.needs_probes else [None] * len(stats)
        kept = []
        for stat, probe in zip(stats, probe_list, strict=True):
            caption = captions.get(stat.path, caption_extension) if flt.needs_captions else None
            if _matches(stat, caption, probe, flt):
                kept.append(stat)
    else:
        kept = stats
    pages = max(1, math.ceil(len(kept) / page_size))
    page = min(max(1, page), pages)
    chosen = kept[(page - 1) * page_size : page * page_size]
    items = tuple(
        ImageItem(s.path, s.path.name, captions.get(s.path, caption_extension), probes.get(s))
        for s in chosen
    )
    return ImagePage(items, len(kept), len(stats), page, page_size)
