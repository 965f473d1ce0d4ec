"""Keep the UI server's memory flat under page loads.

A page's elements and its `Client` reference each other, so a deleted client is freed only by
the cyclic garbage collector. With a server's many long-lived objects CPython runs a full
collection rarely, so the trees of dozens of closed pages stayed allocated (the server grew
about 7 MB per 10 loads of '/'). `install(app)` therefore:

- freezes what exists once the server has started (modules, services, the field catalogue):
  later collections skip those objects, which keeps each one to a few milliseconds;
- after clients are deleted, runs one collection (a burst of deletions shares one, `DELAY_S`
  after the first) and hands freed heap back to the OS with glibc's `malloc_trim` where the
  C library has it.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
from typing import Any

DELAY_S = 1.0


def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None (musl, macOS, Windows)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None)
    except OSError:
        return None


class _Collector:
    def __init__(self) -> None:
        self.pending: asyncio.TimerHandle | None = None
        self.trim = _malloc_trim()

    def freeze(self) -> None:
        gc.collect()
        gc.freeze()

    def schedule(self) -> None:
        if self.pending is None:
            self.pending = asyncio.get_running_loop().call_later(DELAY_S, self.collect)

    def collect(self) -> None:
        self.pending = None
        gc.collect()
        if self.trim is not None:
            self.trim(0)


def install(app: Any) -> None:
    """Register the freeze on startup and the collection after client deletions on `app`."""
    collector = _Collector()
    app.on_startup(collector.freeze)
    app.on_delete(collector.schedule)
