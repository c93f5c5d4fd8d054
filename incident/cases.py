"""Incident use cases: each opens one unit of work and calls the domain functions."""

from __future__ import annotations

from typing import Any

from incident import clock
from incident.assess import models as assess
from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError
from incident.incidents import models as incidents


def describe(ws: Workspace, incident_id: str) -> dict[str, Any]:
    """Everything `incident show` prints: facts, timeline, counts, obligations with time left."""
    with unit_of_work(ws, write=False) as session:
        inc = incidents.get(session, incident_id)
        data: dict[str, Any] = {
            "id": inc.id,
            "title": inc.title,
            "status": inc.status,
            "playbook": inc.playbook,
            "systems": inc.system_list,
            "categories": inc.category_list,
            "exposure": {"from": inc.exposure_from.isoformat(), "to": inc.exposure_to.isoformat()},
            "discovered": {"at": inc.discovered_at.isoformat(), "by": inc.discovered_by, "where": inc.discovered_where},
            "connected_systems": inc.connected_systems,
            "police_contacted": inc.police_contacted,
            "opened": {"at": inc.opened_at.isoformat(), "by": inc.opened_by},
            "handling_ended_at": inc.handling_ended_at.isoformat() if inc.handling_ended_at else None,
            "now": clock.now().isoformat(),
            "timeline": [
                {"at": e.at.isoformat(), "actor": e.actor, "kind": e.kind, "text": e.text}
                for e in incidents.timeline(session, incident_id)
            ],
            "assessment": None,
        }
        from incident.reports import aggregates, announcement, regulators

        if assess.latest(session, incident_id) is not None:
            data["assessment"] = aggregates.picture(session, ws, inc).as_json()
        from incident.notices.review import approval_state

        data["notices"] = approval_state(session, ws, inc)
        from incident.dispatch.proof import channel_summary

        data["dispatch"] = channel_summary(session, incident_id)
        data["announcement"] = announcement.approval_state(session, ws, inc) if data["assessment"] else None
        data["reports"] = [r.as_json() for r in regulators.list_reports(session, incident_id)]
        return data


def render_notices(ws: Workspace, incident_id: str, actor: str, workers: int | None = None) -> Any:
    """Render every notice and write the review bundle (one transaction: a lint failure leaves nothing)."""
    from incident.notices.render import render_notices as render

    with unit_of_work(ws) as session:
        return render(session, ws, incident_id, actor, workers)


def decide_notices(
    ws: Workspace, incident_id: str, reviewer: str, decision: str, comment: str | None, actor: str
) -> None:
    """Approve or reject the current render."""
    from incident.notices.review import decide

    with unit_of_work(ws) as session:
        decide(session, ws, incident_id, reviewer, decision, comment, actor)


def show_notice(ws: Workspace, incident_id: str, person_id: str, channel: str | None) -> list[dict[str, Any]]:
    """One person's rendered notices."""
    from incident.notices.review import stored_notice

    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        found = stored_notice(session, incident_id, person_id, channel)
        if not found:
            raise IncidentError(
                f"no rendered notice for person {person_id!r} in {incident_id}"
                + (f" on channel {channel}" if channel else "")
            )
        return found
