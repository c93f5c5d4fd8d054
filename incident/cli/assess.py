"""Commands that assess an incident and list who is affected: assess, affected."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import print_json, state
from incident.cli.output import echo, print_assessment, terminal_stream


def assess(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    reassess: Annotated[bool, typer.Option(help="Take a new snapshot of the affected people")] = False,
    grade: Annotated[str | None, typer.Option(help="Override the CAC grade (needs --reason)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the grade is overridden")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Determine the affected people, grade the incident, and list every obligation with its due time."""
    from incident.assess.flows import assess_incident

    st = state(ctx)
    result = assess_incident(st.ws(), incident_id, st.who(), reassess=reassess, grade=grade, reason=reason)
    if as_json:
        print_json(result)
    else:
        print_assessment(result)


def affected(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write to this file (owner-only) instead of stdout")] = None,
) -> None:
    """Stream the affected people from the stored snapshot (contains personal data)."""
    from incident.assess.flows import export_affected_to

    n = export_affected_to(state(ctx).ws(), incident_id, fmt, output, terminal_stream())
    if output is not None:
        echo(f"wrote {n} people to {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("assess")(assess)
    app.command("affected")(affected)
