"""Issue 12, item 7: a provider that echoes the recipient in its refusal, in any format, leaves no raw contact in
the proof of delivery (`incident deliveries`) or the DEBUG log.

Real servers on 127.0.0.1: an HTTP gateway answering 400 with the number echoed national, E.164, spaced and
dashed, and an aiosmtpd server whose refusal echoes the address <bracketed>, in upper case, with a quoted
local part and %40-encoded. Both through our pooled schemes and through apprise's own json:// and mailto://.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from servers import configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import MEMBER_DB_YAML, WorkspaceDir, manifest_of, open_incident, people_csv
from typer.testing import CliRunner

from incident.cli import app

# Each SMS recipient, and the 400 body the gateway answers: their number echoed in one format (and, for the
# first, somebody else's number too).
ECHOES = {
    "+8613800000011": '{"error":"invalid number 13800000011 (last good: 13900000099)"}',
    "+8613800000012": '{"error":"invalid number +8613800000012"}',
    "+8613800000013": '{"error":"invalid number +86 138 0000 0013"}',
    "+8613800000014": '{"error":"invalid number 138-0000-0014, sent as 8613800000014"}',
}
OTHER_NUMBER = "13900000099"
EMAIL = "mei.lin@example.cn"
SMTP_REFUSAL = '550 5.1.1 <"mei.lin"@example.cn> (MEI.LIN@EXAMPLE.CN, mei.lin%40example.cn): user unknown'


def raw_forms(e164: str) -> set[str]:
    """Every spelling of a Chinese mobile number a provider might echo."""
    national = e164.removeprefix("+86")
    spaced = f"{national[:3]} {national[3:7]} {national[7:]}"
    return {e164, national, e164[1:], f"+86 {spaced}", spaced, f"{national[:3]}-{national[3:7]}-{national[7:]}"}


RAW = {form for number in ECHOES for form in raw_forms(number)} | {OTHER_NUMBER}
RAW_EMAIL = {EMAIL, EMAIL.upper(), '"mei.lin"@', "mei.lin%40"}


def cast_csv() -> str:
    rows = [
        {"person_id": f"sms-{i}", "name": f"测试{i}", "phone": phone, "locale": "zh-CN", "region": "CN-FJ"}
        for i, phone in enumerate(ECHOES)
    ]
    rows.append({"person_id": "mail", "name": "林梅", "email": EMAIL, "locale": "zh-CN", "region": "CN-FJ"})
    for row in rows:
        row |= {"birth_date": "1990-01-01", "account_status": "active"}
    return people_csv(rows)


def holdings(ids: list[str]) -> str:
    return "person_id,system,category,since,until\n" + "".join(f"{p},member-db,phone,2022-01-01,\n" for p in ids)


@pytest.fixture
def echoing_servers() -> Iterator[tuple[int, int, int]]:
    """An SMTP server refusing the address with an echo, an SMS gateway refusing each number with an echo."""
    with (
        smtp_sink(reject={EMAIL: SMTP_REFUSAL}) as smtp,
        http_gateway({n: [(400, {})] for n in ECHOES}, bodies=ECHOES) as sms,
        http_gateway() as push,
    ):
        yield smtp.port, sms.port, push.port


@pytest.mark.parametrize("schemes", ["pooled", "apprise"])
def test_provider_echoes_leave_no_raw_contact_in_the_proof_or_the_debug_log(
    workspace: WorkspaceDir, echoing_servers: tuple[int, int, int], schemes: str
) -> None:
    """Given approved notices for four SMS recipients and one email recipient, and providers whose refusals echo
    each recipient (and another subscriber's number) in national, E.164, spaced, dashed, upper-case, quoted and
    %40-encoded forms, when the responder dispatches with --log-level DEBUG and exports the proof of delivery,
    then the refusals are recorded, and neither the proof nor the log holds any raw form of any number or address."""
    ws = workspace
    ids = [f"sms-{i}" for i in range(len(ECHOES))] + ["mail"]
    ws.import_inventory(people=cast_csv(), holdings=holdings(ids), systems=MEMBER_DB_YAML)
    incident_id = open_incident(ws, systems="member-db", categories="phone").id
    ws.ok("assess", incident_id)
    ws.ok("notices", "render", incident_id)
    ws.ok("notices", "approve", incident_id, "--manifest", manifest_of(ws, incident_id), "--reviewer", "Legal")
    smtp, sms, push = echoing_servers
    if schemes == "pooled":
        email_url, sms_url = f"smtppool://127.0.0.1:{smtp}/{{email}}", f"gateway://127.0.0.1:{sms}/sms?to={{phone}}"
    else:
        email_url, sms_url = f"mailto://127.0.0.1:{smtp}/{{email}}", f"json://127.0.0.1:{sms}/sms?:to={{phone}}"
    configure_channels(
        ws.root,
        email=email_url + "?from=security@example.com",
        sms=sms_url,
        push=f"gateway://127.0.0.1:{push}/push?to={{push_token}}",
        retries=1,
    )

    logger = logging.getLogger("incident")
    saved = logger.handlers[:], logger.level
    try:
        dispatched = CliRunner().invoke(
            app, ["--log-level", "DEBUG", "--workspace", str(ws.root), "dispatch", incident_id]
        )
    finally:  # --log-level configures this process's logger: leave it as the next test expects
        logger.handlers[:], logger.level = saved
    proof = ws.ok("deliveries", incident_id) + ws.ok("deliveries", incident_id, "--format", "jsonl")

    assert "DEBUG incident.dispatch" in dispatched.output, dispatched.output
    assert "invalid number" in proof and "user unknown" in proof, proof
    everything = proof + dispatched.output
    leaked = sorted(form for form in RAW if form in everything)
    leaked += sorted(form for form in RAW_EMAIL if form.lower() in everything.lower())
    assert leaked == [], everything
