"""Fixtures for the server tests: a private data dir, and a trainer-mode app whose run
service is an in-memory event source over the real EventBus (the streams under test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from app.access import AccessPolicy
from app.services.container import Services, build_services, set_services
from app.services.event_bus import EventBus
from app.trainer_server import build_trainer_app

from .helpers import MemoryRuns, served


@pytest.fixture
def home(tunerdeck_home: Path) -> Path:
    """The test's private data dir (tests/conftest.py), by its short name."""
    return tunerdeck_home


@pytest.fixture
def services(home: Path) -> Iterator[Services]:
    services = build_services()
    yield services
    set_services(None)


@pytest.fixture
def memory_runs(services: Services) -> MemoryRuns:
    bus = EventBus(queue_size=50)
    runs = MemoryRuns(bus)
    services.event_bus = bus
    services.run_service = runs
    return runs


@pytest.fixture
def stream_app(services: Services, memory_runs: MemoryRuns) -> FastAPI:
    return build_trainer_app(services, AccessPolicy(None, "secret"))


@pytest.fixture
async def stream_url(stream_app: FastAPI) -> AsyncIterator[str]:
    async with served(stream_app) as url:
        yield url
