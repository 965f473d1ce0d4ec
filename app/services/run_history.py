"""RunHistory: every run this server knows. Records are on disk (state.run_records); each run
is in memory as a RunLive, kept up to date from its folder (events.jsonl, trainer.log) and
from the callbacks (`ingest`). Finished runs let go of their events once they are no longer
among the few looked at last, so memory does not grow with the history. Opening such a run
reads its events.jsonl again (`fold_history`: progress lines of the trainer's exact shape are
folded without building a validated Event each, which is what made a 100k-step run slow).
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import shutil
import time
from collections.abc import Callable, Container, Iterator
from pathlib import Path
from typing import Any

from app.services.event_bus import EventBus, LogLine
from app.services.run_follow import RunFollower
from app.services.run_live import RunLive, checkpoints_on_disk, log_tail
from app.services.run_rebuild import rebuild_record
from app.services.run_service import CheckpointInfo, RunDetail, RunError
from state.run_records import RunRecord, RunRecordStore
from tunerdeck_common.events import Event, EventError, parse_event, read_events

log = logging.getLogger(__name__)

SAVE_EVERY_S = 2.0
NAN = float("nan")
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
        fold_history(live, follower)
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


# ---- reading a history run fast ------------------------------------------------------------
_FLOAT_OR_NONE = (float, int, type(None))


def _plain_progress(raw: Any) -> bool:
    """True for a progress event whose every key already has the exact type the contract asks
    for (what the trainer writes): such a line is valid without pydantic, which would cost ~50
    µs a line (seconds for a 100k-step run). Anything else goes through `parse_event`."""
    if type(raw) is not dict or raw.get("type") != "progress":
        return False
    data, seq, run_id = raw.get("data"), raw.get("seq"), raw.get("run_id")
    if type(data) is not dict or type(seq) is not int or seq < 1 or type(run_id) is not str:
        return False
    step, max_steps = data.get("step"), data.get("max_steps")
    return (
        raw.get("v", 1) == 1
        and type(raw.get("v", 1)) is int
        and 0 < len(run_id) <= 200
        and type(raw.get("ts")) in (float, int)
        and type(step) is int
        and step >= 0
        and type(max_steps) is int
        and max_steps >= 0
        and type(data.get("epoch", 0)) is int
        and type(data.get("loss")) in _FLOAT_OR_NONE
        and type(data.get("lr")) in _FLOAT_OR_NONE
        and type(data.get("it_per_s")) in _FLOAT_OR_NONE
        and type(data.get("eta_s")) in _FLOAT_OR_NONE
    )


def fold_history(live: RunLive, follower: RunFollower) -> None:
    """Fold the complete lines of a run's events.jsonl (from the follower's offset) into `live`,
    as `live.apply` would each event, without building an Event per progress line. A last line
    without its newline (torn by a crash, or still being written) is left for the next read;
    a line that is not a valid event is skipped, as the follower does."""
    rec, series = live.record, live.progress
    steps, losses, lrs, stamps = series.steps, series.losses, series.lrs, series.ts
    newest: dict[str, Any] | None = None  # data of the newest progress event not yet folded in
    newest_loss: Any = None
    last_seq = rec.last_seq

    def settle() -> None:
        # The record fields the progress events set, once, from the newest of them.
        nonlocal newest, newest_loss
        if newest is not None:
            rec.step, rec.max_steps = newest["step"], newest["max_steps"]
            if newest_loss is not None:
                rec.loss = float(newest_loss)
            live.lr, live.it_per_s, live.eta_s = (
                newest.get("lr"),
                newest.get("it_per_s"),
                newest.get("eta_s"),
            )
        newest = newest_loss = None
        if last_seq > rec.last_seq:
            rec.last_seq = last_seq

    try:
        handle = follower.events_path.open("rb")
    except OSError:
        return
    with handle:
        handle.seek(follower.events_offset)
        for raw in _decoded_lines(handle, follower):
            if _plain_progress(raw):
                seq, data = raw["seq"], raw["data"]
                last_seq = max(last_seq, seq)
                step, loss, lr = data["step"], data.get("loss"), data.get("lr")
                if seq < live.progress_seq:  # a gap filled late: slot it in
                    series.insert(step, loss, lr, float(raw["ts"]))
                    continue
                live.progress_seq = seq
                newest = data
                if loss is not None:
                    newest_loss = loss
                if steps and step <= steps[-1]:  # a resumed attempt: the general path cuts
                    series.append(step, loss, lr, float(raw["ts"]))
                else:
                    steps.append(step)
                    losses.append(NAN if loss is None else loss)
                    lrs.append(NAN if lr is None else lr)
                    stamps.append(raw["ts"])
                continue
            try:
                event = parse_event(raw)
            except (ValueError, TypeError, EventError):
                continue
            settle()
            live.apply(event)
            last_seq = rec.last_seq
    settle()


_BATCH_LINES = 2048  # decoded at once: one json.loads per batch, not per line


def _decoded_lines(handle: Any, follower: RunFollower) -> Iterator[Any]:
    """The JSON value of each complete line from the handle's position (a line that is not
    JSON is skipped), moving `follower.events_offset` past each batch read; a last line
    without its newline is not read."""
    while True:
        lines = list(itertools.islice(handle, _BATCH_LINES))
        if lines and not lines[-1].endswith(b"\n"):
            lines.pop()  # torn (or still being written): read again once it is complete
            if not lines:
                return
        if not lines:
            return
        follower.events_offset += sum(map(len, lines))
        lines = [line for line in lines if line.strip()]
        try:
            batch = json.loads(b"[" + b",".join(lines) + b"]")
        except ValueError:
            batch = []
        if len(batch) != len(lines):  # a damaged line in this batch: one at a time
            batch = []
            for line in lines:
                try:
                    batch.append(json.loads(line))
                except ValueError:
                    continue
        yield from batch
