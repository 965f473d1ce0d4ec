"""Assembles the web app: the services, every page and every router on NiceGUI's FastAPI app.

`configure(services)` is what `python -m app`, the tests and the bench all call, so they
exercise the same wiring. The routes find the services on `app.state.services`.
"""

from __future__ import annotations

from nicegui import app as nicegui_app

from app.routes import install_routes
from app.services.container import Services, set_services
from app.services.run_supervisor import LocalRunService
from app.services.stall import StallWatch


def register_pages() -> None:
    """Every page declares its routes with @ui.page in its `register()`."""
    # Imported here, on each call: NiceGUI's test harness drops page modules between tests.
    from app.pages import monitor_page, runs_page, trainer_page

    for page in (trainer_page, monitor_page, runs_page):
        page.register()


def configure(services: Services, *, pages: bool = True) -> None:
    """Make `services` current and add the routers (and, unless told not to, the pages)."""
    set_services(services)
    nicegui_app.state.services = services
    install_routes(nicegui_app)
    if services.run_service is not None:
        services.run_service.install(nicegui_app)  # started and shut down with the app
    # The trainers this server runs are watched for stalls; a webui-mode server's are watched
    # by their own server. (Configured again in an app already started, as tests do: no watch.)
    local = isinstance(services.run_service, LocalRunService)
    if local and services.event_bus is not None and not nicegui_app.is_started:
        watch = StallWatch(services.event_bus, services.run_service)
        nicegui_app.on_startup(watch.start)
    if pages:
        register_pages()
