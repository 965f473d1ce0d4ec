"""Waiting in tests: poll a condition until it holds, never sleep a fixed time and hope.

`wait_until` (plain code, threads, subprocesses) and `wait_until_async` (inside the event
loop, which keeps running between checks) call `predicate` every `interval` seconds until it
returns something truthy, and return that value. After `timeout` seconds they raise
AssertionError naming `what` was awaited, with `detail()` appended when given (a log tail, the
last state seen). A predicate may raise AssertionError itself to give up early (a process
exited, a run failed). `wait_until_async` also accepts a predicate returning an awaitable.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _timed_out(what: str, timeout: float, detail: Callable[[], str] | None) -> AssertionError:
    message = f"timed out after {timeout:g} s waiting for {what}"
    if detail is not None:
        message += f"\n{detail()}"
    return AssertionError(message)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 60.0,
    *,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, detail)
        time.sleep(interval)  # pacing between checks, not synchronisation


async def wait_until_async(
    predicate: Callable[[], Any],
    timeout: float = 60.0,
    *,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout, detail)
        await asyncio.sleep(interval)  # pacing between checks; the loop runs meanwhile
