"""The tamper-evident audit trail: one hash chain per incident (and one for the workspace)."""

from __future__ import annotations

import getpass
import hashlib
import hmac
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
FORMAT = "incident-audit-chain/2"  # v2: entries say what they cover (audit.coverage) and may carry an HMAC tag
FORMATS = ("incident-audit-chain/1", FORMAT)  # a v1 export still verifies: the links are computed the same way
KEY_ENV = "INCIDENT_AUDIT_KEY"  # the HMAC key: from the environment only, never stored in the workspace


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
    LETTERS_POSTED = "letters-posted"  # the mail house confirmed a batch went into the post
    LETTERS_RETURNED = "letters-returned"  # the post brought letters back: their people are unreachable
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
    COVERED = "covered"  # rows changed by a unit of work that recorded no other event (audit.coverage)
    BASELINE = "coverage-baseline"  # every covered row of an incident, once, when a v1 workspace is upgraded


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


def audit_key() -> bytes | None:
    """The HMAC key from INCIDENT_AUDIT_KEY, or None when it is not set."""
    raw = os.environ.get(KEY_ENV)
    return raw.encode("utf-8") if raw else None


def entry_tag(key: bytes, digest: str) -> str:
    """The HMAC-SHA256 tag of one entry: over its link hash, which already covers the entry and its past."""
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def _dump(payload: dict[str, Any]) -> str:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)


LAST_ENTRY = "incident.audit.last_entry"  # session.info: the entry each chain got last in this unit of work


def record(session: Session, chain: str, event: Event, actor: str) -> AuditEntry:
    """Append `event` to `chain`, locking the chain head so concurrent writers serialise."""
    head = session.exec(select(AuditHead).where(AuditHead.chain == chain).with_for_update()).first()
    seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
    at = clock.now()
    payload = _dump(event.payload)
    digest = link_hash(chain, seq, at, actor, Action(event.action).value, payload, prev)
    key = audit_key()
    entry = AuditEntry(
        chain=chain,
        seq=seq,
        at=at,
        actor=actor,
        action=Action(event.action).value,
        payload=payload,
        prev_hash=prev,
        hash=digest,
        tag=entry_tag(key, digest) if key else None,
    )
    session.add(entry)
    if head is None:
        session.add(AuditHead(chain=chain, seq=seq, hash=digest))
    else:
        head.seq, head.hash = seq, digest
        session.add(head)
    session.flush()
    session.info.setdefault(LAST_ENTRY, {})[chain] = entry
    return entry


def amend(session: Session, entry: AuditEntry, extra: dict[str, Any]) -> None:
    """Add facts to an entry written in this same, uncommitted unit of work (its head is still locked by it):
    the coverage of the rows the unit of work changed rides on the event that changed them."""
    head = session.get(AuditHead, entry.chain)
    assert head is not None and head.seq == entry.seq  # the head lock is held until commit: nothing came after
    entry.payload = _dump(json.loads(entry.payload) | extra)
    entry.hash = link_hash(entry.chain, entry.seq, entry.at, entry.actor, entry.action, entry.payload, entry.prev_hash)
    key = audit_key()
    entry.tag = entry_tag(key, entry.hash) if key else None
    head.hash = entry.hash
    session.add_all([entry, head])
    session.flush()


def hand_out(session: Session, chain: str) -> tuple[int, str] | None:
    """The head a document prints (a report, the announcement): an entry this unit of work wrote stays as it is
    from now on, so the printed hash is the one the chain keeps (its coverage rides on a later entry)."""
    session.info.get(LAST_ENTRY, {}).pop(chain, None)
    return head_of(session, chain)


def head_line(chain: str, head: tuple[int, str] | None, lang: str) -> str:
    """The sentence a handed-out document carries: the chain head before its own entry, and how to check it."""
    if head is None:
        return ""
    seq, digest = head
    check = f"`incident audit verify {chain} --head {seq}:{digest}`"
    if lang == "zh-CN":
        return f"审计链头（本文件生成之前的最后一条）：序号 {seq}，sha256 {digest}。核验：{check}"
    return f"Audit chain head before this document was generated: seq {seq}, sha256 {digest}. Check: {check}"


def head_of(session: Session, chain: str) -> tuple[int, str] | None:
    """The chain's newest (seq, hash): what a report or the announcement hands out."""
    head = session.get(AuditHead, chain)
    return (head.seq, head.hash) if head else None


@dataclass(frozen=True)
class Verdict:
    """The result of walking a chain: ok, or the first bad entry and why."""

    chain: str
    entries: int
    ok: bool
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None
    notes: tuple[str, ...] = ()
    head_seq: int | None = None


def verify_rows(
    chain: str, rows: Iterable[dict[str, Any]], head: dict[str, Any] | None, key: bytes | None = None
) -> Verdict:
    """Walk entries in seq order and report the first one whose link (or, given the key, tag) does not hold."""
    prev, expected_seq, count, tagged_from = GENESIS, 1, 0, None
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
        if key is not None and (row.get("tag") or tagged_from is not None):
            tagged_from = seq if tagged_from is None else tagged_from
            if not row.get("tag"):
                return Verdict(chain, count, False, seq, f"seq {seq}: no HMAC tag after tagged seq {tagged_from}")
            if not hmac.compare_digest(str(row["tag"]), entry_tag(key, digest)):
                return Verdict(chain, count, False, seq, f"seq {seq}: HMAC tag does not match (not the key's)")
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
    if key is None:
        notes = (f"HMAC tags not checked ({KEY_ENV} not set)",)
    elif tagged_from is None:
        notes = ("no entry carries an HMAC tag (written without the key)",)
    else:
        notes = (f"HMAC tags checked from seq {tagged_from}",)
    return Verdict(chain, count, True, head_hash=prev, notes=notes, head_seq=last)


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
            "tag": e.tag,
        }


def verify(session: Session, chain: str) -> Verdict:
    """Verify one chain in the database, including its recorded head; a missing or empty chain fails."""
    head = session.get(AuditHead, chain)
    head_row = {"seq": head.seq, "hash": head.hash} if head else None
    verdict = verify_rows(chain, _rows(session, chain), head_row, audit_key())
    if verdict.ok and not verdict.entries:
        # Every incident's chain starts when it is opened: no chain at all means it was deleted.
        return Verdict(chain, 0, False, None, "no audit chain (deleted?)")
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


def holds(session: Session, chain: str, seq: int, digest: str) -> bool:
    """Whether the chain still has this entry at this seq (a head handed out earlier)."""
    found = session.exec(select(AuditEntry).where(AuditEntry.chain == chain, AuditEntry.seq == seq)).first()
    return found is not None and _same_hash(found.hash, digest)


def holds_in(entries: Iterable[dict[str, Any]], seq: int, digest: str) -> bool:
    """Whether an exported chain's entries still have this entry at this seq (a head handed out earlier)."""
    return any(e.get("seq") == seq and _same_hash(e.get("hash"), digest) for e in entries)


def rewritten(seq: int, digest: str) -> str:
    """What verify says when a head handed out earlier is no longer in the chain."""
    return f"seq {seq} is not the handed-out head {digest} (history was rewritten)"


def _same_hash(found: object, digest: str) -> bool:
    return isinstance(found, str) and hmac.compare_digest(found, digest.lower())


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
            "tag": e.tag,
        }
        for e in entries(session, chain)
    ]
    return {
        "format": FORMAT,
        "chain": chain,
        "exported_at": clock.now().isoformat(),
        "head": {"seq": head.seq, "hash": head.hash} if head else None,
        "algorithm": "sha256 over JSON [chain, seq, at, actor, action, payload, prev_hash]",
        "entries": rows,
    }


def verify_export(data: dict[str, Any]) -> Verdict:
    """Verify an exported chain file on its own; without its head (or entries) it proves nothing: invalid."""
    name = str(data.get("chain"))
    if data.get("format") not in FORMATS:
        return Verdict(name, 0, False, None, "not an incident audit export")
    head, rows = data.get("head"), data.get("entries")
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int) or not isinstance(head.get("hash"), str):
        return Verdict(name, 0, False, None, "the export has no chain head: it cannot be verified (invalid)")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        return Verdict(name, 0, False, None, "the export holds no entries: it cannot be verified (invalid)")
    try:
        return verify_rows(name, iter(rows), head, audit_key())
    except (KeyError, TypeError, ValueError) as exc:
        return Verdict(name, 0, False, None, f"an entry is malformed ({type(exc).__name__}: {exc}): invalid")
