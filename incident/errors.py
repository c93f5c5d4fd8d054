"""Errors a user can act on: each renders as one line, never a traceback."""

from __future__ import annotations


class IncidentError(Exception):
    """Base of every error the CLI turns into `error: ...` and a non-zero exit."""

    exit_code = 1


class BadInput(IncidentError):
    """A file, row and field that failed validation."""

    exit_code = 2

    def __init__(self, file: str, line: int | None, field: str | None, problem: str) -> None:
        self.file, self.line, self.field, self.problem = file, line, field, problem
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field}: {problem}" if field else f"{where}: {problem}")


class ManyBadRows(IncidentError):
    """Several rows failed validation; the first few are listed, one per line."""

    exit_code = 2

    def __init__(self, errors: list[BadInput], total: int) -> None:
        self.errors, self.total = errors, total
        more = f"\n({total - len(errors)} more bad rows not shown)" if total > len(errors) else ""
        lines = "\n".join(str(e) for e in errors)
        super().__init__(f"{lines}{more}\nnothing was imported (use --skip-invalid to import the good rows)")


class NotAWorkspace(IncidentError):
    """No incident.toml where we looked."""


class NoSuchIncident(IncidentError):
    """The incident id is not in the database."""


class IllegalTransition(IncidentError):
    """A status change the state machine does not allow."""


class NotAssessed(IncidentError):
    """A step that needs the assessment snapshot ran before `incident assess`."""


class SchemaOutOfDate(IncidentError):
    """The database was made by an older schema; `incident db upgrade` fixes it."""


class DatabaseBusy(IncidentError):
    """Another process holds the database lock longer than the busy timeout; nothing was changed."""
