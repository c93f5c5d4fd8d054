"""The notices as a reviewed artefact: what voids their approval, and the gate dispatch passes through."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from incident import approvals
from incident.approvals import Decision
from incident.config import Workspace
from incident.files import file_sha256
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.notices.fingerprint import fingerprint as render_fingerprint
from incident.notices.manifest import manifest_tail
from incident.notices.models import Render, finished_render, notice_sha, unfinished_render, unpack_content

CHANGE_LABELS = {
    "playbook": "the playbook",
    "categories": "the data-category catalogue",
    "organisation": "the organisation details in incident.toml",
    "facts": "the incident facts or logged actions",
    "affected": "the affected set (re-assessed)",
}


def current_render(session: Session, incident_id: str) -> Render | None:
    """The newest finished render of an incident's notices."""
    return finished_render(session, incident_id)


def render_in_progress(session: Session, incident_id: str) -> str | None:
    """Describe the render of the notices that has started and not finished, if one has."""
    running = unfinished_render(session, incident_id)
    if running is None:
        return None
    return (
        f"a render started at {running.at.isoformat(timespec='seconds')} by {running.actor} has not finished "
        f"(if it was interrupted, run `incident notices render {incident_id}` again)"
    )


def changes_since(session: Session, ws: Workspace, render: Render) -> list[str]:
    """Name everything that changed since the render: templates, playbook, facts, affected set, notices."""
    incident = incidents.get(session, render.incident_id)
    before = json.loads(render.fingerprint)
    now = render_fingerprint(session, ws, incident)
    changed: list[str] = []
    old_t, new_t = before.get("templates", {}), now["templates"]
    for name in sorted(set(old_t) | set(new_t)):
        if old_t.get(name) != new_t.get(name):
            changed.append(
                f"template {name} changed"
                if name in old_t and name in new_t
                else f"template {name} {'added' if name in new_t else 'removed'}"
            )
    for key, label in CHANGE_LABELS.items():
        if before.get(key) != now[key]:
            changed.append(f"{label} changed")
    assert render.id is not None
    if notices_digest(session, incident.id, render.id) != before_digest(render):
        changed.append("rendered notices in the database differ from the approved manifest")
    return changed


def notices_digest(session: Session, incident_id: str, render_id: int) -> str:
    """Recompute a render's manifest notices digest from its stored notices and their content."""
    digest = hashlib.sha256()
    rows = session.connection().execute(
        text(
            "SELECT person_id, channel, subject, body, html, sha256 FROM notice WHERE incident_id = :iid "
            "AND render_id = :r ORDER BY person_id, id"
        ),
        {"iid": incident_id, "r": render_id},
        execution_options={"stream_results": True, "yield_per": 2000},
    )
    for person_id, channel, subject, body, html, sha in rows:
        actual = notice_sha(subject, *unpack_content(body, html))
        digest.update(f"{person_id}\x1f{channel}\x1f{actual if actual == sha else 'TAMPERED'}\n".encode())
    return digest.hexdigest()


def before_digest(render: Render) -> str | None:
    """The notices digest of the manifest the render wrote, if that file is still the one it hashed."""
    path = Path(render.bundle) / "manifest.json"
    try:
        if file_sha256(path) != render.manifest_hash:
            return None
        return str(manifest_tail(path).get("notices_digest"))
    except (OSError, ValueError):
        return None


def held_back(render: Render) -> list[dict[str, Any]]:
    """The people this render held back (their own data failed a check), each with why."""
    try:
        held = json.loads(render.lint or "{}").get("held", [])
    except ValueError:
        return []
    return held if isinstance(held, list) else []


def lint_failures(render: Render) -> list[str]:
    """The render's lint failures that are the incident's own: responder text missing in a language, and claims
    the record contradicted when it was rendered. They refuse approval until fixed and rendered again."""
    try:
        lint = json.loads(render.lint or "{}")
        found = [*lint.get("language", []), *lint.get("claims", [])] if isinstance(lint, dict) else []
    except ValueError:
        return []
    return [str(f) for f in found] if isinstance(found, list) else []


def _summary(render: Render) -> dict[str, Any]:
    return {
        "render": render.id,
        "manifest": render.manifest_hash,
        "notices": render.notices,
        "bundle": render.bundle,
        "held": held_back(render),
        "lint_failures": lint_failures(render),
    }


# Once sending has started the status stays where it is through a re-render and its review: the render and its
# approval carry their own state, and the deliveries already planned keep sending what was approved meanwhile.
SENDING = (Status.NOTIFYING, Status.NOTIFIED)


def _nothing_to_decide(incident: incidents.Incident, render: Render | None) -> str | None:
    if render is None or Status(incident.status) not in (Status.RENDERED, Status.APPROVED, *SENDING):
        return f"{incident.id} has no rendered notices awaiting review (status '{incident.status}')"
    return None


def _move_status(session: Session, incident: incidents.Incident, decision: Decision, reviewer: str, actor: str) -> None:
    # Approved notices may be dispatched; rejected ones go back to be rendered again. While sending, the status
    # stays (an audited move to itself): the next dispatch applies an approval to what is not yet sent.
    status = Status(incident.status)
    back = Status.APPROVED if decision == Decision.APPROVED else Status.ASSESSED
    to = status if status in SENDING else back
    incidents.transition(session, incident, to, actor, f"notices {decision} by {reviewer}")


NOTICES = approvals.Artefact[Render](
    name="notices",
    current_render=current_render,
    changes_since=changes_since,
    summary=_summary,
    nothing_to_decide=_nothing_to_decide,
    cannot_approve="cannot approve: {changes} (re-render with `incident notices render {id}`)",
    stale="the approval is stale: {changes} (re-render and have legal approve again: `incident notices render {id}`)",
    not_approved=(
        "{id} notices are not approved ({state}): run `incident notices approve {id} --manifest SHA256 "
        "--reviewer NAME` after reviewing the bundle"
    ),
    reject_needs_comment="--comment: say why the notices are rejected",
    on_decision=_move_status,
    in_progress=render_in_progress,
    failures=lint_failures,
)


def approval_state(session: Session, ws: Workspace, incident: incidents.Incident) -> dict[str, Any]:
    """Where the notices' approval stands: none, rejected, approved (current) or stale (naming what changed)."""
    return approvals.approval_state(session, ws, incident, artefact=NOTICES)


def require_current_approval(session: Session, ws: Workspace, incident: incidents.Incident) -> Render:
    """Return the approved render, or refuse naming what is missing or what changed."""
    return approvals.require_current(session, ws, incident, artefact=NOTICES)
