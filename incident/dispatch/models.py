"""Tables owned by dispatch (one delivery per person, one attempt per call, the rate budgets) and their named
queries: what other domains read of them goes through the functions here, never through SQL of their own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, Index, Text, text
from sqlmodel import Field, Session, SQLModel

from incident.audit import coverage
from incident.db import UTCDateTime, read_time

POSTAL = "letter"  # the channel of notices sent by post: rendered, but written to a letter batch, never sent


class DeliveryState(StrEnum):
    """Where one person's notification stands (the value is what the delivery table stores)."""

    PENDING = "pending"  # due on its current channel, now or after a backoff
    SENT = "sent"
    LETTER = "letter"  # no electronic channel left: a letter is queued
    WRITTEN = "written"  # the letter is in a letter batch: not yet in the post, nobody is told yet
    POSTED = "posted"  # the mail house confirmed its batch went into the post
    RETURNED = "returned"  # the post brought the letter back: unreachable
    UNREACHABLE = "unreachable"  # no channel left and no postal address
    HELD = "held"  # an attempt of unknown outcome waits for a human decision
    CANCELLED = "cancelled"  # its person is no longer affected (re-assessed): nothing more is sent


class AttemptOutcome(StrEnum):
    """What one call did (the value is what the attempt table stores)."""

    IN_FLIGHT = "in-flight"  # claimed, not settled: the call may be running
    SENT = "sent"
    TRANSIENT = "transient"  # retried on this channel, then fallen back
    PERMANENT = "permanent"  # fallen back at once
    UNKNOWN = "unknown"  # its process stopped mid-call: it may or may not have been delivered
    PRINTED = "printed"  # written to the letter batch


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
    state: str  # a DeliveryState
    next_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    lease_owner: str | None = None
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    final_channel: str | None = None
    settled_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    unknown_resends: int = 0
    render_id: int | None = None  # the render whose notices this delivery sends (see planning.rebind)
    cancel_reason: str | None = Field(default=None, sa_column=Column(Text))
    letter_batch: int | None = None  # the letter batch its letter is in (see LetterBatch)


class LetterBatch(SQLModel, table=True):
    """One batch of letters for the mail house: when it was written and when the mail house confirmed posting."""

    __tablename__ = "letter_batch"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    letters: int
    written_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    written_by: str
    posted_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    posted_by: str | None = None


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
    outcome: str  # an AttemptOutcome
    reason: str | None = Field(default=None, sa_column=Column(Text))
    provider: str | None = Field(default=None, sa_column=Column(Text))
    worker: str


class RateBudget(SQLModel, table=True):
    """The next free send time of a channel (epoch seconds), shared by every worker: the global rate limit."""

    __tablename__ = "rate_budget"
    channel: str = Field(primary_key=True)
    next_free: float


class AttemptTally(SQLModel, table=True):
    """How many attempts per channel and outcome a purge deleted: the counts the proof of delivery keeps."""

    __tablename__ = "attempt_tally"
    incident_id: str = Field(primary_key=True, foreign_key="incident.id")
    channel: str = Field(primary_key=True)
    outcome: str = Field(primary_key=True)
    attempts: int


# The lease and next_at are scheduling, not a claim: only where a person's notification stands is covered.
coverage.declare(
    "delivery",
    key="person_id",
    pseudonymous=True,
    columns=(
        "person_id",
        "channels",
        "has_letter",
        "position",
        "tries",
        "state",
        "final_channel",
        "settled_at",
        "unknown_resends",
        "render_id",
        "cancel_reason",
        "letter_batch",
    ),
)
coverage.declare(
    "letter_batch", key="id", columns=("id", "letters", "written_at", "written_by", "posted_at", "posted_by")
)
coverage.declare(
    "attempt",
    key="id",
    columns=(
        "id",
        "person_id",
        "notice_id",
        "channel",
        "address",
        "started",
        "finished",
        "outcome",
        "reason",
        "provider",
        "worker",
    ),
)

DELIVERY: sa.Table = SQLModel.metadata.tables["delivery"]
ATTEMPT: sa.Table = SQLModel.metadata.tables["attempt"]
LETTER_BATCH: sa.Table = SQLModel.metadata.tables["letter_batch"]
STREAM = {"stream_results": True, "yield_per": 5000}


def _scalar(session: Session, sql: str, **params: Any) -> int:
    return int(session.connection().execute(text(sql), params).scalar_one())


def delivery_count(session: Session, incident_id: str) -> int:
    """Deliveries planned for an incident (0 until its first dispatch)."""
    return _scalar(session, "SELECT COUNT(*) FROM delivery WHERE incident_id = :i", i=incident_id)


def pending_count(session: Session, incident_id: str) -> int:
    """Deliveries still to be sent on some channel."""
    return _scalar(
        session,
        "SELECT COUNT(*) FROM delivery WHERE incident_id = :i AND state = :pending",
        i=incident_id,
        pending=DeliveryState.PENDING,
    )


def counts_by_state(session: Session, incident_id: str) -> dict[str, int]:
    """Deliveries per state."""
    return {
        r[0]: int(r[1])
        for r in session.connection().execute(
            text("SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"), {"i": incident_id}
        )
    }


def last_told(session: Session, incident_id: str) -> datetime | None:
    """When the last person told was told: the latest delivery sent or letter posted."""
    d = DELIVERY
    told = sa.select(sa.func.max(d.c.settled_at)).where(
        d.c.incident_id == incident_id, d.c.state.in_([DeliveryState.SENT, DeliveryState.POSTED])
    )
    found = session.connection().execute(told).scalar()
    return read_time(found) if found is not None else None


def failed_everywhere(session: Session, incident_id: str) -> int:
    """People dispatch tried on at least one channel, every one of which failed, and who have no postal address."""
    return _scalar(
        session,
        "SELECT COUNT(*) FROM delivery WHERE incident_id = :i AND state = :unreachable AND channels <> ''",
        i=incident_id,
        unreachable=DeliveryState.UNREACHABLE,
    )


def attempts_by_channel(session: Session, incident_id: str) -> dict[str, dict[str, int]]:
    """Attempts per channel and outcome, with those a purge deleted (kept as its tally)."""
    per_channel: dict[str, dict[str, int]] = {}
    for channel, outcome, count in session.connection().execute(
        text(
            "SELECT channel, outcome, COUNT(*) FROM attempt WHERE incident_id = :i GROUP BY channel, outcome "
            "UNION ALL SELECT channel, outcome, attempts FROM attempt_tally WHERE incident_id = :i"
        ),
        {"i": incident_id},
    ):
        outcomes = per_channel.setdefault(channel, {})
        outcomes[outcome] = outcomes.get(outcome, 0) + int(count)  # a purge's tally adds to the rows left
    return per_channel


def pending_by_channel(session: Session, incident_id: str) -> dict[str, int]:
    """Pending deliveries per the channel each is due on now."""
    pending: dict[str, int] = {}
    for chans, position, count in session.connection().execute(
        text(
            "SELECT channels, position, COUNT(*) FROM delivery WHERE incident_id = :i AND state = :pending "
            "GROUP BY channels, position"
        ),
        {"i": incident_id, "pending": DeliveryState.PENDING},
    ):
        channel = chans.split(",")[position]
        pending[channel] = pending.get(channel, 0) + int(count)
    return pending


def unknown_resends(session: Session, incident_id: str) -> int:
    """Messages sent once more after an attempt of unknown outcome (each may be a duplicate)."""
    return _scalar(
        session, "SELECT COALESCE(SUM(unknown_resends), 0) FROM delivery WHERE incident_id = :i", i=incident_id
    )


def due_on(session: Session, incident_id: str, channel: str) -> Any:
    """A condition on the delivery table: due on `channel` now (its channel list at its position is `channel`).

    Built from the incident's few distinct channel lists, so `dispatch --channel sms` filters in SQL instead of
    looking for SMS among the first rows only."""
    d = DELIVERY
    chains = (
        session.connection().execute(sa.select(d.c.channels).where(d.c.incident_id == incident_id).distinct()).scalars()
    )
    pairs = [(c, i) for c in chains for i, name in enumerate(c.split(",")) if name == channel]
    return sa.or_(sa.false(), *(sa.and_(d.c.channels == c, d.c.position == i) for c, i in pairs))


def pending_schedule(session: Session, incident_id: str, limit: int = 200, *, only: str | None = None) -> list[Any]:
    """The soonest pending deliveries (on channel `only`, when given) as raw rows (next_at, lease_until)."""
    d = DELIVERY
    stmt = sa.select(d.c.next_at, d.c.lease_until).where(
        d.c.incident_id == incident_id, d.c.state == DeliveryState.PENDING
    )
    if only:
        stmt = stmt.where(due_on(session, incident_id, only))
    return list(session.connection().execute(stmt.order_by(d.c.next_at).limit(limit)))


# ---- joins of deliveries and attempts with their notices -------------------------------------------------------
# A delivery or attempt is read together with the notice it carries in one statement (the measured paths); these
# joins live with the downstream table. Reads of notices alone are notices.models' named queries.


def pending_notice_variants(session: Session, incident_id: str) -> Iterator[Any]:
    """(channels, position, variant) for each notice of each pending delivery."""
    return iter(
        session.connection().execute(
            text(
                "SELECT d.channels, d.position, n.variant FROM delivery d JOIN notice n ON n.incident_id = "
                "d.incident_id AND n.person_id = d.person_id AND n.render_id = d.render_id "
                "WHERE d.incident_id = :i AND d.state = :pending"
            ),
            {"i": incident_id, "pending": DeliveryState.PENDING},
        )
    )


def attempts_with_notice_sha(session: Session, incident_id: str) -> Iterator[Any]:
    """Every attempt (masked addresses only) with the hash of the notice it sent, the manifest of the render that
    notice belongs to and who approved that manifest, streamed in id order."""
    return iter(
        session.connection().execute(
            text(
                "SELECT t.id, t.person_id, t.channel, t.address, t.started, t.finished, t.outcome, t.reason, "
                "t.provider, n.sha256, t.worker, r.manifest_hash, "
                "(SELECT ap.reviewer FROM approval ap WHERE ap.incident_id = t.incident_id AND ap.artefact = "
                "'notices' AND ap.render_id = r.id AND ap.manifest_hash = r.manifest_hash AND ap.decision = "
                "'approved' ORDER BY ap.id DESC LIMIT 1) "
                "FROM attempt t LEFT JOIN notice n ON n.id = t.notice_id LEFT JOIN render r ON r.id = n.render_id "
                "WHERE t.incident_id = :i ORDER BY t.id"
            ),
            {"i": incident_id},
            execution_options=STREAM,
        )
    )


def delivery_states_by_region(session: Session, incident_id: str) -> list[tuple[str | None, str, str | None, int]]:
    """(region, state, final channel, people) of the incident's deliveries: how each region was notified."""
    rows = session.connection().execute(
        text(
            "SELECT a.region, d.state, d.final_channel, COUNT(*) FROM affected a JOIN delivery d "
            "ON d.incident_id = a.incident_id AND d.person_id = a.person_id WHERE a.incident_id = :i "
            "GROUP BY a.region, d.state, d.final_channel"
        ),
        {"i": incident_id},
    )
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


# ---- a purge: the incident's people leave the delivery records, the counts stay ---------------------------------


def forget_delivery_people(session: Session, incident_id: str, person_map: str) -> int:
    """Rewrite each delivery under its person's new meaningless id from the purge's `person_map` table (old_id,
    n; see assess.models.forget_people), in n's order, so neither the id nor the row order points back to a
    person; return how many deliveries there are."""
    conn = session.connection()
    p = {"i": incident_id}
    # A delivery whose person left the snapshot still gets a number, dealt after the snapshot's.
    conn.execute(
        text(
            f"INSERT INTO {person_map} (old_id, n) SELECT d.person_id, (SELECT COALESCE(MAX(n), 0) FROM {person_map})"
            f" + ROW_NUMBER() OVER (ORDER BY random()) FROM delivery d WHERE d.incident_id = :i AND NOT EXISTS "
            f"(SELECT 1 FROM {person_map} m WHERE m.old_id = d.person_id)"
        ),
        p,
    )
    conn.execute(text("DROP TABLE IF EXISTS purge_delivery"))
    conn.execute(text("CREATE TEMPORARY TABLE purge_delivery AS SELECT * FROM delivery WHERE 1 = 0"))
    conn.execute(text("INSERT INTO purge_delivery SELECT * FROM delivery WHERE incident_id = :i"), p)
    conn.execute(text("DELETE FROM delivery WHERE incident_id = :i"), p)
    names = [c.name for c in DELIVERY.columns]
    values = [
        "'purged-' || m.n" if c == "person_id" else "NULL" if c in ("lease_owner", "lease_until") else f"d.{c}"
        for c in names
    ]
    inserted = conn.execute(
        text(
            f"INSERT INTO delivery ({', '.join(names)}) SELECT {', '.join(values)} FROM purge_delivery d "
            f"JOIN {person_map} m ON m.old_id = d.person_id ORDER BY m.n"
        )
    )
    conn.execute(text("DROP TABLE purge_delivery"))
    return int(inserted.rowcount or 0)


def tally_and_delete_attempts(session: Session, incident_id: str) -> list[int]:
    """Keep the incident's attempts as counts per channel and outcome, delete the rows; return their ids."""
    conn = session.connection()
    ids = [int(i) for i in conn.execute(sa.select(ATTEMPT.c.id).where(ATTEMPT.c.incident_id == incident_id)).scalars()]
    for (channel, outcome), n in attempts_counted(session, incident_id).items():
        found = session.get(AttemptTally, (incident_id, channel, outcome))
        tally = found or AttemptTally(incident_id=incident_id, channel=channel, outcome=outcome, attempts=0)
        tally.attempts += n
        session.add(tally)
    session.flush()
    conn.execute(sa.delete(ATTEMPT).where(ATTEMPT.c.incident_id == incident_id))
    return ids


def attempts_counted(session: Session, incident_id: str) -> dict[tuple[str, str], int]:
    """Attempt rows per (channel, outcome), the tally aside."""
    t = ATTEMPT
    stmt = sa.select(t.c.channel, t.c.outcome, sa.func.count()).where(t.c.incident_id == incident_id)
    return {(r[0], r[1]): int(r[2]) for r in session.connection().execute(stmt.group_by(t.c.channel, t.c.outcome))}
