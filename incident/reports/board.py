"""The deadline board: every legal clock of every open incident, and warnings to on-call before one runs out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from incident import clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.clock import humanize
from incident.config import Workspace
from incident.errors import BadConfig, IncidentError
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.reports import aggregates, broadcast
from incident.reports.models import DeadlineWarning


@dataclass
class Board:
    now: str
    incidents: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def overdue(self) -> int:
        return sum(o["state"] == "overdue" for i in self.incidents for o in i["obligations"])

    @property
    def failed_warnings(self) -> list[dict[str, Any]]:
        return [w for w in self.warnings if w["outcome"] != "sent"]

    def as_json(self) -> dict[str, Any]:
        return {"now": self.now, "overdue": self.overdue, "incidents": self.incidents, "warnings": self.warnings}


def incident_rows(session: Session, ws: Workspace) -> list[dict[str, Any]]:
    """Every incident not closed, and closed ones that still have an obligation not done (the CAC final summary
    runs after close), each with its obligations in due order."""
    rows = []
    for inc in incidents.list_incidents(session):
        row: dict[str, Any] = {
            "id": inc.id,
            "title": inc.title,
            "status": inc.status,
            "assessed": False,
            "announcement": None,
            "obligations": [],
        }
        if assess.latest(session, inc.id) is not None:
            view = aggregates.picture(session, ws, inc)
            row |= {
                "assessed": True,
                "announcement": view.announcement,
                "obligations": [o.as_json() for o in view.obligations],
            }
        open_work = any(o["state"] != "done" for o in row["obligations"])
        if Status(inc.status) != Status.CLOSED or open_work:
            rows.append(row)
    return rows


def oncall(ws: Workspace) -> tuple[str, float]:
    """The [oncall] url and margin_hours of incident.toml."""
    cfg = ws.config.get("oncall", {})
    url = cfg.get("url")
    if not isinstance(url, str) or "://" not in url:
        raise IncidentError('incident.toml: [oncall] url: give an apprise URL for --notify (e.g. "ntfy://...")')
    try:
        margin = float(cfg.get("margin_hours", 24))
    except (TypeError, ValueError):
        raise BadConfig("incident.toml: [oncall] margin_hours: not a number") from None
    return url, margin


def warning_level(obligation: dict[str, Any], margin_hours: float) -> str | None:
    """overdue, due-soon (within the margin), or None."""
    if obligation["state"] == "overdue":
        return "overdue"
    if obligation["state"] == "due" and obligation["left_seconds"] <= margin_hours * 3600:
        return "due-soon"
    return None


def _message(incident: dict[str, Any], ob: dict[str, Any], level: str) -> tuple[str, str]:
    left = humanize(timedelta(seconds=ob["left_seconds"]))
    when = f"overdue by {left[1:]}" if level == "overdue" else f"{left} left"
    title = f"[{level}] {incident['id']}: {ob['key']} ({when})"
    body = (
        f"{ob['title']}\nTo: {ob['recipient']}\nDue: {ob['due']} ({when})\nIncident: {incident['id']} "
        f"{incident['title']} ({incident['status']})\nRule: {ob['source']}\n"
        f"Once done: incident settle {incident['id']} {ob['key']} (or submit the report it names)"
    )
    return title, body


def notify(session: Session, ws: Workspace, board: Board, actor: str) -> None:
    """Warn on-call once per incident, obligation and level; a failed send is retried on the next run."""
    url, margin = oncall(ws)
    masked = broadcast.mask_url(url)
    for inc in board.incidents:
        for ob in inc["obligations"]:
            level = warning_level(ob, margin)
            if level is None or session.get(DeadlineWarning, (inc["id"], ob["key"], level)) is not None:
                continue
            title, body = _message(inc, ob, level)
            outcome = broadcast.send_text(url, f"{inc['id']}.{ob['key']}.{level}", title, body, ws.path("outbox"))
            board.warnings.append(
                {
                    "incident": inc["id"],
                    "key": ob["key"],
                    "level": level,
                    "target": masked,
                    "outcome": outcome.status,
                    "reason": outcome.reason,
                }
            )
            if outcome.status == "sent":
                session.add(DeadlineWarning(incident_id=inc["id"], key=ob["key"], level=level, at=clock.now()))
                audit.record(
                    session,
                    inc["id"],
                    audit.Event(
                        audit.Action.DEADLINE_WARNING, {"obligation": ob["key"], "level": level, "target": masked}
                    ),
                    actor,
                )


def board(session: Session, ws: Workspace) -> Board:
    """The board at clock.now()."""
    return Board(clock.now().isoformat(), incident_rows(session, ws))
