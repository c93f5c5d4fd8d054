"""audit chain v2: entries cover the rows they changed, and may carry an HMAC tag

`audit_entry` gains `tag` (HMAC-SHA256 over the entry's hash with INCIDENT_AUDIT_KEY; empty for every existing
entry: the key was never used). Every incident's chain then gets one "coverage-baseline" entry holding the digest
of each of its covered rows as they are now, so an upgraded workspace verifies: its v1 entries are followed by v2
ones. The baseline vouches for the rows as the upgrade found them: run `incident audit verify` before upgrading.
A downgrade drops the tags; the baseline entries stay (a v1 reader verifies them as plain links).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:30:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlmodel import Session

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.add_column(sa.Column("tag", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    from incident import db

    for name in db.TABLE_MODULES:  # the covered tables are declared next to them
        importlib.import_module(name)
    from incident.audit import coverage

    conn = op.get_bind()
    # The session joins alembic's transaction: it flushes into it and never commits or rolls it back itself.
    session = Session(bind=conn)
    for (incident_id,) in conn.execute(sa.text("SELECT id FROM incident ORDER BY id")).fetchall():
        coverage.baseline(session, incident_id, "schema-upgrade-0006")
    session.flush()
    session.info.clear()


def downgrade() -> None:
    with op.batch_alter_table("audit_entry") as batch_op:
        batch_op.drop_column("tag")
