"""Refused early, recovered late: `python -m trainer` stops with one message and exit code 2,
before any model loads, when output_dir cannot be written or resume_from_checkpoint is not a
checkpoint; resume with `latest` steps over a damaged newest checkpoint to the one before it,
says so, and continues exactly as that checkpoint left off."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.trainer.conftest import (
    PYTHON,
    REPO,
    fast,
    losses,
    read_events,
    run_in_process,
    trainer_env,
)

# main() in a process that reports whether torch (needed to load any model) was imported.
_CLI = (
    "import sys\n"
    "from trainer.__main__ import main\n"
    "code = main(sys.argv[1:])\n"
    "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')\n"
    "sys.exit(code)\n"
)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", _CLI, *args],
        cwd=REPO,
        env=trainer_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _refused_early(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr, res.stderr
    assert res.stdout.strip().endswith("NO_TORCH"), res.stdout
    for needle in needles:
        assert needle in res.stderr, res.stderr


@pytest.mark.parametrize("kind", ["under_a_file", "is_a_file"])
def test_unwritable_output_dir_exits_2_before_loading_a_model(tmp_path: Path, kind: str) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "run" if kind == "under_a_file" else blocker
    res = _cli("--output_dir", str(out), "--max_train_steps", "2")
    _refused_early(res, "output_dir", str(out), "cannot be written")
    assert blocker.read_text() == "not a folder"


def _folder_without_marker(tmp_path: Path) -> str:
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    (folder / "optimizer.bin").write_bytes(b"\0" * 64)
    return str(folder)


def _damaged_marker(tmp_path: Path) -> str:
    folder = Path(_folder_without_marker(tmp_path))
    (folder / "tunerdeck_checkpoint.json").write_text('{"step": 3, "files"')
    return str(folder)


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda tmp: str(tmp / "no_such_checkpoint"), id="missing"),
        pytest.param(lambda tmp: "checkpoint-99", id="name_not_in_run"),
        pytest.param(_folder_without_marker, id="folder_without_marker"),
        pytest.param(_damaged_marker, id="damaged_marker"),
    ],
)
def test_resume_from_a_non_checkpoint_exits_2_before_loading_a_model(
    tmp_path: Path, make_value
) -> None:
    value = make_value(tmp_path)
    out = tmp_path / "run"
    res = _cli("--output_dir", str(out), "--resume_from_checkpoint", value)
    _refused_early(res, "resume_from_checkpoint", value, "latest")
    assert not (out / "events.jsonl").exists()


def test_latest_with_only_damaged_checkpoints_exits_2_naming_them(tmp_path: Path) -> None:
    out = tmp_path / "run"
    bad = out / "checkpoints" / "checkpoint-4"
    bad.mkdir(parents=True)
    (bad / "tunerdeck_checkpoint.json").write_text("garbage")
    res = _cli("--output_dir", str(out), "--resume_from_checkpoint", "latest")
    _refused_early(res, "checkpoint-4", "unreadable")
    assert not (out / "events.jsonl").exists()


# ---- falling back past a damaged newest checkpoint (trains: slow) ----------------------------

_RUN = {"max_train_steps": 4, "checkpointing_steps": 2, "train_batch_size": 2}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory, demo_model: Path) -> Path:
    """Four uninterrupted steps with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("full") / "run"
    assert run_in_process(fast(out, **_RUN))[0] == 0, read_events(out)[-1]
    assert sorted(losses(out)) == [1, 2, 3, 4]
    return out


def _truncate_adapter(ckpt: Path) -> None:
    f = ckpt / "adapter_0.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _flipped_rng_state(ckpt: Path) -> None:
    # One bit flipped in the RNG state: accelerate skips an unreadable RNG state silently, so
    # only the archive's checksum shows it.
    f = ckpt / "random_states_0.pkl"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))


def _optimizer_of_another_run(ckpt: Path) -> None:
    # A well-formed optimizer state that does not fit, in a checkpoint whose marker lists no
    # file sizes (as before they were recorded): only load_state finds it, after the adapter
    # has loaded, and that adapter must not survive into the resumed run.
    import torch

    marker = ckpt / "tunerdeck_checkpoint.json"
    meta = json.loads(marker.read_text())
    meta.pop("files", None)
    marker.write_text(json.dumps(meta))
    torch.save({"state": {}, "param_groups": [{}, {}, {}]}, ckpt / "optimizer.bin")


def _garbage_marker(ckpt: Path) -> None:
    (ckpt / "tunerdeck_checkpoint.json").write_bytes(b"\x00\xff garbage")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        pytest.param(_truncate_adapter, "adapter_0.safetensors has", id="truncated_adapter"),
        pytest.param(_garbage_marker, "unreadable", id="garbage_marker"),
        pytest.param(_flipped_rng_state, "fails its checksum", id="flipped_rng_state"),
        pytest.param(_optimizer_of_another_run, "loading it failed", id="optimizer_of_another_run"),
    ],
)
def test_latest_falls_back_past_a_damaged_newest_checkpoint(
    tmp_path: Path, full_run: Path, spoil, reason: str
) -> None:
    out = tmp_path / "run"
    shutil.copytree(full_run / "checkpoints", out / "checkpoints")
    spoil(out / "checkpoints" / "checkpoint-4")

    code, _ = run_in_process(fast(out, resume_from_checkpoint="latest", **_RUN))

    events = read_events(out)
    assert code == 0, events[-1]
    logs = [e["data"] for e in events if e["type"] == "log"]
    warnings = [d["message"] for d in logs if d["level"] == "warning"]
    assert any("skipped checkpoint-4" in m and reason in m for m in warnings), logs
    assert any("resumed from" in d["message"] and "checkpoint-2" in d["message"] for d in logs)
    # Steps 3 and 4 again, exactly as the uninterrupted run took them from checkpoint 2.
    full = losses(full_run)
    assert losses(out) == {3: full[3], 4: full[4]}
    # The damaged checkpoint was written anew, so the next resume needs no fallback.
    from trainer.checkpoints import damage

    assert damage(out / "checkpoints" / "checkpoint-4") is None
