"""Incidents and their timeline (tables and named queries), and the one status machine."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from incident.audit import chain as audit
from incident.db import UTCDateTime, stored_json
from incident.errors import CorruptRecord, IllegalTransition, NoSuchIncident


class Status(StrEnum):
    OPEN = "open"
    ASSESSED = "assessed"
    RENDERED = "notices rendered"
    APPROVED = "approved"
    NOTIFYING = "notifying"
    NOTIFIED = "notified"
    CLOSED = "closed"


STATUSES = frozenset(s.value for s in Status)

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
        return list(stored_json(self.systems, f"incident {self.id}: systems"))

    @property
    def category_list(self) -> list[str]:
        return list(stored_json(self.categories, f"incident {self.id}: categories"))


class TimelineEntry(SQLModel, table=True):
    __tablename__ = "timeline_entry"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    kind: str
    text: str = Field(sa_column=Column(Text, nullable=False))


def get(session: Session, incident_id: str, *, for_update: bool = False) -> Incident:
    """Return the incident or raise NoSuchIncident (locked for update when asked)."""
    stmt = select(Incident).where(Incident.id == incident_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.exec(stmt).first()
    if found is None:
        raise NoSuchIncident(f"no incident {incident_id!r} (see `incident list`)")
    if found.status not in STATUSES:
        raise CorruptRecord(f"incident {found.id}: status", f"{found.status[:40]!r} is not a status")
    return found


def transition(session: Session, incident: Incident, to: Status, actor: str, reason: str = "") -> None:
    """Move an incident to `to` if the state machine allows it, with an audit entry."""
    current = Status(incident.status)
    if to not in LEGAL[current]:
        raise IllegalTransition(f"{incident.id} cannot move from '{current}' to '{to}'")
    incident.status = to.value
    session.add(incident)
    payload = {"from": current.value, "to": to.value} | ({"reason": reason} if reason else {})
    audit.record(session, incident.id, audit.Event(audit.Action.STATUS, payload), actor)


def list_incidents(session: Session) -> list[Incident]:
    """Return every incident, newest first."""
    return list(session.exec(select(Incident).order_by(col(Incident.opened_at).desc(), col(Incident.id).desc())))


def timeline(session: Session, incident_id: str) -> list[TimelineEntry]:
    """Return the incident's timeline in order."""
    stmt = select(TimelineEntry).where(TimelineEntry.incident_id == incident_id).order_by(col(TimelineEntry.id))
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
