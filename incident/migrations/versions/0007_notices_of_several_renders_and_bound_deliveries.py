"""notices of several renders side by side; each delivery bound to the render it sends

A re-render while notifying must not replace the notices that deliveries already planned are still sending, nor
those an attempt sent (the proof of delivery names their hash). So `notice` is unique per (render, person,
channel) instead of per (incident, person, channel), and `delivery` gains `render_id`, the render whose notice it
sends (existing deliveries: the incident's newest finished render, the only one that could exist while
notifying), and `cancel_reason`, why a delivery was cancelled (its person is no longer affected).

The downgrade keeps only each incident's newest render's notices (older ones are lost with the proof that named
them) and drops both delivery columns.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 03:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notice") as batch_op:
        batch_op.drop_constraint("uq_notice", type_="unique")
        batch_op.create_unique_constraint("uq_notice_render", ["render_id", "person_id", "channel"])
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("render_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
    op.execute(
        "UPDATE delivery SET render_id = (SELECT MAX(r.id) FROM render r WHERE r.incident_id = delivery.incident_id "
        "AND r.manifest_hash <> '')"
    )


def downgrade() -> None:
    op.execute(
        "DELETE FROM notice WHERE render_id < (SELECT MAX(n.render_id) FROM notice n "
        "WHERE n.incident_id = notice.incident_id)"
    )
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("render_id")
    with op.batch_alter_table("notice") as batch_op:
        batch_op.drop_constraint("uq_notice_render", type_="unique")
        batch_op.create_unique_constraint("uq_notice", ["incident_id", "person_id", "channel"])
