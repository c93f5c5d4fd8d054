"""Issue 3: every affected person's notice rendered from the lawyers' templates, linted, reviewed and approved.

The story: four people (a Chinese adult, a Californian adult, and a child in each locale told through a
guardian) had their data in the breached member database. The responder renders the notices, legal reads the
review bundle in a browser and approves exactly that content; any later change voids the approval.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zlib
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from rawdb import connect
from support import MEMBER_DB_YAML, WorkspaceDir, manifest_of, open_incident, people_csv

from incident.config import find_workspace
from incident.db import unit_of_work
from incident.incidents.models import get
from incident.notices import compose, content, templates
from incident.notices.lint import PUSH_BODY_MAX, PUSH_TITLE_MAX, SMS_MAX_SEGMENTS, lint_notice, sms_segments

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = yaml.safe_load((REPO / "playbooks" / "categories.yaml").read_text(encoding="utf-8"))
PLAYBOOK = yaml.safe_load((REPO / "playbooks" / "database-exfiltration.yaml").read_text(encoding="utf-8"))
ADVICE = CATEGORIES["advice"]
CATEGORY = {c["key"]: c for c in CATEGORIES["categories"]}
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")

# The day legal reviews the notices; every notice carries it as its date.
NOTICE_DAY = "2026-03-12 09:30:00"
NOTICE_DATE = {"en": "12 March 2026", "zh-CN": "2026年3月12日"}
OFFICER_EMAIL, OFFICER_PHONE = "lookjt@163.com", "4001577888"
LOGGED_ACTION = "Disabled the leaked service account db-svc-7 and rotated its keys"
LOGGED_ACTION_ZH = "停用了泄露的服务账号db-svc-7并轮换了其密钥"


@dataclass(frozen=True)
class Person:
    """One person of the cast, as the inventory holds them, and what their notices must say."""

    person_id: str
    locale: str
    categories: tuple[str, ...]
    name: str
    email: str = ""
    phone: str = ""  # as written in the inventory
    e164: str = ""  # as the inventory stores it
    push: str = ""
    address: str = ""
    region: str = "CN-FJ"
    birth: str = "1990-05-01"
    guardian: str = ""
    guardian_email: str = ""
    guardian_phone: str = ""
    guardian_e164: str = ""

    @property
    def audience(self) -> str:
        return "guardian" if self.guardian else "self"

    @property
    def channels(self) -> set[str]:
        """What the snapshot lets this person (or their guardian) receive: children get no push."""
        if self.guardian:
            have = {"email": self.guardian_email, "sms": self.guardian_phone, "push": ""}
        else:
            have = {"email": self.email, "sms": self.phone, "push": self.push}
        return {c for c, v in have.items() if v} | ({"letter"} if self.address else set())

    def row(self) -> dict[str, str]:
        return {
            "person_id": self.person_id,
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "push_token": self.push,
            "locale": self.locale,
            "region": self.region,
            "birth_date": self.birth,
            "guardian_name": self.guardian,
            "guardian_email": self.guardian_email,
            "guardian_phone": self.guardian_phone,
            "postal_address": self.address,
            "account_status": "active",
        }

    def private_strings(self) -> list[str]:
        """Everything about this person that only their own notice (or nobody's) may contain."""
        values = [
            self.name,
            self.email,
            self.phone,
            self.e164,
            self.push,
            self.address,
            self.guardian,
            self.guardian_email,
            self.guardian_phone,
            self.guardian_e164,
            self.person_id,
        ]
        return [v for v in values if v]


ZH_ADULT = Person(
    "zh-adult",
    "zh-CN",
    ("password", "phone", "member_name"),
    "王芳",
    "wang.fang@example.cn",
    "13800138001",
    "+8613800138001",
    "tok-zh-adult-0001",
    "福建省福州市鼓楼区五四路1号",
)
EN_ADULT = Person(
    "en-adult",
    "en",
    ("password", "phone", "member_name"),
    "Grace Hopper",
    "grace@example.com",
    "(415) 555-0142",
    "+14155550142",
    "tok-en-adult-0002",
    "1 Market Street San Francisco CA 94105",
    region="US-CA",
    birth="1980-12-09",
)
ZH_CHILD = Person(
    "zh-child",
    "zh-CN",
    ("phone", "real_name"),
    "李小龙",
    address="北京市朝阳区建国路2号",
    region="CN-BJ",
    birth="2016-04-01",
    guardian="李大龙",
    guardian_email="li.dalong@example.cn",
    guardian_phone="13900139003",
    guardian_e164="+8613900139003",
)
EN_CHILD = Person(
    "en-child",
    "en",
    ("real_name",),
    "Tommy Tune",
    address="10 Downing Street London SW1A 2AA",
    region="GB",
    birth="2017-02-02",
    guardian="Tina Tune",
    guardian_email="tina@example.org",
    guardian_phone="+44 7911 100123",
    guardian_e164="+447911100123",
)
CAST = (ZH_ADULT, EN_ADULT, ZH_CHILD, EN_CHILD)
INCIDENT_CATEGORIES = "password,phone,member_name,real_name"


def holdings_csv(people: tuple[Person, ...], system: str = "member-db") -> str:
    lines = ["person_id,system,category,since,until"]
    lines += [f"{p.person_id},{system},{c},2022-06-01," for p in people for c in p.categories]
    return "\n".join(lines) + "\n"


# ---- helpers --------------------------------------------------------------------------------------


def assert_in_order(text: str, *needles: str) -> None:
    """Each needle appears, each after the one before it."""
    pos = 0
    for needle in needles:
        found = text.find(needle, pos)
        if found < 0:
            where = "earlier, out of order" if needle in text else "nowhere"
            raise AssertionError(f"{needle!r} is not after position {pos} (found {where}) in:\n{text}")
        pos = found + len(needle)


def section(text: str, start: str, end: str) -> str:
    """The part of a notice between two headings."""
    assert start in text and end in text, f"{start!r} or {end!r} missing in:\n{text}"
    return text.split(start, 1)[1].split(end, 1)[0]


def notices_of(ws: WorkspaceDir, incident_id: str, person: Person) -> dict[str, dict[str, Any]]:
    """`incident notices show --person --json`, by channel."""
    return {n["channel"]: n for n in ws.json("notices", "show", incident_id, "--person", person.person_id)}


def every_text(notice: dict[str, Any]) -> str:
    return "\n".join(x for x in (notice["subject"], notice["body"], notice["html"]) if x)


def notice_count(ws: WorkspaceDir) -> int:
    return ws.sql("SELECT COUNT(*) FROM notice")[0][0]


def status_of(ws: WorkspaceDir, incident_id: str) -> str:
    return ws.json("show", incident_id)["status"]


def advice_texts(keys: list[str], locale: str) -> list[str]:
    return [ADVICE[k][locale] for k in keys]


def override(ws: WorkspaceDir, name: str, text: str) -> Path:
    """Put a lawyer's own template into the workspace's notices/ folder."""
    path = ws.root / "notices" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def packaged(name: str) -> str:
    return (REPO / "notices" / name).read_text(encoding="utf-8")


@dataclass
class Story:
    """An incident in a workspace, ready for the next step."""

    ws: WorkspaceDir
    id: str

    @property
    def bundle(self) -> Path:
        return self.ws.root / "review" / self.id


def open_story(ws: WorkspaceDir, *extra: str, categories: str = INCIDENT_CATEGORIES) -> Story:
    opened = open_incident(ws, *extra, systems="member-db", categories=categories)
    ws.ok("log", opened.id, LOGGED_ACTION_ZH, "--en", LOGGED_ACTION, "--kind", "action")
    ws.ok("log", opened.id, "Found the export in the DB audit log", "--kind", "finding")
    ws.ok("assess", opened.id)
    return Story(ws, opened.id)


SUMMARY = "攻击者利用泄露的数据库账号导出了会员表。"
SUMMARY_EN = "An attacker used a leaked database account to export the member table."
CAUSE_EN = "A service account password was committed to a public repository."
CAUSE = "一个服务账号的密码被提交到了公开代码仓库。"


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def four_people_inventory(workspace: WorkspaceDir) -> WorkspaceDir:
    """Both locales, both audiences: two adults with every channel and a postal address, two children with
    guardians who have email, phone and an address."""
    workspace.import_inventory(
        people=people_csv([p.row() for p in CAST]), holdings=holdings_csv(CAST), systems=MEMBER_DB_YAML
    )
    return workspace


@pytest.fixture
def assessed_story(four_people_inventory: WorkspaceDir) -> Story:
    """The member-db exfiltration, with one logged action, assessed."""
    return open_story(
        four_people_inventory,
        "--summary",
        SUMMARY,
        "--summary-en",
        SUMMARY_EN,
        "--cause",
        CAUSE,
        "--cause-en",
        CAUSE_EN,
    )


@pytest.fixture
def rendered_notices(assessed_story: Story) -> Story:
    """Notices rendered for the four people on NOTICE_DAY, awaiting legal review."""
    with freeze_time(NOTICE_DAY, tick=True):
        out = assessed_story.ws.ok("notices", "render", assessed_story.id)
    assert "for 4 people" in out, out
    return assessed_story


@pytest.fixture
def approved_notices(rendered_notices: Story) -> Story:
    """The same notices, approved by legal."""
    rendered_notices.ws.ok(
        "notices",
        "approve",
        rendered_notices.id,
        "--manifest",
        manifest_of(rendered_notices.ws, rendered_notices.id),
        "--reviewer",
        "Legal (Li Na)",
    )
    return rendered_notices


# ---- rendering: every template, locale, channel and audience -----------------------------------------


def test_every_locale_channel_and_audience_gets_its_own_rendered_notice(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    stored = ws.sql("SELECT person_id, channel, locale, audience, subject, html IS NOT NULL FROM notice")
    by_person: dict[str, set[str]] = {}
    for person_id, channel, locale, audience, subject, has_html in stored:
        person = next(p for p in CAST if p.person_id == person_id)
        assert (locale, audience) == (person.locale, person.audience)
        assert has_html == (channel in ("email", "letter")), (person_id, channel)
        assert subject or channel == "sms", (person_id, channel)
        by_person.setdefault(person_id, set()).add(channel)
    assert by_person == {p.person_id: p.channels for p in CAST}
    combos = {(loc, ch, aud) for _, ch, loc, aud, _, _ in stored}
    # Every combination the snapshot can produce (children are never pushed: their devices are theirs).
    assert combos == {
        (loc, ch, aud)
        for loc in ("zh-CN", "en")
        for ch in ("email", "sms", "push", "letter")
        for aud in ("self", "guardian")
        if not (ch == "push" and aud == "guardian")
    }
    for person in CAST:
        for channel, notice in notices_of(ws, iid, person).items():
            assert notice["body"].strip(), (person.person_id, channel)


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_the_email_tells_each_person_everything_the_law_requires_in_order(rendered_notices: Story, locale: str):
    ws, iid = rendered_notices.ws, rendered_notices.id
    person = EN_ADULT if locale == "en" else ZH_ADULT
    email = notices_of(ws, iid, person)["email"]
    text = email["body"]
    book = PLAYBOOK
    # Their own categories, most sensitive first; each piece of advice once, in that order.
    advice_order = [
        "change-password",
        "change-reused-passwords",
        "enable-2fa",
        "review-sessions",
        "review-account-activity",
        "beware-scam-calls",
        "set-carrier-pin",
        "check-yizhengtongcha",
        "verify-notice-officially",
    ]
    if locale == "en":
        headings = [
            "NOTICE OF DATA BREACH",
            "WHAT HAPPENED",
            "WHAT INFORMATION WAS INVOLVED",
            "WHAT WE ARE DOING",
            "WHAT YOU CAN DO",
            "FOR MORE INFORMATION",
        ]
        labels = [
            "- Password (sensitive personal information)",
            "- Mobile phone number (sensitive personal information)",
            "- Member name",
        ]
        never_ask = "We will never ask for your password or a verification code"
        # on the Californian's own clock: the window's midnights UTC fall on the evening before
        summary = SUMMARY_EN
        window = (
            "from 31 December 2025 (Pacific Standard Time, UTC-8) to 28 February 2026 (Pacific Standard Time, UTC-8)"
        )
        cause, action = CAUSE_EN, LOGGED_ACTION
        reference = [f"Incident reference: {iid}", "Notice reference: N", f"Date of this notice: {NOTICE_DATE[locale]}"]
        greeting = f"Dear {person.name},"
    else:
        headings = [
            "个人信息安全事件告知书",
            "一、事件基本情况",
            "二、涉及的个人信息",
            "三、可能的影响",
            "四、我们已采取和将要采取的处置措施",
            "五、您可自主防范和降低风险的建议",
            "六、对您的补救措施",
            "七、联系我们",
        ]
        labels = ["- 密码（敏感个人信息）", "- 手机号码（敏感个人信息）", "- 会员名"]
        never_ask = "我们绝不会以任何方式向您索要密码或短信验证码"
        summary, window = SUMMARY, "2026年1月1日（北京时间，UTC+8）至2026年3月1日（北京时间，UTC+8）"
        cause, action = CAUSE, LOGGED_ACTION_ZH  # each reader gets the responder's words in their own language
        reference = [f"事件编号：{iid}", "通知编号：N", f"通知日期：{NOTICE_DATE[locale]}"]
        greeting = f"尊敬的{person.name}："
    impacts = [book["impact"][locale]] + [CATEGORY[c]["impact"][locale] for c in ("password", "phone", "member_name")]
    assert_in_order(text, headings[0], greeting, headings[1], summary, window, cause)
    assert_in_order(text, headings[1], headings[2], *labels, *impacts[:1])
    assert_in_order(text, *impacts)
    assert_in_order(
        text,
        *impacts,
        action,
        *(m[locale] for m in book["measures_done"]),
        *(m[locale] for m in book["measures_planned"]),
    )
    assert_in_order(
        text,
        action,
        *advice_texts(advice_order, locale),
        never_ask,
        # Remedies that need a category come only with it: this person's password, never identity monitoring.
        *(r[locale] for r in book["remedies"] if set(r.get("only_with", person.categories)) & set(person.categories)),
        OFFICER_EMAIL,
        OFFICER_PHONE,
        *reference,
    )
    assert_in_order(text, *headings)
    for advice in advice_texts(advice_order, locale):
        assert text.count(advice) == 1, f"advice repeated: {advice}"
    involved = section(text, headings[2], headings[3])
    assert not re.search(r"Real name|真实姓名", involved), "a category this person does not have is listed"
    assert re.search(r"Notice reference: N[A-Z2-7]{10}\b|通知编号：N[A-Z2-7]{10}", text)
    assert "Finding" not in text and "Found the export" not in text, "findings are internal, not notice content"
    if locale == "en":
        # California Civil Code §1798.82(d): the headings, in this order, in the HTML too.
        assert_in_order(
            email["html"],
            "<h1>Notice of Data Breach</h1>",
            "<h2>What Happened</h2>",
            "<h2>What Information Was Involved</h2>",
            "<h2>What We Are Doing</h2>",
            "<h2>What You Can Do</h2>",
            "<h2>For More Information</h2>",
        )
    for element in ("happened", "involved", "impact", "measures", "advice", "remedies", "contact", "reference"):
        assert f'data-element="{element}"' in email["html"]


@pytest.mark.parametrize("locale", ["en", "zh-CN"])
def test_a_childs_notices_go_to_the_guardian_and_speak_about_the_child(rendered_notices: Story, locale: str):
    ws, iid = rendered_notices.ws, rendered_notices.id
    child = EN_CHILD if locale == "en" else ZH_CHILD
    notices = notices_of(ws, iid, child)
    assert set(notices) == {"email", "sms", "letter"}
    assert {n["audience"] for n in notices.values()} == {"guardian"}
    email = notices["email"]["body"]
    if locale == "en":
        assert email.startswith("NOTICE OF DATA BREACH")
        assert_in_order(
            email,
            f"Dear {child.guardian},",
            f"You are the parent or guardian of {child.name}",
            f"about the child in your care, {child.name}, was involved",
            "- Real name",
            "All personal information of children under 14 is sensitive",
        )
        assert "about a child in your care" in notices["email"]["subject"]
        assert "a child in your care" in notices["sms"]["body"]
        assert "(parent or guardian)" in notices["letter"]["html"]
    else:
        assert_in_order(
            email,
            f"尊敬的{child.guardian}：",
            f"用户{child.name}（不满十四周岁）的监护人",
            f"您监护的儿童{child.name}的以下个人信息涉及本次事件",
            "- 手机号码（敏感个人信息）",
            "- 真实姓名",
            "不满十四周岁儿童的个人信息均属于敏感个人信息",
        )
        assert "您监护的儿童" in notices["email"]["subject"]
        assert notices["sms"]["body"].startswith("【诚聊购】您监护的儿童的手机号码等个人信息")
        assert "（监护人）" in notices["letter"]["html"]
    assert child.address in notices["letter"]["html"]


def test_sms_and_push_are_short_and_point_to_the_full_notice(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    urgent = CATEGORY["password"]["urgent_action"]  # the most sensitive category's one urgent action
    for person in CAST:
        notices = notices_of(ws, iid, person)
        sms = notices["sms"]
        segments, coding = sms_segments(sms["body"])
        assert segments <= SMS_MAX_SEGMENTS, f"{person.person_id}: {segments} {coding} segments:\n{sms['body']}"
        assert coding == ("GSM-7" if person.locale == "en" else "UCS-2")
        assert sms["ref"] in sms["body"] and "https://www.lkkjjt.com/security-notice" in sms["body"]
        assert re.search(r"never ask for passwords|不会索要密码", sms["body"])
        if "password" in person.categories:  # the one most urgent action is the most sensitive category's
            assert urgent[person.locale] in sms["body"]
        if "push" in notices:
            push = notices["push"]
            assert 0 < len(push["subject"]) <= PUSH_TITLE_MAX and 0 < len(push["body"]) <= PUSH_BODY_MAX
            assert push["ref"] in push["body"] and urgent[person.locale] in push["body"]


def test_the_push_template_also_speaks_to_a_guardian(rendered_notices: Story):
    """The snapshot never gives a child's guardian a push token, so render that branch directly."""
    ws = find_workspace(rendered_notices.ws.root)
    with unit_of_work(ws, write=False) as session:
        static = content.static_context(session, ws, get(session, rendered_notices.id))
    env = templates.environment(ws.root)
    for locale, expected in (("en", "data of a child in your care"), ("zh-CN", "您监护的儿童的手机号码等信息")):
        person = {
            "person_id": "guardian-push",
            "audience": "guardian",
            "subject_name": "小明",
            "to_name": "明父",
            "to_email": None,
            "to_phone": None,
            "to_push": "tok-guardian",
            "to_address": None,
            "locale": locale,
            "region": "CN",
            "categories": "phone",
            "ref": "NABCDEFGHIJ",
        }
        parts, rendered = compose.render_person(env, static, person, datetime.fromisoformat(NOTICE_DAY + "+00:00"))
        (push,) = rendered
        assert push["channel"] == "push" and expected in push["body"]
        problems = lint_notice(
            push,
            parts=parts,
            person=person,
            own={"emails": {OFFICER_EMAIL}, "phones": set()},
            data_texts=[],
            previous_names=[],
        )
        assert problems == []


def test_a_letter_carries_every_element_and_the_postal_address(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    for person in CAST:
        letter = notices_of(ws, iid, person)["letter"]
        html = letter["html"]
        assert_in_order(
            html,
            person.address,
            *(
                f'data-element="{e}"'
                for e in ("happened", "involved", "impact", "measures", "advice", "remedies", "contact", "reference")
            ),
        )
        assert OFFICER_EMAIL in html and letter["ref"] in html and NOTICE_DATE[person.locale] in html
        assert "@media print" in html


# ---- the two-people leak test -----------------------------------------------------------------------

ALPHA = Person(
    "p-alpha",
    "zh-CN",
    ("phone",),
    "欧阳娜娜",
    "ouyang.nana@example.cn",
    "13512345678",
    "+8613512345678",
    "tok-alpha-93",
    "上海市徐汇区漕溪北路88号",
    region="CN-SH",
    birth="1988-08-08",
)
BRAVO = Person(
    "p-bravo",
    "en",
    ("device_id", "password"),
    "Zygmunt Quill",
    "zq@quill.example.org",
    "+44 7911 123456",
    "+447911123456",
    "tok-bravo-17",
    "22 Baker Street London NW1 6XE",
    region="GB",
    birth="1975-01-20",
)


@pytest.fixture
def two_strangers(workspace: WorkspaceDir) -> Story:
    """Two people who share nothing: names, contacts, categories (and their advice), locales."""
    workspace.import_inventory(
        people=people_csv([ALPHA.row(), BRAVO.row()]), holdings=holdings_csv((ALPHA, BRAVO)), systems=MEMBER_DB_YAML
    )
    story = open_story(workspace, categories="phone,password,device_id")
    workspace.ok("notices", "render", story.id)
    return story


def category_strings(person: Person) -> list[str]:
    """The labels, impacts, urgent actions and advice that only this person's categories bring."""
    out = []
    for key in person.categories:
        cat = CATEGORY[key]
        for loc in ("zh-CN", "en"):
            out += [cat["impact"][loc], cat["urgent_action"][loc]]
            out += [ADVICE[a][loc] for a in cat["advice"]]
    return out


def test_two_people_who_share_nothing_see_nothing_of_each_other(two_strangers: Story):
    ws, iid = two_strangers.ws, two_strangers.id
    alpha, bravo = notices_of(ws, iid, ALPHA), notices_of(ws, iid, BRAVO)
    assert set(alpha) == set(bravo) == {"email", "sms", "push", "letter"}
    for me, mine, other, theirs in ((ALPHA, alpha, BRAVO, bravo), (BRAVO, bravo, ALPHA, alpha)):
        assert not set(category_strings(me)) & set(category_strings(other)), "the cast must share nothing"
        foreign = other.private_strings() + other.name.split() + category_strings(other)
        foreign += [n["ref"] for n in theirs.values()]
        for channel, notice in mine.items():
            text = every_text(notice)
            leaked = [s for s in foreign if s in text]
            assert not leaked, f"{me.person_id}'s {channel} notice contains {other.person_id}'s {leaked}"
        email = mine["email"]["body"]
        own_involved = (
            section(email, "WHAT INFORMATION WAS INVOLVED", "WHAT WE ARE DOING")
            if me.locale == "en"
            else section(email, "二、涉及的个人信息", "三、可能的影响")
        )
        for key in CATEGORY:
            listed = CATEGORY[key]["label"][me.locale] in own_involved
            assert listed == (key in me.categories), f"{me.person_id}: category {key} listed={listed}"
        assert me.name in email and mine["email"]["ref"] in email


# ---- workspace overrides and template errors --------------------------------------------------------


def test_a_template_in_the_workspace_overrides_the_packaged_one(assessed_story: Story):
    ws, iid = assessed_story.ws, assessed_story.id
    path = override(
        ws,
        "en/partials/remedies.txt.j2",
        packaged("en/partials/remedies.txt.j2") + "- A year of free identity monitoring from Override Assurance Ltd.\n",
    )
    ws.ok("notices", "render", iid)
    assert "Override Assurance Ltd." in notices_of(ws, iid, EN_ADULT)["email"]["body"]
    assert "Override Assurance Ltd." in notices_of(ws, iid, EN_CHILD)["letter"]["html"]
    assert "Override Assurance Ltd." not in notices_of(ws, iid, ZH_ADULT)["email"]["body"]
    manifest = json.loads((assessed_story.bundle / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["templates"]["en/partials/remedies.txt.j2"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_template_with_an_undefined_variable_fails_the_render_naming_file_and_line(assessed_story: Story):
    ws, iid = assessed_story.ws, assessed_story.id
    path = override(ws, "en/partials/impact.txt.j2", "{{ incident.impact }}\n\n{{ incident.severity_note }}\n")
    result = ws.refuse("notices", "render", iid, error=f"{path}:3:")
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "severity_note" in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert notice_count(ws) == 0 and ws.sql("SELECT COUNT(*) FROM render")[0][0] == 0
    assert status_of(ws, iid) == "assessed"


LONG_SMS = packaged("en/sms.txt.j2").rstrip() + "{% for i in range(40) %} Please read it.{% endfor %}\n"
LEFTOVER = "【{{ org.platform }}】请查询编号{{ notice.ref }}。{% raw %}您好 {{ person.name }}{% endraw %}\n"


@pytest.mark.parametrize(
    ("template", "content", "rule"),
    [
        ("zh-CN/sms.txt.j2", LEFTOVER, "unrendered-placeholder: found '{{'"),
        ("en/sms.txt.j2", LONG_SMS, "length: SMS needs"),
    ],
    ids=["placeholder-leftover", "sms-too-long"],
)
def test_a_notice_that_fails_lint_stops_the_render_naming_template_and_rule(
    assessed_story: Story, template: str, content: str, rule: str
):
    ws, iid = assessed_story.ws, assessed_story.id
    override(ws, template, content)
    result = ws.refuse("notices", "render", iid, error=f"{template}: {rule}")
    assert "lint failed, nothing was rendered" in result.stderr
    assert notice_count(ws) == 0 and status_of(ws, iid) == "assessed"


def test_a_failed_render_leaves_the_approved_bundle_as_it_was(approved_notices: Story):
    ws, iid = approved_notices.ws, approved_notices.id
    manifest = approved_notices.bundle / "manifest.json"
    before = manifest.read_bytes()
    bad = override(ws, "en/partials/impact.txt.j2", "{{ nobody.knows }}\n")
    ws.refuse("notices", "render", iid, error=f"{bad}:1:")
    assert manifest.read_bytes() == before
    bad.unlink()
    assert ws.json("show", iid)["notices"]["state"] == "approved"


def test_responder_text_is_shown_literally_and_never_run_as_a_template(four_people_inventory: WorkspaceDir):
    ws = four_people_inventory
    story = open_story(
        ws,
        "--summary",
        "攻击者留下了 <script>alert(1)</script> 和 {{ 7*7 }}。",
        "--summary-en",
        "The attacker left <script>alert(1)</script> and {{ 7*7 }} in a form.",
    )
    ws.ok("notices", "render", story.id)
    en, zh = notices_of(ws, story.id, EN_ADULT)["email"], notices_of(ws, story.id, ZH_ADULT)["email"]
    assert "The attacker left <script>alert(1)</script> and {{ 7*7 }} in a form." in en["body"]
    assert "攻击者留下了 <script>alert(1)</script> 和 {{ 7*7 }}。" in zh["body"]
    for html in (en["html"], zh["html"], (story.bundle / "index.html").read_text(encoding="utf-8")):
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html
    assert "{{ 7*7 }}" in en["html"] and "and 49 in" not in en["body"] + en["html"]


# ---- approval, and everything that voids it ---------------------------------------------------------


def test_approval_is_bound_to_the_manifest_hash(approved_notices: Story):
    ws, iid = approved_notices.ws, approved_notices.id
    manifest_sha = hashlib.sha256((approved_notices.bundle / "manifest.json").read_bytes()).hexdigest()
    (row,) = ws.sql("SELECT decision, reviewer, manifest_hash FROM approval WHERE incident_id = ?", (iid,))
    assert row == ("approved", "Legal (Li Na)", manifest_sha)
    shown = ws.json("show", iid)
    assert shown["status"] == "approved"
    assert shown["notices"]["state"] == "approved" and shown["notices"]["manifest"] == manifest_sha
    assert shown["notices"]["changes"] == []
    assert f"manifest {manifest_sha[:12]}" in ws.ok("show", iid)


def edit_template(story: Story) -> None:
    override(
        story.ws,
        "en/partials/remedies.txt.j2",
        packaged("en/partials/remedies.txt.j2") + "- A free year of credit monitoring.\n",
    )


def edit_playbook(story: Story) -> None:
    copy = story.ws.root / "playbooks" / "database-exfiltration.yaml"
    copy.parent.mkdir(exist_ok=True)
    text = (REPO / "playbooks" / "database-exfiltration.yaml").read_text(encoding="utf-8")
    copy.write_text(text.replace("as the law provides.", "as the law provides, within 30 days."), encoding="utf-8")


def log_an_action(story: Story) -> None:
    story.ws.ok("log", story.id, "Blocked the attacker's IP range at the firewall", "--kind", "action")


def reassess_with_one_more_person(story: Story) -> None:
    newcomer = Person("late-find", "zh-CN", ("phone",), "钱多多", "qian@example.cn", "13700137007", "+8613700137007")
    story.ws.import_inventory(people=people_csv([newcomer.row()]), holdings=holdings_csv((newcomer,)), systems=None)
    story.ws.ok("assess", story.id, "--reassess")


def tamper_with_a_stored_notice(story: Story) -> None:
    with connect(story.ws.root) as conn:
        conn.execute(
            "UPDATE notice SET body = ? WHERE person_id = ? AND channel = 'sms'",
            (zlib.compress("诚聊购：请点击 http://evil.example 领取补偿".encode()), ZH_ADULT.person_id),
        )


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (edit_template, "template en/partials/remedies.txt.j2 changed"),
        (edit_playbook, "the playbook changed"),
        (log_an_action, "the incident facts or logged actions changed"),
        (reassess_with_one_more_person, "the affected set (re-assessed) changed"),
        (tamper_with_a_stored_notice, "rendered notices in the database differ from the approved manifest"),
    ],
    ids=["template", "playbook", "facts", "affected-set", "tampered-notice"],
)
def test_a_change_after_approval_makes_it_stale_and_dispatch_refuses_naming_it(
    approved_notices: Story, change: Any, named: str
):
    ws, iid = approved_notices.ws, approved_notices.id
    change(approved_notices)
    shown = ws.ok("show", iid)
    assert "notices:    stale by Legal (Li Na)" in shown, shown
    assert f"changed since approval: {named}" in shown, shown
    result = ws.refuse("dispatch", iid, error="the approval is stale")
    assert named in result.stderr
    ws.refuse("dispatch", iid, "--dry-run", error=named)
    assert ws.sql("SELECT COUNT(*) FROM attempt")[0][0] == 0
    assert not (ws.root / "outbox").exists(), "nothing may be sent on a stale approval"


def test_reject_needs_a_comment_and_sends_the_notices_back(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    missing = ws.run("notices", "reject", iid, "--reviewer", "Legal (Li Na)")
    assert missing.exit_code == 2 and "--comment" in missing.output, missing.output
    ws.refuse(
        "notices",
        "reject",
        iid,
        "--reviewer",
        "Legal (Li Na)",
        "--comment",
        "  ",
        error="--comment: say why the notices are rejected",
    )
    assert status_of(ws, iid) == "notices rendered"
    ws.ok("notices", "reject", iid, "--reviewer", "Legal (Li Na)", "--comment", "Name the helpline number")
    shown = ws.json("show", iid)
    assert shown["status"] == "assessed"
    assert shown["notices"]["state"] == "rejected" and shown["notices"]["comment"] == "Name the helpline number"
    ws.refuse(
        "notices",
        "approve",
        iid,
        "--manifest",
        manifest_of(ws, iid),
        "--reviewer",
        "Legal (Li Na)",
        error="no rendered notices awaiting review",
    )
    ws.refuse("dispatch", iid, error="not approved (rejected)")


def test_notices_show_prints_one_persons_notice(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    out = ws.ok("notices", "show", iid, "--person", EN_ADULT.person_id)
    assert_in_order(
        out,
        "== email (en, self, ref N",
        "Subject: Notice of Data Breach - Chengliaogou",
        "NOTICE OF DATA BREACH",
        "Dear Grace Hopper,",
        "== sms (en, self",
        "== push (en, self",
        "== letter (en, self",
    )
    only_sms = ws.ok("notices", "show", iid, "--person", ZH_ADULT.person_id, "--channel", "sms")
    assert only_sms.startswith("== sms (zh-CN, self, ref N") and "== email" not in only_sms
    assert "【诚聊购】您的密码等个人信息涉及一起安全事件" in only_sms
    ws.refuse("notices", "show", iid, "--person", "nobody", error="no rendered notice for person 'nobody'")


# ---- the review bundle --------------------------------------------------------------------------------


def expected_variants(people: tuple[Person, ...]) -> dict[tuple[str, str, str, str], int]:
    """(locale, channel, audience, categories as the page lists them) -> how many people receive it."""
    out: dict[tuple[str, str, str, str], int] = {}
    for p in people:
        for channel in p.channels:
            key = (p.locale, channel, p.audience, ", ".join(sorted(p.categories)))
            out[key] = out.get(key, 0) + 1
    return out


class VariantRows(HTMLParser):
    """The rows of the page's variants table, as text cells."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.rows, self.cell = False, [], None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.inside = ("id", "variants") in attrs
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag in ("td", "th"):
            self.cell = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self.inside = False
        elif self.inside and tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell += data


def variant_table(page: str) -> dict[tuple[str, str, str, str], int]:
    parser = VariantRows()
    parser.feed(page)
    header, *rows = parser.rows
    assert header == ["#", "locale", "channel", "audience", "categories", "recipients"]
    return {(r[1], r[2], r[3], r[4]): int(r[5]) for r in rows}


def test_the_manifest_lists_the_hash_of_every_template_the_playbook_the_facts_and_every_notice(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    manifest = json.loads((rendered_notices.bundle / "manifest.json").read_text(encoding="utf-8"))
    used = {"style.css.j2"} | {
        f"{loc}/{name}"
        for loc in ("en", "zh-CN")
        for name in (
            "email.html.j2",
            "email.txt.j2",
            "letter.html.j2",
            "push.txt.j2",
            "sms.txt.j2",
            "subject.txt.j2",
            *(
                f"partials/{e}.txt.j2"
                for e in ("advice", "contact", "happened", "impact", "involved", "measures", "reference", "remedies")
            ),
        )
    }
    assert used <= set(manifest["templates"])
    for name, sha in manifest["templates"].items():
        assert sha == hashlib.sha256((REPO / "notices" / name).read_bytes()).hexdigest(), name
    assert (
        manifest["playbook"]
        == hashlib.sha256((REPO / "playbooks" / "database-exfiltration.yaml").read_bytes()).hexdigest()
    )
    assert re.fullmatch(r"[0-9a-f]{64}", manifest["facts"]) and re.fullmatch(r"[0-9a-f]{64}", manifest["affected"])
    assert manifest["incident"] == iid
    listed = {(n["person"], n["channel"]): n["sha256"] for n in manifest["notices"]}
    stored = {}
    for person in CAST:
        for channel, n in notices_of(ws, iid, person).items():
            content = "\x1f".join((n["subject"], n["body"], n["html"] or ""))
            stored[(person.person_id, channel)] = hashlib.sha256(content.encode()).hexdigest()
    assert listed == stored


def test_the_approval_check_reads_the_manifest_digest_from_the_end_of_the_file(rendered_notices: Story):
    """The staleness check reads only the object after the notices list (a manifest for 200,000 people is tens
    of MB): read backwards in chunks of any size, it is the whole manifest without the list."""
    from incident.notices.manifest import manifest_tail

    path = rendered_notices.bundle / "manifest.json"
    whole = json.loads(path.read_text(encoding="utf-8"))
    expected = {key: value for key, value in whole.items() if key != "notices"}
    for chunk in (3, 64, 1 << 16):
        assert manifest_tail(path, chunk) == expected
    assert re.fullmatch(r"[0-9a-f]{64}", expected["notices_digest"])


def test_the_review_page_shows_every_variant_with_counts_and_masked_contacts(rendered_notices: Story):
    page = (rendered_notices.bundle / "index.html").read_text(encoding="utf-8")
    variants = expected_variants(CAST)
    assert variant_table(page) == variants
    assert f'<td class="count" id="total">{sum(variants.values())}</td>' in page
    assert page.count('<div class="variant"') == len(variants)
    assert "0 failures" in page
    for person in CAST:
        for secret in person.private_strings():
            assert secret not in page, f"{person.person_id}: {secret!r} is in the review page unmasked"
    assert "Dear G**** H*****," in page and "尊敬的王*：" in page and "*** (masked)" in page


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=90, check=False)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium")
def test_legal_reads_the_review_bundle_in_a_real_browser(rendered_notices: Story, tmp_path: Path):
    index = rendered_notices.bundle / "index.html"
    dom = chromium("--dump-dom", index.as_uri(), profile=tmp_path / "profile")
    assert dom.returncode == 0, dom.stderr[-2000:]
    variants = expected_variants(CAST)
    assert variant_table(dom.stdout) == variants
    assert re.search(rf'id="total">{sum(variants.values())}<', dom.stdout)
    assert f"Notices for {rendered_notices.id}" in dom.stdout
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "review-bundle.png"
    shot.unlink(missing_ok=True)
    taken = chromium(
        "--window-size=1280,2400",
        "--hide-scrollbars",
        f"--screenshot={shot}",
        index.as_uri(),
        profile=tmp_path / "profile",
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
