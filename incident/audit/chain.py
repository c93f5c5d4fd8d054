"""The tamper-evident audit trail: one hash chain per incident (and one for the workspace)."""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Session, col, select

from incident import clock
from incident.audit.models import AuditEntry, AuditHead

WORKSPACE_CHAIN = "workspace"


GENESIS = "0" * 64


class Action(StrEnum):
    """Every kind of event the chain records; the value is what the chain stores (and an export shows)."""

    WORKSPACE_CREATED = "workspace-created"
    SCHEMA_UPGRADED = "schema-upgraded"
    INVENTORY_IMPORTED = "inventory-imported"
    OPENED = "opened"
    LOGGED = "logged"
    STATUS = "status"
    ASSESSED = "assessed"
    SETTLED = "settled"
    NOTICES_RENDERED = "notices-rendered"
    NOTICES_APPROVED = "notices-approved"
    NOTICES_REJECTED = "notices-rejected"
    DISPATCH_PLANNED = "dispatch-planned"
    DISPATCH_RECOVERED = "dispatch-recovered"
    DISPATCH_HELD_RELEASED = "dispatch-held-released"
    DISPATCH_RUN = "dispatch-run"
    DISPATCH_REBOUND = "dispatch-rebound"  # deliveries not yet on their way moved to a newly approved render
    DISPATCH_CANCELLED = "dispatch-cancelled"  # deliveries of people a re-assessment found no longer affected
    ATTEMPTS = "attempts"
    LETTERS_WRITTEN = "letters-written"
    ANNOUNCEMENT_RENDERED = "announcement-rendered"
    ANNOUNCEMENT_APPROVED = "announcement-approved"
    ANNOUNCEMENT_REJECTED = "announcement-rejected"
    ANNOUNCEMENT_PUBLISHED = "announcement-published"
    ANNOUNCEMENT_SEND_RECOVERED = "announcement-send-recovered"
    REPORT_GENERATED = "report-generated"
    REPORT_SUBMITTED = "report-submitted"
    DEADLINE_WARNING = "deadline-warning"
    DEADLINE_WARNING_RECOVERED = "deadline-warning-recovered"
    HOLD_PLACED = "hold-placed"
    HOLD_RELEASED = "hold-released"
    PURGED = "purged"
    ATTEMPTS_FORGOTTEN = "attempts-forgotten"


@dataclass(frozen=True)
class Event:
    """A typed audit event: one of the known actions and its facts (no personal data)."""

    action: Action | str  # given as a member; a string must name one
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        # A misspelt action would be a chain entry no reader knows: refuse it where it is written.
        object.__setattr__(self, "action", Action(self.action))


def current_actor(explicit: str | None = None) -> str:
    """Return who acts: --actor, INCIDENT_ACTOR, or the OS user."""
    if explicit:
        return explicit
    if os.environ.get("INCIDENT_ACTOR"):
        return os.environ["INCIDENT_ACTOR"]
    try:
        return getpass.getuser()
    except Exception:
        return f"uid:{os.getuid()}"


def link_hash(chain: str, seq: int, at: datetime, actor: str, action: str, payload: str, prev: str) -> str:
    """Hash one entry together with the hash of the entry before it."""
    body = json.dumps(
        [chain, seq, clock.as_utc(at).isoformat(), actor, action, payload, prev],
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def record(session: Session, chain: str, event: Event, actor: str) -> AuditEntry:
    """Append `event` to `chain`, locking the chain head so concurrent writers serialise."""
    head = session.exec(select(AuditHead).where(AuditHead.chain == chain).with_for_update()).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
    at = clock.now()
    payload = json.dumps(event.payload, ensure_ascii=False, sort_keys=True, default=str)
    digest = link_hash(chain, seq, at, actor, Action(event.action).value, payload, prev)
    entry = AuditEntry(
        chain=chain,
        seq=seq,
        at=at,
        actor=actor,
        action=Action(event.action).value,
        payload=payload,
        prev_hash=prev,
        hash=digest,
    )
    session.add(entry)
    if head is None:
        session.add(AuditHead(chain=chain, seq=seq, hash=digest))
    else:
        head.seq, head.hash = seq, digest
        session.add(head)
    session.flush()
    return entry


@dataclass(frozen=True)
class Verdict:
    """The result of walking a chain: ok, or the first bad entry and why."""

    chain: str
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None


def verify_rows(chain: str, rows: Iterable[dict[str, Any]], head: dict[str, Any] | None) -> Verdict:
    """Walk entries in seq order and report the first one whose link does not hold."""
    prev, expected_seq, count = GENESIS, 1, 0
    for row in rows:
        count += 1
        seq = row["seq"]
        if seq != expected_seq:
            problem = "entry missing before it" if seq > expected_seq else "entry out of order or inserted"
            return Verdict(chain, count, False, seq, f"seq {seq}: {problem} (expected seq {expected_seq})")
        if row["prev_hash"] != prev:
            return Verdict(chain, count, False, seq, f"seq {seq}: does not link to the entry before it")
        at = row["at"] if isinstance(row["at"], datetime) else clock.parse_when(row["at"])
        digest = link_hash(chain, seq, at, row["actor"], row["action"], row["payload"], prev)
        if digest != row["hash"]:
            return Verdict(chain, count, False, seq, f"seq {seq}: content does not match its hash (edited)")
        prev, expected_seq = digest, seq + 1
    last = expected_seq - 1
    if head is not None and head["seq"] > last:
        return Verdict(
            chain,
            count,
            False,
            last + 1,
            f"chain ends at seq {last} but its head says seq {head['seq']}: entries were deleted from the end",
        )
    if head is not None and head["seq"] < last:
        return Verdict(
            chain,
            count,
            False,
            head["seq"] + 1,
            f"seq {head['seq'] + 1}: entry after the chain head (seq {head['seq']}): inserted",
        )
    if head is not None and head["hash"] != prev:
        return Verdict(chain, count, False, last, f"seq {last}: does not match the chain head (replaced)")
    return Verdict(chain, count, True, head_hash=prev)


def _rows(session: Session, chain: str) -> Iterator[dict[str, Any]]:
    stmt = select(AuditEntry).where(AuditEntry.chain == chain).order_by(col(AuditEntry.seq), col(AuditEntry.id))
    for e in session.exec(stmt):
        yield {
            "seq": e.seq,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "payload": e.payload,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }


def verify(session: Session, chain: str) -> Verdict:
    """Verify one chain in the database, including its recorded head."""
    head = session.get(AuditHead, chain)
    head_row = {"seq": head.seq, "hash": head.hash} if head else None
    verdict = verify_rows(chain, _rows(session, chain), head_row)
    if head is None and verdict.ok and verdict.entries:
        # A chain's head is written with its first entry: without it, truncating the chain would go unseen.
        return Verdict(
            chain,
            verdict.entries,
            False,
            verdict.entries,
            f"seq {verdict.entries}: the chain head is missing (deleted)",
        )
    return verdict


def chains(session: Session) -> list[str]:
    """List every chain that has entries or a head."""
    names = set(session.exec(select(AuditHead.chain)).all()) | set(
        session.exec(select(AuditEntry.chain).distinct()).all()
    )
    return sorted(names)


def entries(session: Session, chain: str) -> list[AuditEntry]:
    """Return a chain's entries in order (chains are short: one per state change)."""
    return list(session.exec(select(AuditEntry).where(AuditEntry.chain == chain).order_by(col(AuditEntry.seq))))


def export_chain(session: Session, chain: str) -> dict[str, Any]:
    """The whole chain with its head hash, for a regulator; verifiable without the database."""
    head = session.get(AuditHead, chain)
    rows = [
        {
            "seq": e.seq,
            "at": clock.as_utc(e.at).isoformat(),
            "actor": e.actor,
            "action": e.action,
            "payload": e.payload,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in entries(session, chain)
    ]
    return {
        "format": "incident-audit-chain/1",
        "chain": chain,
        "exported_at": clock.now().isoformat(),
        "head": {"seq": head.seq, "hash": head.hash} if head else None,
        "algorithm": "sha256 over JSON [chain, seq, at, actor, action, payload, prev_hash]",
        "entries": rows,
    }


def verify_export(data: dict[str, Any]) -> Verdict:
    """Verify an exported chain file on its own."""
    if data.get("format") != "incident-audit-chain/1":
        return Verdict(str(data.get("chain")), 0, False, None, "not an incident audit export")
    return verify_rows(str(data["chain"]), iter(data.get("entries", [])), data.get("head"))
