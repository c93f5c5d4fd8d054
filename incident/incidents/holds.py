"""Legal holds and the retention clock: when an incident's personal data may be purged, and what stops it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from incident import clock
from incident.audit import chain as audit
from incident.errors import IllegalTransition, IncidentError, InvalidArgument
from incident.incidents.models import Incident, LegalHold, Status, active_hold, get, purge_of


def _reason(text: str) -> str:
    if not text or not text.strip():
        raise InvalidArgument("--reason: say why (a court order, a regulator's request, a complaint, ...)")
    return text.strip()


def _digest(text: str) -> str:
    # The chain keeps a digest of the reason, not the text: free text may name a person, and a purge keeps the chain.
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def place_hold(session: Session, incident_id: str, reason: str, actor: str) -> LegalHold:
    """Put the incident under a legal hold: its personal data is kept, whatever the retention period says."""
    reason = _reason(reason)
    incident = get(session, incident_id, for_update=True)
    if purge_of(session, incident_id) is not None:
        raise IllegalTransition(f"{incident_id} was already purged: there is no personal data left to hold")
    held = active_hold(session, incident_id)
    if held is not None:
        raise IllegalTransition(f"{incident_id} is already under a legal hold ({describe_hold(held)})")
    hold = LegalHold(incident_id=incident.id, placed_at=clock.now(), placed_by=actor, reason=reason)
    session.add(hold)
    session.flush()
    payload = {"hold": hold.id, "reason_sha256": _digest(reason)}
    audit.record(session, incident_id, audit.Event(audit.Action.HOLD_PLACED, payload), actor)
    return hold


def release_hold(session: Session, incident_id: str, reason: str, actor: str) -> LegalHold:
    """Release the incident's legal hold: the retention period decides again when its data may be purged."""
    reason = _reason(reason)
    get(session, incident_id, for_update=True)
    hold = active_hold(session, incident_id)
    if hold is None:
        raise IllegalTransition(f"{incident_id} is not under a legal hold: there is nothing to release")
    hold.released_at, hold.released_by, hold.release_reason = clock.now(), actor, reason
    session.add(hold)
    payload = {"hold": hold.id, "reason_sha256": _digest(reason)}
    audit.record(session, incident_id, audit.Event(audit.Action.HOLD_RELEASED, payload), actor)
    return hold


def describe_hold(hold: LegalHold) -> str:
    """One line: since when, by whom and why an incident is held."""
    return f"since {hold.placed_at.isoformat(timespec='seconds')} by {hold.placed_by}: {hold.reason}"


def purge_after(incident: Incident, days: int) -> datetime | None:
    """When the retention period of a closed incident ends (None while it is not closed)."""
    if incident.closed_at is None:
        return None
    return incident.closed_at + timedelta(days=days)


def purge_refusal(session: Session, incident: Incident, days: int) -> str | None:
    """Why the incident's personal data may not be purged now, or None when it may."""
    if Status(incident.status) != Status.CLOSED or incident.closed_at is None:
        return (
            f"{incident.id} is '{incident.status}', not closed: its personal data is still needed "
            f"(purge only after `incident close {incident.id}` and the retention period)"
        )
    hold = active_hold(session, incident.id)
    if hold is not None:
        return (
            f"{incident.id} is under a legal hold ({describe_hold(hold)}): release it first with "
            f"`incident hold {incident.id} --release --reason TEXT`"
        )
    until = purge_after(incident, days)
    assert until is not None  # closed: it has a closing time
    if clock.now() < until:
        return (
            f"{incident.id} is kept until {until.isoformat(timespec='seconds')}: {days} days after it was closed "
            f"(incident.toml [retention] days); nothing was purged"
        )
    return None


def retention_state(session: Session, incident: Incident, days: int) -> dict[str, Any]:
    """Where the incident's personal data stands: kept (until when), due for purge, held, or purged."""
    hold = active_hold(session, incident.id)
    done = purge_of(session, incident.id)
    until = purge_after(incident, days)
    if done is not None:
        state = "purged"
    elif hold is not None:
        state = "held"
    elif until is None:
        state = "in use"
    else:
        state = "purge due" if clock.now() >= until else "kept"
    return {
        "state": state,
        "days": days,
        "purge_after": until.isoformat() if until else None,
        "hold": None
        if hold is None
        else {"since": hold.placed_at.isoformat(), "by": hold.placed_by, "reason": hold.reason},
        "purged": None if done is None else {"at": done.at.isoformat(), "by": done.actor},
    }


def refuse_if_purged(session: Session, incident_id: str) -> None:
    """Refuse to export people of an incident whose personal data was purged (only counts are left)."""
    done = purge_of(session, incident_id)
    if done is not None:
        raise IncidentError(
            f"{incident_id}'s personal data was purged on {done.at.isoformat(timespec='seconds')}: only the counts "
            f"are left (`incident show {incident_id}`)"
        )
