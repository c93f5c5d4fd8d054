"""Tamper evidence v2: what the notices, reports and board rely on is in the chain, so a direct database edit of
it fails `incident audit verify` (issue 12, item 6; issue 13, item 7)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rawdb import Raw, as_text_time, connect
from support import OpenedIncident, approve_notices

from incident.audit.chain import GENESIS, link_hash
from incident.clock import parse_when
from incident.db import SCHEMA_HEAD


@pytest.fixture
def dispatched(assessed_incident: OpenedIncident) -> OpenedIncident:
    """The hand incident with an action logged, its notices approved and sent to the file outbox, letters written,
    and its CAC initial report generated as Markdown."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    ws.ok("log", iid, "轮换了泄露的数据库凭据", "--en", "Rotated the leaked database credentials")
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    ws.ok("letters", iid)
    ws.ok("report", iid, "--regulator", "cn-cac", "--format", "md")
    return assessed_incident


def broken(incident: OpenedIncident, *args: str) -> str:
    """Run `audit verify` (of the incident, or as given) and return what it said on stderr; it must fail."""
    result = incident.ws.run("audit", "verify", *(args or (incident.id,)))
    assert result.exit_code != 0, result.output
    assert f"{incident.id}: BROKEN" in result.stderr, result.output
    return result.stderr


def first_report_path(incident: OpenedIncident) -> Path:
    (report,) = incident.ws.json("report", incident.id, "--list")
    return Path(report["path"])


# Each attack of the issue as SQL someone with the database password runs, and what verify must name.
ATTACKS = {
    "logged action text edited": (
        "UPDATE timeline_entry SET text = 'Nothing happened'",
        r"timeline_entry rows \[\d+\] were edited",
    ),
    "incident title edited": (
        "UPDATE incident SET title = 'A minor glitch'",
        r"incident rows \[INC-\d+-\d+\] were edited",
    ),
    "incident summary edited": ("UPDATE incident SET summary = 'No data left the company'", "incident rows"),
    "incident status edited": ("UPDATE incident SET status = 'closed'", r"incident rows \[INC-\d+-\d+\] were edited"),
    "unreachable people set to sent": (
        "UPDATE delivery SET state = 'sent', final_channel = 'sms' WHERE state <> 'sent'",
        r"delivery rows \[[^]]+\] were edited",
    ),
    "delivery rows deleted": ("DELETE FROM delivery WHERE state <> 'sent'", r"delivery rows \[[^]]+\] were deleted"),
    "obligation completion forged": (
        "INSERT INTO obligation_done (incident_id, key, at, reference, actor) SELECT id, 'gdpr-sa-72h', opened_at, "
        "'forged', 'mallory' FROM incident",
        r"obligation_done rows \[gdpr-sa-72h\] are not covered by the audit chain",
    ),
    "approval reviewer edited": ("UPDATE approval SET reviewer = 'Chief Counsel'", r"approval rows \[1\] were edited"),
    "in-flight attempt forged": (
        "INSERT INTO attempt (incident_id, person_id, notice_id, channel, address, started, outcome, worker) "
        "SELECT incident_id, person_id, notice_id, channel, address, started, 'in-flight', worker FROM attempt "
        "WHERE id = (SELECT MIN(id) FROM attempt)",
        r"attempt rows \[\d+\] are not covered by the audit chain",
    ),
    "report hash edited with its file": (
        "UPDATE report SET sha256 = '" + "0" * 64 + "'",
        r"report rows \[1\] were edited",
    ),
}


def test_an_untouched_incident_verifies_and_says_tags_were_not_checked(dispatched: OpenedIncident) -> None:
    """Given a dispatched incident with a report, when nobody touched the database, then verify passes and says
    that without INCIDENT_AUDIT_KEY the HMAC tags were not checked."""
    out = dispatched.ws.ok("audit", "verify", dispatched.id)

    assert f"{dispatched.id}: ok" in out
    assert "HMAC tags not checked (INCIDENT_AUDIT_KEY not set)" in out


@pytest.mark.parametrize(("sql", "problem"), list(ATTACKS.values()), ids=list(ATTACKS))
def test_a_direct_edit_of_what_notices_and_reports_rely_on_fails_verify(
    dispatched: OpenedIncident, sql: str, problem: str
) -> None:
    """Given a dispatched incident, when someone with database access edits its state or its text behind the
    tool's back, then `incident audit verify ID` exits non-zero naming the table and the rows."""
    with connect(dispatched.ws.root) as conn:
        conn.execute(sql)

    assert re.search(problem, broken(dispatched)), problem


def test_an_edited_report_file_fails_verify_and_a_missing_one_is_said(dispatched: OpenedIncident) -> None:
    """Given a generated CAC report, when its file is edited on disk, then verify fails naming it; when the file
    is gone (handed over, cleaned up), verify passes and says it was not checked."""
    path = first_report_path(dispatched)
    original = path.read_bytes()
    path.write_bytes(original.replace("。".encode(), "，".encode(), 1) + b"\n")

    assert f"file {path.name} was edited" in broken(dispatched)

    path.unlink()
    out = dispatched.ws.ok("audit", "verify", dispatched.id)
    assert f"report files not on disk, not checked: {path.name}" in out


def test_deleting_an_incident_s_whole_chain_fails_verify(dispatched: OpenedIncident) -> None:
    """Given a dispatched incident, when its whole chain and head are deleted, then both `audit verify ID` and
    the default `audit verify` fail on it, while the workspace chain still verifies."""
    with connect(dispatched.ws.root) as conn:
        conn.execute("DELETE FROM audit_entry WHERE chain = ?", (dispatched.id,))
        conn.execute("DELETE FROM audit_head WHERE chain = ?", (dispatched.id,))

    assert "no audit chain (deleted?)" in broken(dispatched)
    result = dispatched.ws.run("audit", "verify")
    assert result.exit_code != 0 and f"{dispatched.id}: BROKEN: no audit chain" in result.stderr, result.output
    assert "workspace: ok" in result.stdout


@pytest.mark.parametrize(
    "spoil",
    [
        lambda data: data.update(head=None),
        lambda data: data.pop("head"),
        lambda data: data.update(entries=[]),
        lambda data: data.update(entries=[], head={"seq": 0, "hash": GENESIS}),
    ],
    ids=["head null", "no head", "empty chain", "empty chain with a genesis head"],
)
def test_an_export_without_a_head_or_entries_is_invalid(
    dispatched: OpenedIncident, tmp_path: Path, spoil: Callable[[dict[str, object]], object]
) -> None:
    """Given an exported chain, when its head or entries are taken out, then `audit verify --file` says it is
    invalid and exits non-zero, instead of reporting ok."""
    export = tmp_path / "chain.json"
    dispatched.ws.ok("audit", "export", dispatched.id, "--output", str(export))
    assert "ok" in dispatched.ws.ok("audit", "verify", "--file", str(export))
    data = json.loads(export.read_text(encoding="utf-8"))
    assert data["format"] == "incident-audit-chain/2"
    spoil(data)
    export.write_text(json.dumps(data), encoding="utf-8")

    result = dispatched.ws.run("audit", "verify", "--file", str(export))

    assert result.exit_code != 0, result.output
    assert "invalid" in result.stderr, result.output


def rewrite_history(conn: Raw, chain: str, seq: int, edit: Callable[[str], str]) -> None:
    """Edit one entry and recompute every link after it and the head: a rewrite the plain chain cannot see."""
    rows = conn.execute(
        "SELECT seq, at, actor, action, payload FROM audit_entry WHERE chain = ? ORDER BY seq", (chain,)
    ).fetchall()
    prev = GENESIS
    for n, at, actor, action, payload in rows:
        payload = edit(payload) if n == seq else payload
        digest = link_hash(chain, n, parse_when(as_text_time(at)), actor, action, payload, prev)
        conn.execute(
            "UPDATE audit_entry SET payload = ?, prev_hash = ?, hash = ? WHERE chain = ? AND seq = ?",
            (payload, prev, digest, chain, n),
        )
        prev = digest
    conn.execute("UPDATE audit_head SET hash = ? WHERE chain = ?", (prev, chain))


def demote_the_logged_action(payload: str) -> str:
    return payload.replace('"kind": "action"', '"kind": "finding"')


def test_the_head_printed_on_a_report_proves_a_later_rewrite(dispatched: OpenedIncident) -> None:
    """Given a CAC report that printed the chain head before its own entry, and `incident audit head`, when
    someone rewrites the history before it consistently (the plain chain then verifies), then `audit verify
    --head SEQ:HASH` with the head from the submitted copy fails: the rewrite is provable."""
    ws, iid = dispatched.ws, dispatched.id
    text = first_report_path(dispatched).read_text(encoding="utf-8")
    found = re.search(r"序号 (\d+)，sha256 ([0-9a-f]{64})", text)
    assert found, text[-400:]
    seq, digest = int(found[1]), found[2]
    generated = ws.sql("SELECT seq FROM audit_entry WHERE chain = ? AND action = 'report-generated'", (iid,))
    assert generated == [(seq + 1,)]  # the head before the report's own entry
    now = ws.json("audit", "head", iid)
    assert now["seq"] >= seq + 1 and f"head seq {now['seq']} {now['hash']}" in ws.ok("audit", "head", iid)
    assert "ok" in ws.ok("audit", "verify", iid, "--head", f"{seq}:{digest}")

    ((logged,),) = ws.sql("SELECT MIN(seq) FROM audit_entry WHERE chain = ? AND action = 'logged'", (iid,))
    with connect(ws.root) as conn:
        rewrite_history(conn, iid, logged, demote_the_logged_action)
    assert ws.sql("SELECT payload FROM audit_entry WHERE chain = ? AND seq = ?", (iid, logged))[0][0].count("finding")

    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)  # what the plain chain cannot do on its own
    assert f"seq {seq} is not the handed-out head {digest} (history was rewritten)" in broken(
        dispatched, iid, "--head", f"{seq}:{digest}"
    )


def test_the_published_announcement_prints_the_chain_head(dispatched: OpenedIncident) -> None:
    """Given an incident, when its announcement is rendered, then each Markdown and HTML text names the chain
    head before the render's own entry, in its language."""
    ws, iid = dispatched.ws, dispatched.id
    ws.ok("announce", iid)
    folder = ws.root / "review" / iid / "announcement"
    (seq,) = ws.sql("SELECT seq FROM audit_entry WHERE chain = ? AND action = 'announcement-rendered'", (iid,))[0]
    ((digest,),) = ws.sql("SELECT hash FROM audit_entry WHERE chain = ? AND seq = ?", (iid, seq - 1))

    assert f"seq {seq - 1}, sha256 {digest}" in (folder / "announcement.en.md").read_text(encoding="utf-8")
    assert f"序号 {seq - 1}，sha256 {digest}" in (folder / "announcement.zh-CN.html").read_text(encoding="utf-8")


def test_with_the_key_a_consistent_rewrite_fails_on_its_tags(
    dispatched: OpenedIncident, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a workspace whose responders set INCIDENT_AUDIT_KEY, when someone without the key rewrites the history
    consistently, then verify with the key fails at the first rewritten entry; and a stripped tag after tagged
    entries fails too."""
    ws, iid = dispatched.ws, dispatched.id
    monkeypatch.setenv("INCIDENT_AUDIT_KEY", "correct horse battery staple")
    ws.ok("log", iid, "通知了保险公司", "--en", "Notified the insurer")
    ws.ok("log", iid, "向董事会作了通报", "--en", "Briefed the board")
    (first_tagged,) = ws.sql("SELECT MIN(seq) FROM audit_entry WHERE chain = ? AND tag IS NOT NULL", (iid,))[0]
    assert f"HMAC tags checked from seq {first_tagged}" in ws.ok("audit", "verify", iid)

    with connect(ws.root) as conn:
        rewrite_history(conn, iid, first_tagged, demote_the_logged_action)
    monkeypatch.delenv("INCIDENT_AUDIT_KEY")
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)  # without the key, the rewrite holds together
    monkeypatch.setenv("INCIDENT_AUDIT_KEY", "correct horse battery staple")
    assert f"seq {first_tagged}: HMAC tag does not match" in broken(dispatched)

    monkeypatch.setenv("INCIDENT_AUDIT_KEY", "a guess")
    assert f"seq {first_tagged}: HMAC tag does not match" in broken(dispatched)


def test_with_the_key_a_stripped_tag_fails(dispatched: OpenedIncident, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given tagged entries, when the tag of a later one is removed, then verify with the key names it."""
    ws, iid = dispatched.ws, dispatched.id
    monkeypatch.setenv("INCIDENT_AUDIT_KEY", "k")
    ws.ok("log", iid, "one")
    ws.ok("log", iid, "two")
    ((last,),) = ws.sql("SELECT MAX(seq) FROM audit_entry WHERE chain = ?", (iid,))
    with connect(ws.root) as conn:
        conn.execute("UPDATE audit_entry SET tag = NULL WHERE chain = ? AND seq = ?", (iid, last))

    assert f"seq {last}: no HMAC tag after tagged seq" in broken(dispatched)


def test_rows_deleted_on_purpose_through_forget_keep_verify_passing(dispatched: OpenedIncident) -> None:
    """Given a dispatched incident, when a use case (as `incident purge` will) deletes its attempt and delivery
    rows and forgets them in the same unit of work, then verify passes; the same delete without forget fails."""
    from sqlalchemy import text

    from incident.audit import chain as audit
    from incident.audit import coverage
    from incident.config import find_workspace
    from incident.db import unit_of_work

    ws, iid = dispatched.ws, dispatched.id
    with unit_of_work(find_workspace(ws.root)) as session:
        conn = session.connection()
        conn.execute(text("DELETE FROM attempt WHERE incident_id = :i"), {"i": iid})
        conn.execute(text("UPDATE delivery SET channels = '' WHERE incident_id = :i"), {"i": iid})
        coverage.forget(session, iid, "attempt", None, "purged")
        coverage.cover(session, iid, "delivery", None)
        audit.record(session, iid, audit.Event(audit.Action.COVERED, {"why": "test purge"}), "purger")
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)

    with connect(ws.root) as conn:
        conn.execute("DELETE FROM delivery")
    assert "delivery rows" in broken(dispatched)


def test_an_upgraded_v1_workspace_verifies_from_its_baseline(dispatched: OpenedIncident) -> None:
    """Given a workspace at schema 0005 (chain format 1), when `incident db upgrade` runs, then each incident's
    chain ends with one coverage-baseline entry, verify passes, and an edit made after the upgrade is caught."""
    from test_migrations import alembic_to

    ws, iid = dispatched.ws, dispatched.id
    alembic_to(ws.root, "0005", down=True)
    assert f"→ {SCHEMA_HEAD}" in ws.ok("db", "upgrade")

    # The baseline (0008), then what later revisions changed in covered rows (0011: letters become written).
    entries = ws.sql("SELECT action, payload, actor FROM audit_entry WHERE chain = ? ORDER BY seq", (iid,))
    at = max(i for i, e in enumerate(entries) if e[0] == "coverage-baseline")
    assert [(a, who) for a, _, who in entries[at + 1 :]] == [("covered", "schema-upgrade-0011")]
    payload = entries[at][1]
    assert {"incident", "timeline_entry", "delivery", "attempt", "approval", "report"} <= set(
        json.loads(payload)["covers"]
    )
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)
    with connect(ws.root) as conn:
        conn.execute("UPDATE timeline_entry SET text = 'edited after the upgrade'")
    assert "timeline_entry rows" in broken(dispatched)


def test_the_chain_names_no_person(dispatched: OpenedIncident, tmp_path: Path) -> None:
    """Given a dispatched incident (whose delivery rows are keyed by person id), when its chain is exported, then
    no person id appears in it: deliveries are named by a keyed pseudonym, so a purged incident's chain holds
    none of its people's identifiers."""
    export = tmp_path / "chain.json"
    dispatched.ws.ok("audit", "export", dispatched.id, "--output", str(export))
    payloads = "\n".join(e["payload"] for e in json.loads(export.read_text(encoding="utf-8"))["entries"])
    people = dispatched.affected()

    assert '"delivery"' in payloads and len(people) > 5
    assert [p for p in people if p in payloads] == []


def test_a_handed_out_head_is_checked_in_an_export_too_and_a_malformed_one_is_refused(
    dispatched: OpenedIncident, tmp_path: Path
) -> None:
    """Given the head `incident audit head` handed out and the chain exported later, then `audit verify --file
    --head` passes with that head and fails with another hash at its seq; a malformed --head is one line."""
    ws, iid = dispatched.ws, dispatched.id
    head = ws.json("audit", "head", iid)
    ws.ok("log", iid, "致电监管部门", "--en", "Called the regulator")
    export = tmp_path / "chain.json"
    ws.ok("audit", "export", iid, "--output", str(export))

    assert "ok" in ws.ok("audit", "verify", "--file", str(export), "--head", f"{head['seq']}:{head['hash']}")
    result = ws.run("audit", "verify", "--file", str(export), "--head", f"{head['seq']}:{'a' * 64}")
    assert result.exit_code != 0 and "history was rewritten" in result.stderr, result.output
    ws.refuse("audit", "verify", iid, "--head", "7:xyz", error="--head: expected SEQ:HASH")


def test_the_head_of_an_incident_without_a_chain_is_refused(dispatched: OpenedIncident) -> None:
    """Given an incident whose chain was deleted, then `incident audit head` says so instead of printing one."""
    with connect(dispatched.ws.root) as conn:
        conn.execute("DELETE FROM audit_entry WHERE chain = ?", (dispatched.id,))
        conn.execute("DELETE FROM audit_head WHERE chain = ?", (dispatched.id,))

    dispatched.ws.refuse("audit", "head", dispatched.id, error="has no audit chain (deleted?)")
