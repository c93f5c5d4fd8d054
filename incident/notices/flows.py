"""Notices use cases: render, decide, show. Each opens one unit of work."""

from __future__ import annotations

from typing import Any

from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError
from incident.incidents import models as incidents


def render_notices(ws: Workspace, incident_id: str, actor: str, *, workers: int | None = None) -> Any:
    """Render every notice and write the review bundle (one transaction: a lint failure leaves nothing)."""
    from incident.notices.render import render_notices as render

    with unit_of_work(ws) as session:
        return render(session, ws, incident_id, actor, workers)


def decide_notices(
    ws: Workspace, incident_id: str, reviewer: str, *, decision: str, comment: str | None, actor: str
) -> None:
    """Approve the current render (only if nothing changed since) or reject it (with a comment)."""
    from incident import approvals
    from incident.notices.approval import NOTICES

    with unit_of_work(ws) as session:
        approvals.decide(
            session,
            ws,
            incident_id,
            artefact=NOTICES,
            reviewer=reviewer,
            decision=approvals.Decision(decision),
            comment=comment,
            actor=actor,
        )


def show_notice(ws: Workspace, incident_id: str, person_id: str, *, channel: str | None) -> list[dict[str, Any]]:
    """One person's rendered notices, or a refusal naming who and which channel has none."""
    from incident.notices.models import stored_notice

    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        found = stored_notice(session, incident_id, person_id, channel)
        if not found:
            raise IncidentError(
                f"no rendered notice for person {person_id!r} in {incident_id}"
                + (f" on channel {channel}" if channel else "")
            )
        return found


def held_notices(ws: Workspace, incident_id: str) -> list[dict[str, Any]]:
    """Who the current render held back (their own data failed a check) and why; empty when nobody was."""
    from incident.notices.approval import current_render, held_back

    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        render = current_render(session, incident_id)
        return held_back(render) if render is not None else []
