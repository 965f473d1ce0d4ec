"""Acceptance: a trainer-mode server and a webui-mode server, each a real `python -m app` on its
own loopback port. Everything goes through the webui server: start a demo run, watch its
progress on the webui's own event stream, stop it (a checkpoint), resume it (the next step),
fetch a validation image from the trainer's disk, see the trainer's output lines, and see
the run on the webui's pages."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..conftest import link_shared_models
from ..waiting import wait_until_async
from .helpers import ServerProcess, SSEMessage, demo_config, sse_messages

STEPS = 20


@pytest.fixture
def servers(tmp_path: Path, shared_models: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    (tmp_path / "trainer-home").mkdir()
    link_shared_models(tmp_path / "trainer-home", shared_models)  # one demo model a session
    trainer = ServerProcess(
        ["--mode", "trainer"], tmp_path / "trainer-home", ready_path="/api/server"
    )
    trainer.start()
    webui = ServerProcess(
        ["--mode", "webui", "--trainer-url", trainer.url], tmp_path / "webui-home"
    )
    try:
        webui.start()
        yield trainer, webui
    finally:
        webui.stop()
        trainer.stop()


@contextlib.asynccontextmanager
async def watching(client: httpx.AsyncClient) -> AsyncIterator[list[SSEMessage]]:
    """Every message of the webui's all-runs stream (with output lines) while inside."""
    got: list[SSEMessage] = []
    opened = asyncio.Event()

    async def read() -> None:
        async with client.stream("GET", "/api/events/stream", params={"logs": "true"}) as response:
            assert response.status_code == 200
            opened.set()
            async for message in sse_messages(response):
                if message.event != "comment":
                    got.append(message)

    task = asyncio.create_task(read())
    await asyncio.wait({task, asyncio.create_task(opened.wait())}, timeout=30)
    if task.done():
        task.result()  # the stream failed to open: show why
    try:
        yield got
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def events_of(messages: list[SSEMessage], run_id: str) -> list[dict[str, Any]]:
    return [m.json() for m in messages if m.event == "message" and m.json()["run_id"] == run_id]


def lifecycle_states(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["state"] for e in events if e["type"] == "lifecycle"]


async def run_state(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def wait_state(client: httpx.AsyncClient, run_id: str, state: str) -> dict[str, Any]:
    info: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        nonlocal info
        info = await run_state(client, run_id)
        return info if info["state"] == state else None

    return await wait_until_async(
        reached, 240, what=f"run {run_id} to become {state}", detail=lambda: f"last: {info}"
    )


async def test_demo_run_driven_from_the_webui_server(
    servers: tuple[ServerProcess, ServerProcess],
) -> None:
    trainer, webui = servers
    config = demo_config(
        STEPS,
        validation_steps=10,
        validation_inference_steps=2,
        num_validation_images=1,
    )
    async with (
        httpx.AsyncClient(base_url=webui.url, timeout=60) as client,
        watching(client) as stream,
    ):
        started = await client.post("/api/runs", json={"config": config})
        assert started.status_code == 201, started.text
        run_id = started.json()["id"]

        def progress_steps() -> list[int]:
            return [e["data"]["step"] for e in events_of(stream, run_id) if e["type"] == "progress"]

        await wait_until_async(
            lambda: len(progress_steps()) >= 3, timeout=180, what="3 progress events"
        )

        # Stop: the trainer finishes its step, checkpoints and says "stopped".
        stopping = await client.post(f"/api/runs/{run_id}/stop")
        assert stopping.status_code == 200, stopping.text
        stopped = await wait_state(client, run_id, "stopped")
        assert stopped["has_checkpoint"] and stopped["can_resume"]
        stop_step = stopped["step"]
        assert 3 <= stop_step < STEPS, "the run ended before the stop: make it longer"
        await wait_until_async(
            lambda: "stopped" in lifecycle_states(events_of(stream, run_id)),
            what="the stopped event on the stream",
        )
        checkpoints = [e for e in events_of(stream, run_id) if e["type"] == "checkpoint"]
        assert checkpoints and checkpoints[-1]["data"]["step"] == stop_step

        # The trainer's own output line about the stop reached the webui's stream.
        def output_lines() -> list[str]:
            return [
                m.json()["text"]
                for m in stream
                if m.event == "log" and m.json()["run_id"] == run_id
            ]

        await wait_until_async(
            lambda: any("SIGTERM received" in t for t in output_lines()),
            what="the trainer's SIGTERM output line",
        )
        assert all(m.id is None for m in stream if m.event == "log")

        # Resume: it continues at the next step and runs to the end.
        resumed = await client.post(f"/api/runs/{run_id}/resume")
        assert resumed.status_code == 200, resumed.text
        await wait_until_async(
            lambda: "completed" in lifecycle_states(events_of(stream, run_id)),
            timeout=240,
            what="the completed event on the stream",
        )
        steps = progress_steps()
        after_stop = steps[steps.index(stop_step) + 1]
        assert after_stop == stop_step + 1
        assert steps == list(range(1, STEPS + 1)), "a step was repeated or skipped"
        final = await wait_state(client, run_id, "completed")
        assert final["step"] == STEPS

        # Each seq once, none missing, and the same as the trainer server's record.
        seqs = [e["seq"] for e in events_of(stream, run_id)]
        assert max(Counter(seqs).values()) == 1, "an event was delivered twice"
        recorded = (await client.get(f"/api/runs/{run_id}/events")).json()
        assert seqs == [e["seq"] for e in recorded] == list(range(1, len(recorded) + 1))
        on_trainer = httpx.get(f"{trainer.url}/api/runs/{run_id}/events", timeout=30).json()
        assert recorded == on_trainer

        # A validation image, read from the trainer server's disk through the webui.
        detail = (await client.get(f"/api/runs/{run_id}/detail")).json()
        assert detail["validations"], "no validation images were recorded"
        image = detail["validations"][0]["images"][0]["path"]
        relative = str(Path(image).relative_to(detail["run"]["run_dir"]))
        png = await client.get(f"/api/runs/{run_id}/file", params={"path": relative})
        assert png.status_code == 200, png.text
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
        assert png.headers["content-type"] == "image/png"
        outside = await client.get(f"/api/runs/{run_id}/file", params={"path": "../../webui.json"})
        assert outside.status_code == 404
        assert "No file" in outside.json()["error"]

        # The webui's pages show the run, and its monitor page's images load through the webui.
        page = await client.get(f"/monitor/{run_id}")
        assert page.status_code == 200
        # Images only: the page also links the run's full event record (events.jsonl).
        shown = re.findall(rf"/api/runs/{run_id}/file\?path=[^\"\\&]+?\.png", page.text)
        assert shown, "the monitor page shows no validation image"
        from_page = await client.get(shown[0])
        assert from_page.status_code == 200
        assert from_page.content.startswith(b"\x89PNG")
        # Trainers report to the trainer server; the webui server takes no callbacks.
        callback = await client.post("/callbacks", json={"run_id": run_id, "events": []})
        assert callback.status_code == 401
        assert "did not start that run" in callback.json()["error"]
        runs_page = await client.get("/runs")
        assert runs_page.status_code == 200
        assert run_id in runs_page.text
