"""The end-to-end demo command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import state
from incident.cli.output import echo


def demo(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the demo workspace")] = Path("incident-demo"),
    people: Annotated[int, typer.Option(help="How many synthetic people")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (the inventory is deterministic)")] = 7,
    until: Annotated[
        str,
        typer.Option(
            help="Stop after: assessed, notified (dispatch and letters), announced, or "
            "all (reports and the status board too)"
        ),
    ] = "all",
) -> None:
    """Run the whole story on a synthetic platform: inventory, incident, assessment, notices (auto-approved, clearly
    labelled), dispatch to the file outbox with failures and fallbacks, letters, announcement, regulator reports and
    the status board; print where each artefact is."""
    from incident.demo.flows import run_demo

    for line in run_demo(directory, people=people, seed=seed, actor=state(ctx).who(), until=until):
        echo(line)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("demo")(demo)
