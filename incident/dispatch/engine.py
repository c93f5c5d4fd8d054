"""Claim, send, settle: the dispatch loop that never loses a recipient and says when it may double-send."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import text
from sqlmodel import Session, select

from incident import clock
from incident.assess import models as assess
from incident.assess.models import Affected
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import unit_of_work
from incident.dispatch import proof, transports
from incident.dispatch.channels import ChannelConfig, channel_configs, next_attempt_at
from incident.dispatch.models import Attempt, Delivery
from incident.errors import IncidentError
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.notices.approval import require_current_approval
from incident.notices.models import notice_sha, unpack_content

LEASE = timedelta(seconds=120)
# A claim holds about CLAIM_SECONDS of work at the measured rate (at most CLAIM_MAX deliveries); a settle
# gathers what finishes within SETTLE_SECONDS. Fewer, larger transactions; nothing queued for long.
CLAIM_SECONDS, CLAIM_MAX, SETTLE_SECONDS = 0.5, 400, 0.1
log = logging.getLogger("incident.dispatch")
SETTLED = ("sent", "letter", "posted", "unreachable")
CONTACT = {"email": "to_email", "sms": "to_phone", "push": "to_push"}


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


# ---- planning -----------------------------------------------------------------------------------


def plan(session: Session, incident: incidents.Incident, allowed: list[str]) -> int:
    """Create one delivery per affected person (once): electronic channels in fallback order, then letter."""
    conn = session.connection()
    if conn.execute(text("SELECT COUNT(*) FROM delivery WHERE incident_id = :i"), {"i": incident.id}).scalar_one():
        return 0
    now = clock.now()
    rows = conn.execute(
        text(
            "SELECT a.person_id, n.channel FROM affected a LEFT JOIN notice n ON n.incident_id = a.incident_id "
            "AND n.person_id = a.person_id WHERE a.incident_id = :i ORDER BY a.person_id, n.id"
        ),
        {"i": incident.id},
        execution_options={"stream_results": True, "yield_per": 5000},
    )
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    insert = (
        f"INSERT INTO delivery (incident_id, person_id, channels, has_letter, position, tries, state, next_at, "
        f"unknown_resends) VALUES ({', '.join([mark] * 9)})"
    )
    stamp = now if session.get_bind().dialect.name != "sqlite" else now.replace(tzinfo=None)
    batch: list[tuple[Any, ...]] = []
    count = 0

    def flush() -> None:
        if batch:
            conn.exec_driver_sql(insert, batch)
            batch.clear()

    def emit(person: str, chans: list[str]) -> None:
        nonlocal count
        electronic = [c for c in allowed if c in chans]
        letter = "letter" in chans
        state = "pending" if electronic else ("letter" if letter else "unreachable")
        batch.append((incident.id, person, ",".join(electronic), letter, 0, 0, state, stamp, 0))
        count += 1
        if len(batch) >= 5000:
            flush()

    current, chans = None, []
    for person_id, channel in rows:
        if person_id != current:
            if current is not None:
                emit(current, chans)
            current, chans = person_id, []
        if channel:
            chans.append(channel)
    if current is not None:
        emit(current, chans)
    flush()
    return count


# ---- recovery -----------------------------------------------------------------------------------


def recover(session: Session, incident_id: str, hold_unknown: bool, actor: str) -> int:
    """Attempts left in flight by a dead process become 'unknown': re-sent once, or held for a human."""
    now = clock.now()
    stmt = (
        select(Attempt, Delivery)
        .join(Delivery, (Delivery.incident_id == Attempt.incident_id) & (Delivery.person_id == Attempt.person_id))
        .where(Attempt.incident_id == incident_id, Attempt.outcome == "in-flight")
    )
    recovered = 0
    unknown_ids: list[int] = []
    for attempt, delivery in session.exec(stmt.with_for_update(skip_locked=True)):
        alive = owner_alive(attempt.worker)
        expired = delivery.lease_until is None or delivery.lease_until < now
        if alive is True and not expired:
            continue  # its owner is still working on it
        if alive is None and not expired:
            continue  # another host holds the lease
        attempt.outcome, attempt.finished = "unknown", now
        attempt.reason = "in flight when its process stopped: it may or may not have been delivered"
        delivery.lease_owner, delivery.lease_until = None, None
        if hold_unknown:
            delivery.state = "held"
        else:
            delivery.state, delivery.next_at = "pending", now
            delivery.unknown_resends += 1
        session.add(attempt)
        session.add(delivery)
        unknown_ids.append(attempt.id)  # type: ignore[arg-type]
        recovered += 1
    session.flush()
    proof.record_attempts(session, incident_id, unknown_ids, actor)
    if recovered:
        log.info("%s: %d attempts left in flight by a stopped process are unknown", incident_id, recovered)
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.DISPATCH_RECOVERED,
                {"unknown": recovered, "action": "held" if hold_unknown else "re-send once"},
            ),
            actor,
        )
    return recovered


def release_held(session: Session, incident_id: str, actor: str) -> int:
    """Send held deliveries again (a human decided a duplicate is acceptable)."""
    n = (
        session.connection()
        .execute(
            text(
                "UPDATE delivery SET state = 'pending', unknown_resends = unknown_resends + 1 WHERE incident_id = :i "
                "AND state = 'held'"
            ),
            {"i": incident_id},
        )
        .rowcount
    )
    if n:
        audit.record(session, incident_id, audit.Event(audit.Action.DISPATCH_HELD_RELEASED, {"deliveries": n}), actor)
    return int(n)


# ---- claim, send, settle ------------------------------------------------------------------------


@dataclass
class Work:
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


def claim(session: Session, incident_id: str, owner: str, limit: int, only: str | None) -> list[Work]:
    """Lease up to `limit` due deliveries and write an in-flight attempt for each, before anything is sent."""
    now = clock.now()
    d = Delivery.__table__
    stmt = (
        sa.select(d.c.person_id, d.c.channels, d.c.position, d.c.tries, d.c.has_letter)
        .where(
            d.c.incident_id == incident_id,
            d.c.state == "pending",
            d.c.next_at <= now,
            sa.or_(d.c.lease_until.is_(None), d.c.lease_until < now),
        )
        .order_by(d.c.next_at, d.c.person_id)
        .limit(limit * 4 if only else limit)
        .with_for_update(skip_locked=True)
    )
    conn = session.connection()
    due = []
    for person_id, chans, position, tries, has_letter in conn.execute(stmt):
        channel = chans.split(",")[position]
        if only and channel != only:
            continue
        due.append((person_id, chans.split(","), position, tries, has_letter, channel))
        if len(due) >= limit:
            break
    if not due:
        return []
    n, a = (
        sa.table(
            "notice",
            *(
                sa.column(c)
                for c in ("id", "incident_id", "person_id", "channel", "ref", "subject", "body", "html", "sha256")
            ),
        ),
        Affected.__table__,
    )
    rows = conn.execute(
        sa.select(
            n.c.person_id,
            n.c.channel,
            n.c.id,
            n.c.ref,
            n.c.subject,
            n.c.body,
            n.c.html,
            n.c.sha256,
            a.c.to_email,
            a.c.to_phone,
            a.c.to_push,
        )
        .join(a, sa.and_(a.c.incident_id == n.c.incident_id, a.c.person_id == n.c.person_id))
        .where(n.c.incident_id == incident_id, n.c.person_id.in_([x[0] for x in due]))
    )
    notices = {(r[0], r[1]): r for r in rows}
    attempts, picked = [], []
    for person_id, chans, position, tries, has_letter, channel in due:
        r = notices.get((person_id, channel))
        if r is None:
            continue
        address = {"email": r[8], "sms": r[9], "push": r[10]}[channel]
        attempts.append(
            {
                "incident_id": incident_id,
                "person_id": person_id,
                "notice_id": r[2],
                "channel": channel,
                "address": transports.mask_address(channel, address),
                "started": now,
                "outcome": "in-flight",
                "worker": owner,
            }
        )
        picked.append((person_id, chans, position, tries, has_letter, channel, r, address))
    t = Attempt.__table__
    ids = conn.execute(sa.insert(t).returning(t.c.id, sort_by_parameter_order=True), attempts).scalars().all()
    conn.execute(
        sa.update(d)
        .where(d.c.incident_id == incident_id, d.c.person_id.in_([x[0] for x in picked]))
        .values(lease_owner=owner, lease_until=now + LEASE)
    )
    work = []
    for attempt_id, (person_id, chans, position, tries, has_letter, channel, r, address) in zip(
        ids, picked, strict=True
    ):
        body, html = unpack_content(r[5], r[6])
        message = transports.Message(
            notice_id=f"{incident_id}.{r[3]}.{channel}",
            channel=channel,
            address=address,
            subject=r[4],
            text=body,
            html=html,
        )
        work.append(Work(attempt_id, person_id, channel, message, r[7], chans, position, tries, has_letter, now))
    return work


def send_work(item: Work, cfg: ChannelConfig, limiter: RateLimiter | None = None) -> transports.Outcome:
    """Verify the notice is exactly the approved content, prepare the call, wait for the rate slot, send."""
    actual = notice_sha(item.message.subject, item.message.text, item.message.html)
    if actual != item.expected_sha:
        return transports.Outcome(transports.PERMANENT, "notice content differs from the approved hash: not sent")
    prepared = transports.prepare(cfg.url, item.message)
    if limiter is not None and prepared.refused is None:
        limiter.wait()  # right before the network: nothing slow may sit between the slot and the send
    return transports.deliver(prepared)


def next_state(item: Work, outcome: transports.Outcome, cfg: ChannelConfig, now: datetime) -> dict[str, Any]:
    """The delivery after one outcome: sent; retry later on this channel; or fall back (letter, unreachable)."""
    if outcome.details.get(transports.HALT):
        # Our own fault (the outbox could not be written): no try is spent and the channel is kept.
        return {
            "state": "pending",
            "final_channel": None,
            "settled_at": None,
            "position": item.position,
            "tries": item.tries,
            "next_at": now,
        }
    if outcome.status == transports.SENT:
        return {
            "state": "sent",
            "final_channel": item.channel,
            "settled_at": now,
            "position": item.position,
            "tries": item.tries + 1,
            "next_at": now,
        }
    tries = item.tries + 1
    retry = outcome.status in (transports.TRANSIENT, transports.UNKNOWN) and tries < cfg.retries
    if retry:
        return {
            "state": "pending",
            "final_channel": None,
            "settled_at": None,
            "position": item.position,
            "tries": tries,
            "next_at": next_attempt_at(now, cfg, tries, outcome.retry_after),
        }
    if item.position + 1 < len(item.channels):
        return {
            "state": "pending",
            "final_channel": None,
            "settled_at": None,
            "position": item.position + 1,
            "tries": 0,
            "next_at": now,
        }
    return {
        "state": "letter" if item.has_letter else "unreachable",
        "final_channel": None,
        "settled_at": now,
        "position": item.position,
        "tries": tries,
        "next_at": now,
    }


def settle(
    session: Session,
    incident_id: str,
    results: list[tuple[Work, transports.Outcome]],
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
        deliveries.append({"pid": item.person_id, **next_state(item, outcome, configs[item.channel], now)})
    if log.isEnabledFor(logging.DEBUG):
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
    conn = session.connection()
    t, d = Attempt.__table__, Delivery.__table__
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
    proof.record_attempts(session, incident_id, [item.attempt_id for item, _ in results], actor)
    return dict(tally)


# ---- the use case -------------------------------------------------------------------------------


class RateLimiter:
    """Messages per second for one channel, shared by every thread, process and host through the database.

    Each reservation takes the channel's next free send time and pushes it on (GCRA): over any window W
    at most rate×W + 1 messages go out, however many workers share the budget.
    """

    def __init__(self, ws: Workspace, channel: str, rate: float) -> None:
        self.ws, self.channel, self.rate = ws, channel, rate
        self.lock = threading.Lock()
        self.slots: list[float] = []

    def _reserve(self, count: int) -> list[float]:
        from incident.db import engine_for

        engine = engine_for(self.ws)
        greatest = "max" if engine.dialect.name == "sqlite" else "GREATEST"
        now = time.time()
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO rate_budget (channel, next_free) VALUES (:c, :now) ON CONFLICT (channel) DO NOTHING"),
                {"c": self.channel, "now": now},
            )
            end = conn.execute(
                text(
                    f"UPDATE rate_budget SET next_free = {greatest}(next_free, :now) + :span WHERE channel = :c "
                    "RETURNING next_free"
                ),
                {"c": self.channel, "now": now, "span": count / self.rate},
            ).scalar_one()
        start = float(end) - count / self.rate
        return [start + i / self.rate for i in range(count)]

    def wait(self) -> None:
        if self.rate <= 0:
            return
        late = 0.5 / self.rate  # a slot missed by more than this is dropped, never spent in a burst later
        while True:
            with self.lock:
                now = time.time()
                while self.slots and self.slots[0] < now - late:
                    self.slots.pop(0)
                if not self.slots:
                    # Reserve a tenth of a second's worth at a time: few database round trips, little waste.
                    self.slots = self._reserve(max(1, int(self.rate / 10)))
                slot = self.slots.pop(0)
            delay = slot - time.time()
            if delay > 0:
                time.sleep(delay)
            # Under CPU contention sleep() can overshoot: sending long after the slot would pile onto later
            # slots, so a slot missed by more than `late` is given up and another one taken.
            if time.time() - slot <= late:
                return


@dataclass
class DispatchReport:
    planned: int = 0
    recovered_unknown: int = 0
    held: int = 0
    tally: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    states: dict[str, int] = field(default_factory=dict)
    notified: bool = False
    halted: str | None = None  # why the run stopped early (a fault on our side); the rest is still pending


def counts_by_state(session: Session, incident_id: str) -> dict[str, int]:
    """Deliveries per state."""
    return {
        r[0]: int(r[1])
        for r in session.connection().execute(
            text("SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"), {"i": incident_id}
        )
    }


def _start(ws: Workspace, incident_id: str, actor: str, hold_unknown: bool, report: DispatchReport) -> None:
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        # The approval first: a re-assessment also steps the status back, and the refusal must name the change.
        require_current_approval(session, ws, incident)
        if Status(incident.status) not in (Status.APPROVED, Status.NOTIFYING, Status.NOTIFIED):
            raise IncidentError(f"{incident_id} is '{incident.status}': dispatch needs approved notices")
        from incident import catalog

        book = catalog.playbook(incident.playbook, ws.root)
        allowed = [c for c in book.channels if c not in book.exclude_channels]
        report.planned = plan(session, incident, allowed)
        report.recovered_unknown = recover(session, incident_id, hold_unknown, actor)
        if Status(incident.status) != Status.NOTIFYING:
            incidents.transition(session, incident, Status.NOTIFYING, actor)
        if report.planned:
            audit.record(
                session, incident_id, audit.Event(audit.Action.DISPATCH_PLANNED, {"deliveries": report.planned}), actor
            )


def _finish(ws: Workspace, incident_id: str, actor: str, report: DispatchReport) -> None:
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        states = counts_by_state(session, incident_id)
        report.states, report.held = states, states.get("held", 0)
        open_work = states.get("pending", 0) + states.get("held", 0)
        if open_work == 0 and Status(incident.status) == Status.NOTIFYING:
            incidents.transition(session, incident, Status.NOTIFIED, actor)
            assess.settle(session, incident_id, "individuals-notified", actor)
            report.notified = True
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.DISPATCH_RUN,
                {"tally": dict(report.tally), "states": states, "recovered_unknown": report.recovered_unknown},
            ),
            actor,
        )


@dataclass
class Sender:
    """One process's sending machinery: channel settings, shared rate budgets, per-channel concurrency."""

    ws: Workspace
    configs: dict[str, ChannelConfig]
    limiters: dict[str, RateLimiter]
    slots: dict[str, threading.Semaphore]
    owner: str

    def task(self, item: Work) -> transports.Outcome:
        cfg = self.configs.get(item.channel)
        if cfg is None or not cfg.url:
            return transports.Outcome(transports.PERMANENT, f"no [channels.{item.channel}] in incident.toml")
        with self.slots[item.channel]:
            try:
                return send_work(item, cfg, self.limiters[item.channel])
            except Exception as exc:  # a transport bug must not lose the recipient: it is retried
                return transports.Outcome(transports.TRANSIENT, f"internal error: {type(exc).__name__}")


def make_sender(ws: Workspace) -> Sender:
    """Build the sender for this process from incident.toml."""
    global LEASE
    configs = channel_configs(ws)
    LEASE = timedelta(seconds=float(ws.config.get("dispatch", {}).get("lease_seconds", LEASE.total_seconds())))
    return Sender(
        ws,
        configs,
        {n: RateLimiter(ws, n, c.rate) for n, c in configs.items()},
        {n: threading.Semaphore(max(1, c.concurrency)) for n, c in configs.items()},
        owner_id(),
    )


def _finished(
    done: queue.SimpleQueue[Future[transports.Outcome]], inflight: int, workers: int
) -> list[Future[transports.Outcome]]:
    """Sends that finished: the first within half a second, then what else finishes within SETTLE_SECONDS, so one
    settle covers many messages; sooner when the threads are about to run out of claimed work."""
    try:
        finished = [done.get(timeout=0.5)]
    except queue.Empty:
        return []
    deadline = time.monotonic() + SETTLE_SECONDS
    while len(finished) < min(inflight, CLAIM_MAX) and inflight - len(finished) >= workers:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            finished.append(done.get(timeout=left))
        except queue.Empty:
            break
    while True:  # and whatever else has finished meanwhile
        try:
            finished.append(done.get_nowait())
        except queue.Empty:
            return finished


def pump(
    sender: Sender,
    incident_id: str,
    actor: str,
    *,
    workers: int,
    only: str | None,
    hold_unknown: bool,
    report: DispatchReport,
    progress: Callable[[int, int], None] | None = None,
    stop_after: int | None = None,
    follow: bool = False,
) -> None:
    """Claim, send and settle until nothing of this incident is pending (taking over dead workers' attempts)."""
    ws = sender.ws
    transports.OUTBOX_ROOT["root"] = ws.path("outbox", incident_id)
    with unit_of_work(ws, write=False) as session:
        total = (
            session.connection()
            .execute(
                text("SELECT COUNT(*) FROM delivery WHERE incident_id = :i AND state = 'pending'"), {"i": incident_id}
            )
            .scalar_one()
        )
    done = 0
    inflight: dict[Future[transports.Outcome], Work] = {}
    finished_queue: queue.SimpleQueue[Future[transports.Outcome]] = queue.SimpleQueue()
    # Claim about CLAIM_SECONDS of work at the rate measured so far (at least 4 per thread): few round trips
    # when sends are fast, and never more queued than the lease comfortably covers when they are slow.
    batch, began = workers * 4, time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dispatch") as pool:
        while True:
            # Claim in batches when the queue runs low; each claimed item is in flight until settled.
            room = batch - len(inflight) if len(inflight) <= max(workers, batch // 2) else 0
            if stop_after is not None:
                room = min(room, stop_after - done - len(inflight))
            if report.halted:
                room = 0  # finish what is in flight, claim nothing more
            if room > 0:
                with unit_of_work(ws) as session:
                    claimed = claim(session, incident_id, sender.owner, room, only)
                for item in claimed:
                    future = pool.submit(sender.task, item)
                    inflight[future] = item
                    future.add_done_callback(finished_queue.put)
            if not inflight:
                if report.halted or (stop_after is not None and done >= stop_after):
                    break
                with unit_of_work(ws) as session:
                    report.recovered_unknown += recover(session, incident_id, hold_unknown, actor)
                wait_for = _next_due(ws, incident_id, only)
                if wait_for is None and not follow:
                    break
                time.sleep(min(max(wait_for if wait_for is not None else 1.0, 0.0), 1.0))
                continue
            results = [(inflight.pop(f), f.result()) for f in _finished(finished_queue, len(inflight), workers)]
            if results:
                with unit_of_work(ws) as session:
                    for key, n in settle(session, incident_id, results, sender.configs, actor).items():
                        report.tally[key] += n
                halt = next((o.reason for _, o in results if o.details.get(transports.HALT)), None)
                if halt and not report.halted:
                    report.halted = halt
                    log.info("%s: dispatch stopping: %s", incident_id, halt)
                done += len(results)
                rate = done / max(time.monotonic() - began, 1e-3)
                batch = max(workers * 4, min(CLAIM_MAX, int(rate * CLAIM_SECONDS)))
                if progress is not None:
                    progress(done, total)


def run_dispatch(
    ws: Workspace,
    incident_id: str,
    actor: str,
    *,
    workers: int = 8,
    only: str | None = None,
    hold_unknown: bool = False,
    progress: Callable[[int, int], None] | None = None,
    stop_after: int | None = None,
    enqueue_only: bool = False,
) -> DispatchReport:
    """Send every approved notice that is not yet settled; safe to re-run and to run twice at once."""
    report = DispatchReport()
    sender = make_sender(ws)
    _start(ws, incident_id, actor, hold_unknown, report)
    if not enqueue_only:
        pump(
            sender,
            incident_id,
            actor,
            workers=workers,
            only=only,
            hold_unknown=hold_unknown,
            report=report,
            progress=progress,
            stop_after=stop_after,
        )
    _finish(ws, incident_id, actor, report)
    return report


def notifying_incidents(ws: Workspace) -> list[str]:
    """Incidents whose notices are being sent (what `incident worker` serves)."""
    with unit_of_work(ws, write=False) as session:
        return [i.id for i in incidents.list_incidents(session) if i.status == Status.NOTIFYING]


def run_worker(
    ws: Workspace,
    actor: str,
    *,
    incident_id: str | None = None,
    workers: int = 8,
    hold_unknown: bool = False,
    follow: bool = False,
    poll: float = 2.0,
    stop: threading.Event | None = None,
) -> dict[str, DispatchReport]:
    """Serve every notifying incident (or one) until nothing is left; with follow, keep polling."""
    sender = make_sender(ws)
    reports: dict[str, DispatchReport] = {}
    checked: set[str] = set()
    while stop is None or not stop.is_set():
        ids = [incident_id] if incident_id else notifying_incidents(ws)
        worked = False
        for iid in ids:
            if iid not in checked:
                with unit_of_work(ws, write=False) as session:
                    incident = incidents.get(session, iid)
                    if Status(incident.status) != Status.NOTIFYING:
                        raise IncidentError(f"{iid} is '{incident.status}': start it with `incident dispatch {iid}`")
                    require_current_approval(session, ws, incident)
                checked.add(iid)
            report = reports.setdefault(iid, DispatchReport())
            before = sum(report.tally.values())
            report.halted = None
            pump(sender, iid, actor, workers=workers, only=None, hold_unknown=hold_unknown, report=report)
            progressed = sum(report.tally.values()) > before and not report.halted
            worked = worked or progressed
            if progressed or not follow:
                _finish(ws, iid, actor, report)
        if not follow:
            break
        if not worked:
            time.sleep(poll)
    return reports


def _next_due(ws: Workspace, incident_id: str, only: str | None) -> float | None:
    """Seconds until the next pending delivery is due (None when nothing is pending)."""
    with unit_of_work(ws, write=False) as session:
        rows = (
            session.connection()
            .execute(
                text(
                    "SELECT next_at, channels, position, lease_until FROM delivery WHERE incident_id = :i "
                    "AND state = 'pending' ORDER BY next_at LIMIT 200"
                ),
                {"i": incident_id},
            )
            .all()
        )
    now = clock.now()
    best: float | None = None
    for next_at, chans, position, lease_until in rows:
        if only and chans.split(",")[position] != only:
            continue
        due = clock.as_utc(next_at) if isinstance(next_at, datetime) else clock.parse_when(str(next_at))
        if lease_until is not None:
            lease = (
                clock.as_utc(lease_until) if isinstance(lease_until, datetime) else clock.parse_when(str(lease_until))
            )
            due = max(due, lease)
        wait_s = (due - now).total_seconds()
        best = wait_s if best is None else min(best, wait_s)
    return best


def dry_run(ws: Workspace, incident_id: str, only: str | None) -> dict[str, dict[str, int]]:
    """What dispatch would send now, per channel and variant, without writing anything."""
    with unit_of_work(ws, write=False) as session:
        incident = incidents.get(session, incident_id)
        require_current_approval(session, ws, incident)
        from incident import catalog

        book = catalog.playbook(incident.playbook, ws.root)
        allowed = [c for c in book.channels if c not in book.exclude_channels]
        planned = (
            session.connection()
            .execute(text("SELECT COUNT(*) FROM delivery WHERE incident_id = :i"), {"i": incident_id})
            .scalar_one()
        )
        out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        if planned:
            rows: Iterator[Any] = iter(
                session.connection().execute(
                    text(
                        "SELECT d.channels, d.position, n.variant FROM delivery d JOIN notice n ON n.incident_id = "
                        "d.incident_id AND n.person_id = d.person_id WHERE d.incident_id = :i AND d.state = 'pending'"
                    ),
                    {"i": incident_id},
                )
            )
            for chans, position, variant in rows:
                channel = chans.split(",")[position]
                if variant.split("|")[1] == channel and (only is None or only == channel):
                    out[channel][variant] += 1
        else:
            # Nothing planned yet: each person's first channel in fallback order, streamed in person order.
            current, best = None, (99, "", "")
            result = session.connection().execute(
                text("SELECT person_id, channel, variant FROM notice WHERE incident_id = :i ORDER BY person_id"),
                {"i": incident_id},
                execution_options={"stream_results": True, "yield_per": 5000},
            )
            for person, channel, variant in itertools.chain(result, [(None, "", "")]):
                if person != current:
                    if current is not None and best[1] and (only is None or only == best[1]):
                        out[best[1]][best[2]] += 1
                    current, best = person, (99, "", "")
                rank = allowed.index(channel) if channel in allowed else 99
                if rank < best[0]:
                    best = (rank, channel, variant)
        return {k: dict(v) for k, v in out.items()}
