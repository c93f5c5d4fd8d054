"""The letter batch: printable letters and a mail-merge CSV for people reached only by post."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session

from incident import clock
from incident.audit import chain as audit
from incident.config import Workspace
from incident.files import open_private, private_dir, safe_cell
from incident.notices.models import unpack_content


@dataclass
class LetterBatch:
    folder: Path
    letters: int
    csv: Path
    print_file: Path


def write_letters(session: Session, ws: Workspace, incident_id: str, actor: str) -> LetterBatch:
    """Write every queued letter (postal-only people and those every electronic channel failed for)."""
    folder = ws.path("letters", incident_id)
    private_dir(folder)
    os.chmod(folder, 0o700)
    conn = session.connection()
    rows = conn.execute(
        text(
            "SELECT d.person_id, n.id, n.ref, n.locale, n.body, n.html, a.to_name, a.to_address FROM delivery d "
            "JOIN notice n ON n.incident_id = d.incident_id AND n.person_id = d.person_id AND n.channel = 'letter' "
            "JOIN affected a ON a.incident_id = d.incident_id AND a.person_id = d.person_id "
            "WHERE d.incident_id = :i AND d.state = 'letter' ORDER BY d.person_id"
        ),
        {"i": incident_id},
    )
    merge_path, print_path = folder / "mail-merge.csv", folder / "print-all.html"
    now = clock.now()
    count = 0
    printed: list[int] = []
    with open_private(merge_path) as merge, open_private(print_path) as printable:
        writer = csv.writer(merge)
        writer.writerow(["ref", "name", "postal_address", "locale", "file"])
        printable.write(
            '<!DOCTYPE html><html><head><meta charset="utf-8"><title>letters</title>'
            "<style>.page{page-break-after:always}</style></head><body>\n"
        )
        for person_id, notice_id, ref, locale, stored_body, stored_html, name, address in rows:
            body = unpack_content(stored_body, stored_html)[1] or ""
            path = folder / f"{ref}.html"
            with open_private(path) as fh:
                fh.write(body)
            inner = body.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
            printable.write(f'<div class="page">{inner}</div>\n')
            writer.writerow([safe_cell(v) for v in (ref, name or "", address or "", locale, path.name)])
            printed.append(
                conn.execute(
                    text(
                        "INSERT INTO attempt (incident_id, person_id, notice_id, channel, address, started, finished, "
                        "outcome, reason, worker) VALUES (:i, :p, :n, 'letter', '***', :t, :t, 'printed', "
                        "'written to the letter batch for postal mail', :w) RETURNING id"
                    ),
                    {"i": incident_id, "p": person_id, "n": notice_id, "t": _stamp(session, now), "w": actor},
                ).scalar_one()
            )
            conn.execute(
                text(
                    "UPDATE delivery SET state = 'posted', final_channel = 'letter', settled_at = :t "
                    "WHERE incident_id = :i AND person_id = :p"
                ),
                {"i": incident_id, "p": person_id, "t": _stamp(session, now)},
            )
            count += 1
        printable.write("</body></html>\n")
    from incident.dispatch.proof import record_attempts

    record_attempts(session, incident_id, printed, actor)
    audit.record(session, incident_id, audit.Event(audit.Action.LETTERS_WRITTEN, {"letters": count}), actor)
    return LetterBatch(folder, count, merge_path, print_path)


def _stamp(session: Session, when: object) -> object:
    # Raw SQL bypasses the UTCDateTime type: SQLite stores naive UTC, PostgreSQL takes aware values.
    from datetime import datetime

    assert isinstance(when, datetime)
    return when.replace(tzinfo=None) if session.get_bind().dialect.name == "sqlite" else when
