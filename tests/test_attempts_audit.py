"""Every delivery attempt is covered by the audit chain: editing, deleting or forging one is caught."""

from __future__ import annotations

import pytest
from rawdb import connect
from support import OpenedIncident, approve_notices


@pytest.fixture
def dispatched_incident(assessed_incident: OpenedIncident) -> OpenedIncident:
    """The hand incident's notices rendered, approved and sent to the file outbox, letters written."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal")
    ws.ok("dispatch", iid)
    ws.ok("letters", iid)
    return assessed_incident


TAMPERING = {
    "outcome edited": (
        "UPDATE attempt SET outcome = CASE WHEN outcome = 'sent' THEN 'permanent' ELSE 'sent' END "
        "WHERE id = (SELECT MIN(id) FROM attempt)",
        "were edited",
    ),
    "address edited": (
        "UPDATE attempt SET address = 'z***@example.org' WHERE id = (SELECT MAX(id) FROM attempt)",
        "were edited",
    ),
    "attempt deleted": ("DELETE FROM attempt WHERE id = (SELECT MIN(id) FROM attempt)", "were deleted"),
    "attempt forged": (
        "INSERT INTO attempt (incident_id, person_id, notice_id, channel, address, started, finished, "
        "outcome, worker) SELECT incident_id, person_id, notice_id, channel, address, started, "
        "finished, 'sent', worker FROM attempt WHERE id = (SELECT MIN(id) FROM attempt)",
        "not covered by the audit chain",
    ),
}


def test_an_untouched_dispatch_verifies(dispatched_incident: OpenedIncident) -> None:
    """Given a finished dispatch, then the chain and every attempt row verify."""
    ws = dispatched_incident.ws
    assert ws.sql("SELECT COUNT(*) FROM attempt")[0][0] > 0
    out = ws.ok("audit", "verify", dispatched_incident.id)
    assert f"{dispatched_incident.id}: ok" in out


@pytest.mark.parametrize(("sql", "problem"), list(TAMPERING.values()), ids=list(TAMPERING))
def test_tampering_with_the_proof_of_delivery_is_caught(
    dispatched_incident: OpenedIncident, sql: str, problem: str
) -> None:
    """Given a finished dispatch, when someone edits the proof of delivery behind the tool's back, then
    `audit verify` fails and says what happened to which attempts."""
    ws = dispatched_incident.ws
    with connect(ws.root) as conn:
        conn.execute(sql)

    result = ws.run("audit", "verify", dispatched_incident.id)

    assert result.exit_code != 0, result.output
    assert f"{dispatched_incident.id}: BROKEN" in result.stderr, result.output
    assert problem in result.stderr, result.output
