"""Commands that set up a workspace and its data inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import print_json, state

config_app = typer.Typer(
    help="Show the workspace configuration (secrets masked).", no_args_is_help=True, rich_markup_mode=None
)
inventory_app = typer.Typer(
    help="Load and inspect the data inventory (people, systems, holdings).", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace")] = Path("."),
) -> None:
    """Create a workspace: incident.toml (pre-filled from the privacy policy) and an empty database."""
    from incident.audit.flows import init_workspace

    ws = init_workspace(directory, state(ctx).who())
    typer.echo(f"workspace ready: {ws.root}")
    typer.echo(f"  config:   {ws.path('incident.toml')}")
    typer.echo(f"  database: {ws.database_url.split('@')[-1]}")


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
        typer.echo(line)


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
    typer.echo(
        f"systems: {report.systems}  people: {report.people_read} read, {report.people_new} new  "
        f"holdings: {report.holdings_read} read, {report.holdings_new} new"
    )
    if report.rejected:
        typer.echo(f"rejected {report.rejected} rows; reasons in {report.rejects_file}", err=True)
        for err in report.errors:
            typer.echo(f"  {err}", err=True)


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
    typer.echo(f"people:            {data['people']}")
    typer.echo(f"holdings:          {data['holdings']}")
    typer.echo(f"children (<14):    {data['children']}")
    typer.echo(f"cancelled:         {data['cancelled']}")
    typer.echo(f"no usable channel: {data['no_usable_channel']}")
    typer.echo("systems:")
    for s in data["systems"]:
        typer.echo(
            f"  {s['name']:<24} {s['kind']:<9} {s['location']:<6} {s['people']:>9} people {s['holdings']:>10} holdings"
        )
    typer.echo("categories:")
    for key, c in data["categories"].items():
        typer.echo(f"  {key:<26} {c['people']:>9} people")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the configuration in effect with every secret and credential masked."""
    from incident.privacy import masked_config as masked

    ws = state(ctx).ws()
    data = masked({"workspace": str(ws.root), "database_url": ws.database_url, **ws.config})
    if as_json:
        print_json(data)
        return
    for line in _flatten(data):
        typer.echo(line)


def _flatten(data: object, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        return [line for k, v in data.items() for line in _flatten(v, f"{prefix}{k}.")]
    return [f"{prefix[:-1]} = {data}"]
