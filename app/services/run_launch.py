"""The command line and environment of one trainer process, and the signals that stop it.

One process: `python -m trainer --config RUN_DIR/run.toml`. Several processes or machines:
`python -m accelerate.commands.launch <launcher flags> -m trainer ...` (accelerate is the
distributed engine; registry/launch.py builds the flags). Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from registry.launch import launch_args, needs_accelerate

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIG_FILE = "run.toml"
LOG_FILE = "trainer.log"


def trainer_command(effective: dict[str, Any], run_dir: Path, *, resume: bool) -> list[str]:
    tail = ["-m", "trainer", "--config", str(run_dir / RUN_CONFIG_FILE)]
    if resume:
        tail += ["--resume_from_checkpoint", "latest"]
    if needs_accelerate(effective):
        return [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            *launch_args(effective),
            *tail,
        ]
    return [sys.executable, *tail]


def trainer_env(
    run_id: str, token: str, callback_url: str | None, *, seq_after: int = 0
) -> dict[str, str]:
    """The trainer's environment: its run id, callback URL and token, and the highest event
    seq the server already has for the run (the trainer's EventSink numbers after it)."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["TUNERDECK_RUN_ID"] = run_id
    env["TUNERDECK_CALLBACK_TOKEN"] = token
    env["TUNERDECK_SEQ_AFTER"] = str(max(0, int(seq_after)))
    if callback_url:
        env["TUNERDECK_CALLBACK_URL"] = callback_url
    else:
        env.pop("TUNERDECK_CALLBACK_URL", None)
    return env


# ---- processes ------------------------------------------------------------------------------
def process_matches(pid: int | None, create_time: float | None) -> bool:
    """Is `pid` still the process we started (not a recycled pid), and not a zombie?"""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def create_time_of(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _is_trainer(proc: psutil.Process) -> bool:
    """Runs the trainer module itself (`python [-u] -m trainer`), not a launcher of it."""
    with contextlib.suppress(psutil.Error, ValueError, IndexError):
        cmd = proc.cmdline()
        first_module = cmd.index("-m") + 1
        return cmd[first_module] == "trainer"
    return False


def trainer_processes(pid: int) -> list[psutil.Process]:
    """The training processes under launcher `pid`: `python -m trainer` ones whose parent is
    not itself a trainer (so data-loader workers are left to their parent)."""
    try:
        root = psutil.Process(pid)
        family = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    trainers = [p for p in family if _is_trainer(p)]
    pids = {p.pid for p in trainers}
    return [p for p in trainers if _safe_ppid(p) not in pids]


def _safe_ppid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def request_stop(pid: int) -> None:
    """SIGTERM to the training processes only: each checkpoints and emits `stopped`. The
    launcher (accelerate/torchrun) then exits by itself; it is not signalled, because it would
    forward a second SIGTERM, which the trainer takes as 'exit now'."""
    targets = trainer_processes(pid)
    if not targets:
        with contextlib.suppress(psutil.Error):
            targets = [psutil.Process(pid)]
    for proc in targets:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)


def kill_group(pid: int) -> None:
    """SIGKILL the whole process group the run was started in (its own session)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
