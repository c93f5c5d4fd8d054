"""The deadline board: every legal clock of every open incident, and warnings to on-call before one runs out
(each sent outside a transaction, by the rule in reports.publishing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel import Session, select

from incident import clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.clock import humanize
from incident.config import Workspace
from incident.dispatch import binding, transports
from incident.dispatch.recovery import owner_id
from incident.errors import BadConfig, IncidentError
from incident.incidents import holds
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.reports import aggregates, broadcast
from incident.reports.models import DeadlineWarning
from incident.reports.publishing import RESENT, SEND_LEASE, SENDING, owner_gone


@dataclass
class Board:
    now: str
    incidents: list[dict[str, Any]]
    warnings: list[dict[str, Any]] = field(default_factory=list)
    resent: int = 0  # warnings a stopped run left in flight, sent once more by this run

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
    runs after close) or personal data due for purge or under a legal hold, each with its obligations in due
    order."""
    rows = []
    for inc in incidents.list_incidents(session):
        row: dict[str, Any] = {
            "id": inc.id,
            "title": inc.title,
            "status": inc.status,
            "assessed": False,
            "announcement": None,
            "obligations": [],
            "sending": binding.sending_note(session, ws, inc),
        }
        if assess.latest(session, inc.id) is not None:
            view = aggregates.picture(session, ws, inc)
            row |= {
                "assessed": True,
                "announcement": view.announcement,
                "obligations": [o.as_json() for o in view.obligations],
            }
        row["retention"] = holds.retention_state(session, inc, ws.retention_days)
        open_work = any(o["state"] != "done" for o in row["obligations"])
        # A closed incident stays on the board while its personal data is due for purge or under a legal hold.
        at_rest = row["retention"]["state"] in ("purge due", "held")
        if inc.status != Status.CLOSED or open_work or at_rest:
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


@dataclass
class DueWarning:
    """A warning this run owes on-call: an obligation at a level, and whether a stopped run left it in flight."""

    incident: dict[str, Any]
    obligation: dict[str, Any]
    level: str
    in_doubt: bool = False

    @property
    def key(self) -> tuple[str, str, str]:
        return self.incident["id"], self.obligation["key"], self.level


def warnings_due(session: Session, ws: Workspace, board: Board, actor: str) -> list[DueWarning]:
    """The warnings to send now: once per incident, obligation and level, plus the ones a stopped run left in
    flight (sent once more: whether they arrived is unknown). In-flight ones no longer due become unknown."""
    _, margin = oncall(ws)
    now = clock.now()
    due: list[DueWarning] = []
    for inc in board.incidents:
        for ob in inc["obligations"]:
            level = warning_level(ob, margin)
            if level is None:
                continue
            row = session.get(DeadlineWarning, (inc["id"], ob["key"], level))
            if row is None:
                due.append(DueWarning(inc, ob, level))
            elif row.state == SENDING and owner_gone(row.owner, row.lease_until, now):
                due.append(DueWarning(inc, ob, level, in_doubt=True))
    wanted = {w.key for w in due}
    stopped = select(DeadlineWarning).where(DeadlineWarning.state == SENDING)
    for row in session.exec(stopped):
        if (row.incident_id, row.key, row.level) in wanted or not owner_gone(row.owner, row.lease_until, now):
            continue
        row.state, row.owner, row.lease_until = "unknown", None, None
        session.add(row)
        _audit_in_doubt(session, row.incident_id, row.key, row.level, "not re-sent: no longer due", actor)
    for w in due:
        if w.in_doubt:
            _audit_in_doubt(session, w.incident["id"], w.obligation["key"], w.level, "re-send once", actor)
    return due


def _audit_in_doubt(session: Session, incident_id: str, key: str, level: str, action: str, actor: str) -> None:
    event = audit.Event(audit.Action.DEADLINE_WARNING_RECOVERED, {"obligation": key, "level": level, "action": action})
    audit.record(session, incident_id, event, actor)


def claim_warning(session: Session, warning: DueWarning) -> bool:
    """Record the intent to send one warning (committed before the call); False when another run got to it."""
    incident_id, key, level = warning.key
    incidents.get(session, incident_id, for_update=True)  # one claimer at a time
    row = session.get(DeadlineWarning, warning.key)
    now = clock.now()
    if row is None:
        row = DeadlineWarning(incident_id=incident_id, key=key, level=level, at=now, state=SENDING)
    elif not (warning.in_doubt and row.state == SENDING and owner_gone(row.owner, row.lease_until, now)):
        return False
    row.owner, row.lease_until = owner_id(), now + SEND_LEASE
    session.add(row)
    return True


def send_warning(ws: Workspace, warning: DueWarning) -> transports.Outcome:
    """The one call to on-call for one warning (no transaction may be open)."""
    url, _ = oncall(ws)
    title, body = _message(warning.incident, warning.obligation, warning.level)
    return broadcast.send_text(url, ".".join(warning.key), title, body, ws.path("outbox"))


def record_warning(
    session: Session, ws: Workspace, board: Board, *, warning: DueWarning, outcome: transports.Outcome, actor: str
) -> None:
    """Settle a claimed warning: sent (audited), or forgotten so that the next run sends it again."""
    url, _ = oncall(ws)
    masked = broadcast.mask_url(url)
    incident_id, key, level = warning.key
    row = session.get(DeadlineWarning, warning.key)
    assert row is not None
    reason = outcome.reason
    if warning.in_doubt:
        board.resent += 1
        reason = RESENT + (f"; {outcome.reason}" if outcome.reason else "")
    board.warnings.append(
        {
            "incident": incident_id,
            "key": key,
            "level": level,
            "target": masked,
            "outcome": outcome.status,
            "reason": reason,
        }
    )
    if outcome.status != "sent":
        session.delete(row)
        return
    row.state, row.at, row.owner, row.lease_until = "sent", clock.now(), None, None
    session.add(row)
    audit.record(
        session,
        incident_id,
        audit.Event(audit.Action.DEADLINE_WARNING, {"obligation": key, "level": level, "target": masked}),
        actor,
    )


def board(session: Session, ws: Workspace) -> Board:
    """The board at clock.now()."""
    return Board(clock.now().isoformat(), incident_rows(session, ws))
