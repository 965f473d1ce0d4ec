"""Opening a finished run reads its events.jsonl with a fast path for progress lines; what it
adds up to must be exactly what folding each validated event adds up to, whatever the file
holds (a resumed attempt, a gap filled late, lines that are not events, a torn last line)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from app.services.chart_data import ChartData
from app.services.run_follow import RunFollower
from app.services.run_history import fold_history
from app.services.run_live import RunLive
from state.run_records import RunRecord


def event(seq: int, type_: str, data: dict[str, Any], ts: float | None = None) -> str:
    raw = {"v": 1, "run_id": "r", "seq": seq, "ts": ts or 1000.0 + seq, "type": type_}
    return json.dumps({**raw, "data": data})


def progress(seq: int, step: int, loss: Any = 0.5, **more: Any) -> str:
    return event(seq, "progress", {"step": step, "max_steps": 10, "loss": loss, **more})


def folded_one_by_one(run_dir: Path) -> RunLive:
    live = RunLive(RunRecord(id="r", run_dir=str(run_dir), created_at=1.0))
    for ev in RunFollower(run_dir).poll_events():
        live.apply(ev)
    return live


def state_of(live: RunLive) -> dict[str, Any]:
    def plain(values: Any) -> list[Any]:
        return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]

    s = live.progress
    return {
        "record": live.record.model_dump(),
        "series": [plain(s.steps), plain(s.losses), plain(s.lrs), plain(s.ts)],
        "lr": live.lr,
        "it_per_s": live.it_per_s,
        "eta_s": live.eta_s,
        "logs": list(live.logs),
        "evals": live.evals,
        "progress_seq": live.progress_seq,
    }


def test_fast_fold_adds_up_to_what_each_validated_event_does(tmp_path: Path) -> None:
    lines = [
        event(1, "lifecycle", {"state": "running"}),
        progress(2, 1, 0.9, lr=1e-4, it_per_s=2.0, eta_s=5.0),
        progress(3, 2, None),  # no loss: the record keeps the last one
        "not json at all",
        json.dumps({"v": 1, "run_id": "r", "seq": 4, "ts": 1.0, "type": "progress"}),  # no data
        progress(5, 3, 0.7, epoch=True),  # not the exact types: the validated path takes it
        event(6, "checkpoint", {"step": 3, "path": "c"}),
        progress(7, -1),  # invalid step: skipped
        progress(8, 4, 1),  # an int loss is a float to the contract
        event(9, "eval", {"step": 4, "loss": 0.3}),
        progress(11, 5, 0.4),
        progress(10, 6, 0.45),  # a gap filled late: slotted in by step
        event(12, "lifecycle", {"state": "starting"}),  # a resumed attempt from step 3
        progress(13, 3, 0.8, lr=2e-4),
        progress(14, 4, 0.2),
        "",
        event(15, "lifecycle", {"state": "completed", "message": "done"}),
        progress(16, 9, 0.1)[:25],  # torn by a crash: no newline
    ]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("\n".join(lines))

    expected = folded_one_by_one(run_dir)
    live = RunLive(RunRecord(id="r", run_dir=str(run_dir), created_at=1.0))
    follower = RunFollower(run_dir)
    fold_history(live, follower)

    assert state_of(live) == state_of(expected)
    assert list(live.progress.steps) == [1, 2, 3, 4]  # the resumed attempt replaced 3..6
    assert live.record.state == "completed" and live.record.last_seq == 15
    # The torn line is read once it is complete, as the follower does with new lines.
    with (run_dir / "events.jsonl").open("a") as handle:
        handle.write(progress(16, 9, 0.1)[25:] + "\n")
    fold_history(live, follower)
    assert list(live.progress.steps)[-1] == 9 and live.record.last_seq == 16


def test_a_long_file_is_read_in_batches_with_a_damaged_line_among_them(tmp_path: Path) -> None:
    lines = [progress(seq, seq) for seq in range(1, 5001)]
    lines[3000] = lines[3000][:-3]  # one damaged line in the second batch
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    live = RunLive(RunRecord(id="r", run_dir=str(run_dir), created_at=1.0))
    fold_history(live, RunFollower(run_dir))
    assert state_of(live) == state_of(folded_one_by_one(run_dir))
    assert len(live.progress) == 4999 and 3001 not in live.progress.steps


def test_numbers_written_as_text_reach_the_record_and_chart_as_numbers(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lines = [progress(1, 1, "0.5", lr="0.0001"), event(2, "eval", {"step": 1, "loss": "0.25"})]
    (run_dir / "events.jsonl").write_text("\n".join(lines) + "\n")
    live = RunLive(RunRecord(id="r", run_dir=str(run_dir), created_at=1.0))
    fold_history(live, RunFollower(run_dir))
    assert live.record.loss == 0.5 and list(live.progress.losses) == [0.5]
    assert live.lr == 0.0001 and live.evals == {1: 0.25}
    chart = ChartData()  # what the Monitor draws from the same events
    for ev in RunFollower(run_dir).poll_events():
        if ev.type == "progress":
            chart.add(int(ev.data["step"]), ev.data.get("loss"), ev.data.get("lr"))
    assert chart.loss_series()[0]["data"] == [[1, 0.5]]
