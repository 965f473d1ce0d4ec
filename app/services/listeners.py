"""A list of callbacks that one broken subscriber cannot break for the others."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Listeners:
    def __init__(self, what: str) -> None:
        self.what = what  # named in the log when a listener fails
        self._items: list[Callable[..., None]] = []

    def add(self, listener: Callable[..., None]) -> Callable[[], None]:
        """Register `listener`; returns the function that removes it (safe to call twice)."""
        self._items.append(listener)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._items.remove(listener)

        return remove

    def notify(self, *args: Any) -> None:
        for listener in list(self._items):
            try:
                listener(*args)
            except Exception:  # one broken page must not stop the others
                log.exception("%s listener failed", self.what)
