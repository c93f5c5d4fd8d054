"""Opening an incident from a playbook, its timeline entries, closing it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, func, select

from incident import catalog, clock
from incident.audit import chain as audit
from incident.errors import IllegalTransition, InvalidArgument
from incident.incidents.models import TIMELINE_KINDS, Incident, Status, TimelineEntry, get, parse_nature, transition


@dataclass(frozen=True)
class OpenRequest:
    """What a responder gives `incident open`."""

    playbook: str
    title: str
    systems: list[str]
    exposure_from: datetime
    exposure_to: datetime
    categories: list[str] | None = None
    discovered_at: datetime | None = None
    discovered_by: str | None = None
    discovered_where: str | None = None
    summary: str | None = None
    summary_en: str | None = None
    cause: str | None = None
    cause_en: str | None = None
    connected_systems: str | None = None
    police_contacted: bool = False
    nature: str | None = None  # comma-separated; None: the playbook's


def open_incident(session: Session, req: OpenRequest, actor: str, workspace: Path | None = None) -> Incident:
    """Open an incident from a playbook; categories default to the playbook's."""
    book = catalog.playbook(req.playbook, workspace)
    known_categories = catalog.categories(workspace).by_key()
    categories = req.categories or list(book.categories)
    for cat in categories:
        if cat not in known_categories:
            raise InvalidArgument(f"--categories: unknown category {cat!r}")
    if not req.systems:
        raise InvalidArgument("--systems: name at least one system")
    from incident.inventory.models import system_exists

    for name in req.systems:
        if not system_exists(session, name):
            raise InvalidArgument(f"--systems: unknown system {name!r} (import it with `incident inventory import`)")
    nature = parse_nature(req.nature) if req.nature is not None else None
    if req.exposure_to < req.exposure_from:
        raise InvalidArgument("--to: the exposure window ends before it starts")
    now = clock.now()
    discovered = req.discovered_at or now
    if discovered > now:
        raise InvalidArgument("--discovered: is in the future")
    year = now.year
    last = session.exec(select(func.max(Incident.number)).where(Incident.year == year)).one()
    number = (last or 0) + 1
    incident = Incident(
        id=f"INC-{year}-{number:04d}",
        year=year,
        number=number,
        playbook=book.key,
        title=req.title,
        summary=req.summary,
        summary_en=req.summary_en,
        cause=req.cause,
        cause_en=req.cause_en,
        systems=json.dumps(sorted(set(req.systems))),
        categories=json.dumps(sorted(set(categories))),
        exposure_from=req.exposure_from,
        exposure_to=req.exposure_to,
        discovered_at=discovered,
        discovered_by=req.discovered_by or actor,
        discovered_where=req.discovered_where,
        connected_systems=req.connected_systems,
        police_contacted=req.police_contacted,
        nature=nature,
        opened_at=now,
        opened_by=actor,
    )
    session.add(incident)
    session.flush()
    audit.record(
        session,
        incident.id,
        audit.Event(
            audit.Action.OPENED,
            {
                "playbook": book.key,
                "systems": incident.system_list,
                "categories": incident.category_list,
                "from": req.exposure_from.isoformat(),
                "to": req.exposure_to.isoformat(),
                "discovered_at": discovered.isoformat(),
                "police": req.police_contacted,
                "nature": nature or ",".join(book.nature),
            },
        ),
        actor,
    )
    return incident


def log_entry(
    session: Session,
    incident_id: str,
    text: str | None,
    kind: str,
    actor: str,
    *,
    text_en: str | None = None,
    nature: str | None = None,
) -> TimelineEntry:
    """Add a timestamped timeline entry, its zh-CN `text` and English `text_en` (one may follow later with
    `translate_entry`); `action` entries become 'what we have done' in notices, a `police-report` records that
    the police were told, and `nature` restates the nature of the breach (the entry says why)."""
    if kind not in TIMELINE_KINDS:
        raise InvalidArgument(f"--kind: must be one of {', '.join(TIMELINE_KINDS)}")
    zh, en = (text or "").strip(), (text_en or "").strip()
    if not zh and not en:
        raise InvalidArgument("the log entry is empty")
    natures = parse_nature(nature) if nature is not None else None
    incident = get(session, incident_id, for_update=True)
    if incident.status == Status.CLOSED:
        raise IllegalTransition(f"{incident_id} is closed: its timeline can no longer change")
    # The facts the claims derive from change with the entry that says why, in the same audited unit of work.
    if kind == "police-report":
        incident.police_contacted = True
    if natures is not None:
        incident.nature = natures
    session.add(incident)
    entry = TimelineEntry(incident_id=incident_id, at=clock.now(), actor=actor, kind=kind, text=zh, text_en=en or None)
    session.add(entry)
    session.flush()
    payload: dict[str, object] = {"kind": kind, "entry": entry.id}
    if natures is not None:
        payload["nature"] = natures
    audit.record(session, incident_id, audit.Event(audit.Action.LOGGED, payload), actor)
    return entry


FIELDS = {"summary": ("summary", "summary_en"), "cause": ("cause", "cause_en")}  # translatable like an entry


def translate_entry(
    session: Session, incident_id: str, entry: str, actor: str, *, text: str | None, text_en: str | None
) -> None:
    """Give a timeline entry (its number) or the incident's summary or cause its text in the language(s) named;
    the other language stays as it is. Audited."""
    zh, en = (text or "").strip(), (text_en or "").strip()
    if not zh and not en:
        raise InvalidArgument("--entry: give the text as TEXT (zh-CN) and/or --en TEXT")
    incident = get(session, incident_id, for_update=True)
    if incident.status == Status.CLOSED:
        raise IllegalTransition(f"{incident_id} is closed: its timeline can no longer change")
    changed = [lang for lang, value in (("zh-CN", zh), ("en", en)) if value]
    target: Incident | TimelineEntry | None
    if entry in FIELDS:
        target, (zh_field, en_field) = incident, FIELDS[entry]
        payload: dict[str, object] = {"field": entry, "languages": changed}
    else:
        found = session.get(TimelineEntry, int(entry)) if entry.isdigit() and len(entry) < 10 else None
        if found is None or found.incident_id != incident_id:
            raise InvalidArgument(
                f"--entry {entry[:20]!r}: {incident_id} has no such timeline entry (see `incident show`)"
            )
        target, (zh_field, en_field) = found, ("text", "text_en")
        payload = {"kind": found.kind, "entry": found.id, "languages": changed}
    setattr(target, zh_field, zh or getattr(target, zh_field))
    setattr(target, en_field, en or getattr(target, en_field))
    session.add(target)
    session.flush()
    audit.record(session, incident_id, audit.Event(audit.Action.LOGGED, payload), actor)


def close_incident(session: Session, incident_id: str, actor: str) -> Incident:
    """Close an incident; handling ends now if it had not been marked earlier."""
    incident = get(session, incident_id, for_update=True)
    transition(session, incident, Status.CLOSED, actor)
    now = clock.now()
    incident.closed_at = now
    if incident.handling_ended_at is None:
        incident.handling_ended_at = now
    session.add(incident)
    return incident
