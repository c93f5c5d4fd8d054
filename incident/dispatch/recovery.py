"""Leases and dead owners: attempts a stopped process left in flight become unknown, re-sent once or held."""

from __future__ import annotations

import logging
import os
import socket
import time
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from incident import clock
from incident.audit import chain as audit
from incident.audit import coverage
from incident.dispatch import models
from incident.dispatch.models import Attempt, AttemptOutcome, Delivery, DeliveryState

log = logging.getLogger("incident.dispatch")


def owner_id() -> str:
    """Who holds a lease: host, pid and a start token (so a reused pid is not mistaken for us)."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000) % 100000}"


def owner_alive(owner: str) -> bool | None:
    """True/False for an owner on this host; None when it runs elsewhere (trust the lease expiry)."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(rest.split(":")[0]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def abandoned(attempt: Attempt, delivery: Delivery, now: datetime) -> bool:
    """Whether an in-flight attempt has lost its owner: a dead process here, or an expired lease anywhere."""
    alive = owner_alive(attempt.worker)
    expired = delivery.lease_until is None or delivery.lease_until < now
    # A live owner here, or one on another host whose lease still runs, is still working on it.
    return alive is False or expired


def recover(session: Session, incident_id: str, *, hold_unknown: bool, actor: str) -> int:
    """Attempts left in flight by a dead process become 'unknown': re-sent once, or held for a human."""
    now = clock.now()
    stmt = (
        select(Attempt, Delivery)
        .join(
            Delivery,
            sa.and_(
                col(Delivery.incident_id) == col(Attempt.incident_id),
                col(Delivery.person_id) == col(Attempt.person_id),
            ),
        )
        .where(Attempt.incident_id == incident_id, Attempt.outcome == AttemptOutcome.IN_FLIGHT)
    )
    unknown_ids: list[int] = []
    for attempt, delivery in session.exec(stmt.with_for_update(skip_locked=True)):
        if not abandoned(attempt, delivery, now):
            continue
        attempt.outcome, attempt.finished = AttemptOutcome.UNKNOWN, now
        attempt.reason = "in flight when its process stopped: it may or may not have been delivered"
        delivery.lease_owner, delivery.lease_until = None, None
        if hold_unknown:
            delivery.state = DeliveryState.HELD
        else:
            delivery.state, delivery.next_at = DeliveryState.PENDING, now
            delivery.unknown_resends += 1
        session.add(attempt)
        session.add(delivery)
        assert attempt.id is not None  # a stored row
        unknown_ids.append(attempt.id)
    session.flush()
    if unknown_ids:
        log.info("%s: %d attempts left in flight by a stopped process are unknown", incident_id, len(unknown_ids))
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.DISPATCH_RECOVERED,
                {"unknown": len(unknown_ids), "action": "held" if hold_unknown else "re-send once"},
            ),
            actor,
        )
    return len(unknown_ids)


def release_held(session: Session, incident_id: str, actor: str) -> int:
    """Send held deliveries again (a human decided a duplicate is acceptable)."""
    d = models.DELIVERY
    released = (
        session.connection()
        .execute(
            sa.update(d)
            .where(d.c.incident_id == incident_id, d.c.state == DeliveryState.HELD)
            .values(state=DeliveryState.PENDING, unknown_resends=d.c.unknown_resends + 1)
            .returning(d.c.person_id)
        )
        .scalars()
        .all()
    )
    coverage.cover(session, incident_id, "delivery", released)
    n = len(released)
    if n:
        audit.record(session, incident_id, audit.Event(audit.Action.DISPATCH_HELD_RELEASED, {"deliveries": n}), actor)
    return int(n)
