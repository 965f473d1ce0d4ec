"""Web UI preferences (theme, roots, cached accelerate overrides, onboarding) in one JSON file.

The file lives at $TUNERDECK_WEB_UI_CONFIG or the platformdirs user config dir. Writes are
atomic. A file that cannot be read or does not validate is moved aside (never deleted) and
replaced by defaults; `recovery_message` then says so, for the page's banner.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from registry.catalogue import FIELDS
from state.atomic import atomic_write_text
from tunerdeck_common.paths import default_datasets_root, default_output_root, web_ui_config_path

Theme = Literal["light", "dark", "auto"]

# The checklist a first-time user walks through, in order: (key, label).
ONBOARDING_STEPS: tuple[tuple[str, str], ...] = (
    ("choose_model", "Choose a base model"),
    ("add_dataset", "Add a dataset"),
    ("review_training", "Review the training settings"),
    ("start_demo_run", "Start the demo run"),
)

# Launcher settings that may be remembered between configs: the registry's accelerate
# override fields and nothing else, so a preference file can never smuggle arbitrary
# training options into a run.
ACCELERATE_OVERRIDE_WHITELIST: frozenset[str] = frozenset(
    name for name, f in FIELDS.items() if f.accelerate_override
)


class OnboardingState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    steps: dict[str, bool] = Field(default_factory=dict)
    dismissed: bool = False

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: dict[str, bool]) -> dict[str, bool]:
        known = {key for key, _ in ONBOARDING_STEPS}
        return {key: bool(done) for key, done in steps.items() if key in known}

    def is_done(self, step: str) -> bool:
        return self.steps.get(step, False)

    @property
    def complete(self) -> bool:
        return all(self.is_done(key) for key, _ in ONBOARDING_STEPS)


class WebUIPreferences(BaseModel):
    model_config = ConfigDict(extra="ignore")

    theme: Theme = "auto"
    datasets_root: str = Field(default_factory=lambda: str(default_datasets_root()))
    output_root: str = Field(default_factory=lambda: str(default_output_root()))
    accelerate_overrides: dict[str, Any] = Field(default_factory=dict)
    onboarding: OnboardingState = Field(default_factory=OnboardingState)
    show_advanced: bool = False

    @field_validator("accelerate_overrides")
    @classmethod
    def _whitelisted(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(overrides) - ACCELERATE_OVERRIDE_WHITELIST)
        if unknown:
            raise ValueError(f"not accelerate settings that may be cached: {', '.join(unknown)}")
        return overrides


def filter_accelerate_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Keep only the whitelisted launcher settings of `values`."""
    return {k: v for k, v in values.items() if k in ACCELERATE_OVERRIDE_WHITELIST}


class WebUIStateStore:
    """Loads once, hands out the preferences, saves each change atomically."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else web_ui_config_path()
        self.recovery_message: str | None = None
        self._prefs = self._load()

    @property
    def prefs(self) -> WebUIPreferences:
        return self._prefs

    def _load(self) -> WebUIPreferences:
        if not self.path.exists():
            return WebUIPreferences()
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("the file does not hold a JSON object")
            return WebUIPreferences.model_validate(raw)
        except (OSError, UnicodeDecodeError, ValueError, ValidationError) as exc:
            return self._recover(exc)

    def _recover(self, exc: Exception) -> WebUIPreferences:
        backup = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        try:
            self.path.replace(backup)
            where = f"it was kept as {backup}"
        except OSError as move_error:
            where = f"it could not be moved aside ({move_error})"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        self.recovery_message = (
            f"Your preferences file {self.path} could not be read ({first_line}); "
            f"defaults are in use and {where}."
        )
        prefs = WebUIPreferences()
        self._write(prefs)
        return prefs

    def _write(self, prefs: WebUIPreferences) -> None:
        atomic_write_text(self.path, prefs.model_dump_json(indent=2) + "\n")

    def save(self, prefs: WebUIPreferences) -> WebUIPreferences:
        # Validate a copy first so a bad change never reaches the disk or the live object.
        checked = WebUIPreferences.model_validate(prefs.model_dump())
        self._write(checked)
        self._prefs = checked
        return checked

    def update(self, **changes: Any) -> WebUIPreferences:
        data = self._prefs.model_dump()
        data.update(changes)
        return self.save(WebUIPreferences.model_validate(data))

    def set_onboarding_step(self, step: str, done: bool = True) -> WebUIPreferences:
        if step not in {key for key, _ in ONBOARDING_STEPS}:
            raise KeyError(f"unknown onboarding step {step!r}")
        if self._prefs.onboarding.is_done(step) == done:
            return self._prefs
        onboarding = self._prefs.onboarding.model_copy(
            update={"steps": {**self._prefs.onboarding.steps, step: done}}
        )
        return self.update(onboarding=onboarding.model_dump())

    def dismiss_onboarding(self, dismissed: bool = True) -> WebUIPreferences:
        onboarding = self._prefs.onboarding.model_copy(update={"dismissed": dismissed})
        return self.update(onboarding=onboarding.model_dump())

    def remember_accelerate_overrides(self, values: dict[str, Any]) -> WebUIPreferences:
        return self.update(accelerate_overrides=filter_accelerate_overrides(values))

    def onboarding_steps(self) -> Iterable[tuple[str, str, bool]]:
        for key, label in ONBOARDING_STEPS:
            yield key, label, self._prefs.onboarding.is_done(key)
