"""The trainer bench's turn-taking: two loops in one process alternate every few steps, each
loop's step times leave out the time it waited for the other, and a failure in either loop
reaches the caller."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from take_turns import TakeTurns


def _loop(turns: TakeTurns, name: str, log: list[str], steps: int, work_s: float) -> None:
    """A stand-in training loop: one forward pre-hook call per step, then the step's work."""
    hook = turns.pre_hook()
    for i in range(steps):
        hook(None, ())
        log.append(f"{name}{i}")
        time.sleep(work_s)  # the step's work


def test_loops_alternate_by_turns_and_time_only_their_own_steps() -> None:
    turns, log = TakeTurns("first", "second", turn_steps=2), []
    got = turns.run(
        lambda: _loop(turns, "m", log, 5, 0.002),
        lambda: _loop(turns, "s", log, 5, 0.03),
    )
    # The first loop steps once the second has loaded (its first hook); two steps a turn.
    assert log == ["m0", "m1", "s0", "s1", "m2", "m3", "s2", "s3", "m4", "s4"]
    assert [len(t) for t in got["first"]] == [len(t) for t in got["second"]] == [2, 2]
    # The first loop waited ~60 ms for each of the second's turns; none of that is in its steps.
    assert max(s for t in got["first"] for s in t) < min(s for t in got["second"] for s in t)


def test_neither_loop_runs_in_the_main_thread() -> None:
    """The main thread ran the same loop measurably slower: neither side may get it."""
    turns, seen = TakeTurns("first", "second"), set()

    def loop() -> None:
        seen.add(threading.current_thread() is threading.main_thread())
        _loop(turns, "x", [], 2, 0.0)

    turns.run(loop, loop)
    assert seen == {False}


def test_a_failing_loop_reaches_the_caller_and_frees_the_other() -> None:
    turns, log = TakeTurns("first", "second"), []

    def broken() -> None:
        turns.pre_hook()(None, ())
        raise RuntimeError("second loop broke")

    with pytest.raises(RuntimeError, match="second loop broke"):
        turns.run(lambda: _loop(turns, "m", log, 3, 0.0), broken)
    assert log == ["m0", "m1", "m2"]  # ran on alone once the second loop ended


def test_a_first_loop_failing_while_loading_never_starts_the_second() -> None:
    turns, log = TakeTurns("first", "second"), []

    def broken() -> None:
        raise RuntimeError("model did not load")

    with pytest.raises(RuntimeError, match="model did not load"):
        turns.run(broken, lambda: _loop(turns, "s", log, 3, 0.0))
    assert log == []
