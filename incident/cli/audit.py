"""Commands on the tamper-evident audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import state
from incident.cli.output import echo
from incident.errors import ExitCode

audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit trail.", no_args_is_help=True, rich_markup_mode=None
)


@audit_app.command("verify")
def verify(
    ctx: typer.Context,
    incident_id: Annotated[str | None, typer.Argument(help="Incident id (default: every chain)")] = None,
    file: Annotated[Path | None, typer.Option(help="Verify an exported chain file instead (no database)")] = None,
) -> None:
    """Walk the hash chain; report the first edited, deleted, reordered or inserted entry and exit non-zero."""
    if file is not None:
        from incident.audit.flows import verify_exported_chain

        verdicts = [verify_exported_chain(file)]
    else:
        from incident.audit.flows import verify_audit

        verdicts = verify_audit(state(ctx).ws(), incident_id)
    bad = 0
    for v in verdicts:
        if v.ok:
            echo(f"{v.chain}: ok, {v.entries} entries, head {v.head_hash}")
        else:
            bad += 1
            where = f" at seq {v.first_bad_seq}" if v.first_bad_seq is not None else ""
            echo(f"{v.chain}: BROKEN{where}: {v.problem}", err=True)
    if bad:
        raise typer.Exit(ExitCode.VERIFY_FAILED)


@audit_app.command("export")
def export(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    output: Annotated[Path, typer.Option(help="Where to write the chain (JSON)")] = Path("audit-chain.json"),
) -> None:
    """Write an incident's audit chain with its head hash, verifiable later with `audit verify --file`."""
    from incident.audit.flows import export_audit

    head = export_audit(state(ctx).ws(), incident_id, output)
    echo(f"wrote {output} (head {head})")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(audit_app, name="audit")
