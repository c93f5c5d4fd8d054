"""Issue 13 items 1 and 6: every claim a notice, the announcement or a report makes comes from the record.

The story: an exfiltration of the member database, opened with `--no-police`, assessed, no report submitted.
Nothing the tool renders may then say the incident was reported to the police or to a regulator, offer
identity-theft monitoring when no identity document was involved, speak of children when none were affected,
or name a nature of the breach the incident does not record. The claims lint checks every rendered text against
the record; a lawyer's template that says otherwise fails it and cannot be approved.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from freezegun import freeze_time
from support import MEMBER_DB_YAML, WorkspaceDir, manifest_of, open_incident, people_csv

NOTICE_DAY = "2026-03-10 12:00:00"  # two hours after discovery: the 4-hour CAC report is still due

ADULTS = [
    {
        "person_id": "zh-adult",
        "name": "王芳",
        "email": "wang.fang@example.cn",
        "phone": "13800138001",
        "push_token": "tok-zh-adult-0001",
        "locale": "zh-CN",
        "region": "CN-FJ",
        "birth_date": "1990-01-01",
        "postal_address": "福建省福州市鼓楼区五四路1号",
        "account_status": "active",
    },
    {
        "person_id": "en-adult",
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "phone": "+14155550142",
        "push_token": "tok-en-adult-0002",
        "locale": "en",
        "region": "DE",
        "birth_date": "1980-12-09",
        "postal_address": "1 Market Street San Francisco CA 94105",
        "account_status": "active",
    },
]
CHILD = {
    "person_id": "zh-child",
    "name": "李小龙",
    "locale": "zh-CN",
    "region": "CN-BJ",
    "birth_date": "2016-04-01",
    "guardian_name": "李大龙",
    "guardian_email": "li.dalong@example.cn",
    "account_status": "active",
}

# What a false claim looks like, in either language, wherever it appears.
POLICE = re.compile(r"公安机关报案|向公安机关|to the police|reported to law enforcement")
REGULATOR_DONE = re.compile(r"已依法向监管部门报告|我们已于.{0,30}报告|We have reported|We reported the incident")
IDENTITY_MONITORING = re.compile(r"身份盗用及信用监测|identity-theft and credit monitoring")
CHILDREN = re.compile(r"children under 14|儿童")


def holdings(people: list[dict[str, str]], categories: str) -> str:
    lines = ["person_id,system,category,since,until"]
    for p in people:
        lines += [f"{p['person_id']},member-db,{c},2020-01-01," for c in categories.split(",")]
    return "\n".join(lines) + "\n"


def a_workspace(tmp_path: Path, people: list[dict[str, str]], categories: str = "phone,password,real_name"):
    from conftest import init_workspace

    ws = init_workspace(tmp_path / "ws")
    ws.import_inventory(people=people_csv(people), holdings=holdings(people, categories), systems=MEMBER_DB_YAML)
    return ws


def opened(
    ws: WorkspaceDir, *extra: str, categories: str = "phone,password,real_name", playbook: str = "database-exfiltration"
) -> str:
    """Open the member-db incident (discovered 2026-03-10 08:00 UTC), log one action and assess it."""
    incident = open_incident(ws, *extra, systems="member-db", categories=categories, playbook=playbook)
    ws.ok(
        "log",
        incident.id,
        "停用了泄露的服务账号并轮换了其密钥",
        "--en",
        "Disabled the leaked service account and rotated its keys",
        "--kind",
        "action",
    )
    ws.ok("assess", incident.id)
    return incident.id


def render(ws: WorkspaceDir, iid: str) -> str:
    with freeze_time(NOTICE_DAY, tick=True):
        return ws.ok("notices", "render", iid)


def every_notice(ws: WorkspaceDir, iid: str, people: list[dict[str, str]]) -> dict[str, str]:
    """Every rendered notice text (subject, body, HTML), by person and channel."""
    out = {}
    for p in people:
        for n in ws.json("notices", "show", iid, "--person", p["person_id"]):
            out[f"{p['person_id']}/{n['channel']}"] = "\n".join(x for x in (n["subject"], n["body"], n["html"]) if x)
    return out


def announcement_texts(ws: WorkspaceDir, iid: str) -> dict[str, str]:
    with freeze_time(NOTICE_DAY, tick=True):
        ws.ok("announce", iid)
    folder = ws.root / "review" / iid / "announcement"
    return {p.name: p.read_text(encoding="utf-8") for p in folder.glob("announcement.*")}


def report_text(ws: WorkspaceDir, iid: str, regulator: str, *args: str) -> str:
    with freeze_time(NOTICE_DAY, tick=True):
        out = ws.ok("report", iid, "--regulator", regulator, *args)
    return Path(out.splitlines()[0].split("  (sha256")[0]).read_text(encoding="utf-8")


@pytest.fixture
def adults(tmp_path: Path) -> WorkspaceDir:
    """Two adults (zh-CN in Fujian, en in Germany) with every channel; no child, no identity document."""
    return a_workspace(tmp_path, ADULTS)


def test_with_no_police_and_no_report_nothing_claims_a_police_or_regulator_report(adults: WorkspaceDir) -> None:
    """Given an incident opened with --no-police and no report submitted, when the responder renders the notices,
    the announcement and the CAC and GDPR reports, then none of them (any channel, either language) says the
    incident was reported to the police or to a regulator; the notices say when it will be reported instead."""
    iid = opened(adults, "--no-police")
    out = render(adults, iid)
    assert "claims: 0 failures" in out, out
    texts = every_notice(adults, iid, ADULTS)
    assert {k.split("/")[1] for k in texts} == {"email", "sms", "push", "letter"}
    texts |= announcement_texts(adults, iid)
    texts["cn-cac"] = report_text(adults, iid, "cn-cac")
    texts["eu-gdpr"] = report_text(adults, iid, "eu-gdpr")
    for where, text in texts.items():
        assert not POLICE.search(text), f"{where} claims a police report:\n{text}"
        assert not REGULATOR_DONE.search(text), f"{where} claims a regulator report:\n{text}"
    # Two people: the 4-hour CAC report does not apply; PIPL's report is due at once, the GDPR one in 72 hours.
    assert "我们正在向履行个人信息保护职责的部门（网信部门及行业主管部门）报告本次事件。" in texts["zh-adult/email"]
    promise = "We will report the incident to the competent supervisory authority by 13 March 2026"
    assert promise in texts["en-adult/email"]


def test_after_the_report_is_submitted_the_notices_rendered_afterwards_say_so(adults: WorkspaceDir) -> None:
    """Given the CAC initial report generated and marked submitted, when the notices are rendered again, then
    they say the incident was reported to the CAC on the day it was submitted, in both languages."""
    iid = opened(adults, "--no-police")
    render(adults, iid)
    before = every_notice(adults, iid, ADULTS)["zh-adult/email"]
    report_text(adults, iid, "cn-cac")
    with freeze_time("2026-03-10 13:00:00", tick=True):
        adults.ok("report", iid, "--regulator", "cn-cac", "--submitted-at", "2026-03-10T12:30:00+00:00")
        out = adults.ok("notices", "render", iid)
    assert "claims: 0 failures" in out, out
    after = every_notice(adults, iid, ADULTS)
    assert (
        "我们已于2026年3月10日 20:30（北京时间，UTC+8）"
        "向履行个人信息保护职责的部门（网信部门及行业主管部门）报告本次事件。" in (after["zh-adult/email"])
    )
    assert "我们已于" not in before
    assert re.search(r"We reported the incident to .+ on 10 March 2026", after["en-adult/email"])
    assert not POLICE.search(after["zh-adult/email"] + after["en-adult/email"])


def test_a_police_report_logged_later_is_recorded_audited_and_told(adults: WorkspaceDir) -> None:
    """Given an incident opened without --police, when the responder logs the police report, then `show` records
    it, the audit chain still verifies, and the notices rendered afterwards say it in both languages."""
    iid = opened(adults, "--no-police")
    assert adults.json("show", iid)["police_contacted"] is False
    out = adults.ok(
        "log",
        iid,
        "福州市公安局鼓楼分局受理，回执号 2026-031",
        "--en",
        "Accepted by the Gulou branch of the Fuzhou Public Security Bureau, receipt 2026-031",
        "--kind",
        "police-report",
    )
    assert "police report recorded" in out, out
    assert adults.json("show", iid)["police_contacted"] is True
    adults.ok("audit", "verify", iid)
    render(adults, iid)
    texts = every_notice(adults, iid, ADULTS)
    assert "我们已向公安机关报案。" in texts["zh-adult/email"]
    assert "We have reported the incident to the police." in texts["en-adult/email"]


@pytest.mark.parametrize(
    "edit",
    [
        "UPDATE incident SET police_contacted = NOT police_contacted WHERE id = ?",
        "UPDATE incident SET nature = 'integrity' WHERE id = ?",
    ],
)
def test_an_edit_of_a_fact_a_claim_derives_from_breaks_the_chain(adults: WorkspaceDir, edit: str) -> None:
    """Given an incident, when someone sets the police fact or the nature of the breach in the database directly,
    then `audit verify` fails: every fact a claim derives from is covered by the chain."""
    iid = opened(adults, "--no-police")
    adults.ok("audit", "verify", iid)
    from rawdb import connect

    with connect(adults.root) as conn:
        conn.execute(edit, (iid,))
    result = adults.run("audit", "verify", iid)
    assert result.exit_code == 3, result.output


def test_identity_monitoring_is_offered_only_when_identity_documents_were_involved(tmp_path: Path) -> None:
    """Given one incident without identity documents and one with them, then only the second one's notices offer
    identity-theft monitoring."""
    ws = a_workspace(tmp_path, ADULTS, categories="phone,password,id_document")
    without = opened(ws, categories="phone,password")
    with_ids = opened(ws, categories="phone,password,id_document")
    render(ws, without)
    render(ws, with_ids)
    for where, text in every_notice(ws, without, ADULTS).items():
        assert not IDENTITY_MONITORING.search(text), f"{where} offers identity monitoring:\n{text}"
    shown = every_notice(ws, with_ids, ADULTS)
    assert IDENTITY_MONITORING.search(shown["zh-adult/email"]) and IDENTITY_MONITORING.search(shown["en-adult/email"])


def test_children_are_mentioned_only_when_children_are_affected(adults: WorkspaceDir, tmp_path: Path) -> None:
    """Given adults only, then no notice, announcement or GDPR report speaks of children; given a child too, the
    GDPR report says children are among the data subjects."""
    iid = opened(adults)
    render(adults, iid)
    texts = every_notice(adults, iid, ADULTS) | announcement_texts(adults, iid)
    gdpr = report_text(adults, iid, "eu-gdpr")
    for where, text in texts.items():
        assert not CHILDREN.search(text), f"{where} speaks of children:\n{text}"
    assert "including holders of cancelled accounts kept in backups and children under 14" not in gdpr
    assert "children under 14." not in gdpr
    family = a_workspace(tmp_path / "family", [*ADULTS, CHILD])
    fid = opened(family)
    assert "children under 14" in report_text(family, fid, "eu-gdpr")


def test_the_nature_of_the_breach_is_an_incident_field_defaulted_from_the_playbook(adults: WorkspaceDir) -> None:
    """Given a ransomware incident, then its nature is confidentiality and availability (in GDPR's order), and the
    notices and the GDPR report say so; a finding logged with --nature changes it and what is rendered afterwards."""
    iid = opened(adults, playbook="ransomware", categories="phone,real_name")
    assert adults.json("show", iid)["nature"] == ["confidentiality", "availability"]
    assert "(a breach of confidentiality and availability)" in report_text(adults, iid, "eu-gdpr")
    render(adults, iid)
    texts = every_notice(adults, iid, ADULTS)
    assert "事件性质：数据的保密性和可用性遭到破坏。" in texts["zh-adult/email"]
    assert "Nature of the breach: confidentiality and availability." in texts["en-adult/email"]
    adults.ok(
        "log",
        iid,
        "取证发现被加密的数据表也遭到篡改",
        "--en",
        "Forensics found the encrypted tables were also altered",
        "--kind",
        "finding",
        "--nature",
        "availability,integrity,confidentiality",
    )
    assert adults.json("show", iid)["nature"] == ["confidentiality", "integrity", "availability"]
    assert "(a breach of confidentiality, integrity and availability)" in report_text(adults, iid, "eu-gdpr")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--nature", "secrecy"), "--nature: 'secrecy' is not one of confidentiality, integrity, availability"),
        (("--nature", ""), "--nature: name at least one of confidentiality, integrity, availability"),
    ],
)
def test_a_bad_nature_is_refused_in_one_line(adults: WorkspaceDir, args: tuple[str, ...], error: str) -> None:
    """Given a nature that is not one of GDPR's three, then `open` is refused in one line and nothing is opened."""
    result = adults.refuse(
        "open",
        "--playbook",
        "ransomware",
        "--title",
        "t",
        "--systems",
        "member-db",
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-01",
        *args,
        error=error,
    )
    assert "Traceback" not in result.output
    assert adults.sql("SELECT COUNT(*) FROM incident") == [(0,)]


# ---- the lint cannot be fooled -----------------------------------------------------------------------------


def plant(ws: WorkspaceDir, name: str, find: str, add: str) -> None:
    """A lawyer's workspace override of a packaged template, with one sentence added after `find`."""
    packaged = (Path(__file__).resolve().parents[1] / "notices" / name).read_text(encoding="utf-8")
    assert find in packaged, name
    path = ws.root / "notices" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(packaged.replace(find, find + add, 1), encoding="utf-8")


def test_a_planted_police_claim_fails_the_lint_and_approval_is_refused(adults: WorkspaceDir) -> None:
    """Given a workspace template saying 已向公安机关报案 while the incident records no police report, when the
    notices are rendered, then the lint names the claim, where it is and the fact it contradicts, and approval
    is refused; once the police report is logged and the notices are rendered again, approval goes through."""
    iid = opened(adults, "--no-police")
    plant(adults, "zh-CN/partials/measures.txt.j2", "我们已采取的处置措施：\n", "\n- 我们已向公安机关报案。\n")
    out = render(adults, iid)
    assert "claims: " in out and "0 failures" not in out, out
    assert re.search(r"zh-CN/email.*line \d+: police-report: '.*已向公安机关报案.*' contradicts", out), out
    assert "the incident records no police report" in out
    page = (adults.root / "review" / iid / "index.html").read_text(encoding="utf-8")
    assert "已向公安机关报案" in page and "police-report" in page
    refused = adults.refuse(
        "notices",
        "approve",
        iid,
        "--manifest",
        manifest_of(adults, iid),
        "--reviewer",
        "Legal",
        error="lint failure(s) stand",
    )
    assert "police-report" in refused.stderr
    adults.ok("log", iid, "报案回执 2026-031", "--en", "Police report receipt 2026-031", "--kind", "police-report")
    out = render(adults, iid)
    assert "claims: 0 failures" in out, out
    adults.ok("notices", "approve", iid, "--manifest", manifest_of(adults, iid), "--reviewer", "Legal")


def test_a_planted_identity_monitoring_offer_fails_the_lint(adults: WorkspaceDir) -> None:
    """Given an English remedies override offering identity-theft monitoring with no identity document involved,
    then the render's lint counts a failure naming the category the record lacks."""
    iid = opened(adults)
    plant(
        adults,
        "en/partials/remedies.txt.j2",
        "We offer you the following:\n",
        "\n- We offer identity-theft and credit monitoring free of charge for 12 months.\n",
    )
    out = render(adults, iid)
    assert "identity-monitoring" in out and "id_document" in out, out


def test_a_planted_regulator_claim_in_a_report_refuses_the_report(adults: WorkspaceDir) -> None:
    """Given a CAC report template saying the incident was already reported to the regulator while no report was
    submitted, then `report` refuses naming the claim and writes nothing: a regulator report is a legal statement
    submitted outside the tool, so a false one is never written."""
    iid = opened(adults, "--no-police")
    plant(adults, "reports/cn-cac.md.j2", "\n", "\n我们已依法向监管部门报告。\n")
    with freeze_time(NOTICE_DAY, tick=True):
        refused = adults.refuse("report", iid, "--regulator", "cn-cac", error="claims lint failed")
    assert "regulator-report" in refused.stderr and "no regulator report is marked submitted" in refused.stderr
    assert adults.sql("SELECT COUNT(*) FROM report") == [(0,)]


def test_a_claimed_report_to_one_regulator_needs_that_regulator_s_report(adults: WorkspaceDir) -> None:
    """Given the CAC report marked submitted, when a workspace template says the incident was also reported to the
    Texas Attorney General, then the lint names that regulator: a submitted report to one authority does not
    bear out a sentence about another. The same sentence about the CAC holds."""
    iid = opened(adults, "--no-police")
    report_text(adults, iid, "cn-cac")
    with freeze_time("2026-03-10 13:00:00", tick=True):
        adults.ok("report", iid, "--regulator", "cn-cac", "--submitted-at", "2026-03-10T12:30:00+00:00")
    plant(adults, "en/partials/measures.txt.j2", "\n", "\nWe reported the incident to the Texas Attorney General.\n")
    out = render(adults, iid)
    assert "no report to Texas Attorney General is marked submitted" in out, out
    plant(adults, "en/partials/measures.txt.j2", "\n", "\nWe reported the incident to the CAC.\n")
    out = render(adults, iid)
    assert "claims: 0 failures" in out, out


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        ("We contained the breach on 1 February 2026 (China Standard Time, UTC+8).", "no date of the record"),
        ("We contained the breach on 1 February 2026.", "a date that names no clock"),
    ],
    ids=["a date the record does not hold", "a date without its clock"],
)
def test_a_planted_date_fails_the_lint(adults: WorkspaceDir, sentence: str, said: str) -> None:
    """Given a workspace template stating a date that is none of the record's (the exposure window, the discovery,
    a report made or due, the notice's own day), or one that does not say which clock it is on, then the claims
    lint names it and approval is refused; the packaged templates' own dates all pass."""
    iid = opened(adults, "--no-police")
    assert "claims: 0 failures" in render(adults, iid)
    plant(adults, "en/partials/measures.txt.j2", "\n", "\n" + sentence + "\n")
    out = render(adults, iid)
    assert "date:" in out and said in out, out
    manifest = manifest_of(adults, iid)
    refused = adults.refuse("notices", "approve", iid, "--manifest", manifest, "--reviewer", "Legal", error="stand")
    assert "date:" in refused.stderr


def test_a_report_stating_a_count_dispatch_does_not_prove_is_refused(adults: WorkspaceDir) -> None:
    """Given a CAC report template that says more people were notified and more letters posted than dispatch
    recorded, then `report` refuses naming each count: a report's figures are the proof of delivery's."""
    iid = opened(adults, "--no-police")
    plant(adults, "reports/cn-cac.md.j2", "\n", "\n已通知999人；信件已寄出12封。\n")
    with freeze_time(NOTICE_DAY, tick=True):
        refused = adults.refuse("report", iid, "--regulator", "cn-cac", error="claims lint failed")
    assert "notified-count" in refused.stderr and "letters-posted-count" in refused.stderr, refused.stderr
    assert adults.sql("SELECT COUNT(*) FROM report") == [(0,)]


def test_a_planted_claim_in_the_announcement_refuses_it(adults: WorkspaceDir) -> None:
    """Given an announcement override that claims a police report not recorded, then `announce` refuses it."""
    iid = opened(adults, "--no-police")
    plant(adults, "en/announcement.md.j2", "\n", "\nWe have reported the incident to the police.\n")
    with freeze_time(NOTICE_DAY, tick=True):
        refused = adults.refuse("announce", iid, error="claims lint failed")
    assert "announcement.en.md" in refused.stderr and "police-report" in refused.stderr


def test_a_responder_logged_action_that_claims_a_police_report_is_caught(adults: WorkspaceDir) -> None:
    """Given an action logged as text saying the police were told, while the incident does not record it, then
    the lint fails: responder text is held to the record like a template."""
    iid = opened(adults, "--no-police")
    adults.ok(
        "log", iid, "我们已向公安机关报案。", "--en", "We have reported the incident to the police.", "--kind", "action"
    )
    out = render(adults, iid)
    assert "police-report" in out and "0 failures" not in out, out


@pytest.mark.parametrize(
    ("find", "replace", "said"),
    [
        ("check: recorded", "check: believed", "unknown check 'believed'"),
        ("on {date}.", "on {date.__class__}.", "unknown placeholder {date.__class__}"),
        ("已(?:经)?报(?:案|警)", "已(?:经报(?:案|警)", "not a regular expression"),
    ],
)
def test_a_broken_claims_rule_file_is_refused_naming_file_and_line(
    adults: WorkspaceDir, find: str, replace: str, said: str
) -> None:
    """Given a workspace claims.yaml with an unknown check, a placeholder that reaches into an object, or a
    phrase that is no regular expression, then render says file:line and what is wrong in one line."""
    iid = opened(adults)
    shipped = (Path(__file__).resolve().parents[1] / "playbooks" / "claims.yaml").read_text(encoding="utf-8")
    assert find in shipped
    path = adults.root / "playbooks" / "claims.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(shipped.replace(find, replace, 1), encoding="utf-8")
    line = next(n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if replace in text)
    with freeze_time(NOTICE_DAY, tick=True):
        refused = adults.refuse("notices", "render", iid, error="claims.yaml:")
    assert said in refused.stderr and "Traceback" not in refused.output
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"claims.yaml:{line}:" in refused.stderr, (line, refused.stderr)
