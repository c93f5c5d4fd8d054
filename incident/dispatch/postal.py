"""The named queries of letters: those waiting for a batch, the batches, and a letter found by its reference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import text
from sqlmodel import Session, select

from incident.dispatch.models import DELIVERY, POSTAL, DeliveryState, LetterBatch


class QueuedLetter(NamedTuple):
    """One person's letter waiting for the batch: its notice and the postal name and address."""

    person_id: str
    notice_id: int
    ref: str
    locale: str
    body: Any  # stored form: see notices.models.unpack_content
    html: Any
    to_name: str | None
    to_address: str | None


def queued_letters(session: Session, incident_id: str) -> Iterator[QueuedLetter]:
    """Deliveries waiting for a letter, with their letter notice and postal address, in person order."""
    rows = session.connection().execute(
        text(
            "SELECT d.person_id, n.id, n.ref, n.locale, n.body, n.html, a.to_name, a.to_address FROM delivery d "
            "JOIN notice n ON n.incident_id = d.incident_id AND n.person_id = d.person_id AND n.channel = :postal "
            "AND n.render_id = d.render_id "
            "JOIN affected a ON a.incident_id = d.incident_id AND a.person_id = d.person_id "
            "WHERE d.incident_id = :i AND d.state = :letter ORDER BY d.person_id"
        ),
        {"i": incident_id, "postal": POSTAL, "letter": DeliveryState.LETTER},
    )
    return (QueuedLetter(*r) for r in rows)


def batches(session: Session, incident_id: str) -> list[LetterBatch]:
    """The incident's letter batches, oldest first."""
    stmt = select(LetterBatch).where(LetterBatch.incident_id == incident_id).order_by(LetterBatch.id)  # type: ignore[arg-type]
    return list(session.exec(stmt))


def letters_by_ref(session: Session, incident_id: str, refs: list[str]) -> dict[str, tuple[str, str]]:
    """{letter reference: (person id, delivery state)} for the letters among `refs` a batch holds."""
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(refs), 500):
        rows = session.connection().execute(
            text(
                "SELECT n.ref, d.person_id, d.state FROM delivery d JOIN notice n ON n.incident_id = d.incident_id "
                "AND n.person_id = d.person_id AND n.channel = :postal AND n.render_id = d.render_id "
                "WHERE d.incident_id = :i AND d.letter_batch IS NOT NULL AND n.ref IN :refs"
            ).bindparams(sa.bindparam("refs", expanding=True)),
            {"i": incident_id, "postal": POSTAL, "refs": refs[start : start + 500]},
        )
        found.update({r[0]: (r[1], r[2]) for r in rows})
    return found


def in_batch(session: Session, incident_id: str, batch_id: int, state: str) -> list[str]:
    """The people whose letter is in batch `batch_id` and in `state`."""
    d = DELIVERY
    stmt = sa.select(d.c.person_id).where(
        d.c.incident_id == incident_id, d.c.letter_batch == batch_id, d.c.state == state
    )
    return [r[0] for r in session.connection().execute(stmt)]


def returned_count(session: Session, incident_id: str) -> int:
    """Letters the post brought back (their people count as unreachable)."""
    d = DELIVERY
    stmt = sa.select(sa.func.count()).where(d.c.incident_id == incident_id, d.c.state == DeliveryState.RETURNED)
    return int(session.connection().execute(stmt).scalar_one())
