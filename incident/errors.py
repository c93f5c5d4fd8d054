"""Errors a user can act on, and the one table of exit codes: each error renders as one line, never a traceback."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means (README, "Exit codes"); scripts and cron rely on these numbers."""

    OK = 0
    FAILED = 1  # the step cannot be done now (state, approval, a prerequisite) or did not finish (sends left)
    BAD_INPUT = 2  # an argument, option, file, row or field is invalid, or names something that does not exist
    VERIFY_FAILED = 3  # a verification found a problem (audit chain broken, edited or truncated)
    OVERDUE = 4  # `status`: an obligation is overdue
    BUSY = 5  # the database is locked by another process; nothing was changed, run it again


class IncidentError(Exception):
    """Base of every error the CLI turns into `error: ...` and a non-zero exit."""

    exit_code: int = ExitCode.FAILED


class InvalidArgument(IncidentError):
    """An option or argument the command cannot use: malformed, out of range, or naming nothing known."""

    exit_code = ExitCode.BAD_INPUT


class BadInput(IncidentError):
    """A file, row and field that failed validation."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, file: str, line: int | None, field: str | None, problem: str) -> None:
        self.file, self.line, self.field, self.problem = file, line, field, problem
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class ManyBadRows(IncidentError):
    """Several rows failed validation; the first few are listed, one per line."""

    exit_code = ExitCode.BAD_INPUT

    def __init__(self, errors: list[BadInput], total: int) -> None:
        self.errors, self.total = errors, total
        more = f"\n({total - len(errors)} more bad rows not shown)" if total > len(errors) else ""
        lines = "\n".join(str(e) for e in errors)
        super().__init__(f"{lines}{more}\nnothing was imported (use --skip-invalid to import the good rows)")


class BadConfig(IncidentError):
    """incident.toml (or a setting read from the environment) holds a value the tool cannot use."""

    exit_code = ExitCode.BAD_INPUT


class NotAWorkspace(IncidentError):
    """No incident.toml where we looked."""

    exit_code = ExitCode.BAD_INPUT


class NoSuchIncident(IncidentError):
    """The incident id is not in the database."""

    exit_code = ExitCode.BAD_INPUT


class IllegalTransition(IncidentError):
    """A status change the state machine does not allow."""


class NotAssessed(IncidentError):
    """A step that needs the assessment snapshot ran before `incident assess`."""


class SchemaOutOfDate(IncidentError):
    """The database was made by an older schema; `incident db upgrade` fixes it."""


class CorruptRecord(IncidentError):
    """A value read from the database is not what the tool stored there (edited by hand, or damaged)."""

    exit_code = ExitCode.VERIFY_FAILED

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(
            f"the database holds a corrupt value: {where}: {problem} "
            "(not what the tool stored: see `incident audit verify`, or restore a backup)"
        )


class DatabaseBusy(IncidentError):
    """Another process holds the database lock longer than the busy timeout; nothing was changed."""

    exit_code = ExitCode.BUSY
