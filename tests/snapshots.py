"""A workspace built once per test module and copied for each test (the stories share their expensive start)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support import OpenedIncident, WorkspaceDir
from typer.testing import CliRunner

from incident.cli import app


def build_once(factory: pytest.TempPathFactory, name: str, story: Callable[[WorkspaceDir], str]) -> tuple[Path, str]:
    """Run `incident init` and then `story` (which returns the incident id) in a fresh folder, without the
    developer's INCIDENT_* variables; close the database so the folder can be copied whole."""
    root = factory.mktemp(name) / "ws"
    with pytest.MonkeyPatch.context() as mp:
        for var in [v for v in os.environ if v.startswith("INCIDENT_")]:
            mp.delenv(var)
        result = CliRunner().invoke(app, ["--actor", "responder@test", "init", str(root)])
        assert result.exit_code == 0, result.output
        incident_id = story(WorkspaceDir(root.resolve()))
    from incident import db

    cached, checked = getattr(db, "_engine", None), getattr(db, "_checked", None)
    if hasattr(cached, "cache_clear") and isinstance(checked, set):
        for url in list(checked):
            cached(url).dispose()
    return root.resolve(), incident_id


def copy_of(snapshot: tuple[Path, str], tmp_path: Path) -> OpenedIncident:
    """A private copy of a built workspace, for one test to change."""
    source, incident_id = snapshot
    root = tmp_path / "ws"
    shutil.copytree(source, root)
    return OpenedIncident(WorkspaceDir(root), incident_id)
