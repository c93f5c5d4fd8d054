"""The shipped data a lawyer edits: data categories, playbooks and jurisdiction rules (YAML)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from incident.datafiles import load_yaml
from incident.errors import BadInput, IncidentError, InvalidArgument

LOCALES = ("zh-CN", "en")
KEY = re.compile(r"[a-z][a-z0-9_-]{0,63}")
NOT_PLAYBOOKS = frozenset({"categories", "jurisdictions", "claims"})  # the other data files in playbooks/
Channel = Literal["email", "sms", "push"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(Strict):
    """One wording in both locales."""

    zh_CN: str = Field(alias="zh-CN", min_length=1)
    en: str = Field(min_length=1)

    def __call__(self, locale: str) -> str:
        return self.zh_CN if locale == "zh-CN" else self.en


# A report speaks to a regulator about the people affected, never to the reader as if they were one of them.
SECOND_PERSON = re.compile(r"您|你|\byou(?:rs?|rself|rselves)?\b", re.IGNORECASE)


class Remedy(Text):
    """A remedy offered in a notice; `only_with` names the categories it needs (identity monitoring: id_document)."""

    only_with: list[str] = []


class Category(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: Text
    sensitive: bool
    rank: int = Field(ge=0, le=100, description="higher = more sensitive; orders advice")
    impact: Text  # what the person is told, in the second person
    regulator_impact: Text  # what a regulator is told, in the third person
    urgent_action: Text
    advice: list[str] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _regulator_voice(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        key = data.get("key")
        wording = data.get("regulator_impact")
        if wording is None:
            raise PydanticCustomError(
                "regulator_impact",
                "category {key} has no regulator_impact: reports need a third-person wording for regulators "
                "in zh-CN and en (e.g. 相关信息可能被用于… / the information could be used to …)",
                {"key": repr(key)},
            )
        for locale, text in wording.items() if isinstance(wording, dict) else ():
            found = SECOND_PERSON.search(text) if isinstance(text, str) else None
            if found:
                raise PydanticCustomError(
                    "regulator_voice",
                    "category {key}: regulator_impact {locale} addresses the reader ({word}): a report speaks "
                    "about the people affected, in the third person",
                    {"key": repr(key), "locale": locale, "word": repr(found.group(0))},
                )
        return data


class CategoryCatalog(Strict):
    advice: dict[str, Text]
    categories: list[Category]

    @model_validator(mode="after")
    def _advice_known(self) -> CategoryCatalog:
        seen: set[str] = set()
        for i, cat in enumerate(self.categories):
            if cat.key in seen:
                raise ValueError(f"categories[{i}]: duplicate key {cat.key!r}")
            seen.add(cat.key)
            for ref in cat.advice:
                if ref not in self.advice:
                    raise ValueError(f"category {cat.key!r} names unknown advice {ref!r}")
        return self

    def by_key(self) -> dict[str, Category]:
        return {c.key: c for c in self.categories}


class Playbook(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: Text
    incident_type: Text
    summary: Text
    cause: Text
    impact: Text
    categories: list[str] = Field(min_length=1)
    containment: list[Text] = Field(min_length=1)
    measures_done: list[Text] = Field(min_length=1)
    measures_planned: list[Text] = Field(min_length=1)
    remedies: list[Remedy] = Field(min_length=1)
    # GDPR art. 4(12): a breach of confidentiality, integrity and/or availability; the incident's default.
    nature: list[Literal["confidentiality", "integrity", "availability"]] = Field(
        default=["confidentiality"], min_length=1
    )
    channels: list[Channel] = Field(default=["email", "sms", "push"], min_length=1)
    exclude_channels: list[Channel] = []

    @property
    def allowed_channels(self) -> list[str]:
        """The electronic channels this playbook notifies on, in fallback order."""
        return [c for c in self.channels if c not in self.exclude_channels]


Anchor = Literal["discovered", "handling_ended", "individuals_notified", "announcement_published"]
# What discharges an obligation: an event the tool records, or a regulator report (kind and stage) submitted.
SettledBy = Annotated[
    str,
    Field(
        pattern=r"^(event:(individuals-notified|announcement-published)"
        r"|report:[a-z][a-z0-9-]*:(initial|update|final))$"
    ),
]


class Threshold(Strict):
    """A head-count condition: residents `over` N or `at_least` N."""

    over: int | None = None
    at_least: int | None = None

    def met(self, count: int) -> bool:
        if self.over is not None and not count > self.over:
            return False
        return self.at_least is None or count >= self.at_least


class Obligation(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    title: Text
    recipient: Text
    anchor: Anchor
    hours: float | None = None
    days: float | None = None
    grade_at_least: str | None = None
    residents: Threshold | None = None
    when_announcement: bool = False
    minimum: bool = False  # a period to serve (e.g. a 30-day posting): in progress until due, then done
    settled_by: list[SettledBy] = []
    source: str

    @model_validator(mode="after")
    def _one_period(self) -> Obligation:
        if self.hours is None and self.days is None:
            raise ValueError("give `hours` or `days` (use 0 for 'immediately')")
        if self.minimum and not (self.hours or self.days):
            raise ValueError("`minimum: true` needs a period of more than 0 hours or days")
        return self


class Regime(Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    name: Text
    always: bool = False
    regions: list[str] = []
    region_prefixes: list[str] = []
    substitute_notice_over: int | None = None
    obligations: list[Obligation]

    def covers(self, region: str | None) -> bool:
        if region is None:
            return False
        country = region.split("-")[0]
        return (
            region in self.regions or country in self.regions or any(region.startswith(p) for p in self.region_prefixes)
        )


class Grade(Strict):
    key: str
    name: Text
    people_at_least: int
    reportable: bool


class Jurisdictions(Strict):
    grades: list[Grade]
    regimes: list[Regime]

    @model_validator(mode="after")
    def _grades_known(self) -> Jurisdictions:
        keys = {g.key for g in self.grades}
        for regime in self.regimes:
            for ob in regime.obligations:
                if ob.grade_at_least is not None and ob.grade_at_least not in keys:
                    raise ValueError(f"obligation {ob.key!r}: unknown grade {ob.grade_at_least!r}")
        return self

    def grade_for(self, people: int) -> Grade:
        """Return the highest grade whose head-count threshold `people` reaches."""
        ordered = sorted(self.grades, key=lambda g: g.people_at_least, reverse=True)
        return next(g for g in ordered if people >= g.people_at_least)

    def grade_rank(self, key: str) -> int:
        ordered = sorted(self.grades, key=lambda g: g.people_at_least)
        return [g.key for g in ordered].index(key)


def data_dir() -> Path:
    """Return the shipped playbooks/ folder (installed copy first, then the source checkout)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_data" / "playbooks", here.parent / "playbooks"):
        if candidate.is_dir():
            return candidate
    raise IncidentError("the shipped playbooks/ folder is missing from this installation")


def is_key(name: str) -> bool:
    """Whether a playbook or report-kind name can name a file: lower-case letters, digits, - and _, at most 64."""
    return KEY.fullmatch(name) is not None


def data_file(name: str, workspace: Path | None) -> Path:
    if workspace is not None and (workspace / "playbooks" / name).is_file():
        return workspace / "playbooks" / name
    return data_dir() / name


@cache
def _categories(path: Path, mtime: float) -> CategoryCatalog:
    return load_yaml(path, CategoryCatalog)


def categories(workspace: Path | None = None) -> CategoryCatalog:
    """Return the data-category catalogue (a workspace copy overrides the shipped one)."""
    path = data_file("categories.yaml", workspace)
    return _categories(path, path.stat().st_mtime)


@cache
def _jurisdictions(path: Path, mtime: float) -> Jurisdictions:
    return load_yaml(path, Jurisdictions)


def jurisdictions(workspace: Path | None = None) -> Jurisdictions:
    """Return the grading and notification rules (a workspace copy overrides the shipped one)."""
    path = data_file("jurisdictions.yaml", workspace)
    return _jurisdictions(path, path.stat().st_mtime)


def playbook_path(key: str, workspace: Path | None = None) -> Path:
    """Return the file defining playbook `key`."""
    # Checked before the name becomes a path: a 300-character or "../x" name is not a file to look for.
    path = data_file(f"{key}.yaml", workspace) if is_key(key) else None
    if path is None or not path.is_file() or key in NOT_PLAYBOOKS:
        raise InvalidArgument(f"unknown playbook {key[:64]!r} (known: {', '.join(playbook_keys(workspace))})")
    return path


def playbook_keys(workspace: Path | None = None) -> list[str]:
    """List the playbooks available to a workspace."""
    dirs = [data_dir()] + ([workspace / "playbooks"] if workspace else [])
    keys = {p.stem for d in dirs if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(keys - NOT_PLAYBOOKS)


def playbook(key: str, workspace: Path | None = None) -> Playbook:
    """Load and validate playbook `key`; its categories must exist in the catalogue."""
    path = playbook_path(key, workspace)
    book = load_yaml(path, Playbook)
    if book.key != key:
        raise BadInput(str(path), 1, "key", f"is {book.key!r} but the file is named {key}.yaml")
    known = categories(workspace).by_key()
    for i, cat in enumerate(book.categories):
        if cat not in known:
            raise BadInput(str(path), _line_of(path, cat), f"categories.{i}", f"unknown category {cat!r}")
    for i, remedy in enumerate(book.remedies):
        for cat in remedy.only_with:
            if cat not in known:
                line = _line_of(path, "only_with")
                raise BadInput(str(path), line, f"remedies.{i}.only_with", f"unknown category {cat!r}")
    return book


def _line_of(path: Path, needle: str) -> int | None:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    return None
