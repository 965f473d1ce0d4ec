"""The first-run checklist: its steps tick themselves as the user works, or by hand.

Once dismissed it has no element at all (until shown again): a step done meanwhile is only
recorded in the store, and the checkboxes read the store when they are made.
"""

from __future__ import annotations

from nicegui import ui

from state.web_ui_state import WebUIStateStore


class Onboarding:
    def __init__(self, store: WebUIStateStore) -> None:
        self.store = store
        self.checks: dict[str, ui.checkbox] = {}
        self.card: ui.card | None = None
        self._container = ui.context.slot.parent  # where the card goes, when it is made
        self._at = len(self._container.default_slot.children)  # ... and at which place
        if not store.prefs.onboarding.dismissed:
            self._build()

    def _build(self) -> None:
        # One wrapping line (title, steps, Dismiss), without a row element per line.
        with self._container:
            self.card = (
                ui.card()
                .classes("td-w items-center")
                .style("flex-direction: row; flex-wrap: wrap; gap: .25rem 1rem")
                .mark("onboarding")
            )
        self.card.move(target_index=self._at)
        with self.card:
            ui.icon("checklist")
            ui.label("Getting started").classes("text-weight-medium")
            for key, label, done in self.store.onboarding_steps():
                box = ui.checkbox(
                    label, value=done, on_change=lambda e, k=key: self._toggle(k, e.value)
                )
                self.checks[key] = box.mark(f"onboarding-{key}")
            ui.space()
            ui.button("Dismiss", on_click=self.dismiss).props("flat dense no-caps").mark(
                "onboarding-dismiss"
            )

    def _toggle(self, key: str, done: bool) -> None:
        self.store.set_onboarding_step(key, done)

    def complete(self, key: str) -> None:
        """Tick a step the user just did (a no-op, with no update sent, if it is ticked)."""
        if self.store.prefs.onboarding.is_done(key):
            return
        self.store.set_onboarding_step(key, True)
        if key in self.checks:
            self.checks[key].value = True

    def dismiss(self) -> None:
        self.store.dismiss_onboarding(True)
        if self.card is not None:
            self.card.set_visibility(False)

    def show(self) -> None:
        self.store.dismiss_onboarding(False)
        if self.card is None:
            self._build()
        else:
            for key, _, done in self.store.onboarding_steps():  # steps done while it was hidden
                self.checks[key].value = done
        assert self.card is not None
        self.card.set_visibility(True)
