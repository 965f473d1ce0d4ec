"""The process-wide services, built once and handed to every page (tests swap them in).

Other parts add their own services as attributes (run_service, event_bus, datasets...):
either pass them to `Services(...)` through `extras`, or set them after `build_services()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.services.platform import detect_platform
from app.services.tabs import DATASETS_TAB, TabService
from registry.evaluator import PlatformContext
from state.config_store import ConfigStore
from state.paths import data_dir
from state.web_ui_state import WebUIStateStore


@dataclass
class Services:
    prefs: WebUIStateStore
    configs: ConfigStore
    tabs: TabService
    platform: PlatformContext
    # Filled by other parts; pages check for None and show a clear "not available" state.
    run_service: Any = None
    event_bus: Any = None
    datasets: Any = None
    extras: dict[str, Any] = field(default_factory=dict)

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
    nicegui_hooks: bool = True,
    trainer_url: str | None = None,
    trainer_token: str | None = None,
) -> Services:
    """`nicegui_hooks=False` (trainer mode) leaves NiceGUI unimported; the caller then starts
    and shuts down the run service itself."""
    services = Services(
        prefs=WebUIStateStore(prefs_path),
        configs=ConfigStore(configs_root),
        # Without NiceGUI no tab is drawn: a placeholder keeps the datasets tab's page module
        # (NiceGUI) from being imported.
        tabs=TabService() if nicegui_hooks else TabService(hooks={DATASETS_TAB: None}),  # type: ignore[dict-item]
        platform=platform or detect_platform(),
    )
    if trainer_url:  # webui mode: no local runs, a trainer-mode server's instead
        from app.services.event_bus import EventBus
        from app.services.remote_run_service import RemoteRunService

        services.event_bus = EventBus()
        services.run_service = RemoteRunService(services.event_bus, trainer_url, trainer_token)
        if nicegui_hooks:
            from nicegui import app

            services.run_service.install(app)
        return services
    from app.services.run_wiring import attach_run_service  # runs part: event bus + run service

    attach_run_service(services, install=nicegui_hooks)
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
