"""Commands on the tamper-evident audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from incident.cli import state

audit_app = typer.Typer(help="Verify and export the tamper-evident audit trail.", no_args_is_help=True,
                        rich_markup_mode=None)


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    incident_id: Annotated[str | None, typer.Argument(help="Incident id (default: every chain)")] = None,
) -> None:
    """Walk the hash chain; report the first edited, deleted, reordered or inserted entry and exit non-zero."""
    from incident.workspace import verify_audit

    verdicts = verify_audit(state(ctx).ws(), incident_id)
    bad = 0
    for v in verdicts:
        if v.ok:
            typer.echo(f"{v.chain}: ok, {v.entries} entries, head {v.head_hash}")
        else:
            bad += 1
            typer.echo(f"{v.chain}: BROKEN at seq {v.first_bad_seq}: {v.problem}", err=True)
    if bad:
        raise typer.Exit(3)
