"""Tables owned by dispatch: one delivery per person (the fallback chain) and one attempt per call (proof)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, Session, SQLModel

from incident.db import UTCDateTime


class Delivery(SQLModel, table=True):
    """Where one person's notification stands: which channel next, when, and who holds the lease."""

    __tablename__ = "delivery"
    __table_args__ = (Index("ix_delivery_due", "incident_id", "state", "next_at"),)
    incident_id: str = Field(primary_key=True, foreign_key="incident.id")
    person_id: str = Field(primary_key=True)
    channels: str  # electronic channels in fallback order, comma-separated
    has_letter: bool
    position: int = 0
    tries: int = 0
    state: str  # pending | sent | letter | posted | unreachable | held
    next_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    lease_owner: str | None = None
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    final_channel: str | None = None
    settled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    unknown_resends: int = 0


class Attempt(SQLModel, table=True):
    """One call to one channel for one person: claimed before sending, settled after."""

    __tablename__ = "attempt"
    __table_args__ = (
        Index("ix_attempt_person", "incident_id", "person_id"),
        Index("ix_attempt_outcome", "incident_id", "outcome"),
    )
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id")
    person_id: str
    notice_id: int
    channel: str
    address: str  # masked
    started: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    finished: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    outcome: str  # in-flight | sent | transient | permanent | unknown | printed
    reason: str | None = Field(default=None, sa_column=Column(Text))
    provider: str | None = Field(default=None, sa_column=Column(Text))
    worker: str


class RateBudget(SQLModel, table=True):
    """The next free send time of a channel (epoch seconds), shared by every worker: the global rate limit."""

    __tablename__ = "rate_budget"
    channel: str = Field(primary_key=True)
    next_free: float


def counts_by_state(session: Session, incident_id: str) -> dict[str, int]:
    """Deliveries per state."""
    return {
        r[0]: int(r[1])
        for r in session.connection().execute(
            text("SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"), {"i": incident_id}
        )
    }
