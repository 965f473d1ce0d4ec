"""The URLs under which the dataset image routes (app.routes.datasets_api) serve a file;
pages build their <img> sources with these."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

DATASETS_API_PREFIX = "/api/datasets"


def thumbnail_url(image: Path, version: str | None = None) -> str:
    url = f"{DATASETS_API_PREFIX}/thumbnail?path={quote(str(image))}"
    return f"{url}&v={version}" if version else url


def image_url(image: Path) -> str:
    return f"{DATASETS_API_PREFIX}/image?path={quote(str(image))}"
