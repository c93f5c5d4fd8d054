"""Claim, send, settle: lease due deliveries with an in-flight attempt each, send one, record its outcome."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session

from incident import clock
from incident.audit import coverage
from incident.dispatch import models, transports
from incident.dispatch.channels import ChannelConfig, next_attempt_at
from incident.dispatch.models import AttemptOutcome, DeliveryState
from incident.notices import models as notice_models
from incident.notices.models import notice_sha, unpack_content

if TYPE_CHECKING:
    from incident.dispatch.ratelimit import RateLimiter

DEFAULT_LEASE = timedelta(seconds=120)
log = logging.getLogger("incident.dispatch")


@dataclass
class Work:
    """One claimed delivery on its way: the in-flight attempt, the message, and where it stands in its chain."""

    attempt_id: int
    person_id: str
    channel: str
    message: transports.Message
    expected_sha: str
    channels: list[str]
    position: int
    tries: int
    has_letter: bool
    claimed_at: datetime | None = None


@dataclass
class _Due:
    person_id: str
    channels: list[str]
    position: int
    tries: int
    has_letter: bool
    channel: str
    render_id: int


def claim(
    session: Session,
    incident_id: str,
    owner: str,
    *,
    limit: int,
    only: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    outbox: Path | None = None,
) -> list[Work]:
    """Lease up to `limit` due deliveries and write an in-flight attempt for each, before anything is sent.

    `outbox` is the folder outbox:// writes the messages into (the workspace's outbox/INCIDENT)."""
    now = clock.now()
    due = _due(session, incident_id, now, limit, only)
    if not due:
        return []
    # Each delivery sends the notice of the render it is bound to (see binding): not simply the newest one.
    renders = {d.render_id for d in due}
    notices = notice_models.notices_to_claim(session, incident_id, [d.person_id for d in due], renders)
    attempts, picked = [], []
    for d in due:
        notice = notices.get((d.person_id, d.channel, d.render_id))
        if notice is None:
            continue
        address = notice.address(d.channel)
        attempts.append(
            {
                "incident_id": incident_id,
                "person_id": d.person_id,
                "notice_id": notice.id,
                "channel": d.channel,
                "address": transports.mask_address(d.channel, address),
                "started": now,
                "outcome": AttemptOutcome.IN_FLIGHT,
                "worker": owner,
            }
        )
        picked.append((d, notice, address))
    conn = session.connection()
    t, dt = models.ATTEMPT, models.DELIVERY
    ids = conn.execute(sa.insert(t).returning(t.c.id, sort_by_parameter_order=True), attempts).scalars().all()
    coverage.cover(session, incident_id, "attempt", ids)  # an in-flight attempt forces a re-send: forging one fails
    conn.execute(
        sa.update(dt)
        .where(dt.c.incident_id == incident_id, dt.c.person_id.in_([d.person_id for d, _, _ in picked]))
        .values(lease_owner=owner, lease_until=now + lease)
    )
    work = []
    for attempt_id, (d, notice, address) in zip(ids, picked, strict=True):
        body, html = unpack_content(notice.body, notice.html)
        message = transports.Message(
            notice_id=f"{incident_id}.{notice.ref}.{d.channel}",
            channel=d.channel,
            address=address,
            subject=notice.subject,
            text=body,
            html=html,
            outbox=outbox,
        )
        work.append(
            Work(
                attempt_id,
                d.person_id,
                d.channel,
                message,
                notice.sha256,
                d.channels,
                d.position,
                d.tries,
                d.has_letter,
                now,
            )
        )
    return work


def _due(session: Session, incident_id: str, now: datetime, limit: int, only: str | None) -> list[_Due]:
    """Pending deliveries whose time has come and whose lease (if any) ran out, locked against other workers."""
    d = models.DELIVERY
    stmt = sa.select(d.c.person_id, d.c.channels, d.c.position, d.c.tries, d.c.has_letter, d.c.render_id).where(
        d.c.incident_id == incident_id,
        d.c.state == DeliveryState.PENDING,
        d.c.next_at <= now,
        sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
    )
    if only:
        stmt = stmt.where(models.due_on(session, incident_id, only))
    stmt = stmt.order_by(d.c.next_at, d.c.person_id).limit(limit).with_for_update(skip_locked=True)
    due = []
    for person_id, chans, position, tries, has_letter, render_id in session.connection().execute(stmt):
        channels = chans.split(",")
        due.append(_Due(person_id, channels, position, tries, has_letter, channels[position], render_id))
    return due


def send_work(item: Work, cfg: ChannelConfig, limiter: RateLimiter | None = None) -> transports.Outcome:
    """Verify the notice is exactly the approved content, prepare the call, wait for the rate slot, send."""
    actual = notice_sha(item.message.subject, item.message.text, item.message.html)
    if actual != item.expected_sha:
        return transports.Outcome(transports.PERMANENT, "notice content differs from the approved hash: not sent")
    prepared = transports.prepare(cfg.url, item.message)
    if limiter is not None and prepared.refused is None:
        limiter.wait()  # right before the network: nothing slow may sit between the slot and the send
    return transports.deliver(prepared)


def next_state(item: Work, outcome: transports.Outcome, cfg: ChannelConfig, *, now: datetime) -> dict[str, Any]:
    """The delivery after one outcome: sent; retry later on this channel; or fall back (letter, unreachable)."""
    stay = {"state": DeliveryState.PENDING, "final_channel": None, "settled_at": None, "position": item.position}
    if outcome.details.get(transports.HALT):
        # Our own fault (the outbox could not be written): no try is spent and the channel is kept.
        return {**stay, "tries": item.tries, "next_at": now}
    tries = item.tries + 1
    if outcome.status == transports.SENT:
        sent = {"state": DeliveryState.SENT, "final_channel": item.channel, "settled_at": now}
        return {**stay, **sent, "tries": tries, "next_at": now}
    # A provider's wait past the channel's backoff_max is not waited for: the next channel is tried instead.
    too_long = outcome.retry_after is not None and outcome.retry_after > cfg.backoff_max
    if outcome.status in (transports.TRANSIENT, transports.UNKNOWN) and tries < cfg.retries and not too_long:
        return {**stay, "tries": tries, "next_at": next_attempt_at(now, cfg, tries, retry_after=outcome.retry_after)}
    if item.position + 1 < len(item.channels):
        return {**stay, "position": item.position + 1, "tries": 0, "next_at": now}
    last = DeliveryState.LETTER if item.has_letter else DeliveryState.UNREACHABLE
    return {**stay, "state": last, "settled_at": now, "tries": tries, "next_at": now}


def _next_state_isolated(
    item: Work, outcome: transports.Outcome, configs: dict[str, ChannelConfig], *, now: datetime
) -> dict[str, Any]:
    """next_state, with a bad result confined to itself: a provider's odd wait falls back on the channel's backoff,
    a channel missing from incident.toml moves on, and the others settled with it stay settled."""
    cfg = configs.get(item.channel) or ChannelConfig(item.channel, "", 0, 1, 1, 0.0, 0.0)
    try:
        return next_state(item, outcome, cfg, now=now)
    except (ArithmeticError, ValueError, TypeError):
        log.warning("attempt %s: unusable outcome details, settled with the channel's backoff", item.attempt_id)
        plain = transports.Outcome(outcome.status, outcome.reason, outcome.provider_id)
        return next_state(item, plain, cfg, now=now)


def settle(
    session: Session,
    incident_id: str,
    results: list[tuple[Work, transports.Outcome]],
    *,
    configs: dict[str, ChannelConfig],
    actor: str = "dispatch",
) -> dict[str, int]:
    """Record each outcome and move each delivery along its fallback chain (two bulk statements)."""
    now = clock.now()
    tally: dict[str, int] = defaultdict(int)
    attempts, deliveries = [], []
    for item, outcome in results:
        tally[f"{item.channel}:{outcome.status}"] += 1
        # `started` becomes the moment the call began (it was the claim time while the attempt was queued).
        attempts.append(
            {
                "aid": item.attempt_id,
                "started": outcome.details.get("started") or item.claimed_at or now,
                "finished": now,
                "outcome": outcome.status,
                "reason": outcome.reason or None,
                "provider": outcome.provider_id or None,
            }
        )
        deliveries.append({"pid": item.person_id, **_next_state_isolated(item, outcome, configs, now=now)})
    if log.isEnabledFor(logging.DEBUG):
        _log_outcomes(results)
    conn = session.connection()
    t, d = models.ATTEMPT, models.DELIVERY
    conn.execute(
        sa.update(t)
        .where(t.c.id == sa.bindparam("aid"))
        .values(
            started=sa.bindparam("started"),
            finished=sa.bindparam("finished"),
            outcome=sa.bindparam("outcome"),
            reason=sa.bindparam("reason"),
            provider=sa.bindparam("provider"),
        ),
        attempts,
    )
    conn.execute(
        sa.update(d)
        .where(d.c.incident_id == incident_id, d.c.person_id == sa.bindparam("pid"))
        .values(
            state=sa.bindparam("state"),
            final_channel=sa.bindparam("final_channel"),
            settled_at=sa.bindparam("settled_at"),
            position=sa.bindparam("position"),
            tries=sa.bindparam("tries"),
            next_at=sa.bindparam("next_at"),
            lease_owner=None,
            lease_until=None,
        ),
        deliveries,
    )
    coverage.cover(session, incident_id, "attempt", [item.attempt_id for item, _ in results], actor=actor)
    coverage.cover(session, incident_id, "delivery", [item.person_id for item, _ in results], actor=actor)
    return dict(tally)


def _log_outcomes(results: list[tuple[Work, transports.Outcome]]) -> None:
    for item, outcome in results:
        log.debug(
            "attempt %s person %s %s to %s: %s %s",
            item.attempt_id,
            item.person_id,
            item.channel,
            transports.mask_address(item.channel, item.message.address),
            outcome.status,
            outcome.reason[:120],
        )
