"""A responder sets up a workspace, and every command finds it again."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import init_workspace
from support import WorkspaceDir
from typer.testing import CliRunner

from incident.cli import app
from incident.errors import ExitCode


def incident(*args: str):
    return CliRunner().invoke(app, ["--actor", "responder@test", *args])


@pytest.mark.sqlite_only
def test_init_writes_the_policy_organisation_and_a_database(tmp_path: Path) -> None:
    """Given an empty folder, when the responder runs `incident init DIR`, then incident.toml carries the
    operator, platform and officer contacts from the privacy policy, and the database has the schema."""
    result = incident("init", str(tmp_path / "ws"))

    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "ws" / "incident.toml").read_text(encoding="utf-8"))
    org = config["organisation"]
    assert org["operator"] == "禄可科技集团有限公司"
    assert org["platform"] == "诚聊购"
    assert org["officer"]["email"] == "lookjt@163.com"
    assert org["officer"]["phone"] == "4001577888"
    assert org["officer"]["address"] == "福建省平潭县金井湾大道东段179-2号3层"
    tables = {
        r[0]
        for r in sqlite3.connect(tmp_path / "ws" / "incident.db").execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
        )
    }
    assert {"person", "holding", "system", "incident", "audit_entry", "schema_meta"} <= tables


@pytest.mark.sqlite_only
def test_the_database_and_workspace_are_private_to_their_owner(workspace: WorkspaceDir) -> None:
    """Given a new workspace, then the database holding personal data is mode 0600 and the folder 0700."""
    assert stat.S_IMODE(workspace.db.stat().st_mode) == 0o600
    assert stat.S_IMODE(workspace.root.stat().st_mode) == 0o700


def test_init_twice_keeps_an_edited_config(workspace: WorkspaceDir) -> None:
    """Given a workspace whose officer email was edited, when init runs again, then the edit survives."""
    config = workspace.root / "incident.toml"
    config.write_text(config.read_text(encoding="utf-8").replace("lookjt@163.com", "dpo@example.cn"), encoding="utf-8")

    result = incident("init", str(workspace.root))

    assert result.exit_code == 0, result.output
    assert "dpo@example.cn" in config.read_text(encoding="utf-8")


def test_workspace_found_through_the_option(inventory_with_backups: WorkspaceDir) -> None:
    """Given an imported workspace, when a command names it with --workspace, then it reads that database."""
    assert inventory_with_backups.json("inventory", "stats")["people"] == 13


def test_workspace_found_through_incident_home(
    inventory_with_backups: WorkspaceDir, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Given INCIDENT_HOME names the workspace, when a command runs elsewhere, then it uses that workspace."""
    monkeypatch.setenv("INCIDENT_HOME", str(inventory_with_backups.root))
    monkeypatch.chdir(tmp_path)

    result = incident("inventory", "stats", "--json")

    assert result.exit_code == 0, result.output
    assert '"people": 13' in result.stdout


@pytest.mark.parametrize("subdir", [".", "inputs"])
def test_workspace_found_from_the_current_directory(
    inventory_with_backups: WorkspaceDir, monkeypatch: pytest.MonkeyPatch, subdir: str
) -> None:
    """Given the shell is in the workspace (or a folder inside it), when a command runs, then it finds it."""
    monkeypatch.chdir(inventory_with_backups.root / subdir)

    result = incident("inventory", "stats", "--json")

    assert result.exit_code == 0, result.output
    assert '"people": 13' in result.stdout


@pytest.mark.sqlite_only
def test_database_url_from_the_environment_overrides_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given INCIDENT_DATABASE_URL points at another SQLite file, when init runs, then that file gets the tables
    and the workspace holds no database of its own."""
    elsewhere = tmp_path / "elsewhere.db"
    monkeypatch.setenv("INCIDENT_DATABASE_URL", f"sqlite:///{elsewhere}")

    ws = init_workspace(tmp_path / "ws")

    tables = {r[0] for r in sqlite3.connect(elsewhere).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"person", "holding", "incident", "audit_entry"} <= tables
    assert not ws.db.exists()
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o600


def test_a_command_outside_any_workspace_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given a folder that is no workspace, when the responder runs `incident list`, then the installed command
    prints one `error:` line naming the problem (no traceback) and exits non-zero."""
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}

    done = subprocess.run(
        [sys.executable, "-m", "incident", "list"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
    )

    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: no incident.toml in "), done.stderr


def test_a_missing_workspace_option_fails_in_process(tmp_path: Path) -> None:
    """Given --workspace names an empty folder, then the command refuses with the folder in the message."""
    result = incident("--workspace", str(tmp_path), "list")

    assert result.exit_code != 0, result.output
    assert result.stderr == f"error: no incident.toml in {tmp_path} (run `incident init` or pass --workspace)\n"
