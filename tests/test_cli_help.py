"""The CLI feels instant: no help screen loads the database layer or the message transport."""

from __future__ import annotations

import json
import subprocess
import sys

from commands import command_paths

HEAVY = ("sqlalchemy", "sqlmodel", "apprise")

# Runs in a fresh interpreter: asks for every help screen in turn and stops at the first one that pulled in a
# heavy module (modules only accumulate, so the first offender is the one named).
HELP_EVERYWHERE = """
import contextlib, io, json, sys
from incident.cli import app
import typer.main

command = typer.main.get_command(app)
for path in json.loads(sys.argv[1]):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            command.main([*path, "--help"], prog_name="incident", standalone_mode=False)
        except SystemExit as exc:
            if exc.code:
                raise
    usage = " ".join(["Usage: incident", *path])
    if usage not in out.getvalue():
        sys.exit(f"incident {' '.join(path)} --help printed no {usage!r}: {out.getvalue()!r}")
    heavy = [m for m in json.loads(sys.argv[2]) if m in sys.modules]
    if heavy:
        sys.exit(f"incident {' '.join(path)} --help imported {', '.join(heavy)}")
print("ok", len(json.loads(sys.argv[1])))
"""


def test_no_help_screen_imports_the_database_layer_or_apprise() -> None:
    """Given every command in the tree (new ones included automatically), when each `--help` is shown, then
    neither SQLAlchemy/SQLModel nor apprise has been imported."""
    paths = [[], *[list(p) for p in command_paths(include_hidden=True)]]

    done = subprocess.run(
        [sys.executable, "-c", HELP_EVERYWHERE, json.dumps(paths), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr or done.stdout
    assert done.stdout.strip() == f"ok {len(paths)}"


def test_the_tree_has_the_foundation_commands() -> None:
    """Given the CLI, then the foundation's commands are all there (so the help test above covers them)."""
    paths = {" ".join(p) for p in command_paths()}

    assert {
        "init",
        "demo",
        "inventory import",
        "inventory stats",
        "open",
        "list",
        "show",
        "log",
        "assess",
        "affected",
        "close",
        "audit verify",
    } <= paths


def test_python_dash_m_incident_shows_the_help() -> None:
    """Given the package, when run as `python -m incident --help`, then it prints the usage and exits 0."""
    done = subprocess.run([sys.executable, "-m", "incident", "--help"], capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert "Usage: python -m incident" in done.stdout or "Usage: incident" in done.stdout, done.stdout
    assert "inventory" in done.stdout and "assess" in done.stdout
