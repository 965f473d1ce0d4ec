"""Fixtures for every test: a private data dir, so no test reads or writes the user's own.

`tunerdeck_home` (autouse) points TUNERDECK_HOME at an empty `home` folder and the web UI's
preferences file at a `webui.json` beside it, in a fresh folder per test (not in `tmp_path`).
Session-scoped fixtures run before it, under `session_home` (autouse too), so they never see the real data dir either.
`shared_models` is one models folder for the session (the demo model is generated once);
`link_shared_models(home)` makes it a test home's models folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def _point_at(monkeypatch: pytest.MonkeyPatch, home: Path, prefs: Path) -> None:
    monkeypatch.setenv("TUNERDECK_HOME", str(home))
    monkeypatch.setenv("TUNERDECK_WEB_UI_CONFIG", str(prefs))


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as monkeypatch:
        _point_at(monkeypatch, home, home / "webui.json")
        yield home


@pytest.fixture(autouse=True)
def tunerdeck_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    # Beside the test's tmp_path, not in it: tests that check what a failed write left in
    # tmp_path see only their own files.
    base = tmp_path_factory.mktemp("env")
    home = base / "home"
    home.mkdir()
    _point_at(monkeypatch, home, base / "webui.json")
    return home


@pytest.fixture(scope="session")
def shared_models(session_home: Path) -> Path:
    models = session_home / "models"
    models.mkdir(exist_ok=True)
    return models


def link_shared_models(home: Path, shared_models: Path) -> None:
    (home / "models").symlink_to(shared_models, target_is_directory=True)
