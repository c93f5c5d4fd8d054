"""What the audit chain covers: the digest of every state row the notices, reports and board rely on.

The chain's events say THAT something happened; coverage says WHAT the rows then held. Each domain declares,
next to its table, which columns are covered (`declare`). A unit of work that changes covered rows ends with one
statement of them in the chain: `{table: {"columns": [...], "rows": {row_id: digest}}}` under "covers", where
a digest is sha256 over the canonical JSON of the row's declared columns, truncated to 128 bits (32 hex digits:
enough against a forger, half the payload). It rides on the last event the unit of work recorded, or on one
"covered" entry when it recorded none. So the cost of a commit is proportional to the rows it changed, never to
the size of a table.

- ORM changes (`session.add`, `session.delete`) of declared tables are covered (and deletions forgotten) by
  themselves; bulk SQL (claims, settles, plans, letters) calls `cover(session, chain, table, ids)` once per
  statement, `ids=None` meaning every row of that table in the incident.
- A row the tool deletes on purpose is forgotten: `forget(session, chain, table, ids, reason)` (`ids=None`: every
  row of the table in the incident). Re-rendering, re-planning and `incident purge` call it: purge deletes the
  notice, delivery and attempt rows of a closed incident with `forget(..., reason="purged")` and covers the rows
  it anonymises instead of deleting with `cover(...)` after its UPDATE, in the same unit of work; `audit verify`
  then passes with the personal data gone (entries hold row ids and digests, never the row values).
- `problems` replays the chain (the last digest of a row wins; a forgotten row must be absent), then recomputes
  every current row of each declared table: an edited row, a row no entry covers (inserted) and a covered row
  that is gone (deleted) each fail, naming table, row ids and the audit seq.

This module imports no domain: the tables are found by name in the shared metadata.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, SQLModel

from incident import clock
from incident.audit import chain as audit

PENDING = "incident.audit.coverage"  # session.info: what this unit of work changed, written at commit
CHUNK = 500


@dataclass(frozen=True)
class Covered:
    """One covered table: the row id within its incident, the incident column, and the digested columns."""

    table: str
    key: str
    columns: tuple[str, ...]
    scope: str = "incident_id"
    pseudonymous: bool = False  # the key is a person id: the chain names the row by a keyed hash of it


DECLARED: dict[str, Covered] = {}


def declare(
    table: str, *, key: str, columns: tuple[str, ...], scope: str = "incident_id", pseudonymous: bool = False
) -> Covered:
    """Declare a table's covered columns (in models.py, next to the table): order matters, it is hashed."""
    DECLARED[table] = Covered(table, key, columns, scope, pseudonymous)
    return DECLARED[table]


SECRET_KEY = "audit_row_secret"  # schema_meta: keys the pseudonyms, so the chain (and its export) holds no person id


def _pseudonym(session: OrmSession, decl: Covered, chain: str, key: str, create: bool = True) -> str:
    if not decl.pseudonymous:
        return key
    cache = session.info.setdefault("incident.audit.secret", {})
    if "k" not in cache:
        conn = session.connection()
        found = conn.execute(sa.text("SELECT value FROM schema_meta WHERE key = :k"), {"k": SECRET_KEY}).scalar()
        if found is None and create:  # the first covering unit of work makes it; verify only reads
            conn.execute(
                sa.text("INSERT INTO schema_meta (key, value) VALUES (:k, :v) ON CONFLICT (key) DO NOTHING"),
                {"k": SECRET_KEY, "v": secrets.token_hex(32)},
            )
            found = conn.execute(sa.text("SELECT value FROM schema_meta WHERE key = :k"), {"k": SECRET_KEY}).scalar()
        cache["k"] = str(found or "").encode()
    return "~" + hmac.new(cache["k"], f"{chain}\x1f{key}".encode(), hashlib.sha256).hexdigest()[:24]


@dataclass
class _Pending:
    covers: dict[str, set[str] | None] = field(default_factory=dict)  # None: every row of the table
    forgets: dict[str, tuple[set[str] | None, str]] = field(default_factory=dict)
    actor: str | None = None


def _pending(session: OrmSession, chain: str) -> _Pending:
    return session.info.setdefault(PENDING, {}).setdefault(chain, _Pending())


def cover(
    session: OrmSession, chain: str, table: str, ids: Iterable[Any] | None = None, *, actor: str | None = None
) -> None:
    """Have this unit of work's audit entry cover these rows of `table` as they are at commit."""
    if table not in DECLARED:
        raise KeyError(f"{table} is not a covered table")
    pending = _pending(session, chain)
    pending.actor = actor or pending.actor
    if ids is None or pending.covers.get(table, set()) is None:
        pending.covers[table] = None
    else:
        pending.covers.setdefault(table, set()).update(str(i) for i in ids)  # type: ignore[union-attr]


def forget(session: OrmSession, chain: str, table: str, ids: Iterable[Any] | None, reason: str) -> None:
    """Record that these rows of `table` (None: all of the incident's) are deleted on purpose, and why."""
    pending = _pending(session, chain)
    gone = None if ids is None else {str(i) for i in ids}
    before, _ = pending.forgets.get(table, (set(), ""))
    pending.forgets[table] = (None if gone is None or before is None else before | gone, reason)
    covered = pending.covers.get(table, set())
    if covered is not None:  # covered earlier in this unit of work, then deleted: nothing left to cover
        covered -= gone if gone is not None else set(covered)


def plain(value: Any) -> Any:
    """A column value as the digest sees it (times in UTC ISO form, bytes by their sha256)."""
    if isinstance(value, datetime):
        return clock.as_utc(value).isoformat()
    if isinstance(value, bytes | memoryview):
        return "sha256:" + hashlib.sha256(bytes(value)).hexdigest()
    return value


def row_digest(values: Iterable[Any]) -> str:
    """sha256 over the canonical JSON of one row's covered values, truncated to 128 bits."""
    body = json.dumps([plain(v) for v in values], ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def _table(name: str) -> sa.Table:
    return SQLModel.metadata.tables[name]


def _current(
    session: OrmSession,
    chain: str,
    decl: Covered,
    columns: tuple[str, ...],
    ids: set[str] | None,
    create: bool = True,
) -> Iterable[tuple[str, str, dict[str, Any]]]:
    """(row id in the chain, row key, {column: value}) of the incident's rows of a declared table (those keys, or
    all)."""
    t = _table(decl.table)
    stmt = sa.select(t.c[decl.key], *(t.c[c] for c in columns)).where(t.c[decl.scope] == chain)
    conn = session.connection()
    if ids is None:
        chunks: Iterable[Any] = [conn.execute(stmt.execution_options(yield_per=5000))]
    else:
        keys = sorted(ids)
        typed = isinstance(t.c[decl.key].type, sa.Integer)
        chunks = (
            conn.execute(stmt.where(t.c[decl.key].in_([int(k) if typed else k for k in keys[i : i + CHUNK]])))
            for i in range(0, len(keys), CHUNK)
        )
    for rows in chunks:
        for row in rows:
            key = str(row[0])
            yield _pseudonym(session, decl, chain, key, create), key, dict(zip(columns, row[1:], strict=True))


def _digests(
    session: OrmSession, chain: str, decl: Covered, ids: set[str] | None, columns: tuple[str, ...] | None = None
) -> dict[str, Any]:
    columns = columns or decl.columns
    rows = {rid: row_digest(v[c] for c in columns) for rid, _, v in _current(session, chain, decl, columns, ids)}
    # "complete": these are all the incident's rows of the table (a plan, a baseline): earlier ones are gone.
    return {"columns": list(columns), "rows": dict(sorted(rows.items()))} | ({"complete": True} if ids is None else {})


def present_columns(session: OrmSession, decl: Covered) -> tuple[str, ...]:
    """The declared columns the database has (a baseline at an older schema covers what was there then)."""
    names = {c["name"] for c in sa.inspect(session.connection()).get_columns(decl.table)}
    return tuple(c for c in decl.columns if c in names)


def statement(session: OrmSession, chain: str, pending: _Pending, *, as_stored: bool = False) -> dict[str, Any]:
    """The "forgets" and "covers" an entry carries for what a unit of work changed."""
    extra: dict[str, Any] = {}
    if pending.forgets:
        extra["forgets"] = {
            t: {
                "rows": "*"
                if ids is None
                else sorted(_pseudonym(session, DECLARED[t], chain, i) for i in ids)
                if t in DECLARED
                else sorted(ids),
                "reason": why,
            }
            for t, (ids, why) in pending.forgets.items()
        }
    covers = {
        t: _digests(session, chain, DECLARED[t], ids, present_columns(session, DECLARED[t]) if as_stored else None)
        for t, ids in pending.covers.items()
        if ids != set()
    }
    if covers:
        extra["covers"] = covers
    return extra


def baseline(session: Session, chain: str, actor: str) -> None:
    """Cover every declared row of an incident in one entry (a v1 workspace upgraded to v2 starts from here).

    An incident whose chain is gone gets none: a fresh chain would launder the deletion."""
    if audit.head_of(session, chain) is None:
        return
    present = set(sa.inspect(session.connection()).get_table_names())  # a later revision's tables are not there yet
    covers: dict[str, set[str] | None] = {t: None for t in DECLARED if t in present}
    stated = statement(session, chain, _Pending(covers=covers), as_stored=True)
    audit.record(session, chain, audit.Event(audit.Action.BASELINE, {"format": audit.FORMAT} | stated), actor)


# ---- the unit of work's hooks: ORM changes are noted at each flush, the statement is written at commit --------


def _scope_of(obj: Any) -> tuple[Covered, str, str] | None:
    table = getattr(obj, "__tablename__", None)
    decl = DECLARED.get(table) if isinstance(table, str) else None
    if decl is None:
        return None
    return decl, str(getattr(obj, decl.scope)), str(getattr(obj, decl.key))


@event.listens_for(OrmSession, "after_flush")
def _note_orm_changes(session: OrmSession, _context: Any) -> None:
    for obj in (*session.new, *session.dirty):
        found = _scope_of(obj)
        if found is not None:
            cover(session, found[1], found[0].table, [found[2]])
    for obj in session.deleted:
        found = _scope_of(obj)
        if found is not None:
            forget(session, found[1], found[0].table, [found[2]], "deleted by the tool")


@event.listens_for(OrmSession, "before_commit")
def _write_statements(session: OrmSession) -> None:
    if not session.info.get(PENDING):
        return
    session.flush()  # ORM changes still in the session become rows (and are noted) before they are digested
    pending: dict[str, _Pending] = session.info.pop(PENDING, {})
    last: dict[str, Any] = session.info.get(audit.LAST_ENTRY, {})
    for chain, what in pending.items():
        extra = statement(session, chain, what)
        if not extra:
            continue
        entry = last.get(chain)
        if entry is not None:
            audit.amend(session, entry, extra)  # type: ignore[arg-type]
        else:
            actor = what.actor or next((e.actor for e in last.values()), None) or audit.current_actor()
            audit.record(session, chain, audit.Event(audit.Action.COVERED, extra), actor)  # type: ignore[arg-type]
    session.info.pop(audit.LAST_ENTRY, None)


@event.listens_for(OrmSession, "after_rollback")
def _drop_pending(session: OrmSession) -> None:
    session.info.pop(PENDING, None)
    session.info.pop(audit.LAST_ENTRY, None)


# ---- verification -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing the rows and the chain disagree on: the audit seq it concerns (None: no entry) and what."""

    seq: int | None
    text: str


def problems(session: OrmSession, chain: str, entries: Iterable[Any]) -> list[Problem]:
    """Replay what the chain covers and compare it with every current row of the incident's declared tables."""
    expected: dict[str, dict[str, tuple[str, int, tuple[str, ...]]]] = defaultdict(dict)
    forgotten: dict[str, dict[str, int]] = defaultdict(dict)
    for e in entries:
        if '"covers"' not in e.payload and '"forgets"' not in e.payload:
            continue
        payload = json.loads(e.payload)
        for table, gone in payload.get("forgets", {}).items():
            for rid in list(expected[table]) if gone["rows"] == "*" else gone["rows"]:
                expected[table].pop(rid, None)
                forgotten[table][rid] = e.seq
        for table, stated in payload.get("covers", {}).items():
            if stated.get("complete"):
                expected[table].clear()
            columns = tuple(stated["columns"])
            for rid, digest in stated["rows"].items():
                expected[table][rid] = (digest, e.seq, columns)
                forgotten[table].pop(rid, None)
    found: list[Problem] = []
    for name, decl in sorted(DECLARED.items()):
        want = expected.get(name, {})
        columns = tuple(dict.fromkeys([*decl.columns, *(c for w in want.values() for c in w[2])]))
        edited: dict[int, list[str]] = defaultdict(list)
        extra: list[str] = []
        back: list[str] = []
        seen: set[str] = set()
        back_seq: int | None = None
        for rid, key, values in _current(session, chain, decl, columns, None, create=False):
            seen.add(rid)
            if rid not in want:
                back_seq = forgotten.get(name, {}).get(rid, back_seq)
                (back if rid in forgotten.get(name, {}) else extra).append(key)
            elif row_digest(values.get(c) for c in want[rid][2]) != want[rid][0]:
                edited[want[rid][1]].append(key)
        for seq, rids in sorted(edited.items()):
            found.append(Problem(seq, f"audit seq {seq}: {name} rows {_few(rids)} were edited after it covered them"))
        deleted: dict[int, list[str]] = defaultdict(list)
        for rid, (_, seq, _) in want.items():
            if rid not in seen:
                deleted[seq].append(rid)
        for seq, rids in sorted(deleted.items()):
            found.append(Problem(seq, f"audit seq {seq}: {name} rows {_few(rids)} were deleted"))
        if extra:
            found.append(Problem(None, f"{name} rows {_few(extra)} are not covered by the audit chain (inserted?)"))
        if back:
            found.append(
                Problem(back_seq, f"audit seq {back_seq}: {name} rows {_few(back)} were deleted then but are present")
            )
    return found


def _few(ids: list[str]) -> str:
    shown = ", ".join(sorted(ids, key=lambda i: (len(i), i))[:5])
    return f"[{shown}{', …' if len(ids) > 5 else ''}] ({len(ids)})" if len(ids) > 5 else f"[{shown}]"
