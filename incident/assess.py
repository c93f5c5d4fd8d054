"""Who is affected, how grave it is, which regimes apply and every obligation's clock."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Text, bindparam, text
from sqlmodel import Field, Session, SQLModel, select

from incident import audit, catalog, clock
from incident.db import UTCDateTime
from incident.errors import IncidentError, InvalidArgument, NotAssessed
from incident.incidents import Incident, Status, get, transition
from incident.inventory.models import child_cutoff


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


# ---- the snapshot -------------------------------------------------------------------------------

AFFECTED_INSERT = """
INSERT INTO affected (incident_id, person_id, subject_name, audience, to_name, to_email, to_phone, to_push,
                      to_address, locale, region, account_status, is_child, categories)
SELECT :iid, p.person_id, p.name,
       CASE WHEN p.birth_date > :cutoff THEN 'guardian' ELSE 'self' END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_name ELSE p.name END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_email ELSE p.email END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_phone ELSE p.phone END,
       CASE WHEN p.birth_date > :cutoff THEN NULL ELSE p.push_token END,
       CASE WHEN p.birth_date > :cutoff AND p.guardian_name IS NULL THEN NULL ELSE p.postal_address END,
       p.locale, p.region, p.account_status,
       CASE WHEN p.birth_date > :cutoff THEN :true ELSE :false END,
       e.cats
FROM ({grouped}) e JOIN person p ON p.person_id = e.person_id
"""

# Each person in scope with their exposed categories, sorted and comma-separated, straight from the holdings.
GROUPED = {
    "sqlite": "SELECT person_id, group_concat(category, ',') AS cats FROM (SELECT DISTINCT h.person_id, h.category "
    "FROM holding h WHERE {scope} ORDER BY h.person_id, h.category) GROUP BY person_id",
    "postgresql": "SELECT h.person_id, string_agg(DISTINCT h.category, ',' ORDER BY h.category) AS cats "
    "FROM holding h WHERE {scope} GROUP BY h.person_id",
}
# Whether a comma-separated categories column holds one key (no LIKE: '_' in a key would be a wildcard).
CONTAINS = {
    "sqlite": "instr(',' || {column} || ',', {key}) > 0",
    "postgresql": "strpos(',' || {column} || ',', {key}) > 0",
}


def scope_params(incident: Incident) -> dict[str, Any]:
    """The SQL parameters of an incident's scope: systems, categories, exposure window."""
    return {
        "systems": incident.system_list,
        "categories": incident.category_list,
        "from": incident.exposure_from.date().isoformat(),
        "to": incident.exposure_to.date().isoformat(),
    }


# A holding is in scope when its system and category are the incident's and its period overlaps the window.
SCOPE_WHERE = (
    "h.system IN :systems AND h.category IN :categories AND h.since <= :to AND (h.until IS NULL OR h.until >= :from)"
)


def determine_affected(session: Session, incident: Incident) -> int:
    """Replace the incident's snapshot with the people whose holdings were in scope; return how many.

    One INSERT..SELECT: the holdings in scope grouped per person (their categories joined), joined to the person.
    """
    conn = session.connection()
    iid = incident.id
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # sort and hash 200,000 people in memory rather than in temporary files
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
    conn.execute(text("DELETE FROM affected WHERE incident_id = :iid"), {"iid": iid})
    grouped = GROUPED.get(dialect, GROUPED["postgresql"]).format(scope=SCOPE_WHERE)
    cutoff = child_cutoff(incident.discovered_at.date()).isoformat()
    insert = text(AFFECTED_INSERT.format(grouped=grouped)).bindparams(
        bindparam("systems", expanding=True), bindparam("categories", expanding=True)
    )
    result = conn.execute(
        insert, {"iid": iid, "cutoff": cutoff, "true": True, "false": False, **scope_params(incident)}
    )
    return int(result.rowcount)


def _holding(session: Session, keys: list[str], prefix: str) -> tuple[list[str], dict[str, str]]:
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
    conditions, params = _holding(session, keys, "k")
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


# ---- counts, grade, regimes, obligations --------------------------------------------------------


def _allowed_channels(incident: Incident, workspace: Path | None) -> list[str]:
    book = catalog.playbook(incident.playbook, workspace)
    return [c for c in book.channels if c not in book.exclude_channels]


CONTACT_COLUMN = {"email": "to_email", "sms": "to_phone", "push": "to_push"}


def no_electronic_sql(channels: list[str]) -> str:
    """SQL condition: the affected person has no contact on any allowed electronic channel."""
    return " AND ".join(f"{CONTACT_COLUMN[c]} IS NULL" for c in channels) or "1=1"


def no_channel_sql(channels: list[str]) -> str:
    """SQL condition: no allowed electronic channel and no postal address either."""
    return f"{no_electronic_sql(channels)} AND to_address IS NULL"


def count(session: Session, incident: Incident, workspace: Path | None) -> dict[str, Any]:
    """Aggregate the snapshot: people, categories, sensitive, children, cancelled, regions, no channel."""
    conn = session.connection()
    p = {"iid": incident.id}

    def scalar(where: str = "1=1") -> int:
        sql = f"SELECT COUNT(*) FROM affected WHERE incident_id = :iid AND {where}"
        return int(conn.execute(text(sql), {**p, "true": True}).scalar_one())

    sensitive_keys = [
        c.key for c in catalog.categories(workspace).categories if c.sensitive and c.key in incident.category_list
    ]
    conditions, params = _holding(session, sensitive_keys, "s")
    any_sensitive = " OR ".join(conditions) or "1=0"
    sensitive = conn.execute(
        text(f"SELECT COUNT(*) FROM affected WHERE incident_id = :iid AND (is_child = :true OR {any_sensitive})"),
        {**p, **params, "true": True},
    ).scalar_one()
    by_category: dict[str, int] = {}
    for per in exposed_by_region(session, incident).values():
        for key, n in per.items():
            by_category[key] = by_category.get(key, 0) + n
    by_category = dict(sorted(by_category.items()))
    by_region = {
        (r[0] or "unknown"): int(r[1])
        for r in conn.execute(
            text("SELECT region, COUNT(*) FROM affected WHERE incident_id = :iid GROUP BY region ORDER BY region"), p
        )
    }
    channels = _allowed_channels(incident, workspace)
    return {
        "people": scalar(),
        "by_category": by_category,
        "records": sum(by_category.values()),
        "sensitive": int(sensitive),
        "children": scalar("is_child = :true"),
        "cancelled": scalar("account_status = 'cancelled'"),
        "by_region": by_region,
        "no_usable_channel": scalar(no_channel_sql(channels)),
        "letter_only": scalar(f"{no_electronic_sql(channels)} AND to_address IS NOT NULL"),
    }


def residents(by_region: dict[str, int], regime: catalog.Regime) -> int:
    """How many affected people live where a regime applies."""
    return sum(n for region, n in by_region.items() if regime.covers(region))


@dataclass(frozen=True)
class ObligationStatus:
    """One legal clock: what, to whom, due when, and where it stands."""

    regime: str
    key: str
    title: str
    recipient: str
    anchor: str
    due: datetime | None
    state: str  # done | due | overdue | in progress (minimum period) | waiting (no anchor yet) | no fixed deadline
    left_seconds: float | None
    source: str
    done_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["due"] = self.due.isoformat() if self.due else None
        data["done_at"] = self.done_at.isoformat() if self.done_at else None
        return data


def anchors(session: Session, incident: Incident) -> dict[str, datetime | None]:
    """The events obligations count from, as far as they have happened."""
    done = {d.key: d.at for d in session.exec(select(ObligationDone).where(ObligationDone.incident_id == incident.id))}
    return {
        "discovered": incident.discovered_at,
        "handling_ended": incident.handling_ended_at,
        "individuals_notified": done.get("individuals-notified"),
        "announcement_published": done.get("announcement-published"),
    }


def applicable_obligations(
    counts: dict[str, Any], grade: str, announcement: bool, rules: catalog.Jurisdictions
) -> Iterator[tuple[catalog.Regime, catalog.Obligation]]:
    """Yield the (regime, obligation) pairs that apply to these counts and this grade."""
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if not regime.always and n == 0:
            continue
        for ob in regime.obligations:
            if ob.grade_at_least and rules.grade_rank(grade) < rules.grade_rank(ob.grade_at_least):
                continue
            if ob.residents is not None and not ob.residents.met(counts["people"] if regime.always else n):
                continue
            if ob.when_announcement and not announcement:
                continue
            yield regime, ob


def _settled_at(ob: catalog.Obligation, settled: dict[str, datetime]) -> datetime | None:
    """When an obligation was settled: by hand or by a report, or by an event its settled_by names."""
    if ob.key in settled:
        return settled[ob.key]
    events = [
        settled[name]
        for kind, _, name in (s.partition(":") for s in ob.settled_by)
        if kind == "event" and name in settled
    ]
    return min(events, default=None)


def obligation_states(
    session: Session,
    incident: Incident,
    counts: dict[str, Any],
    grade: str,
    announcement: bool,
    rules: catalog.Jurisdictions,
    locale: str = "en",
) -> list[ObligationStatus]:
    """Every obligation with its due time and state at clock.now()."""
    now = clock.now()
    events = anchors(session, incident)
    settled = {
        d.key: d.at for d in session.exec(select(ObligationDone).where(ObligationDone.incident_id == incident.id))
    }
    out = []
    for regime, ob in applicable_obligations(counts, grade, announcement, rules):
        period = timedelta(hours=ob.hours or 0, days=ob.days or 0)
        start = events[ob.anchor]
        due = start + period if start is not None and period > timedelta(0) else None
        done_at = _settled_at(ob, settled)
        if done_at is not None:
            state, left = "done", None
        elif start is None:
            state, left = "waiting", None
        elif due is None:
            state, left = "no fixed deadline", None
        elif ob.minimum and now >= due:
            state, left, done_at = "done", None, due
        else:
            left = (due - now).total_seconds()
            state = "in progress" if ob.minimum else "overdue" if now > due else "due"
        out.append(
            ObligationStatus(
                regime.key,
                ob.key,
                ob.title(locale),
                ob.recipient(locale),
                ob.anchor,
                due,
                state,
                left,
                ob.source,
                done_at,
            )
        )
    return sorted(out, key=lambda o: (o.due is None, o.due or now, o.key))


def announcement_reasons(counts: dict[str, Any], rules: catalog.Jurisdictions) -> list[str]:
    """Why a public announcement (substitute notice) is required, if it is."""
    reasons = []
    if counts["no_usable_channel"]:
        reasons.append(
            f"{counts['no_usable_channel']} affected people have no usable contact channel "
            "(GB/T 35273 §10.2 a): publish a public warning)"
        )
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if regime.substitute_notice_over is not None and n > regime.substitute_notice_over:
            reasons.append(
                f"{regime.key}: {n} residents affected, over the substitute-notice threshold "
                f"of {regime.substitute_notice_over}"
            )
    for reason in counts.get("extra_announcement_reasons", []):
        reasons.append(reason)
    return reasons


# ---- the use case -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssessmentView:
    incident: Incident
    assessment: Assessment
    counts: dict[str, Any]
    grade_name: str
    regimes: list[dict[str, Any]]
    obligations: list[ObligationStatus]
    individual_notice: dict[str, Any]
    announcement: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident.id,
            "assessed_at": self.assessment.at.isoformat(),
            "assessed_by": self.assessment.actor,
            "counts": self.counts,
            "grade": {
                "key": self.assessment.grade,
                "name": self.grade_name,
                "computed": self.assessment.grade_auto,
                "override_reason": self.assessment.grade_reason,
            },
            "regimes": self.regimes,
            "individual_notice": self.individual_notice,
            "announcement": self.announcement,
            "obligations": [o.as_json() for o in self.obligations],
        }


def latest(session: Session, incident_id: str) -> Assessment | None:
    """Return the newest stored assessment of an incident."""
    stmt = select(Assessment).where(Assessment.incident_id == incident_id).order_by(Assessment.id.desc())  # type: ignore[union-attr]
    return session.exec(stmt).first()


def view(
    session: Session,
    incident: Incident,
    workspace: Path | None,
    locale: str = "en",
    extra_announcement_reasons: list[str] | None = None,
) -> AssessmentView:
    """Build the full assessment picture from the stored snapshot."""
    stored = latest(session, incident.id)
    if stored is None:
        raise NotAssessed(f"{incident.id} has not been assessed yet (run `incident assess {incident.id}`)")
    counts = json.loads(stored.counts)
    rules = catalog.jurisdictions(workspace)
    reasons = announcement_reasons(counts, rules) + list(extra_announcement_reasons or [])
    grade = next(g for g in rules.grades if g.key == stored.grade)
    regimes = []
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if regime.always or n:
            regimes.append({"key": regime.key, "name": regime.name(locale), "residents": n})
    return AssessmentView(
        incident=incident,
        assessment=stored,
        counts=counts,
        grade_name=grade.name(locale),
        regimes=regimes,
        obligations=obligation_states(session, incident, counts, stored.grade, bool(reasons), rules, locale),
        individual_notice={
            "required": counts["people"] > 0,
            "reason": "PIPL art. 57 and GB/T 35273 §10.2: every affected person is told"
            if counts["people"]
            else "nobody is affected",
        },
        announcement={"required": bool(reasons), "reasons": reasons},
    )


def assess_incident(
    session: Session,
    incident_id: str,
    actor: str,
    workspace: Path | None,
    *,
    reassess: bool = False,
    grade: str | None = None,
    reason: str | None = None,
) -> Assessment:
    """Take the snapshot (first time or on --reassess), grade it, and store the assessment."""
    incident = get(session, incident_id, for_update=True)
    rules = catalog.jurisdictions(workspace)
    if grade is not None:
        if grade not in {g.key for g in rules.grades}:
            raise InvalidArgument(f"--grade: unknown grade {grade!r} (one of {', '.join(g.key for g in rules.grades)})")
        if not reason:
            raise InvalidArgument("--grade needs --reason: a manual grade must say why (qualitative criteria, loss)")
    previous = latest(session, incident_id)
    if previous is not None and not reassess and grade is None:
        return previous
    if previous is None or reassess:
        if Status(incident.status) in (Status.NOTIFYING, Status.NOTIFIED, Status.CLOSED):
            raise IncidentError(
                f"{incident_id} is '{incident.status}': notices have gone out, the snapshot can no longer change"
            )
        people = determine_affected(session, incident)
        counts = count(session, incident, workspace)
        assert counts["people"] == people
    else:
        counts = json.loads(previous.counts)
    auto = rules.grade_for(counts["people"]).key
    # A manual grade sticks until the next snapshot, which is graded afresh.
    kept = previous if previous is not None and previous.grade_reason and not reassess else None
    stored = Assessment(
        incident_id=incident_id,
        at=clock.now(),
        actor=actor,
        people=counts["people"],
        grade=grade or (kept.grade if kept else auto),
        grade_auto=auto,
        grade_reason=reason or (kept.grade_reason if kept else None),
        counts=json.dumps(counts, sort_keys=True),
    )
    session.add(stored)
    session.flush()
    if previous is None or reassess:
        transition(session, incident, Status.ASSESSED, actor, "re-assessed" if previous else "")
    audit.record(
        session,
        incident_id,
        audit.Event(
            "assessed",
            {
                "people": counts["people"],
                "grade": stored.grade,
                "grade_auto": auto,
                "reason": stored.grade_reason,
                "snapshot": previous is None or reassess,
            },
        ),
        actor,
    )
    return stored


def settle(
    session: Session, incident_id: str, key: str, actor: str, at: datetime | None = None, reference: str | None = None
) -> None:
    """Mark an obligation (or anchor event) as done."""
    if session.get(ObligationDone, (incident_id, key)) is None:
        session.add(
            ObligationDone(incident_id=incident_id, key=key, at=at or clock.now(), reference=reference, actor=actor)
        )
        audit.record(session, incident_id, audit.Event("settled", {"obligation": key, "reference": reference}), actor)


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
