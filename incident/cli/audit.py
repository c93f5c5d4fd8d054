"""Commands on the tamper-evident audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import print_json, state
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
    head: Annotated[
        str | None,
        typer.Option(help="SEQ:HASH of a head handed out earlier (printed on a report): the chain must still hold it"),
    ] = None,
) -> None:
    """Walk the hash chain and recompute every row it covers; report the first edited, deleted, reordered or
    inserted entry or row and exit non-zero. With INCIDENT_AUDIT_KEY set, check each entry's HMAC tag too."""
    handed = _parse_head(head) if head is not None else None
    if file is not None:
        from incident.audit.flows import verify_exported_chain

        verdicts = [verify_exported_chain(file, handed)]
    else:
        from incident.audit.flows import verify_audit

        verdicts = verify_audit(state(ctx).ws(), incident_id, handed)
    bad = 0
    for v in verdicts:
        if v.ok:
            notes = "".join(f"; {n}" for n in v.notes)
            echo(f"{v.chain}: ok, {v.entries} entries, head {v.head_hash}{notes}")
        else:
            bad += 1
            where = f" at seq {v.first_bad_seq}" if v.first_bad_seq is not None else ""
            echo(f"{v.chain}: BROKEN{where}: {v.problem}", err=True)
    if bad:
        raise typer.Exit(ExitCode.VERIFY_FAILED)


def _parse_head(text: str) -> tuple[int, str]:
    from incident.errors import InvalidArgument

    seq, _, digest = text.strip().partition(":")
    digest = digest.strip().lower()
    if not seq.strip().isdigit() or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise InvalidArgument(f"--head: expected SEQ:HASH (a number and 64 hex digits), not {text[:80]!r}")
    return int(seq), digest


@audit_app.command("head")
def head(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the chain head (seq and hash) to hand out; `audit verify --head SEQ:HASH` later proves it is kept."""
    from incident.audit.flows import chain_head

    seq, digest = chain_head(state(ctx).ws(), incident_id)
    if as_json:
        print_json({"chain": incident_id, "seq": seq, "hash": digest})
        return
    echo(f"{incident_id}: head seq {seq} {digest} (hand it out: audit verify --head {seq}:{digest})")


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
