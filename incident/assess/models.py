"""The assessment's tables (the affected snapshot, assessments, settled obligations) and their named queries."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text, text
from sqlmodel import Field, Session, SQLModel, col, select

from incident import catalog, clock
from incident.audit import chain as audit
from incident.audit import coverage
from incident.db import UTCDateTime
from incident.incidents.models import Incident


class Affected(SQLModel, table=True):
    """An affected person as of the assessment, with the contacts a notice goes to and their exposed categories.

    A derived snapshot: only `determine_affected` writes it, in the transaction that holds its incident's row lock,
    and incidents are never deleted. So it carries no foreign key to `incident`: PostgreSQL checks one with a
    trigger per row, which doubled the time to write 200,000 people (bench/RESULTS.md, affected people).
    """

    __tablename__ = "affected"
    incident_id: str = Field(primary_key=True)
    person_id: str = Field(primary_key=True)
    subject_name: str | None = None
    audience: str  # "self" or "guardian" (children under 14, policy §八)
    to_name: str | None = None
    to_email: str | None = None
    to_phone: str | None = None
    to_push: str | None = None
    to_address: str | None = None
    locale: str
    region: str | None = None
    account_status: str
    is_child: bool
    categories: str  # sorted, comma-separated category keys: this person's exposed categories


class Assessment(SQLModel, table=True):
    __tablename__ = "assessment"
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id", index=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    people: int
    grade: str
    grade_auto: str
    grade_reason: str | None = None
    counts: str = Field(sa_column=Column(Text, nullable=False))


class ObligationDone(SQLModel, table=True):
    """An obligation settled: a report submitted, notices sent, a posting period served."""

    __tablename__ = "obligation_done"
    incident_id: str = Field(primary_key=True, foreign_key="incident.id")
    key: str = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    reference: str | None = None
    actor: str


coverage.declare(
    "assessment", key="id", columns=("id", "at", "actor", "people", "grade", "grade_auto", "grade_reason", "counts")
)
coverage.declare("obligation_done", key="key", columns=("key", "at", "reference", "actor"))

# Whether a comma-separated categories column holds one key (no LIKE: '_' in a key would be a wildcard).
CONTAINS = {
    "sqlite": "instr(',' || {column} || ',', {key}) > 0",
    "postgresql": "strpos(',' || {column} || ',', {key}) > 0",
}


def holding_conditions(session: Session, keys: list[str], prefix: str) -> tuple[list[str], dict[str, str]]:
    """One SQL condition per key, true when the affected row's categories hold that key, and their parameters."""
    contains = CONTAINS.get(session.get_bind().dialect.name, CONTAINS["postgresql"])
    return (
        [contains.format(column="categories", key=f":{prefix}{i}") for i in range(len(keys))],
        {f"{prefix}{i}": f",{key}," for i, key in enumerate(keys)},
    )


def exposed_by_region(session: Session, incident: Incident) -> dict[str, dict[str, int]]:
    """How many affected people had each of the incident's categories exposed, per region ("unknown" for none)."""
    keys = incident.category_list  # an incident's people were exposed in its own categories only
    if not keys:
        return {}
    conditions, params = holding_conditions(session, keys, "k")
    sums = ", ".join(f"SUM(CASE WHEN {c} THEN 1 ELSE 0 END)" for c in conditions)
    found: dict[str, dict[str, int]] = {}
    for region, *counts in session.connection().execute(
        text(f"SELECT region, {sums} FROM affected WHERE incident_id = :iid GROUP BY region"),
        {"iid": incident.id, **params},
    ):
        for key, n in zip(keys, counts, strict=True):
            if n:  # a NULL region and one written "unknown" share a bucket: add, never overwrite
                bucket = found.setdefault(region or "unknown", {})
                bucket[key] = bucket.get(key, 0) + int(n)
    return found


CONTACT_COLUMN = {"email": "to_email", "sms": "to_phone", "push": "to_push"}


def no_electronic_sql(channels: list[str]) -> str:
    """SQL condition: the affected person has no contact on any allowed electronic channel."""
    return " AND ".join(f"{CONTACT_COLUMN[c]} IS NULL" for c in channels) or "1=1"


def no_channel_sql(channels: list[str]) -> str:
    """SQL condition: no allowed electronic channel and no postal address either."""
    return f"{no_electronic_sql(channels)} AND to_address IS NULL"


def latest(session: Session, incident_id: str) -> Assessment | None:
    """Return the newest stored assessment of an incident."""
    stmt = select(Assessment).where(Assessment.incident_id == incident_id).order_by(col(Assessment.id).desc())
    return session.exec(stmt).first()


def settle(
    session: Session, incident_id: str, key: str, actor: str, at: datetime | None = None, reference: str | None = None
) -> None:
    """Mark an obligation (or anchor event) as done."""
    if session.get(ObligationDone, (incident_id, key)) is None:
        session.add(
            ObligationDone(incident_id=incident_id, key=key, at=at or clock.now(), reference=reference, actor=actor)
        )
        audit.record(
            session, incident_id, audit.Event(audit.Action.SETTLED, {"obligation": key, "reference": reference}), actor
        )


def settle_by(
    session: Session,
    incident_id: str,
    source: str,
    actor: str,
    rules: catalog.Jurisdictions,
    at: datetime | None = None,
    reference: str | None = None,
) -> list[str]:
    """Settle every obligation the rules say `source` discharges (e.g. report:cn-cac:initial); return their keys."""
    keys = sorted({ob.key for regime in rules.regimes for ob in regime.obligations if source in ob.settled_by})
    for key in keys:
        settle(session, incident_id, key, actor, at, reference)
    return keys


def affected_people(session: Session, incident_id: str, batch: int = 2000) -> Iterator[Affected]:
    """Stream the snapshot in person order, a batch at a time."""
    stmt = select(Affected).where(Affected.incident_id == incident_id).order_by(Affected.person_id)
    yield from session.exec(stmt.execution_options(yield_per=batch))


# What a notice may use of each affected person, in the order the render hashes them.
AFFECTED_COLUMNS = (
    "person_id",
    "audience",
    "subject_name",
    "to_name",
    "to_email",
    "to_phone",
    "to_push",
    "to_address",
    "locale",
    "region",
    "categories",
)


def affected_dicts(session: Session, incident_id: str, batch: int = 500) -> Iterator[dict[str, Any]]:
    """Stream the snapshot as plain dicts, in person order, without ORM objects."""
    result = session.connection().execute(
        text(f"SELECT {', '.join(AFFECTED_COLUMNS)} FROM affected WHERE incident_id = :iid ORDER BY person_id"),
        {"iid": incident_id},
        execution_options={"stream_results": True, "yield_per": batch},
    )
    for row in result:
        yield dict(zip(AFFECTED_COLUMNS, row, strict=True))


def count_affected(session: Session, incident_id: str) -> int:
    """How many people the incident's snapshot holds."""
    return int(
        session.connection()
        .execute(text("SELECT COUNT(*) FROM affected WHERE incident_id = :iid"), {"iid": incident_id})
        .scalar_one()
    )


def affected_contacts(
    session: Session, incident_id: str
) -> Iterator[tuple[str | None, str | None, str | None, str | None]]:
    """(subject name, recipient name, email, phone) of every affected person, streamed: what a public text must
    never contain."""
    sql = text("SELECT subject_name, to_name, to_email, to_phone FROM affected WHERE incident_id = :i")
    rows = session.connection().execute(sql.execution_options(stream_results=True, yield_per=5000), {"i": incident_id})
    return ((r[0], r[1], r[2], r[3]) for r in rows)


# What a purge keeps of each affected person: what the counts and the reports group by, nothing that names them.
KEPT_AFTER_PURGE = ("audience", "locale", "region", "account_status", "is_child", "categories")
# A purge's temporary table (its own connection only): each old person id, its new number, and what is kept.
PERSON_MAP = "purge_person_map"


def forget_people(session: Session, incident_id: str) -> int:
    """Strip the snapshot of names, contacts and person ids, keeping one row per person with what the counts
    group by, under a new id `purged-N`; return how many people. PERSON_MAP keeps old id -> N for the other
    tables in this unit of work (drop it with drop_person_map).

    N is dealt in random order and the rows are written again in N's order, so neither an id nor a row's place
    in the table leads back to the inventory (whose ids sort like the old ones). All in SQL: no person is read
    into memory, however many there are."""
    conn = session.connection()
    kept = ", ".join(KEPT_AFTER_PURGE)
    conn.execute(text(f"DROP TABLE IF EXISTS {PERSON_MAP}"))
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {PERSON_MAP} AS SELECT person_id AS old_id, 0 AS n, {kept} "
            "FROM affected WHERE 1 = 0"
        )
    )
    conn.execute(
        text(
            f"INSERT INTO {PERSON_MAP} (old_id, n, {kept}) SELECT person_id, ROW_NUMBER() OVER (ORDER BY random()), "
            f"{kept} FROM affected WHERE incident_id = :i"
        ),
        {"i": incident_id},
    )
    conn.execute(text("DELETE FROM affected WHERE incident_id = :i"), {"i": incident_id})
    inserted = conn.execute(
        text(
            f"INSERT INTO affected (incident_id, person_id, {kept}) SELECT :i, 'purged-' || n, {kept} "
            f"FROM {PERSON_MAP} ORDER BY n"
        ),
        {"i": incident_id},
    )
    return int(inserted.rowcount or 0)


def drop_person_map(session: Session) -> None:
    """Drop the purge's table of old person ids (it must not outlive the purge's unit of work)."""
    session.connection().execute(text(f"DROP TABLE IF EXISTS {PERSON_MAP}"))
