"""Every state change leaves a hash-chained audit entry, and any edit to the chain is caught."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable

import pytest
from rawdb import Raw, as_text_time, connect
from support import ACTOR, OpenedIncident, WorkspaceDir, open_incident
from typer.testing import CliRunner

from incident.audit.chain import link_hash
from incident.cli import app
from incident.clock import parse_when


def chain(ws: WorkspaceDir, name: str) -> list[tuple[int, str, str]]:
    """(seq, actor, action) of every entry of a chain, in order."""
    return [
        tuple(r) for r in ws.sql("SELECT seq, actor, action FROM audit_entry WHERE chain = ? ORDER BY seq", (name,))
    ]


def test_every_state_change_appends_an_entry(workspace: WorkspaceDir) -> None:
    """Given a new workspace, when the responder imports, opens, logs, assesses and closes, then each command
    appends its own entry to the right chain, with the actor, and read-only commands append nothing."""
    assert chain(workspace, "workspace") == [(1, ACTOR, "workspace-created")]

    workspace.import_inventory()
    assert chain(workspace, "workspace")[1:] == [(2, ACTOR, "inventory-imported")]

    iid = open_incident(workspace).id
    assert chain(workspace, iid) == [(1, ACTOR, "opened")]

    workspace.ok("log", iid, "Disabled the leaked account", actor="oncall@test")
    assert chain(workspace, iid)[1:] == [(2, "oncall@test", "logged")]

    workspace.ok("assess", iid)
    assert chain(workspace, iid)[2:] == [(3, ACTOR, "status"), (4, ACTOR, "assessed")]

    before = workspace.tables()
    for read_only in (["list"], ["show", iid], ["affected", iid], ["inventory", "stats"], ["audit", "verify"]):
        workspace.ok(*read_only)
    assert workspace.tables() == before

    workspace.ok("close", iid)
    assert chain(workspace, iid)[4:] == [(5, ACTOR, "status")]
    ((payload,),) = workspace.sql("SELECT payload FROM audit_entry WHERE chain = ? AND seq = 5", (iid,))
    closed = json.loads(payload)
    assert (closed["from"], closed["to"]) == ("assessed", "closed")
    assert list(closed["covers"]) == ["incident"]  # the entry also says what the incident row then held
    assert list(closed["covers"]["incident"]["rows"]) == [iid]


def test_the_actor_defaults_to_the_environment_then_the_os_user(opened_incident: OpenedIncident) -> None:
    """Given no --actor, then INCIDENT_ACTOR is recorded, and without it the OS user."""
    root = str(opened_incident.ws.root)
    runner = CliRunner()

    named = runner.invoke(
        app, ["--workspace", root, "log", opened_incident.id, "a"], env={"INCIDENT_ACTOR": "ciso@test"}
    )
    plain = runner.invoke(app, ["--workspace", root, "log", opened_incident.id, "b"])

    assert named.exit_code == 0 and plain.exit_code == 0, named.output + plain.output
    assert [a for _, a, _ in chain(opened_incident.ws, opened_incident.id)][-2:] == ["ciso@test", getpass.getuser()]


@pytest.fixture
def audited_incident(assessed_incident: OpenedIncident) -> OpenedIncident:
    """An assessed incident with two log entries: five audit entries (opened, status, assessed, logged x2)."""
    assessed_incident.ws.ok("log", assessed_incident.id, "Rotated credentials")
    assessed_incident.ws.ok("log", assessed_incident.id, "Exfiltration confirmed", "--kind", "finding")
    assert len(chain(assessed_incident.ws, assessed_incident.id)) == 5
    return assessed_incident


def test_an_intact_chain_verifies(audited_incident: OpenedIncident) -> None:
    """Given an untouched chain, when `incident audit verify ID` runs, then it reports ok and exits 0."""
    out = audited_incident.ws.ok("audit", "verify", audited_incident.id)

    assert out.startswith(f"{audited_incident.id}: ok, 5 entries, head ")


def test_verify_without_an_id_checks_every_chain(audited_incident: OpenedIncident) -> None:
    """Given a workspace chain and an incident chain, then a bare `audit verify` checks both."""
    out = audited_incident.ws.ok("audit", "verify")

    assert "workspace: ok, 2 entries" in out
    assert f"{audited_incident.id}: ok, 5 entries" in out


def tamper(sql: str, *params: object) -> Callable[[Raw, str], None]:
    def run(conn: Raw, chain_name: str) -> None:
        conn.execute(sql, (*params, chain_name))

    return run


def swap_seq_2_and_3(conn: Raw, chain_name: str) -> None:
    for old, new in ((2, -1), (3, 2), (-1, 3)):
        conn.execute("UPDATE audit_entry SET seq = ? WHERE seq = ? AND chain = ?", (new, old, chain_name))


def forge_row_into_the_middle(conn: Raw, chain_name: str) -> None:
    """Shift seq 3.. up and slip a made-up entry in at seq 3, linked to seq 2 but with a guessed hash."""
    for seq in (5, 4, 3):
        conn.execute("UPDATE audit_entry SET seq = seq + 1 WHERE seq = ? AND chain = ?", (seq, chain_name))
    at, prev = conn.execute("SELECT at, hash FROM audit_entry WHERE seq = 2 AND chain = ?", (chain_name,)).fetchone()
    conn.execute(
        "INSERT INTO audit_entry (chain, seq, at, actor, action, payload, prev_hash, hash) "
        "VALUES (?, 3, ?, 'mallory', 'logged', '{}', ?, ?)",
        (chain_name, at, prev, "f" * 64),
    )


def forge_a_valid_link_at_the_end(conn: Raw, chain_name: str) -> None:
    """Append an entry whose hash is computed correctly from the last one (the forger knows the algorithm)."""
    at, prev = conn.execute("SELECT at, hash FROM audit_entry WHERE seq = 5 AND chain = ?", (chain_name,)).fetchone()
    digest = link_hash(chain_name, 6, parse_when(as_text_time(at)), "mallory", "settled", "{}", prev)
    conn.execute(
        "INSERT INTO audit_entry (chain, seq, at, actor, action, payload, prev_hash, hash) "
        "VALUES (?, 6, ?, 'mallory', 'settled', '{}', ?, ?)",
        (chain_name, at, prev, digest),
    )


# Each way of tampering, and the first seq `verify` must name.
TAMPERING = {
    "payload edited": (
        tamper("UPDATE audit_entry SET payload = '{\"people\": 1}' WHERE seq = 3 AND chain = ?"),
        3,
        "content does not match its hash",
    ),
    "actor edited": (
        tamper("UPDATE audit_entry SET actor = 'someone-else' WHERE seq = 1 AND chain = ?"),
        1,
        "content does not match its hash",
    ),
    "time edited": (
        tamper("UPDATE audit_entry SET at = '2020-01-01 00:00:00.000000' WHERE seq = 4 AND chain = ?"),
        4,
        "content does not match its hash",
    ),
    "middle row deleted": (
        tamper("DELETE FROM audit_entry WHERE seq = 3 AND chain = ?"),
        4,
        "entry missing before it (expected seq 3)",
    ),
    "last row deleted": (
        tamper("DELETE FROM audit_entry WHERE seq = 5 AND chain = ?"),
        5,
        "entries were deleted from the end",
    ),
    "first row deleted": (
        tamper("DELETE FROM audit_entry WHERE seq = 1 AND chain = ?"),
        2,
        "entry missing before it (expected seq 1)",
    ),
    "two rows swapped": (swap_seq_2_and_3, 2, "does not link to the entry before it"),
    "forged row in the middle": (forge_row_into_the_middle, 3, "content does not match its hash"),
    "forged row at the end": (forge_a_valid_link_at_the_end, 6, "entry after the chain head (seq 5): inserted"),
    "head deleted": (tamper("DELETE FROM audit_head WHERE chain = ?"), 5, "the chain head is missing"),
}


@pytest.mark.parametrize(("tampering", "first_bad", "problem"), list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_is_caught_at_the_first_bad_seq(
    audited_incident: OpenedIncident, tampering: Callable[[Raw, str], None], first_bad: int, problem: str
) -> None:
    """Given an intact chain of five entries, when someone with database access changes it behind the tool's
    back, then `audit verify` exits non-zero naming the first bad seq and why."""
    with connect(audited_incident.ws.root) as conn:
        tampering(conn, audited_incident.id)

    result = audited_incident.ws.run("audit", "verify", audited_incident.id)

    assert result.exit_code != 0, result.output
    assert f"{audited_incident.id}: BROKEN at seq {first_bad}: " in result.stderr, result.output
    assert problem in result.stderr, result.output


def test_tampering_with_one_incident_leaves_the_others_verified(audited_incident: OpenedIncident) -> None:
    """Given two incidents, when one chain is edited, then a bare verify fails on that one only."""
    ws = audited_incident.ws
    other = open_incident(ws).id
    with connect(ws.root) as conn:
        conn.execute("UPDATE audit_entry SET payload = '{}' WHERE seq = 1 AND chain = ?", (audited_incident.id,))

    result = ws.run("audit", "verify")

    assert result.exit_code != 0, result.output
    assert f"{other}: ok, 1 entries" in result.stdout
    assert "workspace: ok" in result.stdout
    assert f"{audited_incident.id}: BROKEN at seq 1" in result.stderr


def test_verify_of_an_unknown_incident_is_refused(workspace: WorkspaceDir) -> None:
    """Given no such incident, then verify says so instead of reporting an empty chain as intact."""
    workspace.refuse("audit", "verify", "INC-1999-0001", error="error: no incident 'INC-1999-0001'")
