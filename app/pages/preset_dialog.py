""" "Start from a preset": pick goal x model family x GPU memory, see what would change, apply;
"Undo preset" puts the form back exactly as it was (values, datasets, name, unsaved flag).

The presets are registry/presets/*.toml (registry.presets); this module only shows them.
"""

from __future__ import annotations

import copy
from typing import Any

from nicegui import ui

from app.pages.layout import transient_dialog
from app.services import hardware
from app.services.form_state import FormState
from registry import presets
from registry.estimate import estimate
from registry.validation import validate_config


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


class PresetActions:
    def __init__(self, form: FormState) -> None:
        self.form = form
        self.before: dict[str, Any] | None = None  # the form before the last preset

    def render(self) -> None:
        self.preset_button = ui.button(
            "Start from a preset", icon="auto_fix_high", on_click=self.open
        ).props("flat dense no-caps")
        self.preset_button.mark("action-preset")
        self.undo_button: ui.button | None = None  # made when a preset is first applied

    def _show_undo(self, shown: bool) -> None:
        if self.undo_button is None:
            if not shown:
                return
            container = self.preset_button.parent_slot
            assert container is not None
            with container:
                self.undo_button = (
                    ui.button("Undo preset", icon="undo", on_click=self.undo)
                    .props("flat dense no-caps")
                    .mark("action-undo-preset")
                )
        self.undo_button.set_visibility(shown)

    def _gpu_gb(self) -> float | None:
        totals = [g.memory_total_mb for g in hardware.snapshot().gpus if g.memory_total_mb]
        return min(totals) / 1024 if totals else None

    def open(self) -> None:
        families = presets.families()
        state: dict[str, Any] = {
            "goal": next(iter(presets.GOALS)),
            "family": next(iter(families)),
            "memory": presets.nearest_memory(self._gpu_gb()),
        }
        with (
            transient_dialog() as dialog,
            ui.card().classes("w-[46rem] max-w-full").mark("preset-dialog"),
        ):
            ui.label("Start from a preset").classes("text-h6")
            with ui.row().classes("gap-2 w-full"):
                selects = (
                    ("goal", "Goal", dict(presets.GOALS)),
                    ("family", "Model family", families),
                    ("memory", "GPU memory", {gb: f"{gb} GB" for gb in presets.MEMORY_GB}),
                )
                for key, label, options in selects:
                    ui.select(
                        options,
                        value=state[key],
                        label=label,
                        on_change=lambda e, k=key: choose(k, e.value),
                    ).classes("w-56").mark(f"preset-{key}")
            body = ui.column().classes("w-full gap-1").mark("preset-body")
            with ui.row().classes("justify-end w-full"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                apply_button = ui.button("Apply", on_click=lambda: apply_and_close()).mark(
                    "preset-apply"
                )
        current: dict[str, presets.Preset] = {}

        def choose(key: str, value: Any) -> None:
            state[key] = value
            draw()

        def apply_and_close() -> None:
            self.apply(current["preset"])
            dialog.close()

        def draw() -> None:
            preset = presets.get_preset(state["family"], state["goal"], int(state["memory"]))
            current["preset"] = preset
            body.clear()
            with body:
                if preset.unavailable:
                    ui.label(preset.unavailable).classes("text-warning").mark("preset-unavailable")
                    apply_button.disable()
                    return
                apply_button.enable()
                for note in preset.notes:
                    ui.label(note).classes("text-sm text-grey-8")
                after = validate_config({**self.form.config(), **preset.config}).values
                peak = estimate(after).peak_gb
                ui.label(
                    f"Estimated peak GPU memory with your other settings: ~{peak:.1f} GB "
                    f"(of {preset.memory_gb} GB)."
                ).classes("text-sm").mark("preset-estimate")
                rows = presets.preset_diff(preset, self.form.explicit)
                if not rows:
                    ui.label("The form already has every value of this preset.")
                    return
                ui.label(f"Applying changes {len(rows)} settings:").classes("font-medium")
                ui.table(
                    columns=[
                        {"name": "label", "label": "Setting", "field": "label", "align": "left"},
                        {"name": "before", "label": "Now", "field": "before", "align": "left"},
                        {"name": "after", "label": "Preset", "field": "after", "align": "left"},
                    ],
                    rows=[
                        {"label": r.label, "before": _show(r.before), "after": _show(r.after)}
                        for r in rows
                    ],
                    row_key="label",
                ).props("dense flat").classes("w-full").mark("preset-diff")

        draw()
        dialog.open()

    def apply(self, preset: presets.Preset) -> None:
        form = self.form
        self.before = {
            "config": form.config(),
            "name": form.config_name,
            "dirty": form.dirty,
        }
        config = presets.apply_preset(preset, form.explicit)
        if form.datasets:
            config["datasets"] = copy.deepcopy(form.datasets)
        form.replace(config, form.config_name, dirty=True)
        self._show_undo(True)
        ui.notify(f"Preset applied: {preset.title}. 'Undo preset' puts your values back.")

    def undo(self) -> None:
        if self.before is None:
            return
        before, self.before = self.before, None
        self.form.replace(before["config"], before["name"], dirty=before["dirty"])
        self._show_undo(False)
        ui.notify("Preset undone: the form is as it was.")
