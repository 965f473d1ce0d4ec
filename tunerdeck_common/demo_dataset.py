"""A small captioned image set (colored shapes on colored backgrounds), generated locally.

PIL and stdlib only (no torch): the UI process imports this to show the demo dataset.
Deterministic: the same images and captions every time, so runs are reproducible.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

from tunerdeck_common.paths import default_datasets_root

VERSION = 1
SIZE = 96
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (240, 210, 40),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
SHAPES = ("circle", "square", "triangle")
# Foreground/background pairs chosen so every shape stays visible.
PAIRS: tuple[tuple[str, str], ...] = (
    ("red", "blue"),
    ("red", "white"),
    ("green", "black"),
    ("green", "yellow"),
    ("blue", "yellow"),
    ("blue", "white"),
    ("yellow", "black"),
    ("white", "green"),
)
LAYOUTS: tuple[tuple[float, float, float], ...] = ((0.5, 0.5, 0.34), (0.4, 0.45, 0.26))


def _draw(shape: str, fg: str, bg: str, cx: float, cy: float, r: float) -> Image.Image:
    img = Image.new("RGB", (SIZE, SIZE), COLORS[bg])
    d = ImageDraw.Draw(img)
    x, y, rr = cx * SIZE, cy * SIZE, r * SIZE
    if shape == "circle":
        d.ellipse((x - rr, y - rr, x + rr, y + rr), fill=COLORS[fg])
    elif shape == "square":
        d.rectangle((x - rr, y - rr, x + rr, y + rr), fill=COLORS[fg])
    else:
        d.polygon([(x, y - rr), (x + rr, y + rr), (x - rr, y + rr)], fill=COLORS[fg])
    return img


def demo_items() -> list[tuple[str, Image.Image, str]]:
    """(file stem, image, caption) for every demo image, in a fixed order (48 images)."""
    items = []
    for shape in SHAPES:
        for fg, bg in PAIRS:
            for k, (cx, cy, r) in enumerate(LAYOUTS):
                stem = f"{shape}_{fg}_on_{bg}_{k}"
                caption = f"a {fg} {shape} on a {bg} background"
                items.append((stem, _draw(shape, fg, bg, cx, cy, r), caption))
    return items


def ensure_demo_dataset(path: Path | None = None) -> Path:
    """Create the demo dataset at `path` (default data_dir()/datasets/demo) unless it exists.

    Written to a temp folder and renamed into place, so a crash never leaves half a dataset.
    """
    target = Path(path) if path else default_datasets_root() / "demo"
    marker = target / ".tunerdeck-demo.json"
    if marker.exists():
        try:
            if json.loads(marker.read_text()).get("version") == VERSION:
                return target
        except (OSError, ValueError):
            pass
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".demo-", dir=target.parent))
    try:
        for stem, img, caption in demo_items():
            img.save(tmp / f"{stem}.png")
            (tmp / f"{stem}.txt").write_text(caption + "\n")
        (tmp / marker.name).write_text(json.dumps({"version": VERSION}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        # Another process may have created it concurrently: that copy is just as good.
        if marker.exists():
            return target
        raise
    return target
