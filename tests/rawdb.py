"""Direct database access for tests that play an auditor or an attacker with the database password.

Works on the workspace's real backend (SQLite file or PostgreSQL); `?` placeholders are translated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from incident.config import find_workspace


class Raw:
    """A DB-API connection with sqlite3's `execute(sql, params)` shape on either backend."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self.conn, self.postgres = conn, postgres

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        if self.postgres:
            cur = self.conn.cursor()
            cur.execute(sql.replace("%", "%%").replace("?", "%s").replace("char(", "chr("), params)
            return _Rows(cur)
        return self.conn.execute(sql, params)


class _Rows:
    """PostgreSQL rows shaped like SQLite's: dates and times as the ISO text SQLite stores."""

    def __init__(self, cur: Any) -> None:
        self.cur = cur

    @staticmethod
    def _value(v: Any) -> Any:
        if isinstance(v, datetime):
            return v.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        if isinstance(v, date):
            return v.isoformat()
        return v

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(self._value(v) for v in row) for row in self.cur.fetchall()] if self.cur.description else []

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self.cur.fetchone()
        return None if row is None else tuple(self._value(v) for v in row)

    def __iter__(self) -> Any:
        return iter(self.fetchall())


@contextmanager
def connect(root: Path) -> Iterator[Raw]:
    """Open the workspace's database directly; commit on success."""
    url = find_workspace(root).database_url
    if url.startswith("postgresql"):
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn) as conn:
            yield Raw(conn, True)
    else:
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            yield Raw(conn, False)
            conn.commit()
        finally:
            conn.close()


def as_text_time(value: Any) -> str:
    """A stored timestamp as the ISO text the audit hash covers."""
    return str(value)
