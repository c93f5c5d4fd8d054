"""A database made by the first released schema is upgraded in place; commands on an old schema say so."""

from __future__ import annotations

from pathlib import Path

import pytest
from rawdb import connect
from support import ACTOR, WorkspaceDir
from typer.testing import CliRunner

from incident.cli import app
from incident.config import create_workspace


def alembic_to(root: Path, revision: str, *, down: bool = False) -> None:
    """Bring a workspace's database to one revision with Alembic itself (what an older release would have made)."""
    from alembic import command
    from alembic.config import Config

    from incident.config import find_workspace
    from incident.db import engine_for

    engine = engine_for(find_workspace(root))
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).resolve().parent.parent / "incident" / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, revision)
    engine.dispose()


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

    assert "schema 0001 → 0004" in out
    assert ws.ok("db", "upgrade").strip() == "schema already at 0004"
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
    assert ws.sql("SELECT version_num FROM alembic_version") == [("0004",)]
    assert ws.ok("db", "upgrade").strip() == "schema already at 0004"


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
