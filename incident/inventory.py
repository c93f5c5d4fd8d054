"""The data inventory: people, the systems that hold their data, and which category was held when."""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import Column, Date, Index, UniqueConstraint, text
from sqlmodel import Field, Session, SQLModel

from incident import catalog, clock
from incident.datafiles import load_yaml
from incident.errors import BadInput, ManyBadRows
from incident.files import open_private, safe_cell
from incident.rows import Cells, Row, read_records

PEOPLE_COLUMNS = (
    "person_id",
    "name",
    "email",
    "phone",
    "push_token",
    "locale",
    "region",
    "birth_date",
    "guardian_name",
    "guardian_email",
    "guardian_phone",
    "postal_address",
    "account_status",
    "cancelled_at",
)
HOLDING_COLUMNS = ("person_id", "system", "category", "since", "until")
BATCH = 5000
MAX_SHOWN_ERRORS = 10


class Person(SQLModel, table=True):
    __tablename__ = "person"
    person_id: str = Field(primary_key=True, max_length=64)
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    locale: str = "zh-CN"
    region: str | None = None
    birth_date: date | None = Field(default=None, sa_column=Column(Date))
    guardian_name: str | None = None
    guardian_email: str | None = None
    guardian_phone: str | None = None
    postal_address: str | None = None
    account_status: str = "active"
    cancelled_at: date | None = Field(default=None, sa_column=Column(Date))
    import_id: int = 0


class System(SQLModel, table=True):
    __tablename__ = "system"
    name: str = Field(primary_key=True)
    description: str = ""
    location: str = ""
    kind: str = "internal"


class Holding(SQLModel, table=True):
    __tablename__ = "holding"
    __table_args__ = (
        UniqueConstraint("person_id", "system", "category", "since", name="uq_holding"),
        Index("ix_holding_scope", "system", "category"),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(foreign_key="person.person_id")
    system: str = Field(foreign_key="system.name")
    category: str
    since: date = Field(sa_column=Column(Date, nullable=False))
    until: date | None = Field(default=None, sa_column=Column(Date))


# ---- systems file -------------------------------------------------------------------------------


class SystemEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = PField(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    location: str = PField(default="CN", pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    kind: Literal["internal", "backup", "partner"]


class SystemsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    systems: list[SystemEntry]


# ---- field validation ---------------------------------------------------------------------------

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# NUL and other C0 controls (PostgreSQL refuses NUL in text; none belongs in a name); a postal address may
# span lines.
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]|\n|\r")
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
CN_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
REGION_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
LOCALES = {"zh-CN": "zh-CN", "zh-cn": "zh-CN", "en": "en"}


def normalise_email(value: str) -> str:
    """Return a syntactically valid address with a lower-cased domain, or raise ValueError."""
    if len(value) > 254 or not EMAIL_RE.match(value) or ".." in value:
        raise ValueError("not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


@lru_cache(maxsize=4096)
def normalise_region(value: str) -> str:
    """Return the upper-cased ISO country or subdivision code (CN-FJ, DE, US-CA); cached, regions repeat."""
    region = value.upper()
    if not REGION_RE.match(region):
        raise ValueError(f"not an ISO country or subdivision code: {region[:12]!r}")
    return region


def normalise_phone(value: str, region: str | None) -> str:
    """Return the number in E.164 (+8613800000000); national numbers use the person's region."""
    if E164_RE.match(value):  # the common case, already normalised
        return value
    compact = re.sub(r"[\s().-]", "", value)
    if E164_RE.match(compact):
        return compact
    country = (region or "CN").split("-")[0]
    if country == "CN" and CN_MOBILE_RE.match(compact):
        return "+86" + compact
    import phonenumbers  # slow to import and to call: only for numbers not already in E.164

    try:
        parsed = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_date(value: str) -> date:
    """Parse an ISO date (a datetime is cut to its date)."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value).date()


@lru_cache(maxsize=1 << 16)
def iso_date(value: str) -> str:
    """Return the date a cell holds as YYYY-MM-DD; cached, as an inventory repeats a few thousand dates."""
    return parse_date(value).isoformat()


def _person_values(cells: Cells, today: str | None = None) -> tuple[Any, ...]:
    """Validate one people row (cells in PEOPLE_COLUMNS order); raise (field, problem) as ValueError args.

    `today` is clock.now()'s date, passed in so a million rows do not read the clock a million times.
    """
    (
        pid,
        name,
        email,
        phone,
        push_token,
        locale,
        region,
        birth_date,
        guardian_name,
        guardian_email,
        guardian_phone,
        address,
        status,
        cancelled_at,
    ) = cells
    if not pid:
        raise ValueError("person_id", "is empty")
    if len(pid) > 64 or "\n" in pid or "\r" in pid or "\t" in pid:
        raise ValueError("person_id", "must be at most 64 characters on one line")
    if region:
        try:
            region = normalise_region(region)
        except ValueError as exc:
            raise ValueError("region", str(exc)) from None
    else:
        region = None
    locale = locale or "zh-CN"
    if locale not in LOCALES:
        raise ValueError("locale", f"unknown locale {locale[:12]!r} (use zh-CN or en)")
    col = "email"
    try:
        email = normalise_email(email) if email else None
        col = "guardian_email"
        guardian_email = normalise_email(guardian_email) if guardian_email else None
        col = "phone"
        phone = normalise_phone(phone, region) if phone else None
        col = "guardian_phone"
        guardian_phone = normalise_phone(guardian_phone, region) if guardian_phone else None
        col = "birth_date"
        birth_date = iso_date(birth_date) if birth_date else None
        col = "cancelled_at"
        cancelled_at = iso_date(cancelled_at) if cancelled_at else None
    except ValueError as exc:
        if col in ("birth_date", "cancelled_at"):
            raise ValueError(col, f"not an ISO date: {cells[PEOPLE_COLUMNS.index(col)][:20]!r}") from None
        raise ValueError(col, str(exc)) from None
    status = status or "active"
    if status not in ("active", "cancelled"):
        raise ValueError("account_status", f"must be active or cancelled, not {status[:20]!r}")
    if status == "active" and cancelled_at:
        raise ValueError("cancelled_at", "is set but account_status is active")
    if birth_date and birth_date > (today or clock.now().date().isoformat()):
        raise ValueError("birth_date", "is in the future")
    # One search over all free-text cells; only a hit (or an overlong cell) needs the field-by-field check.
    if (
        len(name) > 1000
        or len(guardian_name) > 1000
        or len(push_token) > 1000
        or len(address) > 1000
        or CONTROL_CHARS.search(f"{pid}{name}{guardian_name}{push_token}{address.replace(chr(10), '')}")
    ):
        _check_free_text(
            pid,
            (("name", name), ("guardian_name", guardian_name), ("push_token", push_token), ("postal_address", address)),
        )
    return (
        pid,
        name or None,
        email,
        phone,
        push_token or None,
        LOCALES[locale],
        region,
        birth_date,
        guardian_name or None,
        guardian_email,
        guardian_phone,
        address or None,
        status,
        cancelled_at,
    )


def _check_free_text(pid: str, fields: tuple[tuple[str, str], ...]) -> None:
    """Raise the first problem of the free-text cells: too long, or control characters (a newline is fine in an
    address)."""
    for col, value in fields:
        if len(value) > 1000:
            raise ValueError(col, "is longer than 1000 characters")
        if CONTROL_CHARS.search(value) and not (
            col == "postal_address" and not CONTROL_CHARS.search(value.replace("\n", ""))
        ):
            raise ValueError(col, "contains control characters")
    if CONTROL_CHARS.search(pid):
        raise ValueError("person_id", "contains control characters")


# ---- import -------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, file by file."""

    systems: int = 0
    people_read: int = 0
    people_new: int = 0
    holdings_read: int = 0
    holdings_new: int = 0
    rejected: int = 0
    rejects_file: Path | None = None
    errors: list[BadInput] = field(default_factory=list)


class _Rejects:
    """Collect bad rows: raise at the end (default) or write them to a file (--skip-invalid)."""

    def __init__(self, skip_invalid: bool, rejects_path: Path | None) -> None:
        self.skip, self.path, self.count, self.shown = skip_invalid, rejects_path, 0, []
        self._writer: Any = None
        self._file: Any = None

    def add(self, err: BadInput, row: Row | None) -> None:
        self.count += 1
        if len(self.shown) < MAX_SHOWN_ERRORS:
            self.shown.append(err)
        if self.skip and self.path is not None:
            import csv

            if self._writer is None:
                self._file = open_private(self.path)
                self._writer = csv.writer(self._file)
                self._writer.writerow(["file", "line", "field", "problem", "row"])
            raw = "" if row is None else ";".join(f"{k}={v}" for k, v in row.items() if v)
            self._writer.writerow([safe_cell(x) for x in (err.file, err.line, err.field, err.problem, raw)])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def raise_if_refused(self) -> None:
        if self.count and not self.skip:
            raise ManyBadRows(self.shown, self.count)


def _placeholders(session: Session, n: int) -> str:
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    return ", ".join([mark] * n)


def _import_systems(session: Session, path: Path) -> int:
    parsed = load_yaml(path, SystemsFile)
    seen: set[str] = set()
    for i, entry in enumerate(parsed.systems):
        if entry.name in seen:
            raise BadInput(str(path), None, f"systems.{i}.name", f"duplicate system {entry.name!r}")
        seen.add(entry.name)
        existing = session.get(System, entry.name)
        system = existing or System(name=entry.name)
        system.description, system.location, system.kind = entry.description, entry.location, entry.kind
        session.add(system)
    session.flush()
    return len(parsed.systems)


def _as_row(columns: tuple[str, ...], cells: Cells) -> Row:
    return dict(zip(columns, cells, strict=True))


def _batches(rows: Iterator[tuple[int, Cells]], size: int | None = None) -> Iterator[list[tuple[int, Cells]]]:
    size = size or BATCH  # read at call time, so BATCH can be tuned (and lowered in tests)
    while batch := list(islice(rows, size)):
        yield batch


def _bulk_write(
    session: Session,
    table: str,
    columns: tuple[str, ...],
    values: list[tuple[Any, ...]],
    conflict: str,
    executemany_sql: str,
) -> None:
    """Write a validated batch: executemany on SQLite; COPY into a staging table, then one upsert, on PostgreSQL."""
    if session.get_bind().dialect.name != "postgresql":
        session.connection().exec_driver_sql(executemany_sql, values)
        return
    raw = session.connection().connection.driver_connection
    staging, cols = f"_incoming_{table}", ", ".join(columns)
    with raw.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS SELECT {cols} FROM {table} WITH NO DATA")
        cur.execute(f"TRUNCATE {staging}")
        with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} {conflict}")


def _import_people(
    session: Session,
    path: Path,
    import_id: int,
    rejects: _Rejects,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> None:
    conn = session.connection()
    cols = (*PEOPLE_COLUMNS, "import_id")
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:])
    upsert = (
        f"INSERT INTO person ({', '.join(cols)}) VALUES ({_placeholders(session, len(cols))}) "
        f"ON CONFLICT (person_id) DO UPDATE SET {updates}"
    )
    before = conn.execute(text("SELECT COUNT(*) FROM person")).scalar_one()
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    today = clock.now().date().isoformat()
    for batch in _batches(read_records(path, PEOPLE_COLUMNS, ("person_id",), progress), BATCH):
        report.people_read += len(batch)
        values: list[tuple[Any, ...]] = []
        in_batch: dict[str, int] = {}
        for line, cells in batch:
            try:
                vals = _person_values(cells, today)
            except ValueError as exc:
                rejects.add(BadInput(str(path), line, exc.args[0], exc.args[1]), _as_row(PEOPLE_COLUMNS, cells))
                continue
            if vals[0] in in_batch:
                rejects.add(
                    BadInput(str(path), line, "person_id", f"duplicate id (also on line {in_batch[vals[0]]})"),
                    _as_row(PEOPLE_COLUMNS, cells),
                )
                continue
            in_batch[vals[0]] = line
            values.append((*vals, import_id))
        if in_batch:
            # A person already written by this import (an earlier batch) is a duplicate row in the file.
            ids = list(in_batch)
            seen = (
                conn.exec_driver_sql(
                    f"SELECT person_id FROM person WHERE import_id = {import_id} AND person_id IN "
                    f"({', '.join([mark] * len(ids))})",
                    tuple(ids),
                )
                .scalars()
                .all()
            )
            if seen:
                dup = set(seen)
                for pid in dup:
                    rejects.add(
                        BadInput(str(path), in_batch[pid], "person_id", "duplicate id (appears earlier in the file)"),
                        None,
                    )
                values = [v for v in values if v[0] not in dup]
        if values:
            _bulk_write(session, "person", cols, values, f"ON CONFLICT (person_id) DO UPDATE SET {updates}", upsert)
    report.people_new += conn.execute(text("SELECT COUNT(*) FROM person")).scalar_one() - before


def _import_holdings(
    session: Session,
    path: Path,
    workspace: Path | None,
    rejects: _Rejects,
    report: ImportReport,
    progress: Callable[[int], None] | None,
) -> None:
    conn = session.connection()
    systems = set(conn.execute(text("SELECT name FROM system")).scalars())
    categories = set(catalog.categories(workspace).by_key())
    mark = "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"
    insert = (
        f"INSERT INTO holding (person_id, system, category, since, until) "
        f"VALUES ({_placeholders(session, 5)}) ON CONFLICT DO NOTHING"
    )
    before = conn.execute(text("SELECT COUNT(*) FROM holding")).scalar_one()
    required = ("person_id", "system", "category", "since")
    for batch in _batches(read_records(path, HOLDING_COLUMNS, required, progress), BATCH):
        report.holdings_read += len(batch)
        values: list[tuple[Any, ...]] = []
        invalid: set[int] = set()
        for line, cells in batch:
            try:
                values.append(_holding_values(cells, systems, categories))
            except ValueError as exc:
                invalid.add(line)
                rejects.add(BadInput(str(path), line, exc.args[0], exc.args[1]), _as_row(HOLDING_COLUMNS, cells))
        ids = list({v[0] for v in values})
        known: set[str] = set()
        for start in range(0, len(ids), 900):
            chunk = ids[start : start + 900]
            known.update(
                conn.exec_driver_sql(
                    f"SELECT person_id FROM person WHERE person_id IN ({', '.join([mark] * len(chunk))})", tuple(chunk)
                )
                .scalars()
                .all()
            )
        if len(known) < len(ids):
            for line, cells in batch:
                if line not in invalid and cells[0] not in known:
                    rejects.add(
                        BadInput(str(path), line, "person_id", f"unknown person {cells[0][:64]!r}"),
                        _as_row(HOLDING_COLUMNS, cells),
                    )
            values = [v for v in values if v[0] in known]
        if values:
            _bulk_write(session, "holding", HOLDING_COLUMNS, values, "ON CONFLICT DO NOTHING", insert)
    report.holdings_new += conn.execute(text("SELECT COUNT(*) FROM holding")).scalar_one() - before


def _holding_values(cells: Cells, systems: set[str], categories: set[str]) -> tuple[Any, ...]:
    """Validate one holdings row (cells in HOLDING_COLUMNS order); raise (field, problem) as ValueError args."""
    pid, system, category, since_cell, until_cell = cells
    if not pid:
        raise ValueError("person_id", "is empty")
    if system not in systems:
        raise ValueError("system", f"unknown system {system[:64]!r} (import it with --systems)")
    if category not in categories:
        raise ValueError("category", f"unknown category {category[:64]!r}")
    try:
        since = iso_date(since_cell)
    except ValueError:
        raise ValueError("since", f"not an ISO date: {since_cell[:20]!r}") from None
    until = None
    if until_cell:
        try:
            until = iso_date(until_cell)
        except ValueError:
            raise ValueError("until", f"not an ISO date: {until_cell[:20]!r}") from None
        if until < since:  # YYYY-MM-DD strings order like the dates they name
            raise ValueError("until", "is before since")
    return (pid, system, category, since, until)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk import.

    Rows are freed by reference counting as each batch is written; the collector would only rescan every live
    object (SQLAlchemy's included) thousands of times while the batches in flight keep triggering it.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def import_inventory(
    session: Session,
    *,
    people: Path | None = None,
    holdings: Path | None = None,
    systems: Path | None = None,
    workspace: Path | None = None,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import systems, then people, then holdings in the caller's transaction; refuse all on any bad row."""
    report = ImportReport()
    rejects = _Rejects(skip_invalid, rejects_path)
    conn = session.connection()
    import_id = int(conn.execute(text("SELECT COALESCE(MAX(import_id), 0) + 1 FROM person")).scalar_one())
    try:
        if systems is not None:
            report.systems = _import_systems(session, systems)
        with _collector_paused():
            if people is not None:
                _import_people(session, people, import_id, rejects, report, progress)
            if holdings is not None:
                _import_holdings(session, holdings, workspace, rejects, report, progress)
    finally:
        rejects.close()
    rejects.raise_if_refused()
    if session.get_bind().dialect.name == "postgresql" and (people is not None or holdings is not None):
        conn.execute(text("ANALYZE person, holding"))  # the planner's sizes, before the first assessment runs
    report.rejected = rejects.count
    report.rejects_file = rejects_path if rejects.count else None
    report.errors = rejects.shown
    return report


# ---- stats --------------------------------------------------------------------------------------


def child_cutoff(on: date) -> date:
    """Return the birth date after which a person is under 14 on `on` (policy §八; 儿童 = under 14)."""
    return clock.years_before(on, 14)


def stats(session: Session) -> dict[str, Any]:
    """Count people, holdings by system and category, children, cancelled accounts and the unreachable."""
    conn = session.connection()
    cutoff = child_cutoff(clock.now().date()).isoformat()

    def scalar(sql: str, **params: Any) -> int:
        return int(conn.execute(text(sql), params).scalar_one())

    no_channel = (
        "SELECT COUNT(*) FROM person WHERE "
        "(birth_date IS NULL OR birth_date <= :c) AND email IS NULL AND phone IS NULL AND push_token IS NULL "
        "AND postal_address IS NULL"
    )
    child_unreachable = (
        "SELECT COUNT(*) FROM person WHERE birth_date > :c AND guardian_email IS NULL AND guardian_phone IS NULL "
        "AND (postal_address IS NULL OR guardian_name IS NULL)"
    )
    return {
        "people": scalar("SELECT COUNT(*) FROM person"),
        "holdings": scalar("SELECT COUNT(*) FROM holding"),
        "systems": [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT s.name AS name, s.kind AS kind, s.location AS location, COUNT(h.id) AS holdings, "
                    "COUNT(DISTINCT h.person_id) AS people FROM system s LEFT JOIN holding h ON h.system = s.name "
                    "GROUP BY s.name, s.kind, s.location ORDER BY s.name"
                )
            )
        ],
        "categories": {
            r[0]: {"holdings": r[1], "people": r[2]}
            for r in conn.execute(
                text("SELECT category, COUNT(*), COUNT(DISTINCT person_id) FROM holding GROUP BY category ORDER BY 1")
            )
        },
        "children": scalar("SELECT COUNT(*) FROM person WHERE birth_date > :c", c=cutoff),
        "cancelled": scalar("SELECT COUNT(*) FROM person WHERE account_status = 'cancelled'"),
        "no_usable_channel": scalar(no_channel, c=cutoff) + scalar(child_unreachable, c=cutoff),
    }
