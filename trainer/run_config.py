"""The effective config as the trainer reads it: a read-only mapping that remembers which
keys were read, so a test can prove every active field is honored."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any


class RunConfig(Mapping[str, Any]):
    def __init__(self, values: Mapping[str, Any], label: str = "") -> None:
        self._values = {k: v for k, v in values.items() if k != "datasets"}
        self._label = label
        self.read: set[str] = set()
        self.datasets = [
            RunConfig(d, f"datasets[{i}]") for i, d in enumerate(values.get("datasets") or [])
        ]

    def __getitem__(self, key: str) -> Any:
        if key == "datasets":
            return self.datasets
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def plain(self) -> dict[str, Any]:
        """A plain dict (with datasets) that does not count as reading anything."""
        out = dict(self._values)
        out["datasets"] = [d.plain() for d in self.datasets]
        return out
