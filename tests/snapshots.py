"""A story's workspace built once per test module and copied for each test (the stories share their expensive
start). In the PostgreSQL pass each test has its own empty database, which a folder copy cannot carry, so there
the story is run afresh for each test instead."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from support import OpenedIncident, WorkspaceDir
from typer.testing import CliRunner

from incident.cli import app

Story = Callable[[WorkspaceDir], str]  # runs the story in a fresh workspace and returns the incident id


def _init(root: Path) -> WorkspaceDir:
    result = CliRunner().invoke(app, ["--actor", "responder@test", "init", str(root)])
    assert result.exit_code == 0, result.output
    return WorkspaceDir(root.resolve())


def _close_databases() -> None:
    from incident import db

    cached, checked = getattr(db, "_engine", None), getattr(db, "_checked", None)
    if hasattr(cached, "cache_clear") and isinstance(checked, set):
        for url in list(checked):
            cached(url).dispose()


class Snapshot:
    """One story, built at most once (SQLite) and handed to each test as a private workspace."""

    def __init__(self, factory: pytest.TempPathFactory, name: str, story: Story) -> None:
        self.factory, self.name, self.story = factory, name, story
        self.built: tuple[Path, str] | None = None

    def _build(self) -> tuple[Path, str]:
        ws = _init(self.factory.mktemp(self.name) / "ws")
        incident_id = self.story(ws)
        _close_databases()  # so the folder, database included, can be copied whole
        return ws.root, incident_id

    def shared(self) -> OpenedIncident:
        """The built workspace itself, for tests that only read it (a fresh one on PostgreSQL)."""
        if os.environ.get("INCIDENT_DATABASE_URL"):
            return self.copy(self.factory.mktemp(self.name))
        if self.built is None:
            self.built = self._build()
        return OpenedIncident(WorkspaceDir(self.built[0]), self.built[1])

    def copy(self, tmp_path: Path) -> OpenedIncident:
        """A private workspace for one test to change."""
        if os.environ.get("INCIDENT_DATABASE_URL"):
            ws = _init(tmp_path / "ws")
            return OpenedIncident(ws, self.story(ws))
        shared = self.shared()
        root = tmp_path / "ws"
        shutil.copytree(shared.ws.root, root)
        return OpenedIncident(WorkspaceDir(root), shared.id)
