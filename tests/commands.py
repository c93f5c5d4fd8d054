"""The command tree as the user meets it, read from the click commands typer builds from `app`."""

from __future__ import annotations

from typing import Any

import typer.main

from incident.cli import app


def command_paths(*, include_hidden: bool = False) -> list[tuple[str, ...]]:
    """Every command and group below `incident`, as name paths: ("inventory", "import"), ...; root excluded."""
    paths: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if sub.hidden and not include_hidden:
                continue
            paths.append((*path, name))
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return paths
