"""Incident use cases: open, log, close; each opens one unit of work."""

from __future__ import annotations

import os
from pathlib import Path

from incident import clock
from incident.config import Workspace
from incident.db import unit_of_work
from incident.incidents import models, service
from incident.incidents.service import OpenRequest


def open_incident(ws: Workspace, req: OpenRequest, actor: str) -> str:
    """Open an incident and return its id."""
    with unit_of_work(ws) as session:
        return service.open_incident(session, req, actor, ws.root).id


def log(
    ws: Workspace,
    incident_id: str,
    text: str | None,
    kind: str,
    actor: str,
    *,
    text_en: str | None = None,
    entry: str | None = None,
    nature: str | None = None,
) -> str | None:
    """Append a timeline entry (or give `entry`, an entry's number, summary or cause, its text in another
    language); return what it changed when it made the notices' approval stale."""
    from incident.notices.approval import approval_state

    with unit_of_work(ws) as session:
        before = approval_state(session, ws, models.get(session, incident_id))["state"]
        if entry is None:
            service.log_entry(session, incident_id, text, kind, actor, text_en=text_en, nature=nature)
        else:
            service.translate_entry(session, incident_id, entry, actor, text=text, text_en=text_en)
        after = approval_state(session, ws, models.get(session, incident_id))
        if before != "stale" and after["state"] == "stale":
            return "; ".join(after["changes"]) or "changed"
        return None


def close(ws: Workspace, incident_id: str, actor: str) -> None:
    """Close an incident."""
    with unit_of_work(ws) as session:
        service.close_incident(session, incident_id, actor)


def remember_export(ws: Workspace, incident_id: str, output: Path, kind: str) -> None:
    """Record, before it is written, that personal data of the incident goes to `output`, so a purge removes it."""
    full, root = os.path.realpath(output), os.path.realpath(ws.root)
    # Inside the workspace the path is kept relative to it, so it still holds when the folder is moved or copied.
    path = os.path.relpath(full, root) if full.startswith(root + os.sep) else os.path.abspath(output)
    from incident.incidents.holds import refuse_if_purged

    with unit_of_work(ws) as session:
        models.get(session, incident_id)
        refuse_if_purged(session, incident_id)
        if all(e.path != path for e in models.exports_of(session, incident_id)):
            models.record_export(session, incident_id, path, kind, clock.now())
