"""Commands that set up a workspace: init, and config show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from incident.cli import print_json, state
from incident.cli.output import echo

config_app = typer.Typer(
    help="Show the workspace configuration (secrets masked).", no_args_is_help=True, rich_markup_mode=None
)


def init(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Folder for the new workspace")] = Path("."),
) -> None:
    """Create a workspace: incident.toml (pre-filled from the privacy policy) and an empty database."""
    from incident.audit.flows import init_workspace

    ws = init_workspace(directory, state(ctx).who())
    echo(f"workspace ready: {ws.root}")
    echo(f"  config:   {ws.path('incident.toml')}")
    echo(f"  database: {ws.database_url.split('@')[-1]}")


@config_app.command("show")
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print the configuration in effect with every secret and credential masked."""
    from incident.dispatch.transports import OWN_SCHEMES
    from incident.privacy import masked_config as masked

    ws = state(ctx).ws()
    data = masked({"workspace": str(ws.root), "database_url": ws.database_url, **ws.config}, own_schemes=OWN_SCHEMES)
    if as_json:
        print_json(data)
        return
    for line in _flatten(data):
        echo(line)


def _flatten(data: object, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        return [line for k, v in data.items() for line in _flatten(v, f"{prefix}{k}.")]
    return [f"{prefix[:-1]} = {data}"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("init")(init)
    app.add_typer(config_app, name="config")
