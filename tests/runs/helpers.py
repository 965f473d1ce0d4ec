"""Helpers for the runs tests: demo configs, a service factory, waiting for a run state."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
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


async def wait_for(
    service: Any,
    run_id: str,
    states: tuple[str, ...],
    timeout: float = 240.0,
    step_at_least: int = 0,
) -> RunInfo:
    """Poll until the run is in one of `states` (and past `step_at_least`); fail with its log."""
    deadline = time.monotonic() + timeout
    run = await service.get_run(run_id)
    while time.monotonic() < deadline:
        run = await service.get_run(run_id)
        if run.state in states and run.step >= step_at_least:
            return run
        if run.state in ("failed", "completed", "stopped") and run.state not in states:
            break
        await asyncio.sleep(0.1)
    tail = "\n".join(run.log_tail or (await service.get_detail(run_id)).run.log_tail)
    raise AssertionError(
        f"run {run_id} is {run.state} at step {run.step} ({run.message}); wanted {states}\n{tail}"
    )


# ---- pages (NiceGUI's simulated browser) ----------------------------------------------------
def element(user: User, marker: str) -> ui.element:
    (found,) = user.find(marker=marker).elements
    return found


async def eventually(check: Callable[[], bool], what: str, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


def step_of(user: User) -> int:
    text = element(user, "run-step").text  # "step 3/30", or a stage name before step 1
    return int(text.split()[1].split("/")[0]) if text.startswith("step ") else 0


def set_config(user: User, config: dict[str, Any]) -> None:
    """Edit the trainer page's form model, as its widgets would."""
    page = page_of(user)
    with user:
        for name, value in config.items():
            page.form.set_value(name, value)
