"""The command a user copies is the one the server runs: both come from registry.launch."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest

from app.services.configs import command_lines
from app.services.run_launch import trainer_command
from registry.defaults import default_config

CASES: dict[str, dict[str, Any]] = {
    "one process": {},
    "several processes": {"num_processes": 2, "main_process_port": 29555},
    "several machines": {
        "num_processes": 4,
        "num_machines": 2,
        "machine_rank": 1,
        "main_process_ip": "10.0.0.2",
        "rdzv_backend": "c10d",
    },
    "dynamo": {
        "num_processes": 2,
        "dynamo_backend": "inductor",
        "dynamo_mode": "max-autotune",
        "dynamo_use_fullgraph": True,
        "use_cpu": True,
    },
}


def _copied(config: dict[str, Any]) -> list[str]:
    words = shlex.split(command_lines(config, None)["accelerate"])
    assert words[:2] == ["accelerate", "launch"]
    return words[2 : words.index("-m")]


def _launched(config: dict[str, Any], run_dir: Path) -> list[str] | None:
    cmd = trainer_command({**default_config(), **config}, run_dir, resume=False)
    if cmd[1:3] != ["-m", "accelerate.commands.launch"]:
        return None
    return cmd[3 : cmd.index("trainer") - 1]


@pytest.mark.parametrize("case", list(CASES))
def test_copied_launcher_flags_are_the_launched_ones(case: str, tmp_path: Path) -> None:
    config = CASES[case]
    launched = _launched(config, tmp_path)
    copied = _copied(config)
    if case == "one process":
        # The server runs one process without the launcher; the copied line stays valid.
        assert launched is None
        assert "--multi_gpu" not in copied
        return
    assert copied == launched
    assert "--multi_gpu" in copied  # accelerate starts several processes only with it
    if case == "several machines":
        assert copied[copied.index("--main_process_ip") + 1] == "10.0.0.2"
        assert copied[copied.index("--machine_rank") + 1] == "1"
    else:
        assert "--machine_rank" not in copied
    if case == "dynamo":
        assert copied[copied.index("--dynamo_mode") + 1] == "max-autotune"
        assert "--dynamo_use_fullgraph" in copied
        assert "--cpu" not in copied  # several processes: --multi_gpu, never --cpu
    else:
        assert "--dynamo_mode" not in copied


def test_the_readme_multi_gpu_line_is_what_the_launcher_writes() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if "accelerate launch --" in ln)
    words = shlex.split(line[line.index("accelerate launch") :].rstrip("`"))
    launched = _launched({"num_processes": 2}, Path("run"))
    assert launched is not None
    for flag in ("--multi_gpu", "--num_processes"):
        assert flag in words and flag in launched
    assert words[words.index("--num_processes") + 1] == "2"
