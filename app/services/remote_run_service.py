"""The RunService of webui mode: every call goes to a trainer-mode server's REST API, and its
all-runs SSE stream is mirrored into the local EventBus so the pages work as in unified mode.

The mirror reconnects by itself with backoff, sending `Last-Event-ID: run_id:seq` of the last
event it received; after each (re)connect it also fills from `/api/runs/{id}/events` whatever
the bus still lacks (the bus drops repeats), so nothing is missed or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx

from app.services.event_bus import EventBus
from app.services.events import Event
from app.services.run_service import RunDetail, RunError, RunInfo

log = logging.getLogger(__name__)

BACKOFF_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0, 5.0)  # waits between reconnect attempts


class RemoteRunService:
    def __init__(
        self,
        bus: EventBus,
        base_url: str,
        token: str | None = None,
        *,
        timeout_s: float = 30.0,
    ) -> None:
        self.bus = bus
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.callback_url: str | None = None  # unused here: trainers report to the trainer server
        # Connection state for the layout's banner.
        self.reachable = False
        self.status_message = f"Connecting to the trainer server at {self.base_url}…"
        self._status_listeners: list[Callable[[bool, str], None]] = []
        self._cursor: str | None = None  # run_id:seq of the last event received
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------
    def install(self, app: Any) -> None:
        if not app.is_started:
            app.on_startup(self.ensure_started)
        app.on_shutdown(self.shutdown)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=headers, timeout=self.timeout_s
            )
        return self._client

    async def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._mirror())

    async def shutdown(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def on_status(self, listener: Callable[[bool, str], None]) -> Callable[[], None]:
        """Call `listener(reachable, message)` when the connection changes; returns the remover."""
        self._status_listeners.append(listener)
        return lambda: self._status_listeners.remove(listener)

    def _set_status(self, reachable: bool, message: str) -> None:
        if (reachable, message) == (self.reachable, self.status_message):
            return
        self.reachable, self.status_message = reachable, message
        for listener in list(self._status_listeners):
            try:
                listener(reachable, message)
            except Exception:
                log.exception("status listener failed")

    # ---- REST -----------------------------------------------------------------------------
    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise RunError(
                f"The trainer server at {self.base_url} is unreachable ({exc.__class__.__name__}); "
                "it reconnects by itself when the server is back.",
                503,
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            if isinstance(body, dict) and "error" in body:
                raise RunError(str(body["error"]), response.status_code, body.get("errors") or [])
            raise RunError(
                f"The trainer server answered {response.status_code} to {method} {path}.",
                response.status_code,
            )
        return body

    async def list_runs(self) -> list[RunInfo]:
        return [RunInfo.model_validate(r) for r in await self._call("GET", "/api/runs")]

    async def get_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(await self._call("GET", f"/api/runs/{run_id}"))

    async def get_detail(self, run_id: str, include_progress: bool = True) -> RunDetail:
        params = {"include_progress": str(include_progress).lower()}
        body = await self._call("GET", f"/api/runs/{run_id}/detail", params=params)
        return RunDetail.model_validate(body)

    async def start_run(
        self, config: dict[str, Any] | None = None, config_name: str | None = None
    ) -> RunInfo:
        payload: dict[str, Any] = {}
        if config is not None:
            payload["config"] = config
        if config_name is not None:
            payload["config_name"] = config_name
        return RunInfo.model_validate(await self._call("POST", "/api/runs", json=payload))

    async def stop_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(await self._call("POST", f"/api/runs/{run_id}/stop"))

    async def resume_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(await self._call("POST", f"/api/runs/{run_id}/resume"))

    async def delete_run(self, run_id: str) -> None:
        await self._call("DELETE", f"/api/runs/{run_id}")
        self.bus.forget(run_id)

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        body = await self._call("GET", f"/api/runs/{run_id}/events", params={"after": seq})
        return [Event.model_validate(e) for e in body]

    async def queue(self) -> list[RunInfo]:
        return [RunInfo.model_validate(r) for r in await self._call("GET", "/api/queue")]

    async def move_in_queue(self, run_id: str, position: int) -> list[RunInfo]:
        body = await self._call(
            "POST", f"/api/queue/{run_id}/move", params={"position": max(position, 0)}
        )
        return [RunInfo.model_validate(r) for r in body]

    async def cancel_queued(self, run_id: str) -> None:
        await self._call("DELETE", f"/api/queue/{run_id}")

    # ---- the event mirror -----------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        self.bus.publish(event)
        self._cursor = f"{event.run_id}:{event.seq}"

    def _have_up_to(self, run_id: str) -> int:
        """The highest seq of `run_id` below which the bus has every event."""
        missing = self.bus.missing(run_id)
        return missing[0] - 1 if missing else self.bus.last_seq(run_id)

    async def _fill(self, run_id: str) -> None:
        for event in await self.events_after(run_id, self._have_up_to(run_id)):
            self.bus.publish(event)

    async def _fill_all(self) -> None:
        """Everything the bus lacks of every run (after a (re)connect)."""
        for run in await self.list_runs():
            await self._fill(run.id)

    async def _mirror(self) -> None:
        attempt = 0
        while True:
            try:
                await self._follow_stream()
                attempt = 0  # the server closed a healthy stream: reconnect at once
                reason = "the trainer server closed the event stream"
            except asyncio.CancelledError:
                raise
            except (httpx.HTTPError, RunError) as exc:
                reason = getattr(exc, "message", None) or exc.__class__.__name__
            except Exception as exc:  # a malformed event must not end the mirror
                log.exception("event mirror failed")
                reason = str(exc)
            wait = BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]
            attempt += 1
            self._set_status(
                False,
                f"The trainer server at {self.base_url} is unreachable ({reason}); reconnecting…",
            )
            await asyncio.sleep(wait)

    async def _follow_stream(self) -> None:
        headers = {"Last-Event-ID": self._cursor} if self._cursor else {}
        timeout = httpx.Timeout(self.timeout_s, read=None)  # heartbeats every 15 s; no read limit
        async with self._http().stream(
            "GET", "/api/events/stream", headers=headers, timeout=timeout
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise RunError(f"event stream refused with status {response.status_code}", 503)
            self._set_status(True, f"Connected to the trainer server at {self.base_url}.")
            await self._fill_all()
            async for kind, data in _sse_messages(response):
                if kind == "cutoff":
                    return  # the server dropped us for being slow: reconnect from the cursor
                if kind != "message" or not data:
                    continue
                event = Event.model_validate_json(data)
                gap = event.seq > self._have_up_to(event.run_id) + 1
                self._publish(event)
                if gap:  # e.g. a run that began between the catch-up and the subscription
                    await self._fill(event.run_id)


async def _sse_messages(response: httpx.Response) -> Any:
    """(event type, data) of each message of a text/event-stream; comments are skipped."""
    kind, data = "message", []
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield kind, "\n".join(data)
            kind, data = "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                kind = value
            elif name == "data":
                data.append(value)
