"""Thumbnails and originals over HTTP: confined to the datasets root, with caching headers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.routes import datasets_api
from app.services.datasets import DatasetService
from tests.datasets.conftest import write_broken, write_image


@pytest.fixture
def client(datasets_root: Path, tmp_path: Path) -> Iterator[TestClient]:
    prefs = SimpleNamespace(prefs=SimpleNamespace(datasets_root=str(datasets_root)))
    app = FastAPI()
    app.state.services = SimpleNamespace(
        prefs=prefs, datasets=DatasetService(prefs, tmp_path / "thumbs")
    )
    app.include_router(datasets_api.router)
    yield TestClient(app)


def test_thumbnail_has_etag_and_revalidates(
    client: TestClient, make_folder: Callable[..., Path]
) -> None:
    image = make_folder("web", [(300, 200)]) / "img_000.png"
    first = client.get(datasets_api.thumbnail_url(image))
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    assert first.headers["etag"] and "must-revalidate" in first.headers["cache-control"]
    again = client.get(
        datasets_api.thumbnail_url(image), headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304 and not again.content
    versioned = client.get(datasets_api.thumbnail_url(image, "abc"))
    assert "immutable" in versioned.headers["cache-control"]
    assert (
        client.get(datasets_api.thumbnail_url(Path("web/img_000.png"))).content == first.content
    )  # root-relative
    original = client.get(datasets_api.image_url(image))
    assert original.status_code == 200 and original.content == image.read_bytes()


def test_escapes_are_refused(client: TestClient, datasets_root: Path, tmp_path: Path) -> None:
    outside = write_image(tmp_path / "private" / "secret.png", (50, 50))
    os.symlink(outside.parent, datasets_root / "sneaky")
    for path in ("../private/secret.png", "sneaky/secret.png", str(outside)):
        for url in (datasets_api.thumbnail_url(Path(path)), datasets_api.image_url(Path(path))):
            response = client.get(url)
            assert response.status_code == 403, (url, response.text)
            assert (
                "outside the datasets root" in response.json()["error"]
                or "'..'" in response.json()["error"]
            )
    (datasets_root / "notes.txt").write_text("caption")
    assert client.get(datasets_api.image_url(datasets_root / "notes.txt")).status_code == 404


def test_unreadable_image_is_a_clear_error(client: TestClient, datasets_root: Path) -> None:
    broken = write_broken(datasets_root / "bad.png", 0)
    response = client.get(datasets_api.thumbnail_url(broken))
    assert response.status_code == 422 and "bad.png cannot be read" in response.json()["error"]
