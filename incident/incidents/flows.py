"""Incident use cases: open, log, close; each opens one unit of work."""

from __future__ import annotations

from incident.config import Workspace
from incident.db import unit_of_work
from incident.incidents import service
from incident.incidents.service import OpenRequest


def open_incident(ws: Workspace, req: OpenRequest, actor: str) -> str:
    """Open an incident and return its id."""
    with unit_of_work(ws) as session:
        return service.open_incident(session, req, actor, ws.root).id


def log(ws: Workspace, incident_id: str, text: str, kind: str, actor: str) -> None:
    """Append a timeline entry."""
    with unit_of_work(ws) as session:
        service.log_entry(session, incident_id, text, kind, actor)


def close(ws: Workspace, incident_id: str, actor: str) -> None:
    """Close an incident."""
    with unit_of_work(ws) as session:
        service.close_incident(session, incident_id, actor)
