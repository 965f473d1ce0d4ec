"""Thumbnails made once and kept on disk, keyed by the image's path, mtime and size.

The key doubles as the HTTP ETag: a browser that already holds a thumbnail gets a 304
after one stat of the original. An edited or replaced image gets a new key, so a stale
thumbnail is never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

THUMB_SIDE = 256  # the longer side, in pixels
THUMB_VERSION = 1  # bump when the rendering changes so old cache files are not reused
MEDIA_TYPE = "image/jpeg"


class ThumbnailError(ValueError):
    """The original cannot be read; the message says why."""


@dataclass(frozen=True)
class Thumbnail:
    path: Path
    etag: str


def thumbnail_key(image: Path) -> str:
    """sha1 of the resolved path, mtime and size: changes whenever the image does."""
    st = image.stat()
    raw = f"{THUMB_VERSION}|{image.resolve()}|{st.st_mtime_ns}|{st.st_size}"
    return hashlib.sha1(raw.encode("utf-8"), usedforsecurity=False).hexdigest()


def render_thumbnail(image: Path, side: int = THUMB_SIDE) -> bytes:
    """A JPEG no larger than side×side, upright, transparency flattened on grey."""
    from PIL import Image, ImageOps  # here: the UI process starts without Pillow (memory)

    try:
        with Image.open(image) as opened:
            if opened.format == "JPEG":
                opened.draft("RGB", (side, side))  # let libjpeg shrink while decoding: far faster
            img: Image.Image = ImageOps.exif_transpose(opened)
            img.thumbnail((side, side), Image.Resampling.BICUBIC, reducing_gap=2.0)
            if img.mode in ("RGBA", "LA", "P", "PA"):
                rgba = img.convert("RGBA")
                flat = Image.new("RGB", rgba.size, (128, 128, 128))
                flat.paste(rgba, mask=rgba.getchannel("A"))
                img = flat
            elif img.mode != "RGB":
                img = img.convert("RGB")
            out = BytesIO()
            img.save(out, "JPEG", quality=82, optimize=False)
            return out.getvalue()
    except Exception as exc:  # any decoder error means "cannot show this image"
        raise ThumbnailError(f"{image.name} cannot be read: {exc}") from exc


class ThumbnailCache:
    def __init__(self, folder: Path, side: int = THUMB_SIDE) -> None:
        self.folder = folder
        self.side = side

    def cached_path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.jpg"

    def get(self, image: Path) -> Thumbnail:
        """The thumbnail's file, made now if this version of the image has none yet."""
        try:
            key = thumbnail_key(image)
        except OSError as exc:
            raise ThumbnailError(f"{image.name} cannot be read: {exc.strerror}") from exc
        target = self.cached_path(key)
        if not target.exists():
            _write_cache_file(target, render_thumbnail(image, self.side))
        return Thumbnail(target, key)

    def size_on_disk(self) -> int:
        total = 0
        for root, _dirs, files in os.walk(self.folder):
            total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        return total


def _write_cache_file(target: Path, data: bytes) -> None:
    """Temp file + rename, so a reader never sees half a thumbnail. No fsync: it is a cache
    (a lost file is re-made), and 10,000 fsyncs would dominate a cold build."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".thumb-", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
