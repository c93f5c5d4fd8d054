"""The letter batch: printable letters and a mail-merge CSV for people reached only by post."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from incident import clock
from incident.audit import chain as audit
from incident.audit import coverage
from incident.config import Workspace
from incident.dispatch import models
from incident.dispatch.models import POSTAL, AttemptOutcome, DeliveryState, QueuedLetter
from incident.files import open_private, private_dir, safe_cell
from incident.notices.models import unpack_content

PRINTED_REASON = "written to the letter batch for postal mail"


@dataclass
class LetterBatch:
    """Where a letter batch went: its folder, how many letters, the mail-merge CSV and the print-all file."""

    folder: Path
    letters: int
    csv: Path
    print_file: Path


def write_letters(session: Session, ws: Workspace, incident_id: str, *, actor: str) -> LetterBatch:
    """Write every queued letter (postal-only people and those every electronic channel failed for)."""
    folder = ws.path("letters", incident_id)
    private_dir(folder, within=ws.root)
    merge_path, print_path = folder / "mail-merge.csv", folder / "print-all.html"
    now = clock.now()
    printed: list[int] = []
    with open_private(merge_path, within=ws.root) as merge, open_private(print_path, within=ws.root) as printable:
        writer = csv.writer(merge)
        writer.writerow(["ref", "name", "postal_address", "locale", "file"])
        printable.write(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>letters</title>'
            "<style>.page{page-break-after:always}</style></head><body>\n"
        )
        for letter in models.queued_letters(session, incident_id):
            body = unpack_content(letter.body, letter.html)[1] or ""
            path = folder / f"{letter.ref}.html"
            with open_private(path, within=ws.root) as fh:
                fh.write(body)
            inner = body.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
            printable.write(f'<div class="page">{inner}</div>\n')
            name, address = letter.to_name or "", letter.to_address or ""
            writer.writerow([safe_cell(v) for v in (letter.ref, name, address, letter.locale, path.name)])
            printed.append(_mark_posted(session, incident_id, letter, now=now, actor=actor))
            coverage.cover(session, incident_id, "delivery", [letter.person_id])
        printable.write("</body></html>\n")
    coverage.cover(session, incident_id, "attempt", printed)
    audit.record(session, incident_id, audit.Event(audit.Action.LETTERS_WRITTEN, {"letters": len(printed)}), actor)
    return LetterBatch(folder, len(printed), merge_path, print_path)


def _mark_posted(session: Session, incident_id: str, letter: QueuedLetter, *, now: datetime, actor: str) -> int:
    """Record the printed attempt and settle the delivery as posted; return the attempt's id."""
    conn = session.connection()
    t, d = models.ATTEMPT, models.DELIVERY
    attempt_id: int = conn.execute(
        sa.insert(t)
        .values(
            incident_id=incident_id,
            person_id=letter.person_id,
            notice_id=letter.notice_id,
            channel=POSTAL,
            address="***",
            started=now,
            finished=now,
            outcome=AttemptOutcome.PRINTED,
            reason=PRINTED_REASON,
            worker=actor,
        )
        .returning(t.c.id)
    ).scalar_one()
    conn.execute(
        sa.update(d)
        .where(d.c.incident_id == incident_id, d.c.person_id == letter.person_id)
        .values(state=DeliveryState.POSTED, final_channel=POSTAL, settled_at=now)
    )
    return attempt_id
