"""The process-wide services, built once at start-up and handed to every page and route
(tests build their own). Services never import pages, routes or NiceGUI widgets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app.services.tabs import TabService
from registry.evaluator import PlatformContext
from registry.platform import detect_platform
from state.config_store import ConfigStore
from state.run_records import RunRecordStore
from state.web_ui_state import WebUIStateStore
from tunerdeck_common.paths import data_dir

if TYPE_CHECKING:  # imported where built: trainer mode and the tests need only some of them
    from app.services.datasets import DatasetService
    from app.services.event_bus import EventBus
    from app.services.run_service import RunService


@dataclass
class Services:
    prefs: WebUIStateStore
    configs: ConfigStore
    tabs: TabService
    platform: PlatformContext
    # None where this process has none; pages then show a clear "not available" state.
    run_service: RunService | None = None
    event_bus: EventBus | None = None
    datasets: DatasetService | None = None

    def allowed_roots(self) -> list[Path]:
        """Folders the server-side folder picker may show."""
        prefs = self.prefs.prefs
        roots = [Path(prefs.datasets_root), Path(prefs.output_root), data_dir()]
        unique: list[Path] = []
        for root in roots:
            if root not in unique:
                unique.append(root)
        return unique


def build_services(
    *,
    prefs_path: Path | None = None,
    configs_root: Path | None = None,
    platform: PlatformContext | None = None,
    trainer_url: str | None = None,
    trainer_token: str | None = None,
    callback_url: str | None = None,
) -> Services:
    """The services of one process: with `trainer_url` (webui mode) a trainer-mode server's
    runs, else this machine's, whose trainers report to `callback_url` (default: the
    server's own). The server that hosts them starts and shuts down the run service
    (`install(app)` for NiceGUI's app, a lifespan for the trainer server)."""
    services = Services(
        prefs=WebUIStateStore(prefs_path),
        configs=ConfigStore(configs_root),
        tabs=TabService(),
        platform=platform or detect_platform(),
    )
    from app.services.event_bus import EventBus

    services.event_bus = EventBus()
    if trainer_url:  # webui mode: no local runs, a trainer-mode server's instead
        from app.services.remote_run_service import RemoteRunService

        services.run_service = RemoteRunService(services.event_bus, trainer_url, trainer_token)
    else:
        from app.services.run_supervisor import LocalRunService

        services.run_service = LocalRunService(
            services.event_bus,
            RunRecordStore(),
            services.configs,
            services.prefs,
            services.platform,
            callback_url=callback_url,
        )
    return services


_services: Services | None = None


def get_services() -> Services:
    global _services
    if _services is None:
        _services = build_services()
    return _services


def set_services(services: Services | None) -> None:
    global _services
    _services = services
