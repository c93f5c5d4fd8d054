"""Which render each delivery sends: bound when planned, moved to a newer approved render while nothing of it is
on its way, cancelled when its person is no longer affected.

Issue 12: a stale approval blocks only new plans; re-render and re-approve apply to what is not yet sent, and what
was sent stays proven against the approval that covered it (its render's notices are never deleted)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlmodel import Session

from incident import approvals, clock
from incident.audit import coverage
from incident.config import Workspace
from incident.db import db_time
from incident.dispatch.models import ATTEMPT, DELIVERY, POSTAL, STREAM, AttemptOutcome, DeliveryState, delivery_count
from incident.incidents.models import Incident, Status
from incident.notices.approval import NOTICES, approval_state, current_render

NO_LONGER_AFFECTED = "no longer affected after re-assessment: nothing more is sent"


def renders_in_use(session: Session, incident_id: str) -> set[int]:
    """The renders whose notices must stay: a delivery is bound to it, or an attempt sent one of its notices."""
    rows = session.connection().execute(
        text(
            "SELECT DISTINCT render_id FROM delivery WHERE incident_id = :i AND render_id IS NOT NULL UNION "
            "SELECT DISTINCT n.render_id FROM attempt t JOIN notice n ON n.id = t.notice_id WHERE t.incident_id = :i"
        ),
        {"i": incident_id},
    )
    return {int(r[0]) for r in rows}


def unplanned_channels(session: Session, incident_id: str, render_id: int) -> Iterator[Any]:
    """(person_id, channel or None) of the render's notices for affected people who have no delivery yet (found
    by a re-assessment while sending), streamed in person order."""
    return iter(
        session.connection().execute(
            text(
                "SELECT a.person_id, n.channel FROM affected a LEFT JOIN notice n ON n.incident_id = a.incident_id "
                "AND n.person_id = a.person_id AND n.render_id = :r WHERE a.incident_id = :i AND NOT EXISTS "
                "(SELECT 1 FROM delivery d WHERE d.incident_id = a.incident_id AND d.person_id = a.person_id) "
                "ORDER BY a.person_id, n.id"
            ),
            {"i": incident_id, "r": render_id},
            execution_options=STREAM,
        )
    )


def unplanned_variants(session: Session, incident_id: str, render_id: int) -> Iterator[Any]:
    """(person_id, channel, variant) of the render's notices for affected people with no delivery yet."""
    return iter(
        session.connection().execute(
            text(
                "SELECT n.person_id, n.channel, n.variant FROM notice n WHERE n.incident_id = :i AND n.render_id = :r "
                "AND NOT EXISTS (SELECT 1 FROM delivery d WHERE d.incident_id = n.incident_id AND d.person_id = "
                "n.person_id) ORDER BY n.person_id"
            ),
            {"i": incident_id, "r": render_id},
            execution_options=STREAM,
        )
    )


def unplanned_count(session: Session, incident_id: str) -> int:
    """Affected people with no delivery yet."""
    sql = text(
        "SELECT COUNT(*) FROM affected a WHERE a.incident_id = :i AND NOT EXISTS (SELECT 1 FROM delivery d "
        "WHERE d.incident_id = a.incident_id AND d.person_id = a.person_id)"
    )
    return int(session.connection().execute(sql, {"i": incident_id}).scalar_one())


# A delivery may change render only while nothing of it is on its way: pending, no live lease, no attempt in flight
# and none of unknown outcome (its re-send repeats what may have arrived, not a different text).
_MOVABLE = (
    "d.incident_id = :i AND d.state = :pending AND (d.lease_until IS NULL OR d.lease_until < :now) AND NOT EXISTS "
    "(SELECT 1 FROM attempt t WHERE t.incident_id = d.incident_id AND t.person_id = d.person_id "
    "AND t.outcome IN (:in_flight, :unknown))"
)


def _movable_params(session: Session, incident_id: str, now: datetime) -> dict[str, Any]:
    return {
        "i": incident_id,
        "pending": DeliveryState.PENDING,
        "now": db_time(session, now),
        "in_flight": AttemptOutcome.IN_FLIGHT,
        "unknown": AttemptOutcome.UNKNOWN,
    }


def movable_count(session: Session, incident_id: str, render_id: int, now: datetime) -> int:
    """Deliveries not bound to this render that would move to it if it were approved now."""
    params = _movable_params(session, incident_id, now) | {"r": render_id}
    sql = text(f"SELECT COUNT(*) FROM delivery d WHERE {_MOVABLE} AND (d.render_id IS NULL OR d.render_id <> :r)")
    return int(session.connection().execute(sql, params).scalar_one())


def movable_deliveries(session: Session, incident_id: str, render_id: int, now: datetime) -> list[Any]:
    """(person_id, channels, position, has_letter) of the deliveries that may move to the render, locked."""
    params = _movable_params(session, incident_id, now) | {"r": render_id}
    sql = (
        f"SELECT d.person_id, d.channels, d.position, d.has_letter FROM delivery d WHERE {_MOVABLE} "
        "AND (d.render_id IS NULL OR d.render_id <> :r) ORDER BY d.person_id"
    )
    if session.get_bind().dialect.name == "postgresql":  # a worker claiming one of them skips it, or we wait
        sql += " FOR UPDATE OF d"
    return list(session.connection().execute(text(sql), params))


def bind_to_render(session: Session, incident_id: str, person_ids: list[str], render_id: int) -> int:
    """Bind these deliveries to the render (they send its notices from now on)."""
    d = DELIVERY
    n = 0
    for start in range(0, len(person_ids), 500):
        n += (
            session.connection()
            .execute(
                sa.update(d)
                .where(d.c.incident_id == incident_id, d.c.person_id.in_(person_ids[start : start + 500]))
                .values(render_id=render_id)
            )
            .rowcount
        )
    coverage.cover(session, incident_id, "delivery", person_ids)
    return int(n)


def cancel_unaffected(session: Session, incident_id: str, *, reason: str, now: datetime) -> int:
    """Cancel, with the reason, every delivery not yet sent (and not on its way) whose person is no longer in the
    affected snapshot: what was sent stays as it was."""
    people = _unaffected_people(session, incident_id, now)
    d = DELIVERY
    for start in range(0, len(people), 500):
        session.connection().execute(
            sa.update(d)
            .where(d.c.incident_id == incident_id, d.c.person_id.in_(people[start : start + 500]))
            .values(
                state=DeliveryState.CANCELLED,
                cancel_reason=reason,
                settled_at=now,
                lease_owner=None,
                lease_until=None,
            )
        )
    coverage.cover(session, incident_id, "delivery", people)
    return len(people)


def _unaffected_people(session: Session, incident_id: str, now: datetime, limit: int | None = None) -> list[str]:
    """People no longer affected whose delivery is not yet sent nor on its way."""
    sql = (
        f"SELECT d.person_id FROM delivery d WHERE (({_MOVABLE}) OR (d.incident_id = :i AND d.state IN "
        "(:held, :letter))) AND NOT EXISTS (SELECT 1 FROM affected a WHERE a.incident_id = d.incident_id "
        "AND a.person_id = d.person_id)" + (f" LIMIT {int(limit)}" if limit else "")
    )
    params = _movable_params(session, incident_id, now) | {"held": DeliveryState.HELD, "letter": DeliveryState.LETTER}
    return [r[0] for r in session.connection().execute(text(sql), params)]


def approved_newest_render(session: Session, incident_id: str) -> int | None:
    """The newest finished render of the notices when its latest decision approves it (not whether it is stale)."""
    render = current_render(session, incident_id)
    if render is None:
        return None
    decision = approvals.latest_decision(session, NOTICES, render)
    return render.id if decision is not None and decision.decision == approvals.Decision.APPROVED else None


def may_need_update(session: Session, incident_id: str, now: datetime) -> bool:
    """Cheaply, whether the deliveries may lag behind the approval: people to cancel, deliveries to move to an
    approved render, or people to plan (the full approval check runs only then)."""
    if _unaffected_people(session, incident_id, now, limit=1):
        return True
    render_id = approved_newest_render(session, incident_id)
    if render_id is None:
        return False
    return (
        movable_count(session, incident_id, render_id, now) > 0
        or unplanned_count(session, incident_id) > 0
        or bool(_never_tried(session, incident_id, render_id, limit=1))
    )


def rebind(session: Session, incident_id: str, render_id: int, now: datetime) -> int:
    """Move every delivery not yet on its way to the newly approved render, where that render has a notice on each
    channel the delivery has left (else it keeps sending the notices it was bound to); return how many moved."""
    candidates = movable_deliveries(session, incident_id, render_id, now)
    moved: list[str] = []
    for start in range(0, len(candidates), 500):
        chunk = candidates[start : start + 500]
        have = _channels_of(session, incident_id, render_id, [c[0] for c in chunk])
        for person_id, chans, position, has_letter in chunk:
            left = chans.split(",")[position:] + ([POSTAL] if has_letter else [])
            if all(c in have.get(person_id, ()) for c in left):
                moved.append(person_id)
    return bind_to_render(session, incident_id, moved, render_id)


def replan_unreached(
    session: Session, incident_id: str, render_id: int, *, allowed: Sequence[str], now: datetime
) -> int:
    """Give the deliveries planned with no notice at all (their person was held back by their own data, never
    tried) the channels the newly approved render has for them; return how many now have something to send."""
    d = DELIVERY
    people = _never_tried(session, incident_id, render_id)
    found, still = 0, list[str]()
    for start in range(0, len(people), 500):
        chunk = people[start : start + 500]
        have = _channels_of(session, incident_id, render_id, chunk)
        for person_id in chunk:
            chans = have.get(person_id, set())
            electronic = [c for c in allowed if c in chans]
            letter = POSTAL in chans
            if not electronic and not letter:
                still.append(person_id)  # still nothing to send: looked at under this render, not again
                continue
            session.connection().execute(
                sa.update(d)
                .where(d.c.incident_id == incident_id, d.c.person_id == person_id)
                .values(
                    channels=",".join(electronic),
                    has_letter=letter,
                    position=0,
                    tries=0,
                    state=DeliveryState.PENDING if electronic else DeliveryState.LETTER,
                    next_at=now,
                    settled_at=None,
                    render_id=render_id,
                )
            )
            coverage.cover(session, incident_id, "delivery", [person_id])
            found += 1
    bind_to_render(session, incident_id, still, render_id)
    return found


def _never_tried(session: Session, incident_id: str, render_id: int, limit: int | None = None) -> list[str]:
    """People planned with no channel at all under another render and never tried."""
    d, t = DELIVERY, ATTEMPT
    tried = sa.select(t.c.id).where(t.c.incident_id == d.c.incident_id, t.c.person_id == d.c.person_id).exists()
    stmt = sa.select(d.c.person_id).where(
        d.c.incident_id == incident_id,
        d.c.state == DeliveryState.UNREACHABLE,
        d.c.channels == "",
        sa.or_(d.c.render_id.is_(None), d.c.render_id != render_id),
        ~tried,
    )
    return [r[0] for r in session.connection().execute(stmt.limit(limit))]


def _channels_of(session: Session, incident_id: str, render_id: int, person_ids: list[str]) -> dict[str, set[str]]:
    rows = session.connection().execute(
        text(
            "SELECT person_id, channel FROM notice WHERE incident_id = :i AND render_id = :r AND person_id IN :p"
        ).bindparams(sa.bindparam("p", expanding=True)),
        {"i": incident_id, "r": render_id, "p": person_ids},
    )
    out: dict[str, set[str]] = {}
    for person_id, channel in rows:
        out.setdefault(person_id, set()).add(channel)
    return out


def sending_note(session: Session, ws: Workspace, incident: Incident) -> str | None:
    """Where an incident that is sending stands with its notices, in one line, when a re-render, a stale approval
    or a fresh approval not yet applied changes what happens next; None when nothing does."""
    if incident.status not in (Status.NOTIFYING, Status.NOTIFIED) or not delivery_count(session, incident.id):
        return None
    review = approval_state(session, ws, incident)
    now = clock.now()
    render_id = review.get("render")
    moving = movable_count(session, incident.id, int(render_id), now) if render_id else 0
    new = unplanned_count(session, incident.id)
    people = f"; {new:,} people found since are not planned yet" if new else ""
    if review["state"] == "awaiting review":
        return f"{incident.status} — re-render awaiting approval: {moving:,} deliveries will use it{people}"
    if review["state"] in ("stale", "rejected"):
        why = "the approval is stale" if review["state"] == "stale" else "the re-render was rejected"
        return (
            f"{incident.status} — {why}: new plans are blocked, the deliveries planned keep their approved notices"
            f"{people}"
        )
    if moving or new:
        return (
            f"{incident.status} — newly approved render: {moving:,} deliveries move to it and {new:,} people are "
            "planned at the next dispatch"
        )
    return None
