"""Regulator report kinds as data: playbooks/reports/<key>.yaml, validated on load (errors name file:line:field)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, model_validator

from incident.catalog import Strict, Text, data_dir, data_file, is_key
from incident.datafiles import load_yaml
from incident.errors import BadInput, InvalidArgument

Stage = Literal["initial", "update", "final"]
STAGES: tuple[Stage, ...] = ("initial", "update", "final")
# Incident facts a responder field may start from, so the report is never blank where the tool already knows.
Prefill = Literal["cause", "summary", "measures_planned", "connected_systems"]


class Section(Strict):
    """One heading of a report: the stages that include it, and the responder's text it carries, if any."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: Text
    stages: list[Stage] = Field(min_length=1)
    field: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")
    required_at: list[Stage] = []
    prefill: Prefill | None = None
    if_missing: Text | None = None

    @model_validator(mode="after")
    def _field_rules(self) -> Section:
        if self.field is None and (self.required_at or self.prefill or self.if_missing):
            raise ValueError("required_at, prefill and if_missing need a `field`")
        extra = [s for s in self.required_at if s not in self.stages]
        if extra:
            raise ValueError(f"required_at names stages the section is not in: {', '.join(extra)}")
        if self.prefill and self.required_at:
            raise ValueError("a prefilled field is never missing: drop required_at or prefill")
        return self


class Delay(Strict):
    """When a stage filed after `after_hours` from discovery must state the reasons for the delay."""

    after_hours: float = Field(gt=0)
    stages: list[Stage] = Field(min_length=1)
    rule: str


class ReportKind(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: Text
    recipient: Text
    regime: str
    stages: dict[Stage, Text] = Field(min_length=1)
    to_follow: Text
    delay: Delay | None = None
    sections: list[Section] = Field(min_length=1)
    # The regulator's region (ISO 3166 code): the report's dates are written on its clock (incident/timezones.yaml);
    # an [organisation] key named by zone_region_from, when set, names the region instead. Neither: UTC.
    zone_region: str | None = Field(default=None, pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    zone_region_from: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]*$")

    def sections_at(self, stage: str) -> list[Section]:
        return [s for s in self.sections if stage in s.stages]


def _section_lines(path: Path) -> list[int]:
    """The line each item of `sections:` starts on (the file has already parsed and validated)."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    assert root is not None
    items = next(v for k, v in root.value if k.value == "sections")
    return [item.start_mark.line + 1 for item in items.value]


def _check(kind: ReportKind, path: Path) -> None:
    """What one section cannot check alone: unique keys and fields, stages the report has."""
    keys: set[str] = set()
    fields: set[str] = set()
    for i, (section, line) in enumerate(zip(kind.sections, _section_lines(path), strict=True)):
        if section.key in keys:
            raise BadInput(str(path), line, f"sections.{i}.key", f"duplicate section key {section.key!r}")
        if section.field and section.field in fields:
            raise BadInput(
                str(path), line, f"sections.{i}.field", f"field {section.field!r} is already used by another section"
            )
        keys.add(section.key)
        fields |= {section.field} if section.field else set()
        unknown = [s for s in section.stages if s not in kind.stages]
        if unknown:
            raise BadInput(
                str(path),
                line,
                f"sections.{i}.stages",
                f"stage {unknown[0]!r} is not one of the report's stages ({', '.join(kind.stages)})",
            )


@cache
def _load(path: Path, mtime: float) -> ReportKind:
    kind = load_yaml(path, ReportKind)
    _check(kind, path)
    return kind


def kind_keys(workspace: Path | None) -> list[str]:
    """Every report kind a workspace can generate (its own playbooks/reports/ first)."""
    dirs = [data_dir() / "reports"] + ([workspace / "playbooks" / "reports"] if workspace else [])
    return sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")})


def load(key: str, workspace: Path | None) -> ReportKind:
    """Load and validate report kind `key` (a workspace copy overrides the shipped one)."""
    path = data_file(f"reports/{key}.yaml", workspace) if is_key(key) else None
    if path is None or not path.is_file():
        raise InvalidArgument(
            f"--regulator: unknown report kind {key[:64]!r} (known: {', '.join(kind_keys(workspace))})"
        )
    kind = _load(path, path.stat().st_mtime)
    if kind.key != key:
        raise BadInput(str(path), 1, "key", f"is {kind.key!r} but the file is named {key}.yaml")
    return kind
