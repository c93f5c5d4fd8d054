"""Commands on the database itself."""

from __future__ import annotations

import typer

from incident.cli import state
from incident.cli.output import echo

db_app = typer.Typer(
    help="Database schema: upgrade to the current revision.", no_args_is_help=True, rich_markup_mode=None
)


@db_app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Bring the database schema (SQLite or PostgreSQL) up to the current revision with Alembic."""
    from incident.audit.flows import upgrade_database

    before, after = upgrade_database(state(ctx).ws(), state(ctx).who())
    echo(f"schema {before} → {after}" if before != after else f"schema already at {after}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(db_app, name="db")
