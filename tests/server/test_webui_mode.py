"""Webui mode's run service: a RemoteRunService drives a trainer-mode server (a subprocess on
a loopback port) and mirrors its events into the local bus, across a server restart."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.main import main
from app.server_args import TRAINER_TOKEN_ENV, build_parser, trainer_token
from app.services.event_bus import EventBus
from app.services.remote_run_service import RemoteRunService
from app.services.run_service import RunError
from tunerdeck_common.events import Event

from ..conftest import link_shared_models
from ..waiting import wait_until_async
from .helpers import ServerProcess, demo_config


@pytest.fixture
def trainer(home: Path, shared_models: Path) -> Iterator[ServerProcess]:
    link_shared_models(home, shared_models)  # the demo model is generated once per session
    server = ServerProcess(["--mode", "trainer"], home, ready_path="/api/server")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def ended(events: list[Event], run_id: str) -> bool:
    return any(
        e.run_id == run_id
        and e.type == "lifecycle"
        and e.data.get("state") in ("completed", "failed", "stopped")
        for e in events
    )


async def test_remote_run_mirrors_events_across_a_trainer_server_restart(
    trainer: ServerProcess,
) -> None:
    bus = EventBus()
    received: list[Event] = []
    bus.listen(lambda item: received.append(item) if isinstance(item, Event) else None)
    remote = RemoteRunService(bus, trainer.url)
    await remote.ensure_started()
    try:
        await wait_until_async(lambda: remote.reachable, what="the trainer server reachable")
        run = await remote.start_run(config=demo_config(40))
        assert run.id in [r.id for r in await remote.list_runs()]

        def progressed() -> int:
            return sum(1 for e in received if e.run_id == run.id and e.type == "progress")

        await wait_until_async(lambda: progressed() >= 2, 240, what="2 progress events")

        # The trainer server goes away mid-run: the mirror says so, then catches up.
        trainer.stop()
        await wait_until_async(
            lambda: not remote.reachable, timeout=20, what="the mirror to notice the server gone"
        )
        assert "unreachable" in remote.status_message
        with pytest.raises(RunError) as refused:
            await remote.get_run(run.id)
        assert refused.value.status == 503
        killed_before_end = not ended(received, run.id)
        trainer.start()
        await wait_until_async(
            lambda: remote.reachable, timeout=30, what="the restarted server reachable"
        )
        await wait_until_async(
            lambda: ended(received, run.id), timeout=90, what="the run's end event"
        )

        mine = [e.seq for e in received if e.run_id == run.id]
        counts = Counter(mine)
        assert max(counts.values()) == 1, "an event was delivered twice"
        on_server = [e.seq for e in await remote.events_after(run.id, 0)]
        assert sorted(mine) == on_server == list(range(1, len(on_server) + 1))
        assert killed_before_end, "the run ended before the restart: make it longer"
        final = await remote.get_run(run.id)
        assert final.state == "completed"
        assert final.step == 40
        detail = await remote.get_detail(run.id)
        assert detail.run.id == run.id and detail.progress
    finally:
        await remote.shutdown()


async def test_remote_errors_carry_the_trainer_servers_message(trainer: ServerProcess) -> None:
    remote = RemoteRunService(EventBus(), trainer.url)
    try:
        with pytest.raises(RunError) as missing:
            await remote.get_run("no-such-run")
        assert missing.value.status == 404
        with pytest.raises(RunError) as bad:
            await remote.start_run(config_name="no-such-config")
        assert bad.value.status >= 400 and bad.value.message
        with pytest.raises(RunError) as no_kill:
            await remote.kill_run("no-such-run")
        assert no_kill.value.status == 404
        with pytest.raises(RunError) as no_file:
            await remote.open_file("no-such-run", "validation/step-000001/0.png")
        assert no_file.value.status == 404 and "no-such-run" in no_file.value.message
    finally:
        await remote.shutdown()


def test_webui_mode_without_a_trainer_url_says_what_is_needed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--mode", "webui"]) == 2
    assert "--trainer-url" in capsys.readouterr().err


async def test_changes_made_through_the_webui_tell_its_other_tabs(trainer: ServerProcess) -> None:
    remote = RemoteRunService(EventBus(), trainer.url)
    changes: list[None] = []
    remove = remote.on_change(lambda: changes.append(None))
    try:
        run = await remote.start_run(config=demo_config(500))  # still running at Stop
        assert len(changes) == 1  # every open page of this web UI redraws
        await remote.get_run(run.id)
        await remote.list_runs()
        assert len(changes) == 1  # reading changes nothing
        with pytest.raises(RunError):
            await remote.resume_run("no-such-run")
        assert len(changes) == 1  # a refused request changed nothing either
        remove()
        await remote.stop_run(run.id)
        assert len(changes) == 1
    finally:
        await remote.shutdown()


async def test_the_trainer_servers_token_has_its_own_flag(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRAINER_TOKEN_ENV, raising=False)
    guarded = ServerProcess(
        ["--mode", "trainer", "--host", "0.0.0.0", "--token", "trainer-secret"],
        home,
        ready_path="/api/server",
    )
    guarded.start()

    async def runs_seen_with(*argv: str) -> list[str]:
        args = build_parser().parse_args(["--mode", "webui", "--trainer-url", guarded.url, *argv])
        remote = RemoteRunService(EventBus(), guarded.url, trainer_token(args))
        try:
            return [run.id for run in await remote.list_runs()]
        finally:
            await remote.shutdown()

    try:
        # This server's own token is never sent to the trainer server.
        with pytest.raises(RunError) as refused:
            await runs_seen_with("--token", "trainer-secret")
        assert refused.value.status == 401
        assert (
            await runs_seen_with("--token", "ui-secret", "--trainer-token", "trainer-secret") == []
        )
        monkeypatch.setenv(TRAINER_TOKEN_ENV, "trainer-secret")
        assert await runs_seen_with() == []
    finally:
        guarded.stop()
