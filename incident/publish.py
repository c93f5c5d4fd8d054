"""Use cases for what the public and regulators receive: each opens one unit of work and calls the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from incident import catalog, clock
from incident.assess import models as assess
from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError, InvalidArgument
from incident.incidents import models as incidents


def announce(ws: Workspace, incident_id: str, actor: str) -> Any:
    """Render the announcement for review (both locales, HTML and Markdown, with its manifest)."""
    from incident.reports import announcement

    with unit_of_work(ws) as session:
        return announcement.render(session, ws, incident_id, actor)


def publish_announcement(ws: Workspace, incident_id: str, actor: str) -> Any:
    """Publish the approved announcement to public/ID/ and to the configured targets."""
    from incident.reports import announcement

    with unit_of_work(ws) as session:
        return announcement.publish(session, ws, incident_id, actor)


def decide_announcement(
    ws: Workspace, incident_id: str, reviewer: str, decision: str, comment: str | None, actor: str
) -> None:
    """Approve or reject the current announcement render."""
    from incident.reports import announcement

    with unit_of_work(ws) as session:
        announcement.decide(session, ws, incident_id, reviewer, decision, comment, actor)


def announcement_state(ws: Workspace, incident_id: str) -> dict[str, Any]:
    """Where the announcement's review and publication stand."""
    from incident.reports import announcement

    with unit_of_work(ws, write=False) as session:
        return announcement.approval_state(session, ws, incidents.get(session, incident_id))


def generate_report(
    ws: Workspace,
    incident_id: str,
    regulator: str,
    stage: str,
    formats: list[str],
    fields: dict[str, str],
    delay_reason: str | None,
    actor: str,
) -> Any:
    """Generate and store a regulator report (one file per format)."""
    from incident.reports import regulators

    with unit_of_work(ws) as session:
        return regulators.generate(session, ws, incident_id, regulator, stage, formats, fields, delay_reason, actor)


def list_reports(ws: Workspace, incident_id: str) -> list[dict[str, Any]]:
    """What was generated and submitted, when."""
    from incident.reports import regulators

    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        return [r.as_json() for r in regulators.list_reports(session, incident_id)]


def submit_report(
    ws: Workspace,
    incident_id: str,
    regulator: str,
    stage: str,
    submitted_at: datetime,
    reference: str | None,
    actor: str,
) -> tuple[list[int], list[str]]:
    """Mark the newest report of a kind and stage submitted; return its file ids and the obligations settled."""
    from incident.reports import regulators

    with unit_of_work(ws) as session:
        rows, settled = regulators.submit(session, ws, incident_id, regulator, stage, submitted_at, reference, actor)
        return [r.id for r in rows if r.id is not None], settled


def status_board(ws: Workspace, actor: str, *, notify: bool = False) -> Any:
    """Every obligation of every open incident (and closed ones with work left); warn on-call if asked."""
    from incident.reports import board

    with unit_of_work(ws, write=notify) as session:
        result = board.board(session, ws)
        if notify:
            board.notify(session, ws, result, actor)
        return result


def settle_obligation(
    ws: Workspace, incident_id: str, key: str, actor: str, at: datetime | None, reference: str | None
) -> dict[str, Any]:
    """Settle one obligation by hand (a regulator told by phone, a form filed outside the tool)."""
    from incident.reports import aggregates

    with unit_of_work(ws) as session:
        incident = incidents.get(session, incident_id, for_update=True)
        view = aggregates.picture(session, ws, incident)
        known = {o.key: o for o in view.obligations}
        if key not in known:
            every = {ob.key for r in catalog.jurisdictions(ws.root).regimes for ob in r.obligations}
            why = "does not apply to this incident" if key in every else "is not an obligation in jurisdictions.yaml"
            raise InvalidArgument(f"{key!r} {why} (its obligations: {', '.join(sorted(known)) or 'none'})")
        ob = known[key]
        if ob.state == "done":
            raise IncidentError(f"{key} is already done" + (f" (since {ob.done_at.isoformat()})" if ob.done_at else ""))
        when = at or clock.now()
        if when > clock.now():
            raise InvalidArgument("--at: is in the future")
        assess.settle(session, incident_id, key, actor, when, reference)
        return {"key": key, "at": when.isoformat(), "reference": reference, "title": ob.title}
