"""Builds the runs part's services (event bus, local run service) onto a `Services` object."""

from __future__ import annotations

from typing import Any

from app.services.event_bus import EventBus
from app.services.run_supervisor import LocalRunService
from state.run_records import RunRecordStore


def attach_run_service(services: Any, *, install: bool = True) -> LocalRunService:
    bus = EventBus()
    service = LocalRunService(
        bus, RunRecordStore(), services.configs, services.prefs, services.platform
    )
    services.event_bus = bus
    services.run_service = service
    if install:
        from nicegui import app

        service.install(app)
    return service
