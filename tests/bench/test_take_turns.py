"""The trainer bench's turn-taking: two loops in one process alternate every few steps, each
loop's step times leave out the time it waited for the other, and a failure in either loop
reaches the caller."""

from __future__ import annotations

import sys
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
    turns, log = TakeTurns("main", "side", turn_steps=2), []
    got = turns.run(
        lambda: _loop(turns, "m", log, 5, 0.002),
        lambda: _loop(turns, "s", log, 5, 0.03),
    )
    # The main loop starts once the side loop has loaded (its first hook); two steps a turn.
    assert log == ["m0", "m1", "s0", "s1", "m2", "m3", "s2", "s3", "m4", "s4"]
    assert [len(t) for t in got["main"]] == [len(t) for t in got["side"]] == [2, 2]
    # The main loop waited ~60 ms for each side turn; none of that is in its own steps.
    assert max(s for t in got["main"] for s in t) < min(s for t in got["side"] for s in t)


def test_a_failing_side_loop_reaches_the_caller_and_frees_the_main_loop() -> None:
    turns, log = TakeTurns("main", "side"), []

    def broken() -> None:
        turns.pre_hook()(None, ())
        raise RuntimeError("side loop broke")

    with pytest.raises(RuntimeError, match="side loop broke"):
        turns.run(lambda: _loop(turns, "m", log, 3, 0.0), broken)
    assert log == ["m0", "m1", "m2"]  # ran on alone once the side loop ended
