"""approvals can be signed

`approval` gains the SSH signature over the approval statement (`ssh-keygen -Y sign -n incident-approval`) and
the fingerprint of the key that made it. Both are empty for every existing approval (nobody signed them), and a
downgrade drops them, losing the signatures (the approvals themselves stay).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approval") as batch_op:
        batch_op.add_column(sa.Column("signature", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("signer", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approval") as batch_op:
        batch_op.drop_column("signer")
        batch_op.drop_column("signature")
