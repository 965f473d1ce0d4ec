"""What a run is started with: the config a request names or sends, its folders confined to
the roots of the preferences, validated once. `admit()` returns the run's config (as written
to its folder) and the effective values the trainer's command line is built from; any
problem is a RunError that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.services.run_service import RunError
from registry.config_io import ConfigFileError, resolve_beside
from registry.evaluator import PlatformContext
from registry.validation import validate_config
from state.config_store import ConfigStore, ConfigStoreError
from state.web_ui_state import WebUIStateStore
from tunerdeck_common.paths import default_datasets_root


@dataclass(frozen=True)
class AdmittedRun:
    raw: dict[str, Any]  # the config as asked for (launcher settings remembered from it)
    config: dict[str, Any]  # with the run's own folder and the confined dataset folders
    effective: dict[str, Any]  # `config` validated: every field's value
    run_dir: Path


class RunAdmission:
    def __init__(
        self, configs: ConfigStore, prefs: WebUIStateStore, platform: PlatformContext | None
    ) -> None:
        self.configs = configs
        self.prefs = prefs
        self.platform = platform

    def admit(
        self, config: dict[str, Any] | None, config_name: str | None, run_id: str
    ) -> AdmittedRun:
        raw = self.resolve(config, config_name)
        # Each run gets its own folder: inside an output folder the person set (a relative one
        # lies inside the output root of the preferences), else in the output root. Neither
        # it nor a dataset folder may lie outside the roots of the preferences.
        run_dir = self.confined_output(raw.get("output_dir")) / run_id
        # (a relative prompt library: the file validation found, from this folder)
        run_config = resolve_beside({**raw, "output_dir": str(run_dir)}, Path.cwd())
        if isinstance(raw.get("datasets"), list):
            run_config["datasets"] = self.confined_datasets(raw["datasets"])
        return AdmittedRun(raw, run_config, self.effective(run_config), run_dir)

    def effective(self, config: dict[str, Any]) -> dict[str, Any]:
        """The validated values of `config`; RunError 422 listing its problems."""
        result = validate_config(config, self.platform)
        if not result.ok:
            count = len(result.errors)
            them = "them" if count != 1 else "it"
            raise RunError(
                f"The config has {count} problem{'s' if count != 1 else ''}; fix {them} and "
                "start again.",
                422,
                [f"{issue.path}: {issue.message}" for issue in result.errors],
            )
        return result.values

    def resolve(self, config: dict[str, Any] | None, config_name: str | None) -> dict[str, Any]:
        """`config` (explicit values over the defaults) wins; `config_name` alone loads that
        saved config; with both, the name only labels the run (the page's unsaved edits)."""
        if config is None and config_name:
            try:
                raw = dict(self.configs.load(config_name))
            except ConfigStoreError as exc:
                names = ", ".join(self.configs.names()) or "none"
                raise RunError(f"{exc}. Saved configs: {names}.", 404) from None
            except ConfigFileError as exc:
                raise RunError(
                    f"The saved config {config_name!r} cannot be used.", 422, list(exc.errors)
                ) from None
        elif config is None:
            raise RunError(
                'Send {"config_name": NAME} for a saved config or {"config": {...}} with field values.'
            )
        elif not isinstance(config, dict):
            raise RunError(
                '"config" must be an object of field values, e.g. {"max_train_steps": 10}.'
            )
        else:
            raw = dict(config)
        cached = {k: v for k, v in self.prefs.prefs.accelerate_overrides.items() if k not in raw}
        return {**cached, **raw}

    def confined_output(self, output_dir: Any) -> Path:
        """The folder the run's folder goes in: `output_dir` inside the output root (symbolic
        links resolved); RunError 422 when it points anywhere else."""
        root = Path(self.prefs.prefs.output_root).expanduser().resolve()
        given = str(output_dir or "")
        try:
            target = (root / Path(given).expanduser()).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise RunError(
                f"output_dir {given[:200]!r} is not a usable folder: {exc}.", 422
            ) from None
        if not target.is_relative_to(root):
            raise RunError(
                f"output_dir must lie inside the output root {root}: {given[:200]!r} is "
                f"{target} (give a folder relative to the output root, or change the output "
                "root in the preferences).",
                422,
                [f"output_dir: outside the output root {root}"],
            )
        return target

    def confined_datasets(self, datasets: list[Any]) -> list[Any]:
        """Dataset entries with their `path` resolved inside a datasets root (the one of the
        preferences, or the default one where the demo dataset lives); RunError 422 lists the
        others."""
        roots = [
            Path(self.prefs.prefs.datasets_root).expanduser().resolve(),
            default_datasets_root().resolve(),
        ]
        confined: list[Any] = []
        errors: list[str] = []
        for index, entry in enumerate(datasets):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                confined.append(entry)
                continue
            given = entry["path"]
            if not given:
                confined.append(entry)
                continue
            try:
                target = (roots[0] / Path(given).expanduser()).resolve()
            except (OSError, ValueError, RuntimeError):
                target = None
            if target is None or not any(target.is_relative_to(r) for r in roots):
                errors.append(
                    f"datasets[{index}].path: {given[:200]!r} is outside the datasets root "
                    f"{roots[0]}"
                )
                continue
            confined.append({**entry, "path": str(target)})
        if errors:
            raise RunError(
                "Dataset folders must lie inside the datasets root of the preferences; "
                "move the images there or change the datasets root.",
                422,
                errors,
            )
        return confined
