"""Caption edits land atomically in the sidecar file and survive a fresh read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.services.captions import CaptionError, read_caption, write_caption
from app.services.dataset_browser import CaptionCache, ImageFilter, list_images
from app.services.dataset_scan import ProbeCache
from tunerdeck_common.dataset_rules import caption_for


def test_edit_survives_reload_and_leaves_no_temp_files(make_folder: Callable[..., Path]) -> None:
    folder = make_folder("caps", [(64, 64)] * 3, captions=[True, False, True])
    before = sorted(p.name for p in folder.iterdir())
    cache = CaptionCache()
    assert (
        list_images(folder, probes=ProbeCache(), captions=cache).items[0].caption
        == "caption number 0"
    )

    write_caption(folder / "img_000.png", "  a new caption, with a comma  ")
    write_caption(folder / "img_001.png", "first caption for this one")

    # A new cache and a plain read both see the new text: it is on disk, not in memory.
    page = list_images(folder, probes=ProbeCache(), captions=CaptionCache())
    assert [i.caption for i in page.items] == [
        "a new caption, with a comma",
        "first caption for this one",
        "caption number 2",
    ]
    assert read_caption(folder / "img_000.png") == "a new caption, with a comma"
    # The cache that saw the old text notices the change too.
    assert (
        list_images(folder, probes=ProbeCache(), captions=cache).items[0].caption
        == "a new caption, with a comma"
    )
    after = sorted(p.name for p in folder.iterdir())
    assert after == sorted([*before, "img_001.txt"])  # exactly one new file: the new sidecar
    assert not [p for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]
    assert (
        list_images(
            folder, ImageFilter(no_caption=True), probes=ProbeCache(), captions=CaptionCache()
        ).total
        == 0
    )


def test_caption_for_follows_the_entry(make_folder: Callable[..., Path]) -> None:
    folder = make_folder("src", [(64, 64)], captions=True)
    image = folder / "img_000.png"
    assert (
        caption_for(image, {"caption_source": "sidecar", "caption_extension": ".txt"})
        == "caption number 0"
    )
    assert (
        caption_for(image, {"caption_source": "filename", "caption_prefix": "tok"})
        == "tok, img 000"
    )
    assert (
        caption_for(image, {"caption_source": "instance_prompt", "instance_prompt": "a photo"})
        == "a photo"
    )


def test_writing_next_to_a_missing_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CaptionError, match="does not exist"):
        write_caption(tmp_path / "gone.png", "text")
    assert not list(tmp_path.iterdir())
