"""The audit trail's tables: one hash-chained entry per event, and each chain's head."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from incident.db import UTCDateTime


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"
    __table_args__ = (UniqueConstraint("chain", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(index=True)
    seq: int
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    actor: str
    action: str
    payload: str = Field(sa_column=Column(Text, nullable=False))
    prev_hash: str
    hash: str
    tag: str | None = None  # HMAC-SHA256 over `hash` with INCIDENT_AUDIT_KEY, when the key was set


class AuditHead(SQLModel, table=True):
    """The newest link of each chain, so deleting the last entries is caught too."""

    __tablename__ = "audit_head"
    chain: str = Field(primary_key=True)
    seq: int
    hash: str
