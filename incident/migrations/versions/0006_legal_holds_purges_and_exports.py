"""legal holds, purges and the exports the tool wrote

Data at rest (issue 12): `legal_hold` keeps every hold placed on an incident and its release; `purge` records
when an incident's personal data was purged and the workspace files its purge removes after the commit;
`export_file` remembers each file the tool wrote an incident's personal data into on request, so a purge can
remove it; `attempt_tally` keeps the counts per channel and outcome of delivery attempts a purge deleted.
All four start empty; a downgrade drops them (a purge already done stays done: its rows are gone).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import incident.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "legal_hold",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", text(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("placed_at", incident.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("placed_by", text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("released_at", incident.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("released_by", text(), nullable=True),
        sa.Column("release_reason", sa.Text(), nullable=True),
    )
    op.create_index("ix_legal_hold_incident_id", "legal_hold", ["incident_id"])
    op.create_table(
        "purge",
        sa.Column("incident_id", text(), sa.ForeignKey("incident.id"), primary_key=True),
        sa.Column("at", incident.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", text(), nullable=False),
        sa.Column("retention_days", sa.Integer(), nullable=False),
        sa.Column("removed", sa.Text(), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
    )
    op.create_table(
        "export_file",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", text(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("kind", text(), nullable=False),
        sa.Column("at", incident.db.UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_export_file_incident_id", "export_file", ["incident_id"])
    op.create_table(
        "attempt_tally",
        sa.Column("incident_id", text(), sa.ForeignKey("incident.id"), primary_key=True),
        sa.Column("channel", text(), primary_key=True),
        sa.Column("outcome", text(), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("attempt_tally")
    op.drop_index("ix_export_file_incident_id", table_name="export_file")
    op.drop_table("export_file")
    op.drop_table("purge")
    op.drop_index("ix_legal_hold_incident_id", table_name="legal_hold")
    op.drop_table("legal_hold")
