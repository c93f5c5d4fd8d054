"""The inventory's tables (people, systems, holdings), the systems file's schema, and the queries other domains ask."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import Column, Date, Index, UniqueConstraint, text
from sqlmodel import Field, Session, SQLModel, select

from incident import clock


class Person(SQLModel, table=True):
    __tablename__ = "person"
    person_id: str = Field(primary_key=True, max_length=64)
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    push_token: str | None = None
    locale: str = "zh-CN"
    region: str | None = None
    birth_date: date | None = Field(default=None, sa_column=Column(Date))
    guardian_name: str | None = None
    guardian_email: str | None = None
    guardian_phone: str | None = None
    postal_address: str | None = None
    account_status: str = "active"
    cancelled_at: date | None = Field(default=None, sa_column=Column(Date))
    import_id: int = 0


class System(SQLModel, table=True):
    __tablename__ = "system"
    name: str = Field(primary_key=True)
    description: str = ""
    location: str = ""
    kind: str = "internal"


class Holding(SQLModel, table=True):
    __tablename__ = "holding"
    __table_args__ = (
        UniqueConstraint("person_id", "system", "category", "since", name="uq_holding"),
        Index("ix_holding_scope", "system", "category"),
    )
    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(foreign_key="person.person_id")
    system: str = Field(foreign_key="system.name")
    category: str
    since: date = Field(sa_column=Column(Date, nullable=False))
    until: date | None = Field(default=None, sa_column=Column(Date))


class SystemEntry(BaseModel):
    """One system of a systems YAML file."""

    model_config = ConfigDict(extra="forbid")
    name: str = PField(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    description: str = ""
    location: str = PField(default="CN", pattern=r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
    kind: Literal["internal", "backup", "partner"]


class SystemsFile(BaseModel):
    """A systems YAML file: a top-level `systems:` list."""

    model_config = ConfigDict(extra="forbid")
    systems: list[SystemEntry]


# ---- named queries ------------------------------------------------------------------------------


def child_cutoff(on: date) -> date:
    """Return the birth date after which a person is under 14 on `on` (policy §八; 儿童 = under 14)."""
    return clock.years_before(on, 14)


def system_exists(session: Session, name: str) -> bool:
    """Decide whether the inventory knows a system of this name."""
    return session.get(System, name) is not None


def unknown_systems(session: Session, names: Iterable[str]) -> list[str]:
    """Return the names the inventory has no system for, in the order given."""
    return [name for name in names if not system_exists(session, name)]


def systems_by_name(session: Session, names: Iterable[str]) -> dict[str, System]:
    """Return the known systems among these names, by name (an unknown name is absent)."""
    found = {name: session.get(System, name) for name in names}
    return {name: system for name, system in found.items() if system is not None}


def system_names(session: Session) -> set[str]:
    """Return the name of every system in the inventory."""
    return set(session.exec(select(System.name)))


def stats(session: Session) -> dict[str, Any]:
    """Count people, holdings by system and category, children, cancelled accounts and the unreachable."""
    conn = session.connection()
    cutoff = child_cutoff(clock.now().date()).isoformat()

    def scalar(sql: str, **params: Any) -> int:
        return int(conn.execute(text(sql), params).scalar_one())

    no_channel = (
        "SELECT COUNT(*) FROM person WHERE "
        "(birth_date IS NULL OR birth_date <= :c) AND email IS NULL AND phone IS NULL AND push_token IS NULL "
        "AND postal_address IS NULL"
    )
    child_unreachable = (
        "SELECT COUNT(*) FROM person WHERE birth_date > :c AND guardian_email IS NULL AND guardian_phone IS NULL "
        "AND (postal_address IS NULL OR guardian_name IS NULL)"
    )
    return {
        "people": scalar("SELECT COUNT(*) FROM person"),
        "holdings": scalar("SELECT COUNT(*) FROM holding"),
        "systems": [
            dict(r._mapping)
            for r in conn.execute(
                text(
                    "SELECT s.name AS name, s.kind AS kind, s.location AS location, COUNT(h.id) AS holdings, "
                    "COUNT(DISTINCT h.person_id) AS people FROM system s LEFT JOIN holding h ON h.system = s.name "
                    "GROUP BY s.name, s.kind, s.location ORDER BY s.name"
                )
            )
        ],
        "categories": {
            r[0]: {"holdings": r[1], "people": r[2]}
            for r in conn.execute(
                text("SELECT category, COUNT(*), COUNT(DISTINCT person_id) FROM holding GROUP BY category ORDER BY 1")
            )
        },
        "children": scalar("SELECT COUNT(*) FROM person WHERE birth_date > :c", c=cutoff),
        "cancelled": scalar("SELECT COUNT(*) FROM person WHERE account_status = 'cancelled'"),
        "no_usable_channel": scalar(no_channel, c=cutoff) + scalar(child_unreachable, c=cutoff),
    }
