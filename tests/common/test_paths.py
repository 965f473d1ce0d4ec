"""The server, the stores and the trainer agree on where tunerdeck keeps its files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each side's own way to the data folder: the stores' run records, the UI's demo dataset
# default, the trainer's demo model.
PROBE = """
from state.run_records import RunRecordStore
from tunerdeck_common.paths import default_datasets_root
import trainer.demo_model as demo_model
print(RunRecordStore().root.parent)
print(default_datasets_root().parent)
print(demo_model.demo_model_path().parent.parent)
"""


def test_tilde_in_tunerdeck_home_is_the_same_folder_for_server_and_trainer(
    tmp_path: Path,
) -> None:
    env = {"HOME": str(tmp_path), "TUNERDECK_HOME": "~/x", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    seen = {Path(line) for line in out.stdout.splitlines()}
    assert seen == {tmp_path / "x"}  # `~` expanded, one folder for everyone


def test_unset_home_uses_the_platform_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunerdeck_common import paths

    monkeypatch.delenv("TUNERDECK_HOME", raising=False)
    assert paths.data_dir().name == "tunerdeck"
    assert paths.models_dir().parent == paths.data_dir()
