"""The first-run checklist: its steps tick themselves as the user works, or by hand."""

from __future__ import annotations

from nicegui import ui

from state.web_ui_state import WebUIStateStore


class Onboarding:
    def __init__(self, store: WebUIStateStore) -> None:
        self.store = store
        self.checks: dict[str, ui.checkbox] = {}
        prefs = store.prefs
        with ui.card().classes("w-full").mark("onboarding") as self.card:
            with ui.row().classes("items-center w-full"):
                ui.icon("checklist")
                ui.label("Getting started").classes("font-medium")
                ui.space()
                ui.button("Dismiss", on_click=self.dismiss).props("flat dense no-caps").mark(
                    "onboarding-dismiss"
                )
            with ui.row().classes("gap-4 flex-wrap"):
                for key, label, done in store.onboarding_steps():
                    box = ui.checkbox(
                        label, value=done, on_change=lambda e, k=key: self._toggle(k, e.value)
                    )
                    self.checks[key] = box.mark(f"onboarding-{key}")
        self.card.visible = not prefs.onboarding.dismissed

    def _toggle(self, key: str, done: bool) -> None:
        self.store.set_onboarding_step(key, done)

    def complete(self, key: str) -> None:
        """Tick a step the user just did (a no-op, with no update sent, if it is ticked)."""
        if self.store.prefs.onboarding.is_done(key):
            return
        self.store.set_onboarding_step(key, True)
        self.checks[key].value = True

    def dismiss(self) -> None:
        self.store.dismiss_onboarding(True)
        self.card.set_visibility(False)

    def show(self) -> None:
        self.store.dismiss_onboarding(False)
        self.card.set_visibility(True)
