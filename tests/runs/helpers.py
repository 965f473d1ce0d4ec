"""Helpers for the runs tests: demo configs, a service factory, waiting for a run state."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nicegui import ui
from nicegui.testing import User

from app.services.event_bus import EventBus
from app.services.run_launch import kill_group
from app.services.run_service import RunInfo
from app.services.run_supervisor import LocalRunService
from registry.evaluator import PlatformContext
from state.config_store import ConfigStore
from state.run_records import RunRecordStore
from state.web_ui_state import WebUIStateStore
from tests.page_probe import page_of

from ..demo_run import demo_config  # noqa: F401  (re-exported)
from ..waiting import wait_until_async

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")
CPU = PlatformContext(device="cpu", packages=frozenset())


def fake_command(effective: dict[str, Any], run_dir: Path, resume: bool) -> list[str]:
    """The command line of fake_trainer.py: for tests of the pages' own logic, not training."""
    cmd = [sys.executable, str(FAKE_TRAINER), "--config", str(run_dir / "run.toml")]
    return cmd + (["--resume_from_checkpoint", "latest"] if resume else [])


def command_builder() -> Callable[[dict[str, Any], Path, bool], list[str]] | None:
    # Developers without a working trainer can set TUNERDECK_TEST_FAKE_TRAINER=1; the
    # default (and CI) is the real `python -m trainer`.
    return fake_command if os.environ.get("TUNERDECK_TEST_FAKE_TRAINER") else None


class ServiceFactory:
    """Builds run services over the same records (a second one = the app restarted)."""

    def __init__(self) -> None:
        self.made: list[LocalRunService] = []

    def __call__(self, **kwargs: Any) -> LocalRunService:
        service = LocalRunService(
            EventBus(),
            RunRecordStore(),
            ConfigStore(),
            WebUIStateStore(),
            CPU,
            stop_grace_s=kwargs.pop("stop_grace_s", 60.0),
            command_builder=command_builder(),
            **kwargs,
        )
        self.made.append(service)
        return service

    def kill_all(self) -> None:
        for service in self.made:
            for live in service.history.runs.values():
                if live.record.pid:
                    kill_group(live.record.pid)
            for proc in service.processes.running.values():
                kill_group(proc.pid)


async def watchers_done(services: Iterable[LocalRunService], timeout: float = 30.0) -> None:
    """After their trainers were killed: until each service's watcher has seen its trainer's
    exit and recorded it, so no watcher is cut off when the test's event loop closes."""
    watchers = [
        proc.watcher
        for service in services
        for proc in service.processes.running.values()
        if proc.watcher is not None
    ]
    if watchers:
        _, pending = await asyncio.wait(watchers, timeout=timeout)
        assert not pending, f"{len(pending)} trainer watcher(s) still running after {timeout} s"


async def wait_for_run(
    service: Any,
    run_id: str,
    states: tuple[str, ...],
    timeout: float = 240.0,
    step_at_least: int = 0,
) -> RunInfo:
    """Until the run is in one of `states` (and past `step_at_least`); fails at once when it
    ends in another state, with its log."""
    run: RunInfo | None = None

    async def log_of(run: RunInfo) -> str:
        return "\n".join(run.log_tail or (await service.get_detail(run_id)).run.log_tail)

    async def reached() -> RunInfo | None:
        nonlocal run
        run = await service.get_run(run_id)
        if run.state in states and run.step >= step_at_least:
            return run
        if run.state in ("failed", "completed", "stopped"):
            raise AssertionError(
                f"run {run_id} ended {run.state} at step {run.step} ({run.message}); "
                f"wanted {states}\n{await log_of(run)}"
            )
        return None

    return await wait_until_async(
        reached,
        timeout,
        what=f"run {run_id} to be {states}",
        detail=lambda: f"last: {run}",
        interval=0.1,
    )


# ---- pages (NiceGUI's simulated browser) ----------------------------------------------------
def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


def step_of(user: User) -> int:
    text = element(user, "run-step").text  # "step 3/30", or a stage name before step 1
    return int(text.split()[1].split("/")[0]) if text.startswith("step ") else 0


def set_config(user: User, config: dict[str, Any]) -> None:
    """Edit the trainer page's form model, as its widgets would."""
    page = page_of(user)
    with user:
        for name, value in config.items():
            page.form.set_value(name, value)
