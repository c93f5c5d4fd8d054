"""Letters: a batch written (printable letters and a mail-merge CSV), posted once the mail house confirms it, and
returned when the post brings a letter back. Only a posted letter has told anyone anything."""

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
from incident.dispatch import models, postal
from incident.dispatch.models import POSTAL, AttemptOutcome, DeliveryState, LetterBatch
from incident.dispatch.postal import QueuedLetter
from incident.errors import BadInput, InvalidArgument
from incident.files import open_private, private_dir, safe_cell
from incident.notices.models import unpack_content

PRINTED_REASON = "written to the letter batch for postal mail"


@dataclass
class WrittenBatch:
    """Where a letter batch went: its id, folder, how many letters, the mail-merge CSV and the print-all file."""

    batch: int | None  # None: no letter was waiting, no batch was made
    folder: Path
    letters: int
    csv: Path
    print_file: Path


def write_letters(session: Session, ws: Workspace, incident_id: str, *, actor: str) -> WrittenBatch:
    """Write every queued letter (postal-only people and those every electronic channel failed for) as one batch,
    each letter 'written': nobody counts as told until the mail house confirms the batch was posted."""
    folder = ws.path("letters", incident_id)
    private_dir(folder, within=ws.root)
    merge_path, print_path = folder / "mail-merge.csv", folder / "print-all.html"
    now = clock.now()
    batch = LetterBatch(incident_id=incident_id, letters=0, written_at=now, written_by=actor)
    session.add(batch)
    session.flush()
    assert batch.id is not None
    printed: list[int] = []
    with open_private(merge_path, within=ws.root) as merge, open_private(print_path, within=ws.root) as printable:
        writer = csv.writer(merge)
        writer.writerow(["ref", "name", "postal_address", "locale", "file", "batch"])
        printable.write(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>letters</title>'
            "<style>.page{page-break-after:always}</style></head><body>\n"
        )
        for letter in postal.queued_letters(session, incident_id):
            body = unpack_content(letter.body, letter.html)[1] or ""
            path = folder / f"{letter.ref}.html"
            with open_private(path, within=ws.root) as fh:
                fh.write(body)
            inner = body.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
            printable.write(f'<div class="page">{inner}</div>\n')
            name, address = letter.to_name or "", letter.to_address or ""
            cells = (letter.ref, name, address, letter.locale, path.name, batch.id)
            writer.writerow([safe_cell(v) for v in cells])
            printed.append(_mark_written(session, incident_id, letter, batch=batch.id, now=now, actor=actor))
            coverage.cover(session, incident_id, "delivery", [letter.person_id])
        printable.write("</body></html>\n")
    coverage.cover(session, incident_id, "attempt", printed)
    if printed:
        batch.letters = len(printed)
        session.add(batch)
    else:  # nothing was waiting: no empty batch for the mail house to confirm
        session.delete(batch)
    session.flush()
    event = audit.Event(audit.Action.LETTERS_WRITTEN, {"letters": len(printed), "batch": batch.id if printed else None})
    audit.record(session, incident_id, event, actor)
    return WrittenBatch(batch.id if printed else None, folder, len(printed), merge_path, print_path)


def _mark_written(
    session: Session, incident_id: str, letter: QueuedLetter, *, batch: int, now: datetime, actor: str
) -> int:
    """Record the printed attempt and put the delivery in the batch as written; return the attempt's id."""
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
        .values(state=DeliveryState.WRITTEN, final_channel=POSTAL, letter_batch=batch)
    )
    return attempt_id


@dataclass
class PostedBatch:
    """A batch the mail house confirmed: which, when, how many letters it moved to posted now (0: already)."""

    batch: int
    posted_at: datetime
    letters: int
    already: bool


def _batch_to_post(session: Session, incident_id: str, batch_id: int | None) -> LetterBatch:
    """The batch --batch names, or the one batch still waiting to be posted."""
    known = postal.batches(session, incident_id)
    names = ", ".join(str(b.id) for b in known) or "none yet: run `incident letters ID`"
    if batch_id is not None:
        found = next((b for b in known if b.id == batch_id), None)
        if found is None:
            raise InvalidArgument(f"--batch {batch_id}: {incident_id} has no such letter batch (batches: {names})")
        return found
    waiting = [b for b in known if b.posted_at is None]
    if len(waiting) > 1:
        ids = ", ".join(str(b.id) for b in waiting)
        raise InvalidArgument(f"--batch: batches {ids} wait to be posted: name the one the mail house confirmed")
    if not known:
        raise InvalidArgument(f"--posted-at: {incident_id} has no letter batch ({names})")
    return waiting[0] if waiting else known[-1]


def post_letters(
    session: Session, incident_id: str, *, posted_at: datetime, batch_id: int | None, actor: str
) -> PostedBatch:
    """Record the mail house's confirmation that a batch went into the post: its letters become posted."""
    now = clock.now()
    if posted_at > now:
        raise InvalidArgument(
            f"--posted-at {posted_at.isoformat()}: in the future (now {now.isoformat(timespec='seconds')})"
        )
    batch = _batch_to_post(session, incident_id, batch_id)
    assert batch.id is not None
    written = clock.as_utc(batch.written_at)
    if posted_at < written.replace(microsecond=0):  # a confirmation is given to the second at best
        raise InvalidArgument(
            f"--posted-at {posted_at.isoformat()}: before batch {batch.id} was written ({written.isoformat()})"
        )
    if batch.posted_at is not None:
        before = clock.as_utc(batch.posted_at)
        if before == posted_at:  # the same confirmation again: nothing changes
            return PostedBatch(batch.id, before, 0, already=True)
        raise InvalidArgument(
            f"--posted-at {posted_at.isoformat()}: batch {batch.id} is already recorded as posted at "
            f"{before.isoformat()}"
        )
    batch.posted_at, batch.posted_by = posted_at, actor
    session.add(batch)
    people = postal.in_batch(session, incident_id, batch.id, DeliveryState.WRITTEN)
    d = models.DELIVERY
    session.connection().execute(
        sa.update(d)
        .where(d.c.incident_id == incident_id, d.c.letter_batch == batch.id, d.c.state == DeliveryState.WRITTEN)
        .values(state=DeliveryState.POSTED, settled_at=posted_at)
    )
    coverage.cover(session, incident_id, "delivery", people)
    payload = {"batch": batch.id, "letters": len(people), "posted_at": posted_at.isoformat()}
    audit.record(session, incident_id, audit.Event(audit.Action.LETTERS_POSTED, payload), actor)
    return PostedBatch(batch.id, posted_at, len(people), already=False)


def _returned_refs(path: Path) -> list[tuple[int, str]]:
    """(line, reference) of each row of the mail house's returned-mail CSV (a `ref` column, as in mail-merge.csv)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BadInput(str(path), None, None, "no such file") from None
    except IsADirectoryError:
        raise BadInput(str(path), None, None, "is a directory, not a CSV file") from None
    except UnicodeDecodeError as e:
        raise BadInput(str(path), None, None, f"not UTF-8 (byte {e.start})") from None
    except OSError as e:
        raise BadInput(str(path), None, None, e.strerror or "cannot be read") from None
    rows = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(rows, [])]
    if "ref" not in header:
        raise BadInput(str(path), 1, None, "needs a 'ref' column (the letter reference, as in mail-merge.csv)")
    col = header.index("ref")
    refs = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        ref = row[col].strip() if col < len(row) else ""
        if not ref:
            raise BadInput(str(path), line, "ref", "empty")
        refs.append((line, ref))
    if not refs:
        raise BadInput(str(path), None, None, "lists no returned letter")
    return refs


def return_letters(session: Session, incident_id: str, path: Path, *, actor: str) -> tuple[int, int]:
    """Record the letters the post brought back, listed by reference in a CSV: their people are unreachable.
    Return (newly returned, already returned); a reference that names no posted letter refuses the whole file."""
    refs = _returned_refs(path)
    found = postal.letters_by_ref(session, incident_id, sorted({r for _, r in refs}))
    people: set[str] = set()
    again = 0
    for line, ref in refs:
        if ref not in found:
            raise BadInput(str(path), line, "ref", f"{ref!r} is no letter of {incident_id}")
        person, state = found[ref]
        if state == DeliveryState.WRITTEN:
            raise BadInput(str(path), line, "ref", f"{ref} was never posted (record the batch's --posted-at first)")
        if state == DeliveryState.RETURNED:
            again += 1
        elif state == DeliveryState.POSTED:
            people.add(person)
        else:
            raise BadInput(str(path), line, "ref", f"{ref} is {state}, not a posted letter")
    d = models.DELIVERY
    ids = sorted(people)
    for start in range(0, len(ids), 500):
        session.connection().execute(
            sa.update(d)
            .where(d.c.incident_id == incident_id, d.c.person_id.in_(ids[start : start + 500]))
            .values(state=DeliveryState.RETURNED, settled_at=clock.now())
        )
    if ids:
        coverage.cover(session, incident_id, "delivery", ids)
        audit.record(session, incident_id, audit.Event(audit.Action.LETTERS_RETURNED, {"letters": len(ids)}), actor)
    return len(ids), again
