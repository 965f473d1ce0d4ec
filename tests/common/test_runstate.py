"""What each run state allows: one table the server, the run bar and the monitor share."""

from __future__ import annotations

from typing import get_args

from tunerdeck_common.events import LifecycleState
from tunerdeck_common.runstate import LIFECYCLE_STATES, RunState


def test_properties_of_every_state() -> None:
    table = {
        # state: (active, final, can_stop, can_resume)
        "queued": (False, False, True, False),
        "starting": (True, False, True, False),
        "running": (True, False, True, False),
        "stopping": (True, False, False, False),
        "stopped": (False, True, False, True),
        "completed": (False, True, False, False),
        "failed": (False, True, False, True),
        "damaged": (False, False, False, False),
    }
    assert {s.value for s in RunState} == set(table)
    for state in RunState:
        got = (state.is_active, state.is_final, state.can_stop, state.can_resume)
        assert got == table[state.value], state


def test_states_read_back_from_json_strings() -> None:
    assert RunState("running").is_active
    assert RunState.STOPPED == "stopped"  # records and API payloads keep plain strings
    assert f"{RunState.FAILED}" == "failed"


def test_the_trainer_reports_exactly_the_lifecycle_states() -> None:
    assert set(get_args(LifecycleState)) == set(LIFECYCLE_STATES)
    assert not any(RunState(s) in (RunState.QUEUED, RunState.DAMAGED) for s in LIFECYCLE_STATES)
