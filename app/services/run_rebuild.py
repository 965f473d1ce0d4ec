"""A run whose record file cannot be read is rebuilt from its run folder, or kept in sight.

The run folder holds what matters: `run.toml` (the config the run started with), `events.jsonl`
(its whole history) and its checkpoints and weights. `rebuild_record` finds the folder under
the output roots by the run's id (each run's folder is named after it), folds the events into
a fresh record and says so in its message. When the folder or its config cannot be found or
read, the record is a `damaged` placeholder that names the reason and the folder (if found),
so the run stays listed and its files reachable; it can still be deleted.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from app.services.run_launch import RUN_CONFIG_FILE
from app.services.run_live import RunLive
from registry.config_io import ConfigFileError, load_config_file
from state.run_records import RunRecord
from tunerdeck_common.events import read_events
from tunerdeck_common.runstate import RunState

log = logging.getLogger(__name__)

SEARCH_DEPTH = 4  # output_dir may nest the run folder a few levels under the output root


def find_run_dir(run_id: str, roots: Iterable[Path]) -> Path | None:
    """The folder named `run_id` that holds a run's files, under one of `roots`."""
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        base_depth = len(root.parts)
        for folder, dirs, _files in os.walk(root):
            here = Path(folder)
            if here.name == run_id and any(
                (here / name).exists() for name in (RUN_CONFIG_FILE, "events.jsonl", "checkpoints")
            ):
                return here
            if len(here.parts) - base_depth >= SEARCH_DEPTH:
                dirs[:] = []
            else:
                # A run folder's own contents (checkpoints, images) hold no other run.
                dirs[:] = [d for d in dirs if not d.startswith(("checkpoint", "."))]
    return None


def damaged_record(run_id: str, reason: str, run_dir: Path | None) -> RunRecord:
    where = f"its folder is {run_dir}" if run_dir else "no run folder was found for it"
    created = run_dir.stat().st_mtime if run_dir and run_dir.exists() else 0.0
    return RunRecord(
        id=run_id,
        state=RunState.DAMAGED,
        run_dir=str(run_dir or ""),
        created_at=created,
        message=f"Damaged: the run record {reason}, and {where}. Delete the run to remove it.",
    )


def rebuild_record(run_id: str, reason: str, roots: Iterable[Path]) -> RunRecord:
    """A record rebuilt from the run folder, or a `damaged` one naming what is missing."""
    run_dir = find_run_dir(run_id, roots)
    if run_dir is None:
        return damaged_record(run_id, reason, None)
    try:
        config = load_config_file(run_dir / RUN_CONFIG_FILE)
    except (ConfigFileError, OSError, ValueError) as exc:
        return damaged_record(
            run_id, f"{reason} and its {RUN_CONFIG_FILE} cannot be read ({exc})", run_dir
        )
    events = read_events(run_dir / "events.jsonl")
    first_ts = events[0].ts if events else run_dir.stat().st_mtime
    record = RunRecord(
        id=run_id,
        state=RunState.STOPPED,
        config=config,
        run_dir=str(run_dir),
        token=secrets.token_urlsafe(24),
        created_at=first_ts,
        started_at=first_ts if events else None,
        attempts=sum(
            1 for e in events if e.type == "lifecycle" and e.data.get("state") == "starting"
        ),
    )
    live = RunLive(record)
    for event in events:
        try:
            live.apply(event)
        except (KeyError, TypeError, ValueError):
            continue  # one odd event does not stop the rebuild
    note = f"The run record {reason}; it was rebuilt from the run folder."
    if record.state.is_active or record.state == RunState.QUEUED:
        # Which process trained it is lost with the record: treat it as ended.
        record.state = RunState.FAILED
        record.message = f"{note} Its trainer is not watched any more; resume it if needed."
    else:
        record.message = f"{note} {record.message}".strip()
    record.ended_at = record.ended_at or (events[-1].ts if events else first_ts)
    log.warning("run %s: record rebuilt from %s (%s)", run_id, run_dir, reason)
    return record
