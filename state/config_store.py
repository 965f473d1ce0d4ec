"""Named configs on disk: one TOML file per name under configs_dir(), written atomically.

Values are kept exactly as given (sparse: a value equal to its default stays), via the
registry's TOML reader/writer so a config round-trips unchanged.

Creating a name that must not exist yet (save as, duplicate, rename) is atomic across
processes sharing one data dir: the file is written whole under a temp name and hard-linked
into place, which fails if the name exists, so of many racing creators exactly one wins and
the others get a clear "already exists".
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from registry.config_io import dumps_toml, load_config_file, save_config_file
from tunerdeck_common.paths import configs_dir

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
        self.root.mkdir(parents=True, exist_ok=True)
        if overwrite:
            save_config_file(path, config)  # atomic: temp file + os.replace
        else:
            self._create(path, dumps_toml(config).encode("utf-8"), name)
        return path

    def _create(self, path: Path, data: bytes, name: str) -> None:
        """Write `path` whole, only if it does not exist (atomically, across processes)."""
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.root)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise ConfigStoreError(f"a config named {name!r} already exists") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def delete(self, name: str) -> None:
        path = self.path_for(name)
        if not path.is_file():
            raise ConfigStoreError(f"there is no saved config named {name!r}")
        path.unlink()

    def rename(self, old: str, new: str) -> Path:
        source, target = self.path_for(old), self.path_for(new)
        if not source.is_file():
            raise ConfigStoreError(f"there is no saved config named {old!r}")
        try:
            os.link(source, target)  # fails if `new` exists, even if created just now
        except FileExistsError:
            raise ConfigStoreError(f"a config named {new!r} already exists") from None
        source.unlink()
        return target

    def duplicate(self, name: str, new: str) -> Path:
        return self.save(new, self.load(name), overwrite=False)
