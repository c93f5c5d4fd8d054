"""Issue 5: the public announcement (substitute notice).

The story: five people were in the breached member database. One has no contact detail at all, and one has
only an email address that bounces, so after dispatch two people are still unreached: the assessment says an
announcement is required and why. The responder renders it in both languages, legal approves exactly that
render, and the responder publishes it to the workspace's public/ folder and to the status-page webhook.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from killed import kill_once_received
from servers import gateway
from snapshots import Snapshot
from support import (
    MEMBER_DB_YAML,
    OpenedIncident,
    WorkspaceDir,
    approve_announcement,
    approve_notices,
    manifest_of,
    open_incident,
    people_csv,
)

from incident.reports.announcement import about
from incident.reports.publishing import owner_gone

CAST = [
    {
        "person_id": "cn-reachable",
        "name": "王芳",
        "email": "wang.fang@example.cn",
        "phone": "13800000001",
        "locale": "zh-CN",
        "region": "CN-FJ",
    },
    {
        "person_id": "ca-reachable",
        "name": "Grace Murphy",
        "email": "grace@example.com",
        "phone": "+14155550100",
        "locale": "en",
        "region": "US-CA",
    },
    {"person_id": "bounces", "name": "Hugo Dubois", "email": "hugo@bounce.example", "locale": "en", "region": "FR"},
    {"person_id": "no-contact", "name": "孙涛", "locale": "zh-CN", "region": "CN-SC"},
    {
        "person_id": "child",
        "name": "李小明",
        "birth_date": "2016-01-01",
        "guardian_name": "李建国",
        "guardian_email": "li.jianguo@example.cn",
        "guardian_phone": "13900000002",
        "locale": "zh-CN",
        "region": "CN-BJ",
    },
]
HOLDINGS = "person_id,system,category,since,until\n" + "".join(
    f"{p['person_id']},member-db,{c},2020-01-01,\n" for p in CAST for c in ("phone", "password")
)
FILES = ("announcement.zh-CN.html", "announcement.zh-CN.md", "announcement.en.html", "announcement.en.md")
OFFICER_EMAIL = "lookjt@163.com"


def assess_story(ws: WorkspaceDir) -> str:
    """The five people imported, an incident on member-db opened, an action logged, and assessed."""
    ws.import_inventory(people=people_csv(CAST), holdings=HOLDINGS, systems=MEMBER_DB_YAML)
    iid = open_incident(ws, systems="member-db", categories="phone,password").id
    ws.ok("log", iid, "轮换了全部数据库凭据", "--en", "Rotated every database credential")
    ws.ok("assess", iid)
    return iid


def dispatch_story(ws: WorkspaceDir) -> str:
    """The same incident after its notices were rendered, approved and dispatched to the file outbox."""
    iid = assess_story(ws)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    return iid


@pytest.fixture(scope="module")
def dispatched_once(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "announce", dispatch_story)


@pytest.fixture
def assessed(workspace: WorkspaceDir) -> OpenedIncident:
    return OpenedIncident(workspace, assess_story(workspace))


@pytest.fixture
def dispatched(dispatched_once: Snapshot, tmp_path: Path) -> OpenedIncident:
    """A private copy of the dispatched incident."""
    return dispatched_once.copy(tmp_path)


@pytest.fixture
def rendered(dispatched: OpenedIncident) -> OpenedIncident:
    dispatched.ws.ok("announce", dispatched.id)
    return dispatched


def review_dir(incident: OpenedIncident) -> Path:
    return incident.ws.root / "review" / incident.id / "announcement"


def texts(folder: Path) -> dict[str, str]:
    return {name: (folder / name).read_text(encoding="utf-8") for name in FILES}


def test_assess_and_show_say_why_an_announcement_is_required(assessed: OpenedIncident) -> None:
    """Given one person with no contact detail, then the assessment requires an announcement for that reason;
    when dispatch finds every channel failing for the person with a bouncing address, then `assess` and `show`
    add that reason too."""
    before = assessed.ws.json("assess", assessed.id)["announcement"]
    ws = assessed.ws
    ws.ok("notices", "render", assessed.id)
    ws.ok("notices", "approve", assessed.id, "--manifest", manifest_of(ws, assessed.id), "--reviewer", "Legal (Li Na)")
    ws.ok("dispatch", assessed.id)

    after = ws.json("assess", assessed.id)["announcement"]
    shown = ws.ok("show", assessed.id)

    assert before["required"] is True
    assert [r.split(" (")[0] for r in before["reasons"]] == ["1 affected people have no usable contact channel"]
    failed = "1 affected people could not be reached: every channel failed for them during dispatch"
    assert any(r.startswith(failed) for r in after["reasons"]), after
    assert failed in shown
    assert after["reasons"][0] == before["reasons"][0]


def test_announce_renders_both_languages_with_a_manifest_of_what_legal_reviews(dispatched: OpenedIncident) -> None:
    """When the responder runs `incident announce`, then review/ID/announcement/ holds the zh-CN and en pages in
    HTML and Markdown and a manifest with each file's sha256, and the command says why it is required."""
    out = dispatched.ws.ok("announce", dispatched.id)
    folder = review_dir(dispatched)
    manifest = json.loads((folder / "announcement-manifest.json").read_text(encoding="utf-8"))
    pages = texts(folder)

    assert "announcement: required" in out and "no usable contact channel" in out
    assert all(str(folder / name) in out for name in FILES)
    assert {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES} == manifest["files"]
    assert manifest["counts"] == {"people": 5, "children": 1, "by_category": {"password": 5, "phone": 5}}
    assert set(manifest["templates"]) >= {"en/announcement.md.j2", "zh-CN/announcement.html.j2", "style.css.j2"}
    assert pages["announcement.en.html"].startswith("<!DOCTYPE html>")
    assert "<h2>What Information Was Involved</h2>" in pages["announcement.en.html"]
    assert pages["announcement.zh-CN.md"].startswith("# 关于诚聊购个人信息安全事件的公告")
    for zh_heading in (
        "事件基本情况",
        "涉及的个人信息",
        "您可以采取的措施",
        "补救措施",
        "如何查询您是否受到影响",
        "联系我们",
    ):
        assert zh_heading in pages["announcement.zh-CN.md"]
    en = pages["announcement.en.md"]
    assert "fewer than 10 people" in en and "Rotated every database credential" in en
    assert "https://www.lkkjjt.com/security-notice" in en and "notice reference" in en
    assert "### If your password was involved" in en and "Change your password" in en
    assert OFFICER_EMAIL in en


def test_the_announcement_carries_nobody_s_personal_data(rendered: OpenedIncident) -> None:
    """Given the rendered announcement, then no affected person's or guardian's name, email or phone appears in
    any of its files, and the only email address is the protection officer's."""
    everything = "\n".join(texts(review_dir(rendered)).values())
    personal = [
        p[k]
        for p in CAST
        for k in ("name", "email", "phone", "guardian_name", "guardian_email", "guardian_phone")
        if p.get(k)
    ]

    assert [value for value in personal if value in everything] == []
    assert "4155550100" not in everything and "@example" not in everything
    assert everything.count(OFFICER_EMAIL) == 4


@pytest.mark.parametrize(
    ("logged", "problem"),
    [
        ("Called 王芳 to confirm the leak", "the text names an affected person or guardian"),
        ("Grace Murphy reported a phishing mail", "the text names an affected person or guardian"),
        ("Wrote to hugo@bounce.example", "an email address that is not the protection officer's"),
        ("Customer on +14155550100 called the helpline", "a phone number that is not the protection officer's"),
        ("Guardian on 13900000002 called us", "a phone number that is not the protection officer's"),
    ],
    ids=["zh name", "en name", "email", "us phone", "cn phone"],
)
def test_lint_refuses_an_announcement_with_personal_data(dispatched: OpenedIncident, logged: str, problem: str) -> None:
    """Given a logged action that names an affected person or their contact detail, when the responder renders
    the announcement, then it is refused naming the problem and nothing is written."""
    dispatched.ws.ok("log", dispatched.id, logged)

    result = dispatched.ws.refuse("announce", dispatched.id, error="announcement lint failed, nothing was written")

    assert problem in result.stderr
    assert not review_dir(dispatched).exists()
    assert dispatched.ws.sql("SELECT COUNT(*) FROM announcement_render") == [(0,)]


@pytest.mark.parametrize(
    ("n", "locale", "said"),
    [
        (0, "en", "fewer than 10"),
        (9, "zh-CN", "少于10"),
        (10, "en", "about 10"),
        (598, "en", "about 600"),
        (1_049, "en", "about 1,000"),
        (2_973, "en", "about 3,000"),
        (2_973, "zh-CN", "约3000"),
        (123_456, "en", "about 123,000"),
        (123_456, "zh-CN", "约12.3万"),
        (1_000_000, "zh-CN", "约100万"),
    ],
)
def test_head_counts_for_the_public_are_rounded_and_said_as_about(n: int, locale: str, said: str) -> None:
    """Given an exact head-count, then the public reads it rounded (to 10 below 1,000, to 100 below 100,000, to
    1,000 above) and as 'about' — the exact figures go to the regulators."""
    assert about(n, locale) == said


def test_publishing_needs_a_current_approval_of_this_render(rendered: OpenedIncident) -> None:
    """Given a rendered announcement, then publishing is refused until legal approves it; a rejection needs a
    comment and sends it back; after a new render is approved, publishing writes public/ID/ with exactly the
    reviewed files, records when, and starts the California posting period."""
    ws, iid = rendered.ws, rendered.id
    ws.refuse("announce", iid, "--publish", error="announcement is not approved (awaiting review)")
    ws.refuse(
        "notices",
        "reject",
        iid,
        "--announcement",
        "--reviewer",
        "Legal",
        "--comment",
        " ",
        error="--comment: say why the announcement is rejected",
    )
    ws.ok("notices", "reject", iid, "--announcement", "--reviewer", "Legal", "--comment", "Add the hotline")
    ws.refuse("announce", iid, "--publish", error="announcement is not approved (rejected)")
    assert rendered.obligations()["ca-posting"]["state"] == "waiting"

    ws.ok("announce", iid)
    approve_announcement(ws, iid, "Legal (Li Na)")
    out = ws.ok("announce", iid, "--publish")

    public = ws.root / "public" / iid
    assert f"published {iid} announcement" in out
    assert {name: (public / name).read_bytes() for name in FILES} == {
        name: (review_dir(rendered) / name).read_bytes() for name in FILES
    }
    shown = rendered.show()
    assert shown["announcement"]["state"] == "published" and shown["announcement"]["published_at"]
    posting = rendered.obligations()["ca-posting"]
    assert posting["state"] == "in progress" and posting["due"] is not None
    assert ws.sql("SELECT decision, reviewer FROM approval WHERE artefact = 'announcement' ORDER BY id") == [
        ("rejected", "Legal"),
        ("approved", "Legal (Li Na)"),
    ]


@pytest.mark.parametrize("change", ["logged action", "template override", "edited file"])
def test_an_approval_goes_stale_when_what_it_approved_changes(rendered: OpenedIncident, change: str) -> None:
    """Given an approved announcement, when the facts, a template in effect or a rendered file change, then
    `show` names the change and publishing is refused until it is rendered and approved again."""
    ws, iid = rendered.ws, rendered.id
    approve_announcement(ws, iid, "Legal (Li Na)")
    if change == "logged action":
        ws.ok("log", iid, "聘请了外部取证机构", "--en", "Engaged an outside forensic firm")
        named = "the incident facts, logged actions, playbook or organisation details changed"
    elif change == "template override":
        override = ws.root / "notices" / "en" / "announcement.md.j2"
        override.parent.mkdir(parents=True)
        override.write_text("# Notice\n\n{{ incident.summary }}\n", encoding="utf-8")
        named = "template en/announcement.md.j2 changed"
    else:
        page = review_dir(rendered) / "announcement.en.md"
        page.write_text(page.read_text(encoding="utf-8") + "\nP.S.\n", encoding="utf-8")
        named = "announcement.en.md was edited or removed after rendering"

    shown = rendered.show()["announcement"]

    assert shown["state"] == "stale" and named in shown["changes"]
    ws.refuse("announce", iid, "--publish", error=f"the announcement approval is stale: {named}")
    ws.refuse(
        "notices",
        "approve",
        iid,
        "--manifest",
        manifest_of(ws, iid, announcement=True),
        "--announcement",
        "--reviewer",
        "Legal",
        error=named,
    )


def test_announcement_templates_do_not_touch_the_notices_approval(rendered: OpenedIncident) -> None:
    """Given approved and dispatched notices, when a lawyer overrides an announcement template, then the
    notices' approval still holds (the two are reviewed separately)."""
    override = rendered.ws.root / "notices" / "zh-CN" / "announcement.md.j2"
    override.parent.mkdir(parents=True)
    override.write_text("# 公告\n\n{{ incident.summary }}\n", encoding="utf-8")

    assert rendered.show()["notices"]["state"] == "approved"


def test_publish_sends_to_each_target_once_and_retries_only_the_failed(rendered: OpenedIncident) -> None:
    """Given two announcement targets, one of which fails first, when the responder publishes twice, then the
    status page got the announcement once (both languages), and the failed target was retried and reached."""
    ws, iid = rendered.ws, rendered.id
    approve_announcement(ws, iid, "Legal (Li Na)")
    with gateway({"broken": [(500, {}), (200, {})]}) as gw:
        config = ws.root / "incident.toml"
        urls = [f"json://127.0.0.1:{gw.port}/status?:to=status", f"json://127.0.0.1:{gw.port}/hook?:to=broken"]
        config.write_text(
            config.read_text(encoding="utf-8").replace("targets = []", f"targets = {json.dumps(urls)}"),
            encoding="utf-8",
        )

        first = ws.run("announce", iid, "--publish")
        second = ws.ok("announce", iid, "--publish")

    assert first.exit_code == 1 and "1 announcement target(s) failed" in first.stderr
    assert [(r.path, r.status) for r in gw.requests] == [("/status", 200), ("/hook", 500), ("/hook", 200)]
    status = gw.requests[0].body
    assert status["title"] == "关于诚聊购个人信息安全事件的公告 / Notice of Data Breach: Chengliaogou"
    assert "## 一、事件基本情况" in status["message"] and "## What Happened" in status["message"]
    assert "published again" in second and "already sent" in second
    assert ws.sql("SELECT target, outcome FROM announcement_send ORDER BY id") == [
        (f"json://127.0.0.1:{gw.port}/status", "sent"),
        (f"json://127.0.0.1:{gw.port}/hook", "transient"),
        (f"json://127.0.0.1:{gw.port}/hook", "sent"),
    ]


def set_targets(ws: WorkspaceDir, urls: list[str]) -> None:
    config = ws.root / "incident.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("targets = []", f"targets = {json.dumps(urls)}"), encoding="utf-8")


def test_a_publish_killed_after_its_send_re_sends_that_one_once_and_says_so(rendered: OpenedIncident) -> None:
    """Given an approved announcement and two targets, when the publishing process is killed -9 after the status
    page took the message in and before the answer was recorded, then the re-run finds that send in flight, marks
    it unknown, re-sends it once and says so; the status page got it twice at most, the other target once, and the
    audit chain verifies."""
    ws, iid = rendered.ws, rendered.id
    approve_announcement(ws, iid, "Legal (Li Na)")
    with gateway(hang={"status": 1}) as gw:
        status, feed = f"json://127.0.0.1:{gw.port}/status", f"json://127.0.0.1:{gw.port}/feed"
        set_targets(ws, [f"{status}?:to=status", f"{feed}?:to=feed"])

        kill_once_received(ws.root, "announce", iid, "--publish", gateway=gw, to="status")
        in_flight = ws.sql("SELECT target, outcome FROM announcement_send ORDER BY id")
        again = ws.ok("announce", iid, "--publish")

    assert in_flight == [(status, "sending")]
    assert len(gw.received_for("status")) == 2 and len(gw.received_for("feed")) == 1
    assert "1 announcement send(s) were in flight when a previous run stopped: re-sent once" in again
    assert f"target {status}: sent (re-sent once: it was in flight when a previous run stopped)" in again
    assert f"target {feed}: sent\n" in again
    assert ws.sql("SELECT target, outcome FROM announcement_send ORDER BY id") == [
        (status, "unknown"),
        (status, "sent"),
        (feed, "sent"),
    ]
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)
    assert "announcement-send-recovered" in {row[0] for row in ws.sql("SELECT action FROM audit_entry")}


@pytest.mark.parametrize(
    ("owner", "lease_seconds", "gone"),
    [
        ("this-host-live", 60, False),
        ("this-host-dead", 60, True),
        ("other-host", 60, False),
        ("other-host", -1, True),
        ("this-host-live", -1, True),
    ],
)
def test_a_send_in_flight_is_taken_over_only_when_its_process_stopped_or_its_lease_ran_out(
    owner: str, lease_seconds: int, gone: bool
) -> None:
    """Given a send recorded 'sending', then a later run treats it as in doubt when its process on this host is
    gone or its lease ran out; a live process's send, or another host's within its lease, is left alone."""
    dead = subprocess.Popen(["true"])
    dead.wait()  # reaped: its pid is free
    owners = {
        "this-host-live": f"{socket.gethostname()}:{os.getpid()}:1",
        "this-host-dead": f"{socket.gethostname()}:{dead.pid}:1",
        "other-host": "a-host-that-is-not-this-one:1:1",
    }
    now = datetime.now(UTC)

    assert owner_gone(owners[owner], now + timedelta(seconds=lease_seconds), now) is gone
