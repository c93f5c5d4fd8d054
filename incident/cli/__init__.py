"""The command line: parse, call one use-case function, print. No SQL, Jinja or apprise here."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from incident.cli.output import echo, echo_json
from incident.errors import ExitCode, IncidentError

if TYPE_CHECKING:
    from incident.config import Workspace


# typer vendors its own click; its UsageError (missing option, bad value, unknown option) is BadParameter's base.
UsageError: type[Exception] = typer.BadParameter.__mro__[1]


def _not_utf8(arg: str) -> bool:
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _option_named(args: list[str], i: int) -> str:
    """The option a command-line word belongs to (`--title` for `--title X` or `--title=X`), for an error line."""
    word = args[i]
    if word.startswith("--") and "=" in word:
        name = word.split("=", 1)[0]
    elif i > 0 and args[i - 1].startswith("-"):
        name = args[i - 1]
    else:
        name = f"argument {i + 1}"
    return f"argument {i + 1}" if _not_utf8(name) else name


class ErrorMappingGroup(TyperGroup):
    """Turn every IncidentError into `error: ...` on stderr and its exit code (no traceback)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Python hands bytes that are not UTF-8 over as lone surrogates (PEP 383): a GBK terminal's title would
        # reach the database and every print as text no encoder accepts. Refuse them before anything runs.
        for i, arg in enumerate(args):
            if _not_utf8(arg):
                echo(
                    f"error: {_option_named(args, i)}: not UTF-8 text (is the terminal set to GBK or another "
                    "encoding? set it to UTF-8)",
                    err=True,
                )
                ctx.exit(ExitCode.BAD_INPUT)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except IncidentError as exc:
            echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except UsageError as exc:
            # One line like every other error, still pointing at the help (click's own form takes four lines).
            sub = getattr(exc, "ctx", None)
            where = sub.command_path if sub is not None else "incident"
            echo(f"error: {exc.format_message()} (see `{where} --help`)", err=True)  # type: ignore[attr-defined]
            raise typer.Exit(getattr(exc, "exit_code", ExitCode.BAD_INPUT)) from None
        except OSError as exc:
            if exc.filename is None:
                raise
            # The last net under every file the tool opens: the file and the reason, never the stack.
            echo(f"error: {exc.filename}: {exc.strerror or exc}", err=True)
            raise typer.Exit(ExitCode.FAILED) from None
        except Exception as exc:
            if "sqlalchemy" not in sys.modules:
                raise
            from incident.db import database_error

            mapped = database_error(exc)  # locked, full, unreachable: one line, never the SQL or its rows
            if mapped is None:
                raise
            echo(f"error: {mapped}", err=True)
            raise typer.Exit(mapped.exit_code) from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

app = typer.Typer(
    cls=ErrorMappingGroup,
    help="Carry a company through a personal-information security incident: who is affected, "
    "what to tell them, and every legal clock.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals would print personal data
    add_completion=False,
    rich_markup_mode=None,
)


@dataclass
class State:
    workspace: Path | None
    actor: str | None

    def ws(self) -> Workspace:
        from incident.config import find_workspace

        return find_workspace(self.workspace)

    def who(self) -> str:
        from incident.audit.chain import current_actor

        return current_actor(self.actor)


@app.callback()
def root(
    ctx: typer.Context,
    workspace: Annotated[
        Path | None, typer.Option("--workspace", "-w", help="Workspace folder (default: INCIDENT_HOME, then .)")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who is acting, for the audit trail (default: OS user)")] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            help="Log to stderr: DEBUG, INFO, WARNING (default: "
            "INCIDENT_LOG_LEVEL, else off); logs hold masked data only"
        ),
    ] = None,
) -> None:
    """Carry a company through a personal-information security incident."""
    import os

    level = log_level or os.environ.get("INCIDENT_LOG_LEVEL")
    if level and level.upper() not in LOG_LEVELS:
        from incident.errors import InvalidArgument

        source = "--log-level" if log_level else "INCIDENT_LOG_LEVEL"
        raise InvalidArgument(f"{source}: {level[:20]!r} is not a level (use {', '.join(LOG_LEVELS)})")
    if level:
        import logging

        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root_log = logging.getLogger("incident")
        root_log.handlers[:] = [handler]
        root_log.setLevel(level.upper())
    ctx.obj = State(workspace, actor)


def state(ctx: typer.Context) -> State:
    """Return the global options of this invocation."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State(None, None)


def print_json(data: Any) -> None:
    """Print machine-readable output."""
    echo_json(data)


def _register() -> None:
    # One CLI module per domain; each adds its own commands (the order is the help screen's).
    from incident.cli import (
        assess,
        audit,
        db,
        demo,
        dispatch,
        incidents,
        inventory,
        notices,
        reports,
        retention,
        workspace,
    )

    for module in (workspace, inventory, incidents, assess, notices, dispatch, reports, retention, audit, db, demo):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
