"""Notices use cases: render, decide, show. Each opens one unit of work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError
from incident.incidents import models as incidents


def render_notices(ws: Workspace, incident_id: str, actor: str, *, workers: int | None = None) -> Any:
    """Render every notice and write the review bundle (one transaction: a lint failure leaves nothing)."""
    from incident.notices.render import abandon_render, begin_render
    from incident.notices.render import render_notices as render

    # The started render is committed on its own, so an approval made meanwhile sees it and refuses.
    with unit_of_work(ws) as session:
        render_id = begin_render(session, incident_id, actor)
    from incident.dispatch.binding import renders_in_use

    try:
        with unit_of_work(ws) as session:
            keep = renders_in_use(session, incident_id)
            return render(session, ws, incident_id, actor, workers, render_id=render_id, keep_renders=keep)
    except BaseException:
        with unit_of_work(ws) as session:
            abandon_render(session, render_id)
        raise


def decide_notices(
    ws: Workspace,
    incident_id: str,
    reviewer: str,
    *,
    decision: str,
    comment: str | None,
    actor: str,
    manifest: str | None,
    sign_key: Path | None = None,
) -> dict[str, Any]:
    """Approve the render whose manifest the reviewer names (only if it is current and nothing changed since)
    or reject it (with a comment); refuse while a render is under way. Return what was decided."""
    from incident import approvals
    from incident.notices.approval import NOTICES

    return approvals.decide_in_units(
        ws,
        incident_id,
        artefact=NOTICES,
        reviewer=reviewer,
        decision=decision,
        comment=comment,
        actor=actor,
        manifest=manifest,
        sign_key=sign_key,
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
