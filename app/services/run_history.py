"""RunHistory: every run this server knows. Records are on disk (state.run_records); each run
is in memory as a RunLive, kept up to date from its folder (events.jsonl, trainer.log) and
from the callbacks (`ingest`). Finished runs let go of their events once they are no longer
among the few looked at last, so memory does not grow with the history.
"""

from __future__ import annotations

import collections
import logging
import shutil
import time
from collections.abc import Callable, Container
from pathlib import Path
from typing import Any

from app.services.event_bus import EventBus, LogLine
from app.services.run_follow import RunFollower
from app.services.run_live import RunLive, checkpoints_on_disk, log_tail
from app.services.run_rebuild import rebuild_record
from app.services.run_service import CheckpointInfo, RunDetail, RunError
from state.run_records import RunRecord, RunRecordStore
from tunerdeck_common.events import Event, read_events

log = logging.getLogger(__name__)

SAVE_EVERY_S = 2.0
KEEP_LOADED_FINISHED = 4  # finished runs whose events stay in memory (the rest: on disk)


class RunHistory:
    def __init__(
        self, bus: EventBus, records: RunRecordStore, keep_finished: int = KEEP_LOADED_FINISHED
    ) -> None:
        self.bus = bus
        self.records = records
        self.keep_finished = keep_finished  # finished runs whose events stay in memory
        self.runs: dict[str, RunLive] = {}
        self._followers: dict[str, RunFollower] = {}
        # Finished runs whose events are held in memory, least recently looked at first.
        self._loaded_finished: collections.OrderedDict[str, None] = collections.OrderedDict()

    # ---- what is known ----------------------------------------------------------------------
    def read_records(self, output_roots: list[Path]) -> None:
        """Every record on disk; one that cannot be read is set aside and rebuilt from its
        run folder (looked for under `output_roots`)."""
        records, unreadable = self.records.scan()
        for record in records:
            self.runs[record.id] = RunLive(record)
        for run_id, reason in unreadable.items():
            self.records.set_aside(run_id)
            self.add(rebuild_record(run_id, reason, output_roots), loaded=False)

    def add(self, record: RunRecord, *, loaded: bool = True) -> RunLive:
        live = RunLive(record)
        live.loaded = loaded
        self.runs[record.id] = live
        self.save(live)
        return live

    def live(self, run_id: str) -> RunLive:
        live = self.runs.get(run_id)
        if live is None:
            raise RunError(f"There is no run {run_id!r}. GET /api/runs lists the runs.", 404)
        return live

    def newest_first(self) -> list[RunLive]:
        return sorted(self.runs.values(), key=lambda live: -live.record.created_at)

    def known(self, run_id: str) -> bool:
        return run_id in self.runs

    def token_of(self, run_id: str) -> str | None:
        live = self.runs.get(run_id)
        return live.record.token if live else None

    def save(self, live: RunLive) -> None:
        live.saved_at = time.time()
        try:
            self.records.save(live.record)
        except OSError as exc:  # disk full: keep running, say so in the log
            log.warning("cannot save run record %s: %s", live.record.id, exc)

    def save_all(self) -> None:
        for live in self.runs.values():
            self.save(live)

    def forget(self, run_id: str) -> None:
        """The run, its record and its folder, gone."""
        live = self.runs.pop(run_id)
        self._followers.pop(run_id, None)
        self._loaded_finished.pop(run_id, None)
        self.bus.forget(run_id)
        self.records.delete(run_id)
        if live.record.run_dir and Path(live.record.run_dir).is_dir():
            shutil.rmtree(live.record.run_dir, ignore_errors=True)

    # ---- events -----------------------------------------------------------------------------
    def ingest(self, event: Event) -> bool:
        """One event from a callback or the file; False when unknown run or already seen."""
        live = self.runs.get(event.run_id)
        if live is None or not self.bus.publish(event):
            return False
        if live.apply(event) or time.time() - live.saved_at > SAVE_EVERY_S:
            self.save(live)
        return True

    def _seen(self, run_id: str, seq: Any) -> bool:
        return isinstance(seq, int) and self.bus.seen(run_id, seq)

    def follower(self, live: RunLive) -> RunFollower:
        follower = self._followers.get(live.record.id)
        if follower is None:
            follower = self._followers[live.record.id] = RunFollower(Path(live.record.run_dir))
        return follower

    def poll_files(self, live: RunLive) -> None:
        """What the trainer wrote since the last poll: events (published once) and lines."""
        follower = self.follower(live)
        for event in follower.poll_events(self._seen):
            self.ingest(event)
        for text in follower.poll_lines():
            line = LogLine(live.record.id, text)
            live.add_line(line)
            self.bus.publish_line(line)

    def load(self, live: RunLive, *, publish: bool) -> None:
        """Read a run's events.jsonl in: published (live runs) or only folded (history)."""
        if live.loaded or not live.record.run_dir:  # (a damaged run with no folder: nothing)
            return
        if publish and self.bus.last_seq(live.record.id) > 0:
            # Resuming a run whose history was let go: the bus has seen those events, so fold
            # them in quietly first; only new ones are published.
            self.load(live, publish=False)
            return
        live.loaded = True
        follower = self.follower(live)
        if publish:
            self.poll_files(live)
            return
        for event in follower.poll_events():
            live.apply(event)
        self.bus.mark_seen(live.record.id, live.record.last_seq)
        follower.skip_log_to_end()
        for text in log_tail(follower.log_path, 200):
            live.add_line(
                LogLine(live.record.id, text, ts=live.record.ended_at or live.record.created_at)
            )

    def emit_server_event(self, live: RunLive, type_: str, data: dict[str, Any]) -> None:
        """An event written by the server itself, only when no trainer process is alive."""
        follower = self.follower(live)
        seq = max(self.bus.last_seq(live.record.id), live.record.last_seq) + 1
        event = Event(run_id=live.record.id, seq=seq, ts=time.time(), type=type_, data=data)
        follower.append(event)
        follower.poll_events()  # move past what we just wrote
        self.ingest(event)

    def keep_loaded(self, live: RunLive, running: Container[str]) -> None:
        """Hold a finished run's events in memory while it is among the few looked at last;
        older ones are let go (read again from events.jsonl when opened)."""
        run_id = live.record.id
        if not live.record.state.is_final or run_id in running:
            return
        self._loaded_finished[run_id] = None
        self._loaded_finished.move_to_end(run_id)
        while len(self._loaded_finished) > self.keep_finished:
            old_id, _ = self._loaded_finished.popitem(last=False)
            old = self.runs.get(old_id)
            if old is not None and old.record.state.is_final and old_id not in running:
                self.runs[old_id] = RunLive(old.record)
                self._followers.pop(old_id, None)

    # ---- reading ----------------------------------------------------------------------------
    def events_after(self, run_id: str, seq: int) -> list[Event]:
        live = self.live(run_id)
        path = self.follower(live).events_path
        try:
            if live.record.run_dir and path.exists():
                return read_events(path, seq)
        except (OSError, ValueError) as exc:  # a damaged record's folder
            log.warning("run %s: its events cannot be read: %s", run_id, exc)
        return [e for e in self.bus.tail(run_id) if e.seq > seq]

    def detail(
        self,
        run_id: str,
        info: Callable[[RunLive], Any],
        running: Container[str],
        include_progress: bool,
    ) -> RunDetail:
        """Everything the monitor draws; `info(live)` is the run's RunInfo."""
        live = self.live(run_id)
        checkpoints: list[CheckpointInfo] = []
        try:
            self.load(live, publish=False)
            if live.record.run_dir:
                checkpoints = checkpoints_on_disk(Path(live.record.run_dir))
        except (OSError, ValueError) as exc:  # a damaged record's folder: show what there is
            live.loaded = True
            log.warning("run %s: its folder cannot be read: %s", run_id, exc)
        self.keep_loaded(live, running)
        return RunDetail(
            run=info(live),
            progress=live.progress.models() if include_progress else [],
            validations=live.validation_steps(),
            evals=live.eval_points(),
            checkpoints=checkpoints,
            logs=list(live.logs)[-500:],
        )
