"""ProcessSupervisor: the trainer subprocesses of this machine. Launches `python -m trainer`
for a run, follows its files while it lives, stops it (SIGTERM, then SIGKILL after a grace
period) or kills it, re-attaches to one still alive after a server restart, and writes the
run's end (an event of its own when the trainer died without reporting).

Trainer output goes straight to RUN_DIR/trainer.log (not a pipe), so a trainer survives the
server going away; the server follows that file and events.jsonl.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.server_args import callback_url as callback_url_for
from app.services.run_history import RunHistory
from app.services.run_launch import (
    LOG_FILE,
    PROJECT_ROOT,
    create_time_of,
    kill_group,
    process_matches,
    request_stop,
    trainer_command,
    trainer_env,
)
from app.services.run_live import RunLive, log_tail
from tunerdeck_common.runstate import RunState

log = logging.getLogger(__name__)

# command_builder(effective values, run folder, resume) -> the trainer's command line
CommandBuilder = Callable[[dict[str, Any], Path, bool], list[str]]


def default_command(effective: dict[str, Any], run_dir: Path, resume: bool) -> list[str]:
    return trainer_command(effective, run_dir, resume=resume)


@dataclass
class TrainerProcess:
    pid: int
    wait_task: asyncio.Task[int] | None  # None when re-attached (not our child): psutil polls
    watcher: asyncio.Task[None] | None = None
    stop_requested_at: float | None = None
    killed_after_grace: bool = False
    killed_on_request: bool = False


class ProcessSupervisor:
    """`on_exit()` runs after a trainer ended and its run was written (the queue starts the
    next); `on_change()` after anything a page shows changed without an event."""

    def __init__(
        self,
        history: RunHistory,
        *,
        on_exit: Callable[[], Awaitable[None]],
        on_change: Callable[[], None],
        stop_grace_s: float = 120.0,
        poll_interval_s: float = 0.25,
        command_builder: CommandBuilder | None = None,
        callback_url: str | None = None,
    ) -> None:
        self.history = history
        self.on_exit = on_exit
        self.on_change = on_change
        self.stop_grace_s = stop_grace_s
        self.poll_interval_s = poll_interval_s
        self.command_builder: CommandBuilder = command_builder or default_command
        self.callback_url = callback_url
        self.running: dict[str, TrainerProcess] = {}

    # ---- launch -----------------------------------------------------------------------------
    async def launch(self, live: RunLive, effective: dict[str, Any]) -> None:
        """Start the run's trainer with its validated `effective` values."""
        rec = live.record
        run_dir = Path(rec.run_dir)
        command = self.command_builder(effective, run_dir, rec.resume)
        run_dir.mkdir(parents=True, exist_ok=True)
        follower = self.history.follower(live)
        self.history.load(live, publish=True)
        try:
            process = await self._spawn(live, command)
        except OSError as exc:
            rec.state = RunState.FAILED
            rec.message = f"could not start the trainer: {exc}"
            rec.ended_at = time.time()
            self.history.save(live)
            self.on_change()
            return
        follower.poll_lines()  # the header line
        rec.pid = process.pid
        rec.pid_create_time = create_time_of(process.pid)
        rec.command = command
        rec.state = RunState.STARTING
        rec.attempts += 1
        rec.exit_code = None
        rec.ended_at = None
        rec.message = "resuming from the latest checkpoint" if rec.resume else "starting"
        rec.resume = False
        rec.started_at = rec.started_at or time.time()
        live.final_seen = False
        self.history.save(live)
        self._follow(live, TrainerProcess(process.pid, asyncio.create_task(process.wait())))
        self.on_change()

    async def _spawn(self, live: RunLive, command: list[str]) -> asyncio.subprocess.Process:
        rec = live.record
        bus = self.history.bus
        with (Path(rec.run_dir) / LOG_FILE).open("ab") as log_file:
            log_file.write(
                f"--- tunerdeck: attempt {rec.attempts + 1}: {' '.join(command)}\n".encode()
            )
            log_file.flush()
            return await asyncio.create_subprocess_exec(
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
                    # A resumed trainer numbers its events after every one the server has
                    # (some may never have reached events.jsonl: a crash, a full disk).
                    seq_after=max(bus.last_seq(rec.id), rec.last_seq),
                ),
            )

    def _callback_url(self) -> str | None:
        if self.callback_url:
            return self.callback_url
        host, port = os.environ.get("NICEGUI_HOST"), os.environ.get("NICEGUI_PORT")
        if not host or not port or os.environ.get("NICEGUI_USER_SIMULATION"):
            return None  # no HTTP server (tests): events come from the file follower alone
        return callback_url_for(host, int(port))

    def reattach(self, live: RunLive) -> None:
        """A run the records say is active, after a server restart: follow its trainer if it
        is still alive, else write its end."""
        rec = live.record
        self.history.load(live, publish=True)
        if process_matches(rec.pid, rec.pid_create_time):
            log.info("re-attached to run %s (pid %s)", rec.id, rec.pid)
            self._follow(live, TrainerProcess(pid=rec.pid or 0, wait_task=None))
        else:
            self._finish(live, None, TrainerProcess(pid=0, wait_task=None), unseen=True)

    def _follow(self, live: RunLive, proc: TrainerProcess) -> None:
        self.running[live.record.id] = proc
        proc.watcher = asyncio.create_task(self._watch(live, proc))

    def shutdown(self) -> None:
        """Stop watching; trainers keep running and are found again on the next start."""
        for proc in list(self.running.values()):
            if proc.watcher is not None:
                proc.watcher.cancel()
        self.running.clear()

    # ---- stop and kill ----------------------------------------------------------------------
    def stop(self, live: RunLive) -> bool:
        """Ask the run's trainer to save a checkpoint and stop; False if none is running."""
        proc = self.running.get(live.record.id)
        if proc is None:
            return False
        if proc.stop_requested_at is None:
            proc.stop_requested_at = time.time()
            live.record.state = RunState.STOPPING
            live.record.message = "stop requested: saving a checkpoint"
            self.history.save(live)
            request_stop(proc.pid)
            self.on_change()
        return True

    def kill(self, live: RunLive) -> bool:
        """SIGKILL the whole process group now; False if none is running."""
        proc = self.running.get(live.record.id)
        if proc is None:
            return False
        proc.killed_on_request = True
        live.record.message = "killed on request"
        kill_group(proc.pid)
        self.on_change()
        return True

    async def wait_for_exit(self, run_id: str, timeout_s: float) -> None:
        proc = self.running.get(run_id)
        if proc is not None and proc.watcher is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.watcher), timeout_s)

    # ---- following --------------------------------------------------------------------------
    def _exited(self, live: RunLive, proc: TrainerProcess) -> tuple[bool, int | None]:
        if proc.wait_task is not None:
            if proc.wait_task.done():
                return True, proc.wait_task.result()
            return False, None
        return not process_matches(proc.pid, live.record.pid_create_time), None

    def _kill_after_grace(self, live: RunLive, proc: TrainerProcess) -> None:
        if not proc.stop_requested_at or time.time() - proc.stop_requested_at <= self.stop_grace_s:
            return
        log.warning("run %s did not stop within %ss: killing it", live.record.id, self.stop_grace_s)
        live.record.message = f"did not stop within {self.stop_grace_s:.0f} s, so it was killed"
        kill_group(proc.pid)
        proc.stop_requested_at = None
        proc.killed_after_grace = True

    async def _watch(self, live: RunLive, proc: TrainerProcess) -> None:
        try:
            while True:
                self.history.poll_files(live)
                exited, exit_code = self._exited(live, proc)
                if exited:
                    break
                self._kill_after_grace(live, proc)
                await asyncio.sleep(self.poll_interval_s)
        except asyncio.CancelledError:
            return  # the server is shutting down: the trainer runs on
        kill_group(proc.pid)  # leftovers: data-loader workers, launcher children
        self.history.poll_files(live)
        self.running.pop(live.record.id, None)
        self._finish(live, exit_code, proc, stop_requested=proc.stop_requested_at is not None)
        await self.on_exit()

    def _finish(
        self,
        live: RunLive,
        exit_code: int | None,
        proc: TrainerProcess,
        *,
        unseen: bool = False,
        stop_requested: bool = False,
    ) -> None:
        rec = live.record
        self.history.poll_files(live)
        rec.exit_code = exit_code
        rec.pid = None
        rec.log_tail = log_tail(Path(rec.run_dir) / LOG_FILE)
        # (A resume may already be queued: the `stopped` event comes before the process exits.)
        if not live.final_seen:
            self._write_end(live, exit_code, proc, unseen=unseen, stop_requested=stop_requested)
        rec.ended_at = rec.ended_at or time.time()
        self.history.save(live)
        self.history.bus.release(rec.id)
        self.history.keep_loaded(live, self.running)
        self.on_change()

    def _write_end(
        self,
        live: RunLive,
        exit_code: int | None,
        proc: TrainerProcess,
        *,
        unseen: bool,
        stop_requested: bool,
    ) -> None:
        """The end of a trainer that did not report one: stopped before training began, or
        died (how, in words, with the log tail)."""
        emit = self.history.emit_server_event
        if stop_requested and exit_code == -signal.SIGTERM:
            message = "stopped before training began (nothing to checkpoint yet)"
            emit(live, "lifecycle", {"state": "stopped", "message": message})
            return
        message = death_message(exit_code, unseen)
        if proc.killed_on_request:
            message = "The trainer was killed on request (Kill); see the log tail."
        elif proc.killed_after_grace:
            message = (
                f"The trainer did not stop within {self.stop_grace_s:.0f} s of Stop, "
                "so it was killed; see the log tail."
            )
        emit(live, "lifecycle", {"state": "failed", "message": message})
        tail = "\n".join(live.record.log_tail[-20:])
        emit(live, "error", {"message": message, "traceback": tail})


def death_message(exit_code: int | None, unseen: bool) -> str:
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
