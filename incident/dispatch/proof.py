"""Proof of delivery: every attempt exported, and per-channel counts for `incident show`.

The audit chain covers every attempt row from its claim on (audit.coverage, declared in dispatch.models)."""

from __future__ import annotations

import csv
import json
from typing import IO, Any

from sqlmodel import Session

from incident import clock
from incident.dispatch import models, postal
from incident.dispatch.models import DeliveryState
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
    states = models.counts_by_state(session, incident_id)
    return {
        "channels": per_channel,
        "deliveries": states,
        "unknown_resent": models.unknown_resends(session, incident_id),
        # Told: delivered electronically or a letter posted; a written or returned letter told nobody.
        "notified": states.get(DeliveryState.SENT, 0) + states.get(DeliveryState.POSTED, 0),
        "unreachable": states.get(DeliveryState.UNREACHABLE, 0) + states.get(DeliveryState.RETURNED, 0),
        "letters": {
            "queued": states.get(DeliveryState.LETTER, 0),
            "written": states.get(DeliveryState.WRITTEN, 0),
            "posted": states.get(DeliveryState.POSTED, 0),
            "returned": states.get(DeliveryState.RETURNED, 0),
            "batches": [
                {
                    "batch": b.id,
                    "letters": b.letters,
                    "written_at": clock.as_utc(b.written_at).isoformat(),
                    "posted_at": clock.as_utc(b.posted_at).isoformat() if b.posted_at else None,
                }
                for b in postal.batches(session, incident_id)
            ],
        },
    }


def _canonical(row: Any) -> list[Any]:
    return [v.isoformat() if hasattr(v, "isoformat") else v for v in row]
