"""FastAPI dependencies of the routes: the services the app was configured with
(`app.state.services`, set by app.server.configure and app.trainer_server) and what they
hold. A service this server does not have is a 503 saying so."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from app.services.container import Services
from app.services.datasets import DatasetService, dataset_service
from app.services.event_bus import EventBus
from app.services.run_service import RunError, RunEventSink, RunService


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None:
        raise RunError("This server has no services configured.", 503)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_run_service(services: ServicesDep) -> RunService:
    if services.run_service is None:
        raise RunError("This server has no run service.", 503)
    return services.run_service


def get_event_sink(services: ServicesDep) -> RunEventSink:
    """The run service trainers report to (callbacks)."""
    service: Any = services.run_service
    if not isinstance(service, RunEventSink):
        raise RunError("This server supervises no runs.", 503)
    return service


def get_event_bus(services: ServicesDep) -> EventBus:
    if services.run_service is None or services.event_bus is None:
        raise RunError("This server has no run service.", 503)
    return services.event_bus


def get_dataset_service(services: ServicesDep) -> DatasetService:
    return dataset_service(services)


RunServiceDep = Annotated[RunService, Depends(get_run_service)]
EventSinkDep = Annotated[RunEventSink, Depends(get_event_sink)]
EventBusDep = Annotated[EventBus, Depends(get_event_bus)]
DatasetServiceDep = Annotated[DatasetService, Depends(get_dataset_service)]
