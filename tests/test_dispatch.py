"""Issue 4: approved notices reach people over real SMTP and HTTP servers, with retries, fallback and proof.

The servers run on 127.0.0.1 and answer from a script per recipient, so each person of the cast walks a
known path: accepted, rejected (550 → SMS), deferred (451 → retry), a flaky gateway (500 → retry), a
permanent refusal (400 → push), a rate limit (429 with Retry-After), a letter, or nobody to reach.
"""

from __future__ import annotations

import csv
import io
import json
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from rawdb import connect
from servers import Gateway, SmtpSink, configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import MEMBER_DB_YAML, WorkspaceDir, manifest_of, open_incident, people_csv

from incident import clock
from incident.config import find_workspace
from incident.db import unit_of_work
from incident.dispatch import transports
from incident.dispatch.channels import ChannelConfig, next_attempt_at
from incident.dispatch.claims import Work, claim, next_state, settle
from incident.dispatch.planning import plan
from incident.incidents.models import get
from incident.notices.approval import current_render

REPO = Path(__file__).resolve().parents[1]
SENDER = "security@example.com"


@dataclass(frozen=True)
class Member:
    """A person of the cast: their contacts as stored, and how the servers will treat them."""

    person_id: str
    name: str
    locale: str = "zh-CN"
    email: str = ""
    phone: str = ""
    push: str = ""
    address: str = ""
    birth: str = "1990-01-01"
    guardian: str = ""
    guardian_email: str = ""
    guardian_phone: str = ""

    def row(self) -> dict[str, str]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "push_token": self.push,
            "locale": self.locale,
            "region": "CN-FJ" if self.locale == "zh-CN" else "GB",
            "birth_date": self.birth,
            "guardian_name": self.guardian,
            "guardian_email": self.guardian_email,
            "guardian_phone": self.guardian_phone,
            "postal_address": self.address,
            "account_status": "active",
        }


ADA = Member("ada", "Ada Lovelace", "en", "ada@example.com", "+447911100001", "tok-ada")  # email accepted
BO = Member("bo", "柏林", email="bo@example.cn", phone="+8613800000002")  # 550 → SMS
CAI = Member("cai", "蔡文", email="cai@example.cn")  # 451 once → retry → accepted
DAN = Member("dan", "邓超", phone="+8613800000004")  # SMS 500 once → retry → 200
EVE = Member("eve", "Eve Moneypenny", "en", "eve@example.com", "+447911100005", "tok-eve")  # 550 → 400 → push
FAY = Member("fay", "范冰", phone="+8613800000006")  # SMS 429 Retry-After: 1 once → 200
GUS = Member("gus", "顾城", email="gus@example.cn", address="福建省福州市鼓楼区东街7号")  # 550 → letter
HAL = Member("hal", "韩梅", address="四川省成都市锦江区红星路8号")  # postal only → letter
IVY = Member("ivy", "Ivy Green", "en", "ivy@example.com", "+447911100009")  # 550 → 400 → unreachable
JON = Member("jon", "金鸣")  # no contact at all → unreachable
KID = Member(
    "kid",
    "小宝",
    email="kid@example.cn",
    phone="+8613800000011",
    birth="2016-06-01",
    guardian="宝妈",
    guardian_email="guardian.kid@example.cn",
    guardian_phone="+8613900000011",
)  # told via the guardian
CAST = (ADA, BO, CAI, DAN, EVE, FAY, GUS, HAL, IVY, JON, KID)

REJECTED = "550 5.1.1 Mailbox unavailable"
SMTP_SCRIPT = {"reject": {m.email: REJECTED for m in (BO, EVE, GUS, IVY)}, "defer": {CAI.email: 1}}
SMS_SCRIPT = {
    DAN.phone: [(500, {}), (200, {})],
    EVE.phone: [(400, {})],
    IVY.phone: [(400, {})],
    FAY.phone: [(429, {"Retry-After": "1"}), (200, {})],
}


def holdings_csv(cast: tuple[Member, ...]) -> str:
    rows = ["person_id,system,category,since,until"]
    rows += [f"{m.person_id},member-db,{c},2022-01-01," for m in cast for c in ("password", "phone")]
    return "\n".join(rows) + "\n"


@dataclass
class Servers:
    smtp: SmtpSink
    sms: Gateway
    push: Gateway

    def received(self) -> int:
        return len(self.smtp.mails) + len(self.sms.requests) + len(self.push.requests)


@dataclass
class Dispatch:
    """An incident whose notices legal approved, with its channels pointed at the test servers."""

    ws: WorkspaceDir
    id: str
    servers: Servers

    def refs(self) -> dict[str, str]:
        return dict(self.ws.sql("SELECT DISTINCT person_id, ref FROM notice WHERE incident_id = ?", (self.id,)))

    def notice_id(self, member: Member, channel: str) -> str:
        return f"{self.id}.{self.refs()[member.person_id]}.{channel}"

    def attempts(self) -> list[dict[str, Any]]:
        out = self.ws.ok("deliveries", self.id, "--format", "jsonl")
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    def attempts_by_person(self) -> dict[str, list[tuple[str, str, str]]]:
        """person -> [(channel, outcome, first words of the reason)] in the order they were made."""
        out: dict[str, list[tuple[str, str, str]]] = {}
        for a in self.attempts():
            reason = " ".join((a["reason"] or "").split()[:2])
            out.setdefault(a["person_id"], []).append((a["channel"], a["outcome"], reason))
        return out

    def states(self) -> dict[str, str]:
        return dict(self.ws.sql("SELECT person_id, state FROM delivery WHERE incident_id = ?", (self.id,)))


def approve_story(ws: WorkspaceDir, cast: tuple[Member, ...], servers: Servers, *, pooled: bool = True) -> Dispatch:
    """Import the cast, open and assess the incident, render, approve, and configure the channels."""
    ws.import_inventory(people=people_csv([m.row() for m in cast]), holdings=holdings_csv(cast), systems=MEMBER_DB_YAML)
    incident_id = open_incident(ws, systems="member-db", categories="password,phone").id
    ws.ok("assess", incident_id)
    ws.ok("notices", "render", incident_id)
    ws.ok("notices", "approve", incident_id, "--manifest", manifest_of(ws, incident_id), "--reviewer", "Legal (Li Na)")
    smtp, sms, push = servers.smtp.port, servers.sms.port, servers.push.port
    if pooled:
        configure_channels(
            ws.root,
            email=f"smtppool://127.0.0.1:{smtp}/{{email}}?from={SENDER}",
            sms=f"gateway://127.0.0.1:{sms}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{push}/push?to={{push_token}}",
        )
    else:  # apprise's own schemes, classified from apprise's logs
        configure_channels(
            ws.root,
            email=f"mailto://127.0.0.1:{smtp}/{{email}}?from={SENDER}",
            sms=f"json://127.0.0.1:{sms}/sms?:to={{phone}}",
            push=f"json://127.0.0.1:{push}/push?:to={{push_token}}",
        )
    return Dispatch(ws, incident_id, servers)


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def scripted_servers() -> Iterator[Servers]:
    """An SMTP server and SMS and push gateways that answer the cast as the script above says."""
    with smtp_sink(**SMTP_SCRIPT) as smtp, http_gateway(SMS_SCRIPT) as sms, http_gateway() as push:
        yield Servers(smtp, sms, push)


@pytest.fixture
def approved_cast(workspace: WorkspaceDir, scripted_servers: Servers) -> Dispatch:
    """The whole cast, notices approved, channels on smtppool:// and gateway:// to the scripted servers."""
    return approve_story(workspace, CAST, scripted_servers)


@pytest.fixture
def dispatched_cast(approved_cast: Dispatch) -> Dispatch:
    """The same, after one `incident dispatch`."""
    out = approved_cast.ws.ok("dispatch", approved_cast.id)
    assert "deliveries: letter 2, sent 7, unreachable 2" in out, out
    return approved_cast


# ---- the whole cast through real servers -------------------------------------------------------------


def test_each_person_walks_their_fallback_chain_and_every_attempt_is_recorded(dispatched_cast: Dispatch):
    d = dispatched_cast
    assert d.attempts_by_person() == {
        "ada": [("email", "sent", "")],
        "bo": [("email", "permanent", "SMTP 550"), ("sms", "sent", "")],
        "cai": [("email", "transient", "SMTP 451"), ("email", "sent", "")],
        "dan": [("sms", "transient", "HTTP 500"), ("sms", "sent", "")],
        "eve": [("email", "permanent", "SMTP 550"), ("sms", "permanent", "HTTP 400"), ("push", "sent", "")],
        "fay": [("sms", "transient", "HTTP 429"), ("sms", "sent", "")],
        "gus": [("email", "permanent", "SMTP 550")],
        "ivy": [("email", "permanent", "SMTP 550"), ("sms", "permanent", "HTTP 400")],
        "kid": [("email", "sent", "")],
    }
    assert d.states() == {
        "ada": "sent",
        "bo": "sent",
        "cai": "sent",
        "dan": "sent",
        "eve": "sent",
        "fay": "sent",
        "kid": "sent",
        "gus": "letter",
        "hal": "letter",
        "ivy": "unreachable",
        "jon": "unreachable",
    }
    shown = d.ws.json("show", d.id)
    assert shown["status"] == "notifying", "two letters are queued, not posted: not everyone is told"
    assert shown["dispatch"]["deliveries"] == {"sent": 7, "letter": 2, "unreachable": 2}
    assert shown["dispatch"]["channels"]["email"] == {"sent": 3, "permanent": 4, "transient": 1}
    assert shown["dispatch"]["channels"]["sms"] == {"sent": 3, "permanent": 2, "transient": 2}
    assert "unreachable 2" in d.ws.ok("show", d.id)
    reasons = {a["person_id"]: a["reason"] for a in d.attempts() if a["outcome"] != "sent"}
    assert "Mailbox unavailable" in reasons["gus"] and "Too Many Requests" in reasons["fay"]


def test_the_servers_received_exactly_the_approved_messages_one_by_one(dispatched_cast: Dispatch):
    d = dispatched_cast
    smtp, sms, push = d.servers.smtp, d.servers.sms, d.servers.push
    refs = d.refs()
    assert sorted(m.rcpt_tos[0] for m in smtp.mails) == sorted([ADA.email, CAI.email, KID.guardian_email])
    for member, address in ((ADA, ADA.email), (CAI, CAI.email), (KID, KID.guardian_email)):
        (mail,) = smtp.received_for(address)
        assert mail.rcpt_tos == [address] and mail.mail_from == SENDER
        assert mail.notice_id == d.notice_id(member, "email")
        assert refs[member.person_id] in mail.text() and refs[member.person_id] in mail.html()
        assert mail.message["To"] == address
    assert [answer[:3] for addr, answer in smtp.rcpt_log if addr == CAI.email] == ["451", "250"]
    assert {addr for addr, answer in smtp.rcpt_log if answer.startswith("550")} == {
        BO.email,
        EVE.email,
        GUS.email,
        IVY.email,
    }
    expected_sms = [(BO, [200]), (DAN, [500, 200]), (EVE, [400]), (FAY, [429, 200]), (IVY, [400])]
    assert sorted({r.to for r in sms.requests}) == sorted(m.phone for m, _ in expected_sms)
    for member, statuses in expected_sms:
        got = sms.received_for(member.phone)
        assert [r.status for r in got] == statuses, member.person_id
        for r in got:
            assert r.path == "/sms" and r.headers["Idempotency-Key"] == d.notice_id(member, "sms")
            assert refs[member.person_id] in r.body["message"] and r.body["notice_id"] == d.notice_id(member, "sms")
    (pushed,) = push.requests
    assert pushed.path == "/push" and pushed.to == EVE.push and pushed.status == 200
    assert pushed.headers["Idempotency-Key"] == d.notice_id(EVE, "push") and refs["eve"] in pushed.body["message"]


def test_a_childs_notice_goes_to_the_guardians_contacts_only(dispatched_cast: Dispatch):
    smtp, sms = dispatched_cast.servers.smtp, dispatched_cast.servers.sms
    (mail,) = smtp.received_for(KID.guardian_email)
    assert f"尊敬的{KID.guardian}" in mail.text() and f"用户{KID.name}（不满十四周岁）的监护人" in mail.text()
    seen = [addr for addr, _ in smtp.rcpt_log] + [r.to for r in sms.requests]
    assert KID.email not in seen and KID.phone not in seen


def test_the_retry_after_of_a_429_is_waited_for(dispatched_cast: Dispatch):
    first, second = [a for a in dispatched_cast.attempts() if a["person_id"] == "fay"]
    waited = datetime.fromisoformat(second["started"]) - datetime.fromisoformat(first["finished"])
    assert waited >= timedelta(seconds=1), waited


def test_the_proof_of_delivery_never_shows_a_full_address(dispatched_cast: Dispatch):
    d = dispatched_cast
    for fmt in ("jsonl", "csv"):
        proof = d.ws.ok("deliveries", d.id, "--format", fmt)
        for member in CAST:
            for secret in (member.email, member.phone, member.push, member.guardian_email, member.guardian_phone):
                assert not secret or secret not in proof, f"{secret} in the {fmt} proof"
    masked = {a["person_id"]: a["address"] for a in d.attempts() if a["outcome"] == "sent"}
    assert masked["ada"] == "a***@example.com" and masked["kid"] == "g***@example.cn"
    assert masked["eve"] == "tok-****" and masked["dan"] == "+8613*****0004"
    rows = list(csv.DictReader(io.StringIO(d.ws.ok("deliveries", d.id, "--format", "csv"))))
    assert len(rows) == len(d.attempts()) and all(r["notice_sha256"] for r in rows)


def test_postal_only_people_and_those_every_channel_failed_get_a_letter(dispatched_cast: Dispatch):
    d = dispatched_cast
    out = d.ws.ok("letters", d.id)
    assert "wrote 2 letters" in out
    folder = d.ws.root / "letters" / d.id
    refs = d.refs()
    with (folder / "mail-merge.csv").open(encoding="utf-8", newline="") as fh:
        merge = list(csv.DictReader(fh))
    assert [(r["ref"], r["name"], r["postal_address"]) for r in merge] == [
        (refs["gus"], GUS.name, GUS.address),
        (refs["hal"], HAL.name, HAL.address),
    ]
    for member in (GUS, HAL):
        letter = (folder / f"{refs[member.person_id]}.html").read_text(encoding="utf-8")
        assert member.address in letter and refs[member.person_id] in letter
        assert 'data-element="advice"' in letter
    assert d.states()["gus"] == d.states()["hal"] == "written", "written is not posted: nobody is told yet"
    assert [a["outcome"] for a in d.attempts() if a["channel"] == "letter"] == ["printed", "printed"]
    assert "wrote 0 letters" in d.ws.ok("letters", d.id), "a letter is written once"
    assert d.ws.json("show", d.id)["status"] == "notifying"
    d.ws.ok("letters", d.id, "--posted-at", datetime.now(UTC).isoformat())  # the mail house's confirmation
    assert d.states()["gus"] == d.states()["hal"] == "posted"
    assert d.ws.json("show", d.id)["status"] == "notified"


def test_running_dispatch_again_sends_nothing_more(dispatched_cast: Dispatch):
    d = dispatched_cast
    before = (
        len(d.servers.smtp.mails),
        len(d.servers.smtp.rcpt_log),
        len(d.servers.sms.requests),
        len(d.servers.push.requests),
        len(d.attempts()),
    )
    out = d.ws.ok("dispatch", d.id)
    assert "attempts: none" in out, out
    assert (
        len(d.servers.smtp.mails),
        len(d.servers.smtp.rcpt_log),
        len(d.servers.sms.requests),
        len(d.servers.push.requests),
        len(d.attempts()),
    ) == before


# ---- refusing, previewing, and limiting a run ---------------------------------------------------------


def test_dispatch_refuses_notices_legal_has_not_approved(workspace: WorkspaceDir, scripted_servers: Servers):
    d = approve_story(workspace, (ADA, BO), scripted_servers)
    d.ws.ok("notices", "render", d.id)  # a new render: awaiting review again
    d.ws.refuse("dispatch", d.id, error="notices are not approved (awaiting review)")
    d.ws.ok("notices", "approve", d.id, "--manifest", manifest_of(d.ws, d.id), "--reviewer", "Legal (Li Na)")
    d.ws.ok("log", d.id, "重置了全部受影响账号的密码", "--en", "Reset the passwords of every affected account")
    d.ws.refuse("dispatch", d.id, error="the approval is stale: the incident facts or logged actions changed")
    assert d.servers.received() == 0 and d.attempts() == []


def test_a_dry_run_says_what_would_go_out_and_sends_nothing(approved_cast: Dispatch):
    d = approved_cast
    out = d.ws.ok("dispatch", d.id, "--dry-run")
    assert [line.split() for line in out.splitlines()] == [
        ["email:", "7"],
        ["3", "en|email|self|password,phone"],
        ["1", "zh-CN|email|guardian|password,phone"],
        ["3", "zh-CN|email|self|password,phone"],
        ["sms:", "2"],
        ["2", "zh-CN|sms|self|password,phone"],
        ["would", "send", "9", "messages", "now", "(nothing", "was", "sent)"],
    ]
    only_sms = d.ws.ok("dispatch", d.id, "--dry-run", "--channel", "sms")
    assert "email" not in only_sms and "would send 2 messages" in only_sms
    assert d.servers.received() == 0 and d.servers.smtp.rcpt_log == []
    assert d.attempts() == [] and d.states() == {}


def test_channel_sms_sends_only_sms_and_a_later_run_finishes_the_rest(approved_cast: Dispatch):
    d = approved_cast
    d.ws.ok("dispatch", d.id, "--channel", "sms")
    assert d.servers.smtp.rcpt_log == [] and d.servers.push.requests == []
    assert sorted({r.to for r in d.servers.sms.requests}) == sorted([DAN.phone, FAY.phone])
    assert {a["channel"] for a in d.attempts()} == {"sms"}
    assert d.states()["ada"] == "pending" and d.states()["dan"] == "sent"
    d.ws.ok("dispatch", d.id)
    assert d.states()["ada"] == "sent" and len(d.servers.smtp.mails) == 3
    assert [r.status for r in d.servers.sms.received_for(DAN.phone)] == [500, 200], "no SMS sent twice"


def test_a_playbook_can_exclude_email(workspace: WorkspaceDir, scripted_servers: Servers):
    """The mailbox credentials were part of the breach: do not email anyone."""
    book = (REPO / "playbooks" / "database-exfiltration.yaml").read_text(encoding="utf-8")
    assert "exclude_channels: []" in book
    (workspace.root / "playbooks").mkdir()
    (workspace.root / "playbooks" / "database-exfiltration.yaml").write_text(
        book.replace("exclude_channels: []", "exclude_channels: [email]"), encoding="utf-8"
    )
    d = approve_story(workspace, (ADA, CAI, GUS, KID), scripted_servers)
    assert d.ws.sql("SELECT COUNT(*) FROM notice WHERE channel = 'email'") == [(0,)]
    d.ws.ok("dispatch", d.id)
    assert d.servers.smtp.rcpt_log == []
    assert sorted(r.to for r in d.servers.sms.requests) == sorted([ADA.phone, KID.guardian_phone])
    assert d.states() == {"ada": "sent", "kid": "sent", "cai": "unreachable", "gus": "letter"}


def test_a_mail_server_that_is_down_is_retried_then_the_notice_falls_back_to_sms(
    workspace: WorkspaceDir, scripted_servers: Servers
):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    d = approve_story(workspace, (BO,), scripted_servers)
    configure_channels(
        d.ws.root,
        email=f"smtppool://127.0.0.1:{dead}/{{email}}?from={SENDER}",
        sms=f"gateway://127.0.0.1:{d.servers.sms.port}/sms?to={{phone}}",
        push=f"gateway://127.0.0.1:{d.servers.push.port}/push?to={{push_token}}",
        retries=2,
    )
    d.ws.ok("dispatch", d.id)
    assert d.attempts_by_person() == {
        "bo": [("email", "transient", "SMTP connect"), ("email", "transient", "SMTP connect"), ("sms", "sent", "")]
    }
    assert "refused" in d.attempts()[0]["reason"].lower()
    assert [r.to for r in d.servers.sms.requests] == [BO.phone]


# ---- apprise's stock schemes against the same servers -------------------------------------------------


def test_apprise_stock_mailto_and_json_schemes_are_classified_from_apprises_logs(
    workspace: WorkspaceDir, scripted_servers: Servers
):
    d = approve_story(workspace, (ADA, BO, CAI, DAN, IVY), scripted_servers, pooled=False)
    d.ws.ok("dispatch", d.id)
    assert d.attempts_by_person() == {
        "ada": [("email", "sent", "")],
        "bo": [("email", "permanent", "SMTP 550"), ("sms", "sent", "")],
        "cai": [("email", "transient", "SMTP 451"), ("email", "sent", "")],
        "dan": [("sms", "transient", "HTTP 500"), ("sms", "sent", "")],
        "ivy": [("email", "permanent", "SMTP 550"), ("sms", "permanent", "HTTP 400")],
    }
    assert sorted(m.rcpt_tos[0] for m in d.servers.smtp.mails) == [ADA.email, CAI.email]
    for member in (ADA, CAI):
        (mail,) = d.servers.smtp.received_for(member.email)
        assert mail.notice_id == d.notice_id(member, "email")
    for r in d.servers.sms.requests:
        member = next(m for m in (BO, DAN, IVY) if m.phone == r.to)
        assert r.headers["Idempotency-Key"] == d.notice_id(member, "sms")
        assert d.refs()[member.person_id] in r.body["message"]
    assert [r.status for r in d.servers.sms.received_for(DAN.phone)] == [500, 200]


# ---- retry timing, with the clock frozen --------------------------------------------------------------

CFG = ChannelConfig("sms", "gateway://x/{phone}", rate=0, concurrency=1, retries=3, backoff=2.0, backoff_max=60.0)


class EdgeOfJitter(random.Random):
    """A random source that always picks one end of the jitter range."""

    def __init__(self, end: str) -> None:
        super().__init__(0)
        self.end = end

    def uniform(self, a: float, b: float) -> float:
        return a if self.end == "low" else b


@pytest.mark.parametrize(("tries", "low", "high"), [(1, 1.0, 3.0), (2, 2.0, 6.0), (3, 4.0, 12.0), (9, 30.0, 90.0)])
def test_backoff_doubles_per_try_with_jitter_and_a_cap(tries: int, low: float, high: float):
    with freeze_time("2026-03-12 10:00:00"):
        now = clock.now()
        assert next_attempt_at(now, CFG, tries, rng=EdgeOfJitter("low")) == now + timedelta(seconds=low)
        assert next_attempt_at(now, CFG, tries, rng=EdgeOfJitter("high")) == now + timedelta(seconds=high)
        for _ in range(50):
            assert now + timedelta(seconds=low) <= next_attempt_at(now, CFG, tries) <= now + timedelta(seconds=high)


def test_retry_after_overrides_the_backoff_exactly():
    with freeze_time("2026-03-12 10:00:00"):
        now = clock.now()
        assert next_attempt_at(now, CFG, 1, retry_after=1.0) == now + timedelta(seconds=1)
        assert next_attempt_at(now, CFG, 3, retry_after=0.0) == now
        assert next_attempt_at(now, CFG, 2, retry_after=120.0) == now + timedelta(seconds=120), (
            "the provider knows best"
        )


def work(
    position: int = 0, tries: int = 0, channels: tuple[str, ...] = ("email", "sms", "push"), has_letter: bool = False
) -> Work:
    message = transports.Message("INC.NREF.x", channels[position], "addr", "subject", "text")
    return Work(1, "p", channels[position], message, "sha", list(channels), position, tries, has_letter)


Out = transports.Outcome


@pytest.mark.parametrize(
    ("item", "outcome", "expected"),
    [
        (
            work(),
            Out("sent", provider_id="250"),
            {"state": "sent", "final_channel": "email", "position": 0, "tries": 1, "after": 0},
        ),
        (work(), Out("transient", "SMTP 451"), {"state": "pending", "position": 0, "tries": 1, "after": "backoff"}),
        (work(tries=1), Out("unknown", "timeout"), {"state": "pending", "position": 0, "tries": 2, "after": "backoff"}),
        (work(tries=2), Out("transient", "SMTP 451"), {"state": "pending", "position": 1, "tries": 0, "after": 0}),
        (work(), Out("permanent", "SMTP 550"), {"state": "pending", "position": 1, "tries": 0, "after": 0}),
        (
            work(position=1),
            Out("transient", "HTTP 429", retry_after=1.0),
            {"state": "pending", "position": 1, "tries": 1, "after": 1.0},
        ),
        (work(position=2), Out("permanent", "HTTP 400"), {"state": "unreachable", "position": 2, "after": 0}),
        (
            work(position=2, has_letter=True),
            Out("permanent", "HTTP 400"),
            {"state": "letter", "position": 2, "after": 0},
        ),
    ],
    ids=[
        "sent",
        "transient-retries",
        "unknown-retries",
        "retries-exhausted-fall-back",
        "permanent-falls-back-now",
        "429-waits-retry-after",
        "last-channel-unreachable",
        "last-channel-letter",
    ],
)
def test_next_state_after_one_outcome(item: Work, outcome: transports.Outcome, expected: dict[str, Any]):
    with freeze_time("2026-03-12 10:00:00"):
        now = clock.now()
        state = next_state(item, outcome, CFG, now=now)
    after = expected.pop("after")
    assert {k: state[k] for k in expected} == expected
    if after == "backoff":
        base = CFG.backoff * 2 ** (state["tries"] - 1)
        assert now + timedelta(seconds=base * 0.5) <= state["next_at"] <= now + timedelta(seconds=base * 1.5)
    else:
        assert state["next_at"] == now + timedelta(seconds=after)
    assert (state["settled_at"] is not None) == (state["state"] != "pending")


def test_a_delivery_waiting_for_retry_after_is_claimed_at_that_instant_not_before(
    workspace: WorkspaceDir, scripted_servers: Servers
):
    d = approve_story(workspace, (DAN, FAY), scripted_servers)
    ws = find_workspace(d.ws.root)
    configs = {"sms": CFG}
    with freeze_time("2026-03-12 10:00:00") as frozen:
        with unit_of_work(ws) as session:
            render = current_render(session, d.id)
            assert render is not None and render.id is not None
            assert plan(session, get(session, d.id), ["email", "sms", "push"], render.id) == 2
        with unit_of_work(ws) as session:
            claimed = {w.person_id: w for w in claim(session, d.id, "test-worker", limit=10)}
        assert set(claimed) == {"dan", "fay"}
        with unit_of_work(ws) as session:
            settle(session, d.id, [(claimed["fay"], Out("transient", "HTTP 429", retry_after=1.0))], configs=configs)
        frozen.tick(timedelta(microseconds=999_999))
        with unit_of_work(ws) as session:
            assert claim(session, d.id, "test-worker", limit=10) == [], "claimed before Retry-After elapsed"
        frozen.tick(timedelta(microseconds=1))
        with unit_of_work(ws) as session:
            assert [w.person_id for w in claim(session, d.id, "test-worker", limit=10)] == ["fay"]
    assert d.servers.received() == 0
    with connect(d.ws.root) as conn:
        outcomes = conn.execute("SELECT person_id, outcome FROM attempt ORDER BY id").fetchall()
    assert outcomes == [("dan", "in-flight"), ("fay", "transient"), ("fay", "in-flight")]
