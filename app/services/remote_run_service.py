"""The RunService of webui mode: every call goes to a trainer-mode server's REST API, and its
all-runs SSE stream is mirrored into the local EventBus so the pages work as in unified mode.

The stream also carries the trainers' output lines (`?logs=true`), published as LogLine.
The mirror reconnects by itself with backoff, sending `Last-Event-ID: run_id:seq` of the last
event it received; after each (re)connect it also fills from `/api/runs/{id}/events` whatever
the bus still lacks (the bus drops repeats), so nothing is missed or delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from app.services.event_bus import EventBus, LogLine
from app.services.listeners import Listeners
from app.services.run_service import RunDetail, RunError, RunFile, RunInfo
from tunerdeck_common.events import Event

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
        self._status_listeners = Listeners("trainer server status")
        self._change_listeners = Listeners("run change")
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
        return self._status_listeners.add(listener)

    def on_change(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after a change made through this web UI (start, stop, queue, delete),
        so its other tabs redraw at once; changes made elsewhere arrive as events."""
        return self._change_listeners.add(listener)

    def _set_status(self, reachable: bool, message: str) -> None:
        if (reachable, message) == (self.reachable, self.status_message):
            return
        self.reachable, self.status_message = reachable, message
        self._status_listeners.notify(reachable, message)

    # What /callbacks asks: no trainer reports here (they report to the trainer server).
    def known(self, run_id: str) -> bool:
        return False

    def token_of(self, run_id: str) -> str | None:
        return None

    def ingest(self, event: Event) -> bool:
        return False

    # ---- REST -----------------------------------------------------------------------------
    def _unreachable(self, exc: Exception) -> RunError:
        return RunError(
            f"The trainer server at {self.base_url} is unreachable ({exc.__class__.__name__}); "
            "it reconnects by itself when the server is back.",
            503,
        )

    @staticmethod
    def _refused(response: httpx.Response, what: str) -> RunError:
        """The trainer server's own message for a 4xx/5xx answer."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "error" in body:
            return RunError(str(body["error"]), response.status_code, body.get("errors") or [])
        return RunError(
            f"The trainer server answered {response.status_code} to {what}.", response.status_code
        )

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http().request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            raise self._refused(response, f"{method} {path}")
        if method != "GET":
            self._change_listeners.notify()
        try:
            return response.json()
        except ValueError:
            return None

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

    async def kill_run(self, run_id: str) -> RunInfo:
        """Stop at once, without the stop's checkpoint (a second press of Stop)."""
        return RunInfo.model_validate(await self._call("POST", f"/api/runs/{run_id}/kill"))

    async def resume_run(self, run_id: str) -> RunInfo:
        return RunInfo.model_validate(await self._call("POST", f"/api/runs/{run_id}/resume"))

    async def delete_run(self, run_id: str) -> None:
        await self._call("DELETE", f"/api/runs/{run_id}")
        self.bus.forget(run_id)

    async def events_after(self, run_id: str, seq: int = 0) -> list[Event]:
        body = await self._call("GET", f"/api/runs/{run_id}/events", params={"after": seq})
        return [Event.model_validate(e) for e in body]

    async def open_file(self, run_id: str, path: str) -> RunFile:
        """The trainer server's file, streamed (it lives on that machine's disk)."""
        client = self._http()
        request = client.build_request("GET", f"/api/runs/{run_id}/file", params={"path": path})
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400:
            await response.aread()
            await response.aclose()
            raise self._refused(response, f"GET {request.url.path}")
        length = response.headers.get("content-length", "")

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_bytes():
                    yield chunk
            finally:
                await response.aclose()

        return RunFile(
            name=path.rsplit("/", 1)[-1],
            chunks=chunks(),
            media_type=response.headers.get("content-type"),
            size=int(length) if length.isdigit() else None,
        )

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

    def _publish_line(self, data: str) -> None:
        """A trainer's output line, as the trainer server saw it (not replayed on reconnect)."""
        try:
            line = json.loads(data)
            item = LogLine(str(line["run_id"]), str(line["text"]), float(line["ts"]))
        except (ValueError, KeyError, TypeError):
            log.warning("skipped a malformed output line from the trainer server: %.200s", data)
            return
        self.bus.publish_line(item)

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
            "GET",
            "/api/events/stream",
            params={"logs": "true"},
            headers=headers,
            timeout=timeout,
        ) as response:
            if response.status_code != 200:
                await response.aread()
                raise RunError(f"event stream refused with status {response.status_code}", 503)
            self._set_status(True, f"Connected to the trainer server at {self.base_url}.")
            await self._fill_all()
            async for kind, data in _sse_messages(response):
                if kind == "cutoff":
                    return  # the server dropped us for being slow: reconnect from the cursor
                if kind == "log" and data:
                    self._publish_line(data)
                    continue
                if kind != "message" or not data:
                    continue
                event = Event.model_validate_json(data)
                gap = event.seq > self._have_up_to(event.run_id) + 1
                self._publish(event)
                if gap:  # e.g. a run that began between the catch-up and the subscription
                    await self._fill(event.run_id)


async def _sse_messages(response: httpx.Response) -> Any:
    """(event type, data) of each message of a text/event-stream; comments are skipped."""
    kind, data = "message", list[str]()
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
