"""Named configs on disk: one TOML file per name under configs_dir(), written atomically.

Values are kept exactly as given (sparse: a value equal to its default stays), via the
registry's TOML reader/writer so a config round-trips unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from registry.config_io import load_config_file, save_config_file
from state.paths import configs_dir

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.\-]{0,79}$")


class ConfigStoreError(ValueError):
    """A bad name, a missing config or a clash; the message is for the user."""


class ConfigStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else configs_dir()

    @staticmethod
    def check_name(name: str) -> str:
        name = name.strip()
        if not _NAME.match(name) or name.endswith(".") or ".." in name:
            raise ConfigStoreError(
                f"{name!r} is not a usable config name: use letters, digits, spaces, '_', '-' "
                "or '.', starting with a letter or digit (at most 80 characters)"
            )
        return name

    def path_for(self, name: str) -> Path:
        return self.root / f"{self.check_name(name)}.toml"

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted((p.stem for p in self.root.glob("*.toml")), key=str.lower)

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def load(self, name: str) -> dict[str, Any]:
        """The saved config; raises ConfigStoreError if absent, ConfigFileError if broken."""
        path = self.path_for(name)
        if not path.is_file():
            raise ConfigStoreError(f"there is no saved config named {name!r}")
        return load_config_file(path)

    def save(self, name: str, config: dict[str, Any], *, overwrite: bool = True) -> Path:
        path = self.path_for(name)
        if not overwrite and path.exists():
            raise ConfigStoreError(f"a config named {name!r} already exists")
        self.root.mkdir(parents=True, exist_ok=True)
        save_config_file(path, config)  # atomic: temp file + os.replace
        return path

    def delete(self, name: str) -> None:
        path = self.path_for(name)
        if not path.is_file():
            raise ConfigStoreError(f"there is no saved config named {name!r}")
        path.unlink()

    def rename(self, old: str, new: str) -> Path:
        source, target = self.path_for(old), self.path_for(new)
        if not source.is_file():
            raise ConfigStoreError(f"there is no saved config named {old!r}")
        if target.exists():
            raise ConfigStoreError(f"a config named {new!r} already exists")
        source.rename(target)
        return target

    def duplicate(self, name: str, new: str) -> Path:
        return self.save(new, self.load(name), overwrite=False)
