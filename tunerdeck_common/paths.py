"""Where tunerdeck keeps its files: one place so the server and the trainer agree on them.

`TUNERDECK_HOME` (with `~` expanded) overrides the platform's per-user data dir for both.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "tunerdeck"
# The demo model's folder name carries its version; bump it when the generator changes
# (2: the VAE is fitted to the demo images).
DEMO_MODEL_VERSION = 2


def data_dir() -> Path:
    """$TUNERDECK_HOME (`~` expanded), else the platform's per-user data dir."""
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


def models_dir() -> Path:
    """Generated models (the demo model)."""
    return data_dir() / "models"


def demo_model_path() -> Path:
    return models_dir() / f"demo-{DEMO_MODEL_VERSION}"


def is_demo_model_ready() -> bool:
    return (demo_model_path() / "model_index.json").exists()
