"""Inventory rows on SQLite: import and affected-people determination, each beside a bare baseline.

Each step runs in its own child process (see harness.run_step), so its peak memory is its own. The baselines use
plain sqlite3 only; they never import incident or SQLAlchemy.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import Context, Measure, Row

PRAGMAS = ("journal_mode", "synchronous", "foreign_keys", "temp_store", "cache_size", "busy_timeout")

# The incident of the affected row: the payment partner leaked bank cards, over a window covering all history.
SCOPE_SYSTEM, SCOPE_CATEGORY, WINDOW_FROM = "pay-partner", "bank_card", "2000-01-01"

SCOPE_SELECT = """
SELECT DISTINCT h.person_id, h.category, p.name, p.email, p.phone, p.push_token, p.postal_address, p.locale,
       p.region, p.account_status, p.birth_date, p.guardian_name, p.guardian_email, p.guardian_phone
FROM holding h JOIN person p ON p.person_id = h.person_id
WHERE h.system IN (?) AND h.category IN (?) AND h.since <= ? AND (h.until IS NULL OR h.until >= ?)
"""


def prepare(ctx: Context) -> dict[str, int]:
    """Generate (or reuse) the inventory files; record the real database's schema and PRAGMAs for the baseline."""
    from incident.audit.flows import init_workspace
    from incident.db import engine_for
    from incident.demo.synthetic import write_inventory

    if not (ctx.data / "complete").exists():
        partial = ctx.data.with_name(ctx.data.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        print(f"generating {ctx.people:,} people into {ctx.data} ...", flush=True)
        write_inventory(partial, ctx.people, ctx.seed)
        (partial / "complete").write_text("")
        partial.rename(ctx.data)
    shutil.rmtree(ctx.run, ignore_errors=True)
    ws = init_workspace(ctx.run / "schema-probe", "bench")
    engine = engine_for(ws)
    with engine.connect() as conn:
        pragmas = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in PRAGMAS}
        ddl = list(conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid").scalars())
    engine.dispose()
    (ctx.run / "schema.json").write_text(json.dumps({"pragmas": pragmas, "ddl": ddl}, indent=1))
    with open(ctx.data / "holdings.csv", "rb") as f:
        holdings = sum(1 for _ in f) - 1
    return {"people": ctx.people, "holdings": holdings}


def _bare_connection(ctx: Context, path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the PRAGMAs the real engine sets."""
    schema = json.loads((ctx.run / "schema.json").read_text())
    conn = sqlite3.connect(path, isolation_level=None)
    for name, value in schema["pragmas"].items():
        conn.execute(f"PRAGMA {name}={value}")
    return conn


def import_baseline(ctx: Context) -> Measure:
    """csv.reader straight into executemany, one transaction, the real DDL and PRAGMAs; no validation."""
    import csv

    import yaml

    db = ctx.run / "baseline.db"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    conn = _bare_connection(ctx, db)
    for sql in json.loads((ctx.run / "schema.json").read_text())["ddl"]:
        conn.execute(sql)
    start = time.perf_counter()
    conn.execute("BEGIN")
    systems = yaml.safe_load((ctx.data / "systems.yaml").read_text(encoding="utf-8"))["systems"]
    conn.executemany(
        "INSERT INTO system (name, description, location, kind) VALUES (?, ?, ?, ?)",
        [(s["name"], s["description"], s["location"], s["kind"]) for s in systems],
    )
    with open(ctx.data / "people.csv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        conn.executemany(
            f"INSERT INTO person ({', '.join(header)}, import_id) VALUES ({', '.join('?' * len(header))}, 1)", reader
        )
    with open(ctx.data / "holdings.csv", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        conn.executemany(f"INSERT INTO holding ({', '.join(header)}) VALUES ({', '.join('?' * len(header))})", reader)
    conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    people = conn.execute("SELECT COUNT(*) FROM person").fetchone()[0]
    holdings = conn.execute("SELECT COUNT(*) FROM holding").fetchone()[0]
    conn.close()
    return Measure(seconds, people + holdings, f"{people:,} people, {holdings:,} holdings")


def import_ours(ctx: Context) -> Measure:
    """incident.inventory.flows.import_files on the fresh workspace: validation, upserts, audit, one transaction."""
    from incident.audit.flows import init_workspace

    shutil.rmtree(ctx.workspace, ignore_errors=True)
    return timed_import(init_workspace(ctx.workspace, "bench"), ctx.data)


def timed_import(ws: Any, data: Path) -> Measure:
    """import_files of the generated inventory into a new workspace, timed."""
    from incident.inventory.flows import import_files

    start = time.perf_counter()
    report = import_files(
        ws, "bench", people=data / "people.csv", holdings=data / "holdings.csv", systems=data / "systems.yaml"
    )
    seconds = time.perf_counter() - start
    return Measure(
        seconds,
        report.people_new + report.holdings_new,
        f"{report.people_new:,} people, {report.holdings_new:,} holdings",
    )


def affected_baseline(ctx: Context) -> Measure:
    """The scope SELECT (holdings in scope joined to their person) in plain sqlite3, every row fetched."""
    conn = _bare_connection(ctx, ctx.workspace / "incident.db")
    start = time.perf_counter()
    cur = conn.execute(SCOPE_SELECT, (SCOPE_SYSTEM, SCOPE_CATEGORY, datetime.now(UTC).date().isoformat(), WINDOW_FROM))
    rows, people = 0, set()
    for row in cur:
        rows += 1
        people.add(row[0])
    seconds = time.perf_counter() - start
    conn.close()
    return Measure(seconds, len(people), f"{len(people):,} people ({rows:,} exposed holdings)")


def affected_ours(ctx: Context) -> Measure:
    from incident.config import find_workspace

    return timed_affected(find_workspace(ctx.workspace))


def scope_incident(ws: Any, title: str, until: datetime | None = None) -> str:
    """Open an incident of the benchmark's scope: the payment partner's bank cards, from WINDOW_FROM to `until`
    (default now)."""
    from incident import clock
    from incident.incidents import flows as incident_flows
    from incident.incidents.service import OpenRequest

    now = clock.now()
    return incident_flows.open_incident(
        ws,
        OpenRequest(
            playbook="processor-breach",
            title=title,
            systems=[SCOPE_SYSTEM],
            categories=[SCOPE_CATEGORY],
            exposure_from=datetime.fromisoformat(WINDOW_FROM).replace(tzinfo=UTC),
            exposure_to=until or now,
            discovered_at=now,
        ),
        "bench",
    )


def timed_affected(ws: Any) -> Measure:
    """assess.determine_affected (one INSERT..SELECT into affected) for a new scope incident, in a unit of work,
    committed."""
    from incident.assess.snapshot import determine_affected
    from incident.db import unit_of_work
    from incident.incidents.models import get

    incident_id = scope_incident(ws, "Benchmark: payment partner leaked bank cards")
    start = time.perf_counter()
    with unit_of_work(ws) as session:
        people = determine_affected(session, get(session, incident_id))
    seconds = time.perf_counter() - start
    return Measure(seconds, people, f"{people:,} people")


METHOD = [
    "Import: ours is `incident.inventory.flows.import_files` (validation, normalisation, upserts, duplicate and "
    "unknown-person checks, audit entry, one transaction) on a freshly initialised workspace; the baseline feeds "
    "`csv.reader` rows unchanged into `executemany` in one transaction (no validation, empty cells stay empty "
    "strings).",
    "Affected people: ours is `assess.determine_affected` (one INSERT..SELECT into `affected`) in a unit "
    "of work, committed; the baseline runs the same scope SELECT, holdings in scope joined to their person, in "
    "plain sqlite3 on the same database and iterates every row.",
]

ROWS = [
    Row(
        "Inventory import, SQLite ({people:,} people, {holdings:,} holdings)",
        "import-baseline",
        "import-ours",
        3.0,
        400,
    ),
    Row("Affected people, SQLite (~20% of {people:,})", "affected-baseline", "affected-ours", 2.0, 400),
]

STEPS: dict[str, Callable[[Context], Measure]] = {
    "import-baseline": import_baseline,
    "import-ours": import_ours,
    "affected-baseline": affected_baseline,
    "affected-ours": affected_ours,
}


def describe(facts: dict[str, Any]) -> str:
    """One line describing the data set, for the results file."""
    return (
        f"{facts['people']:,} people and {facts['holdings']:,} holdings generated by "
        f"`incident.demo.synthetic.write_inventory`; the affected incident is {SCOPE_SYSTEM}/{SCOPE_CATEGORY} over "
        f"{WINDOW_FROM}..today"
    )
