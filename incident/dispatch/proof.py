"""Proof of delivery: every attempt exported, and per-channel counts for `incident show`."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from sqlalchemy import text
from sqlmodel import Session

from incident.rows import safe_cell

FIELDS = ("attempt", "person_id", "channel", "address", "started", "finished", "outcome", "reason", "provider",
          "notice_sha256", "worker")


def export_attempts(session: Session, incident_id: str, fmt: str, out: TextIO) -> int:
    """Stream every attempt (masked addresses only) as CSV or JSON Lines."""
    rows = session.connection().execute(text(
        "SELECT t.id, t.person_id, t.channel, t.address, t.started, t.finished, t.outcome, t.reason, t.provider, "
        "n.sha256, t.worker FROM attempt t LEFT JOIN notice n ON n.id = t.notice_id WHERE t.incident_id = :i "
        "ORDER BY t.id"), {"i": incident_id}, execution_options={"stream_results": True, "yield_per": 5000})
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(FIELDS)
    n = 0
    for row in rows:
        values = [v.isoformat() if hasattr(v, "isoformat") else v for v in row]
        if writer is not None:
            writer.writerow([safe_cell(v) for v in values])
        else:
            out.write(json.dumps(dict(zip(FIELDS, values, strict=True)), ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def channel_summary(session: Session, incident_id: str) -> dict[str, Any]:
    """Sent / failed / pending / unreachable per channel, and deliveries per state."""
    conn = session.connection()
    per_channel: dict[str, dict[str, int]] = {}
    for channel, outcome, count in conn.execute(text(
            "SELECT channel, outcome, COUNT(*) FROM attempt WHERE incident_id = :i GROUP BY channel, outcome"),
            {"i": incident_id}):
        per_channel.setdefault(channel, {})[outcome] = int(count)
    pending: dict[str, int] = {}
    for chans, position, count in conn.execute(text(
            "SELECT channels, position, COUNT(*) FROM delivery WHERE incident_id = :i AND state = 'pending' "
            "GROUP BY channels, position"), {"i": incident_id}):
        channel = chans.split(",")[position]
        pending[channel] = pending.get(channel, 0) + int(count)
    for channel, count in pending.items():
        per_channel.setdefault(channel, {})["pending"] = count
    states = {s: int(c) for s, c in conn.execute(text(
        "SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"), {"i": incident_id})}
    resends = conn.execute(text("SELECT COALESCE(SUM(unknown_resends), 0) FROM delivery WHERE incident_id = :i"),
                           {"i": incident_id}).scalar_one()
    return {"channels": per_channel, "deliveries": states, "unknown_resent": int(resends)}
