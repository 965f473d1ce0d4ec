"""When a periodic action (validation, a checkpoint) is due: every N steps, every N epochs.

Each epoch is exactly `steps_per_epoch` optimizer steps (gradient accumulation syncs at the
end of the loader), so an epoch ends exactly when the step count is a multiple of it; epochs
count from 1 here ("every 2nd epoch" is due after epochs 2, 4, ...). 0 turns an interval off.
"""

from __future__ import annotations


def due(step: int, steps_per_epoch: int, step_interval: int, epoch_interval: int) -> bool:
    """True after optimizer step `step` (counted from 1) when either interval is reached."""
    if step <= 0:
        return False
    if step_interval > 0 and step % step_interval == 0:
        return True
    if epoch_interval > 0 and steps_per_epoch > 0 and step % steps_per_epoch == 0:
        return (step // steps_per_epoch) % epoch_interval == 0
    return False
