"""Tables owned by reports: regulator reports, announcement renders and sends, deadline warnings.

A send to an announcement target or to on-call is recorded before it is made (state 'sending', with its owner
process and a lease) and settled after, each in its own transaction: no database lock is held while the network
is slow, and a run that dies between the two leaves a row that says so."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel, col, select

from incident.audit import coverage
from incident.db import UTCDateTime


class Report(SQLModel, table=True):
    """One generated regulator report file: its hash and time, and when (and as what) it was submitted."""

    __tablename__ = "report"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    regulator: str  # the report kind: playbooks/reports/<regulator>.yaml
    stage: str  # initial | update | final
    format: str  # md | html | pdf | json
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    sha256: str
    path: str
    delay_reason: str | None = Field(default=None, sa_column=Column(Text))
    submitted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    reference: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "regulator": self.regulator,
            "stage": self.stage,
            "format": self.format,
            "generated_at": self.at.isoformat(),
            "by": self.actor,
            "sha256": self.sha256,
            "path": self.path,
            "delay_reason": self.delay_reason,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "reference": self.reference,
        }


class AnnouncementRender(SQLModel, table=True):
    """One run of `incident announce`: the manifest an approval binds to, and when it went public."""

    __tablename__ = "announcement_render"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    manifest_hash: str
    folder: str
    published_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    counts: str = Field(sa_column=Column(Text, nullable=False))  # the aggregate counts it states (JSON)


class AnnouncementSend(SQLModel, table=True):
    """One call to one configured announcement target (a re-publish retries only the failed ones)."""

    __tablename__ = "announcement_send"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    render_id: int = Field(foreign_key="announcement_render.id")
    target: str  # privacy-masked URL
    target_hash: str  # sha256 of the URL as configured, to recognise it again
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    outcome: str  # sending | sent | transient | permanent | unknown
    reason: str | None = Field(default=None, sa_column=Column(Text))
    owner: str | None = None  # host:pid:token of the process sending it, while 'sending'
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class DeadlineWarning(SQLModel, table=True):
    """A warning sent to on-call, once per incident, obligation and level (due-soon, overdue)."""

    __tablename__ = "deadline_warning"
    incident_id: str = Field(primary_key=True, foreign_key="incident.id")
    key: str = Field(primary_key=True)
    level: str = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    state: str  # sending | sent | unknown (in flight when its run stopped, and no longer due)
    owner: str | None = None  # host:pid:token of the process sending it, while 'sending'
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


coverage.declare(
    "report",
    key="id",
    columns=(
        "id",
        "regulator",
        "stage",
        "format",
        "at",
        "actor",
        "sha256",
        "path",
        "delay_reason",
        "submitted_at",
        "reference",
    ),
)
coverage.declare(
    "announcement_render", key="id", columns=("id", "at", "actor", "manifest_hash", "folder", "published_at", "counts")
)


def report_file_findings(session: Session, incident_id: str) -> tuple[list[str], list[str]]:
    """Report files that differ from the sha256 recorded (and covered) when they were generated, and notes on
    those no longer on disk (the submitted copy then proves itself against the recorded hash)."""
    import hashlib
    from pathlib import Path

    problems, missing = [], []
    for report in list_reports(session, incident_id):
        path = Path(report.path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            missing.append(path.name)
            continue
        except OSError as exc:
            problems.append(f"report {report.id} file {path.name} cannot be read ({exc.strerror})")
            continue
        if hashlib.sha256(data).hexdigest() != report.sha256:
            problems.append(f"report {report.id} file {path.name} was edited: it differs from its recorded sha256")
    notes = [f"report files not on disk, not checked: {', '.join(missing[:5])}"] if missing else []
    return problems, notes


def list_reports(session: Session, incident_id: str) -> list[Report]:
    """Every generated report of an incident, oldest first."""
    return list(session.exec(select(Report).where(Report.incident_id == incident_id).order_by(col(Report.id))))
