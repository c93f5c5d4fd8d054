"""Use cases for what the public and regulators receive, and `show`, which reads every domain.

Each opens one unit of work and calls the domain; the two that send (publishing the announcement, warning
on-call) open one before and one after every send instead, so no transaction is open during network I/O."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from incident import catalog, clock
from incident.assess import models as assess
from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError, InvalidArgument
from incident.incidents import models as incidents
from incident.reports import models as report_models


def announce(ws: Workspace, incident_id: str, actor: str) -> Any:
    """Render the announcement for review (both locales, HTML and Markdown, with its manifest)."""
    from incident.reports import announcement

    with unit_of_work(ws) as session:
        return announcement.render(session, ws, incident_id, actor)


def publish_announcement(ws: Workspace, incident_id: str, actor: str) -> Any:
    """Publish the approved announcement to public/ID/ and to every configured target not yet reached."""
    from incident.reports import publishing

    with unit_of_work(ws) as session:
        publication = publishing.start(session, ws, incident_id, actor)
    for url in publication.targets:
        with unit_of_work(ws) as session:
            send_id = publishing.claim_send(session, publication, url)
        if send_id is None:
            continue
        outcome = publishing.send(publication, url)
        with unit_of_work(ws) as session:
            publishing.record_send(session, publication, send_id, url, outcome)
    with unit_of_work(ws) as session:
        publishing.finish(session, publication, actor)
    return publication.result


def decide_announcement(
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
    """Approve the announcement render whose manifest the reviewer names (only if it is current and nothing
    changed since) or reject it (with a comment). Return what was decided."""
    from incident import approvals
    from incident.reports.announcement import ANNOUNCEMENT

    return approvals.decide_in_units(
        ws,
        incident_id,
        artefact=ANNOUNCEMENT,
        reviewer=reviewer,
        decision=decision,
        comment=comment,
        actor=actor,
        manifest=manifest,
        sign_key=sign_key,
    )


def generate_report(
    ws: Workspace,
    incident_id: str,
    regulator: str,
    *,
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

    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        return [r.as_json() for r in report_models.list_reports(session, incident_id)]


def submit_report(
    ws: Workspace,
    incident_id: str,
    regulator: str,
    *,
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
    from incident.reports import board as boards

    with unit_of_work(ws, write=notify) as session:
        board = boards.board(session, ws)
        due = boards.warnings_due(session, ws, board, actor) if notify else []
    for warning in due:
        with unit_of_work(ws) as session:
            claimed = boards.claim_warning(session, warning)
        if not claimed:
            continue
        outcome = boards.send_warning(ws, warning)
        with unit_of_work(ws) as session:
            boards.record_warning(session, ws, board, warning=warning, outcome=outcome, actor=actor)
    return board


def settle_obligation(
    ws: Workspace, incident_id: str, key: str, *, actor: str, at: datetime | None, reference: str | None
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
        discovered = clock.as_utc(incident.discovered_at)
        if when < discovered:
            # Nothing owed because of an incident can be done before anyone knew of it.
            raise InvalidArgument(f"--at: is before the incident was discovered ({discovered.isoformat()})")
        assess.settle(session, incident_id, key, actor, when, reference)
        return {"key": key, "at": when.isoformat(), "reference": reference, "title": ob.title}


def describe(ws: Workspace, incident_id: str) -> dict[str, Any]:
    """Everything `incident show` prints: facts, timeline, counts, obligations with time left, where the notices
    and the announcement stand, dispatch and reports."""
    from incident.dispatch import binding
    from incident.dispatch.proof import channel_summary
    from incident.incidents import holds
    from incident.notices import approval as notices_approval
    from incident.reports import aggregates, announcement

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
            "nature": list(incidents.nature_of(inc.nature, catalog.playbook(inc.playbook, ws.root).nature)),
            "opened": {"at": inc.opened_at.isoformat(), "by": inc.opened_by},
            "handling_ended_at": inc.handling_ended_at.isoformat() if inc.handling_ended_at else None,
            "now": clock.now().isoformat(),
            "timeline": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "kind": e.kind,
                    "text": e.text,
                    "text_en": e.text_en,
                }
                for e in incidents.timeline(session, incident_id)
            ],
            "assessment": None,
        }
        # The playbook's first steps of the emergency plan (privacy policy §五(三)): what to contain, in both languages.
        book = catalog.playbook(inc.playbook, ws.root)
        data["containment"] = [{"zh-CN": step.zh_CN, "en": step.en} for step in book.containment]
        if assess.latest(session, incident_id) is not None:
            data["assessment"] = aggregates.picture(session, ws, inc).as_json()
        data["notices"] = notices_approval.approval_state(session, ws, inc)
        data["retention"] = holds.retention_state(session, inc, ws.retention_days)
        if data["retention"]["purged"]:
            # The rendered notices were deleted on purpose: say so, not that they changed since their approval.
            approved_by = data["notices"].get("reviewer")
            data["notices"] |= {
                "state": "purged",
                "changes": [],
                "held": [],
                "reviewer": None,
                "approved_by": approved_by,
            }
        data["dispatch"] = channel_summary(session, incident_id)
        data["sending"] = binding.sending_note(session, ws, inc)
        data["announcement"] = announcement.approval_state(session, ws, inc) if data["assessment"] else None
        data["reports"] = [r.as_json() for r in report_models.list_reports(session, incident_id)]
        return data
