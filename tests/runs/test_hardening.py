"""What a careless value, a damaged file or a crash at the wrong moment must not do to the runs:
break the listing, make a run vanish, confuse a resumed run's lifecycle, or write outside the
configured roots. The trainer is fake_trainer.py (the real event sink, no torch)."""

from __future__ import annotations

import shutil
import time
import tracemalloc
from pathlib import Path

import httpx
import pytest
from nicegui import core
from nicegui.testing import User

from app.access import AccessPolicy
from app.services.container import build_services, set_services
from app.services.run_service import RunError
from app.trainer_server import build_trainer_app
from state.run_records import RunRecord, RunRecordStore
from tunerdeck_common.events import Event

from .helpers import ServiceFactory, demo_config, element, fake_command, wait_for_run


@pytest.fixture
def fast_fake(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.05")


def fake_service(make_service: ServiceFactory):
    service = make_service()
    service.command_builder = fake_command
    return service


# ---- numbers ------------------------------------------------------------------------------
async def test_out_of_range_numbers_are_refused_before_a_run_exists(
    make_service: ServiceFactory, runs_home: Path
) -> None:
    service = fake_service(make_service)
    for name, value in (("max_train_steps", 10**30), ("lr_warmup_steps", 10**19), ("seed", -1)):
        with pytest.raises(RunError) as refused:
            await service.start_run(config=demo_config(2, **{name: value}))
        assert refused.value.status == 422
        assert any(e.startswith(f"{name}:") for e in refused.value.errors), refused.value.errors
    assert await service.list_runs() == []
    assert not (runs_home / "runs").exists() or not any((runs_home / "runs").iterdir())


async def test_a_record_that_cannot_be_shown_never_breaks_the_listing(
    app_user: User, make_service: ServiceFactory, runs_home: Path
) -> None:
    store = RunRecordStore()
    huge = RunRecord(id="huge", state="stopped", run_dir=str(runs_home / "runs" / "huge"))
    huge.max_steps = huge.step = 10**30  # what a run of older versions could store
    store.save(huge)
    store.save(RunRecord(id="nul", state="failed", run_dir="bad\x00dir"))
    app_user.services.run_service = fake_service(make_service)  # restarted over these records
    transport = httpx.ASGITransport(core.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        listing = await api.get("/api/runs")
        assert listing.status_code == 200, listing.text
        runs = {r["id"]: r for r in listing.json()}
        assert runs["huge"]["max_steps"] == 10**30
        assert runs["nul"]["state"] == "damaged"
        assert "cannot be shown" in runs["nul"]["message"]
        for path in (
            "/api/runs/huge",
            "/api/runs/nul",
            "/api/runs/huge/detail",
            "/api/runs/nul/detail",
            "/api/runs/nul/events",
            "/api/runs/huge/events",
        ):
            assert (await api.get(path)).status_code == 200, path
        kill = await api.post("/api/runs/huge/kill")
        assert kill.status_code == 409, kill.text  # not running: a clear answer, not a 500


# ---- damaged records -------------------------------------------------------------------------
async def test_corrupt_records_are_rebuilt_or_listed_damaged_with_their_weights(
    make_service: ServiceFactory, runs_home: Path, fast_fake: None
) -> None:
    service = fake_service(make_service)
    configs = [demo_config(3, checkpointing_steps=1) for _ in range(3)]
    configs.append(demo_config(3, checkpointing_steps=1, output_dir="team/a"))
    configs.append(demo_config(3))
    runs = [await service.start_run(config=c) for c in configs]
    for run in runs:
        await wait_for_run(service, run.id, ("completed",), timeout=60)
    await service.shutdown()
    truncated, empty, no_config, nested, gone = (r.id for r in runs)
    store = RunRecordStore()
    text = store.path_for(truncated).read_text()
    store.path_for(truncated).write_text(text[: len(text) // 2])
    store.path_for(empty).write_text("")
    store.path_for(no_config).write_bytes(b"\x00\xff garbage")
    store.path_for(nested).write_text('{"id": 3}')
    store.path_for(gone).write_text("{not json")
    shutil.rmtree(runs[4].run_dir)  # its folder deleted by hand as well
    no_config_dir = Path(runs[2].run_dir)
    (no_config_dir / "run.toml").unlink()
    assert Path(runs[3].run_dir).parent == (runs_home / "runs" / "team" / "a").resolve()

    restarted = fake_service(make_service)
    listed = {r.id: r for r in await restarted.list_runs()}
    assert set(listed) == {r.id for r in runs}, "a run vanished"
    for run_id in (truncated, empty, nested):
        run = listed[run_id]
        assert run.state == "completed", (run_id, run.state, run.message)
        assert run.step == 3 and run.max_steps == 3 and run.has_checkpoint
        assert "rebuilt" in run.message
    assert listed[nested].run_dir == runs[3].run_dir
    damaged = listed[no_config]
    assert damaged.state == "damaged"
    assert str(no_config_dir) in damaged.message and damaged.run_dir == str(no_config_dir)
    detail = await restarted.get_detail(no_config)
    assert [c.step for c in detail.checkpoints] == [1, 2, 3]  # the weights stay in sight
    # The unreadable bytes are kept aside, and the next start reads the new records.
    assert listed[gone].state == "damaged" and "no run folder" in listed[gone].message
    assert listed[gone].run_dir == ""
    with pytest.raises(RunError) as outside:  # never a file of the working dir
        await restarted.open_file(gone, "README.md")
    assert outside.value.status == 404
    assert (await restarted.get_detail(gone)).checkpoints == []
    assert len(list(store.root.glob("*.damaged-*"))) == 5
    again = {r.id: r.state for r in await fake_service(make_service).list_runs()}
    assert again[truncated] == "completed" and again[no_config] == "damaged"
    await restarted.delete_run(no_config)
    assert no_config not in {r.id for r in await restarted.list_runs()}


# ---- resume after a crash between emit and persist ------------------------------------------------
async def test_resume_after_events_that_never_reached_the_file_keeps_the_lifecycle_right(
    make_service: ServiceFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    service = fake_service(make_service)
    run = await service.start_run(config=demo_config(300, checkpointing_steps=2))
    await wait_for_run(service, run.id, ("running",), step_at_least=3, timeout=60)
    await service.kill_run(run.id)
    failed = await wait_for_run(service, run.id, ("failed",), timeout=60)
    # The crash: three events reached the server (a callback) but never events.jsonl (the
    # disk was full, or the process died between sending and writing).
    last = failed.last_seq
    for seq in range(last + 1, last + 4):
        lost = Event(
            run_id=run.id, seq=seq, ts=time.time(), type="log", data={"message": f"lost {seq}"}
        )
        assert service.ingest(lost)
    await service.resume_run(run.id)
    running = await wait_for_run(service, run.id, ("running",), timeout=30)
    assert running.message.startswith("training")  # the resumed attempt's own event
    stopped = await service.stop_run(run.id)
    assert stopped.state == "stopping"
    await wait_for_run(service, run.id, ("stopped",), timeout=60)
    resumed = [e for e in await service.events_after(run.id, last) if e.type == "lifecycle"]
    assert [e.data["state"] for e in resumed] == ["starting", "running", "stopping", "stopped"]
    assert min(e.seq for e in resumed) > last + 3, "the resumed trainer reused seen seqs"


# ---- confinement ---------------------------------------------------------------------------------
async def test_output_dir_and_dataset_paths_are_confined_to_the_roots(
    make_service: ServiceFactory, runs_home: Path, tmp_path: Path
) -> None:
    service = fake_service(make_service)
    outside = tmp_path / "outside"
    outside.mkdir()
    output_root = runs_home / "runs"
    output_root.mkdir(exist_ok=True)
    (output_root / "link").symlink_to(outside, target_is_directory=True)
    for value in (str(outside), "../../..", "~/..", "link/x", "/etc"):
        with pytest.raises(RunError) as refused:
            await service.start_run(config=demo_config(1, output_dir=value))
        assert refused.value.status == 422, value
        assert "output root" in refused.value.message, refused.value.message
    datasets_root = runs_home / "datasets"
    (datasets_root / "cats").mkdir(parents=True)
    (datasets_root / "escape").symlink_to(outside, target_is_directory=True)
    for value in ("/etc", "../../..", "escape", str(outside)):
        with pytest.raises(RunError) as refused:
            await service.start_run(config=demo_config(1, datasets=[{"path": value}]))
        assert refused.value.status == 422, value
        assert refused.value.errors[0].startswith("datasets[0].path:"), refused.value.errors
    assert list(outside.iterdir()) == [], "something was written outside the roots"
    assert await service.list_runs() == []
    # Inside the roots: a relative output folder and a dataset folder are accepted, resolved.
    run = await service.start_run(
        config=demo_config(1, output_dir="sub", datasets=[{"path": "cats"}])
    )
    assert Path(run.run_dir).parent == (output_root / "sub").resolve()
    config = service.history.runs[run.id].record.config
    assert config["datasets"][0]["path"] == str((datasets_root / "cats").resolve())


async def test_the_api_refuses_an_escaping_output_dir_with_a_clear_422(
    runs_home: Path, tmp_path: Path
) -> None:
    services = build_services()
    services.run_service.command_builder = fake_command
    app = build_trainer_app(services, AccessPolicy(None, "secret"))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
            body = {"config": demo_config(1, output_dir=str(tmp_path / "elsewhere"))}
            response = await api.post("/api/runs", json=body)
            assert response.status_code == 422, response.text
            assert "output root" in response.json()["error"]
            assert not (tmp_path / "elsewhere").exists()
    finally:
        await services.run_service.shutdown()
        set_services(None)


# ---- trainer output without newlines -------------------------------------------------------------
def test_an_endless_output_line_is_cut_and_memory_stays_bounded(tmp_path: Path) -> None:
    from app.services.run_follow import MAX_LINE_CHARS, RunFollower

    follower = RunFollower(tmp_path)
    log_path = tmp_path / "trainer.log"
    log_path.write_bytes(b"before\n")
    assert follower.poll_lines() == ["before"]
    lines: list[str] = []
    tracemalloc.start()
    try:
        with log_path.open("ab") as log:
            for _ in range(40):  # 40 MiB printed with no newline, read as it grows
                log.write(b"x" * (1 << 20))
                log.flush()
                lines += follower.poll_lines()
                held, _ = tracemalloc.get_traced_memory()  # each poll reads up to 1 MiB
                assert held < 256 * 1024, f"{held} bytes kept between polls"
            log.write("é\rafter\n".encode())
    finally:
        tracemalloc.stop()
    lines += follower.poll_lines()
    assert len(lines) == 2, [line[:50] for line in lines]
    assert lines[0].startswith("x" * MAX_LINE_CHARS) and "line cut" in lines[0]
    assert len(lines[0]) < MAX_LINE_CHARS + 200
    assert lines[1] == "after"


async def test_pages_show_damaged_runs_instead_of_failing(
    app_user: User, make_service: ServiceFactory, runs_home: Path
) -> None:
    store = RunRecordStore()
    store.root.mkdir(parents=True, exist_ok=True)
    store.path_for("20260101-000000-aaaaaa").write_text("{truncated")
    store.save(RunRecord(id="nul", state="failed", run_dir="bad\x00dir"))
    app_user.services.run_service = fake_service(make_service)  # restarted over these records
    await app_user.open("/runs")
    rows = {row["id"]: row for row in element(app_user, "runs-table").rows}
    assert set(rows) == {"20260101-000000-aaaaaa", "nul"}
    assert all(row["state"] == "damaged" for row in rows.values()), rows
    await app_user.open("/monitor/20260101-000000-aaaaaa")
    await app_user.should_see("no run folder was found")
    await app_user.open("/monitor/nul")
    await app_user.should_see("cannot be shown")
