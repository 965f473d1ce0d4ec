"""HTTP routers. Each module named in ROUTERS exposes `router = APIRouter(...)`;
app.server (and app.trainer_server) include them all. Other parts append their module names."""

from __future__ import annotations

import importlib
from typing import Any

ROUTERS: list[str] = ["callbacks", "runs_api", "datasets_api", "sse"]


def load_routers() -> list[Any]:
    """Every router of ROUTERS (imported here so trainer mode needs no NiceGUI)."""
    return [importlib.import_module(f"app.routes.{name}").router for name in ROUTERS]
