"""Thumbnails are made once per image version and kept on disk."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from app.services.thumbnails import THUMB_SIDE, ThumbnailCache, ThumbnailError
from tests.datasets.conftest import write_broken, write_image


def test_made_once_then_reused_and_remade_when_the_image_changes(
    make_folder: Callable[..., Path], tmp_path: Path
) -> None:
    folder = make_folder("thumbs", [(1200, 600)])
    cache = ThumbnailCache(tmp_path / "cache")
    image = folder / "img_000.png"
    first = cache.get(image)
    with Image.open(first.path) as thumb:
        assert thumb.size == (THUMB_SIDE, THUMB_SIDE // 2)
    made_at = first.path.stat().st_mtime_ns
    again = cache.get(image)
    assert again == first and again.path.stat().st_mtime_ns == made_at  # not re-rendered

    write_image(image, (300, 900))
    os.utime(image, ns=(made_at + 10**9, made_at + 10**9))
    changed = cache.get(image)
    assert changed.etag != first.etag
    with Image.open(changed.path) as thumb:
        assert thumb.size[1] == THUMB_SIDE and abs(thumb.size[0] - THUMB_SIDE / 3) <= 1
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.name.endswith(".tmp")]


def test_unreadable_image_says_why(tmp_path: Path) -> None:
    broken = write_broken(tmp_path / "bad.png", 0)
    with pytest.raises(ThumbnailError, match=r"bad\.png cannot be read"):
        ThumbnailCache(tmp_path / "cache").get(broken)
    assert not list((tmp_path / "cache").rglob("*.jpg"))
