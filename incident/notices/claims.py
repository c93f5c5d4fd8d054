"""The claims lint: one engine that holds every rendered text (notices, announcement, reports) to the record.

Rules are data (`playbooks/claims.yaml`, validated on load with file:line errors): each names the phrases that make
a claim, in either language, and the check that decides whether the record bears it out. A check is a small
function registered by name; the record is a `Record` of facts computed from the database.

Extending it (the jurisdiction issues add each regime's content rules, the bilingual lint its translation check):

- a new kind of claim in the text: add a rule to claims.yaml; if no check fits, write one and register it with
  `@check("name")` — it gets (rule, match, record) and returns the contradicted fact, or None when it holds;
- a check over the whole artefact rather than a phrase (a missing translation, a required statement absent):
  register it with `@artefact_check` — it gets (artefact, record) and yields `Failure`s;
- a new fact: put it in `Record.facts` (a mapping, so adding one changes no signature) where the record is built.

`lint(artefact, record)` returns every failure with the claim, where it is (artefact, variant, line) and the fact it
contradicts; `count` of them is what render, approval and report generation act on.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from incident import catalog, clock
from incident.catalog import Strict, Text
from incident.datafiles import load_yaml
from incident.incidents.models import NATURES, nature_of, parse_nature  # noqa: F401  (the engine's facts)
from incident.zones import MONTHS

Nature = Literal["confidentiality", "integrity", "availability"]


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression ({exc}): {pattern!r}") from None
    return pattern


Pattern = Annotated[str, AfterValidator(_compiles)]  # validated one by one, so an error names its own line


class Rule(Strict):
    """One kind of claim: the phrases that make it and the check the record must pass."""

    key: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    claim: Text
    says: list[Pattern] = Field(min_length=1)
    unless: list[Pattern] = []
    check: str
    fact: str | None = None
    value: str | None = None
    contradicts: Text

    @field_validator("check")
    @classmethod
    def _known_check(cls, name: str) -> str:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r} (known: {', '.join(sorted(CHECKS))})")
        return name


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
PLACEHOLDERS = ("recipient", "date", "due", "natures")


def fill(template: str, **values: str) -> str:
    """Put the record's values into a statement's {placeholders} (plain substitution: never str.format, whose
    attribute lookups a lawyer-edited file must not reach)."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


class Statement(Text):
    """A sentence the tool writes from the record, with {placeholders} it fills in."""

    @model_validator(mode="after")
    def _placeholders(self) -> Statement:
        for loc in catalog.LOCALES:
            for used in PLACEHOLDER.findall(self(loc)):
                if used not in PLACEHOLDERS:
                    known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                    raise ValueError(f"{loc}: unknown placeholder {{{used}}} (known: {known})")
        return self


class Statements(Strict):
    police: Statement
    reported: Statement
    reporting: Statement
    reporting_now: Statement
    nature: Statement


class ClaimRules(Strict):
    natures: dict[Nature, Text]
    statements: Statements
    rules: list[Rule] = Field(min_length=1)


@cache
def _rules(path: Path, mtime: float) -> ClaimRules:
    return load_yaml(path, ClaimRules)


def rules(workspace: Path | None = None) -> ClaimRules:
    """The claim rules (a workspace playbooks/claims.yaml replaces the shipped one)."""
    path = catalog.data_file("claims.yaml", workspace)
    return _rules(path, path.stat().st_mtime)


@dataclass(frozen=True)
class Record:
    """What the record says, as far as claims go. `facts` holds each fact by name (police, people, children, …)."""

    facts: Mapping[str, Any]
    categories: frozenset[str]
    nature: tuple[str, ...]
    reported: tuple[str, ...] = ()  # recipients of the regulator reports marked submitted


@dataclass(frozen=True)
class Artefact:
    """One rendered text and where it is: 'notices' / 'zh-CN|email|self|phone' / 'zh-CN/email'."""

    kind: str
    name: str
    text: str
    variant: str = ""
    locale: str = ""  # the reader's language, where the artefact has one (a report mixes both)


@dataclass(frozen=True)
class Failure:
    """A claim the record does not bear out."""

    rule: str
    claim: str
    where: str
    line: int
    contradicts: str

    def __str__(self) -> str:
        return f"{self.where} line {self.line}: {self.rule}: {self.claim!r} contradicts the record: {self.contradicts}"


Check = Callable[[Rule, "re.Match[str]", Record], str | None]
CHECKS: dict[str, Check] = {}
ARTEFACT_CHECKS: list[Callable[[Artefact, Record], Iterable[Failure]]] = []


def check(name: str) -> Callable[[Check], Check]:
    """Register a check function under the name a rule's `check` gives."""

    def register(fn: Check) -> Check:
        CHECKS[name] = fn
        return fn

    return register


def artefact_check(
    fn: Callable[[Artefact, Record], Iterable[Failure]],
) -> Callable[[Artefact, Record], Iterable[Failure]]:
    """Register a check that looks at a whole artefact (a missing translation, a statement a regime requires)."""
    ARTEFACT_CHECKS.append(fn)
    return fn


# ---- dates: every date a notice writes is one of the record's instants, on the clock the notice names --------

_OFFSET = r"UTC(?P<off>[+-]\d{1,2}(?::\d{2})?)?"
_EN_DAY = r"\b(?P<d>\d{1,2}) (?P<m>" + "|".join(MONTHS) + r") (?P<y>\d{4})"
EN_NAMED = re.compile(_EN_DAY + r"(?:, (?P<t>\d{2}:\d{2}))? \([^()]*?, " + _OFFSET + r"\)")
ZH_NAMED = re.compile(
    r"(?P<y>\d{4})年(?P<m>\d{1,2})月(?P<d>\d{1,2})日(?: (?P<t>\d{2}:\d{2}))?（[^（）]*?，" + _OFFSET + "）"
)
EN_BARE = re.compile(r"\b\d{1,2} (?:" + "|".join(MONTHS) + r") \d{4}\b")
ZH_BARE = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")


def in_sentence(recipient: str, locale: str) -> str:
    """A recipient's name as it reads after "to the": a common-noun name starts lower-case ("competent
    supervisory authority"), a proper one keeps its capitals ("California Attorney General")."""
    words = recipient.split()
    if locale == "en" and len(words) > 1 and words[1][:1].islower() and not words[0].isupper():
        return recipient[0].lower() + recipient[1:]
    return recipient


def artefact_where(artefact: Artefact) -> str:
    """Where a failure is: the artefact's kind, name and variant."""
    return f"{artefact.kind} {artefact.name}" + (f" [{artefact.variant}]" if artefact.variant else "")


def _offset(text: str | None) -> timedelta:
    if not text:
        return timedelta(0)
    sign = -1 if text.startswith("-") else 1
    hours, _, minutes = text[1:].partition(":")
    return sign * timedelta(hours=int(hours), minutes=int(minutes or 0))


@artefact_check
def _dates(artefact: Artefact, record: Record) -> Iterator[Failure]:
    """A notice's dates: each names its clock, and each falls on an instant of the record (the exposure window,
    the discovery, a report made or due, the notice's own day) on that clock."""
    instants = record.facts.get("instants")
    if artefact.kind != "notices" or not instants:
        return
    moments = [clock.parse_when(i) for i in instants]
    text = artefact.text
    named = [m for pattern in (EN_NAMED, ZH_NAMED) for m in pattern.finditer(text)]
    spans = [m.span() for m in named]
    for pattern in (EN_BARE, ZH_BARE):
        for bare in pattern.finditer(text):
            if not any(a <= bare.start() < b for a, b in spans):
                line = text.count("\n", 0, bare.start()) + 1
                yield Failure("date", bare.group(0), artefact_where(artefact), line, "a date that names no clock")
    for m in named:
        month = MONTHS.index(m["m"]) + 1 if not m["m"].isdigit() else int(m["m"])
        try:
            day = date(int(m["y"]), month, int(m["d"]))
        except ValueError:
            day = None
        shift = _offset(m["off"])
        local = [at.astimezone(timezone(shift)) for at in moments]
        fits = day is not None and any(
            at.date() == day and (m["t"] is None or at.strftime("%H:%M") == m["t"]) for at in local
        )
        if not fits:
            line = text.count("\n", 0, m.start()) + 1
            said = "no date of the record (window, discovery, reports, this notice's day) falls on it"
            yield Failure("date", m.group(0), artefact_where(artefact), line, said)


def _default(rule: Rule) -> str:
    return rule.contradicts.en


@check("recorded")
def _recorded(rule: Rule, _match: re.Match[str], record: Record) -> str | None:
    return None if record.facts.get(rule.fact or "") else _default(rule)


@check("reported")
def _reported(rule: Rule, match: re.Match[str], record: Record) -> str | None:
    """A sentence that names a regulator holds only when a report to that one is submitted; one that names none,
    when any is."""
    sentence = _sentence(match.string, match.start(), match.end())
    known: Mapping[str, bool] = record.facts.get("regulators") or {}
    named = [name for name in known if name.casefold() in sentence.casefold()]
    if named:
        if any(known[name] for name in named):
            return None
        return f"{_default(rule)}: no report to {named[0]} is marked submitted"
    return None if record.reported else _default(rule)


@check("category")
def _category(rule: Rule, _match: re.Match[str], record: Record) -> str | None:
    return None if rule.value in record.categories else _default(rule)


@check("children")
def _children(rule: Rule, _match: re.Match[str], record: Record) -> str | None:
    return None if record.facts.get("children") else _default(rule)


NATURE_WORDS = {"保密性": "confidentiality", "完整性": "integrity", "可用性": "availability"}


@check("nature")
def _nature(rule: Rule, match: re.Match[str], record: Record) -> str | None:
    named = match.groupdict().get("natures") or ""
    found = {w for w in NATURES if w in named} | {v for k, v in NATURE_WORDS.items() if k in named}
    if found == set(record.nature):
        return None
    return f"{_default(rule)}: the incident records {', '.join(record.nature) or 'none'}"


@check("count")
def _count(rule: Rule, match: re.Match[str], record: Record) -> str | None:
    said, fact = match.groupdict().get("n"), record.facts.get(rule.fact or "")
    if said is None or fact is None or int(said) == int(fact):
        return None
    return f"{_default(rule)}: the record counts {fact}"


SENTENCE_END = re.compile(r"[.。！？!?;；\n]")


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence around a match (for `unless`)."""
    before = max((m.end() for m in SENTENCE_END.finditer(text, 0, start)), default=0)
    after = SENTENCE_END.search(text, end)
    return text[before : after.start() if after else len(text)]


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def lint(artefact: Artefact, record: Record, claim_rules: ClaimRules) -> list[Failure]:
    """Every claim in the artefact's text that the record contradicts (empty when every claim holds)."""
    where = artefact_where(artefact)
    found: list[Failure] = []
    seen: set[tuple[str, int]] = set()
    for rule in claim_rules.rules:
        for pattern in rule.says:
            for match in _compiled(pattern).finditer(artefact.text):
                line = artefact.text.count("\n", 0, match.start()) + 1
                if (rule.key, line) in seen:
                    continue
                sentence = _sentence(artefact.text, match.start(), match.end())
                if any(_compiled(u).search(sentence) for u in rule.unless):
                    continue
                problem = CHECKS[rule.check](rule, match, record)
                if problem is not None:
                    seen.add((rule.key, line))
                    found.append(Failure(rule.key, sentence.strip(" -*|#\t")[:120], where, line, problem))
    for extra in ARTEFACT_CHECKS:
        found += extra(artefact, record)
    return found


def record_of(static: Mapping[str, Any], categories: str | None = None) -> Record:
    """The record a text is held to, from a notice context (content.static_context): the incident's facts, and
    for one person's notice their own categories."""
    rec = static["record"]
    cats = categories.split(",") if categories is not None else rec["categories"]
    return Record(rec["facts"], frozenset(cats), tuple(rec["nature"]), tuple(rec["reported"]))


TAG = re.compile(r"<[^>]+>")


def html_text(page: str) -> str:
    """The text of an HTML page as a reader sees it (tags dropped, entities decoded; lines kept)."""
    return html.unescape(TAG.sub("", page))


def refuse_if_false(artefacts: Iterable[Artefact], record: Record, claim_rules: ClaimRules, what: str) -> None:
    """Raise, naming each failure, when any claim in the artefacts is contradicted (nothing is then written)."""
    from incident.errors import IncidentError

    found = lint_all(artefacts, record, claim_rules)
    if found:
        shown = "; ".join(str(f) for f in found[:5])
        raise IncidentError(f"{what}: claims lint failed ({len(found)}), nothing was written: {shown}")


def lint_all(artefacts: Iterable[Artefact], record: Record, claim_rules: ClaimRules) -> list[Failure]:
    """Lint several artefacts against one record."""
    return [f for a in artefacts for f in lint(a, record, claim_rules)]


# ---- the statements the tool writes from the record ------------------------------------------------------


def natures_text(nature: Iterable[str], locale: str, claim_rules: ClaimRules) -> str:
    """'availability and confidentiality' / '可用性和保密性'."""
    words = [claim_rules.natures[n](locale) for n in nature if n in claim_rules.natures]
    if locale == "zh-CN":
        return "、".join(words[:-1]) + ("和" if len(words) > 1 else "") + words[-1] if words else ""
    return ", ".join(words[:-1]) + (" and " if len(words) > 1 else "") + words[-1] if words else ""


def statements(
    claim_rules: ClaimRules,
    locale: str,
    *,
    police: bool,
    reports: Iterable[Mapping[str, Any]],
    when: Callable[[str], str],
) -> Iterator[str]:
    """The 'what we have done' sentences the record bears out: police, then each regulator report (made, or
    when it will be made). `reports` holds recipient (per locale), state, and the instants done_at and due,
    which `when` writes on the reader's clock."""
    said = claim_rules.statements
    if police:
        yield said.police(locale)
    for report in reports:
        recipient = in_sentence(report["recipient"][locale], locale)
        if report["done_at"]:
            yield fill(said.reported(locale), recipient=recipient, date=when(report["done_at"]))
        elif report["due"] and report["state"] == "due":
            yield fill(said.reporting(locale), recipient=recipient, due=when(report["due"]))
        elif report["state"] in ("due", "overdue", "no fixed deadline"):
            yield fill(said.reporting_now(locale), recipient=recipient)
