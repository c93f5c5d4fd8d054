"""The send loop: claim in batches, send on a thread pool, settle what finished, until nothing is pending."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from incident import clock
from incident.config import Workspace
from incident.db import read_time, unit_of_work
from incident.dispatch import models, transports
from incident.dispatch.channels import ChannelConfig, channel_configs
from incident.dispatch.claims import DEFAULT_LEASE, Work, claim, send_work, settle
from incident.dispatch.ratelimit import RateLimiter
from incident.dispatch.recovery import owner_id, recover

# A claim holds about CLAIM_SECONDS of work at the measured rate, but never more than IN_FLIGHT_PER_WORKER per
# sending thread (nor CLAIM_MAX): what is in flight is what a kill -9 can duplicate, so that is the README's bound.
# A settle gathers what finishes within SETTLE_SECONDS. Fewer, larger transactions; nothing queued for long.
CLAIM_SECONDS, CLAIM_MAX, SETTLE_SECONDS, IN_FLIGHT_PER_WORKER = 0.5, 400, 0.1, 8
log = logging.getLogger("incident.dispatch")


@dataclass
class DispatchReport:
    """What one run did: planned, recovered, attempts per channel and outcome, deliveries per state."""

    planned: int = 0
    recovered_unknown: int = 0
    held: int = 0
    tally: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    states: dict[str, int] = field(default_factory=dict)
    notified: bool = False
    halted: str | None = None  # why the run stopped early (a fault on our side); the rest is still pending
    stale: str = ""  # why new plans are blocked while sending (stale approval, re-render under review)
    rebound: int = 0  # deliveries moved to a newly approved render


@dataclass
class Sender:
    """One process's sending machinery: channel settings, shared rate budgets, per-channel concurrency."""

    ws: Workspace
    configs: dict[str, ChannelConfig]
    limiters: dict[str, RateLimiter]
    slots: dict[str, threading.Semaphore]
    owner: str
    lease: timedelta = DEFAULT_LEASE

    def task(self, item: Work) -> transports.Outcome:
        """Send one claimed item within its channel's concurrency; never raises."""
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
    configs = channel_configs(ws)
    lease = ws.config.get("dispatch", {}).get("lease_seconds", DEFAULT_LEASE.total_seconds())
    return Sender(
        ws,
        configs,
        {n: RateLimiter(ws, n, c.rate) for n, c in configs.items()},
        {n: threading.Semaphore(max(1, c.concurrency)) for n, c in configs.items()},
        owner_id(),
        timedelta(seconds=float(lease)),
    )


class _Loop:
    """One pump's bookkeeping: what is in flight, how much is done, how much the next claim may take."""

    def __init__(
        self,
        sender: Sender,
        incident_id: str,
        actor: str,
        *,
        workers: int,
        only: str | None,
        report: DispatchReport,
        stop_after: int | None,
    ) -> None:
        self.sender, self.incident_id, self.actor = sender, incident_id, actor
        self.workers, self.only, self.report, self.stop_after = workers, only, report, stop_after
        self.inflight: dict[Future[transports.Outcome], Work] = {}
        self.finished: queue.SimpleQueue[Future[transports.Outcome]] = queue.SimpleQueue()
        self.done = 0
        # Claim about CLAIM_SECONDS of work at the rate measured so far (at least 4 per thread): few round trips
        # when sends are fast, and never more queued than the lease comfortably covers when they are slow.
        self.most = max(1, min(CLAIM_MAX, IN_FLIGHT_PER_WORKER * workers))  # in flight at any moment, at most
        self.batch, self.began = min(workers * 4, self.most), time.monotonic()

    def room(self) -> int:
        """How many to claim now: only when the queue runs low, never past stop_after, nothing once halted."""
        if self.report.halted:
            return 0  # finish what is in flight, claim nothing more
        room = self.batch - len(self.inflight) if len(self.inflight) <= max(self.workers, self.batch // 2) else 0
        if self.stop_after is not None:
            room = min(room, self.stop_after - self.done - len(self.inflight))
        return room

    def claim_more(self, pool: Executor) -> None:
        """Claim a batch and hand it to the threads; each claimed item is in flight until settled."""
        room = self.room()
        if room <= 0:
            return
        with unit_of_work(self.sender.ws) as session:
            claimed = claim(
                session,
                self.incident_id,
                self.sender.owner,
                limit=room,
                only=self.only,
                lease=self.sender.lease,
                outbox=self.sender.ws.path("outbox", self.incident_id),
            )
        for item in claimed:
            future = pool.submit(self.sender.task, item)
            self.inflight[future] = item
            future.add_done_callback(self.finished.put)

    def stopped(self) -> bool:
        """Nothing more to do in this run: halted, or stop_after reached."""
        return bool(self.report.halted) or (self.stop_after is not None and self.done >= self.stop_after)

    def settle_finished(self) -> bool:
        """Settle the sends that finished (in one transaction); False when none did in time."""
        futures = _finished(self.finished, len(self.inflight), self.workers)
        results = [(self.inflight.pop(f), f.result()) for f in futures]
        if not results:
            return False
        tally = self._settle(results)
        for key, n in tally.items():
            self.report.tally[key] += n
        halt = next((o.reason for _, o in results if o.details.get(transports.HALT)), None)
        if halt and not self.report.halted:
            self.report.halted = halt
            log.info("%s: dispatch stopping: %s", self.incident_id, halt)
        self.done += len(results)
        rate = self.done / max(time.monotonic() - self.began, 1e-3)
        self.batch = min(self.most, max(self.workers * 4, int(rate * CLAIM_SECONDS)))
        return True

    def _settle(self, results: list[tuple[Work, transports.Outcome]]) -> dict[str, int]:
        """Settle in one transaction; should that fail, each result in its own, so one bad result cannot send the
        others (already delivered) back to in flight. A result that cannot be settled at all stays in flight and
        is recovered as unknown, alone."""
        ws, configs = self.sender.ws, self.sender.configs
        try:
            with unit_of_work(ws) as session:
                return settle(session, self.incident_id, results, configs=configs, actor=self.actor)
        except Exception as exc:  # the error text may quote personal data: log its type only
            if len(results) == 1:
                log.error(
                    "%s: attempt %s not settled: %s", self.incident_id, results[0][0].attempt_id, type(exc).__name__
                )
                return {}
        tally: dict[str, int] = defaultdict(int)
        for result in results:
            for key, n in self._settle([result]).items():
                tally[key] += n
        return tally


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
    total = _pending(ws, incident_id)
    loop = _Loop(sender, incident_id, actor, workers=workers, only=only, report=report, stop_after=stop_after)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="dispatch") as pool:
        while True:
            loop.claim_more(pool)
            if loop.inflight:
                if loop.settle_finished() and progress is not None:
                    progress(loop.done, total)
                continue
            if loop.stopped():
                break
            with unit_of_work(ws) as session:
                report.recovered_unknown += recover(session, incident_id, hold_unknown=hold_unknown, actor=actor)
            if not _wait_until_due(ws, incident_id, only=only, follow=follow):
                break


def _pending(ws: Workspace, incident_id: str) -> int:
    with unit_of_work(ws, write=False) as session:
        return models.pending_count(session, incident_id)


def _wait_until_due(ws: Workspace, incident_id: str, *, only: str | None, follow: bool) -> bool:
    """Sleep until the next pending delivery is due (a second at most); False when there is nothing to wait for."""
    wait_for = _next_due(ws, incident_id, only)
    if wait_for is None and not follow:
        return False
    time.sleep(min(max(wait_for if wait_for is not None else 1.0, 0.0), 1.0))
    return True


def _next_due(ws: Workspace, incident_id: str, only: str | None) -> float | None:
    """Seconds until the next pending delivery is due (None when nothing is pending)."""
    with unit_of_work(ws, write=False) as session:
        rows = models.pending_schedule(session, incident_id, only=only)
    now = clock.now()
    best: float | None = None
    for next_at, lease_until in rows:
        due = read_time(next_at) if lease_until is None else max(read_time(next_at), read_time(lease_until))
        wait_s = (due - now).total_seconds()
        best = wait_s if best is None else min(best, wait_s)
    return best
