"""Dispatch use cases: send an incident's notices, serve as a worker, preview, release held, letters, proof."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlmodel import Session

from incident import clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import unit_of_work
from incident.dispatch import binding, models, planning, proof, recovery
from incident.dispatch import letters as postal_letters
from incident.dispatch.letters import PostedBatch, WrittenBatch
from incident.dispatch.models import DeliveryState
from incident.dispatch.sending import DispatchReport, Sender, make_sender, pump
from incident.errors import IncidentError, InvalidArgument
from incident.files import check_output, open_private
from incident.incidents import models as incidents
from incident.incidents.holds import refuse_if_purged
from incident.incidents.models import Status
from incident.notices.approval import approval_state, require_current_approval
from incident.notices.models import Render

ELECTRONIC = ("email", "sms", "push")


def dispatch(
    ws: Workspace,
    incident_id: str,
    actor: str,
    *,
    workers: int,
    channel: str | None,
    hold_unknown: bool,
    progress: Callable[[int, int], None] | None = None,
    enqueue_only: bool = False,
) -> DispatchReport:
    """Send the approved notices (resumes where the last run stopped)."""
    if channel is not None and channel not in ELECTRONIC:
        raise InvalidArgument("--channel: use email, sms or push (letters: `incident letters`)")
    return run_dispatch(
        ws,
        incident_id,
        actor,
        workers=workers,
        only=channel,
        hold_unknown=hold_unknown,
        progress=progress,
        enqueue_only=enqueue_only,
    )


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
    _start(ws, incident_id, actor, hold_unknown=hold_unknown, report=report)
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


def work(
    ws: Workspace, actor: str, *, incident_id: str | None, workers: int, hold_unknown: bool, follow: bool
) -> dict[str, DispatchReport]:
    """Serve notifying incidents as one of many dispatch workers."""
    return run_worker(ws, actor, incident_id=incident_id, workers=workers, hold_unknown=hold_unknown, follow=follow)


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
        worked = False
        for iid in [incident_id] if incident_id else notifying_incidents(ws):
            if iid not in checked:
                _require_notifying(ws, iid)
                checked.add(iid)
            report = reports.setdefault(iid, DispatchReport())
            _refresh(ws, iid, actor, report)
            progressed = _serve(sender, iid, actor, workers=workers, hold_unknown=hold_unknown, report=report)
            worked = worked or progressed
            if progressed or not follow:
                _finish(ws, iid, actor, report)
        if not follow:
            break
        if not worked:
            time.sleep(poll)
    return reports


def _serve(
    sender: Sender, incident_id: str, actor: str, *, workers: int, hold_unknown: bool, report: DispatchReport
) -> bool:
    """Send what is due of one incident; True when something was settled and the run did not halt."""
    before = sum(report.tally.values())
    report.halted = None
    pump(sender, incident_id, actor, workers=workers, only=None, hold_unknown=hold_unknown, report=report)
    return sum(report.tally.values()) > before and not report.halted


def notifying_incidents(ws: Workspace) -> list[str]:
    """Incidents whose notices are being sent (what `incident worker` serves)."""
    with unit_of_work(ws, write=False) as session:
        return [i.id for i in incidents.list_incidents(session) if i.status == Status.NOTIFYING]


def _require_notifying(ws: Workspace, incident_id: str) -> None:
    with unit_of_work(ws, write=False) as session:
        incident = incidents.get(session, incident_id)
        if Status(incident.status) != Status.NOTIFYING:
            raise IncidentError(
                f"{incident_id} is '{incident.status}': start it with `incident dispatch {incident_id}`"
            )
        _approval_for_sending(session, ws, incident)


SENDING = (Status.NOTIFYING, Status.NOTIFIED)


def _approval_for_sending(session: Session, ws: Workspace, incident: incidents.Incident) -> tuple[Render | None, str]:
    """The approved render new plans may use, or why new plans are blocked; refuse when nothing may go out.

    Once sending has started, an approval that is stale (a logged action, an edited template or incident.toml, a
    deleted manifest), or a re-render that awaits its review, blocks new plans only: the deliveries already planned
    keep sending the render they are bound to (each claim checks its notice's hash, and those notices are kept) and
    fall back on their channels."""
    if Status(incident.status) in SENDING and models.delivery_count(session, incident.id) > 0:
        state = approval_state(session, ws, incident)
        if state["state"] == "stale":
            return None, "the approval is stale: " + ("; ".join(state["changes"]) or "changed")
        if state["state"] != "approved":
            manifest = str(state.get("manifest") or "")[:12]
            return None, f"the re-render (manifest {manifest}) is {state['state']}"
    return require_current_approval(session, ws, incident), ""


def _start(ws: Workspace, incident_id: str, actor: str, *, hold_unknown: bool, report: DispatchReport) -> None:
    """Check the approval, bring the deliveries up to it, take over dead attempts, and mark the incident
    notifying."""
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        # The approval first: a re-assessment also steps the status back, and the refusal must name the change.
        approved, report.stale = _approval_for_sending(session, ws, incident)
        if Status(incident.status) not in (Status.APPROVED, *SENDING):
            raise IncidentError(f"{incident_id} is '{incident.status}': dispatch needs approved notices")
        _bring_up_to_date(session, ws, incident, approved, report, actor)
        report.recovered_unknown = recovery.recover(session, incident_id, hold_unknown=hold_unknown, actor=actor)
        if Status(incident.status) != Status.NOTIFYING:
            incidents.transition(session, incident, Status.NOTIFYING, actor)


def _bring_up_to_date(
    session: Session,
    ws: Workspace,
    incident: incidents.Incident,
    approved: Render | None,
    report: DispatchReport,
    actor: str,
) -> None:
    """Cancel what is left for people no longer affected; with a current approval, move what is not yet on its
    way to the approved render and plan the people who have no delivery yet (each step audited)."""
    now = clock.now()
    cancelled = binding.cancel_unaffected(session, incident.id, reason=binding.NO_LONGER_AFFECTED, now=now)
    if cancelled:
        event = audit.Event(audit.Action.DISPATCH_CANCELLED, {"deliveries": cancelled, "reason": "no longer affected"})
        audit.record(session, incident.id, event, actor)
    if approved is None:  # blocked: nothing new is planned, the planned ones keep their render
        return
    assert approved.id is not None
    allowed = planning.allowed_channels(ws, incident)
    moved = binding.rebind(session, incident.id, approved.id, now)
    moved += binding.replan_unreached(session, incident.id, approved.id, allowed=allowed, now=now)
    if moved:
        event = audit.Event(
            audit.Action.DISPATCH_REBOUND,
            {"deliveries": moved, "render": approved.id, "manifest": approved.manifest_hash},
        )
        audit.record(session, incident.id, event, actor)
    report.rebound = moved
    report.planned = planning.plan(session, incident, allowed, approved.id)
    if report.planned:
        planned = audit.Event(audit.Action.DISPATCH_PLANNED, {"deliveries": report.planned, "render": approved.id})
        audit.record(session, incident.id, planned, actor)


def _refresh(ws: Workspace, incident_id: str, actor: str, report: DispatchReport) -> None:
    """A worker's look, between rounds, for a new approval to apply or new people to plan (cheap when none)."""
    with unit_of_work(ws, write=False) as session:  # the look takes no write lock from the other workers
        if not binding.may_need_update(session, incident_id, clock.now()):
            return
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        if Status(incident.status) not in SENDING:
            return
        approved, report.stale = _approval_for_sending(session, ws, incident)
        _bring_up_to_date(session, ws, incident, approved, report, actor)


def _finish(ws: Workspace, incident_id: str, actor: str, report: DispatchReport) -> None:
    """Count the deliveries; when none is open any more, the incident is notified (and its obligation settled)."""
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        states = models.counts_by_state(session, incident_id)
        report.states, report.held = states, states.get(DeliveryState.HELD, 0)
        report.notified = _notified_if_told(session, incident, states, actor)
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.DISPATCH_RUN,
                {"tally": dict(report.tally), "states": states, "recovered_unknown": report.recovered_unknown},
            ),
            actor,
        )


# A letter queued or only written has told nobody: the incident is notified once each one is posted.
OPEN = (DeliveryState.PENDING, DeliveryState.HELD, DeliveryState.LETTER, DeliveryState.WRITTEN)


def _notified_if_told(
    session: Session, incident: incidents.Incident, states: dict[str, int], actor: str, at: datetime | None = None
) -> bool:
    """Mark a notifying incident notified (and settle its obligation) once no delivery is open any more."""
    # People a re-assessment found while sending are not notified until a render for them is approved.
    if (
        any(states.get(s, 0) for s in OPEN)
        or Status(incident.status) != Status.NOTIFYING
        or binding.unplanned_count(session, incident.id)
    ):
        return False
    incidents.transition(session, incident, Status.NOTIFIED, actor)
    assess.settle(session, incident.id, "individuals-notified", actor, at)
    return True


def dispatch_preview(ws: Workspace, incident_id: str, channel: str | None) -> tuple[dict[str, dict[str, int]], str]:
    """What dispatch would send now, per channel and variant, and why new plans are blocked if they are (nothing
    is written)."""
    with unit_of_work(ws, write=False) as session:
        incident = incidents.get(session, incident_id)
        approved, blocked = _approval_for_sending(session, ws, incident)
        render_id = approved.id if approved is not None else None
        return planning.dry_run(session, ws, incident, only=channel, render_id=render_id), blocked


def release_held(ws: Workspace, incident_id: str, actor: str) -> int:
    """Queue held (unknown) deliveries for one more attempt."""
    with unit_of_work(ws) as session:
        incidents.get(session, incident_id, for_update=True)
        return recovery.release_held(session, incident_id, actor)


def letters(ws: Workspace, incident_id: str, actor: str) -> WrittenBatch:
    """Write the letter batch."""
    with unit_of_work(ws) as session:
        incidents.get(session, incident_id, for_update=True)
        return postal_letters.write_letters(session, ws, incident_id, actor=actor)


def letters_posted(
    ws: Workspace, incident_id: str, *, posted_at: datetime, batch: int | None, actor: str
) -> tuple[PostedBatch, bool]:
    """Record the mail house's confirmation of a batch; return it and whether the incident is now notified."""
    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        posted = postal_letters.post_letters(session, incident_id, posted_at=posted_at, batch_id=batch, actor=actor)
        states = models.counts_by_state(session, incident_id)
        # Told when the last of them was told: the latest electronic delivery or this posting, whichever is later.
        last = models.last_told(session, incident_id)
        return posted, _notified_if_told(session, incident, states, actor, at=last)


def letters_returned(ws: Workspace, incident_id: str, path: Path, actor: str) -> tuple[int, int]:
    """Record returned mail from the mail house's CSV of letter references; return (returned now, already)."""
    with unit_of_work(ws) as session:
        incidents.get(session, incident_id, for_update=True)
        return postal_letters.return_letters(session, incident_id, path, actor=actor)


def export_deliveries(ws: Workspace, incident_id: str, *, fmt: str, output: Path | None, stdout: IO[str]) -> int:
    """Export every attempt as proof of delivery, to a private file (0600) or to stdout."""
    if fmt not in ("csv", "jsonl"):
        raise InvalidArgument("--format: use csv or jsonl")
    if output is not None:
        check_output(output)

        from incident.incidents.flows import remember_export

        remember_export(ws, incident_id, output, "deliveries")
    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        refuse_if_purged(session, incident_id)
        if output is None:
            return proof.export_attempts(session, incident_id, fmt=fmt, out=stdout)
        with open_private(output) as fh:
            return proof.export_attempts(session, incident_id, fmt=fmt, out=fh)
