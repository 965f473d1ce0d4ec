"""Two training loops in one process, taking turns every few steps.

On a shared machine the speed of the cores drifts over seconds (other tenants, other
processes): two loops run one after the other see different machines, and ratios of their
step times swing by ±10% from run to run. Taking turns every `turn_steps` steps (well under a
second) puts both loops in the same seconds, so drift cancels in their ratio.

Contract: each loop runs in a thread of its own, never in the process's main thread: the same
loop ran about 2% slower in the main thread than in another thread (median of 40 paired
blocks, three runs, identical bare loops on both sides; with both in threads of their own the
median was 0.999), which would bias every comparison against the loop placed there. Each
loop's denoiser gets `pre_hook()` as a forward pre-hook (the model is built in the loop's own
thread, which names the loop). A step's time is everything the loop did between two denoiser
calls (data, encoding, forward, backward, optimizer, bookkeeping, events). Every `turn_steps`
steps the loop hands the turn to the other one and waits for it back; `turns` holds each
loop's step times grouped by turn. The first step of a turn pays for the switch (caches the
other loop evicted, its thread pool's workers still spinning): compare the later ones. Work
left in background threads may fall into either loop's steps. A loop that ends (or fails)
gives up its turns for good, so the other runs on alone. The second loop starts only once the
first reaches its first step: model loading is not thread-safe (libraries patch module
constructors while they build models on the meta device), so the loops load one at a time.
Loops that install signal handlers cannot run here (Python allows that only in the main
thread): the caller disables that for the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class TakeTurns:
    def __init__(self, first: str, second: str, turn_steps: int = 8) -> None:
        """`first` loads and steps first; `second` loads once `first` reaches its first step."""
        self.first, self.second, self.turn_steps = first, second, turn_steps
        self.turns: dict[str, list[list[float]]] = {first: [], second: []}
        self._cond = threading.Condition()
        self._turn = first
        self._done: set[str] = set()
        self._first_ready = threading.Event()
        self._names: dict[threading.Thread, str] = {}

    def _other(self, name: str) -> str:
        return self.second if name == self.first else self.first

    def pre_hook(self) -> Callable[..., None]:
        """A forward pre-hook for a denoiser built in one of the loops' threads."""
        name = self._names[threading.current_thread()]
        other = self._other(name)
        calls, started = 0, 0.0
        current: list[float] = []  # this turn's step times

        def hook(module: Any, args: Any) -> None:
            nonlocal calls, started, current
            now = time.perf_counter()
            self._first_ready.set()
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
        self._first_ready.set()

    def run(
        self, first: Callable[[], None], second: Callable[[], None]
    ) -> dict[str, list[list[float]]]:
        """Run both loops to the end; returns each loop's step times (seconds) by turn. A
        failure in either loop is raised here once both have ended."""
        failed: list[BaseException] = []

        def loop(name: str, work: Callable[[], None]) -> None:
            try:
                if name == self.second:
                    self._first_ready.wait()
                if self._other(name) not in self._done:
                    work()
            except BaseException as exc:  # re-raised in the calling thread below
                failed.append(exc)
            finally:
                self._finish(name)

        threads = [
            threading.Thread(target=loop, args=(name, work), name=name)
            for name, work in ((self.first, first), (self.second, second))
        ]
        for thread in threads:
            self._names[thread] = thread.name
            thread.start()
        for thread in threads:
            thread.join()
        if failed:
            raise failed[0]
        return self.turns
