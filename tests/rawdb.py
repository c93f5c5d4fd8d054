"""Direct database access for tests that play an auditor or an attacker with the database password.

Works on the workspace's real backend (SQLite file or PostgreSQL); `?` placeholders are translated.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
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
            cur.execute(sql.replace("?", "%s"), params)
            return cur
        return self.conn.execute(sql, params)


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
    return value.isoformat() if isinstance(value, datetime) else str(value)
