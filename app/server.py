"""Assembles the web app: the services, every page and every router on NiceGUI's FastAPI app.

`configure(services)` is what `python -m app`, the tests and the bench all call, so they
exercise the same wiring.
"""

from __future__ import annotations

import importlib

from nicegui import app as nicegui_app

from app.pages import PAGE_MODULES
from app.routes import install_routes
from app.services.container import Services, set_services


def register_pages() -> None:
    for name in PAGE_MODULES:
        importlib.import_module(f"app.pages.{name}").register()


def configure(services: Services, *, pages: bool = True) -> None:
    """Make `services` current and add the routers (and, unless told not to, the pages)."""
    set_services(services)
    install_routes(nicegui_app)
    if services.run_service is not None and services.event_bus is not None:
        from app.services.stall import StallWatch

        # Runs the trainers of this server; a webui-mode server's runs are watched by theirs.
        # (Configured again in an app that is already started, as tests do: no watch.)
        if hasattr(services.run_service, "ingest") and not nicegui_app.is_started:
            watch = StallWatch(services.event_bus, services.run_service)
            nicegui_app.on_startup(watch.start)
    if pages:
        register_pages()
