"""Planning: one delivery per affected person, its channels in fallback order, and what a run would send."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from incident import catalog, clock
from incident.config import Workspace
from incident.incidents.models import Incident

BATCH = 5000


def allowed_channels(ws: Workspace, incident: Incident) -> list[str]:
    """The electronic channels the incident's playbook notifies on, in fallback order."""
    return catalog.playbook(incident.playbook, ws.root).allowed_channels


def plan(session: Session, incident: Incident, allowed: Sequence[str]) -> int:
    """Create one delivery per affected person (once): electronic channels in fallback order, then letter."""
    conn = session.connection()
    if conn.execute(text("SELECT COUNT(*) FROM delivery WHERE incident_id = :i"), {"i": incident.id}).scalar_one():
        return 0
    now = clock.now()
    rows = conn.execute(
        text(
            "SELECT a.person_id, n.channel FROM affected a LEFT JOIN notice n ON n.incident_id = a.incident_id "
            "AND n.person_id = a.person_id WHERE a.incident_id = :i ORDER BY a.person_id, n.id"
        ),
        {"i": incident.id},
        execution_options={"stream_results": True, "yield_per": BATCH},
    )
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    insert = (
        f"INSERT INTO delivery (incident_id, person_id, channels, has_letter, position, tries, state, next_at, "
        f"unknown_resends) VALUES ({', '.join([mark] * 9)})"
    )
    stamp = now if session.get_bind().dialect.name != "sqlite" else now.replace(tzinfo=None)
    batch: list[tuple[Any, ...]] = []
    count = 0
    for person, chans in _channels_per_person(rows):
        electronic = [c for c in allowed if c in chans]
        letter = "letter" in chans
        state = "pending" if electronic else ("letter" if letter else "unreachable")
        batch.append((incident.id, person, ",".join(electronic), letter, 0, 0, state, stamp, 0))
        count += 1
        if len(batch) >= BATCH:
            conn.exec_driver_sql(insert, batch)
            batch.clear()
    if batch:
        conn.exec_driver_sql(insert, batch)
    return count


def _channels_per_person(rows: Any) -> Any:
    """(person, [channels with a notice]) from rows of (person, channel or None) sorted by person."""
    for person, group in itertools.groupby(rows, key=lambda r: r[0]):
        yield person, [channel for _, channel in group if channel]


def dry_run(session: Session, ws: Workspace, incident: Incident, only: str | None) -> dict[str, dict[str, int]]:
    """What dispatch would send now, per channel and variant, without writing anything."""
    planned = (
        session.connection()
        .execute(text("SELECT COUNT(*) FROM delivery WHERE incident_id = :i"), {"i": incident.id})
        .scalar_one()
    )
    if planned:
        out = _pending_variants(session, incident.id, only)
    else:
        out = _first_choice_variants(session, incident.id, allowed_channels(ws, incident), only)
    return {k: dict(v) for k, v in out.items()}


def _pending_variants(session: Session, incident_id: str, only: str | None) -> dict[str, dict[str, int]]:
    """Planned: each pending delivery's current channel, counted by the variant of its notice there."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = session.connection().execute(
        text(
            "SELECT d.channels, d.position, n.variant FROM delivery d JOIN notice n ON n.incident_id = "
            "d.incident_id AND n.person_id = d.person_id WHERE d.incident_id = :i AND d.state = 'pending'"
        ),
        {"i": incident_id},
    )
    for chans, position, variant in rows:
        channel = chans.split(",")[position]
        if variant.split("|")[1] == channel and (only is None or only == channel):
            out[channel][variant] += 1
    return out


def _first_choice_variants(
    session: Session, incident_id: str, allowed: list[str], only: str | None
) -> dict[str, dict[str, int]]:
    """Nothing planned yet: each person's first channel in fallback order, streamed in person order."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    rows = session.connection().execute(
        text("SELECT person_id, channel, variant FROM notice WHERE incident_id = :i ORDER BY person_id"),
        {"i": incident_id},
        execution_options={"stream_results": True, "yield_per": BATCH},
    )
    for _, notices in itertools.groupby(rows, key=lambda r: r[0]):
        ranked = [(allowed.index(channel), channel, variant) for _, channel, variant in notices if channel in allowed]
        if ranked:
            _, channel, variant = min(ranked, key=lambda r: r[0])
            if only is None or only == channel:
                out[channel][variant] += 1
    return out
