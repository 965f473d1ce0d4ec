"""SIGTERM/SIGINT: the first asks for a clean stop after the current step; a second one
exits at once."""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


class StopRequest:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            print("tunerdeck: second signal, exiting now", file=sys.stderr, flush=True)
            os._exit(128 + signum)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        print(
            f"tunerdeck: {self.signal_name} received, stopping after this step "
            "(send again to exit at once)",
            file=sys.stderr,
            flush=True,
        )
