"""Planning: one delivery per affected person, its channels in fallback order, and what a run would send."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlmodel import Session

from incident import catalog, clock
from incident.audit import coverage
from incident.config import Workspace
from incident.db import db_time
from incident.dispatch import binding, models
from incident.dispatch.models import POSTAL, DeliveryState
from incident.incidents.models import Incident
from incident.notices import models as notice_models

BATCH = 5000
INSERT_COLUMNS = (
    "incident_id",
    "person_id",
    "channels",
    "has_letter",
    "position",
    "tries",
    "state",
    "next_at",
    "unknown_resends",
    "render_id",
)


def allowed_channels(ws: Workspace, incident: Incident) -> list[str]:
    """The electronic channels the incident's playbook notifies on, in fallback order."""
    return catalog.playbook(incident.playbook, ws.root).allowed_channels


def plan(session: Session, incident: Incident, allowed: Sequence[str], render_id: int) -> int:
    """Create one delivery per affected person who has none yet (everyone on the first run, people a
    re-assessment found later), bound to the approved render: electronic channels in fallback order, then letter."""
    if models.delivery_count(session, incident.id):
        rows = binding.unplanned_channels(session, incident.id, render_id)
    else:  # the first plan: the measured path, without the look-up of existing deliveries
        rows = notice_models.channels_with_notice(session, incident.id, render_id)
    conn = session.connection()
    # The measured bulk path: driver-level executemany in batches, so the time is bound as the driver wants it.
    stamp = db_time(session, clock.now())
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    insert = f"INSERT INTO delivery ({', '.join(INSERT_COLUMNS)}) VALUES ({', '.join([mark] * len(INSERT_COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    count = 0
    for person, chans in _channels_per_person(rows):
        electronic = [c for c in allowed if c in chans]
        letter = POSTAL in chans
        state = DeliveryState.PENDING if electronic else (DeliveryState.LETTER if letter else DeliveryState.UNREACHABLE)
        batch.append((incident.id, person, ",".join(electronic), letter, 0, 0, state.value, stamp, 0, render_id))
        count += 1
        if len(batch) >= BATCH:
            conn.exec_driver_sql(insert, batch)
            batch.clear()
    if batch:
        conn.exec_driver_sql(insert, batch)
    coverage.cover(session, incident.id, "delivery")  # every row of the plan, read back once at commit
    return count


def _channels_per_person(rows: Iterable[Any]) -> Iterator[tuple[str, list[str]]]:
    """(person, [channels with a notice]) from rows of (person, channel or None) sorted by person."""
    for person, group in itertools.groupby(rows, key=lambda r: r[0]):
        yield person, [channel for _, channel in group if channel]


def dry_run(
    session: Session, ws: Workspace, incident: Incident, *, only: str | None, render_id: int | None
) -> dict[str, dict[str, int]]:
    """What dispatch would send now, per channel and variant, without writing anything: the planned deliveries,
    and (given the approved render) the first channel of each person not planned yet."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    planned = models.delivery_count(session, incident.id)
    if planned:
        out = _pending_variants(session, incident.id, only)
    if render_id is not None:
        rows = (
            binding.unplanned_variants(session, incident.id, render_id)
            if planned
            else notice_models.notice_variants(session, incident.id, render_id)
        )
        for channel, variants in _first_choice_variants(rows, allowed_channels(ws, incident), only).items():
            for variant, n in variants.items():
                out[channel][variant] += n
    return {k: dict(v) for k, v in out.items()}


def _pending_variants(session: Session, incident_id: str, only: str | None) -> dict[str, dict[str, int]]:
    """Planned: each pending delivery's current channel, counted by the variant of its notice there."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for chans, position, variant in models.pending_notice_variants(session, incident_id):
        channel = chans.split(",")[position]
        if variant.split("|")[1] == channel and (only is None or only == channel):
            out[channel][variant] += 1
    return out


def _first_choice_variants(rows: Iterable[Any], allowed: list[str], only: str | None) -> dict[str, dict[str, int]]:
    """Not planned yet: each person's first channel in fallback order, from (person, channel, variant) rows in
    person order."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, notices in itertools.groupby(rows, key=lambda r: r[0]):
        ranked = [(allowed.index(channel), channel, variant) for _, channel, variant in notices if channel in allowed]
        if ranked:
            _, channel, variant = min(ranked, key=lambda r: r[0])
            if only is None or only == channel:
                out[channel][variant] += 1
    return out
