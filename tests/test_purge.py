"""Issue 12, data at rest: once an incident is closed and its retention period has passed, `incident purge`
deletes its people's personal data from the database and the workspace, keeping the counts, the reports and an
audit chain that still verifies; a legal hold stops it; `--dry-run` changes nothing.

The story: the hand-written inventory's incident is assessed, its notices rendered and approved, dispatched to
a real SMTP server and HTTP gateways on 127.0.0.1 (one mailbox refuses, so SMS and a letter take over), the
letters written, the affected people and the proof of delivery exported, the announcement published, the CAC
report filed, and the incident closed. Then the responder purges it.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from freezegun import freeze_time
from rawdb import connect
from servers import configure_channels, smtp_sink
from servers import gateway as http_gateway
from snapshots import Snapshot
from support import (
    PEOPLE_CSV,
    OpenedIncident,
    WorkspaceDir,
    approve_announcement,
    approve_notices,
    open_incident,
)

# The inventory's own tables: the company's customer records, shared by every incident and not purged.
INVENTORY_TABLES = ("person", "holding", "system")
# The inventory's source files the story imported (inputs/): not the tool's to delete either.
INVENTORY_FILES = ("inputs",)
DATABASE_FILES = ("incident.db", "incident.db-wal", "incident.db-shm")
# Anna's mailbox refuses (SMS takes over); Zhang Wei's mailbox and phone both refuse (push, to the outbox).
REFUSED_MAILBOXES = ("anna@example.de", "zhang.wei@example.cn")
REFUSED_PHONES = ("+8613800000001", "13800000001")
PDFTOTEXT = shutil.which("pdftotext")


# ---- the story, built once per module (SQLite) and copied for each test ---------------------------------------


def closed_story(ws: WorkspaceDir) -> str:
    """Dispatch the hand-written incident to a real SMTP server and SMS gateway (push to the file outbox), write
    the letters, two exports, the announcement and a report, then close it."""
    ws.import_inventory()
    iid = open_incident(ws, "--where", "数据库审计告警, Fuzhou DC", "--discovered-by", "SOC on-call").id
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    refused = {a: f"550 5.1.1 <{a}>: Recipient address rejected" for a in REFUSED_MAILBOXES}
    no_sms = {n: [(400, {"error": f"invalid number {n}"})] for n in REFUSED_PHONES}
    with smtp_sink(reject=refused) as smtp, http_gateway(no_sms) as sms:
        configure_channels(
            ws.root,
            email=f"smtppool://127.0.0.1:{smtp.port}/{{email}}?from=security@example.com",
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
            push="outbox://push/{push_token}",  # push tokens go to the file outbox: its folder must go too
        )
        ws.ok("dispatch", iid)
        assert smtp.mails and sms.requests, "the story must have sent real messages"
    assert list((ws.root / "outbox" / iid / "push").iterdir()), "and one push message to the outbox"
    ws.ok("letters", iid)
    ws.ok("letters", iid, "--posted-at", datetime.now(UTC).isoformat())  # the mail house posted them
    ws.ok("affected", iid, "--output", str(ws.root / "exports" / "affected.csv"))
    ws.ok("deliveries", iid, "--format", "jsonl", "--output", str(ws.root / "exports" / "proof.jsonl"))
    ws.ok("announce", iid)
    approve_announcement(ws, iid, "Legal (Li Na)")
    ws.ok("announce", iid, "--publish")
    ws.ok("report", iid, "--regulator", "cn-cac", "--format", "md", "--format", "json")
    ws.ok("close", iid)
    return iid


@pytest.fixture(scope="module")
def closed_once(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "purge", closed_story)


@pytest.fixture
def closed(closed_once: Snapshot, tmp_path: Path) -> OpenedIncident:
    """A private copy of the closed incident (on PostgreSQL, the story run afresh)."""
    return closed_once.copy(tmp_path)


def purge_after(incident: OpenedIncident) -> datetime:
    """When the retention period of the closed incident ends, as `show --json` states it."""
    return datetime.fromisoformat(incident.show()["retention"]["purge_after"])


def purge_when_due(incident: OpenedIncident, *args: str) -> str:
    """Run `incident purge ID` at the moment its retention period ends."""
    with freeze_time(purge_after(incident)):
        return incident.ws.ok("purge", incident.id, *args)


# ---- what identifies the incident's people, and where it is looked for ---------------------------------------


def phone_forms(number: str, region: str) -> set[str]:
    """A phone number as written, in E.164, nationally, and as bare digits."""
    parsed = phonenumbers.parse(number, region.split("-")[0])
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return {number, e164, national, str(parsed.national_number), "".join(c for c in national if c.isdigit())}


def identifiers(affected_ids: set[str]) -> set[str]:
    """Names, emails, phones (every form), postal addresses and person ids of the incident's affected people."""
    found: set[str] = set()
    for row in csv.DictReader(PEOPLE_CSV.splitlines()):
        if row["person_id"] not in affected_ids:
            continue
        found.add(row["person_id"])
        found |= {row[c] for c in ("name", "email", "guardian_name", "guardian_email", "postal_address") if row[c]}
        for column in ("phone", "guardian_phone"):
            if row[column]:
                found |= phone_forms(row[column], row["region"])
    return found


def readable(value: Any) -> str:
    """A stored value as text; compressed notice content unpacked, so a scan sees what it holds."""
    if isinstance(value, (bytes, memoryview)):
        data = bytes(value)
        for attempt in (lambda: zlib.decompress(data), lambda: data):
            try:
                return attempt().decode("utf-8", "replace")
            except zlib.error:
                continue
    return str(value)


def database_dump(ws: WorkspaceDir) -> dict[str, str]:
    """Every row of every table but the inventory's, as text, by table."""
    with connect(ws.root) as db:
        if db.postgres:
            names = [r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        else:
            names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            name: "\n".join(" | ".join(readable(v) for v in row) for row in db.execute(f'SELECT * FROM "{name}"'))
            for name in sorted(names)
            if name not in INVENTORY_TABLES
        }


def workspace_files(ws: WorkspaceDir) -> Iterator[Path]:
    """Every file in the workspace but the inventory's source files and the database (dumped instead)."""
    for path in sorted(ws.root.rglob("*")):
        rel = path.relative_to(ws.root)
        if path.is_file() and rel.parts[0] not in INVENTORY_FILES and rel.name not in DATABASE_FILES:
            yield path


def file_text(path: Path) -> str:
    text = path.read_bytes().decode("utf-8", "replace")
    if path.suffix == ".pdf" and PDFTOTEXT:
        text += subprocess.run(
            [PDFTOTEXT, "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
        ).stdout.decode()
    return text


def found_in(ws: WorkspaceDir, wanted: set[str]) -> dict[str, list[str]]:
    """Where each identifier still appears: `table:NAME` or a workspace path, with the identifiers found there."""
    places = {f"table:{name}": text for name, text in database_dump(ws).items()}
    places |= {str(p.relative_to(ws.root)): file_text(p) for p in workspace_files(ws)}
    hits = {where: sorted(i for i in wanted if i in text) for where, text in places.items()}
    return {where: ids for where, ids in hits.items() if ids}


def affected_ids(incident: OpenedIncident) -> set[str]:
    return set(incident.affected())


# ---- the purge itself ------------------------------------------------------------------------------------------


def test_after_retention_a_purge_leaves_no_identifier_of_the_incident_s_people(closed: OpenedIncident) -> None:
    """Given the closed incident whose retention period has ended, when the responder runs `incident purge`, then
    no table but the inventory's and no workspace file but the inventory's sources holds a name, email, phone
    (in any format), postal address or person id of its affected people; `audit verify` passes; `show` and a
    regenerated CAC report still give the same counts."""
    ws, iid = closed.ws, closed.id
    wanted = identifiers(affected_ids(closed))
    before = found_in(ws, wanted)
    shown_before = closed.show()
    report_before = json.loads(Path(_report_json(ws, iid)).read_text(encoding="utf-8"))
    assert {"table:affected", "table:attempt", "table:delivery"} <= set(before), before
    assert any(p.startswith(("outbox", "letters", "review", "exports")) for p in before), before

    out = purge_when_due(closed)

    assert "purged" in out and "removed outbox/" in out and "removed exports/affected.csv" in out, out
    assert found_in(ws, wanted) == {}
    assert "ok" in ws.ok("audit", "verify", iid)
    shown = closed.show()
    assert shown["assessment"]["counts"] == shown_before["assessment"]["counts"]
    assert shown["dispatch"] == shown_before["dispatch"]
    assert shown["notices"]["state"] == "purged" and shown["retention"]["state"] == "purged"
    printed = ws.ok("show", iid)
    assert (
        "personal data: purged" in printed
        and f"notices:    purged ({shown_before['notices']['notices']} notices" in printed
    ), printed
    report_after = _report_json(ws, iid)
    regenerated = json.loads(Path(report_after).read_text(encoding="utf-8"))
    assert regenerated["counts"] == report_before["counts"]
    assert regenerated["deliveries"] == report_before["deliveries"]
    assert (ws.root / "public" / iid).is_dir() and (ws.root / "review" / iid / "announcement").is_dir()
    assert found_in(ws, wanted) == {}, "the regenerated report names nobody either"


def _report_json(ws: WorkspaceDir, iid: str) -> str:
    """Generate the CAC report as JSON and return its path."""
    out = ws.ok("report", iid, "--regulator", "cn-cac", "--format", "json")
    return out.splitlines()[0].split("  (sha256")[0]


@pytest.mark.sqlite_only
def test_a_purge_leaves_no_deleted_row_in_the_sqlite_file_s_free_pages(closed: OpenedIncident) -> None:
    """Given the closed incident on SQLite, when it is purged, then the database file is rewritten: no free page
    (where deleted rows linger until overwritten) and an empty write-ahead log."""
    purge_when_due(closed)

    with connect(closed.ws.root) as db:
        assert db.execute("PRAGMA freelist_count").fetchone() == (0,)
    wal = closed.ws.root / "incident.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0


def test_the_purge_is_in_the_audit_chain_whose_entries_name_nobody(closed: OpenedIncident, tmp_path: Path) -> None:
    """Given the purged incident, when its chain is exported, then it records the purge and the forgotten attempts,
    verifies on its own, and no entry holds an identifier of the affected people."""
    wanted = identifiers(affected_ids(closed))
    purge_when_due(closed)
    exported = tmp_path / "chain.json"
    closed.ws.ok("audit", "export", closed.id, "--output", str(exported))

    chain = json.loads(exported.read_text(encoding="utf-8"))
    last = chain["entries"][-1]
    assert last["action"] == "purged"
    stated = json.loads(last["payload"])
    assert stated["forgets"]["attempt"]["reason"] == "purged" and stated["forgets"]["attempt"]["rows"]
    assert stated["covers"]["delivery"]["complete"] is True  # the deliveries under their new meaningless ids
    assert sorted(i for i in wanted if i in exported.read_text(encoding="utf-8")) == []
    assert "ok" in closed.ws.ok("audit", "verify", "--file", str(exported))


def test_an_attempt_row_put_back_after_a_purge_is_caught_by_audit_verify(closed: OpenedIncident) -> None:
    """Given the purged incident, when someone with the database password re-inserts a deleted attempt, then
    `audit verify` fails naming it: forgotten rows must stay absent."""
    with connect(closed.ws.root) as db:
        first = db.execute("SELECT * FROM attempt WHERE incident_id = ? ORDER BY id LIMIT 1", (closed.id,)).fetchone()
    assert first is not None
    purge_when_due(closed)
    with connect(closed.ws.root) as db:
        marks = ", ".join("?" for _ in first)
        db.execute(f"INSERT INTO attempt VALUES ({marks})", first)

    refused = closed.ws.run("audit", "verify", closed.id)
    assert refused.exit_code == 3 and "were deleted then but are present" in refused.output, refused.output


# ---- when a purge is refused ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "purged"),
    [(timedelta(seconds=-1), False), (timedelta(0), True), (timedelta(seconds=1), True)],
    ids=["a second before", "at the end", "a second after"],
)
def test_a_purge_waits_for_the_retention_period_after_closing(
    closed: OpenedIncident, offset: timedelta, purged: bool
) -> None:
    """Given the closed incident and the default retention of 90 days, when the responder purges it a second
    before the period ends, then nothing goes; at its end or after, the purge runs."""
    due = purge_after(closed)
    assert closed.show()["retention"]["days"] == 90
    with freeze_time(due + offset):
        result = closed.ws.run("purge", closed.id)
    if purged:
        assert result.exit_code == 0, result.output
        assert closed.show()["retention"]["state"] == "purged"
    else:
        assert result.exit_code == 1 and f"{closed.id} is kept until" in result.stderr, result.output
        assert "[retention] days" in result.stderr and closed.affected(), result.output


def test_the_retention_period_is_the_one_incident_toml_sets(closed: OpenedIncident) -> None:
    """Given `[retention] days = 7` in incident.toml, then the closed incident may be purged 7 days after
    closing, not 90."""
    set_retention(closed.ws, "[retention]\ndays = 7\n")
    shown = closed.show()["retention"]

    assert shown["days"] == 7 and shown["state"] == "kept"
    purge_when_due(closed)
    assert closed.show()["retention"]["state"] == "purged"


def test_a_purge_is_refused_while_the_incident_is_not_closed(assessed_incident: OpenedIncident) -> None:
    """Given an assessed incident still open, when the responder purges it (even years later), then it is refused
    naming its status, and the affected people are all still there."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    people = assessed_incident.affected()
    with freeze_time(datetime.now(UTC) + timedelta(days=3650)):
        ws.refuse("purge", iid, error=f"{iid} is 'assessed', not closed")
        ws.refuse("purge", iid, "--dry-run", error="not closed")
    assert assessed_incident.affected() == people


def test_a_legal_hold_blocks_the_purge_until_it_is_released(closed: OpenedIncident) -> None:
    """Given the closed incident, when legal puts it under a hold, then `show` and `status` say so and a purge
    after the retention period is refused naming the hold; once the hold is released, the purge runs. Both
    steps are audited without their free text."""
    ws, iid = closed.ws, closed.id
    reason = "诉讼保全 case 2026-沪01-123: keep everything"
    held = ws.ok("hold", iid, "--reason", reason)
    assert "under a legal hold" in held
    assert "under legal hold since" in ws.ok("show", iid) and reason in ws.ok("show", iid)
    board = json.loads(ws.run("status", "--json").stdout)  # exit 4: an obligation is overdue, not this test's point
    assert [i["retention"]["state"] for i in board["incidents"] if i["id"] == iid] == ["held"]
    with freeze_time(purge_after(closed) + timedelta(days=400)):
        ws.refuse("purge", iid, error=f"{iid} is under a legal hold")
        assert json.loads(ws.run("status", "--json").stdout)["incidents"][0]["retention"]["state"] == "held"

    ws.ok("hold", iid, "--release", "--reason", "case settled")
    purge_when_due(closed)

    assert closed.show()["retention"]["state"] == "purged"
    payloads = [
        p for (a, p) in ws.sql("SELECT action, payload FROM audit_entry WHERE chain = ?", (iid,)) if "hold" in a
    ]
    assert len(payloads) == 2 and all("reason_sha256" in p and reason not in p for p in payloads)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--reason", "  "), "--reason: say why"),
        (("--release", "--reason", "no hold"), "is not under a legal hold"),
    ],
    ids=["empty reason", "release without a hold"],
)
def test_a_hold_needs_a_reason_and_a_release_needs_a_hold(closed: OpenedIncident, args: tuple[str, ...], error: str):
    """Given the closed incident, when a hold is given no reason or a release finds no hold, then it is refused
    in one line and the chain is unchanged."""
    before = closed.ws.tables()
    closed.ws.refuse("hold", closed.id, *args, error=error)
    assert closed.ws.tables() == before


def test_a_second_hold_and_a_hold_after_the_purge_are_refused(closed: OpenedIncident) -> None:
    """Given a held incident, a second hold is refused naming the first; after release and purge, a hold is
    refused: nothing is left to hold."""
    ws, iid = closed.ws, closed.id
    ws.ok("hold", iid, "--reason", "regulator inquiry")
    ws.refuse("hold", iid, "--reason", "again", error="already under a legal hold (since")
    ws.ok("hold", iid, "--release", "--reason", "inquiry closed")
    purge_when_due(closed)
    ws.refuse("hold", iid, "--reason", "too late", error="already purged")


# ---- dry run, re-runs, and what a purge does not touch ---------------------------------------------------------


def snapshot_of(ws: WorkspaceDir) -> tuple[dict[str, str], dict[str, bytes]]:
    return database_dump(ws), {str(p.relative_to(ws.root)): p.read_bytes() for p in workspace_files(ws)}


def test_a_dry_run_lists_what_would_go_and_changes_nothing(closed: OpenedIncident) -> None:
    """Given the closed incident after its retention period, when the responder runs `purge --dry-run`, then it
    lists the people, notices and files that would go, and the database and every file are unchanged."""
    before = snapshot_of(closed.ws)
    with freeze_time(purge_after(closed)):
        out = closed.ws.ok("purge", closed.id, "--dry-run")
        listed = closed.ws.json("purge", closed.id, "--dry-run")

    assert "would remove" in out and f"would remove letters/{closed.id}" in out, out
    assert listed["would_remove"]["people"] == len(closed.affected()) and listed["would_remove"]["notices"] > 0
    assert snapshot_of(closed.ws) == before


def test_a_purge_interrupted_after_its_commit_is_finished_by_running_it_again(
    closed: OpenedIncident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a purge whose process stops after the database commit and before the files are removed, when the
    responder runs `incident purge` again, then it removes the files left and says the incident was already
    purged; a third run has nothing left to do."""
    from incident.retention import leftovers

    wanted = identifiers(affected_ids(closed))
    real_remove = leftovers.remove

    class PowerCut(Exception):
        """The process stops between the commit and the files."""

    def power_cut(root: Path, paths: list[str]) -> tuple[list[str], list[str]]:
        raise PowerCut

    monkeypatch.setattr(leftovers, "remove", power_cut)
    with freeze_time(purge_after(closed)), pytest.raises(PowerCut):
        from typer.testing import CliRunner

        from incident.cli import app

        CliRunner().invoke(app, ["--workspace", str(closed.ws.root), "purge", closed.id], catch_exceptions=False)
    assert any(not w.startswith("table:") for w in found_in(closed.ws, wanted)), "files are left"
    monkeypatch.setattr(leftovers, "remove", real_remove)

    again = closed.ws.ok("purge", closed.id)

    assert "already purged (removed the files a previous run left)" in again, again
    assert f"removed outbox/{closed.id}" in again, again
    assert found_in(closed.ws, wanted) == {}
    assert "already purged (nothing was left to remove)" in closed.ws.ok("purge", closed.id)
    assert "ok" in closed.ws.ok("audit", "verify", closed.id)


def test_an_export_outside_the_workspace_is_named_not_deleted(closed: OpenedIncident, tmp_path: Path) -> None:
    """Given an export the responder wrote outside the workspace, when the incident is purged, then the purge
    warns that it is still there (the responder removes it) and leaves it alone."""
    outside = tmp_path / "handover" / "affected.csv"
    closed.ws.ok("affected", closed.id, "--output", str(outside))

    with freeze_time(purge_after(closed)):
        result = closed.ws.run("purge", closed.id)

    assert result.exit_code == 0, result.output
    assert f"not removed, outside the workspace (remove it yourself): {outside}" in result.stderr
    assert outside.is_file()


def test_the_inventory_is_not_purged(closed: OpenedIncident) -> None:
    """Given the closed incident, when it is purged, then the workspace inventory (shared by every incident) is
    exactly as it was, and the help says so."""
    inventory = {t: closed.ws.sql(f"SELECT * FROM {t} ORDER BY 1, 2") for t in INVENTORY_TABLES}
    purge_when_due(closed)

    assert {t: closed.ws.sql(f"SELECT * FROM {t} ORDER BY 1, 2") for t in INVENTORY_TABLES} == inventory
    assert "inventory" in " ".join(closed.ws.ok("purge", "--help").split())


def set_retention(ws: WorkspaceDir, setting: str) -> None:
    """Replace the [retention] table of incident.toml by `setting` (a top-level key goes before every table)."""
    config = ws.root / "incident.toml"
    text = config.read_text(encoding="utf-8")
    assert "[retention]\ndays = 90\n" in text, "incident init writes the default"
    text = text.replace("[retention]\ndays = 90\n", "")
    config.write_text(text + setting if setting.startswith("[") else setting + text, encoding="utf-8")


# ---- the retention setting ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ('[retention]\ndays = "ninety"\n', "'ninety'"),
        ("[retention]\ndays = -1\n", "-1"),
        ("[retention]\ndays = 1.5\n", "1.5"),
        ("[retention]\ndays = true\n", "True"),
        ("[retention]\ndays = 99999999\n", "99999999"),
        ("retention = 90\n", "[retention]: must be a table"),
    ],
    ids=["text", "negative", "fraction", "boolean", "too long", "not a table"],
)
def test_a_bad_retention_setting_is_refused_on_load_naming_the_file_and_key(
    workspace: WorkspaceDir, setting: str, shown: str
) -> None:
    """Given incident.toml with a retention that is not a whole number of days, when any command loads the
    workspace, then it fails in one line naming incident.toml and the key."""
    set_retention(workspace, setting)

    result = workspace.run("list")

    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert "\n" not in line and "incident.toml: [retention]" in line and shown in line, line
    assert "Traceback" not in result.output


def test_a_workspace_without_a_retention_setting_keeps_data_90_days(closed: OpenedIncident) -> None:
    """Given an incident.toml from before retention existed (no [retention] table), then the default of 90 days
    after closing applies."""
    set_retention(closed.ws, "")
    assert "[retention]" not in (closed.ws.root / "incident.toml").read_text(encoding="utf-8")

    shown = closed.show()["retention"]

    assert shown["days"] == 90 and shown["state"] == "kept"


def test_a_reviewer_s_comment_is_chained_as_a_digest_only(assessed_incident: OpenedIncident) -> None:
    """Given rendered notices, when legal rejects them with a comment that quotes an affected person, then the
    audit chain (which a purge keeps and a regulator may receive) holds the comment's digest, not its text."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    comment = "张伟 (zhang.wei@example.cn) is addressed by the wrong name"
    ws.ok("notices", "render", iid)
    ws.ok("notices", "reject", iid, "--reviewer", "Legal (Li Na)", "--comment", comment)

    payloads = [p for (a, p) in ws.sql("SELECT action, payload FROM audit_entry WHERE chain = ?", (iid,))]
    rejected = [json.loads(p) for p in payloads if "comment_sha256" in p]
    assert len(rejected) == 1 and rejected[0]["comment_sha256"] == hashlib.sha256(comment.encode()).hexdigest()
    assert not [p for p in payloads if "张伟" in p or "zhang.wei" in p]


def test_a_purge_that_fails_half_way_changes_nothing(closed: OpenedIncident, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the closed incident after its retention period, when the purge fails after the notices and attempts
    are gone but before the deliveries are rewritten, then the database is exactly as before (one transaction)
    and no file was removed; the next purge runs whole."""
    from incident.dispatch import models as dispatch_models

    class DiskFull(Exception):
        """The database refuses the next write."""

    def disk_full(*args: Any) -> int:
        raise DiskFull

    before, real = snapshot_of(closed.ws), dispatch_models.forget_delivery_people
    monkeypatch.setattr(dispatch_models, "forget_delivery_people", disk_full)
    with freeze_time(purge_after(closed)), pytest.raises(DiskFull):
        from typer.testing import CliRunner

        from incident.cli import app

        CliRunner().invoke(app, ["--workspace", str(closed.ws.root), "purge", closed.id], catch_exceptions=False)
    monkeypatch.setattr(
        dispatch_models, "forget_delivery_people", real
    )  # not undo(): it would drop the test's database

    assert snapshot_of(closed.ws) == before
    purge_when_due(closed)
    assert closed.show()["retention"]["state"] == "purged"


def test_a_purge_never_deletes_through_a_symlink(closed: OpenedIncident, tmp_path: Path) -> None:
    """Given an outbox folder that is a symlink to a folder outside the workspace and a letters folder whose parent
    is one, when the incident is purged, then the links are removed or named, and nothing outside the workspace
    is deleted."""
    ws, iid = closed.ws, closed.id
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(ws.root / "outbox" / iid, elsewhere / "outbox")
    shutil.rmtree(ws.root / "outbox" / iid)
    (ws.root / "outbox" / iid).symlink_to(elsewhere / "outbox", target_is_directory=True)
    shutil.move(ws.root / "letters", elsewhere / "letters")
    (ws.root / "letters").symlink_to(elsewhere / "letters", target_is_directory=True)
    kept = sorted(str(p) for p in elsewhere.rglob("*"))

    with freeze_time(purge_after(closed)):
        result = ws.run("purge", iid)

    assert result.exit_code == 0, result.output
    assert sorted(str(p) for p in elsewhere.rglob("*")) == kept
    assert not os.path.lexists(ws.root / "outbox" / iid)
    assert f"not removed, outside the workspace (remove it yourself): {ws.root / 'letters' / iid}" in result.stderr


@pytest.mark.parametrize("export", [("affected",), ("deliveries", "--format", "jsonl")], ids=["affected", "deliveries"])
def test_exports_after_a_purge_say_the_personal_data_is_gone(
    closed: OpenedIncident, tmp_path: Path, export: tuple[str, ...]
) -> None:
    """Given the purged incident, when the responder asks for the affected people or the proof of delivery, then
    it is refused in one line saying the personal data was purged, and no file is written."""
    purge_when_due(closed)
    output = tmp_path / "after-purge.out"

    closed.ws.refuse(export[0], closed.id, *export[1:], error=f"{closed.id}'s personal data was purged on")
    result = closed.ws.run(export[0], closed.id, *export[1:], "--output", str(output))
    assert result.exit_code == 1 and "personal data was purged" in result.stderr, result.output
    assert not output.exists()
