"""What validation reports: one `Issue` per problem (path, message, severity, kind) and the
`ValidationResult` of a whole config (registry/validation.py builds it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "warning"]
# "value": the value itself is unusable (unknown key, type, range, choice): a file with one
# cannot be loaded. "platform": this machine cannot run it. "combination": fields that
# conflict or something still missing (e.g. no dataset yet): fine to save, not to train.
IssueKind = Literal["value", "platform", "combination"]


@dataclass(frozen=True, slots=True)
class Issue:
    path: str  # "learning_rate", "datasets[0].repeats", or "" for the config as a whole
    message: str
    severity: Severity = "error"
    kind: IssueKind = "value"

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


@dataclass(slots=True)
class ValidationResult:
    values: dict[str, Any]  # the effective config: defaults overlaid by the valid explicit values
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def issues_for(self, path: str) -> list[Issue]:
        return [i for i in (*self.errors, *self.warnings) if i.path == path]


def combination(path: str, message: str) -> Issue:
    return Issue(path, message, "error", "combination")
