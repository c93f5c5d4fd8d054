"""Take the snapshot, grade it, and store the assessment."""

from __future__ import annotations

import json
from pathlib import Path

from sqlmodel import Session

from incident import catalog, clock
from incident.assess.counts import count
from incident.assess.models import Assessment, latest
from incident.assess.snapshot import determine_affected
from incident.audit import chain as audit
from incident.errors import IncidentError, InvalidArgument
from incident.incidents.models import Status, get, transition


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
    if grade is not None:
        if grade not in {g.key for g in rules.grades}:
            raise InvalidArgument(f"--grade: unknown grade {grade!r} (one of {', '.join(g.key for g in rules.grades)})")
        if not reason:
            raise InvalidArgument("--grade needs --reason: a manual grade must say why (qualitative criteria, loss)")
    previous = latest(session, incident_id)
    if previous is not None and not reassess and grade is None:
        return previous
    if previous is None or reassess:
        if Status(incident.status) in (Status.NOTIFYING, Status.NOTIFIED, Status.CLOSED):
            raise IncidentError(
                f"{incident_id} is '{incident.status}': notices have gone out, the snapshot can no longer change"
            )
        determine_affected(session, incident)
        counts = count(session, incident, workspace)
    else:
        counts = json.loads(previous.counts)
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
    if previous is None or reassess:
        transition(session, incident, Status.ASSESSED, actor, "re-assessed" if previous else "")
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action.ASSESSED,
            {
                "people": counts["people"],
                "grade": stored.grade,
                "grade_auto": auto,
                "reason": stored.grade_reason,
                "snapshot": previous is None or reassess,
            },
        ),
        actor,
    )
    return stored
