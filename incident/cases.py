"""Incident use cases: each opens one unit of work and calls the domain functions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from incident.config import Workspace
from incident.db import unit_of_work
from incident.errors import InvalidArgument
from incident.incidents import models as incidents


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
    from incident.files import open_private

    if fmt not in ("csv", "jsonl"):
        raise InvalidArgument("--format: use csv or jsonl")
    with unit_of_work(ws, write=False) as session:
        incidents.get(session, incident_id)
        if output is None:
            return export_attempts(session, incident_id, fmt, stdout)
        with open_private(output) as fh:
            return export_attempts(session, incident_id, fmt, fh)
