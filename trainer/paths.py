"""Where the trainer keeps generated assets (demo model, demo dataset). platformdirs only."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def data_dir() -> Path:
    """$TUNERDECK_HOME, else the platform's user data dir for tunerdeck."""
    env = os.environ.get("TUNERDECK_HOME")
    return Path(env) if env else Path(platformdirs.user_data_dir("tunerdeck"))


def models_dir() -> Path:
    return data_dir() / "models"


def datasets_dir() -> Path:
    return data_dir() / "datasets"
