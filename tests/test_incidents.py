"""A responder opens an incident from a playbook, keeps its timeline, and moves it through its states."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from freezegun import freeze_time
from rawdb import connect
from support import ACTOR, DISCOVERED, OpenedIncident, WorkspaceDir, open_incident

from incident import catalog
from incident.config import find_workspace
from incident.db import unit_of_work
from incident.errors import IllegalTransition
from incident.incidents.models import LEGAL, Status, get, transition


def test_open_prints_a_yearly_numbered_id(inventory_with_backups: WorkspaceDir) -> None:
    """Given the year 2030, when two incidents are opened, then they are INC-2030-0001 and INC-2030-0002; the
    first of 2031 starts again at 0001."""
    with freeze_time("2030-06-15 09:00:00"):
        first = open_incident(inventory_with_backups, discovered=None)
        second = open_incident(inventory_with_backups, discovered=None)
    with freeze_time("2031-01-01 00:00:01"):
        next_year = open_incident(inventory_with_backups, discovered=None)

    assert (first.id, second.id, next_year.id) == ("INC-2030-0001", "INC-2030-0002", "INC-2031-0001")


def test_discovery_defaults_to_now(inventory_with_backups: WorkspaceDir) -> None:
    """Given no --discovered, when an incident is opened, then it was discovered when it was opened."""
    with freeze_time("2030-06-15 09:00:00"):
        opened = open_incident(inventory_with_backups, discovered=None)

    shown = opened.show()
    assert shown["discovered"]["at"] == shown["opened"]["at"] == "2030-06-15T09:00:00+00:00"


def test_categories_default_to_the_playbooks(inventory_with_backups: WorkspaceDir) -> None:
    """Given no --categories, when an incident is opened from a playbook, then it carries the playbook's."""
    opened = open_incident(inventory_with_backups, categories=None, playbook="credential-stuffing")

    assert opened.show()["categories"] == sorted(catalog.playbook("credential-stuffing").categories)


def test_show_records_the_gbt_35273_facts(opened_incident: OpenedIncident) -> None:
    """Given an incident opened with who found it, where, the effect on connected systems and the police, then
    `show --json` carries each of them (GB/T 35273 §10.1) and an empty timeline."""
    shown = opened_incident.show()

    assert shown["discovered"] == {"at": DISCOVERED, "by": "SOC on-call", "where": "数据库审计告警, Fuzhou DC"}
    assert shown["connected_systems"] == "订单系统未受影响"
    assert shown["police_contacted"] is True
    assert shown["opened"]["by"] == ACTOR
    assert shown["systems"] == ["archive-backup", "member-db", "pay-partner"]
    assert shown["exposure"] == {"from": "2026-01-01T00:00:00+00:00", "to": "2026-03-01T00:00:00+00:00"}
    assert shown["status"] == "open"
    assert shown["timeline"] == []
    assert shown["assessment"] is None


def test_show_lists_the_playbooks_containment_checklist(opened_incident: OpenedIncident) -> None:
    """Given an exfiltration incident, when the responder runs `show`, then the playbook's first steps of the
    emergency plan (contain, preserve evidence) are listed in both languages, as written in the playbook."""
    ws = opened_incident.ws
    shown = opened_incident.show()
    text = ws.ok("show", opened_incident.id)

    isolate = (
        "Isolate the affected databases and servers, and revoke the accounts, keys and sessions the attacker used."
    )
    assert shown["containment"][0] == {
        "zh-CN": "隔离受影响的数据库和服务器，撤销攻击者使用的账户、密钥和会话。",
        "en": isolate,
    }
    assert "containment checklist (playbook):" in text and f"  - {isolate} / 隔离受影响的数据库" in text


def test_discovered_by_defaults_to_the_actor(inventory_with_backups: WorkspaceDir) -> None:
    """Given no --discovered-by, then whoever opened the incident is recorded as its discoverer."""
    opened = open_incident(inventory_with_backups)

    assert opened.show()["discovered"]["by"] == ACTOR


OPEN_ERRORS = {
    "unknown system": (["--systems", "member-db,crm"], "error: --systems: unknown system 'crm'"),
    "unknown playbook": (["--playbook", "phishing"], "error: unknown playbook 'phishing' (known: credential-"),
    "unknown category": (["--categories", "phone,shoe_size"], "error: --categories: unknown category 'shoe_size'"),
    "window backwards": (["--from", "2026-03-02"], "error: --to: the exposure window ends before it starts"),
    "not a date": (["--to", "next tuesday"], "error: --to: not an ISO date or time: 'next tuesday'"),
    "discovered in the future": (["--discovered", "2999-01-01"], "error: --discovered: is in the future"),
}


@pytest.mark.parametrize(("change", "error"), list(OPEN_ERRORS.values()), ids=list(OPEN_ERRORS))
def test_open_refuses_what_it_does_not_know(
    inventory_with_backups: WorkspaceDir, change: list[str], error: str
) -> None:
    """Given the inventory, when an incident names an unknown system, playbook or category (or an impossible
    time), then it is refused with the option in the message and nothing is recorded."""
    args = {
        "--playbook": "database-exfiltration",
        "--title": "t",
        "--systems": "member-db",
        "--from": "2026-01-01",
        "--to": "2026-03-01",
        "--discovered": DISCOVERED,
    }
    args.update(dict(zip(change[::2], change[1::2], strict=True)))
    before = inventory_with_backups.tables()

    inventory_with_backups.refuse("open", *[x for pair in args.items() for x in pair], error=error)

    assert inventory_with_backups.sql("SELECT COUNT(*) FROM incident") == [(0,)]
    assert inventory_with_backups.tables() == before


def test_list_shows_every_incident(inventory_with_backups: WorkspaceDir) -> None:
    """Given two incidents, one assessed, when the responder lists them, then both appear with status, count
    and title."""
    first = open_incident(inventory_with_backups)
    second = open_incident(inventory_with_backups, playbook="ransomware")
    inventory_with_backups.ok("assess", first.id)

    listed = {r["id"]: r for r in inventory_with_backups.json("list")}
    out = inventory_with_backups.ok("list")

    assert listed[first.id]["status"] == "assessed" and listed[first.id]["people"] == 11
    assert listed[second.id]["status"] == "open" and listed[second.id]["people"] is None
    assert listed[second.id]["playbook"] == "ransomware"
    assert first.id in out and second.id in out and "会员库被导出" in out


def test_log_keeps_a_timestamped_timeline_with_kinds(opened_incident: OpenedIncident) -> None:
    """Given an incident, when the responder logs an action, a finding and a decision at set times, then the
    timeline lists them in order with time, kind, actor and text."""
    ws, iid = opened_incident.ws, opened_incident.id
    with freeze_time("2026-03-10 09:00:00"):
        ws.ok("log", iid, "Disabled the leaked account")
    with freeze_time("2026-03-10 09:30:00"):
        ws.ok("log", iid, "Two tables were exported", "--kind", "finding")
    with freeze_time("2026-03-10 10:00:00"):
        ws.ok("log", iid, "Notify everyone by email first", "--kind", "decision", actor="legal@test")

    timeline = opened_incident.show()["timeline"]

    assert [(e["at"], e["kind"], e["actor"], e["text"]) for e in timeline] == [
        ("2026-03-10T09:00:00+00:00", "action", ACTOR, "Disabled the leaked account"),
        ("2026-03-10T09:30:00+00:00", "finding", ACTOR, "Two tables were exported"),
        ("2026-03-10T10:00:00+00:00", "decision", "legal@test", "Notify everyone by email first"),
    ]
    assert "action   responder@test: Disabled the leaked account" in ws.ok("show", iid)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--kind", "rumour"], "error: --kind: must be one of action, finding, decision"),
        ([], "error: the log entry is empty"),
    ],
    ids=["unknown kind", "empty text"],
)
def test_log_refuses_a_bad_entry(opened_incident: OpenedIncident, args: list[str], error: str) -> None:
    """Given an incident, when a log entry has an unknown kind or no text, then it is refused."""
    text = "  " if not args else "something"

    opened_incident.ws.refuse("log", opened_incident.id, text, *args, error=error)

    assert opened_incident.show()["timeline"] == []


def test_an_unknown_incident_is_named(inventory_with_backups: WorkspaceDir) -> None:
    """Given no such incident, then show says so and points at `incident list`."""
    inventory_with_backups.refuse(
        "show", "INC-1999-0001", error="error: no incident 'INC-1999-0001' (see `incident list`)"
    )


# ---- the state machine --------------------------------------------------------------------------

ILLEGAL = [(a, b) for a in Status for b in Status if b not in LEGAL[a]]
ALLOWED = [(a, b) for a in Status for b in LEGAL[a]]


class Undo(Exception):
    """Raised to roll a unit of work back, so the shared incident keeps its state."""


@pytest.fixture(scope="module")
def shared_incident(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One incident for the state-machine cases (each case rolls its change back)."""
    from conftest import init_workspace

    ws = init_workspace(tmp_path_factory.mktemp("states") / "ws")
    url = os.environ.get("INCIDENT_DATABASE_URL")
    if url:  # PostgreSQL pass: pin this module's database in the workspace, past the per-test override
        config = ws.root / "incident.toml"
        config.write_text(config.read_text().replace('url = "sqlite:///incident.db"', f'url = "{url}"'))
    ws.import_inventory()
    return ws.root, open_incident(ws).id


@pytest.fixture
def shared_database(shared_incident: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """The shared incident, reached through its own workspace's database setting."""
    monkeypatch.delenv("INCIDENT_DATABASE_URL", raising=False)
    return shared_incident


def test_every_status_has_a_rule() -> None:
    """Given the status machine, then every status says where it may go and nothing leaves `closed`."""
    assert set(LEGAL) == set(Status)
    assert LEGAL[Status.CLOSED] == set()


def test_the_forward_path_is_legal_and_shortcuts_are_not() -> None:
    """Given the issue's order open → assessed → notices rendered → approved → notifying → notified → closed,
    then each step forward is legal, and skipping review or leaving `closed` is not."""
    path = list(Status)
    assert [s.value for s in path] == [
        "open",
        "assessed",
        "notices rendered",
        "approved",
        "notifying",
        "notified",
        "closed",
    ]
    for current, target in itertools.pairwise(path):
        assert target in LEGAL[current], f"{current} -> {target}"
    for current, target in [
        (Status.OPEN, Status.APPROVED),
        (Status.OPEN, Status.NOTIFYING),
        (Status.ASSESSED, Status.NOTIFYING),
        (Status.RENDERED, Status.NOTIFYING),
        (Status.NOTIFYING, Status.CLOSED),
        (Status.CLOSED, Status.OPEN),
    ]:
        assert target not in LEGAL[current], f"{current} -> {target}"


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{a}->{b}" for a, b in ILLEGAL])
def test_every_illegal_move_is_refused_naming_both_states(
    shared_database: tuple[Path, str], current: Status, target: Status
) -> None:
    """Given an incident in `current`, when something moves it to a status LEGAL does not allow, then the move
    is refused and the message names both states."""
    root, incident_id = shared_database
    with pytest.raises(Undo), unit_of_work(find_workspace(root)) as session:
        incident = get(session, incident_id)
        incident.status = current.value
        with pytest.raises(IllegalTransition) as refused:
            transition(session, incident, target, ACTOR)
        assert incident.status == current.value
        raise Undo

    assert f"cannot move from '{current}' to '{target}'" in str(refused.value)


@pytest.mark.parametrize(("current", "target"), ALLOWED, ids=[f"{a}->{b}" for a, b in ALLOWED])
def test_every_legal_move_is_made_and_audited(
    shared_database: tuple[Path, str], current: Status, target: Status
) -> None:
    """Given an incident in `current`, when it moves to a status LEGAL allows, then it is there and the audit
    chain records the move from and to."""
    from incident.audit import chain as audit

    root, incident_id = shared_database
    with pytest.raises(Undo), unit_of_work(find_workspace(root)) as session:
        incident = get(session, incident_id)
        incident.status = current.value
        transition(session, incident, target, ACTOR)
        last = audit.entries(session, incident_id)[-1]
        assert incident.status == target.value
        assert (last.action, last.payload) == ("status", f'{{"from": "{current}", "to": "{target}"}}')
        raise Undo


@pytest.mark.parametrize("status", ["notices rendered", "approved", "notifying"])
def test_close_is_refused_while_notices_are_in_flight(opened_incident: OpenedIncident, status: str) -> None:
    """Given an incident whose notices are rendered, approved or being sent, when the responder closes it, then
    the refusal names both states and the incident stays where it was."""
    with connect(opened_incident.ws.root) as conn:
        conn.execute("UPDATE incident SET status = ? WHERE id = ?", (status, opened_incident.id))

    opened_incident.ws.refuse(
        "close", opened_incident.id, error=f"error: {opened_incident.id} cannot move from '{status}' to 'closed'"
    )

    assert opened_incident.show()["status"] == status


def test_an_assessed_incident_can_be_closed(assessed_incident: OpenedIncident) -> None:
    """Given an assessed incident, when the responder closes it, then it is closed and handling has ended."""
    with freeze_time("2026-04-01 10:00:00"):
        out = assessed_incident.ws.ok("close", assessed_incident.id)

    shown = assessed_incident.show()
    assert out.strip() == f"closed {assessed_incident.id}"
    assert shown["status"] == "closed"
    assert shown["handling_ended_at"] == "2026-04-01T10:00:00+00:00"


def test_a_closed_incident_refuses_changes(assessed_incident: OpenedIncident) -> None:
    """Given a closed incident, when the responder logs, closes again or re-assesses, then each is refused."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    ws.ok("close", iid)
    before = ws.tables()

    ws.refuse("log", iid, "late note", error=f"error: {iid} is closed: its timeline can no longer change")
    ws.refuse("close", iid, error=f"error: {iid} cannot move from 'closed' to 'closed'")
    ws.refuse("assess", iid, "--reassess", error=f"error: {iid} is 'closed'")

    assert ws.tables() == before
    assert assessed_incident.show()["timeline"] == []
