"""Engines, the unit of work, and column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from sqlalchemy import DateTime, Engine, create_engine, event, inspect, text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, Session, SQLModel

from incident.config import Workspace
from incident.errors import BadConfig, CorruptRecord, DatabaseBusy, IncidentError, SchemaOutOfDate

# Alembic revisions in incident/migrations/versions, oldest first; the last one is what this code needs.
SCHEMA_REVISIONS = ("0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009", "0010", "0011")
SCHEMA_HEAD = SCHEMA_REVISIONS[-1]


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the backend keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use clock.now()")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def result_processor(self, dialect: Any, coltype: Any) -> Any:
        inner = super().result_processor(dialect, coltype)
        if inner is None:
            return None

        def process(value: Any) -> Any:
            try:
                return inner(value)
            except (ValueError, TypeError):
                raise CorruptRecord("a stored time", f"{str(value)[:40]!r} is not a time") from None

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


DEFAULT_BUSY_TIMEOUT = 30.0  # seconds SQLite waits for another process's write lock (PostgreSQL: as long as it takes)
BUSY_TIMEOUT_ENV = "INCIDENT_DB_BUSY_TIMEOUT"
_busy_timeouts: dict[str, float | None] = {}


def busy_timeout(ws: Workspace) -> float | None:
    """Seconds a command waits for a lock another process holds: INCIDENT_DB_BUSY_TIMEOUT, else
    [database] busy_timeout_seconds, else None (SQLite then waits 30 s, PostgreSQL until the lock is free)."""
    raw = os.environ.get(BUSY_TIMEOUT_ENV) or None
    where = BUSY_TIMEOUT_ENV
    if raw is None:
        raw = ws.config.get("database", {}).get("busy_timeout_seconds")
        where = f"{ws.root / 'incident.toml'}: [database] busy_timeout_seconds"
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise BadConfig(f"{where}: not a number of seconds: {raw!r}") from None
    if not 0 <= value <= 86400:
        raise BadConfig(f"{where}: must be between 0 and 86400 seconds, not {raw!r}")
    return value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, busy_ms: int) -> None:
    dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    # A state change takes the write lock up front, so a read-modify-write cannot lose an update.
    immediate = conn.get_execution_options().get("write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@cache
def _engine(url: str) -> Engine:
    timeout = _busy_timeouts.get(url)
    # hide_parameters: a database error's message must never carry the rows it was writing (personal data).
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and not os.path.exists(path):
            # Personal data: the database is readable by its owner only.
            fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        seconds = DEFAULT_BUSY_TIMEOUT if timeout is None else timeout
        engine = create_engine(url, connect_args={"timeout": seconds, "check_same_thread": False}, hide_parameters=True)
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_ms=int(seconds * 1000)))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    args = {} if timeout is None else {"options": f"-c lock_timeout={int(timeout * 1000)}"}
    return create_engine(url, pool_pre_ping=True, hide_parameters=True, connect_args=args)


def engine_for(ws: Workspace) -> Engine:
    """Return the (cached) engine for a workspace's database."""
    url = ws.database_url
    if url not in _busy_timeouts:
        _busy_timeouts[url] = busy_timeout(ws)
    return _engine(url)


def database_error(exc: BaseException) -> IncidentError | None:
    """One line for a database that is locked by another process, full, or unreachable; None for anything else.

    Only the driver's first line is kept: SQLAlchemy's message would add the statement (and, without
    hide_parameters, the personal data it was writing)."""
    from sqlalchemy.exc import OperationalError

    if not isinstance(exc, OperationalError):
        return None
    lines = str(exc.orig or exc).strip().splitlines()
    detail = lines[0].strip() if lines else type(exc.orig).__name__
    lowered = detail.lower()
    if "database is locked" in lowered or "lock timeout" in lowered:
        return DatabaseBusy(
            f"the database is locked by another process ({detail}); the step that waited changed "
            "nothing: run the command again when the other one has finished (wait longer with "
            f"[database] busy_timeout_seconds or {BUSY_TIMEOUT_ENV})"
        )
    if "disk is full" in lowered or "disk i/o error" in lowered or "no space" in lowered:
        return IncidentError(
            f"the database cannot be written ({detail}): is the disk full? Nothing was changed "
            "by the failed step; free space and run the command again"
        )
    return IncidentError(f"database error: {detail}")


# Every module that defines tables, by name: the base may not import the domains, yet a unit of work needs the
# whole schema loaded (foreign keys name other domains' tables). Like the transport core and its schemes.
TABLE_MODULES = (
    "incident.inventory.models",
    "incident.incidents.models",
    "incident.assess.models",
    "incident.notices.models",
    "incident.dispatch.models",
    "incident.reports.models",
    "incident.audit.models",
    "incident.approvals",
)


def _import_models() -> None:
    import importlib

    for name in TABLE_MODULES:
        importlib.import_module(name)


def create_schema(ws: Workspace) -> None:
    """Create every table of the current schema (idempotent) and stamp it with the newest revision."""
    _import_models()
    engine = engine_for(ws)
    with engine.begin() as conn:
        found = _revision(conn)
        if found is not None and found != SCHEMA_HEAD:
            raise SchemaOutOfDate(f"this database is at schema {found}: run `incident db upgrade`")
    SQLModel.metadata.create_all(engine)
    with engine.begin() as conn:
        if found is None:
            conn.execute(
                text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            )
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": SCHEMA_HEAD})


def _revision(conn: Any) -> str | None:
    """The schema revision of a database: alembic_version, or 0001 for a database made before migrations."""
    tables = set(inspect(conn).get_table_names())
    if "alembic_version" in tables:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if "schema_meta" in tables:
        return "0001"  # the first release recorded version 1 in schema_meta and had no alembic table
    return None


def check_schema(engine: Engine) -> None:
    """Refuse to work on a database made by another schema revision, saying what to do."""
    with engine.connect() as conn:
        found = _revision(conn)
    if found is None:
        raise IncidentError("the database has no incident schema (run `incident init`)")
    if found == SCHEMA_HEAD:
        return
    if found in SCHEMA_REVISIONS:
        raise SchemaOutOfDate(
            f"the database schema is at revision {found}, this incident needs {SCHEMA_HEAD}: run `incident db upgrade`"
        )
    raise SchemaOutOfDate(
        f"the database schema revision {found} is unknown to this incident (newer?); upgrade incident itself"
    )


def upgrade_schema(ws: Workspace) -> tuple[str | None, str]:
    """Apply every Alembic migration the database lacks; return (from, to) revisions."""
    from pathlib import Path

    from alembic import command
    from alembic.config import Config

    engine = engine_for(ws)
    with engine.begin() as conn:
        before = _revision(conn)
        if before is None:
            raise IncidentError("the database has no incident schema (run `incident init`)")
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        if "alembic_version" not in inspect(conn).get_table_names():
            command.stamp(cfg, "0001")
        command.upgrade(cfg, "head")
    _checked.discard(ws.database_url)
    return before, SCHEMA_HEAD


_checked: set[str] = set()


@contextmanager
def unit_of_work(ws: Workspace, *, write: bool = True) -> Iterator[Session]:
    """One transaction per use case: commit on success, roll everything back on any error."""
    _import_models()
    engine = engine_for(ws)
    if ws.database_url not in _checked:
        check_schema(engine)
        _checked.add(ws.database_url)
    with Session(engine, expire_on_commit=False) as session:
        session.connection(execution_options={"write": write})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def compact(ws: Workspace) -> bool:
    """Rewrite a SQLite database file so the rows deleted from it leave no copy in its free pages or its WAL;
    return whether it did (PostgreSQL: no, its VACUUM FULL locks tables others use, so the operator runs it)."""
    if not ws.database_url.startswith("sqlite"):
        return False
    raw = engine_for(ws).raw_connection()
    try:
        conn: Any = raw.driver_connection  # outside any transaction: VACUUM refuses to run inside one
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    return True


class SchemaMeta(SQLModel, table=True):
    """Workspace facts kept in the database (the notice-reference secret)."""

    __tablename__ = "schema_meta"
    key: str = Field(primary_key=True)
    value: str


def insert_rows(session: Session, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert many rows in the session's transaction: executemany on SQLite, binary COPY on PostgreSQL (one
    stream instead of a statement a row, and bytes sent as they are)."""
    if not rows:
        return
    cols = ", ".join(columns)
    if session.get_bind().dialect.name == "postgresql":
        raw: Any = session.connection().connection.driver_connection  # a psycopg connection
        with raw.cursor() as cur:
            types = dict(
                cur.execute(
                    "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute WHERE attrelid = %s::regclass "
                    "AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
            with cur.copy(f"COPY {table} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:  # bytea as is, not hex
                copy.set_types([types[c] for c in columns])
                for row in rows:
                    copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    session.connection().exec_driver_sql(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)


def db_time(session: Session, when: datetime) -> datetime:
    """A datetime as a raw driver-level statement must bind it (raw SQL bypasses UTCDateTime): aware UTC on
    PostgreSQL, naive UTC on SQLite. Only for measured bulk paths; everything else goes through the table."""
    if when.tzinfo is None:
        raise ValueError("naive datetime given to the database; use clock.now()")
    when = when.astimezone(UTC)
    return when.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else when


def stored_json(raw: str | None, where: str) -> Any:
    """Parse JSON the tool stored; a row edited into something else is a CorruptRecord naming it, not a traceback."""
    try:
        return json.loads(raw or "")
    except (ValueError, RecursionError):
        raise CorruptRecord(where, "not the JSON the tool stored") from None


def read_time(value: datetime | str) -> datetime:
    """A datetime read by a raw statement, as aware UTC (SQLite hands back naive UTC text, PostgreSQL aware values)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
