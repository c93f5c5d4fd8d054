"""PostgreSQL rows: inventory import and affected people beside COPY and a plain SELECT, and dispatch workers.

prepare() starts a throwaway PostgreSQL (tests/pgtemp.py) that lives until cleanup(). It keeps two template
databases: a freshly initialised workspace schema (the baseline's tables are a copy of it, so the DDL is the
real one) and an enqueued dispatch for the workers row (each run works on a fresh copy, CREATE DATABASE ...
TEMPLATE). The steps reach it through run/pg.json.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sinks
from dispatch_steps import (
    SENDER,
    THREADS,
    approved_incident,
    configure_channels,
    gateway_baseline,
    sizes,
    smtp_baseline,
    timed_dispatch,
    write_dispatch_inventory,
)
from harness import Context, Measure, Row
from inventory_steps import (
    SCOPE_CATEGORY,
    SCOPE_SELECT,
    SCOPE_SYSTEM,
    WINDOW_FROM,
    scope_incident,
    timed_affected,
    timed_import,
)
from render_steps import ours_render, plain_render

SCHEMA_DB, OURS_DB, WORKERS_DB = "bench_schema", "bench_ours", "bench_workers"
SINK_DELAY = 0.05  # seconds the SMTP sink takes per message in the workers row
WORKER_THREADS = 2  # sending threads (and email concurrency) of each `incident worker`
_server: dict[str, Any] = {}


def worker_sizes(ctx: Context) -> dict[str, int]:
    """Emails of the workers row: one worker's incident and the four workers' incident."""
    return {"one": 100, "four": 400} if ctx.quick else {"one": 300, "four": 1_200}


def _pg(ctx: Context) -> dict[str, Any]:
    return json.loads((ctx.run / "pg.json").read_text())  # type: ignore[no-any-return]


def _url(ctx: Context, database: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{_pg(ctx)['port']}/{database}"


def _admin(ctx: Context) -> Any:
    import psycopg

    return psycopg.connect(f"host=127.0.0.1 port={_pg(ctx)['port']} user=postgres dbname=postgres", autocommit=True)


def _fresh_database(ctx: Context, name: str, template: str | None = None) -> str:
    with _admin(ctx) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return _url(ctx, name)


@contextmanager
def _database_env(url: str) -> Iterator[None]:
    """Point incident at a PostgreSQL database (INCIDENT_DATABASE_URL), as a user of the CLI would."""
    old = os.environ.get("INCIDENT_DATABASE_URL")
    os.environ["INCIDENT_DATABASE_URL"] = url
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("INCIDENT_DATABASE_URL", None)
        else:
            os.environ["INCIDENT_DATABASE_URL"] = old


def prepare(ctx: Context) -> dict[str, Any]:
    """Start PostgreSQL; build the schema template and the enqueued dispatch of the workers row (not timed)."""
    from incident import db
    from incident.audit.flows import init_workspace
    from incident.config import find_workspace
    from incident.dispatch import flows as dispatch_flows

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' throwaway server
    from pgtemp import start_temp_postgres

    from incident.inventory.flows import import_files

    print("starting a throwaway PostgreSQL ...", flush=True)
    server = start_temp_postgres()
    _server["pg"] = server
    ctx.run.mkdir(parents=True, exist_ok=True)
    (ctx.run / "pg.json").write_text(json.dumps({"port": server.port, "folder": str(server.folder)}))
    with _database_env(_fresh_database(ctx, SCHEMA_DB)):
        probe = ctx.run / "pg-schema-probe"
        shutil.rmtree(probe, ignore_errors=True)
        ws = init_workspace(probe, "bench")
        db.engine_for(ws).dispose()
    size, sms, email = worker_sizes(ctx), sizes(ctx)["sms"], sizes(ctx)["email"]
    (ctx.run / "pg-render.json").unlink(missing_ok=True)  # its incident lives in the database the import remakes
    print(
        f"preparing the dispatch incidents on PostgreSQL ({size['one']:,} and {size['four']:,} emails for the "
        f"workers, {sms:,} SMS, {email:,} emails) ...",
        flush=True,
    )
    with _database_env(_fresh_database(ctx, WORKERS_DB)):
        root = ctx.run / "pg-workers-ws"
        shutil.rmtree(root, ignore_errors=True)
        data = ctx.run / "pg-workers-data"
        write_dispatch_inventory(
            data,
            [
                ("member-db-a", "email", size["one"]),
                ("member-db-b", "email", size["four"]),
                ("member-db-c", "sms", sms),
                ("member-db-d", "email", email),
            ],
        )
        ws = init_workspace(root, "bench")
        import_files(
            ws, "bench", people=data / "people.csv", holdings=data / "holdings.csv", systems=data / "systems.yaml"
        )
        ids = {
            kind: approved_incident(ws, system, f"Benchmark dispatch on PostgreSQL ({kind})")
            for kind, system in (
                ("one", "member-db-a"),
                ("four", "member-db-b"),
                ("sms", "member-db-c"),
                ("email", "member-db-d"),
            )
        }
        for kind in ("one", "four"):  # SMS and email stay approved: run_dispatch plans them in the timed run
            dispatch_flows.dispatch(
                find_workspace(root), ids[kind], "bench", workers=1, channel=None, hold_unknown=False, enqueue_only=True
            )
        db.engine_for(ws).dispose()
    (ctx.run / "pg-workers.json").write_text(json.dumps(ids))
    with open(ctx.data / "holdings.csv", "rb") as f:
        holdings = sum(1 for _ in f) - 1
    return {
        "workers_one": size["one"],
        "workers_four": size["four"],
        "pg_sms": sms,
        "pg_email": email,
        "people": ctx.people,
        "holdings": holdings,
    }


def cleanup(ctx: Context) -> None:
    server = _server.pop("pg", None)
    if server is not None:
        server.stop()


# ---- inventory import and affected people ---------------------------------------------------------


def import_baseline(ctx: Context) -> Measure:
    """psycopg COPY of the same CSV files, unchanged, into a copy of a fresh workspace's tables; no validation."""
    import psycopg
    import yaml

    url = _fresh_database(ctx, "bench_baseline", template=SCHEMA_DB)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        # COPY cannot add a constant column: the import id comes from a column default instead.
        conn.execute("ALTER TABLE person ALTER COLUMN import_id SET DEFAULT 1")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur:
            systems = yaml.safe_load((ctx.data / "systems.yaml").read_text(encoding="utf-8"))["systems"]
            cur.executemany(
                "INSERT INTO system (name, description, location, kind) VALUES (%s, %s, %s, %s)",
                [(s["name"], s["description"], s["location"], s["kind"]) for s in systems],
            )
            for table, name in (("person", "people.csv"), ("holding", "holdings.csv")):
                with open(ctx.data / name, "rb") as fh:
                    header = fh.readline().decode().strip()
                    with cur.copy(f"COPY {table} ({header}) FROM STDIN (FORMAT csv)") as copy:
                        while chunk := fh.read(1 << 20):
                            copy.write(chunk)
        conn.commit()
        seconds = time.perf_counter() - start
        people = conn.execute("SELECT COUNT(*) FROM person").fetchone()[0]  # type: ignore[index]
        holdings = conn.execute("SELECT COUNT(*) FROM holding").fetchone()[0]  # type: ignore[index]
    return Measure(seconds, people + holdings, f"{people:,} people, {holdings:,} holdings")


def import_ours(ctx: Context) -> Measure:
    """incident.inventory.flows.import_files on a fresh PostgreSQL workspace (COPY into staging, then upserts)."""
    from incident.audit.flows import init_workspace

    root = ctx.run / "pg-ws"
    shutil.rmtree(root, ignore_errors=True)
    with _database_env(_fresh_database(ctx, OURS_DB)):
        return timed_import(init_workspace(root, "bench"), ctx.data)


def affected_baseline(ctx: Context) -> Measure:
    """The scope SELECT in plain psycopg on the imported database, every row fetched."""
    import psycopg

    with psycopg.connect(_url(ctx, OURS_DB).replace("postgresql+psycopg", "postgresql")) as conn:
        start = time.perf_counter()
        params = (SCOPE_SYSTEM, SCOPE_CATEGORY, datetime.now(UTC).date(), datetime.fromisoformat(WINDOW_FROM).date())
        cur = conn.execute(SCOPE_SELECT.replace("?", "%s"), params)
        rows, people = 0, set()
        for row in cur:
            rows += 1
            people.add(row[0])
        seconds = time.perf_counter() - start
    return Measure(seconds, len(people), f"{len(people):,} people ({rows:,} exposed holdings)")


def affected_ours(ctx: Context) -> Measure:
    from incident.config import find_workspace

    with _database_env(_url(ctx, OURS_DB)):
        return timed_affected(find_workspace(ctx.run / "pg-ws"))


# ---- rendering ---------------------------------------------------------------------------------------


def _render_incident(ctx: Context) -> str:
    """An assessed incident of the render rows' scope in the imported PostgreSQL workspace (made once a run)."""
    from incident.assess import flows as assess_flows
    from incident.config import find_workspace

    cache = ctx.run / "pg-render.json"
    if cache.exists():
        return str(json.loads(cache.read_text())["id"])
    ws = find_workspace(ctx.run / "pg-ws")
    incident_id = scope_incident(ws, "Benchmark render on PostgreSQL: payment partner leaked bank cards")
    people = assess_flows.assess_incident(ws, incident_id, "bench")["counts"]["people"]
    cache.write_text(json.dumps({"id": incident_id, "people": people}))
    return incident_id


def render_baseline(ctx: Context) -> Measure:
    """The SQLite row's plain Jinja loop, the affected people read with a psycopg server-side cursor."""
    import psycopg

    from incident.assess.models import AFFECTED_COLUMNS
    from incident.config import find_workspace

    with _database_env(_url(ctx, OURS_DB)):
        incident_id = _render_incident(ctx)
        with psycopg.connect(_url(ctx, OURS_DB).replace("postgresql+psycopg", "postgresql")) as conn:

            def rows() -> Any:
                cur = conn.cursor(name="affected")
                cur.itersize = 2000
                cur.execute(
                    f"SELECT {', '.join(AFFECTED_COLUMNS)} FROM affected WHERE incident_id = %s ORDER BY person_id",
                    (incident_id,),
                )
                return cur

            return plain_render(find_workspace(ctx.run / "pg-ws"), incident_id, rows)


def render_ours(ctx: Context) -> Measure:
    """render_notices with the workspace's database on PostgreSQL."""
    from incident.config import find_workspace

    with _database_env(_url(ctx, OURS_DB)):
        return ours_render(find_workspace(ctx.run / "pg-ws"), _render_incident(ctx))


# ---- dispatch and workers ----------------------------------------------------------------------------


def _dispatch_copy(ctx: Context) -> tuple[str, Path]:
    """A fresh copy of the prepared dispatch database and its workspace folder."""
    url = _fresh_database(ctx, "bench_workers_run", template=WORKERS_DB)
    root = ctx.run / "pg-workers-run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(ctx.run / "pg-workers-ws", root)
    return url, root


def _stored(ctx: Context, channel: str) -> list[tuple[str, str, str, bytes, bytes | None]]:
    """The approved notices of the channel's incident as stored in PostgreSQL: (notice id, address, subject,
    text, html), the bodies still compressed, as the SQLite rows' baselines get them."""
    import psycopg

    incident_id = json.loads((ctx.run / "pg-workers.json").read_text())[channel]
    column = {"email": "a.to_email", "sms": "a.to_phone"}[channel]
    with psycopg.connect(_url(ctx, WORKERS_DB).replace("postgresql+psycopg", "postgresql")) as conn:
        rows = conn.execute(
            f"SELECT n.ref, {column}, n.subject, n.body, n.html FROM notice n JOIN affected a ON a.incident_id = "
            "n.incident_id AND a.person_id = n.person_id WHERE n.incident_id = %s AND n.channel = %s "
            "ORDER BY n.id",
            (incident_id, channel),
        ).fetchall()
    return [
        (f"{incident_id}.{ref}.{channel}", address, subject, bytes(body), bytes(html) if html else None)
        for ref, address, subject, body, html in rows
    ]


def _dispatch(ctx: Context, channel: str, sink_kind: str, url: str) -> Measure:
    """run_dispatch of the channel's incident with the workspace on PostgreSQL; `url` gets the sink's port."""
    incident_id = json.loads((ctx.run / "pg-workers.json").read_text())[channel]
    database, root = _dispatch_copy(ctx)
    with sinks.running(sink_kind) as sink, _database_env(database):
        configure_channels(root, **{channel: url.format(port=sink.port)}, concurrency=THREADS)
        return timed_dispatch(root, incident_id, channel, sink, THREADS)


def email_baseline(ctx: Context) -> Measure:
    """The email baseline of the SQLite row (smtplib over one connection), fed the notices stored here."""
    return smtp_baseline(_stored(ctx, "email"))


def email_ours(ctx: Context) -> Measure:
    return _dispatch(ctx, "email", "smtp", f"smtppool://127.0.0.1:{{port}}/{{{{email}}}}?from={SENDER}")


def sms_baseline(ctx: Context) -> Measure:
    """The SMS baseline of the SQLite row (http.client keep-alive), fed the notices stored here."""
    return gateway_baseline(_stored(ctx, "sms"))


def sms_ours(ctx: Context) -> Measure:
    return _dispatch(ctx, "sms", "http", "gateway://127.0.0.1:{port}/sms?to={{phone}}")


def _workers(ctx: Context, kind: str, processes: int) -> Measure:
    """Run `incident worker` processes on a fresh copy of the enqueued database until they exit."""
    import psycopg

    incident_id = json.loads((ctx.run / "pg-workers.json").read_text())[kind]
    url, root = _dispatch_copy(ctx)
    incident = shutil.which("incident") or str(Path(sys.executable).with_name("incident"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env["INCIDENT_DATABASE_URL"] = url
    with sinks.running("smtp", SINK_DELAY) as sink:
        configure_channels(
            root, email=f"smtppool://127.0.0.1:{sink.port}/{{email}}?from={SENDER}", concurrency=WORKER_THREADS
        )
        logs = [open(root / f"worker{i}.log", "wb") for i in range(processes)]  # noqa: SIM115
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    incident,
                    "--workspace",
                    str(root),
                    "--actor",
                    f"bench-worker-{i}",
                    "worker",
                    "--incident",
                    incident_id,
                    "--workers",
                    str(WORKER_THREADS),
                ],
                stdout=log,
                stderr=log,
                env=env,
            )
            for i, log in enumerate(logs)
        ]
        peaks = []
        for i, proc in enumerate(procs):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            logs[i].close()
            if proc.returncode != 0:
                raise SystemExit(f"worker {i} failed:\n{(root / f'worker{i}.log').read_text()[-3000:]}")
            peaks.append(usage.ru_maxrss / 1024)
        wall = time.perf_counter() - start
        received = sink.received
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        sent, first, last, hosts = conn.execute(
            "SELECT COUNT(*), MIN(started), MAX(finished), COUNT(DISTINCT worker) FROM attempt "
            "WHERE incident_id = %s AND outcome = 'sent'",
            (incident_id,),
        ).fetchone()  # type: ignore[misc]
        other = conn.execute(
            "SELECT COUNT(*) FROM attempt WHERE incident_id = %s AND outcome <> 'sent'", (incident_id,)
        ).fetchone()[0]  # type: ignore[index]
    if other or received != sent:
        raise SystemExit(f"workers: {sent} sent, {other} not sent, the sink counted {received}")
    seconds = (last - first).total_seconds()
    return Measure(
        seconds,
        sent,
        f"{sent:,} emails by {processes} worker process(es) × {WORKER_THREADS} threads "
        f"({hosts} took part) in {seconds:.1f} s from the first send to the last "
        f"settle ({wall:.1f} s with process start-up); peak counts one worker, "
        f"{max(peaks):.0f} MB at most",
        helpers_mb=max(peaks),
    )


METHOD = [
    "PostgreSQL: a throwaway server from the machine's binaries (`tests/pgtemp.py`: fsync off, as in the tests). "
    "Import: ours is `import_files` into a fresh database through INCIDENT_DATABASE_URL (COPY into a staging "
    "table, then upserts, with the same validation as on SQLite); the baseline streams the same CSV files "
    "unchanged through psycopg `COPY ... FROM STDIN (FORMAT csv)` into a copy (CREATE DATABASE ... TEMPLATE) of a "
    "freshly initialised workspace's database, so the tables, keys and indexes are the real ones; only "
    "`person.import_id` gets a column default, because COPY cannot add a constant.",
    "Affected people on PostgreSQL: as on SQLite, `determine_affected` in a committed unit of work versus the "
    "same scope SELECT in plain psycopg, every row fetched. Render on PostgreSQL: an assessed incident of the "
    "same scope in the imported database, `render_notices` versus the SQLite row's plain Jinja loop reading the "
    "affected people through a psycopg server-side cursor. Email and SMS dispatch on PostgreSQL: the SQLite "
    "rows' two sides with the workspace's database on PostgreSQL (a fresh copy of the approved incident each "
    "run) and the baselines fed the notices stored there.",
    f"Workers: N `incident worker --incident ID --workers {WORKER_THREADS}` processes (the installed command) "
    f"on a fresh copy of an enqueued PostgreSQL dispatch, sending email through `smtppool://` to an aiosmtpd sink "
    f"that takes {SINK_DELAY * 1000:.0f} ms per message; both sides are ours (1 process versus 4). Throughput "
    "runs from the first attempt's start to the last attempt's settle in the attempt table (the processes' "
    "start-up, about a second, is left out and shown beside it); the sink's count must equal the sent attempts.",
]

ROWS = [
    Row(
        "Inventory import, PostgreSQL ({people:,} people, {holdings:,} holdings)",
        "pg-import-baseline",
        "pg-import-ours",
        3.0,
        500,
        repeat=1,
    ),
    Row("Affected people, PostgreSQL (~20% of {people:,})", "pg-affected-baseline", "pg-affected-ours", 2.0, 500),
    Row("Render notices, PostgreSQL (~20% of {people:,})", "pg-render-baseline", "pg-render-ours", 1.5, 500, repeat=1),
    Row(
        f"Email dispatch, PostgreSQL ({{pg_email:,}} to aiosmtpd, smtppool://, {THREADS} threads)",
        "pg-email-baseline",
        "pg-email-ours",
        0.5,
        500,
        kind="rate",
        repeat=1,
    ),
    Row(
        f"SMS dispatch, PostgreSQL ({{pg_sms:,}} to an HTTP gateway, gateway://, {THREADS} threads)",
        "pg-sms-baseline",
        "pg-sms-ours",
        0.25,
        500,
        kind="rate",
        repeat=2,
    ),
    Row(
        f"Workers, PostgreSQL: 4 `incident worker` ({{workers_four:,}}) vs 1 ({{workers_one:,}}), sink "
        f"{SINK_DELAY * 1000:.0f} ms/message",
        "pg-workers-one",
        "pg-workers-four",
        3.0,
        500,
        kind="rate",
        same_items=False,
        repeat=2,
    ),
]

STEPS: dict[str, Callable[[Context], Measure]] = {
    "pg-import-baseline": import_baseline,
    "pg-import-ours": import_ours,
    "pg-affected-baseline": affected_baseline,
    "pg-affected-ours": affected_ours,
    "pg-render-baseline": render_baseline,
    "pg-render-ours": render_ours,
    "pg-email-baseline": email_baseline,
    "pg-email-ours": email_ours,
    "pg-sms-baseline": sms_baseline,
    "pg-sms-ours": sms_ours,
    "pg-workers-one": lambda ctx: _workers(ctx, "one", 1),
    "pg-workers-four": lambda ctx: _workers(ctx, "four", 4),
}


def describe(facts: dict[str, Any]) -> str:
    return (
        f"PostgreSQL: the same inventory files; workers: {facts['workers_one']:,} and {facts['workers_four']:,} "
        "email-only adults"
    )
