"""`python -m trainer` as a process: CLI, clean stop on SIGTERM, SIGKILL during a checkpoint,
and two processes under `accelerate launch`."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.trainer.conftest import PYTHON, REPO, losses, read_events, states, trainer_env
from tests.waiting import wait_until

pytestmark = pytest.mark.slow


def _start(args: list[str], launcher: list[str] | None = None) -> subprocess.Popen:
    cmd = (launcher or [PYTHON, "-m"]) + ["trainer", *args]
    return subprocess.Popen(
        cmd,
        cwd=REPO,
        env=trainer_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_while_running(predicate: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    """wait_until, failing at once with the trainer's output if it exits first."""

    def check() -> bool:
        if predicate():
            return True
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early ({proc.returncode}):\n{proc.stdout.read()}")
        return False

    try:
        wait_until(check, 120, what=what, interval=0.02)
    except AssertionError:
        proc.kill()
        raise


def _progress_seen(out: Path) -> bool:
    f = out / "events.jsonl"
    return f.exists() and '"progress"' in f.read_text()


def test_help_does_not_import_torch() -> None:
    code = (
        "import runpy, sys\n"
        "sys.argv = ['trainer', '--help']\n"
        "try:\n    runpy.run_module('trainer', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')\n"
    )
    res = subprocess.run(
        [PYTHON, "-c", code], cwd=REPO, env=trainer_env(), capture_output=True, text=True
    )
    assert "--max_train_steps" in res.stdout
    assert res.stdout.strip().endswith("NO_TORCH")


def test_invalid_flag_value_exits_2_with_a_message(tmp_path: Path) -> None:
    res = subprocess.run(
        [PYTHON, "-m", "trainer", "--output_dir", str(tmp_path), "--max_train_steps", "many"],
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "max_train_steps" in res.stderr
    assert not (tmp_path / "events.jsonl").exists()


def test_cli_demo_four_steps(tmp_path: Path) -> None:
    out = tmp_path / "OUT"
    proc = _start(["--model_family", "demo", "--output_dir", str(out), "--max_train_steps", "4"])
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert states(out) == ["starting", "running", "completed"]
    assert sorted(losses(out)) == [1, 2, 3, 4]
    assert (out / "weights" / "OUT.safetensors").is_file()  # named after the run


def test_sigterm_finishes_the_step_checkpoints_and_stops(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "--output_dir",
        str(out),
        "--resolution",
        "64",
        "--max_train_steps",
        "100000",
        "--validation_steps",
        "0",
        "--checkpointing_steps",
        "0",
    ]
    proc = _start(args)
    _wait_while_running(lambda: _progress_seen(out), proc, "a progress event")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    assert states(out)[-2:] == ["stopping", "stopped"]
    ckpts = [e["data"] for e in read_events(out) if e["type"] == "checkpoint"]
    assert len(ckpts) == 1
    step = ckpts[0]["step"]
    assert step == max(losses(out))
    assert (Path(ckpts[0]["path"]) / "tunerdeck_checkpoint.json").is_file()
    # Resuming continues after the stopped step.
    proc = _start([*args[:5], str(step + 2), *args[6:], "--resume_from_checkpoint", "latest"])
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert sorted(losses(out))[-2:] == [step + 1, step + 2]


def test_sigkill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [
        "--output_dir",
        str(out),
        "--resolution",
        "64",
        "--max_train_steps",
        "100000",
        "--validation_steps",
        "0",
        "--checkpointing_steps",
        "1",
        "--checkpoints_total_limit",
        "2",
        "--model_type",
        "full",
    ]
    proc = _start(args)
    ckdir = out / "checkpoints"

    def writing_after_a_complete_one() -> bool:
        if not ckdir.is_dir():
            return False
        names = [p.name for p in ckdir.iterdir()]
        return any(n.startswith(".tmp-") for n in names) and any(
            n.startswith("checkpoint-") for n in names
        )

    _wait_while_running(
        writing_after_a_complete_one, proc, "a checkpoint being written after a complete one"
    )
    proc.kill()
    proc.communicate(timeout=60)
    from trainer.checkpoints import list_checkpoints

    complete = list_checkpoints(out)
    assert complete, "the previous checkpoint must survive"
    latest_step = complete[-1][0]
    proc = _start(
        [
            *args[:5],
            str(latest_step + 1),
            *args[6:9],
            "0",
            *args[10:],
            "--resume_from_checkpoint",
            "latest",
        ]
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    assert f"resumed from {complete[-1][1]}" in (out / "events.jsonl").read_text()
    assert not any(p.name.startswith(".tmp-") for p in ckdir.iterdir())


def test_two_processes_under_accelerate_launch_emit_each_event_once(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # accelerate 1.x: `--cpu` with several processes needs mpirun; `--multi_gpu` starts them
    # with torchrun, and the trainer picks CPU + gloo when there is no GPU.
    launcher = [
        PYTHON,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
    ]
    proc = _start(
        [
            "--output_dir",
            str(out),
            "--resolution",
            "64",
            "--max_train_steps",
            "3",
            "--validation_steps",
            "3",
            "--validation_inference_steps",
            "2",
            "--checkpointing_steps",
            "2",
            "--num_processes",
            "2",
        ],
        launcher,
    )
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output
    events = read_events(out)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["data"]["step"] for e in events if e["type"] == "progress"] == [1, 2, 3]
    assert states(out) == ["starting", "running", "completed"]
    assert [e["data"]["step"] for e in events if e["type"] == "checkpoint"] == [2, 3]
    assert not any(e["data"].get("level") == "warning" for e in events if e["type"] == "log")
