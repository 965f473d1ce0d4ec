from __future__ import annotations

from pathlib import Path

import pytest

from tunerdeck_common import paths


def test_env_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUNERDECK_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TUNERDECK_WEB_UI_CONFIG", str(tmp_path / "prefs.json"))
    assert paths.data_dir() == tmp_path / "home"
    assert paths.configs_dir() == tmp_path / "home" / "configs"
    assert paths.default_output_root() == tmp_path / "home" / "runs"
    assert paths.default_datasets_root() == tmp_path / "home" / "datasets"
    assert paths.web_ui_config_path() == tmp_path / "prefs.json"


def test_platform_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNERDECK_HOME", raising=False)
    monkeypatch.delenv("TUNERDECK_WEB_UI_CONFIG", raising=False)
    assert paths.data_dir().name == "tunerdeck"
    assert paths.web_ui_config_path().name == "webui.json"
