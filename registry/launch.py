"""How a run is launched: the one builder of `accelerate launch` flags.

The server's launcher (app/services/run_launch.py), the UI's "copy as command line" and the
trainer's own launch check all call `launch_args`, so the command a user copies is the one the
server runs. The flags come from the catalogue (`extra["accelerate"]` of the hardware fields);
a field its dependencies switch off (machine_rank on one machine, dynamo_mode without a
dynamo backend) is not passed.

Several processes or machines also need `--multi_gpu`: accelerate 1.x starts several
processes through torchrun only with it (`--cpu` would need mpirun); without a GPU the trainer
itself falls back to CPU + gloo. So `use_cpu` becomes `--cpu` for one process only.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from registry.catalogue import FIELDS
from registry.cli import format_value
from registry.evaluator import evaluate
from registry.platform import any_platform

# Launcher values that mean "accelerate's own default": not passed.
_LEAVE_DEFAULT: dict[str, Any] = {"num_cpu_threads_per_process": 0}


def process_count(effective: Mapping[str, Any]) -> int:
    """Processes the run asks for (num_processes counts them across all machines)."""
    return int(effective["num_processes"])


def needs_accelerate(effective: Mapping[str, Any]) -> bool:
    """One process runs as `python -m trainer`; more, or more machines, need the launcher."""
    return process_count(effective) > 1 or int(effective["num_machines"]) > 1


def launch_args(effective: Mapping[str, Any]) -> list[str]:
    """The `accelerate launch` flags for an effective config (every field present)."""
    states = evaluate(effective, any_platform())  # flags do not depend on this machine
    several = needs_accelerate(effective)
    args: list[str] = []
    for name, f in FIELDS.items():  # catalogue order
        flag = f.extra.get("accelerate")
        if not flag or not states[name].active:
            continue
        value = effective.get(name)
        if value is None or value == "" or _LEAVE_DEFAULT.get(name, object()) == value:
            continue
        if f.extra.get("accelerate_form") == "switch":
            if value is True and not (flag == "--cpu" and several):
                args.append(flag)
        else:
            args += [flag, format_value(f, value)]
    if several:
        args.append("--multi_gpu")
    return args


def launch_command_line(effective: Mapping[str, Any], config_path: str = "config.toml") -> str:
    """`accelerate launch ... -m trainer --config PATH`, as a user would type it."""
    words = ["accelerate", "launch", *launch_args(effective), "-m", "trainer"]
    return shlex.join([*words, "--config", config_path])
