"""Fixtures: a workspace made by `incident init`, the hand-written inventory, and incidents opened on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import WorkspaceDir, open_incident
from typer.testing import CliRunner

from incident.cli import app

BACKEND = os.environ.get("INCIDENT_TEST_BACKEND", "sqlite")


def pytest_report_header(config: pytest.Config) -> str:
    return f"incident test backend: {BACKEND}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the PostgreSQL pass, tests about the embedded SQLite file itself, and tests that touch no database, are
    skipped with the reason."""
    if BACKEND != "postgresql":
        return
    for item in items:
        if item.get_closest_marker("nodb") and not item.get_closest_marker("needs_db"):
            item.add_marker(pytest.mark.skip(reason="touches no database: the SQLite pass covers it"))
        elif item.get_closest_marker("sqlite_only"):
            item.add_marker(
                pytest.mark.skip(reason="works on the embedded SQLite file directly (its mode, or copies of it)")
            )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A real PostgreSQL on 127.0.0.1 started from the machine's binaries for the whole session."""
    from pgtemp import start_temp_postgres

    server = start_temp_postgres()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    """No test sees the developer's INCIDENT_* variables; every test's database is closed after it.

    In the PostgreSQL pass (INCIDENT_TEST_BACKEND=postgresql) every test gets a fresh database through
    INCIDENT_DATABASE_URL, so the same tests run unchanged against both backends."""
    for name in ("INCIDENT_HOME", "INCIDENT_DATABASE_URL", "INCIDENT_ACTOR", "INCIDENT_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    if BACKEND == "postgresql" and not request.node.get_closest_marker("sqlite_only"):
        server = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("INCIDENT_DATABASE_URL", server.create_database(f"t_{uuid.uuid4().hex[:16]}"))
    yield
    from incident import db

    # Engines are cached per URL for the life of a CLI process; a test session makes hundreds of them, so
    # close each test's connections (the cache is private to incident.db: skip quietly if it changes shape).
    cached, checked = getattr(db, "_engine", None), getattr(db, "_checked", None)
    if hasattr(cached, "cache_clear") and isinstance(checked, set):
        for url in list(checked):
            cached(url).dispose()
        cached.cache_clear()
        checked.clear()


def init_workspace(root: Path) -> WorkspaceDir:
    """Run `incident init ROOT` and return the new workspace."""
    result = CliRunner().invoke(app, ["--actor", "responder@test", "init", str(root)])
    assert result.exit_code == 0, result.output
    return WorkspaceDir(root.resolve())


@pytest.fixture
def workspace(tmp_path: Path) -> WorkspaceDir:
    """A fresh workspace with an empty inventory."""
    return init_workspace(tmp_path / "ws")


@pytest.fixture
def inventory_with_backups(workspace: WorkspaceDir) -> WorkspaceDir:
    """The hand-written inventory: adults in CN, DE, US-CA and US-TX, two children (one unreachable), a
    cancelled account still in the backup, a partner holding, a postal-only person and one with no contact."""
    workspace.import_inventory()
    return workspace


@pytest.fixture
def opened_incident(inventory_with_backups: WorkspaceDir):
    """An exfiltration of member-db, the backup and the payment partner, discovered on 2026-03-10."""
    return open_incident(
        inventory_with_backups,
        "--where",
        "数据库审计告警, Fuzhou DC",
        "--discovered-by",
        "SOC on-call",
        "--connected",
        "订单系统未受影响",
        "--police",
    )


@pytest.fixture
def assessed_incident(opened_incident):
    """The same incident after `incident assess`."""
    opened_incident.ws.ok("assess", opened_incident.id)
    return opened_incident
