"""HTTP routers. Each module named in ROUTERS exposes `router = APIRouter(...)`;
app.server includes them all. Other parts append their module names."""

ROUTERS: list[str] = ["callbacks", "runs_api", "datasets_api"]
