"""Issue 12, High 2: a stale approval no longer deadlocks an incident that is already sending.

Given 60 people being notified over a real SMTP server and real SMS and push gateways on 127.0.0.1, where the
SMS gateway refuses 5 numbers (their push fallback is pending) and the mail server refuses 4 addresses (their SMS
fallback is pending), when something makes the approval stale while the incident is notifying, then the 9
deliveries bound to the approved render still go out; a re-render and its approval are legal while notifying and
apply to what is not yet sent, while what was sent stays proven against the approval that covered it; a
re-assessment while notifying plans the people it finds and cancels, with a reason, what is left for the people
it no longer finds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from rawdb import connect
from servers import gateway as http_gateway
from servers import smtp_sink
from support import WorkspaceDir, manifest_of, people_csv
from test_dispatch import Dispatch, Member, Servers, approve_story, holdings_csv

REVIEWER = "Legal (Li Na)"
REJECTED = "550 5.1.1 Mailbox unavailable"
HELPLINE = "Our helpline answers day and night on 4001577888."

REACHED = tuple(Member(f"ok{i:02d}", f"Okay {i}", "en", phone=f"+44791113{i:04d}", push=f"tok{i}") for i in range(51))
PUSHED = tuple(Member(f"pf{i}", f"Push Fallback {i}", "en", phone=f"+44791114{i:04d}", push=f"pf{i}") for i in range(5))
MAILED = tuple(
    Member(f"mf{i}", f"Mail Fallback {i}", "en", email=f"mf{i}@example.com", phone=f"+4479111{i:05d}") for i in range(4)
)
CAST = REACHED + PUSHED + MAILED
NEWCOMER = Member("zz-late", "Late Find", "en", phone="+447911160001")


@dataclass
class Sending(Dispatch):
    """An incident notifying its 60 people: 51 reached by SMS, 5 waiting on push, 4 waiting on SMS."""

    def manifest(self) -> str:
        return manifest_of(self.ws, self.id)

    def status(self) -> str:
        return str(self.ws.json("show", self.id)["status"])

    def texts(self, gateway_requests: list, people: tuple[Member, ...], channel: str) -> dict[str, str]:
        address = {m.push if channel == "push" else m.phone: m.person_id for m in people}
        return {address[r.to]: r.body["message"] for r in gateway_requests if r.to in address}

    def proof(self) -> list[dict]:
        return self.attempts()


@pytest.fixture
def sending(workspace: WorkspaceDir) -> Iterator[Sending]:
    """The 60 people after `dispatch --channel sms` and `dispatch --channel email`: 9 fallbacks pending."""
    sms_script = {m.phone: [(400, {})] for m in PUSHED}
    rejected = {m.email: REJECTED for m in MAILED}
    with smtp_sink(reject=rejected) as smtp, http_gateway(sms_script) as sms, http_gateway() as push:
        d = approve_story(workspace, CAST, Servers(smtp, sms, push))
        d.ws.ok("dispatch", d.id, "--channel", "sms")
        d.ws.ok("dispatch", d.id, "--channel", "email")
        states = d.states()
        assert sum(s == "sent" for s in states.values()) == 51 and len(states) == 60
        waiting = [m.person_id for m in PUSHED + MAILED]
        assert {p: states[p] for p in waiting} == dict.fromkeys(waiting, "pending")
        yield Sending(d.ws, d.id, d.servers)


# ---- what makes an approval stale while notifying -------------------------------------------------------------


def log_an_action(d: Sending) -> None:
    d.ws.ok("log", d.id, "重置了全部受影响账号的密码", "--en", "Reset the passwords of every affected account")


def edit_incident_toml(d: Sending) -> None:
    path = d.ws.root / "incident.toml"
    path.write_text(path.read_text(encoding="utf-8").replace('"4001577888"', '"4001577999"', 1), encoding="utf-8")


def edit_a_template(d: Sending) -> None:
    override(d.ws, "en/push.txt.j2", packaged("en/push.txt.j2").rstrip("\n") + f" {HELPLINE}\n")


def delete_the_manifest(d: Sending) -> None:
    (d.ws.root / "review" / d.id / "manifest.json").unlink()


def override(ws: WorkspaceDir, name: str, text: str) -> None:
    path = ws.root / "notices" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def packaged(name: str) -> str:
    from test_dispatch import REPO

    return (REPO / "notices" / name).read_text(encoding="utf-8")


STALE_CAUSES: list[tuple[Callable[[Sending], None], str]] = [
    (log_an_action, "the incident facts or logged actions changed"),
    (edit_incident_toml, "the organisation details in incident.toml changed"),
    (edit_a_template, "template en/push.txt.j2 changed"),
    (delete_the_manifest, "rendered notices in the database differ from the approved manifest"),
]


@pytest.mark.parametrize(("cause", "named"), STALE_CAUSES, ids=[c.__name__ for c, _ in STALE_CAUSES])
def test_a_stale_approval_while_notifying_lets_every_bound_delivery_finish(
    sending: Sending, cause: Callable[[Sending], None], named: str
) -> None:
    """Given 9 fallbacks pending, when the approval turns stale (a logged action, an incident.toml edit, a template
    edit or a deleted manifest.json) and the responder previews and runs dispatch, then the preview exits 0 showing
    the 9 and why new plans are blocked, and dispatch sends all 9 with the approved text: the incident is notified."""
    d = sending
    approved_push = {m.person_id: notice_text(d, m, "push") for m in PUSHED}
    cause(d)

    preview = d.ws.run("dispatch", d.id, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "push: 5" in preview.stdout and "sms: 4" in preview.stdout, preview.stdout
    assert "would send 9 messages now" in preview.stdout
    assert f"new plans are blocked: the approval is stale: {named}" in preview.stderr, preview.stderr
    assert d.servers.push.requests == []

    result = d.ws.run("dispatch", d.id)
    assert result.exit_code == 0, result.output
    assert named in result.stderr and "nothing new is planned" in result.stderr, result.stderr
    assert d.texts(d.servers.push.requests, PUSHED, "push") == approved_push
    assert sorted(r.to for r in d.servers.sms.requests if r.to in {m.phone for m in MAILED}) == [
        m.phone for m in MAILED
    ]
    assert set(d.states().values()) == {"sent"}
    assert d.status() == "notified"


def notice_text(d: Sending, member: Member, channel: str) -> str:
    shown = d.ws.json("notices", "show", d.id, "--person", member.person_id, "--channel", channel)
    return str(shown[0]["body"])


# ---- re-render and re-approve while notifying -----------------------------------------------------------------


def test_a_re_render_approved_while_notifying_reaches_what_is_not_yet_sent_and_the_proof_keeps_both(
    sending: Sending,
) -> None:
    """Given 9 fallbacks pending, when a lawyer edits the push and SMS templates and the responder re-renders while
    notifying, then the status stays notifying and `show` says the re-render awaits approval for 9 deliveries; the
    4 SMS fallbacks still go out meanwhile with the approved text; after the approval, the 5 pushes arrive at the
    gateway with the new sentence; the proof names for every attempt the sha256 of the notice it sent and the
    manifest that covered it, and `audit verify` passes."""
    d = sending
    first_manifest = d.manifest()
    for name in ("en/push.txt.j2", "en/sms.txt.j2"):
        override(d.ws, name, packaged(name).rstrip("\n") + f" {HELPLINE}\n")

    rendered = d.ws.ok("notices", "render", d.id)
    second_manifest = rendered.split("manifest sha256: ")[1].split()[0]
    assert second_manifest != first_manifest and "is notifying" in rendered, rendered
    assert d.status() == "notifying"
    shown = d.ws.ok("show", d.id)
    assert "status:     notifying — re-render awaiting approval: 9 deliveries will use it" in shown, shown
    assert "re-render awaiting approval: 9 deliveries will use it" in d.ws.run("status").stdout

    meanwhile = d.ws.run("dispatch", d.id, "--channel", "sms")
    assert meanwhile.exit_code == 0, meanwhile.output
    assert f"the re-render (manifest {second_manifest[:12]}) is awaiting review" in meanwhile.stderr
    mailed_sms = d.texts(d.servers.sms.requests, MAILED, "sms")
    assert len(mailed_sms) == 4 and not any(HELPLINE in text for text in mailed_sms.values()), mailed_sms
    assert "5 deliveries will use it" in d.ws.ok("show", d.id)

    d.ws.ok("notices", "approve", d.id, "--manifest", second_manifest, "--reviewer", REVIEWER)
    assert d.status() == "notifying"
    out = d.ws.ok("dispatch", d.id)
    assert "5 deliveries not yet sent now carry the newly approved notices" in out, out
    pushed = d.texts(d.servers.push.requests, PUSHED, "push")
    assert len(pushed) == 5 and all(HELPLINE in text for text in pushed.values()), pushed
    assert pushed == {m.person_id: notice_text(d, m, "push") for m in PUSHED}, "the new approved text, exactly"
    assert d.status() == "notified" and set(d.states().values()) == {"sent"}

    proof = d.proof()
    sent = [a for a in proof if a["outcome"] == "sent"]
    assert len(sent) == 60 and all(a["notice_sha256"] and a["approved_by"] == REVIEWER for a in proof)
    by_manifest = {a["person_id"]: a["manifest_sha256"] for a in sent}
    assert {p for p, m in by_manifest.items() if m == second_manifest} == {m.person_id for m in PUSHED}
    assert all(by_manifest[m.person_id] == first_manifest for m in REACHED + MAILED)
    with connect(d.ws.root) as db:
        stored = dict(
            ((person, channel, render), sha)
            for person, channel, render, sha in db.execute(
                "SELECT n.person_id, n.channel, r.manifest_hash, n.sha256 FROM notice n "
                "JOIN render r ON r.id = n.render_id"
            )
        )
    for a in proof:  # each attempt's hash is that of a notice row kept in the render its manifest names
        assert stored[(a["person_id"], a["channel"], a["manifest_sha256"])] == a["notice_sha256"], a
    assert f"{d.id}: ok" in d.ws.ok("audit", "verify", d.id)


def test_a_rejected_re_render_while_notifying_leaves_the_approved_notices_sending(sending: Sending) -> None:
    """Given a re-render while notifying, when legal rejects it, then the status stays notifying and dispatch
    still sends the 9 pending fallbacks with the approved text."""
    d = sending
    approved = {m.person_id: notice_text(d, m, "push") for m in PUSHED}
    override(d.ws, "en/push.txt.j2", packaged("en/push.txt.j2").rstrip("\n") + f" {HELPLINE}\n")
    d.ws.ok("notices", "render", d.id)
    d.ws.ok("notices", "reject", d.id, "--reviewer", REVIEWER, "--comment", "the helpline is not staffed yet")
    assert d.status() == "notifying"
    result = d.ws.run("dispatch", d.id)
    assert result.exit_code == 0 and "is rejected" in result.stderr, result.output
    assert d.texts(d.servers.push.requests, PUSHED, "push") == approved
    assert d.status() == "notified"


# ---- re-assessment while notifying ----------------------------------------------------------------------------


def reassess_with_a_newcomer_and_one_person_less(d: Sending) -> str:
    """The inventory team finds one more person in the breached table, and finds that one of the people waiting
    for a push was recorded there by mistake (there is no command to withdraw a holding: the correction is made
    in the inventory's own database rows). Returns the withdrawn person's id."""
    d.ws.import_inventory(people=people_csv([NEWCOMER.row()]), holdings=holdings_csv((NEWCOMER,)), systems=None)
    withdrawn = PUSHED[0].person_id
    with connect(d.ws.root) as db:
        db.execute("DELETE FROM holding WHERE person_id = ?", (withdrawn,))
    d.ws.ok("assess", d.id, "--reassess")
    return withdrawn


def test_a_reassessment_while_notifying_plans_the_newcomer_and_cancels_the_withdrawn_with_a_reason(
    sending: Sending,
) -> None:
    """Given 9 fallbacks pending, when a re-assessment finds one more person and one fewer, then the status stays
    notifying, the withdrawn person's pending push is cancelled with a reason (their failed SMS stays in the
    proof), the dry-run shows the 8 bound deliveries and that new plans wait for a re-render; after re-render and
    approval, dispatch notifies the newcomer by SMS, and `audit verify` passes."""
    d = sending
    withdrawn = reassess_with_a_newcomer_and_one_person_less(d)
    assert d.status() == "notifying"
    with connect(d.ws.root) as db:
        row = db.execute("SELECT state, cancel_reason FROM delivery WHERE person_id = ?", (withdrawn,)).fetchone()
    assert tuple(row) == ("cancelled", "no longer affected after re-assessment: nothing more is sent")
    assert [a["outcome"] for a in d.proof() if a["person_id"] == withdrawn] == ["permanent"]

    preview = d.ws.run("dispatch", d.id, "--dry-run")
    assert preview.exit_code == 0, preview.output
    assert "would send 8 messages now" in preview.stdout, preview.stdout
    assert "the affected set (re-assessed) changed" in preview.stderr
    assert "1 people found since are not planned yet" in d.ws.ok("show", d.id)

    rendered = d.ws.ok("notices", "render", d.id)
    d.ws.ok(
        "notices",
        "approve",
        d.id,
        "--manifest",
        rendered.split("manifest sha256: ")[1].split()[0],
        "--reviewer",
        REVIEWER,
    )
    assert "would send 9 messages now" in d.ws.ok("dispatch", d.id, "--dry-run")
    d.ws.ok("dispatch", d.id)
    assert len(d.servers.sms.received_for(NEWCOMER.phone)) == 1
    assert d.servers.push.received_for(PUSHED[0].push) == []
    states = d.states()
    assert states[NEWCOMER.person_id] == "sent" and states[withdrawn] == "cancelled"
    assert sum(s == "sent" for s in states.values()) == 60
    assert d.status() == "notified"
    assert f"{d.id}: ok" in d.ws.ok("audit", "verify", d.id)


def test_a_worker_applies_an_approval_made_while_notifying_like_dispatch(sending: Sending) -> None:
    """Given 9 fallbacks pending, a re-assessment with a newcomer and one person less, and a template edit, when
    legal approves the re-render while notifying and a `worker` serves the incident, then the 4 pending pushes
    carry the new text, the newcomer is planned and notified, the withdrawn person gets nothing, and the proof
    and audit chain hold (this file also runs on PostgreSQL)."""
    d = sending
    withdrawn = reassess_with_a_newcomer_and_one_person_less(d)
    override(d.ws, "en/push.txt.j2", packaged("en/push.txt.j2").rstrip("\n") + f" {HELPLINE}\n")
    rendered = d.ws.ok("notices", "render", d.id)
    manifest = rendered.split("manifest sha256: ")[1].split()[0]
    d.ws.ok("notices", "approve", d.id, "--manifest", manifest, "--reviewer", REVIEWER)

    out = d.ws.ok("worker", "--incident", d.id)

    assert "newly approved notices: 8 moved to them, 1 people planned" in out, out
    pushed = d.texts(d.servers.push.requests, PUSHED, "push")
    assert set(pushed) == {m.person_id for m in PUSHED[1:]} and all(HELPLINE in t for t in pushed.values()), pushed
    assert len(d.servers.sms.received_for(NEWCOMER.phone)) == 1
    newcomer = [(a["outcome"], a["manifest_sha256"]) for a in d.proof() if a["person_id"] == NEWCOMER.person_id]
    assert newcomer == [("sent", manifest)]
    states = d.states()
    assert states[withdrawn] == "cancelled" and sum(s == "sent" for s in states.values()) == 60
    assert d.status() == "notified"
    assert f"{d.id}: ok" in d.ws.ok("audit", "verify", d.id)


def test_a_reassessment_after_everyone_was_notified_brings_the_newcomer_in(sending: Sending) -> None:
    """Given an incident whose 60 people are all notified, when a re-assessment finds one more, then the incident
    is notifying again (not notified while someone is untold), and after a re-render and its approval, dispatch
    notifies the newcomer and the incident is notified once more."""
    d = sending
    d.ws.ok("dispatch", d.id)
    assert d.status() == "notified"
    d.ws.import_inventory(people=people_csv([NEWCOMER.row()]), holdings=holdings_csv((NEWCOMER,)), systems=None)
    d.ws.ok("assess", d.id, "--reassess")
    assert d.status() == "notifying"
    stale = d.ws.run("dispatch", d.id)
    assert stale.exit_code == 0 and "the affected set (re-assessed) changed" in stale.stderr, stale.output
    assert d.status() == "notifying", "not notified while the newcomer is untold"

    rendered = d.ws.ok("notices", "render", d.id)
    manifest = rendered.split("manifest sha256: ")[1].split()[0]
    d.ws.ok("notices", "approve", d.id, "--manifest", manifest, "--reviewer", REVIEWER)
    out = d.ws.ok("dispatch", d.id)
    assert "every person is notified" in out, out
    assert len(d.servers.sms.received_for(NEWCOMER.phone)) == 1
    assert d.states()[NEWCOMER.person_id] == "sent" and d.status() == "notified"
    assert f"{d.id}: ok" in d.ws.ok("audit", "verify", d.id)


def test_a_person_held_back_by_their_own_data_is_notified_once_fixed_while_notifying(workspace: WorkspaceDir) -> None:
    """Given a person held back (their display name carries someone else's address) while the others were sent,
    when the inventory team corrects the name and the responder re-assesses, re-renders and approves while
    notifying, then dispatch reaches the person who was held back."""
    grace = Member("grace", "Grace Hopper", "en", email="grace@example.com")
    mallory = Member("mallory", "Mallory grace@example.com", "en", email="mallory@example.com")
    with smtp_sink() as smtp, http_gateway() as sms, http_gateway() as push:
        d = approve_story(workspace, (grace, mallory), Servers(smtp, sms, push))
        d.ws.ok("dispatch", d.id)
        assert d.states() == {"grace": "sent", "mallory": "unreachable"} and len(smtp.mails) == 1
        with connect(d.ws.root) as db:  # the inventory's own correction (there is no command to rename a person)
            db.execute("UPDATE person SET name = 'Mallory Smith' WHERE person_id = 'mallory'")
        d.ws.ok("assess", d.id, "--reassess")
        rendered = d.ws.ok("notices", "render", d.id)
        assert "held back" not in rendered, rendered
        manifest = rendered.split("manifest sha256: ")[1].split()[0]
        d.ws.ok("notices", "approve", d.id, "--manifest", manifest, "--reviewer", REVIEWER)
        d.ws.ok("dispatch", d.id)
        assert smtp.mails[-1].rcpt_tos == [mallory.email] and "Mallory Smith" in smtp.mails[-1].text()
    assert d.states() == {"grace": "sent", "mallory": "sent"}


def test_a_delivery_in_flight_when_the_new_render_is_approved_keeps_the_notice_it_is_sending(
    sending: Sending,
) -> None:
    """Given 9 fallbacks pending and a re-render, when a worker on another host has claimed one push (its attempt
    is in flight) at the moment legal approves the re-render, then dispatch moves the 8 others to the new notices
    and leaves that one on the notice it is sending; when its call returns, the proof names the old manifest for
    it and the new one for the other pushes."""
    from incident.config import find_workspace
    from incident.db import unit_of_work
    from incident.dispatch import transports
    from incident.dispatch.claims import claim, settle

    d = sending
    first_manifest = d.manifest()
    override(d.ws, "en/push.txt.j2", packaged("en/push.txt.j2").rstrip("\n") + f" {HELPLINE}\n")
    rendered = d.ws.ok("notices", "render", d.id)
    second_manifest = rendered.split("manifest sha256: ")[1].split()[0]
    ws = find_workspace(d.ws.root)
    with unit_of_work(ws) as session:  # another host's worker, mid-call
        (busy,) = claim(session, d.id, "other-host:4242:1", limit=1, only="push")
    assert HELPLINE not in busy.message.text

    d.ws.ok("notices", "approve", d.id, "--manifest", second_manifest, "--reviewer", REVIEWER)
    out = d.ws.ok("dispatch", d.id, "--enqueue-only")
    assert "8 deliveries not yet sent now carry the newly approved notices" in out, out
    with unit_of_work(ws) as session:  # its call returns: delivered
        settle(session, d.id, [(busy, transports.Outcome(transports.SENT, "ok"))], configs={})
    d.ws.ok("dispatch", d.id)
    pushed = d.texts(d.servers.push.requests, PUSHED, "push")
    assert busy.person_id not in pushed and len(pushed) == 4 and all(HELPLINE in t for t in pushed.values())
    manifests = {a["person_id"]: a["manifest_sha256"] for a in d.proof() if a["outcome"] == "sent"}
    assert manifests[busy.person_id] == first_manifest
    assert {manifests[m.person_id] for m in PUSHED if m.person_id != busy.person_id} == {second_manifest}
    assert f"{d.id}: ok" in d.ws.ok("audit", "verify", d.id)
