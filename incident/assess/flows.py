"""Assessment use cases: assess, list incidents with their grade, export the affected people."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from incident.assess import grading
from incident.assess import models as assess
from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import InvalidArgument, NotAssessed
from incident.files import check_output, open_private, safe_cell
from incident.incidents import models as incidents
from incident.incidents.holds import refuse_if_purged
from incident.incidents.models import Status


def list_incidents(ws: Workspace) -> list[dict[str, Any]]:
    """Summarise every incident."""
    with unit_of_work(ws, write=False) as session:
        out = []
        for inc in incidents.list_incidents(session):
            latest = assess.latest(session, inc.id)
            out.append(
                {
                    "id": inc.id,
                    "status": inc.status,
                    "title": inc.title,
                    "playbook": inc.playbook,
                    "discovered_at": inc.discovered_at.isoformat(),
                    "people": latest.people if latest else None,
                    "grade": latest.grade if latest else None,
                }
            )
        return out


def assess_incident(
    ws: Workspace,
    incident_id: str,
    actor: str,
    *,
    reassess: bool = False,
    grade: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """Assess (or re-read the stored assessment) and return the full picture."""
    from incident.reports.aggregates import picture

    with unit_of_work(ws) as session:
        grading.assess_incident(session, incident_id, actor, ws.root, reassess=reassess, grade=grade, reason=reason)
        if reassess:
            _cancel_unaffected(session, incident_id, actor)
        return picture(session, ws, incidents.get(session, incident_id)).as_json()


def _cancel_unaffected(session: Any, incident_id: str, actor: str) -> None:
    """People a re-assessment no longer finds affected are sent nothing more (what they were sent stays); one it
    finds on a notified incident makes it notifying again."""
    from incident import clock
    from incident.audit import chain as audit
    from incident.dispatch import binding

    cancelled = binding.cancel_unaffected(session, incident_id, reason=binding.NO_LONGER_AFFECTED, now=clock.now())
    if cancelled:
        event = audit.Event(audit.Action.DISPATCH_CANCELLED, {"deliveries": cancelled, "reason": "no longer affected"})
        audit.record(session, incident_id, event, actor)
    incident = incidents.get(session, incident_id)
    found = binding.unplanned_count(session, incident_id) if incident.status == Status.NOTIFIED else 0
    if found:  # a notified incident with people not yet told is notifying again
        incidents.transition(session, incident, Status.NOTIFYING, actor, f"re-assessed: {found} people to notify")


AFFECTED_FIELDS = (
    "person_id",
    "audience",
    "subject_name",
    "to_name",
    "to_email",
    "to_phone",
    "to_push",
    "to_address",
    "locale",
    "region",
    "account_status",
    "is_child",
    "categories",
)


def export_affected(ws: Workspace, incident_id: str, fmt: str, out: IO[str]) -> int:
    """Stream the stored snapshot as CSV or JSON Lines; return how many people were written."""
    if fmt not in ("csv", "jsonl"):
        raise InvalidArgument("--format: use csv or jsonl")
    n = 0
    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        if assess.latest(session, incident_id) is None:
            raise NotAssessed(f"{incident_id} has not been assessed yet (run `incident assess {incident_id}`)")
        refuse_if_purged(session, incident_id)
        writer = csv.writer(out) if fmt == "csv" else None
        if writer is not None:
            writer.writerow(AFFECTED_FIELDS)
        for person in _rows(session, incident_id):
            n += 1
            if writer is not None:
                writer.writerow([safe_cell(person[f]) for f in AFFECTED_FIELDS])
            else:
                out.write(json.dumps(person, ensure_ascii=False) + "\n")
    return n


def _rows(session: Any, incident_id: str) -> Iterator[dict[str, Any]]:
    for a in assess.affected_people(session, incident_id):
        row = {f: getattr(a, f) for f in AFFECTED_FIELDS}
        row["is_child"] = bool(row["is_child"])
        yield row


def export_affected_to(ws: Workspace, incident_id: str, fmt: str, output: Path | None, stdout: IO[str]) -> int:
    """Write the affected list to a private file (0600) or to stdout."""
    if output is None:
        return export_affected(ws, incident_id, fmt, stdout)
    check_output(output)
    from incident.incidents.flows import remember_export

    remember_export(ws, incident_id, output, "affected")
    with open_private(output) as fh:
        return export_affected(ws, incident_id, fmt, fh)
