"""incident.nature: the nature of the breach (GDPR art. 4(12)) as a recorded fact the notices and reports state

NULL means the playbook's default (ransomware: availability and confidentiality; the others: confidentiality),
so existing incidents read as they did. The column is covered by the audit chain, so every incident's chain gets a
fresh coverage baseline (as in 0008): its rows' digests now include the column.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:30:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlmodel import Session

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN: a batch copy of `incident` would have to drop a table every other table refers to.
    op.add_column("incident", sa.Column("nature", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    from incident import db

    for name in db.TABLE_MODULES:
        importlib.import_module(name)
    from incident.audit import coverage

    conn = op.get_bind()
    session = Session(bind=conn)
    for (incident_id,) in conn.execute(sa.text("SELECT id FROM incident ORDER BY id")).fetchall():
        coverage.baseline(session, incident_id, "schema-upgrade-0010")
    session.flush()
    session.info.clear()


def downgrade() -> None:
    op.execute("ALTER TABLE incident DROP COLUMN nature")  # SQLite 3.35+ and PostgreSQL drop a column in place
