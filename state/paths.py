"""Where tunerdeck keeps its files: one place so every part agrees on the locations."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunerdeck"


def data_dir() -> Path:
    """$TUNERDECK_HOME, else the platform's per-user data dir."""
    home = os.environ.get("TUNERDECK_HOME")
    return Path(home).expanduser() if home else Path(platformdirs.user_data_dir(APP_NAME))


def web_ui_config_path() -> Path:
    """$TUNERDECK_WEB_UI_CONFIG, else webui.json in the platform's per-user config dir."""
    explicit = os.environ.get("TUNERDECK_WEB_UI_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME)) / "webui.json"


def configs_dir() -> Path:
    return data_dir() / "configs"


def default_output_root() -> Path:
    return data_dir() / "runs"


def default_datasets_root() -> Path:
    return data_dir() / "datasets"
