"""Presets: starting configs by goal x model family x GPU memory, read from registry/presets/*.toml.

Contract: each file describes one family: `family`, `order`, `label`, `note`, a `[config]` table that
every preset of the family sets, `[goal.<goal>]` and `[memory.<GB>]` tables, each with a
`note` (why these values) and a `config` table, or, for a size that cannot work, an
`unavailable` sentence. A preset's config is family config, then the goal's, then the memory
size's (which may refine the family's, e.g. a lower resolution; goal and memory never set
the same field). `check_presets()` lists every problem (unknown field, bad value, missing
note or grid entry), so a test proves the files the dialog offers are valid.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from registry.catalogue import FIELDS
from registry.coercion import normalize
from registry.family_defaults import default_for
from registry.validation import check_value

PRESETS_DIR = Path(__file__).with_name("presets")
GOALS: dict[str, str] = {
    "person": "A person or character",
    "style": "A style",
    "object": "An object or concept",
}
MEMORY_GB: tuple[int, ...] = (8, 12, 16, 24, 48)


@dataclass(frozen=True)
class Preset:
    family: str  # the file's key: sd15, sdxl, flux
    family_label: str
    goal: str
    memory_gb: int
    config: dict[str, Any]
    notes: tuple[str, ...]  # family, goal, memory: why these values
    unavailable: str = ""  # set when this GPU size cannot train this family

    @property
    def title(self) -> str:
        return f"{GOALS[self.goal]} · {self.family_label} · {self.memory_gb} GB"


@dataclass(frozen=True)
class DiffRow:
    name: str
    label: str
    before: Any
    after: Any


def _read(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


@cache
def _files() -> dict[str, dict[str, Any]]:
    files = {path.stem: _read(path) for path in PRESETS_DIR.glob("*.toml")}
    # The dialog lists families in the files' `order` (oldest and smallest first).
    return dict(sorted(files.items(), key=lambda kv: (kv[1].get("order", 99), kv[0])))


def families() -> dict[str, str]:
    """File key -> label, e.g. {"sd15": "SD 1.5", ...}."""
    return {key: str(data.get("label", key)) for key, data in _files().items()}


def get_preset(family: str, goal: str, memory_gb: int) -> Preset:
    """The preset for one cell of the grid; KeyError names what does not exist."""
    data = _files()[family]
    goal_table = data["goal"][goal]
    memory_table = data["memory"][str(memory_gb)]
    config = {**data.get("config", {}), **goal_table.get("config", {})}
    config.update(memory_table.get("config", {}))
    return Preset(
        family=family,
        family_label=str(data.get("label", family)),
        goal=goal,
        memory_gb=memory_gb,
        config=config,
        notes=(str(data.get("note", "")), str(goal_table["note"]), str(memory_table["note"])),
        unavailable=str(memory_table.get("unavailable", "")),
    )


def nearest_memory(total_gb: float | None) -> int:
    """The largest preset size not above `total_gb` (the smallest when unknown or below)."""
    fitting = [gb for gb in MEMORY_GB if total_gb is not None and gb <= total_gb + 0.5]
    return fitting[-1] if fitting else MEMORY_GB[0]


def preset_diff(preset: Preset, explicit: Mapping[str, Any]) -> list[DiffRow]:
    """What applying `preset` changes: the value on screen before (explicit, else the family
    default the form shows) and after, for every field whose value changes."""
    family_before = explicit.get("model_family", default_for("model_family"))
    family_after = preset.config.get("model_family", family_before)
    rows: list[DiffRow] = []
    for name in FIELDS:
        if name not in preset.config:
            continue
        before = explicit[name] if name in explicit else default_for(name, family_before)
        after = preset.config[name]
        if before != after:
            rows.append(DiffRow(name, FIELDS[name].display_label, before, after))
    # Unset fields move with the family's defaults too; show those changes as well.
    for name in FIELDS:
        if name in preset.config or name in explicit or family_after == family_before:
            continue
        before, after = default_for(name, family_before), default_for(name, family_after)
        if before != after:
            rows.append(DiffRow(name, FIELDS[name].display_label, before, after))
    return rows


def apply_preset(preset: Preset, explicit: Mapping[str, Any]) -> dict[str, Any]:
    """The explicit config after applying: the preset's fields set, every other kept."""
    out = dict(explicit)
    out.update({name: normalize(FIELDS[name], v) for name, v in preset.config.items()})
    return out


def check_presets() -> list[str]:
    """Every problem in the preset files, as sentences (empty when all are valid)."""
    problems: list[str] = []
    family_values = {c.value for c in FIELDS["model_family"].choices}
    for key, data in _files().items():
        where = f"presets/{key}.toml"
        for part in ("label", "note"):
            if not str(data.get(part, "")).strip():
                problems.append(f"{where}: missing {part}")
        if data.get("config", {}).get("model_family") not in family_values:
            problems.append(f"{where}: [config] must set a valid model_family")
        goals, sizes = data.get("goal", {}), data.get("memory", {})
        if set(goals) != set(GOALS):
            problems.append(f"{where}: goals must be exactly {sorted(GOALS)}")
        if set(sizes) != {str(gb) for gb in MEMORY_GB}:
            problems.append(f"{where}: memory sizes must be exactly {list(MEMORY_GB)}")
        tables = [("config", data.get("config", {}))]
        tables += [(f"goal.{g}", t) for g, t in goals.items()]
        tables += [(f"memory.{m}", t) for m, t in sizes.items()]
        for name, table in tables:
            if name != "config" and not str(table.get("note", "")).strip():
                problems.append(f"{where}: [{name}] has no note saying why")
            values = table if name == "config" else table.get("config", {})
            for field_name, value in values.items():
                spec = FIELDS.get(field_name)
                if spec is None:
                    problems.append(f"{where}: [{name}] unknown field {field_name!r}")
                    continue
                error = check_value(spec, value)
                if error:
                    problems.append(f"{where}: [{name}] {field_name}: {error}")
            if (
                name.startswith("memory.")
                and not table.get("config")
                and not table.get("unavailable")
            ):
                problems.append(f"{where}: [{name}] needs a config or an 'unavailable' reason")
        for goal, gtable in goals.items():
            for size, mtable in sizes.items():
                both = set(gtable.get("config", {})) & set(mtable.get("config", {}))
                if both:
                    problems.append(
                        f"{where}: goal.{goal} and memory.{size} both set {sorted(both)}"
                    )
    return problems


__all__ = [
    "GOALS",
    "MEMORY_GB",
    "DiffRow",
    "Preset",
    "apply_preset",
    "check_presets",
    "families",
    "get_preset",
    "nearest_memory",
    "preset_diff",
]
