"""Sample images with a prompt library: a short demo run renders every prompt (validation_prompt
lines and library entries) at every validation, from step 0 when validation_on_start asks; the
monitor's grid holds prompts x steps cells; each PNG says its prompt and seed; and a prompt's
image depends only on its prompt, seed and the weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.trainer.conftest import fast, read_events, run_in_process

pytestmark = pytest.mark.slow

PROMPT = "a red circle on a blue background"
LIBRARY = f"""
# the same prompt and seed as validation_prompt, under a name: must render the same image
same = "{PROMPT}"

[beach]
prompt = "a yellow square on sand"
seed = 7
negative_prompt = "blurry"
"""


def test_prompt_library_renders_a_grid_of_prompts_by_steps(
    tmp_path: Path, demo_model: Path
) -> None:
    from app.pages.samples_grid import build_grid
    from app.services.run_service import ValidationStep

    (tmp_path / "prompts.toml").write_text(LIBRARY)
    out = tmp_path / "run"
    raw = fast(
        out,
        max_train_steps=2,
        validation_steps=1,
        validation_on_start=True,  # an older name, read as validation_on_startup
        validation_prompt=PROMPT,
        validation_seed=3,
        num_validation_images=2,
        user_prompt_library=str(tmp_path / "prompts.toml"),
        run_name="grid-test",
        num_cpu_threads_per_process=1,  # a tiny model: more threads only contend
    )
    code, cfg = run_in_process(raw)
    assert code == 0, read_events(out)[-1]

    events = [e["data"] for e in read_events(out) if e["type"] == "validation"]
    assert [e["step"] for e in events] == [0, 1, 2]  # a step-0 column before training
    for event in events:
        assert [(i["name"], i["seed"]) for i in event["images"]] == [
            ("", 3),
            ("", 4),
            ("same", 3),
            ("same", 4),
            ("beach", 7),
            ("beach", 8),
        ]
    files = sorted(out.glob("validation/step-*/*.png"))
    assert len(files) == 3 * 3 * 2  # prompts x steps x images per prompt

    # as the server keeps them (app.services.run_live): text values
    steps = [
        ValidationStep(
            step=e["step"], images=[{k: str(v) for k, v in i.items()} for i in e["images"]]
        )
        for e in events
    ]
    grid = build_grid(steps)
    assert [(r.name, r.prompt) for r in grid.rows] == [
        ("", PROMPT),
        ("same", PROMPT),
        ("beach", "a yellow square on sand"),
    ]
    assert grid.steps == [0, 1, 2]
    assert all(len(grid.cell(r, s)) == 2 for r in grid.rows for s in grid.steps)

    def pixels(image: dict) -> np.ndarray:
        return np.asarray(Image.open(image["path"]), dtype=np.int16)

    for event in events:
        plain, plain_next, same, _, beach, _ = event["images"]
        # Same prompt, seed and weights: the same image, whatever rendered before it.
        assert np.array_equal(pixels(plain), pixels(same))
        assert np.abs(pixels(plain) - pixels(plain_next)).mean() > 1  # seed + 1 differs
        with Image.open(beach["path"]) as png:
            text = png.text
        assert text["prompt"] == "a yellow square on sand"
        assert text["seed"] == "7" and text["step"] == str(event["step"])
        assert text["negative_prompt"] == "blurry" and text["run_name"] == "grid-test"
        assert text["prompt_name"] == "beach"
        assert text["parameters"].startswith("a yellow square on sand\nNegative prompt: blurry\n")
        assert "Seed: 7" in text["parameters"]
    assert {"user_prompt_library", "validation_on_startup"} <= cfg.read
