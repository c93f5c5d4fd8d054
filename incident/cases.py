"""Incident use cases: each opens one unit of work and calls the domain functions."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from incident import assess, incidents
from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import IncidentError, InvalidArgument
from incident.rows import safe_cell


def open_incident(ws: Workspace, req: incidents.OpenRequest, actor: str) -> str:
    """Open an incident and return its id."""
    with unit_of_work(ws) as session:
        return incidents.open_incident(session, req, actor, ws.root).id


def log(ws: Workspace, incident_id: str, text: str, kind: str, actor: str) -> None:
    """Append a timeline entry."""
    with unit_of_work(ws) as session:
        incidents.log_entry(session, incident_id, text, kind, actor)


def close(ws: Workspace, incident_id: str, actor: str) -> None:
    """Close an incident."""
    with unit_of_work(ws) as session:
        incidents.close_incident(session, incident_id, actor)


def end_handling(ws: Workspace, incident_id: str, actor: str) -> None:
    """Record that handling has ended (CAC final-summary clock)."""
    with unit_of_work(ws) as session:
        incidents.end_handling(session, incident_id, actor)


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
        assess.assess_incident(session, incident_id, actor, ws.root, reassess=reassess, grade=grade, reason=reason)
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


def export_affected(ws: Workspace, incident_id: str, fmt: str, out: TextIO) -> int:
    """Stream the stored snapshot as CSV or JSON Lines; return how many people were written."""
    if fmt not in ("csv", "jsonl"):
        raise InvalidArgument("--format: use csv or jsonl")
    n = 0
    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        if assess.latest(session, incident_id) is None:
            raise IncidentError(f"{incident_id} has not been assessed yet (run `incident assess {incident_id}`)")
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


def export_affected_to(ws: Workspace, incident_id: str, fmt: str, output: Path | None, stdout: TextIO) -> int:
    """Write the affected list to a private file (0600) or to stdout."""
    if output is None:
        return export_affected(ws, incident_id, fmt, stdout)
    from incident.rows import open_private

    with open_private(output) as fh:
        return export_affected(ws, incident_id, fmt, fh)


def dispatch(
    ws: Workspace,
    incident_id: str,
    actor: str,
    *,
    workers: int,
    channel: str | None,
    hold_unknown: bool,
    progress: Any = None,
    enqueue_only: bool = False,
) -> Any:
    """Send the approved notices (resumes where the last run stopped)."""
    from incident.dispatch.engine import run_dispatch

    if channel is not None and channel not in ("email", "sms", "push"):
        raise InvalidArgument("--channel: use email, sms or push (letters: `incident letters`)")
    return run_dispatch(
        ws,
        incident_id,
        actor,
        workers=workers,
        only=channel,
        hold_unknown=hold_unknown,
        progress=progress,
        enqueue_only=enqueue_only,
    )


def work(ws: Workspace, actor: str, *, incident_id: str | None, workers: int, hold_unknown: bool, follow: bool) -> Any:
    """Serve notifying incidents as one of many dispatch workers."""
    from incident.dispatch.engine import run_worker

    return run_worker(ws, actor, incident_id=incident_id, workers=workers, hold_unknown=hold_unknown, follow=follow)


def dispatch_preview(ws: Workspace, incident_id: str, channel: str | None) -> dict[str, dict[str, int]]:
    """What dispatch would send, per channel and variant."""
    from incident.dispatch.engine import dry_run

    return dry_run(ws, incident_id, channel)


def release_held(ws: Workspace, incident_id: str, actor: str) -> int:
    """Queue held (unknown) deliveries for one more attempt."""
    from incident.dispatch.engine import release_held as release

    with unit_of_work(ws) as session:
        incidents.get(session, incident_id, for_update=True)
        return release(session, incident_id, actor)


def letters(ws: Workspace, incident_id: str, actor: str) -> Any:
    """Write the letter batch."""
    from incident.dispatch.letters import write_letters

    with unit_of_work(ws) as session:
        incidents.get(session, incident_id, for_update=True)
        return write_letters(session, ws, incident_id, actor)


def export_deliveries(ws: Workspace, incident_id: str, fmt: str, output: Path | None, stdout: TextIO) -> int:
    """Export every attempt as proof of delivery."""
    from incident.dispatch.proof import export_attempts
    from incident.rows import open_private

    if fmt not in ("csv", "jsonl"):
        raise InvalidArgument("--format: use csv or jsonl")
    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        if output is None:
            return export_attempts(session, incident_id, fmt, stdout)
        with open_private(output) as fh:
            return export_attempts(session, incident_id, fmt, fh)
