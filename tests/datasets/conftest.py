"""Fixtures for the datasets part: small image folders written with Pillow in tmp dirs."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from PIL import Image

from tests.page_probe import record_trainer_pages  # noqa: F401  (autouse)


def write_image(
    path: Path, size: tuple[int, int], color: tuple[int, int, int] = (200, 50, 50)
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def write_broken(path: Path, kind: int) -> Path:
    """Three flavours of unreadable: random bytes, a truncated PNG, an empty file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind % 3 == 0:
        path.write_bytes(b"this is not an image at all" * 10)
    elif kind % 3 == 1:
        write_image(path, (64, 64))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(b"")
    return path


@pytest.fixture
def make_folder(tmp_path: Path) -> Callable[..., Path]:
    """make_folder(name, sizes, captions=True) -> folder of PNGs named img_000.png, ..."""

    def make(
        name: str, sizes: Iterable[tuple[int, int]], captions: bool | Iterable[bool] = True
    ) -> Path:
        folder = tmp_path / "root" / name
        sizes = list(sizes)
        flags = [captions] * len(sizes) if isinstance(captions, bool) else list(captions)
        for i, (size, has_caption) in enumerate(zip(sizes, flags, strict=True)):
            image = write_image(folder / f"img_{i:03d}.png", size, ((i * 37) % 255, 90, 160))
            if has_caption:
                image.with_suffix(".txt").write_text(f"caption number {i}\n", encoding="utf-8")
        return folder

    return make


@pytest.fixture
def datasets_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    return root
