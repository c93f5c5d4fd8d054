"""Proof of delivery: every attempt exported, and per-channel counts for `incident show`."""

from __future__ import annotations

import csv
import hashlib
import json
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import bindparam, text
from sqlmodel import Session

from incident.audit import chain as audit
from incident.dispatch import models
from incident.dispatch.models import AttemptOutcome, DeliveryState
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
    "manifest_sha256",  # the render the notice belongs to: the manifest legal approved
    "approved_by",
)


def export_attempts(session: Session, incident_id: str, *, fmt: str, out: IO[str]) -> int:
    """Stream every attempt (masked addresses only) as CSV or JSON Lines."""
    writer = csv.writer(out) if fmt == "csv" else None
    if writer is not None:
        writer.writerow(FIELDS)
    n = 0
    for row in models.attempts_with_notice_sha(session, incident_id):
        values = _canonical(row)
        if writer is not None:
            writer.writerow([safe_cell(v) for v in values])
        else:
            out.write(json.dumps(dict(zip(FIELDS, values, strict=True)), ensure_ascii=False, default=str) + "\n")
        n += 1
    return n


def channel_summary(session: Session, incident_id: str) -> dict[str, Any]:
    """Sent / failed / pending / unreachable per channel, and deliveries per state."""
    per_channel = models.attempts_by_channel(session, incident_id)
    for channel, count in models.pending_by_channel(session, incident_id).items():
        per_channel.setdefault(channel, {})[DeliveryState.PENDING.value] = count
    return {
        "channels": per_channel,
        "deliveries": models.counts_by_state(session, incident_id),
        "unknown_resent": models.unknown_resends(session, incident_id),
    }


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
    t = models.ATTEMPT
    digest = hashlib.sha256()
    for start in range(0, len(ids), 500):
        chunk = sorted(ids)[start : start + 500]
        rows = session.connection().execute(
            sa.select(*(t.c[c] for c in ATTEMPT_COLUMNS))
            .where(t.c.incident_id == incident_id, t.c.id.in_(chunk))
            .order_by(t.c.id)
        )
        for row in rows:
            digest.update(json.dumps(_canonical(row), ensure_ascii=False).encode() + b"\n")
    return digest.hexdigest()


def record_attempts(session: Session, incident_id: str, ids: list[int], *, actor: str) -> None:
    """Append the audit entry that covers these newly settled attempts."""
    if ids:
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.ATTEMPTS, {"ids": sorted(ids), "digest": attempts_digest(session, incident_id, ids)}
            ),
            actor,
        )


def forget_attempts(session: Session, incident_id: str, ids: list[int], *, reason: str, actor: str) -> None:
    """Append the audit entry saying these attempt rows were deleted on purpose (a purge): verification then
    expects them absent instead of reporting them deleted."""
    # The one place a deletion is told to the chain, so it can become audit's generic forget() at merge.
    if ids:
        audit.record(
            session,
            incident_id,
            audit.Event(audit.Action.ATTEMPTS_FORGOTTEN, {"ids": sorted(ids), "reason": reason}),
            actor,
        )


def verify_attempts(session: Session, incident_id: str) -> list[str]:
    """Problems with the attempt rows against the audit chain (empty when every attempt is covered)."""
    chain = audit.entries(session, incident_id)
    forgotten = {
        int(i) for e in chain if e.action == audit.Action.ATTEMPTS_FORGOTTEN for i in json.loads(e.payload)["ids"]
    }
    covered: set[int] = set()
    problems: list[str] = []
    for entry in chain:
        if entry.action != audit.Action.ATTEMPTS:
            continue
        payload = json.loads(entry.payload)
        ids = [int(i) for i in payload["ids"]]
        found = _present(session, incident_id, ids)
        expected = set(ids) - forgotten
        if found - expected:
            problems.append(
                f"audit seq {entry.seq}: attempt rows {sorted(found - expected)[:5]} were forgotten "
                "by a purge but are back (inserted?)"
            )
        elif found != expected:
            problems.append(f"audit seq {entry.seq}: attempt rows {sorted(expected - found)[:5]} were deleted")
        elif expected == set(ids) and attempts_digest(session, incident_id, ids) != payload["digest"]:
            problems.append(f"audit seq {entry.seq}: attempt rows {ids[0]}..{ids[-1]} were edited")
        covered.update(ids)
    extra = [
        int(r[0])
        for r in session.connection().execute(
            text("SELECT id FROM attempt WHERE incident_id = :i AND outcome <> :in_flight ORDER BY id"),
            {"i": incident_id, "in_flight": AttemptOutcome.IN_FLIGHT},
        )
        if int(r[0]) not in covered
    ]
    if extra:
        problems.append(f"attempt rows {extra[:5]} are not covered by the audit chain (inserted?)")
    return problems


def _present(session: Session, incident_id: str, ids: list[int]) -> set[int]:
    return {
        int(r[0])
        for r in session.connection().execute(
            text("SELECT id FROM attempt WHERE incident_id = :i AND id IN :ids").bindparams(
                bindparam("ids", expanding=True)
            ),
            {"i": incident_id, "ids": ids},
        )
    }
