"""The UI process must start fast: building the app and rendering '/' never imports torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, importlib, pkgutil, sys
import app
from nicegui.testing.user_simulation import user_simulation
from app.server import configure
from app.services.container import build_services

# every module of the app package, including the ones other parts add
for info in pkgutil.walk_packages(app.__path__, 'app.'):
    if not info.name.endswith('__main__'):
        importlib.import_module(info.name)

async def render():
    async with user_simulation() as user:
        configure(build_services())
        await user.open('/')
        await user.should_see('--model_family')

asyncio.run(render())
heavy = sorted(m for m in ('torch', 'diffusers', 'accelerate', 'transformers', 'peft') if m in sys.modules)
print('HEAVY=' + ','.join(heavy))
"""


def test_rendering_the_page_imports_no_torch(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NICEGUI_STORAGE_PATH": str(tmp_path / "storage"),
    }
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "HEAVY=\n" in result.stdout, f"the UI imported: {result.stdout.strip().splitlines()[-1]}"
