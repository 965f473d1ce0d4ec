"""LocalRunService: the RunService of a machine that trains. Runs `python -m trainer`
subprocesses here, one at a time (`max_parallel`) in queue order, follows their files, stops
them cleanly and finds them again after a server restart.

It is a thin facade over four parts: RunAdmission (what a run starts with, validated once),
RunQueue (the waiting runs and the dispatcher), ProcessSupervisor (the trainer processes) and
RunHistory (every run's record and what its events add up to).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.services.event_bus import EventBus
from app.services.listeners import Listeners
from app.services.run_admission import AdmittedRun, RunAdmission
from app.services.run_history import RunHistory
from app.services.run_launch import RUN_CONFIG_FILE
from app.services.run_live import RunLive, has_checkpoint
from app.services.run_processes import CommandBuilder, ProcessSupervisor
from app.services.run_queue import RunQueue
from app.services.run_service import RunDetail, RunError, RunFile, RunInfo, file_in_run
from registry.config_io import save_config_file
from registry.evaluator import PlatformContext
from registry.validation import validate_config
from state.config_store import ConfigStore
from state.run_records import RunRecord, RunRecordStore
from state.web_ui_state import WebUIStateStore
from tunerdeck_common.events import Event
from tunerdeck_common.paths import default_output_root
from tunerdeck_common.runstate import RunState

log = logging.getLogger(__name__)


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
        command_builder: CommandBuilder | None = None,
    ) -> None:
        self.bus = bus
        self.prefs = prefs
        self.platform = platform
        self.admission = RunAdmission(configs, prefs, platform)
        self.history = RunHistory(bus, records)
        self.processes = ProcessSupervisor(
            self.history,
            on_exit=self._dispatch,
            on_change=self._changed,
            stop_grace_s=stop_grace_s,
            poll_interval_s=poll_interval_s,
            command_builder=command_builder,
            callback_url=callback_url,
        )
        self.run_queue = RunQueue(self.history, self.processes, self._saved_effective, max_parallel)
        self._started = False
        self._start_lock = asyncio.Lock()
        self._change_listeners = Listeners("run change")

    # The trainer command line and the URL trainers report to: the process supervisor's.
    @property
    def command_builder(self) -> CommandBuilder:
        return self.processes.command_builder

    @command_builder.setter
    def command_builder(self, builder: CommandBuilder) -> None:
        self.processes.command_builder = builder

    @property
    def callback_url(self) -> str | None:
        return self.processes.callback_url

    @callback_url.setter
    def callback_url(self, url: str | None) -> None:
        self.processes.callback_url = url

    # ---- lifecycle of the service -----------------------------------------------------------
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
            self.history.read_records(self._output_roots())
            for live in list(self.history.runs.values()):
                if live.record.state.is_active:
                    self.processes.reattach(live)
            self._started = True
        await self._dispatch()

    async def shutdown(self) -> None:
        """Stop watching; trainers keep running and are found again on the next start."""
        self.processes.shutdown()
        self.history.save_all()
        self._started = False

    def _output_roots(self) -> list[Path]:
        roots = [Path(self.prefs.prefs.output_root).expanduser(), default_output_root()]
        return list(dict.fromkeys(roots))

    def _saved_effective(self, config: dict[str, Any]) -> dict[str, Any]:
        """A saved run config's values at launch (a resume): the trainer reports what is
        wrong with it, as it does for a run started by hand."""
        return validate_config(config, self.platform).values

    async def _dispatch(self) -> None:
        await self.run_queue.dispatch()

    # ---- changes no event announces ---------------------------------------------------------
    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` when runs change without an event (queued, reordered, cancelled,
        deleted, stop requested, launched, ended), so every open page redraws, not only the one
        whose button was pressed. Returns the remover."""
        return self._change_listeners.add(listener)

    def _changed(self) -> None:
        self._change_listeners.notify()

    # ---- what /callbacks needs ----------------------------------------------------------------
    def ingest(self, event: Event) -> bool:
        return self.history.ingest(event)

    def known(self, run_id: str) -> bool:
        return self.history.known(run_id)

    def token_of(self, run_id: str) -> str | None:
        return self.history.token_of(run_id)

    # ---- reading ----------------------------------------------------------------------------
    def _info(self, live: RunLive, positions: dict[str, int] | None = None) -> RunInfo:
        """What the API shows of a run; a record that cannot be shown is listed as damaged
        with the reason (never an error for the whole listing)."""
        try:
            return _info_of(
                live, (positions if positions is not None else self.run_queue.positions())
            )
        except Exception as exc:
            rec = live.record
            log.warning("run %s cannot be shown: %s", rec.id, exc)
            return RunInfo(
                id=str(rec.id),
                state=RunState.DAMAGED,
                run_dir=str(rec.run_dir),
                created_at=_number(rec.created_at),
                message=f"Damaged: this run's record cannot be shown ({str(exc)[:300]}); "
                f"its folder is {rec.run_dir}.",
            )

    async def list_runs(self) -> list[RunInfo]:
        await self.ensure_started()
        positions = self.run_queue.positions()
        return [self._info(live, positions) for live in self.history.newest_first()]

    async def get_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        return self._info(self.history.live(run_id))

    def progress_arrays(self, run_id: str) -> tuple[Any, Any, Any]:
        """Copies of a run's (steps, losses, lrs) flat arrays (NaN: no value), with no object
        per point: what a chart folds. Read after get_detail, which loads the history."""
        series = self.history.live(run_id).progress
        return series.steps[:], series.losses[:], series.lrs[:]

    async def get_detail(self, run_id: str, include_progress: bool = True) -> RunDetail:
        await self.ensure_started()
        return self.history.detail(run_id, self._info, self.processes.running, include_progress)

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        await self.ensure_started()
        return self.history.events_after(run_id, seq)

    async def open_file(self, run_id: str, path: str) -> RunFile:
        """A file of the run's folder (validation images), never anything outside it."""
        await self.ensure_started()
        target = file_in_run(self.history.live(run_id).record.run_dir, path, run_id)
        return RunFile(name=target.name, path=target)

    async def queue(self) -> list[RunInfo]:
        await self.ensure_started()
        positions = self.run_queue.positions()
        return [self._info(live, positions) for live in self.run_queue.waiting()]

    # ---- starting ---------------------------------------------------------------------------
    async def start_run(
        self, config: dict[str, Any] | None = None, config_name: str | None = None
    ) -> RunInfo:
        await self.ensure_started()
        run_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        admitted = self.admission.admit(config, config_name, run_id)
        _write_run_folder(admitted)
        live = self.history.add(
            RunRecord(
                id=run_id,
                config_name=config_name,
                config=admitted.config,
                run_dir=str(admitted.run_dir),
                token=secrets.token_urlsafe(24),
                queue_order=time.time(),
            )
        )
        self.run_queue.admitted(run_id, admitted.effective)
        with contextlib.suppress(Exception):  # remembering launcher settings is a convenience
            self.prefs.remember_accelerate_overrides(admitted.raw)
        await self._dispatch()
        self._changed()
        return self._info(live)

    async def resume_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        live = self.history.live(run_id)
        rec = live.record
        if not rec.state.can_resume:
            raise RunError(
                f"Run {run_id} is {rec.state}: only a stopped or failed run can be resumed.", 409
            )
        if not has_checkpoint(Path(rec.run_dir)):
            raise RunError(
                f"Run {run_id} has no checkpoint to resume from; start a new run instead.", 409
            )
        rec.resume = True
        self.run_queue.requeue(live, "waiting to resume")
        await self._dispatch()
        self._changed()
        return self._info(live)

    # ---- stopping ---------------------------------------------------------------------------
    async def stop_run(self, run_id: str) -> RunInfo:
        await self.ensure_started()
        live = self.history.live(run_id)
        if live.record.state == RunState.QUEUED:
            await self.cancel_queued(run_id)
            return self._info(live)
        if not self.processes.stop(live):
            raise RunError(
                f"Run {run_id} is {live.record.state}, not running: there is nothing to stop.",
                409,
            )
        return self._info(live)

    async def kill_run(self, run_id: str) -> RunInfo:
        """SIGKILL the whole process group now, without waiting for the stop's checkpoint (a
        trainer stuck while stopping). The run ends failed; earlier checkpoints stay."""
        await self.ensure_started()
        live = self.history.live(run_id)
        if not self.processes.kill(live):
            raise RunError(
                f"Run {run_id} is {live.record.state}, not running: there is nothing to kill.", 409
            )
        return self._info(live)

    async def delete_run(self, run_id: str) -> None:
        await self.ensure_started()
        live = self.history.live(run_id)
        if live.final_seen:
            # Finished, the process is only flushing and exiting: give it a moment.
            await self.processes.wait_for_exit(run_id, 15)
        if run_id in self.processes.running:
            raise RunError(f"Run {run_id} is {live.record.state}: stop it before deleting it.", 409)
        self.run_queue.drop(run_id)
        self.history.forget(run_id)
        self._changed()

    # ---- the queue --------------------------------------------------------------------------
    async def move_in_queue(self, run_id: str, position: int) -> list[RunInfo]:
        await self.ensure_started()
        order = self.run_queue.move(self.run_queue.waiting_run(run_id), position)
        self._changed()
        positions = self.run_queue.positions()
        return [self._info(q, positions) for q in order]

    async def cancel_queued(self, run_id: str) -> None:
        await self.ensure_started()
        live = self.run_queue.waiting_run(run_id)
        if live.record.attempts == 0:
            await self.delete_run(run_id)  # never ran: nothing worth keeping
            return
        live.record.state = RunState.STOPPED
        live.record.resume = False
        live.record.message = "resume cancelled"
        self.history.save(live)
        self._changed()


def _number(value: Any) -> float:
    """A damaged record's field as a number (0 when it is not one)."""
    return float(value) if isinstance(value, (int, float)) else 0.0


def _write_run_folder(admitted: AdmittedRun) -> None:
    """The run's own folder with its config; RunError when it cannot be made."""
    try:
        admitted.run_dir.mkdir(parents=True, exist_ok=False)
        save_config_file(admitted.run_dir / RUN_CONFIG_FILE, admitted.config)
    except OSError as exc:
        # A name the file system refuses is the request's fault; anything else (no space,
        # no permission on the output root) the server's.
        refused = exc.errno in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.EINVAL)
        raise RunError(
            f"Cannot create the run folder {str(admitted.run_dir)[:300]}: "
            f"{exc.strerror or exc}. "
            + ("Choose a shorter, simpler output_dir." if refused else "Check the output root."),
            422 if refused else 500,
        ) from None


def _info_of(live: RunLive, positions: dict[str, int]) -> RunInfo:
    rec = live.record
    has_ckpt = bool(rec.run_dir) and has_checkpoint(Path(rec.run_dir))
    active = rec.state.is_active
    end = rec.ended_at if not active else time.time()
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
        it_per_s=live.it_per_s if active else None,
        eta_s=live.eta_s if active else None,
        last_seq=rec.last_seq,
        exit_code=rec.exit_code,
        message=rec.message,
        log_tail=rec.log_tail,
        queue_position=positions.get(rec.id),
        has_checkpoint=has_ckpt,
        can_stop=rec.state.can_stop,
        can_resume=rec.state.can_resume and has_ckpt,
        duration_s=(end - rec.started_at) if rec.started_at and end else None,
        eval_loss=rec.eval_loss,
        best_eval_loss=rec.best_eval_loss,
    )
