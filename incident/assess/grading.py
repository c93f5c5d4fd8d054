"""Take the snapshot, grade it, and store the assessment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session

from incident import catalog, clock
from incident.assess.counts import count
from incident.assess.models import Assessment, latest
from incident.assess.snapshot import determine_affected
from incident.audit import chain as audit
from incident.db import stored_json
from incident.errors import IncidentError, InvalidArgument
from incident.incidents.models import Incident, Status, get, transition


def check_manual_grade(rules: catalog.Jurisdictions, grade: str | None, reason: str | None) -> None:
    """A manual grade must be a known grade and say why (GB/T 35273 grading allows qualitative criteria)."""
    if grade is None:
        return
    if grade not in {g.key for g in rules.grades}:
        raise InvalidArgument(f"--grade: unknown grade {grade!r} (one of {', '.join(g.key for g in rules.grades)})")
    if not reason:
        raise InvalidArgument("--grade needs --reason: a manual grade must say why (qualitative criteria, loss)")


# While notices are being sent (or were), a re-assessment may still find more people: the status stays, the
# deliveries already planned keep their approved notices, and the new people wait for a re-render and approval.
SENDING = (Status.NOTIFYING, Status.NOTIFIED)


def take_snapshot(session: Session, incident: Incident, workspace: Path | None) -> dict[str, Any]:
    """Replace the affected snapshot and return its counts; refused once the incident is closed."""
    if Status(incident.status) == Status.CLOSED:
        raise IncidentError(f"{incident.id} is '{incident.status}': the snapshot can no longer change")
    determine_affected(session, incident)
    return count(session, incident, workspace)


def assess_incident(
    session: Session,
    incident_id: str,
    actor: str,
    workspace: Path | None,
    *,
    reassess: bool = False,
    grade: str | None = None,
    reason: str | None = None,
) -> Assessment:
    """Take the snapshot (first time or on --reassess), grade it, and store the assessment."""
    incident = get(session, incident_id, for_update=True)
    rules = catalog.jurisdictions(workspace)
    check_manual_grade(rules, grade, reason)
    previous = latest(session, incident_id)
    if previous is not None and not reassess and grade is None:
        return previous
    snapshot = previous is None or reassess
    if previous is None or reassess:
        counts = take_snapshot(session, incident, workspace)
    else:
        counts = stored_json(previous.counts, f"assessment of {incident.id}: counts")
    auto = rules.grade_for(counts["people"]).key
    # A manual grade sticks until the next snapshot, which is graded afresh.
    kept = previous if previous is not None and previous.grade_reason and not reassess else None
    stored = Assessment(
        incident_id=incident_id,
        at=clock.now(),
        actor=actor,
        people=counts["people"],
        grade=grade or (kept.grade if kept else auto),
        grade_auto=auto,
        grade_reason=reason or (kept.grade_reason if kept else None),
        counts=json.dumps(counts, sort_keys=True),
    )
    session.add(stored)
    session.flush()
    if snapshot:
        status = Status(incident.status)
        to = status if status in SENDING else Status.ASSESSED
        transition(session, incident, to, actor, "re-assessed" if previous else "")
    payload = {
        "people": counts["people"],
        "grade": stored.grade,
        "grade_auto": auto,
        "reason": stored.grade_reason,
        "snapshot": snapshot,
    }
    audit.record(session, incident_id, audit.Event(audit.Action.ASSESSED, payload), actor)
    return stored
