"""The dataset browser stays inside the datasets root and pages/filter images correctly."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.dataset_browser import (
    CaptionCache,
    DatasetRoot,
    ImageFilter,
    OutsideRootError,
    list_images,
)
from app.services.dataset_scan import ProbeCache
from tests.datasets.conftest import write_image


def test_dotdot_escape_is_refused_with_a_message(datasets_root: Path, tmp_path: Path) -> None:
    (tmp_path / "secret").mkdir()
    root = DatasetRoot(datasets_root)
    for attempt in ("../secret", "sub/../../secret", str(datasets_root / ".." / "secret")):
        with pytest.raises(OutsideRootError, match=r"'\.\.'"):
            root.resolve(attempt)


def test_symlink_escape_is_refused_with_a_message(datasets_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_image(outside / "a.png", (32, 32))
    os.symlink(outside, datasets_root / "link")
    os.symlink(outside / "a.png", datasets_root / "file-link.png")
    root = DatasetRoot(datasets_root)
    for attempt in ("link", "link/a.png", str(datasets_root / "file-link.png")):
        with pytest.raises(OutsideRootError, match="symbolic link"):
            root.resolve(attempt)
    with pytest.raises(OutsideRootError, match="outside the datasets root"):
        root.resolve(str(outside))


def test_paths_inside_the_root_resolve(datasets_root: Path) -> None:
    (datasets_root / "a" / "b").mkdir(parents=True)
    os.symlink(datasets_root / "a" / "b", datasets_root / "alias")
    root = DatasetRoot(datasets_root)
    assert root.resolve("a/b") == (datasets_root / "a" / "b").resolve()
    assert root.resolve("a/../a/b") == (datasets_root / "a" / "b").resolve()
    assert (
        root.resolve("alias") == (datasets_root / "a" / "b").resolve()
    )  # a link that stays inside
    assert [p.name for p in root.folders("").folders] == ["a", "alias"]


def test_pages_and_filters(make_folder: Callable[..., Path]) -> None:
    sizes = [(64, 64)] * 5 + [(200, 100)] * 5 + [(512, 768)] * 2
    folder = make_folder("mixed", sizes, captions=[True] * 10 + [False] * 2)
    probes, captions = ProbeCache(), CaptionCache()

    first = list_images(folder, page=1, page_size=5, probes=probes, captions=captions)
    assert (first.total, first.folder_total, first.pages) == (12, 12, 3)
    assert [i.name for i in first.items] == [f"img_{i:03d}.png" for i in range(5)]
    last = list_images(folder, page=3, page_size=5, probes=probes, captions=captions)
    assert [i.name for i in last.items] == ["img_010.png", "img_011.png"]
    assert last.items[0].caption is None and first.items[0].caption == "caption number 0"

    no_caption = list_images(folder, ImageFilter(no_caption=True), probes=probes, captions=captions)
    assert [i.name for i in no_caption.items] == ["img_010.png", "img_011.png"]
    text = list_images(folder, ImageFilter(text="NUMBER 7"), probes=probes, captions=captions)
    assert [i.name for i in text.items] == ["img_007.png"]
    small = list_images(folder, ImageFilter(max_side=99), probes=probes, captions=captions)
    assert small.total == 5
    big = list_images(folder, ImageFilter(min_side=100), probes=probes, captions=captions)
    assert [i.size_text for i in big.items] == ["200×100"] * 5 + ["512×768"] * 2
