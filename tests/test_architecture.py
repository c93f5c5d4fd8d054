"""The house keeps its shape: small modules, imports that point downstream, no cycles, a CLI nobody imports,
and read commands that start without the sending, templating and PDF stacks (ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.nodb

PACKAGE = Path(__file__).resolve().parents[1] / "incident"
# Upstream to downstream: a model or service module imports only from its own domain and those before it.
# Approvals sit on incidents (a decision locks its incident) and serve every reviewed artefact downstream.
DOMAINS = ("inventory", "incidents", "approvals", "assess", "notices", "dispatch", "reports")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Every module of the package (migrations aside), by dotted name."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if "migrations" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        found[".".join(parts)] = path
    return found


def imported(path: Path) -> set[str]:
    """The incident modules a file imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("incident"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("incident"))
    known = modules()
    return {m for m in out if m in known}


def domain_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_is_over_400_lines() -> None:
    """Given the package, then no module (migrations aside) is longer than a reader can hold."""
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}

    assert long == {}


def test_nothing_in_the_package_imports_the_cli() -> None:
    """Given every module outside incident.cli, then none imports it (the CLI only translates)."""
    offenders = {
        name: sorted(m for m in imported(path) if m.startswith("incident.cli"))
        for name, path in modules().items()
        if not name.startswith("incident.cli") and name != "incident.__main__"
    }

    assert {k: v for k, v in offenders.items() if v} == {}


def test_models_and_services_import_only_upstream() -> None:
    """Given a domain's models and service modules, then they import their own domain, the ones before it and
    the base; the audit chain and the base import no domain. Use cases (flows) may compose any domains."""
    order = {d: i for i, d in enumerate(DOMAINS)}
    wrong = {}
    for name, path in modules().items():
        domain = domain_of(name)
        if name.endswith(".flows") or domain in ("cli", "demo", "__main__") or name == "incident.audit.flows":
            continue
        # the base and the audit chain may import no domain at all
        allowed = {d for d in DOMAINS if order[d] <= order[domain]} if domain in order else set()
        bad = sorted(m for m in imported(path) if domain_of(m) in order and domain_of(m) not in allowed)
        if bad:
            wrong[name] = bad

    assert wrong == {}


def test_every_module_imports_on_its_own() -> None:
    """Given each module imported first, in a fresh interpreter of its own, then it loads: no import cycle at
    import time (a cycle shows as a partly initialised module only when the other side is imported first)."""
    names = [n for n in modules() if n != "incident.__main__"]
    failed = {}
    for start in range(0, len(names), 4):  # four interpreters at a time on two cores
        running = {
            n: subprocess.Popen([sys.executable, "-c", f"import {n}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for n in names[start : start + 4]
        }
        for name, proc in running.items():
            _, err = proc.communicate(timeout=120)
            if proc.returncode:
                failed[name] = err.decode(errors="replace").strip().splitlines()[-1]

    assert failed == {}


READ_COMMAND = """
import json, sys
from incident.cli import app
import typer.main

command = typer.main.get_command(app)
try:
    command.main(json.loads(sys.argv[1]), prog_name="incident", standalone_mode=False)
except SystemExit as exc:
    if exc.code:
        raise
heavy = [m for m in ("apprise", "jinja2", "weasyprint", "markdown_it") if m in sys.modules]
print(json.dumps(heavy))
"""


@pytest.mark.needs_db
@pytest.mark.parametrize(
    "args",
    [["list"], ["show", "INC-2026-0001"], ["status"], ["inventory", "stats"]],
    ids=["list", "show", "status", "inventory-stats"],
)
def test_read_commands_do_not_load_the_sending_templating_or_pdf_stack(assessed_incident, args) -> None:
    """Given an assessed incident, when a responder runs a read command, then neither apprise nor Jinja nor
    WeasyPrint is imported (they cost most of a command's start-up)."""
    ws = assessed_incident.ws
    argv = ["--workspace", str(ws.root), *[assessed_incident.id if a == "INC-2026-0001" else a for a in args]]

    done = subprocess.run(
        [sys.executable, "-c", READ_COMMAND, json.dumps(argv)], capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
