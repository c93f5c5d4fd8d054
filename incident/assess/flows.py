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
        return picture(session, ws, incidents.get(session, incident_id)).as_json()


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
    with open_private(output) as fh:
        return export_affected(ws, incident_id, fmt, fh)
