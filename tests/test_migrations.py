"""A database made by the first released schema is upgraded in place; commands on an old schema say so."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import init_workspace
from rawdb import connect
from support import (
    ACTOR,
    MEMBER_DB_YAML,
    WorkspaceDir,
    approve_announcement,
    approve_notices,
    open_incident,
    people_csv,
)
from typer.testing import CliRunner

from incident.cli import app
from incident.config import create_workspace
from incident.db import SCHEMA_HEAD


def alembic_to(root: Path, revision: str, *, down: bool = False) -> None:
    """Bring a workspace's database to one revision with Alembic itself (what an older release would have made)."""
    from alembic import command
    from alembic.config import Config

    from incident import db
    from incident.config import find_workspace

    ws = find_workspace(root)
    engine = db.engine_for(ws)
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "incident" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()
    db._checked.discard(ws.database_url)  # the next command checks the schema again, as a new process would


def first_release_workspace(root: Path, *, pre_alembic: bool = False) -> WorkspaceDir:
    """A workspace whose database was made by revision 0001 (the first release) and holds an incident."""
    ws = create_workspace(root)
    alembic_to(ws.root, "0001")
    with connect(ws.root) as db:
        db.execute("INSERT INTO system (name, description, location, kind) VALUES ('member-db', 'm', 'CN', 'internal')")
        db.execute(
            "INSERT INTO person (person_id, name, email, locale, account_status, import_id) VALUES "
            "('p1', '张三', 'p1@example.com', 'zh-CN', 'active', 1)"
        )
        db.execute(
            "INSERT INTO holding (person_id, system, category, since) VALUES ('p1', 'member-db', 'phone', '2020-01-01')"
        )
        db.execute(
            "INSERT INTO incident (id, year, number, playbook, title, systems, categories, exposure_from, "
            "exposure_to, discovered_at, discovered_by, police_contacted, status, opened_at, opened_by) "
            "VALUES ('INC-2026-0001', 2026, 1, 'database-exfiltration', 'old incident', '[\"member-db\"]', "
            "'[\"phone\"]', '2026-01-01 00:00:00', '2026-02-01 00:00:00', '2026-02-02 00:00:00', 'soc', "
            "FALSE, 'open', '2026-02-02 00:00:00', 'soc')"
        )
        db.execute("INSERT INTO schema_meta (key, value) VALUES ('version', '1')")
        if pre_alembic:  # the first release kept its version in schema_meta only
            db.execute("DROP TABLE alembic_version")
    return WorkspaceDir(ws.root)


def test_a_command_on_the_first_release_schema_says_to_upgrade(tmp_path: Path) -> None:
    """Given a database from the first release, when a responder runs a command, then it says to run
    `incident db upgrade` in one line instead of failing obscurely."""
    ws = first_release_workspace(tmp_path / "old")

    result = ws.run("show", "INC-2026-0001")

    assert result.exit_code != 0, result.output
    assert "run `incident db upgrade`" in result.stderr, result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("pre_alembic", [False, True], ids=["alembic-stamped", "schema_meta-only"])
def test_db_upgrade_brings_the_first_release_to_the_current_schema_keeping_the_data(
    tmp_path: Path, pre_alembic: bool
) -> None:
    """Given a first-release database with an incident, when `incident db upgrade` runs, then the schema is
    current, the incident and inventory are intact, and the rest of the flow works on it."""
    ws = first_release_workspace(tmp_path / "old", pre_alembic=pre_alembic)

    out = ws.ok("db", "upgrade")

    assert f"schema 0001 → {SCHEMA_HEAD}" in out
    assert ws.ok("db", "upgrade").strip() == f"schema already at {SCHEMA_HEAD}"
    shown = ws.json("show", "INC-2026-0001")
    assert shown["title"] == "old incident" and shown["status"] == "open"
    ws.ok("assess", "INC-2026-0001")
    assert ws.json("show", "INC-2026-0001")["assessment"]["counts"]["people"] == 1
    ws.ok("notices", "render", "INC-2026-0001")
    assert ws.sql("SELECT COUNT(*) FROM notice")[0][0] == 1
    assert "schema-upgraded" in {row[0] for row in ws.sql("SELECT action FROM audit_entry")}


def test_the_migrated_schema_is_exactly_the_one_init_creates(tmp_path: Path) -> None:
    """Given a first-release database upgraded to head, then Alembic finds no difference between it and the
    models (so a migrated database and a new one are the same)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    from incident.config import find_workspace
    from incident.db import _import_models, engine_for

    ws = first_release_workspace(tmp_path / "old")
    ws.ok("db", "upgrade")
    _import_models()
    engine = engine_for(find_workspace(ws.root))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    assert diff == []


def test_init_stamps_the_current_revision(tmp_path: Path) -> None:
    """Given a new workspace, then its schema is at the newest revision and `db upgrade` has nothing to do."""
    result = CliRunner().invoke(app, ["--actor", ACTOR, "init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    ws = WorkspaceDir((tmp_path / "new").resolve())
    assert ws.sql("SELECT version_num FROM alembic_version") == [(SCHEMA_HEAD,)]
    assert ws.ok("db", "upgrade").strip() == f"schema already at {SCHEMA_HEAD}"


def test_revision_0003_folds_exposure_into_the_snapshot_and_a_downgrade_rebuilds_it(tmp_path: Path) -> None:
    """Given an assessed incident whose person was exposed in two categories, when the database goes back to
    0002, then its exposure table holds one row per category again (from affected.categories); and upgraded once
    more, the assessment counts are what they were."""
    ws = first_release_workspace(tmp_path / "old")
    ws.ok("db", "upgrade")
    with connect(ws.root) as db:
        db.execute(
            "INSERT INTO holding (person_id, system, category, since) VALUES ('p1', 'member-db', 'email', '2020-01-01')"
        )
        db.execute("UPDATE incident SET categories = '[\"phone\", \"email\"]' WHERE id = 'INC-2026-0001'")
    ws.ok("assess", "INC-2026-0001")
    counts = ws.json("show", "INC-2026-0001")["assessment"]["counts"]
    assert counts["by_category"] == {"email": 1, "phone": 1} and counts["records"] == 2

    alembic_to(ws.root, "0002", down=True)

    assert ws.sql("SELECT incident_id, person_id, category FROM exposure ORDER BY category") == [
        ("INC-2026-0001", "p1", "email"),
        ("INC-2026-0001", "p1", "phone"),
    ]
    ws.ok("db", "upgrade")
    ws.ok("assess", "INC-2026-0001")
    assert ws.json("show", "INC-2026-0001")["assessment"]["counts"] == counts


FOUR_PEOPLE = people_csv(
    [
        {"person_id": f"p{i}", "name": f"Person {i}", "email": f"p{i}@example.com", "locale": "en", "region": "DE"}
        for i in range(1, 5)
    ]
)
FOUR_HOLDINGS = "person_id,system,category,since,until\n" + "".join(
    f"p{i},member-db,phone,2020-01-01,\n" for i in range(1, 5)
)


def approved_incident(ws: WorkspaceDir) -> str:
    """Four people on member-db, an incident on it assessed, its notices rendered and approved."""
    ws.import_inventory(people=FOUR_PEOPLE, holdings=FOUR_HOLDINGS, systems=MEMBER_DB_YAML)
    iid = open_incident(ws, systems="member-db", categories="phone").id
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    return iid


def stamp(db: Any, when: datetime) -> str:
    """A timestamp as each backend stores it (SQLite: naive UTC text)."""
    text = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return text + "+00:00" if db.postgres else text


def test_a_workspace_upgraded_mid_dispatch_finishes_the_dispatch(tmp_path: Path) -> None:
    """Given a workspace at revision 0003 whose incident is `notifying` with two attempts in flight, as a
    dispatcher killed after claiming them leaves it, when `incident db upgrade` runs, then `incident dispatch`
    still finds the notices approved, recovers the two as unknown, re-sends them once, reaches everyone, and the
    audit chain verifies."""
    ws = init_workspace(tmp_path / "ws")
    iid = approved_incident(ws)
    ws.ok("dispatch", iid, "--enqueue-only")
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid is free, as a killed dispatcher's is
    owner, now = f"{socket.gethostname()}:{dead.pid}:1", datetime.now(UTC)
    with connect(ws.root) as db:
        for person in ("p1", "p2"):
            (notice,) = db.execute(
                "SELECT id FROM notice WHERE incident_id = ? AND person_id = ? AND channel = 'email'", (iid, person)
            ).fetchall()
            db.execute(
                "INSERT INTO attempt (incident_id, person_id, notice_id, channel, address, started, outcome, worker) "
                "VALUES (?, ?, ?, 'email', ?, ?, 'in-flight', ?)",
                (iid, person, notice[0], f"{person[0]}***@example.com", stamp(db, now), owner),
            )
            db.execute(
                "UPDATE delivery SET lease_owner = ?, lease_until = ? WHERE incident_id = ? AND person_id = ?",
                (owner, stamp(db, now + timedelta(minutes=2)), iid, person),
            )
    alembic_to(ws.root, "0003", down=True)
    assert ws.sql("SELECT version_num FROM alembic_version") == [("0003",)]
    assert ws.sql("SELECT status FROM incident") == [("notifying",)]
    ws.refuse("dispatch", iid, error="run `incident db upgrade`")

    assert f"schema 0003 → {SCHEMA_HEAD}" in ws.ok("db", "upgrade")
    resumed = ws.ok("dispatch", iid)

    assert "2 attempts were in flight when a previous run stopped: re-sent once" in resumed
    assert f"{iid}: every person is notified or settled (status 'notified')" in resumed
    assert ws.sql("SELECT person_id, state FROM delivery ORDER BY person_id") == [
        (f"p{i}", "sent") for i in range(1, 5)
    ]
    assert ws.sql("SELECT person_id, outcome FROM attempt ORDER BY person_id, id") == [
        ("p1", "unknown"),
        ("p1", "sent"),
        ("p2", "unknown"),
        ("p2", "sent"),
        ("p3", "sent"),
        ("p4", "sent"),
    ]
    refs = {ref for (ref,) in ws.sql("SELECT ref FROM notice WHERE channel = 'email'")}
    outbox = ws.root / "outbox" / iid / "email"
    assert {p.name for p in outbox.iterdir()} == {f"{iid}.{ref}.email.eml" for ref in refs}
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)


def test_revision_0004_a_downgrade_restores_both_decision_tables_and_an_upgrade_merges_them(tmp_path: Path) -> None:
    """Given approved notices, an announcement rejected once and approved on its next render, published to one
    target, and an on-call warning recorded, when the database goes back to 0003, then `approval` holds the
    notices' decision and `announcement_decision` the announcement's, in order; upgraded again, every decision is
    in the one table and `show` says what it said before."""
    ws = init_workspace(tmp_path / "ws")
    iid = approved_incident(ws)
    ws.ok("announce", iid)
    ws.ok("notices", "reject", iid, "--announcement", "--reviewer", "Legal", "--comment", "Add the hotline")
    ws.ok("announce", iid)
    approve_announcement(ws, iid, "Legal (Li Na)")
    config = ws.root / "incident.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace("targets = []", 'targets = ["outbox://status"]'), encoding="utf-8"
    )
    ws.ok("announce", iid, "--publish")
    with connect(ws.root) as db:
        db.execute(
            "INSERT INTO deadline_warning (incident_id, key, level, at, state) VALUES (?, 'gdpr-sa-72h', "
            "'overdue', ?, 'sent')",
            (iid, stamp(db, datetime.now(UTC))),
        )
    before = ws.json("show", iid)

    alembic_to(ws.root, "0003", down=True)

    assert ws.sql("SELECT decision, reviewer, render_id FROM approval") == [("approved", "Legal (Li Na)", 1)]
    assert ws.sql("SELECT decision, reviewer, render_id, comment FROM announcement_decision ORDER BY id") == [
        ("rejected", "Legal", 1, "Add the hotline"),
        ("approved", "Legal (Li Na)", 2, None),
    ]
    assert ws.sql("SELECT target, outcome FROM announcement_send") == [("outbox://status", "sent")]
    assert ws.sql("SELECT key, level FROM deadline_warning") == [("gdpr-sa-72h", "overdue")]

    ws.ok("db", "upgrade")

    assert ws.sql("SELECT artefact, version, render_id, decision, reviewer FROM approval ORDER BY id") == [
        ("notices", 1, 1, "approved", "Legal (Li Na)"),
        ("announcement", 1, 1, "rejected", "Legal"),
        ("announcement", 1, 2, "approved", "Legal (Li Na)"),
    ]
    assert ws.sql("SELECT key, level, state FROM deadline_warning") == [("gdpr-sa-72h", "overdue", "sent")]
    after = ws.json("show", iid)
    assert after["notices"] == before["notices"] and after["notices"]["state"] == "approved"
    assert after["announcement"] == before["announcement"] and after["announcement"]["state"] == "published"
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)
