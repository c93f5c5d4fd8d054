"""Issue 13 item 5: a letter tells nobody until the mail house posts it, and a returned letter reached nobody.

The story: the hand-written inventory's incident is dispatched to the file outbox; the people reached only by
post get a letter. The responder writes the batch (`incident letters ID`: written), records the mail house's
confirmation (`--posted-at`: posted) and the returned mail (`--returned FILE`: unreachable). The reports, `show`
and the incident's status say "notified" only for letters posted.
"""

from __future__ import annotations

import csv
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from snapshots import Snapshot
from support import OpenedIncident, WorkspaceDir, approve_notices, open_incident


def dispatched_story(ws: WorkspaceDir) -> str:
    """The hand-written inventory's incident, assessed, approved and dispatched; its letters not yet written."""
    ws.import_inventory()
    iid = open_incident(ws, "--police").id
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    return iid


@pytest.fixture(scope="module")
def dispatched_once(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "letters", dispatched_story)


@pytest.fixture
def dispatched(dispatched_once: Snapshot, tmp_path: Path) -> OpenedIncident:
    return dispatched_once.copy(tmp_path)


def report_text(ws: WorkspaceDir, iid: str, regulator: str, *args: str) -> str:
    out = ws.ok("report", iid, "--regulator", regulator, *args)
    return Path(out.splitlines()[0].split("  (sha256")[0]).read_text(encoding="utf-8")


def report_json(ws: WorkspaceDir, iid: str, regulator: str, *args: str) -> dict:
    return json.loads(report_text(ws, iid, regulator, "--format", "json", *args))


def written(d: OpenedIncident) -> tuple[int, list[str]]:
    """Write the batch; return its id and the letter references in its mail-merge CSV."""
    out = d.ws.ok("letters", d.id)
    assert "(written, not yet posted)" in out, out
    batch = int(out.split(" as batch ")[1].split()[0])
    with (d.ws.root / "letters" / d.id / "mail-merge.csv").open(encoding="utf-8") as fh:
        refs = [row["ref"] for row in csv.DictReader(fh)]
    return batch, refs


def now_iso(offset: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + offset).isoformat(timespec="seconds")


def test_written_letters_notify_nobody_until_the_mail_house_confirms_the_posting(dispatched: OpenedIncident) -> None:
    """Given a dispatched incident whose postal-only people wait for a letter, when the responder writes the
    batch, then `show`, the GDPR and the CAC reports count the letters as written, not posted, nobody notified by
    post, and the incident stays notifying; when the responder records --posted-at, then they count as posted
    and notified, the incident is notified, and the chain verifies."""
    ws, iid = dispatched.ws, dispatched.id
    batch, refs = written(dispatched)
    shown = dispatched.show()
    assert shown["status"] == "notifying"
    assert shown["dispatch"]["letters"]["written"] == len(refs) > 0
    assert shown["dispatch"]["letters"]["posted"] == 0
    assert f"written {len(refs)} (not yet posted), posted 0" in ws.ok("show", iid)

    cac = report_json(ws, iid, "cn-cac")
    assert cac["deliveries"]["deliveries"].get("posted") is None and cac["deliveries"]["letters"]["written"] == len(
        refs
    )
    assert f"信件已打印、尚未寄出{len(refs)}封，不计入已通知" in report_text(ws, iid, "cn-cac")
    gdpr = report_json(ws, iid, "eu-gdpr", "--delay-reason", "late")
    assert gdpr["regime"]["notified_by_mail"] == 0 and gdpr["notified_at"] is None
    de_letters = gdpr["regime"]["letters_written"]
    if de_letters:
        text = report_text(ws, iid, "eu-gdpr", "--delay-reason", "late")
        assert f"{de_letters} letters written, not yet posted" in text and "notification completed" not in text

    out = ws.ok("letters", iid, "--posted-at", now_iso(), "--batch", str(batch))
    assert f"batch {batch}: {len(refs)} letters posted" in out and "is notified" in out, out
    shown = dispatched.show()
    assert shown["status"] == "notified"
    assert shown["dispatch"]["letters"] | {"batches": None} == {
        "queued": 0,
        "written": 0,
        "posted": len(refs),
        "returned": 0,
        "batches": None,
    }
    cac = report_json(ws, iid, "cn-cac")
    assert cac["deliveries"]["deliveries"]["posted"] == len(refs) and "written" not in cac["deliveries"]["deliveries"]
    gdpr = report_json(ws, iid, "eu-gdpr", "--delay-reason", "late")
    assert gdpr["regime"]["notified_by_mail"] == de_letters and gdpr["regime"]["letters_written"] == 0
    assert gdpr["notified_at"] is not None
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)


def test_the_same_confirmation_twice_changes_nothing(dispatched: OpenedIncident) -> None:
    """Given a posted batch, when the responder records the same --posted-at again, then nothing changes."""
    ws, iid = dispatched.ws, dispatched.id
    batch, _ = written(dispatched)
    when = now_iso()
    ws.ok("letters", iid, "--posted-at", when)
    before = ws.sql("SELECT COUNT(*) FROM audit_entry")
    assert "already recorded as posted" in ws.ok("letters", iid, "--posted-at", when, "--batch", str(batch))
    assert ws.sql("SELECT COUNT(*) FROM audit_entry") == before
    time.sleep(1.1)  # a later second: another confirmation, which contradicts the recorded one
    ws.refuse("letters", iid, "--posted-at", now_iso(), error="already recorded as posted at")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--posted-at", "2999-01-01T00:00:00Z"), "--posted-at 2999-01-01T00:00:00+00:00: in the future"),
        (("--posted-at", "2020-01-01T00:00:00Z"), "--posted-at 2020-01-01T00:00:00+00:00: before batch"),
        (("--posted-at", "yesterday"), "--posted-at: not an ISO date or time: 'yesterday'"),
        (("--posted-at", "NOW", "--batch", "999"), "--batch 999: "),
        (("--batch", "1"), "--batch: only with --posted-at"),
    ],
)
def test_a_bad_posting_is_refused_with_one_line_and_nothing_written(
    dispatched: OpenedIncident, args: tuple[str, ...], error: str
) -> None:
    """Given a written batch, when the responder records a posting in the future, before the batch was written,
    not a time, or of an unknown batch, then one line names the option and nothing changes."""
    ws, iid = dispatched.ws, dispatched.id
    written(dispatched)
    args = tuple(now_iso() if a == "NOW" else a for a in args)
    before = ws.sql("SELECT state, COUNT(*) FROM delivery GROUP BY state ORDER BY 1"), ws.tables()
    result = ws.refuse("letters", iid, *args, error=error)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert (ws.sql("SELECT state, COUNT(*) FROM delivery GROUP BY state ORDER BY 1"), ws.tables()) == before


def test_a_returned_letter_counts_as_unreachable_and_calls_for_the_announcement(dispatched: OpenedIncident) -> None:
    """Given a posted batch, when the responder records the mail house's returned-mail CSV, then that person is
    unreachable in `show` and every report, is no longer notified, the announcement is required because of it,
    and the chain verifies."""
    ws, iid = dispatched.ws, dispatched.id
    _, refs = written(dispatched)
    ws.ok("letters", iid, "--posted-at", now_iso())
    before = dispatched.show()["dispatch"]
    returned = ws.write("returned.csv", f"ref,reason\n{refs[0]},moved away\n")

    assert "1 letters returned" in ws.ok("letters", iid, "--returned", str(returned))
    after = dispatched.show()
    assert after["dispatch"]["letters"]["returned"] == 1
    assert after["dispatch"]["notified"] == before["notified"] - 1
    assert after["dispatch"]["unreachable"] == before["unreachable"] + 1
    assert any("the post returned their letter" in r for r in after["assessment"]["announcement"]["reasons"])
    cac = report_json(ws, iid, "cn-cac")
    assert (
        cac["deliveries"]["letters"]["returned"] == 1 and cac["deliveries"]["notified"] == after["dispatch"]["notified"]
    )
    assert "信件被退回1封，计为无法送达" in report_text(ws, iid, "cn-cac")
    assert "already recorded" in ws.ok("letters", iid, "--returned", str(returned))
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("ref\nNO-SUCH-REF\n", "returned.csv:2: ref: 'NO-SUCH-REF' is no letter of"),
        ("reference\nX\n", "returned.csv:1: needs a 'ref' column"),
        ("ref\nFIRST\n\n  \n", None),  # replaced below by a real ref followed by an unknown one
        (b"ref\n\xff\xfe\n", "returned.csv: not UTF-8"),
        ("ref\n", "returned.csv: lists no returned letter"),
    ],
)
def test_a_bad_returned_mail_file_is_refused_with_one_line_and_nothing_written(
    dispatched: OpenedIncident, content: str | bytes, error: str | None
) -> None:
    """Given a posted batch, when the returned-mail CSV names an unknown reference (even after a good one), lacks
    the ref column, is not UTF-8 or is empty, then one line names file, row and field, and nothing changes."""
    ws, iid = dispatched.ws, dispatched.id
    _, refs = written(dispatched)
    ws.ok("letters", iid, "--posted-at", now_iso())
    if error is None:
        content, error = f"ref\n{refs[0]}\nGHOST\n", "returned.csv:3: ref: 'GHOST' is no letter of"
    path = ws.write("returned.csv", content)
    before = ws.sql("SELECT state, COUNT(*) FROM delivery GROUP BY state ORDER BY 1"), ws.tables()
    result = ws.refuse("letters", iid, "--returned", str(path), error=error)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert (ws.sql("SELECT state, COUNT(*) FROM delivery GROUP BY state ORDER BY 1"), ws.tables()) == before


def test_a_letter_written_but_not_posted_cannot_come_back(dispatched: OpenedIncident) -> None:
    """Given a written batch not yet posted, when the returned-mail CSV lists one of its letters, then it is
    refused: the post cannot return what it never had."""
    ws, iid = dispatched.ws, dispatched.id
    _, refs = written(dispatched)
    path = ws.write("returned.csv", f"ref\n{refs[0]}\n")
    ws.refuse("letters", iid, "--returned", str(path), error=f"returned.csv:2: ref: {refs[0]} was never posted")
