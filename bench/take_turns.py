"""Two training loops in one process, taking turns every few steps.

On a shared machine the speed of the cores drifts over seconds (other tenants, other
processes): two loops run one after the other see different machines, and ratios of their
step times swing by ±10% from run to run. Taking turns every `turn_steps` steps (well under a
second) puts both loops in the same seconds, so drift cancels in their ratio.

Contract: each loop's denoiser gets `pre_hook()` as a forward pre-hook (the model is built in
the loop's own thread, which names the loop). A step's time is everything the loop did between
two denoiser calls (data, encoding, forward, backward, optimizer, bookkeeping, events). Every
`turn_steps` steps the loop hands the turn to the other one and waits for it back; `turns`
holds each loop's step times grouped by turn. The first step of a turn pays for the switch
(caches the other loop evicted, its thread pool's workers still spinning): compare the later
ones. Work left in background threads may fall into either loop's steps. A loop that ends (or
fails) gives up its turns for good, so the other runs on alone. The side loop starts only once
the main loop reaches its first step: model loading is not thread-safe (libraries patch module
constructors while they build models on the meta device), so the loops load one at a time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class TakeTurns:
    def __init__(self, main: str, side: str, turn_steps: int = 8) -> None:
        """`main` runs in the calling thread (it may install signal handlers), `side` in a
        thread of its own."""
        self.main, self.side, self.turn_steps = main, side, turn_steps
        self.turns: dict[str, list[list[float]]] = {main: [], side: []}
        self._cond = threading.Condition()
        self._turn = main
        self._done: set[str] = set()
        self._main_ready = threading.Event()

    def _other(self, name: str) -> str:
        return self.side if name == self.main else self.main

    def _name(self) -> str:
        return self.main if threading.current_thread() is threading.main_thread() else self.side

    def pre_hook(self) -> Callable[..., None]:
        """A forward pre-hook for a denoiser built in the current thread."""
        name, other = self._name(), self._other(self._name())
        calls, started = 0, 0.0
        current: list[float] = []  # this turn's step times

        def hook(module: Any, args: Any) -> None:
            nonlocal calls, started, current
            now = time.perf_counter()
            self._main_ready.set()
            calls += 1
            if calls > 1:
                current.append(now - started)
            if (calls - 1) % self.turn_steps == 0:  # the first call: the other loop loads
                if current:
                    self.turns[name].append(current)
                    current = []
                with self._cond:
                    self._turn = other
                    self._cond.notify_all()
                    self._cond.wait_for(lambda: self._turn == name or other in self._done)
            started = time.perf_counter()

        return hook

    def _finish(self, name: str) -> None:
        with self._cond:
            self._done.add(name)
            self._turn = self._other(name)
            self._cond.notify_all()

    def run(
        self, main: Callable[[], None], side: Callable[[], None]
    ) -> dict[str, list[list[float]]]:
        """Run both loops to the end; returns each loop's step times (seconds) by turn."""
        failed: list[BaseException] = []

        def side_loop() -> None:
            self._main_ready.wait()
            try:
                if self.main not in self._done:
                    side()
            except BaseException as exc:  # re-raised in the calling thread below
                failed.append(exc)
            finally:
                self._finish(self.side)

        thread = threading.Thread(target=side_loop, name=self.side)
        thread.start()
        try:
            main()
        finally:
            self._finish(self.main)
            self._main_ready.set()
            thread.join()
        if failed:
            raise failed[0]
        return self.turns
