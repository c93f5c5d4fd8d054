"""Incidents and their timeline (tables and named queries), and the one status machine."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, Session, SQLModel, col, select

from incident.audit import chain as audit
from incident.audit import coverage
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

# Every legal move. Re-assessing or re-rendering steps back; nothing leaves `closed`. Once sending has started,
# re-assessing, re-rendering and deciding move the incident to its own status instead (notifying → notifying,
# notified → notified, or notifying when people are found): the render and its approval carry their own state,
# so dispatch of the deliveries already planned never waits for a review.
LEGAL: dict[Status, set[Status]] = {
    Status.OPEN: {Status.ASSESSED, Status.CLOSED},
    Status.ASSESSED: {Status.ASSESSED, Status.RENDERED, Status.CLOSED},
    Status.RENDERED: {Status.ASSESSED, Status.RENDERED, Status.APPROVED},
    Status.APPROVED: {Status.ASSESSED, Status.RENDERED, Status.APPROVED, Status.NOTIFYING},
    Status.NOTIFYING: {Status.NOTIFYING, Status.NOTIFIED},
    Status.NOTIFIED: {Status.NOTIFYING, Status.NOTIFIED, Status.CLOSED},
    Status.CLOSED: set(),
}


# GDPR art. 4(12): a personal data breach is a breach of confidentiality, integrity and/or availability.
NATURES = ("confidentiality", "integrity", "availability")


def parse_nature(value: str, option: str = "--nature") -> str:
    """Validate a comma-separated nature of the breach and return it in GDPR's order."""
    from incident.errors import InvalidArgument

    given = [v.strip().lower() for v in value.split(",") if v.strip()]
    if not given:
        raise InvalidArgument(f"{option}: name at least one of {', '.join(NATURES)}")
    for v in given:
        if v not in NATURES:
            raise InvalidArgument(f"{option}: {v!r} is not one of {', '.join(NATURES)}")
    return ",".join(n for n in NATURES if n in given)


def nature_of(stored: str | None, default: Sequence[str]) -> tuple[str, ...]:
    """The incident's natures in GDPR's order (the playbook's default when the incident never stated one)."""
    chosen = set(stored.split(",")) if stored else set(default)
    return tuple(n for n in NATURES if n in chosen)


TIMELINE_KINDS = ("action", "finding", "decision", "police-report")  # a police report also sets police_contacted


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
    nature: str | None = None  # GDPR art. 4(12), comma-separated; None: the playbook's default
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
    text: str = Field(sa_column=Column(Text, nullable=False))  # zh-CN; empty when only the English was given
    text_en: str | None = Field(default=None, sa_column=Column(Text))


# What the chain covers of an incident (audit.coverage): every fact a notice, report or the board says.
coverage.declare(
    "incident",
    key="id",
    scope="id",
    columns=(
        "id",
        "playbook",
        "title",
        "summary",
        "summary_en",
        "cause",
        "cause_en",
        "systems",
        "categories",
        "exposure_from",
        "exposure_to",
        "discovered_at",
        "discovered_by",
        "discovered_where",
        "connected_systems",
        "police_contacted",
        "nature",
        "status",
        "opened_at",
        "opened_by",
        "handling_ended_at",
        "closed_at",
    ),
)
coverage.declare("timeline_entry", key="id", columns=("id", "at", "actor", "kind", "text", "text_en"))


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
        "police_contacted": incident.police_contacted,
        "nature": incident.nature,
    }


# ---- data at rest: legal holds, purges, and the exports the tool wrote -----------------------------------------


class LegalHold(SQLModel, table=True):
    """A legal hold on an incident: while one is not released, its personal data may not be purged."""

    __tablename__ = "legal_hold"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    placed_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    placed_by: str
    reason: str = Field(sa_column=Column(Text, nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    released_by: str | None = None
    release_reason: str | None = Field(default=None, sa_column=Column(Text))


class Purge(SQLModel, table=True):
    """When an incident's personal data was purged, by whom, what went, and the files still to remove."""

    __tablename__ = "purge"
    incident_id: str = Field(primary_key=True, foreign_key="incident.id")
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    retention_days: int
    removed: str = Field(sa_column=Column(Text, nullable=False))  # JSON: what the purge removed, counted
    files: str = Field(sa_column=Column(Text, nullable=False))  # JSON: workspace paths it removes after its commit


class ExportFile(SQLModel, table=True):
    """A file the tool wrote personal data of an incident into on request (`affected --output`, ...)."""

    __tablename__ = "export_file"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    path: str = Field(sa_column=Column(Text, nullable=False))
    kind: str
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))


def active_hold(session: Session, incident_id: str) -> LegalHold | None:
    """The incident's legal hold that has not been released, if there is one."""
    stmt = select(LegalHold).where(LegalHold.incident_id == incident_id, col(LegalHold.released_at).is_(None))
    return session.exec(stmt.order_by(col(LegalHold.id).desc())).first()


def purge_of(session: Session, incident_id: str) -> Purge | None:
    """The purge of the incident's personal data, if it has been purged."""
    return session.get(Purge, incident_id)


def record_export(session: Session, incident_id: str, path: str, kind: str, at: datetime) -> None:
    """Remember that personal data of the incident was written to `path`, so a purge can remove it."""
    session.add(ExportFile(incident_id=incident_id, path=path, kind=kind, at=at))


def exports_of(session: Session, incident_id: str) -> list[ExportFile]:
    """Every export the tool wrote for the incident, oldest first."""
    stmt = select(ExportFile).where(ExportFile.incident_id == incident_id).order_by(col(ExportFile.id))
    return list(session.exec(stmt))


def forget_exports(session: Session, incident_id: str) -> None:
    """Drop the record of the incident's exports (a purge has listed them for removal)."""
    for export in exports_of(session, incident_id):
        session.delete(export)
