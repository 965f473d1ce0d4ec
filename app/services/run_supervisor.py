"""LocalRunService: runs `python -m trainer` subprocesses on this machine, one at a time, with
a queue; follows their files; stops them cleanly; finds them again after a server restart.

Trainer output goes straight to RUN_DIR/trainer.log (not a pipe), so a trainer survives the
server going away; the server follows that file and events.jsonl.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.event_bus import EventBus, LogLine
from app.services.events import Event, read_events
from app.services.listeners import Listeners
from app.services.run_follow import RunFollower
from app.services.run_launch import (
    LOG_FILE,
    PROJECT_ROOT,
    RUN_CONFIG_FILE,
    create_time_of,
    kill_group,
    process_matches,
    request_stop,
    trainer_command,
    trainer_env,
)
from app.services.run_live import RunLive, checkpoints_on_disk, has_checkpoint, log_tail
from app.services.run_rebuild import rebuild_record
from app.services.run_service import (
    CheckpointInfo,
    RunDetail,
    RunError,
    RunFile,
    RunInfo,
    file_in_run,
)
from registry.config_io import ConfigFileError, save_config_file
from registry.evaluator import PlatformContext
from registry.validation import validate_config
from state.config_store import ConfigStore, ConfigStoreError
from state.paths import default_datasets_root, default_output_root
from state.run_records import ACTIVE_STATES, FINAL_STATES, RunRecord, RunRecordStore
from state.web_ui_state import WebUIStateStore

log = logging.getLogger(__name__)

SAVE_EVERY_S = 2.0
KEEP_LOADED_FINISHED = 4  # finished runs whose events stay in memory (the rest: on disk)


@dataclass
class _Process:
    pid: int
    wait_task: asyncio.Task[int] | None  # None when re-attached (not our child): psutil polls
    watcher: asyncio.Task[None] | None = None
    stop_requested_at: float | None = None
    killed_after_grace: bool = False
    killed_on_request: bool = False


class LocalRunService:
    def __init__(
        self,
        bus: EventBus,
        records: RunRecordStore,
        configs: ConfigStore,
        prefs: WebUIStateStore,
        platform: PlatformContext | None = None,
        *,
        callback_url: str | None = None,
        stop_grace_s: float = 120.0,
        poll_interval_s: float = 0.25,
        max_parallel: int = 1,
        command_builder: Callable[[dict[str, Any], Path, bool], list[str]] | None = None,
    ) -> None:
        self.bus = bus
        self.records = records
        self.configs = configs
        self.prefs = prefs
        self.platform = platform
        self.callback_url = callback_url
        self.stop_grace_s = stop_grace_s
        self.poll_interval_s = poll_interval_s
        self.max_parallel = max_parallel
        # The trainer command line; swappable so a bench can run a synthetic event source.
        self.command_builder = command_builder or (
            lambda eff, run_dir, resume: trainer_command(eff, run_dir, resume=resume)
        )
        self._runs: dict[str, RunLive] = {}
        self._followers: dict[str, RunFollower] = {}
        self._procs: dict[str, _Process] = {}
        # Finished runs whose events are held in memory, least recently looked at first.
        self._loaded_finished: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._started = False
        self._start_lock = asyncio.Lock()
        self._dispatch_lock = asyncio.Lock()
        self._change_listeners = Listeners("run change")

    # ---- lifecycle of the service ---------------------------------------------------------
    def install(self, app: Any) -> None:
        """Re-attach at server start-up and let go (without killing trainers) at shut-down."""
        if not app.is_started:
            app.on_startup(self.ensure_started)
        app.on_shutdown(self.shutdown)

    async def ensure_started(self) -> None:
        if self._started:
            return
        async with self._start_lock:
            if self._started:
                return
            records, unreadable = self.records.scan()
            for record in records:
                self._runs[record.id] = RunLive(record)
            for run_id, reason in unreadable.items():
                self.records.set_aside(run_id)
                record = rebuild_record(run_id, reason, self._output_roots())
                self._runs[run_id] = RunLive(record)
                self._save(self._runs[run_id])
            for live in list(self._runs.values()):
                if live.record.state in ACTIVE_STATES:
                    self._reattach(live)
            self._started = True
        await self._dispatch()

    async def shutdown(self) -> None:
        """Stop watching; trainers keep running and are found again on the next start."""
        for proc in list(self._procs.values()):
            if proc.watcher is not None:
                proc.watcher.cancel()
        for live in self._runs.values():
            self._save(live)
        self._procs.clear()
        self._started = False

    def _reattach(self, live: RunLive) -> None:
        rec = live.record
        self._load(live, publish=True)
        if process_matches(rec.pid, rec.pid_create_time):
            log.info("re-attached to run %s (pid %s)", rec.id, rec.pid)
            proc = _Process(pid=rec.pid or 0, wait_task=None)
            self._procs[rec.id] = proc
            proc.watcher = asyncio.create_task(self._watch(rec.id))
        else:
            self._finish(live, None, unseen=True)

    # ---- changes no event announces ------------------------------------------------------------
    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` when runs change without an event (queued, reordered, cancelled,
        deleted, stop requested, launched, ended), so every open page redraws, not only the one
        whose button was pressed. Returns the remover."""
        return self._change_listeners.add(listener)

    def _changed(self) -> None:
        self._change_listeners.notify()

    # ---- events -----------------------------------------------------------------------------
    def ingest(self, event: Event) -> bool:
        """One event from a callback or the file; False when unknown run or already seen."""
        live = self._runs.get(event.run_id)
        if live is None or not self.bus.publish(event):
            return False
        if live.apply(event) or time.time() - live.saved_at > SAVE_EVERY_S:
            self._save(live)
        return True

    def _known(self, run_id: str, seq: Any) -> bool:
        return isinstance(seq, int) and self.bus.seen(run_id, seq)

    def known(self, run_id: str) -> bool:
        return run_id in self._runs

    def token_of(self, run_id: str) -> str | None:
        live = self._runs.get(run_id)
        return live.record.token if live else None

    def _follower(self, live: RunLive) -> RunFollower:
        follower = self._followers.get(live.record.id)
        if follower is None:
            follower = self._followers[live.record.id] = RunFollower(Path(live.record.run_dir))
        return follower

    def _poll_files(self, live: RunLive) -> None:
        follower = self._follower(live)
        for event in follower.poll_events(self._known):
            self.ingest(event)
        for text in follower.poll_lines():
            line = LogLine(live.record.id, text)
            live.add_line(line)
            self.bus.publish_line(line)

    def _load(self, live: RunLive, *, publish: bool) -> None:
        """Read a run's events.jsonl in: published (live runs) or only folded (history)."""
        if live.loaded or not live.record.run_dir:  # (a damaged run with no folder: nothing)
            return
        if publish and self.bus.last_seq(live.record.id) > 0:
            # Resuming a run whose history was let go: the bus has seen those events, so fold
            # them in quietly first; only new ones are published.
            self._load(live, publish=False)
            return
        live.loaded = True
        follower = self._follower(live)
        if publish:
            self._poll_files(live)
            return
        for event in follower.poll_events():
            live.apply(event)
        self.bus.mark_seen(live.record.id, live.record.last_seq)
        follower.skip_log_to_end()
        for text in log_tail(follower.log_path, 200):
            live.add_line(
                LogLine(live.record.id, text, ts=live.record.ended_at or live.record.created_at)
            )

    def _emit_server_event(self, live: RunLive, type_: str, data: dict[str, Any]) -> None:
        """An event written by the server itself, only when no trainer process is alive."""
        follower = self._follower(live)
        seq = max(self.bus.last_seq(live.record.id), live.record.last_seq) + 1
        event = Event(run_id=live.record.id, seq=seq, ts=time.time(), type=type_, data=data)  # type: ignore[arg-type]
        follower.append(event)
        follower.poll_events()  # move past what we just wrote
        self.ingest(event)

    # ---- supervision ------------------------------------------------------------------------
    async def _launch(self, live: RunLive) -> None:
        rec = live.record
        run_dir = Path(rec.run_dir)
        effective = validate_config(rec.config, self.platform).values
        command = self.command_builder(effective, run_dir, rec.resume)
        run_dir.mkdir(parents=True, exist_ok=True)
        follower = self._follower(live)
        self._load(live, publish=True)
        try:
            with (run_dir / LOG_FILE).open("ab") as log_file:
                log_file.write(
                    f"--- tunerdeck: attempt {rec.attempts + 1}: {' '.join(command)}\n".encode()
                )
                log_file.flush()
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a stop reaches every child
                    cwd=str(PROJECT_ROOT),
                    env=trainer_env(
                        rec.id,
                        rec.token,
                        self._callback_url(),
                        # A resumed trainer numbers its events after every one the server
                        # has (some may never have reached events.jsonl: a crash, a full disk).
                        seq_after=max(self.bus.last_seq(rec.id), rec.last_seq),
                    ),
                )
        except OSError as exc:
            rec.state = "failed"
            rec.message = f"could not start the trainer: {exc}"
            rec.ended_at = time.time()
            self._save(live)
            self._changed()
            return
        follower.poll_lines()  # the header line
        rec.pid = process.pid
        rec.pid_create_time = create_time_of(process.pid)
        rec.command = command
        rec.state = "starting"
        rec.attempts += 1
        rec.exit_code = None
        rec.ended_at = None
        rec.message = "resuming from the latest checkpoint" if rec.resume else "starting"
        rec.resume = False
        rec.started_at = rec.started_at or time.time()
        live.final_seen = False
        self._save(live)
        proc = _Process(pid=process.pid, wait_task=asyncio.create_task(process.wait()))
        self._procs[rec.id] = proc
        proc.watcher = asyncio.create_task(self._watch(rec.id))
        self._changed()

    def _callback_url(self) -> str | None:
        if self.callback_url:
            return self.callback_url
        host, port = os.environ.get("NICEGUI_HOST"), os.environ.get("NICEGUI_PORT")
        if not host or not port or os.environ.get("NICEGUI_USER_SIMULATION"):
            return None  # no HTTP server (tests): events come from the file follower alone
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}/callbacks"

    async def _watch(self, run_id: str) -> None:
        live = self._runs[run_id]
        proc = self._procs[run_id]
        exit_code: int | None = None
        try:
            while True:
                self._poll_files(live)
                if proc.wait_task is not None:
                    if proc.wait_task.done():
                        exit_code = proc.wait_task.result()
                        break
                elif not process_matches(proc.pid, live.record.pid_create_time):
                    break
                if (
                    proc.stop_requested_at
                    and time.time() - proc.stop_requested_at > self.stop_grace_s
                ):
                    log.warning(
                        "run %s did not stop within %ss: killing it", run_id, self.stop_grace_s
                    )
                    live.record.message = (
                        f"did not stop within {self.stop_grace_s:.0f} s, so it was killed"
                    )
                    kill_group(proc.pid)
                    proc.stop_requested_at = None
                    proc.killed_after_grace = True
                await asyncio.sleep(self.poll_interval_s)
        except asyncio.CancelledError:
            return  # the server is shutting down: the trainer runs on
        kill_group(proc.pid)  # leftovers: data-loader workers, launcher children
        self._poll_files(live)
        self._procs.pop(run_id, None)
        self._finish(
            live,
            exit_code,
            stop_requested=proc.stop_requested_at is not None,
            killed_after_grace=proc.killed_after_grace,
            killed_on_request=proc.killed_on_request,
        )
        await self._dispatch()

    def _finish(
        self,
        live: RunLive,
        exit_code: int | None,
        *,
        unseen: bool = False,
        stop_requested: bool = False,
        killed_after_grace: bool = False,
        killed_on_request: bool = False,
    ) -> None:
        rec = live.record
        self._poll_files(live)
        rec.exit_code = exit_code
        rec.pid = None
        rec.log_tail = log_tail(Path(rec.run_dir) / LOG_FILE)
        # (A resume may already be queued: the `stopped` event comes before the process exits.)
        if not live.final_seen:
            killed_by_stop = stop_requested and exit_code == -signal.SIGTERM
            if killed_by_stop:
                message = "stopped before training began (nothing to checkpoint yet)"
                self._emit_server_event(live, "lifecycle", {"state": "stopped", "message": message})
            else:
                message = _death_message(exit_code, unseen)
                if killed_on_request:
                    message = "The trainer was killed on request (Kill); see the log tail."
                elif killed_after_grace:
                    message = (
                        f"The trainer did not stop within {self.stop_grace_s:.0f} s of Stop, "
                        "so it was killed; see the log tail."
                    )
                self._emit_server_event(live, "lifecycle", {"state": "failed", "message": message})
                self._emit_server_event(
                    live, "error", {"message": message, "traceback": "\n".join(rec.log_tail[-20:])}
                )
        rec.ended_at = rec.ended_at or time.time()
        self._save(live)
        self.bus.release(rec.id)
        self._keep_loaded(live)
        self._changed()

    def _keep_loaded(self, live: RunLive) -> None:
        """Hold a finished run's events in memory while it is among the few looked at last;
        older ones are let go (read again from events.jsonl when opened), so the server's
        memory does not grow with its history."""
        run_id = live.record.id
        if live.record.state not in FINAL_STATES or run_id in self._procs:
            return
        self._loaded_finished[run_id] = None
        self._loaded_finished.move_to_end(run_id)
        while len(self._loaded_finished) > KEEP_LOADED_FINISHED:
            old_id, _ = self._loaded_finished.popitem(last=False)
            old = self._runs.get(old_id)
            if old is not None and old.record.state in FINAL_STATES and old_id not in self._procs:
                self._runs[old_id] = RunLive(old.record)
                self._followers.pop(old_id, None)

    async def _dispatch(self) -> None:
        async with self._dispatch_lock:
            while len(self._procs) < self.max_parallel:
                queued = self._queued()
                if not queued:
                    return
                await self._launch(queued[0])

    def _queued(self) -> list[RunLive]:
        queued = [live for live in self._runs.values() if live.record.state == "queued"]
        return sorted(queued, key=lambda live: live.record.queue_order)

    def _save(self, live: RunLive) -> None:
        live.saved_at = time.time()
        try:
            self.records.save(live.record)
        except OSError as exc:  # disk full: keep running, say so in the log
            log.warning("cannot save run record %s: %s", live.record.id, exc)

    # ---- the RunService protocol --------------------------------------------------------
    def _live(self, run_id: str) -> RunLive:
        live = self._runs.get(run_id)
        if live is None:
            raise RunError(f"There is no run {run_id!r}. GET /api/runs lists the runs.", 404)
        return live

    def _info(self, live: RunLive) -> RunInfo:
        """What the API shows of a run; a record that cannot be shown is listed as damaged
        with the reason (never an error for the whole listing)."""
        try:
            return self._info_of(live)
        except Exception as exc:
            rec = live.record
            log.warning("run %s cannot be shown: %s", rec.id, exc)
            return RunInfo(
                id=str(rec.id),
                state="damaged",
                run_dir=str(rec.run_dir),
                created_at=rec.created_at if isinstance(rec.created_at, float) else 0.0,
                message=f"Damaged: this run's record cannot be shown ({str(exc)[:300]}); "
                f"its folder is {rec.run_dir}.",
            )

    def _info_of(self, live: RunLive) -> RunInfo:
        rec = live.record
        queued = [q.record.id for q in self._queued()]
        has_ckpt = bool(rec.run_dir) and has_checkpoint(Path(rec.run_dir))
        end = rec.ended_at if rec.state not in ACTIVE_STATES else time.time()
        return RunInfo(
            id=rec.id,
            state=rec.state,
            config_name=rec.config_name,
            run_dir=rec.run_dir,
            created_at=rec.created_at,
            started_at=rec.started_at,
            ended_at=rec.ended_at,
            step=rec.step,
            max_steps=rec.max_steps,
            loss=rec.loss,
            lr=live.lr,
            it_per_s=live.it_per_s if rec.state in ACTIVE_STATES else None,
            eta_s=live.eta_s if rec.state in ACTIVE_STATES else None,
            last_seq=rec.last_seq,
            exit_code=rec.exit_code,
            message=rec.message,
            log_tail=rec.log_tail,
            queue_position=queued.index(rec.id) if rec.id in queued else None,
            has_checkpoint=has_ckpt,
            can_stop=rec.state in ("queued", "starting", "running"),
            can_resume=rec.state in ("stopped", "failed") and has_ckpt,
            duration_s=(end - rec.started_at) if rec.started_at and end else None,
        )

    async def list_runs(self) -> list[RunInfo]:
        await self.ensure_started()
        return [
            self._info(live)
            for live in sorted(self._runs.values(), key=lambda r: -r.record.created_at)
        ]

    async def get_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        return self._info(self._live(run_id))

    async def get_detail(self, run_id: str, include_progress: bool = True) -> RunDetail:
        await self.ensure_started()
        live = self._live(run_id)
        checkpoints: list[CheckpointInfo] = []
        try:
            self._load(live, publish=False)
            if live.record.run_dir:
                checkpoints = checkpoints_on_disk(Path(live.record.run_dir))
        except (OSError, ValueError) as exc:  # a damaged record's folder: show what there is
            live.loaded = True
            log.warning("run %s: its folder cannot be read: %s", run_id, exc)
        self._keep_loaded(live)
        return RunDetail(
            run=self._info(live),
            progress=live.progress.models() if include_progress else [],
            validations=live.validation_steps(),
            checkpoints=checkpoints,
            logs=list(live.logs)[-500:],
        )

    async def start_run(
        self, config: dict[str, Any] | None = None, config_name: str | None = None
    ) -> RunInfo:
        await self.ensure_started()
        raw = self._resolve_config(config, config_name)
        result = validate_config(raw, self.platform)
        if not result.ok:
            count = len(result.errors)
            raise RunError(
                f"The config has {count} problem{'s' if count != 1 else ''}; fix {'them' if count != 1 else 'it'} and start again.",
                422,
                [f"{issue.path}: {issue.message}" for issue in result.errors],
            )
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        # Each run gets its own folder: inside an output folder the person set (a relative one
        # lies inside the output root of the preferences), else in the output root. Neither
        # it nor a dataset folder may lie outside the roots of the preferences.
        run_dir = self._confined_output(raw.get("output_dir")) / run_id
        run_config = {**raw, "output_dir": str(run_dir)}
        if isinstance(raw.get("datasets"), list):
            run_config["datasets"] = self._confined_datasets(raw["datasets"])
        try:
            run_dir.mkdir(parents=True, exist_ok=False)
            save_config_file(run_dir / RUN_CONFIG_FILE, run_config)
        except OSError as exc:
            # A name the file system refuses is the request's fault; anything else (no space,
            # no permission on the output root) the server's.
            refused = exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EINVAL)
            raise RunError(
                f"Cannot create the run folder {str(run_dir)[:300]}: {exc.strerror or exc}. "
                + (
                    "Choose a shorter, simpler output_dir." if refused else "Check the output root."
                ),
                422 if refused else 500,
            ) from None
        record = RunRecord(
            id=run_id,
            config_name=config_name,
            config=run_config,
            run_dir=str(run_dir),
            token=secrets.token_urlsafe(24),
            queue_order=time.time(),
        )
        live = RunLive(record)
        live.loaded = True
        self._runs[run_id] = live
        self._save(live)
        with contextlib.suppress(Exception):  # remembering launcher settings is a convenience
            self.prefs.remember_accelerate_overrides(raw)
        await self._dispatch()
        self._changed()
        return self._info(live)

    def _output_roots(self) -> list[Path]:
        roots = [Path(self.prefs.prefs.output_root).expanduser(), default_output_root()]
        return list(dict.fromkeys(roots))

    def _confined_output(self, output_dir: Any) -> Path:
        """The folder the run's folder goes in: `output_dir` inside the output root (symbolic
        links resolved); RunError 422 when it points anywhere else."""
        root = Path(self.prefs.prefs.output_root).expanduser().resolve()
        given = str(output_dir or "")
        try:
            target = (root / Path(given).expanduser()).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise RunError(
                f"output_dir {given[:200]!r} is not a usable folder: {exc}.", 422
            ) from None
        if not target.is_relative_to(root):
            raise RunError(
                f"output_dir must lie inside the output root {root}: {given[:200]!r} is "
                f"{target} (give a folder relative to the output root, or change the output "
                "root in the preferences).",
                422,
                [f"output_dir: outside the output root {root}"],
            )
        return target

    def _confined_datasets(self, datasets: list[Any]) -> list[Any]:
        """Dataset entries with their `path` resolved inside a datasets root (the one of the
        preferences, or the default one where the demo dataset lives); RunError 422 lists the
        others."""
        roots = [
            Path(self.prefs.prefs.datasets_root).expanduser().resolve(),
            default_datasets_root().resolve(),
        ]
        confined: list[Any] = []
        errors: list[str] = []
        for index, entry in enumerate(datasets):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                confined.append(entry)
                continue
            given = entry["path"]
            if not given:
                confined.append(entry)
                continue
            try:
                target = (roots[0] / Path(given).expanduser()).resolve()
            except (OSError, ValueError, RuntimeError):
                target = None
            if target is None or not any(target.is_relative_to(r) for r in roots):
                errors.append(
                    f"datasets[{index}].path: {given[:200]!r} is outside the datasets root "
                    f"{roots[0]}"
                )
                continue
            confined.append({**entry, "path": str(target)})
        if errors:
            raise RunError(
                "Dataset folders must lie inside the datasets root of the preferences; "
                "move the images there or change the datasets root.",
                422,
                errors,
            )
        return confined

    def _resolve_config(
        self, config: dict[str, Any] | None, config_name: str | None
    ) -> dict[str, Any]:
        """`config` (explicit values over the defaults) wins; `config_name` alone loads that
        saved config; with both, the name only labels the run (the page's unsaved edits)."""
        if config is None and config_name:
            try:
                raw = dict(self.configs.load(config_name))
            except ConfigStoreError as exc:
                names = ", ".join(self.configs.names()) or "none"
                raise RunError(f"{exc}. Saved configs: {names}.", 404) from None
            except ConfigFileError as exc:
                raise RunError(
                    f"The saved config {config_name!r} cannot be used.", 422, list(exc.errors)
                ) from None
        elif config is None:
            raise RunError(
                'Send {"config_name": NAME} for a saved config or {"config": {...}} with field values.'
            )
        elif not isinstance(config, dict):
            raise RunError(
                '"config" must be an object of field values, e.g. {"max_train_steps": 10}.'
            )
        else:
            raw = dict(config)
        cached = {k: v for k, v in self.prefs.prefs.accelerate_overrides.items() if k not in raw}
        return {**cached, **raw}

    async def stop_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        live = self._live(run_id)
        rec = live.record
        if rec.state == "queued":
            await self.cancel_queued(run_id)
            return self._info(live)
        proc = self._procs.get(run_id)
        if proc is None:
            raise RunError(
                f"Run {run_id} is {rec.state}, not running: there is nothing to stop.", 409
            )
        if proc.stop_requested_at is None:
            proc.stop_requested_at = time.time()
            rec.state = "stopping"
            rec.message = "stop requested: saving a checkpoint"
            self._save(live)
            request_stop(proc.pid)
            self._changed()
        return self._info(live)

    async def kill_run(self, run_id: str) -> RunInfo:
        """SIGKILL the whole process group now, without waiting for the stop's checkpoint (a
        trainer stuck while stopping). The run ends failed; earlier checkpoints stay."""
        await self.ensure_started()
        live = self._live(run_id)
        proc = self._procs.get(run_id)
        if proc is None:
            raise RunError(
                f"Run {run_id} is {live.record.state}, not running: there is nothing to kill.", 409
            )
        proc.killed_on_request = True
        live.record.message = "killed on request"
        kill_group(proc.pid)
        self._changed()
        return self._info(live)

    async def resume_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        live = self._live(run_id)
        rec = live.record
        if rec.state not in ("stopped", "failed"):
            raise RunError(
                f"Run {run_id} is {rec.state}: only a stopped or failed run can be resumed.", 409
            )
        if not has_checkpoint(Path(rec.run_dir)):
            raise RunError(
                f"Run {run_id} has no checkpoint to resume from; start a new run instead.", 409
            )
        rec.state = "queued"
        rec.resume = True
        rec.queue_order = time.time()
        rec.message = "waiting to resume"
        self._save(live)
        await self._dispatch()
        self._changed()
        return self._info(live)

    async def delete_run(self, run_id: str) -> None:
        await self.ensure_started()
        live = self._live(run_id)
        proc = self._procs.get(run_id)
        if proc is not None and live.final_seen and proc.watcher is not None:
            # Finished, the process is only flushing and exiting: give it a moment.
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.watcher), 15)
        if run_id in self._procs:
            raise RunError(f"Run {run_id} is {live.record.state}: stop it before deleting it.", 409)
        self._runs.pop(run_id)
        self._followers.pop(run_id, None)
        self.bus.forget(run_id)
        self.records.delete(run_id)
        if live.record.run_dir and Path(live.record.run_dir).is_dir():
            shutil.rmtree(live.record.run_dir, ignore_errors=True)
        self._changed()

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        await self.ensure_started()
        live = self._live(run_id)
        path = self._follower(live).events_path
        try:
            if live.record.run_dir and path.exists():
                return read_events(path, seq)
        except (OSError, ValueError) as exc:  # a damaged record's folder
            log.warning("run %s: its events cannot be read: %s", run_id, exc)
        return [e for e in self.bus.tail(run_id) if e.seq > seq]

    async def open_file(self, run_id: str, path: str) -> RunFile:
        """A file of the run's folder (validation images), never anything outside it."""
        await self.ensure_started()
        target = file_in_run(self._live(run_id).record.run_dir, path, run_id)
        return RunFile(name=target.name, path=target)

    async def queue(self) -> list[RunInfo]:
        await self.ensure_started()
        return [self._info(live) for live in self._queued()]

    async def move_in_queue(self, run_id: str, position: int) -> list[RunInfo]:
        await self.ensure_started()
        live = self._live(run_id)
        if live.record.state != "queued":
            raise RunError(f"Run {run_id} is {live.record.state}, not waiting in the queue.", 409)
        order = [q for q in self._queued() if q is not live]
        order.insert(max(0, min(position, len(order))), live)
        base = time.time()
        for index, item in enumerate(order):
            item.record.queue_order = base + index
            self._save(item)
        self._changed()
        return [self._info(q) for q in order]

    async def cancel_queued(self, run_id: str) -> None:
        await self.ensure_started()
        live = self._live(run_id)
        if live.record.state != "queued":
            raise RunError(f"Run {run_id} is {live.record.state}, not waiting in the queue.", 409)
        if live.record.attempts == 0:
            await self.delete_run(run_id)  # never ran: nothing worth keeping
            return
        live.record.state = "stopped"
        live.record.resume = False
        live.record.message = "resume cancelled"
        self._save(live)
        self._changed()


def _death_message(exit_code: int | None, unseen: bool) -> str:
    if unseen or exit_code is None:
        return "The trainer ended while the server was not watching, without reporting; see the log tail."
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        hint = " (possibly out of memory)" if name == "SIGKILL" else ""
        return f"The trainer was killed by {name}{hint} without reporting; see the log tail."
    return f"The trainer exited with status {exit_code} without reporting; see the log tail."
