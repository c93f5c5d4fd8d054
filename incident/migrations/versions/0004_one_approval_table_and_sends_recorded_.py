"""one approval table for every reviewed artefact; sends recorded before they are made

`approval` (the notices' decisions) and `announcement_decision` become one `approval` table keyed on (incident,
artefact, version, manifest hash): existing rows are carried over as artefact 'notices' or 'announcement',
version 1 (there are no waves or announcement versions yet), with the render they were made on in `render_id`,
which loses its foreign key because it now points into each artefact's own render table.

`announcement_send` and `deadline_warning` gain the owner process and lease of a send in flight, and
`deadline_warning` a state: a send is recorded as 'sending' before it is made, so a run that dies in between
leaves a row that says so. Warnings already recorded were sent.

The downgrade restores both decision tables. What it cannot keep: an announcement send still 'sending' becomes
'unknown' (the older release retries it), and a warning still 'sending' is forgotten (the older release sends
it again).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import incident.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# SQLite's foreign keys have no name; batch mode names them by this convention so one can be dropped.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
DECISION_COLUMNS = "incident_id, render_id, decision, reviewer, comment, at, manifest_hash"


def _render_key_name() -> str:
    keys = [fk for fk in sa.inspect(op.get_bind()).get_foreign_keys("approval") if fk["referred_table"] == "render"]
    return (keys[0]["name"] if keys else None) or "fk_approval_render_id_render"  # SQLite: unnamed, see above


def upgrade() -> None:
    render_key = _render_key_name()
    with op.batch_alter_table("approval", naming_convention=SQLITE_NAMES) as batch_op:
        batch_op.add_column(sa.Column("artefact", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
        batch_op.drop_constraint(render_key, type_="foreignkey")
        batch_op.drop_index("ix_approval_incident_id")
    op.execute("UPDATE approval SET artefact = 'notices', version = 1")
    op.execute(
        f"INSERT INTO approval ({DECISION_COLUMNS}, artefact, version) "
        f"SELECT {DECISION_COLUMNS}, 'announcement', 1 FROM announcement_decision ORDER BY id"
    )
    with op.batch_alter_table("approval") as batch_op:
        batch_op.alter_column("artefact", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)
        batch_op.alter_column("version", existing_type=sa.Integer(), nullable=False)
        batch_op.create_index("ix_approval_key", ["incident_id", "artefact", "version", "manifest_hash"], unique=False)
    with op.batch_alter_table("announcement_decision") as batch_op:
        batch_op.drop_index("ix_announcement_decision_incident_id")
    op.drop_table("announcement_decision")

    with op.batch_alter_table("announcement_send") as batch_op:
        batch_op.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("lease_until", incident.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("deadline_warning") as batch_op:
        batch_op.add_column(sa.Column("state", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        batch_op.add_column(sa.Column("lease_until", incident.db.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE deadline_warning SET state = 'sent'")
    with op.batch_alter_table("deadline_warning") as batch_op:
        batch_op.alter_column("state", existing_type=sqlmodel.sql.sqltypes.AutoString(), nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM deadline_warning WHERE state = 'sending'")
    with op.batch_alter_table("deadline_warning") as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("owner")
        batch_op.drop_column("state")
    op.execute("UPDATE announcement_send SET outcome = 'unknown' WHERE outcome = 'sending'")
    with op.batch_alter_table("announcement_send") as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("owner")

    op.create_table(
        "announcement_decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("render_id", sa.Integer(), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("reviewer", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("at", incident.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("manifest_hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["render_id"], ["announcement_render.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("announcement_decision", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_announcement_decision_incident_id"), ["incident_id"], unique=False)
    op.execute(
        f"INSERT INTO announcement_decision ({DECISION_COLUMNS}) "
        f"SELECT {DECISION_COLUMNS} FROM approval WHERE artefact = 'announcement' ORDER BY id"
    )
    op.execute("DELETE FROM approval WHERE artefact <> 'notices'")
    with op.batch_alter_table("approval") as batch_op:
        batch_op.drop_index("ix_approval_key")
        batch_op.drop_column("version")
        batch_op.drop_column("artefact")
        batch_op.create_index(batch_op.f("ix_approval_incident_id"), ["incident_id"], unique=False)
        batch_op.create_foreign_key("approval_render_id_fkey", "render", ["render_id"], ["id"])
