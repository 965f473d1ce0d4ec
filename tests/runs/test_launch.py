"""How a run is launched: `python -m trainer` for one process; `accelerate launch` (with the
launcher settings cached in the preferences) for several, which the stop signal still reaches."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from app.services.run_launch import trainer_command
from registry.defaults import default_config

from .helpers import ServiceFactory, demo_config, wait_for_run


def test_one_process_runs_the_trainer_module_directly(tmp_path: Path) -> None:
    cmd = trainer_command(default_config(), tmp_path, resume=False)
    assert cmd == [sys.executable, "-m", "trainer", "--config", str(tmp_path / "run.toml")]
    resumed = trainer_command(default_config(), tmp_path, resume=True)
    assert resumed[-2:] == ["--resume_from_checkpoint", "latest"]


def test_several_processes_go_through_accelerate_launch(tmp_path: Path) -> None:
    effective = {
        **default_config(),
        "num_processes": 2,
        "num_machines": 1,
        "mixed_precision": "no",
        "dynamo_backend": "no",
        "main_process_port": 29555,
        "gpu_ids": "all",
        "machine_rank": 0,
        "use_cpu": True,
    }
    cmd = trainer_command(effective, tmp_path, resume=False)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    launcher = cmd[3 : cmd.index("trainer") - 1]
    assert launcher[launcher.index("--num_processes") + 1] == "2"
    assert "--multi_gpu" in launcher and "--cpu" not in launcher
    assert "--machine_rank" not in launcher  # single machine: multi-machine flags left out
    assert cmd[cmd.index("trainer") - 1 :] == [
        "-m",
        "trainer",
        "--config",
        str(tmp_path / "run.toml"),
    ]


@pytest.mark.slow
async def test_cached_accelerate_overrides_launch_two_processes(
    make_service: ServiceFactory,
) -> None:
    service = make_service()
    service.prefs.remember_accelerate_overrides({"num_processes": 2, "main_process_port": 29517})
    run = await service.start_run(config=demo_config(2))
    assert "accelerate.commands.launch" in service.history.runs[run.id].record.command
    done = await wait_for_run(service, run.id, ("completed",))
    assert done.step == 2
    events = await service.events_after(run.id, 0)
    assert [e.seq for e in events] == list(
        range(1, len(events) + 1)
    )  # main process only, once each


async def test_each_run_gets_its_own_folder_inside_the_output_folder_chosen(
    make_service: ServiceFactory, tmp_path: Path
) -> None:
    service = make_service()
    root = Path(service.prefs.prefs.output_root).expanduser()
    plain = await service.start_run(config=demo_config(1))
    named = await service.start_run(config=demo_config(1, output_dir="my-lora"))
    # An absolute folder is fine inside the output root (outside it: test_hardening.py).
    elsewhere = await service.start_run(config=demo_config(1, output_dir=str(root / "abs")))
    assert Path(plain.run_dir) == root / plain.id
    assert Path(named.run_dir) == root / "my-lora" / named.id  # relative: inside the output root
    assert Path(elsewhere.run_dir) == root / "abs" / elsewhere.id
    assert len({plain.run_dir, named.run_dir, elsewhere.run_dir}) == 3
    assert named.state == elsewhere.state == "queued"  # behind the first: no need to train them
    await service.cancel_queued(named.id)
    await service.cancel_queued(elsewhere.id)
    await wait_for_run(service, plain.id, ("completed",))
