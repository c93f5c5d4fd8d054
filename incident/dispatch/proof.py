"""Proof of delivery: every attempt exported, and per-channel counts for `incident show`."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from sqlalchemy import bindparam, text
from sqlmodel import Session

from incident.files import safe_cell

FIELDS = (
    "attempt",
    "person_id",
    "channel",
    "address",
    "started",
    "finished",
    "outcome",
    "reason",
    "provider",
    "notice_sha256",
    "worker",
)


def export_attempts(session: Session, incident_id: str, fmt: str, out: TextIO) -> int:
    """Stream every attempt (masked addresses only) as CSV or JSON Lines."""
    rows = session.connection().execute(
        text(
            "SELECT t.id, t.person_id, t.channel, t.address, t.started, t.finished, t.outcome, t.reason, t.provider, "
            "n.sha256, t.worker FROM attempt t LEFT JOIN notice n ON n.id = t.notice_id WHERE t.incident_id = :i "
            "ORDER BY t.id"
        ),
        {"i": incident_id},
        execution_options={"stream_results": True, "yield_per": 5000},
    )
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
    for channel, outcome, count in conn.execute(
        text("SELECT channel, outcome, COUNT(*) FROM attempt WHERE incident_id = :i GROUP BY channel, outcome"),
        {"i": incident_id},
    ):
        per_channel.setdefault(channel, {})[outcome] = int(count)
    pending: dict[str, int] = {}
    for chans, position, count in conn.execute(
        text(
            "SELECT channels, position, COUNT(*) FROM delivery WHERE incident_id = :i AND state = 'pending' "
            "GROUP BY channels, position"
        ),
        {"i": incident_id},
    ):
        channel = chans.split(",")[position]
        pending[channel] = pending.get(channel, 0) + int(count)
    for channel, count in pending.items():
        per_channel.setdefault(channel, {})["pending"] = count
    states = {
        s: int(c)
        for s, c in conn.execute(
            text("SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"), {"i": incident_id}
        )
    }
    resends = conn.execute(
        text("SELECT COALESCE(SUM(unknown_resends), 0) FROM delivery WHERE incident_id = :i"), {"i": incident_id}
    ).scalar_one()
    return {"channels": per_channel, "deliveries": states, "unknown_resent": int(resends)}


# ---- attempts in the audit chain ------------------------------------------------------------------
# Every settled attempt is covered by exactly one audit entry ("attempts") holding the digest of its row,
# so editing, deleting or forging an attempt row breaks verification.

ATTEMPT_COLUMNS = (
    "id",
    "person_id",
    "notice_id",
    "channel",
    "address",
    "started",
    "finished",
    "outcome",
    "reason",
    "provider",
    "worker",
)


def _canonical(row: Any) -> list[Any]:
    return [v.isoformat() if hasattr(v, "isoformat") else v for v in row]


def attempts_digest(session: Session, incident_id: str, ids: list[int]) -> str:
    """sha256 over the stored rows of these attempts, in id order."""
    import hashlib

    from sqlalchemy import select

    from incident.dispatch.models import Attempt

    t = Attempt.__table__
    digest = hashlib.sha256()
    for start in range(0, len(ids), 500):
        chunk = sorted(ids)[start : start + 500]
        rows = session.connection().execute(
            select(*(t.c[c] for c in ATTEMPT_COLUMNS))
            .where(t.c.incident_id == incident_id, t.c.id.in_(chunk))
            .order_by(t.c.id)
        )
        for row in rows:
            digest.update(json.dumps(_canonical(row), ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def record_attempts(session: Session, incident_id: str, ids: list[int], actor: str) -> None:
    """Append the audit entry that covers these newly settled attempts."""
    from incident.audit import chain as audit

    if ids:
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.ATTEMPTS, {"ids": sorted(ids), "digest": attempts_digest(session, incident_id, ids)}
            ),
            actor,
        )


def verify_attempts(session: Session, incident_id: str) -> list[str]:
    """Problems with the attempt rows against the audit chain (empty when every attempt is covered)."""
    from incident.audit import chain as audit

    covered: set[int] = set()
    problems: list[str] = []
    for entry in audit.entries(session, incident_id):
        if entry.action != "attempts":
            continue
        payload = json.loads(entry.payload)
        ids = [int(i) for i in payload["ids"]]
        found = {
            int(r[0])
            for r in session.connection().execute(
                text("SELECT id FROM attempt WHERE incident_id = :i AND id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"i": incident_id, "ids": ids},
            )
        }
        if found != set(ids):
            problems.append(f"audit seq {entry.seq}: attempt rows {sorted(set(ids) - found)[:5]} were deleted")
        elif attempts_digest(session, incident_id, ids) != payload["digest"]:
            problems.append(f"audit seq {entry.seq}: attempt rows {ids[0]}..{ids[-1]} were edited")
        covered.update(ids)
    extra = [
        int(r[0])
        for r in session.connection().execute(
            text("SELECT id FROM attempt WHERE incident_id = :i AND outcome <> 'in-flight' ORDER BY id"),
            {"i": incident_id},
        )
        if int(r[0]) not in covered
    ]
    if extra:
        problems.append(f"attempt rows {extra[:5]} are not covered by the audit chain (inserted?)")
    return problems
