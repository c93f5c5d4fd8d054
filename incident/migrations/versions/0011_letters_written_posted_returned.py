"""letters have a lifecycle: written, posted (the mail house's confirmation), returned

`letter_batch` records each batch of letters: when it was written and when the mail house confirmed posting it.
`delivery` gains `letter_batch`, the batch its letter is in. Until now a letter counted as `posted` the moment
it was written; nobody confirmed it went into the post. So each incident's letters become `written`, in one
batch written when its first letter was, and wait for `incident letters ID --posted-at ISO`. The rows this
changes are covered by one "covered" entry in each such incident's chain.

The downgrade turns written letters back into `posted` and returned ones into `unreachable` (the older schema's
nearest states), and drops the table and the column.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlmodel import Session

import incident.db

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "letter_batch",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("incident_id", sqlmodel.sql.sqltypes.AutoString(), sa.ForeignKey("incident.id"), nullable=False),
        sa.Column("letters", sa.Integer(), nullable=False),
        sa.Column("written_at", incident.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("written_by", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("posted_at", incident.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("posted_by", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    )
    op.create_index("ix_letter_batch_incident_id", "letter_batch", ["incident_id"])
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.add_column(sa.Column("letter_batch", sa.Integer(), nullable=True))
    conn = op.get_bind()
    posted = conn.execute(
        sa.text(
            "SELECT incident_id, MIN(settled_at), COUNT(*) FROM delivery WHERE state = 'posted' "
            "GROUP BY incident_id ORDER BY incident_id"
        )
    ).fetchall()
    if not posted:
        return
    from incident import clock, db

    for name in db.TABLE_MODULES:  # the covered tables are declared next to them
        importlib.import_module(name)
    from incident.audit import chain as audit
    from incident.audit import coverage
    from incident.dispatch.models import LETTER_BATCH

    session = Session(bind=conn)  # joins alembic's transaction: flushes into it, never commits
    for incident_id, first, letters in posted:
        batch_id = conn.execute(
            sa.insert(LETTER_BATCH)
            .values(
                incident_id=incident_id,
                letters=int(letters),
                written_at=db.read_time(first) if first is not None else clock.now(),  # older letters: no time
                written_by="schema-upgrade-0011",
            )
            .returning(LETTER_BATCH.c.id)
        ).scalar_one()
        conn.execute(
            sa.text(
                "UPDATE delivery SET state = 'written', letter_batch = :b, settled_at = NULL "
                "WHERE incident_id = :i AND state = 'posted'"
            ),
            {"b": batch_id, "i": incident_id},
        )
        if audit.head_of(session, incident_id) is None:
            continue  # a chain that is gone stays a failure: a fresh entry would launder it
        pending = coverage._Pending(covers={"delivery": None, "letter_batch": None})
        stated = coverage.statement(session, incident_id, pending)
        event = audit.Event(audit.Action.COVERED, {"why": "letters written, not yet posted (schema 0011)"} | stated)
        audit.record(session, incident_id, event, "schema-upgrade-0011")
    session.flush()
    session.info.clear()


def downgrade() -> None:
    op.execute("UPDATE delivery SET state = 'posted' WHERE state = 'written'")
    op.execute("UPDATE delivery SET state = 'unreachable' WHERE state = 'returned'")
    with op.batch_alter_table("delivery") as batch_op:
        batch_op.drop_column("letter_batch")
    op.drop_index("ix_letter_batch_incident_id", "letter_batch")
    op.drop_table("letter_batch")
