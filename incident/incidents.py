"""Incidents: opened from a playbook, a timeline of what responders did, and one status machine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, func, select

from incident import audit, catalog, clock
from incident.db import UTCDateTime
from incident.errors import IllegalTransition, InvalidArgument, NoSuchIncident


class Status(StrEnum):
    OPEN = "open"
    ASSESSED = "assessed"
    RENDERED = "notices rendered"
    APPROVED = "approved"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"
    CLOSED = "closed"


# Every legal move. Re-assessing or re-rendering steps back; nothing leaves `closed`.
LEGAL: dict[Status, set[Status]] = {
    Status.OPEN: {Status.ASSESSED, Status.CLOSED},
    Status.ASSESSED: {Status.ASSESSED, Status.RENDERED, Status.CLOSED},
    Status.RENDERED: {Status.ASSESSED, Status.RENDERED, Status.APPROVED},
    Status.APPROVED: {Status.ASSESSED, Status.RENDERED, Status.APPROVED, Status.NOTIFYING},
    Status.NOTIFYING: {Status.NOTIFYING, Status.NOTIFIED},
    Status.NOTIFIED: {Status.NOTIFYING, Status.NOTIFIED, Status.CLOSED},
    Status.CLOSED: set(),
}

TIMELINE_KINDS = ("action", "finding", "decision")


class Incident(SQLModel, table=True):
    __tablename__ = "incident"
    __table_args__ = (UniqueConstraint("year", "number"),)
    id: str = Field(primary_key=True)
    year: int
    number: int
    playbook: str
    title: str
    summary: str | None = Field(default=None, sa_column=Column(Text))
    summary_en: str | None = Field(default=None, sa_column=Column(Text))
    cause: str | None = Field(default=None, sa_column=Column(Text))
    cause_en: str | None = Field(default=None, sa_column=Column(Text))
    systems: str = Field(sa_column=Column(Text, nullable=False))
    categories: str = Field(sa_column=Column(Text, nullable=False))
    exposure_from: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    exposure_to: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    discovered_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    discovered_by: str
    discovered_where: str | None = None
    connected_systems: str | None = Field(default=None, sa_column=Column(Text))
    police_contacted: bool = False
    status: str = Status.OPEN.value
    opened_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    opened_by: str
    handling_ended_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))

    @property
    def system_list(self) -> list[str]:
        return list(json.loads(self.systems))

    @property
    def category_list(self) -> list[str]:
        return list(json.loads(self.categories))


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entry"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    kind: str
    text: str = Field(sa_column=Column(Text, nullable=False))


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


def get(session: Session, incident_id: str, *, for_update: bool = False) -> Incident:
    """Return the incident or raise NoSuchIncident (locked for update when asked)."""
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.exec(stmt).first()
    if found is None:
        raise NoSuchIncident(f"no incident {incident_id!r} (see `incident list`)")
    return found


def transition(session: Session, incident: Incident, to: Status, actor: str, reason: str = "") -> None:
    """Move an incident to `to` if the state machine allows it, with an audit entry."""
    current = Status(incident.status)
    if to not in LEGAL[current]:
        raise IllegalTransition(f"{incident.id} cannot move from '{current}' to '{to}'")
    incident.status = to.value
    session.add(incident)
    payload = {"from": current.value, "to": to.value} | ({"reason": reason} if reason else {})
    audit.record(session, incident.id, audit.Event("status", payload), actor)


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
        opened_at=now,
        opened_by=actor,
    )
    session.add(incident)
    session.flush()
    audit.record(
        session,
        incident.id,
        audit.Event(
            "opened",
            {
                "playbook": book.key,
                "systems": incident.system_list,
                "categories": incident.category_list,
                "from": req.exposure_from.isoformat(),
                "to": req.exposure_to.isoformat(),
                "discovered_at": discovered.isoformat(),
            },
        ),
        actor,
    )
    return incident


def log_entry(session: Session, incident_id: str, text: str, kind: str, actor: str) -> TimelineEntry:
    """Add a timestamped timeline entry; `action` entries become 'what we have done' in notices."""
    if kind not in TIMELINE_KINDS:
        raise InvalidArgument(f"--kind: must be one of {', '.join(TIMELINE_KINDS)}")
    if not text.strip():
        raise InvalidArgument("the log entry is empty")
    incident = get(session, incident_id, for_update=True)
    if incident.status == Status.CLOSED:
        raise IllegalTransition(f"{incident_id} is closed: its timeline can no longer change")
    entry = TimelineEntry(incident_id=incident_id, at=clock.now(), actor=actor, kind=kind, text=text.strip())
    session.add(entry)
    session.flush()
    audit.record(session, incident_id, audit.Event("logged", {"kind": kind, "entry": entry.id}), actor)
    return entry


def end_handling(session: Session, incident_id: str, actor: str) -> Incident:
    """Record that handling has ended (starts the CAC 30-day final-summary clock)."""
    incident = get(session, incident_id, for_update=True)
    if incident.handling_ended_at is None:
        incident.handling_ended_at = clock.now()
        session.add(incident)
        audit.record(session, incident_id, audit.Event("handling-ended", {}), actor)
    return incident


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


def list_incidents(session: Session) -> list[Incident]:
    """Return every incident, newest first."""
    return list(session.exec(select(Incident).order_by(Incident.opened_at.desc(), Incident.id.desc())))  # type: ignore[attr-defined]


def timeline(session: Session, incident_id: str) -> list[TimelineEntry]:
    """Return the incident's timeline in order."""
    stmt = select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(TimelineEntry.id)
    return list(session.exec(stmt))


def facts(incident: Incident) -> dict[str, Any]:
    """The incident facts that notices and reports depend on (hashed into the review manifest)."""
    return {
        "id": incident.id,
        "playbook": incident.playbook,
        "title": incident.title,
        "summary": incident.summary,
        "summary_en": incident.summary_en,
        "cause": incident.cause,
        "cause_en": incident.cause_en,
        "systems": incident.system_list,
        "categories": incident.category_list,
        "from": incident.exposure_from.isoformat(),
        "to": incident.exposure_to.isoformat(),
        "discovered_at": incident.discovered_at.isoformat(),
        "discovered_by": incident.discovered_by,
        "discovered_where": incident.discovered_where,
    }
