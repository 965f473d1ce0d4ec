"""The real trainer reports its starting phase as stage events, with counts while caching,
and the server's event schema accepts every one of them."""

from __future__ import annotations

from pathlib import Path

from tunerdeck_common.events import parse_event

from .conftest import fast, read_events, run_in_process


def test_stages_are_reported_before_step_1(demo_model: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    rc, _ = run_in_process(
        fast(run_dir, max_train_steps=2, cache_latents=True, cache_text_embeddings=True)
    )
    assert rc == 0
    events = read_events(run_dir)
    for raw in events:
        parse_event(raw)  # what the server would refuse, this test refuses
    stages = [e["data"] for e in events if e["type"] == "stage"]
    names = list(dict.fromkeys(s["name"] for s in stages))
    assert names == [
        "loading model",
        "preparing datasets",
        "caching latents",
        "caching text embeddings",
        "first training step",
    ]
    latents = [s for s in stages if s["name"] == "caching latents"]
    assert latents[-1]["done"] == latents[-1]["total"] > 0  # the count reaches its total
    first_step = next(i for i, e in enumerate(events) if e["type"] == "progress")
    last_stage = max(i for i, e in enumerate(events) if e["type"] == "stage")
    assert last_stage < first_step
