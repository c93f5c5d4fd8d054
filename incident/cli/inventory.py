"""Commands that load and inspect the data inventory (people, systems, holdings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import print_json, state
from incident.cli.output import echo

inventory_app = typer.Typer(
    help="Load and inspect the data inventory (people, systems, holdings).", no_args_is_help=True, rich_markup_mode=None
)


@inventory_app.command("import")
def inventory_import(
    ctx: typer.Context,
    people: Annotated[Path | None, typer.Option(help="People file (.csv or .jsonl)")] = None,
    holdings: Annotated[Path | None, typer.Option(help="Holdings file: which system held which category when")] = None,
    systems: Annotated[Path | None, typer.Option(help="Systems YAML file (top-level `systems:` list)")] = None,
    skip_invalid: Annotated[bool, typer.Option(help="Import the good rows; write the bad ones to --rejects")] = False,
    rejects: Annotated[Path | None, typer.Option(help="Where --skip-invalid writes rejected rows")] = None,
) -> None:
    """Import people, holdings and systems in one transaction; any bad row refuses the whole import."""
    from incident.inventory.flows import import_files

    st = state(ctx)
    if people is None and holdings is None and systems is None:
        raise typer.BadParameter("give at least one of --people, --holdings, --systems")
    report = import_files(
        st.ws(), st.who(), people=people, holdings=holdings, systems=systems, skip_invalid=skip_invalid, rejects=rejects
    )
    echo(
        f"systems: {report.systems}  people: {report.people_read} read, {report.people_new} new  "
        f"holdings: {report.holdings_read} read, {report.holdings_new} new"
    )
    if report.rejected:
        echo(f"rejected {report.rejected} rows; reasons in {report.rejects_file}", err=True)
        for err in report.errors:
            echo(f"  {err}", err=True)


@inventory_app.command("stats")
def inventory_stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Count people, holdings by system and category, children, cancelled accounts, the unreachable."""
    from incident.inventory.flows import inventory_stats as compute

    data = compute(state(ctx).ws())
    if as_json:
        print_json(data)
        return
    echo(f"people:            {data['people']}")
    echo(f"holdings:          {data['holdings']}")
    echo(f"children (<14):    {data['children']}")
    echo(f"cancelled:         {data['cancelled']}")
    echo(f"no usable channel: {data['no_usable_channel']}")
    echo("systems:")
    for s in data["systems"]:
        echo(
            f"  {s['name']:<24} {s['kind']:<9} {s['location']:<6} {s['people']:>9} people {s['holdings']:>10} holdings"
        )
    echo("categories:")
    for key, c in data["categories"].items():
        echo(f"  {key:<26} {c['people']:>9} people")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(inventory_app, name="inventory")
