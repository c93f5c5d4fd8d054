"""the affected snapshot in one table: exposure folded into affected.categories, no per-row foreign key

`exposure` held one row per affected person and category; `affected.categories` holds the same keys, sorted and
comma-separated, so the snapshot is written by one INSERT..SELECT. `affected` loses its foreign key to `incident`
(only `assess.determine_affected` writes it, under the incident's row lock, and incidents are never deleted):
PostgreSQL checks such a key with a trigger per row. `notice` loses ix_notice_render, which no query used and
every rendered notice paid for.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite's foreign keys have no name; batch mode names them by this convention so one can be dropped.
SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def upgrade() -> None:
    op.drop_table("exposure")
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.drop_index("ix_notice_render")
    keys = [fk for fk in sa.inspect(op.get_bind()).get_foreign_keys("affected") if fk["referred_table"] == "incident"]
    name = (keys[0]["name"] if keys else None) or "fk_affected_incident_id_incident"  # SQLite: unnamed, see above
    with op.batch_alter_table("affected", naming_convention=SQLITE_NAMES) as batch_op:
        batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("notice", schema=None) as batch_op:
        batch_op.create_index("ix_notice_render", ["render_id"], unique=False)
    with op.batch_alter_table("affected", schema=None) as batch_op:
        batch_op.create_foreign_key("affected_incident_id_fkey", "incident", ["incident_id"], ["id"])
    op.create_table(
        "exposure",
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("person_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("category", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.PrimaryKeyConstraint("incident_id", "person_id", "category"),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "INSERT INTO exposure (incident_id, person_id, category) SELECT a.incident_id, a.person_id, "
            "j.value FROM affected a, json_each('[\"' || replace(a.categories, ',', '\",\"') || '\"]') j"
        )
    else:
        op.execute(
            "INSERT INTO exposure (incident_id, person_id, category) SELECT incident_id, person_id, "
            "unnest(string_to_array(categories, ',')) FROM affected"
        )
