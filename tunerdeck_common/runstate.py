"""The states of a run, and what each allows; the server's records, the run bar, the monitor
and the trainer's lifecycle events all use these.

A run starts `queued` (server side), the trainer reports `starting`, `running`, `stopping`,
then one final state: `stopped` (resumable), `completed` or `failed`. `damaged` marks a
record the server could not read back.
"""

from __future__ import annotations

from enum import StrEnum


class RunState(StrEnum):
    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    COMPLETED = "completed"
    FAILED = "failed"
    DAMAGED = "damaged"

    @property
    def is_active(self) -> bool:
        """A trainer process is (or should be) alive for the run."""
        return self in _ACTIVE

    @property
    def is_final(self) -> bool:
        """The run ended; no event will change its state except a resume."""
        return self in _FINAL

    @property
    def can_stop(self) -> bool:
        return self in _STOPPABLE

    @property
    def can_resume(self) -> bool:
        """Resumable when a checkpoint exists too (the caller checks that)."""
        return self in _RESUMABLE


_ACTIVE = frozenset({RunState.STARTING, RunState.RUNNING, RunState.STOPPING})
_FINAL = frozenset({RunState.STOPPED, RunState.COMPLETED, RunState.FAILED})
_STOPPABLE = frozenset({RunState.QUEUED, RunState.STARTING, RunState.RUNNING})
_RESUMABLE = frozenset({RunState.STOPPED, RunState.FAILED})

# The states a trainer reports in lifecycle events (queued and damaged are the server's).
LIFECYCLE_STATES = tuple(s.value for s in RunState if s not in (RunState.QUEUED, RunState.DAMAGED))
