"""responder text in both languages: a timeline entry keeps its English text beside its Chinese one

`timeline_entry.text` stays the zh-CN text and gains `text_en` (empty for every existing entry: a zh-CN notice
shows only `text`, an English one only `text_en`; the notices lint names every entry that lacks one). Every
incident's chain then gets one "coverage-baseline" entry, so the new column is covered from the upgrade on.
A downgrade drops the English texts.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 02:00:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op
from sqlmodel import Session

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch_op:
        batch_op.add_column(sa.Column("text_en", sa.Text(), nullable=True))
    from incident import db

    for name in db.TABLE_MODULES:  # the covered tables are declared next to them
        importlib.import_module(name)
    from incident.audit import coverage

    conn = op.get_bind()
    # The session joins alembic's transaction: it flushes into it and never commits or rolls it back itself.
    session = Session(bind=conn)
    for (incident_id,) in conn.execute(sa.text("SELECT id FROM incident ORDER BY id")).fetchall():
        coverage.baseline(session, incident_id, "schema-upgrade-0009")
    session.flush()
    session.info.clear()


def downgrade() -> None:
    with op.batch_alter_table("timeline_entry") as batch_op:
        batch_op.drop_column("text_en")
