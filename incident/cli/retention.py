"""Commands for data at rest: a legal hold on an incident, and the purge of its personal data."""

from __future__ import annotations

from typing import Annotated

import typer

from incident.cli import print_json, state
from incident.cli.output import echo


def hold(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    reason: Annotated[str, typer.Option(help="Why (a court order, a regulator's request, a complaint); audited")],
    release: Annotated[bool, typer.Option("--release", help="Release the hold instead of placing one")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Place a legal hold on an incident (its personal data is not purged, whatever the retention period), or
    release it with --release."""
    from incident.retention.flows import hold as change

    st = state(ctx)
    held = change(st.ws(), incident_id, reason, st.who(), release=release)
    if as_json:
        print_json(held)
    elif release:
        echo(f"released the legal hold on {incident_id} (placed {held['placed_at'][:16]} by {held['placed_by']})")
    else:
        echo(f"{incident_id} is under a legal hold: `incident purge {incident_id}` refuses until it is released")


def purge(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed; change nothing")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Delete a closed incident's people's personal data once [retention] days have passed since it was closed
    and no legal hold stands: notices, review bundle, outbox, letters, exports, contacts and delivery addresses.
    Counts, regulator reports, the announcement and the audit chain stay. The workspace inventory (the company's
    own customer records, shared by every incident) is not purged."""
    from incident.retention.flows import purge as do_purge

    st = state(ctx)
    result = do_purge(st.ws(), incident_id, st.who(), dry_run=dry_run)
    if as_json:
        print_json(result.as_json())
        return
    c = result.counts
    verb = "would remove" if dry_run else "purged"
    if result.already:
        left = "removed the files a previous run left" if result.files else "nothing was left to remove"
        verb = f"already purged ({left}); it had removed"
    echo(
        f"{incident_id}: {verb}: {c.get('people', 0):,} people's contacts and ids, {c.get('notices', 0):,} notices, "
        f"{c.get('deliveries', 0):,} deliveries' ids, {c.get('attempts', 0):,} attempts (kept as counts)"
    )
    for path in result.files:
        echo(f"  {'would remove' if dry_run else 'removed'} {path}")
    for path in result.outside:
        echo(f"warning: not removed, outside the workspace (remove it yourself): {path}", err=True)
    if not dry_run:
        echo("kept: counts, regulator reports, the announcement, the audit chain; not touched: the inventory")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("hold")(hold)
    app.command("purge")(purge)
