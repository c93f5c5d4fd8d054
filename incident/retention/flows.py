"""Use cases for data at rest: put an incident under a legal hold or release it, and purge a closed incident's
personal data once its retention period has passed.

A purge is one unit of work for the database (all or nothing); the files go after its commit. The purge row
lists them, so a run that dies in between leaves files the next `incident purge` removes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from incident import clock
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import compact, unit_of_work
from incident.errors import IllegalTransition
from incident.incidents import holds
from incident.incidents import models as incidents
from incident.retention import leftovers


def hold(ws: Workspace, incident_id: str, reason: str, actor: str, *, release: bool = False) -> dict[str, Any]:
    """Place (or release) a legal hold on an incident; return the hold."""
    with unit_of_work(ws) as session:
        change = holds.release_hold if release else holds.place_hold
        held = change(session, incident_id, reason, actor)
        return {
            "incident": incident_id,
            "hold": held.id,
            "placed_at": held.placed_at.isoformat(),
            "placed_by": held.placed_by,
            "reason": held.reason,
            "released_at": held.released_at.isoformat() if held.released_at else None,
            "released_by": held.released_by,
            "release_reason": held.release_reason,
        }


@dataclass
class Purged:
    """What a purge removed (or, with --dry-run, would remove)."""

    incident: str
    dry_run: bool
    already: bool = False  # purged by an earlier run: this one only removed files that run left
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # workspace paths, relative to its folder
    outside: list[str] = field(default_factory=list)  # exports written outside the workspace: not removed
    compacted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident,
            "dry_run": self.dry_run,
            "already_purged": self.already,
            "removed" if not self.dry_run else "would_remove": self.counts,
            "files": self.files,
            "exports_outside_workspace": self.outside,
            "database_compacted": self.compacted,
        }


def purge(ws: Workspace, incident_id: str, actor: str, *, dry_run: bool = False) -> Purged:
    """Delete a closed incident's people's personal data once the retention period has passed and no legal hold
    stands, keeping the counts, the reports and the audit chain; with dry_run, only say what would go."""
    days = ws.retention_days
    with unit_of_work(ws, write=not dry_run) as session:
        incident = incidents.get(session, incident_id, for_update=not dry_run)
        done = incidents.purge_of(session, incident_id)
        if done is not None:
            files = sorted(set(json.loads(done.files)) | set(leftovers.personal_files(ws.root, incident_id)))
            result = Purged(incident_id, dry_run, already=True, counts=json.loads(done.removed), files=files)
        else:
            refusal = holds.purge_refusal(session, incident, days)
            if refusal is not None:
                raise IllegalTransition(refusal)
            result = _plan(session, ws, incident_id, dry_run)
            if not dry_run:
                _forget(session, incident_id, result, actor=actor, days=days)
    if dry_run:
        through_links = [f for f in result.files if leftovers.inside(ws.root, f) != f]
        result.files = [f for f in result.files if f not in through_links]
        result.outside += [str(ws.root / rel) for rel in through_links]
        return result
    result.files, through_links = leftovers.remove(ws.root, result.files)
    result.outside += [str(ws.root / rel) for rel in through_links]
    result.compacted = compact(ws)
    return result


def _plan(session: Session, ws: Workspace, incident_id: str, dry_run: bool) -> Purged:
    from incident.assess import models as assess
    from incident.dispatch import models as dispatch
    from incident.notices import models as notices

    counts = {
        "people": assess.count_affected(session, incident_id),
        "notices": notices.count_notices(session, incident_id),
        "deliveries": dispatch.delivery_count(session, incident_id),
        "attempts": sum(dispatch.attempts_counted(session, incident_id).values()),
    }
    files, outside = leftovers.personal_files(ws.root, incident_id), []
    for export in incidents.exports_of(session, incident_id):
        rel = leftovers.inside(ws.root, export.path)
        if rel is None:
            outside.append(export.path)
        elif rel not in files:
            files.append(rel)
    return Purged(incident_id, dry_run, counts=counts, files=files, outside=outside)


def _forget(session: Session, incident_id: str, plan: Purged, *, actor: str, days: int) -> None:
    """The database half of a purge, in the caller's unit of work."""
    from incident.assess import models as assess
    from incident.audit import coverage
    from incident.dispatch import models as dispatch
    from incident.notices import models as notices

    notices.forget_notices(session, incident_id)
    attempt_ids = dispatch.tally_and_delete_attempts(session, incident_id)
    coverage.forget(session, incident_id, "attempt", attempt_ids, "purged")
    assess.forget_people(session, incident_id)
    dispatch.forget_delivery_people(session, incident_id, assess.PERSON_MAP)
    # The deliveries are re-written under meaningless ids: the chain now expects exactly these rows.
    coverage.cover(session, incident_id, "delivery", actor=actor)
    assess.drop_person_map(session)
    incidents.forget_exports(session, incident_id)
    plan.counts["files"] = len(plan.files)
    session.add(
        incidents.Purge(
            incident_id=incident_id,
            at=clock.now(),
            actor=actor,
            retention_days=days,
            removed=json.dumps(plan.counts, sort_keys=True),
            files=json.dumps(plan.files),
        )
    )
    payload = {**plan.counts, "retention_days": days, "exports_outside_workspace": len(plan.outside)}
    audit.record(session, incident_id, audit.Event(audit.Action.PURGED, payload), actor)
