"""Issue 5: the deadline board. Every legal clock of every open incident, driven from the lawyer's
jurisdictions.yaml, flips at its second; overdue makes `incident status` exit 4 for cron; `--notify` warns
on-call once per obligation and level.

The story: 501 Californians, 250 Texans and people in mainland China, Germany, New York and Massachusetts had
their phone numbers in the breached member database (one of them unreachable). Incident A is that breach, graded
relatively major. Incident B is the same breach further along: its notices went out and its announcement was
posted at ANCHOR, and handling ended (it is closed). Incident C touched one person's CRM record; everything it
owed is settled and it is closed, so it is off the board.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from killed import kill_once_received
from servers import gateway
from snapshots import Snapshot
from support import MEMBER_DB_YAML, WorkspaceDir, open_incident, people_csv

from incident.assess.models import settle
from incident.config import find_workspace
from incident.db import unit_of_work

RULES = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "playbooks" / "jurisdictions.yaml").read_text(encoding="utf-8")
)
DISCOVERED = datetime(2026, 3, 10, 8, 0, 0, tzinfo=UTC)
OPENED = DISCOVERED + timedelta(hours=1)
ANCHOR = DISCOVERED + timedelta(days=2, hours=3, minutes=7)
SECOND = timedelta(seconds=1)

REGIONS = [("US-CA", 501), ("US-TX", 250), ("CN-FJ", 1), ("DE", 1), ("US-NY", 1), ("US-MA", 1)]
PEOPLE = [
    {
        "person_id": f"{region}-{i:04d}",
        "email": f"p{i}@{region.lower()}.example.com",
        "region": region,
        "locale": "zh-CN" if region.startswith("CN") else "en",
    }
    for region, n in REGIONS
    for i in range(n)
] + [{"person_id": "unreachable", "region": "CN-SC"}]
HOLDINGS = (
    "person_id,system,category,since,until\n"
    + "".join(f"{p['person_id']},member-db,phone,2020-01-01,\n" for p in PEOPLE)
    + "CN-FJ-0000,crm,phone,2020-01-01,\n"
)
SYSTEMS = "systems:\n  - {name: member-db, kind: internal}\n  - {name: crm, kind: internal}\n"


def period(ob: dict[str, Any]) -> timedelta:
    return timedelta(hours=ob.get("hours") or 0, days=ob.get("days") or 0)


FIXED = [o for r in RULES["regimes"] for o in r["obligations"] if period(o) > timedelta(0)]


def open_assessed(ws: WorkspaceDir, systems: str, *grade: str) -> str:
    with freeze_time(OPENED):
        iid = ws.ok(
            "open",
            "--playbook",
            "database-exfiltration",
            "--title",
            f"breach of {systems}",
            "--systems",
            systems,
            "--categories",
            "phone",
            "--from",
            "2026-01-01",
            "--to",
            "2026-03-01",
            "--discovered",
            DISCOVERED.isoformat(),
        ).strip()
        ws.ok("assess", iid, *grade)
    return iid


def record_events(ws: WorkspaceDir, iid: str, *events: str) -> None:
    """Record what dispatch and publishing record when they finish (the anchors of later clocks)."""
    with unit_of_work(find_workspace(ws.root)) as session:
        for event in events:
            settle(session, iid, event, "dispatcher@test")


def three_incidents(ws: WorkspaceDir) -> str:
    ws.import_inventory(people=people_csv(PEOPLE), holdings=HOLDINGS, systems=SYSTEMS)
    grade = ("--grade", "relatively-major", "--reason", "qualitative criteria")
    a, b, c = (open_assessed(ws, "member-db", *grade), open_assessed(ws, "member-db", *grade), open_assessed(ws, "crm"))
    with freeze_time(ANCHOR):
        record_events(ws, b, "individuals-notified", "announcement-published")
        ws.ok("close", b)
        record_events(ws, c, "individuals-notified")
        ws.ok("settle", c, "cn-pipl-authority", "--reference", "CAC hotline 12387")
        ws.ok("close", c)
    assert (a, b, c) == ("INC-2026-0001", "INC-2026-0002", "INC-2026-0003")
    return a


A, B, C = "INC-2026-0001", "INC-2026-0002", "INC-2026-0003"


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "status", three_incidents)


@pytest.fixture
def shared_ws(three: Snapshot) -> WorkspaceDir:
    """The three incidents, shared by the tests that only read the board."""
    return three.shared().ws


@pytest.fixture
def board_ws(three: Snapshot, tmp_path: Path) -> WorkspaceDir:
    """A private copy of the three incidents."""
    return three.copy(tmp_path).ws


def status_at(ws: WorkspaceDir, when: datetime, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `incident status --json` at `when`; return its exit code and the board."""
    with freeze_time(when):
        result = ws.run("status", "--json", *args)
    assert result.exit_code in (0, 4), result.output
    return result.exit_code, json.loads(result.stdout)


def obligation(board: dict[str, Any], incident_id: str, key: str) -> dict[str, Any]:
    (incident,) = [i for i in board["incidents"] if i["id"] == incident_id]
    found = {o["key"]: o for o in incident["obligations"]}
    assert key in found, f"{key} does not apply to {incident_id}: {sorted(found)}"
    return found[key]


@pytest.mark.parametrize("ob", FIXED, ids=[o["key"] for o in FIXED])
def test_every_obligation_flips_on_the_board_at_its_second(shared_ws: WorkspaceDir, ob: dict[str, Any]) -> None:
    """Given an obligation with a fixed period in jurisdictions.yaml, when `incident status --json` runs one
    second before, at and one second after anchor + period, then a deadline is due (1 s left), due (0 s) and
    overdue (-1 s); a minimum period (a posting period) is in progress, then done, and never overdue."""
    ws = shared_ws
    incident_id, started = (A, DISCOVERED) if ob["anchor"] == "discovered" else (B, ANCHOR)
    due = started + period(ob)

    seen = [
        obligation(status_at(ws, due + delta)[1], incident_id, ob["key"]) for delta in (-SECOND, 0 * SECOND, SECOND)
    ]

    assert [o["due"] for o in seen] == [due.isoformat()] * 3
    if ob.get("minimum"):
        assert [(o["state"], o["left_seconds"]) for o in seen] == [("in progress", 1.0), ("done", None), ("done", None)]
        assert seen[1]["done_at"] == due.isoformat()
    else:
        assert [(o["state"], o["left_seconds"]) for o in seen] == [("due", 1.0), ("due", 0.0), ("overdue", -1.0)]


def test_the_board_lists_open_incidents_and_closed_ones_with_work_left(shared_ws: WorkspaceDir) -> None:
    """Given A open, B closed with its CAC final summary still running, and C closed with everything settled,
    then the board shows A and B, and B's notices obligations are done by the recorded event."""
    _, board = status_at(shared_ws, OPENED)

    assert [i["id"] for i in board["incidents"]] == [B, A]
    assert obligation(board, B, "cn-cac-final")["state"] == "due"
    for key in (
        "cn-notify-individuals",
        "ca-individuals",
        "tx-individuals",
        "ny-individuals",
        "ma-individuals",
        "gdpr-data-subjects",
    ):
        assert obligation(board, B, key)["state"] == "done" and obligation(board, A, key)["state"] != "done"
    assert obligation(board, A, "ny-regulators")["state"] == "due"


def test_overdue_makes_status_exit_4_for_cron(shared_ws: WorkspaceDir) -> None:
    """Given the CAC 4-hour report unsubmitted, then `incident status` exits 0 before it is late and 4 one
    second after, naming it overdue."""
    ws = shared_ws
    with freeze_time(DISCOVERED + timedelta(hours=3)):
        calm = ws.run("status")
    with freeze_time(DISCOVERED + timedelta(hours=4) + SECOND):
        late = ws.run("status")

    assert calm.exit_code == 0, calm.output
    assert "0 overdue" in calm.stdout
    assert late.exit_code == 4, late.output
    assert "2 overdue" in late.stdout
    assert [line.split()[0] for line in late.stdout.splitlines() if "cn-cac-initial" in line] == ["overdue"] * 2


def test_settle_marks_an_obligation_done_by_hand(board_ws: WorkspaceDir) -> None:
    """Given New York's regulators were notified outside the tool, when the responder settles it with a
    reference, then the board shows it done at that time; unknown, inapplicable, repeated or future settlements
    are refused."""
    at = (DISCOVERED + timedelta(days=3)).isoformat()
    with freeze_time(DISCOVERED + timedelta(days=4)):
        out = board_ws.ok("settle", A, "ny-regulators", "--at", at, "--reference", "NY AG portal #5521")
        board_ws.refuse("settle", A, "ny-regulators", error=f"ny-regulators is already done (since {at})")
        board_ws.refuse("settle", A, "nonsense", error="'nonsense' is not an obligation in jurisdictions.yaml")
        board_ws.refuse("settle", C, "ca-ag", error="'ca-ag' does not apply to this incident")
        board_ws.refuse("settle", A, "tx-ag", "--at", "2026-12-01", error="--at: is in the future")
    _, board = status_at(board_ws, DISCOVERED + timedelta(days=5))

    assert "settled INC-2026-0001 ny-regulators at 2026-03-13 08:00Z (reference NY AG portal #5521)" in out
    assert (obligation(board, A, "ny-regulators")["state"], obligation(board, A, "ny-regulators")["done_at"]) == (
        "done",
        at,
    )
    assert board_ws.sql(
        "SELECT reference FROM obligation_done WHERE incident_id = ? AND key = 'ny-regulators'", (A,)
    ) == [("NY AG portal #5521",)]


def oncall(ws: WorkspaceDir, port: int, margin_hours: int = 24) -> None:
    config = ws.root / "incident.toml"
    config.write_text(
        config.read_text(encoding="utf-8") + f'\n[oncall]\nurl = "json://127.0.0.1:{port}/oncall?'
        f':to=oncall"\nmargin_hours = {margin_hours}\n',
        encoding="utf-8",
    )


def test_notify_warns_on_call_once_per_obligation_and_level(board_ws: WorkspaceDir) -> None:
    """Given on-call at a local HTTP endpoint and a 24-hour margin, when cron runs `status --notify` three hours
    after discovery, then the CAC 4-hour report of A and B is each warned about once as due soon; running again
    sends nothing; once it is overdue each is warned about once more; the GDPR 72-hour clock is warned about
    when it comes within the margin."""
    with gateway() as gw:
        oncall(board_ws, gw.port)
        first, _ = status_at(board_ws, DISCOVERED + timedelta(hours=3), "--notify")
        status_at(board_ws, DISCOVERED + timedelta(hours=3, minutes=30), "--notify")
        late, _ = status_at(board_ws, DISCOVERED + timedelta(hours=4, seconds=1), "--notify")
        status_at(board_ws, DISCOVERED + timedelta(hours=5), "--notify")
        status_at(board_ws, DISCOVERED + timedelta(hours=48, seconds=1), "--notify")

    titles = [r.body["title"] for r in gw.requests]
    assert (first, late) == (0, 4)
    assert titles == [
        f"[due-soon] {B}: cn-cac-initial (1h 00m left)",
        f"[due-soon] {A}: cn-cac-initial (1h 00m left)",
        f"[overdue] {B}: cn-cac-initial (overdue by 0h 00m)",
        f"[overdue] {A}: cn-cac-initial (overdue by 0h 00m)",
        f"[due-soon] {B}: gdpr-sa-72h (23h 59m left)",
        f"[due-soon] {A}: gdpr-sa-72h (23h 59m left)",
    ]
    message = gw.requests[0].body["message"]
    assert "Provincial Cyberspace Administration" in message and "incident settle" in message
    assert board_ws.sql("SELECT incident_id, key, level FROM deadline_warning ORDER BY at, incident_id") == [
        (A, "cn-cac-initial", "due-soon"),
        (B, "cn-cac-initial", "due-soon"),
        (A, "cn-cac-initial", "overdue"),
        (B, "cn-cac-initial", "overdue"),
        (A, "gdpr-sa-72h", "due-soon"),
        (B, "gdpr-sa-72h", "due-soon"),
    ]


def test_a_failed_warning_is_sent_again_on_the_next_run(board_ws: WorkspaceDir) -> None:
    """Given on-call answering 500 at first, then `status --notify` exits 1 naming the failure and records no
    warning; the next run sends it."""
    with gateway({"oncall": [(500, {}), (500, {}), (200, {})]}) as gw:
        oncall(board_ws, gw.port)
        with freeze_time(DISCOVERED + timedelta(hours=3)):
            failed = board_ws.run("status", "--notify")
            again = board_ws.run("status", "--notify")

    assert failed.exit_code == 1 and "on-call warning for INC-2026-0002 cn-cac-initial failed" in failed.stderr
    assert again.exit_code == 0, again.output
    assert [r.status for r in gw.requests] == [500, 500, 200, 200]
    assert len(board_ws.sql("SELECT * FROM deadline_warning")) == 2


def test_notify_without_on_call_configured_says_how(board_ws: WorkspaceDir) -> None:
    board_ws.refuse("status", "--notify", error="incident.toml: [oncall] url: give an apprise URL for --notify")


def test_a_notify_killed_after_its_send_re_sends_that_warning_once_and_says_so(workspace: WorkspaceDir) -> None:
    """Given two relatively major incidents discovered an hour ago, when `status --notify` is killed -9 after
    on-call took in the first warning and before the answer was recorded, then the next run finds that warning in
    flight, re-sends it once and says so, sends the other warning once, and the audit chain verifies."""
    workspace.import_inventory(
        people=people_csv([{"person_id": "cn-1", "email": "p1@example.cn", "region": "CN-FJ", "locale": "zh-CN"}]),
        holdings="person_id,system,category,since,until\ncn-1,member-db,phone,2020-01-01,\n",
        systems=MEMBER_DB_YAML,
    )
    discovered = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds")
    ids = [open_incident(workspace, systems="member-db", categories="phone", discovered=discovered).id for _ in "ab"]
    for iid in ids:
        workspace.ok("assess", iid, "--grade", "relatively-major", "--reason", "qualitative criteria")
    with gateway(hang={"oncall": 1}) as gw:
        oncall(workspace, gw.port)

        kill_once_received(workspace.root, "status", "--notify", gateway=gw, to="oncall")
        in_flight = workspace.sql("SELECT key, level, state FROM deadline_warning")
        again = workspace.run("status", "--notify")

    assert again.exit_code == 0, again.output
    titles = Counter(r.body["title"].split(" (")[0] for r in gw.requests)  # the time left moves with the clock
    first = gw.requests[0].body["title"].split(" (")[0]
    assert in_flight == [("cn-cac-initial", "due-soon", "sending")]
    assert set(titles) == {f"[due-soon] {iid}: cn-cac-initial" for iid in ids}, titles
    assert titles[first] == 2 and sum(titles.values()) == 3, "only the warning in flight may arrive twice"
    assert "1 on-call warning(s) were in flight when a previous run stopped: re-sent once" in again.stdout
    assert (
        workspace.sql("SELECT key, level, state FROM deadline_warning") == [("cn-cac-initial", "due-soon", "sent")] * 2
    )
    for iid in ids:
        assert f"{iid}: ok" in workspace.ok("audit", "verify", iid)
