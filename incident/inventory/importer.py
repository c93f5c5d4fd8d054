"""Import the inventory files in batches: validate each row, collect the rejects, write each batch in bulk."""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text
from sqlmodel import Session

from incident import catalog, clock
from incident.datafiles import load_yaml
from incident.errors import BadInput, ManyBadRows
from incident.files import open_private, safe_cell
from incident.inventory.models import System, SystemsFile, system_names
from incident.inventory.rows import Cells, Row, read_records
from incident.inventory.validation import HOLDING_COLUMNS, PEOPLE_COLUMNS, BadCell, holding_values, person_values

BATCH = 5000
MAX_SHOWN_ERRORS = 10
ID_CHUNK = 900  # under SQLite's oldest limit of 999 bound parameters

OnBytes = Callable[[int], None]  # told how many more bytes of the files were read


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
        self.skip, self.path, self.count = skip_invalid, rejects_path, 0
        self.shown: list[BadInput] = []
        self._writer: Any = None
        self._files = ExitStack()

    def add(self, err: BadInput, row: Row | None) -> None:
        self.count += 1
        if len(self.shown) < MAX_SHOWN_ERRORS:
            self.shown.append(err)
        if self.skip and self.path is not None:
            if self._writer is None:
                self._writer = csv.writer(self._files.enter_context(open_private(self.path)))
                self._writer.writerow(["file", "line", "field", "problem", "row"])
            raw = "" if row is None else ";".join(f"{k}={v}" for k, v in row.items() if v)
            self._writer.writerow([safe_cell(x) for x in (err.file, err.line, err.field, err.problem, raw)])

    def add_cell(self, path: Path, line: int, exc: BadCell, columns: tuple[str, ...], cells: Cells) -> None:
        self.add(BadInput(str(path), line, exc.field, exc.problem), _as_row(columns, cells))

    def close(self) -> None:
        self._files.close()

    def raise_if_refused(self) -> None:
        if self.count and not self.skip:
            raise ManyBadRows(self.shown, self.count)


def _mark(session: Session) -> str:
    return "?" if session.get_bind().dialect.paramstyle == "qmark" else "%s"


def _placeholders(session: Session, n: int) -> str:
    return ", ".join([_mark(session)] * n)


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def _as_row(columns: tuple[str, ...], cells: Cells) -> Row:
    return dict(zip(columns, cells, strict=True))


def _batches(rows: Iterator[tuple[int, Cells]], size: int | None = None) -> Iterator[list[tuple[int, Cells]]]:
    size = size or BATCH  # read at call time, so BATCH can be tuned (and lowered in tests)
    while batch := list(islice(rows, size)):
        yield batch


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


def _bulk_write(
    session: Session,
    table: str,
    columns: tuple[str, ...],
    values: list[tuple[Any, ...]],
    *,
    conflict: str,
    executemany_sql: str,
) -> None:
    """Write a validated batch: executemany on SQLite; COPY into a staging table, then one upsert, on PostgreSQL."""
    if session.get_bind().dialect.name != "postgresql":
        session.connection().exec_driver_sql(executemany_sql, values)
        return
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a checked-out connection always has its driver's
    staging, cols = f"_incoming_{table}", ", ".join(columns)
    with raw.cursor() as cur:
        cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS SELECT {cols} FROM {table} WITH NO DATA")
        cur.execute(f"TRUNCATE {staging}")
        with cur.copy(f"COPY {staging} ({cols}) FROM STDIN") as copy:
            for row in values:
                copy.write_row(row)
        cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {staging} {conflict}")


# ---- people -------------------------------------------------------------------------------------


def _valid_people(
    batch: list[tuple[int, Cells]], path: Path, rejects: _Rejects, today: str
) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    """Return the batch's valid rows and the line of each person in it; reject bad rows and repeats in the batch."""
    values: list[tuple[Any, ...]] = []
    in_batch: dict[str, int] = {}
    for line, cells in batch:
        try:
            vals = person_values(cells, today)
        except BadCell as exc:
            rejects.add_cell(path, line, exc, PEOPLE_COLUMNS, cells)
            continue
        if vals[0] in in_batch:
            rejects.add(
                BadInput(str(path), line, "person_id", f"duplicate id (also on line {in_batch[vals[0]]})"),
                _as_row(PEOPLE_COLUMNS, cells),
            )
            continue
        in_batch[vals[0]] = line
        values.append(vals)
    return values, in_batch


def _written_by_this_import(session: Session, import_id: int, ids: list[str]) -> set[str]:
    """Return the ids among `ids` that an earlier batch of this import already wrote."""
    sql = (
        f"SELECT person_id FROM person WHERE import_id = {import_id} AND person_id IN "
        f"({_placeholders(session, len(ids))})"
    )
    return set(session.connection().exec_driver_sql(sql, tuple(ids)).scalars().all())


def _import_people(
    session: Session, path: Path, import_id: int, rejects: _Rejects, report: ImportReport, progress: OnBytes | None
) -> None:
    conn = session.connection()
    cols = (*PEOPLE_COLUMNS, "import_id")
    updates = ", ".join(f"{c} = excluded.{c}" for c in cols[1:])
    conflict = f"ON CONFLICT (person_id) DO UPDATE SET {updates}"
    upsert = f"INSERT INTO person ({', '.join(cols)}) VALUES ({_placeholders(session, len(cols))}) {conflict}"
    before = _count(conn, "person")
    today = clock.now().date().isoformat()
    for batch in _batches(read_records(path, PEOPLE_COLUMNS, ("person_id",), progress=progress), BATCH):
        report.people_read += len(batch)
        values, in_batch = _valid_people(batch, path, rejects, today)
        # A person already written by this import (an earlier batch) is a duplicate row in the file.
        dup = _written_by_this_import(session, import_id, list(in_batch)) if in_batch else set()
        for pid in dup:
            rejects.add(
                BadInput(str(path), in_batch[pid], "person_id", "duplicate id (appears earlier in the file)"), None
            )
        rows = [(*v, import_id) for v in values if v[0] not in dup]
        if rows:
            _bulk_write(session, "person", cols, rows, conflict=conflict, executemany_sql=upsert)
    report.people_new += _count(conn, "person") - before


# ---- holdings -----------------------------------------------------------------------------------


def _known_people(session: Session, ids: list[str]) -> set[str]:
    """Return the ids among `ids` that the person table holds, asking in chunks the driver accepts."""
    known: set[str] = set()
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        sql = f"SELECT person_id FROM person WHERE person_id IN ({_placeholders(session, len(chunk))})"
        known.update(session.connection().exec_driver_sql(sql, tuple(chunk)).scalars().all())
    return known


def _import_holdings(
    session: Session,
    path: Path,
    workspace: Path | None,
    rejects: _Rejects,
    report: ImportReport,
    progress: OnBytes | None,
) -> None:
    conn = session.connection()
    systems = system_names(session)
    categories = set(catalog.categories(workspace).by_key())
    insert = (
        f"INSERT INTO holding (person_id, system, category, since, until) "
        f"VALUES ({_placeholders(session, 5)}) ON CONFLICT DO NOTHING"
    )
    before = _count(conn, "holding")
    required = ("person_id", "system", "category", "since")
    for batch in _batches(read_records(path, HOLDING_COLUMNS, required, progress=progress), BATCH):
        report.holdings_read += len(batch)
        values: list[tuple[Any, ...]] = []
        invalid: set[int] = set()
        for line, cells in batch:
            try:
                values.append(holding_values(cells, systems, categories))
            except BadCell as exc:
                invalid.add(line)
                rejects.add_cell(path, line, exc, HOLDING_COLUMNS, cells)
        ids = list({v[0] for v in values})
        known = _known_people(session, ids)
        if len(known) < len(ids):
            for line, cells in batch:
                if line not in invalid and cells[0] not in known:
                    rejects.add(
                        BadInput(str(path), line, "person_id", f"unknown person {cells[0][:64]!r}"),
                        _as_row(HOLDING_COLUMNS, cells),
                    )
            values = [v for v in values if v[0] in known]
        if values:
            _bulk_write(
                session, "holding", HOLDING_COLUMNS, values, conflict="ON CONFLICT DO NOTHING", executemany_sql=insert
            )
    report.holdings_new += _count(conn, "holding") - before


# ---- the whole import ---------------------------------------------------------------------------


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
    progress: OnBytes | None = None,
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
