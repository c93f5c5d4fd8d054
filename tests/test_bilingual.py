"""Issue 13 item 3: responder text in both languages.

The story: a responder logs what was done; a Chinese reader's notice must say it in Chinese, an English reader's
in English. Before, one text was pasted into both: English log entries stood in zh-CN notices, the announcement
and the CAC report, Chinese ones in English notices. Now each text is kept per language, a text missing in one is
a lint failure the review page names and approval refuses, and with both given no notice carries the other.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from freezegun import freeze_time
from support import MEMBER_DB_YAML, WorkspaceDir, approve_announcement, manifest_of, open_incident, people_csv
from test_notices import CAST, INCIDENT_CATEGORIES, NOTICE_DAY, holdings_csv

ACTION_ZH = "停用了泄露的服务账号db-svc-7并轮换了其密钥"
ACTION_EN = "Disabled the leaked service account db-svc-7 and rotated its keys"
SUMMARY_ZH = "攻击者利用泄露的数据库账号导出了会员表。"
SUMMARY_EN = "An attacker used a leaked database account to export the member table."
CAUSE_ZH = "一个服务账号的密码被提交到了公开代码仓库。"
CAUSE_EN = "A service account password was committed to a public repository."
BOTH_LANGUAGES = ("--summary", SUMMARY_ZH, "--summary-en", SUMMARY_EN, "--cause", CAUSE_ZH, "--cause-en", CAUSE_EN)
HAN = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture
def both_locales(workspace: WorkspaceDir) -> WorkspaceDir:
    """Four people, two reading Chinese and two English, in the breached member database."""
    workspace.import_inventory(
        people=people_csv([p.row() for p in CAST]), holdings=holdings_csv(CAST), systems=MEMBER_DB_YAML
    )
    return workspace


def opened(ws: WorkspaceDir, *extra: str) -> str:
    return open_incident(ws, *extra, systems="member-db", categories=INCIDENT_CATEGORIES).id


def render(ws: WorkspaceDir, iid: str) -> str:
    ws.ok("assess", iid)
    with freeze_time(NOTICE_DAY, tick=True):
        return ws.ok("notices", "render", iid)


def approve(ws: WorkspaceDir, iid: str):
    return ws.run("notices", "approve", iid, "--manifest", manifest_of(ws, iid), "--reviewer", "Legal (Li Na)")


def entry_id(ws: WorkspaceDir, iid: str, text: str) -> int:
    return next(e["id"] for e in ws.json("show", iid)["timeline"] if text in (e["text"], e["text_en"]))


def variants(ws: WorkspaceDir, iid: str) -> dict[str, str]:
    """Every variant's text as the review page shows it (locale|channel|audience|categories → text)."""
    render_id = ws.json("show", iid)["notices"]["render"]
    return json.loads((ws.root / "review" / iid / f"variants-{render_id}.json").read_text(encoding="utf-8"))


def every_notice(ws: WorkspaceDir, iid: str) -> list[tuple[str, str]]:
    """(locale, full text) of every stored notice of every person."""
    out = []
    for person in CAST:
        for n in ws.json("notices", "show", iid, "--person", person.person_id):
            out.append((person.locale, "\n".join(x for x in (n["subject"], n["body"], n["html"]) if x)))
    return out


# ---- a text in one language only: a failure the review page names and approval refuses -------------------


@pytest.mark.parametrize(
    ("logged", "problem"),
    [
        (("--en", ACTION_EN), "no Chinese (zh-CN) text"),
        ((ACTION_ZH,), "no English text"),
        ((ACTION_EN,), "the zh-CN text is not Chinese"),  # English typed where the Chinese goes
    ],
    ids=["english-only", "chinese-only", "english-as-chinese"],
)
def test_an_action_logged_in_one_language_refuses_approval_naming_the_entry(
    both_locales: WorkspaceDir, logged: tuple[str, ...], problem: str
):
    """Given an incident whose summary and cause are in both languages, when the responder logs an action in one
    language only and renders, then render, the review page and approval each name the entry and its text's
    start, and approval is refused."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, *logged)
    n = entry_id(ws, iid, logged[-1])

    out = render(ws, iid)
    refused = approve(ws, iid)

    named = f"timeline entry {n} ("
    assert named in out and problem in out, out
    page = (ws.root / "review" / iid / "index.html").read_text(encoding="utf-8")
    assert 'id="language"' in page and named in page and problem in page
    assert logged[-1][:10] in page
    assert refused.exit_code != 0, refused.output
    assert "cannot approve the notices" in refused.output and named in refused.output and problem in refused.output
    assert ws.json("show", iid)["status"] == "notices rendered"


def test_with_one_language_no_notice_shows_the_other_in_its_place(both_locales: WorkspaceDir):
    """Given an action logged only in English, when the notices render, then the English ones carry it and no
    zh-CN notice does: a missing translation is never filled with the other language."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, "--en", ACTION_EN)
    render(ws, iid)

    texts = every_notice(ws, iid)

    assert any(ACTION_EN in t for loc, t in texts if loc == "en")
    assert not any(ACTION_EN in t for loc, t in texts if loc == "zh-CN")


def test_a_summary_in_one_language_is_a_failure_too(both_locales: WorkspaceDir):
    """Given an incident opened with only the Chinese summary, when rendered, then the summary is named and
    approval refused; `log --entry summary --en` gives it its English and the next render can be approved."""
    ws = both_locales
    iid = opened(ws, "--summary", SUMMARY_ZH, "--cause", CAUSE_ZH, "--cause-en", CAUSE_EN)
    ws.ok("log", iid, ACTION_ZH, "--en", ACTION_EN)
    render(ws, iid)
    refused = approve(ws, iid)
    assert refused.exit_code != 0 and "summary (--summary / --summary-en)" in refused.output, refused.output
    assert not any(SUMMARY_ZH in t for loc, t in every_notice(ws, iid) if loc == "en")

    ws.ok("log", iid, "--entry", "summary", "--en", SUMMARY_EN)
    render(ws, iid)

    assert approve(ws, iid).exit_code == 0
    assert any(SUMMARY_EN in t for loc, t in every_notice(ws, iid) if loc == "en")


# ---- both languages given: every notice in its reader's language only ---------------------------------------


def test_with_both_languages_no_notice_carries_text_of_the_other(both_locales: WorkspaceDir):
    """Given every responder text in both languages (the action with --en), when the notices render, then the
    render has no lint failure and approves, every zh-CN variant and notice holds the Chinese texts and no
    English one, and every English one the English texts and no Chinese character at all."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, ACTION_ZH, "--en", ACTION_EN)
    ws.ok("log", iid, "--zh", "在防火墙封禁了攻击者的IP地址段", "--en", "Blocked the attacker's IP range")

    out = render(ws, iid)

    assert "0 failures" in out, out
    assert approve(ws, iid).exit_code == 0
    english = (ACTION_EN, SUMMARY_EN, CAUSE_EN, "Blocked the attacker's IP range")
    chinese = (ACTION_ZH, SUMMARY_ZH, CAUSE_ZH, "在防火墙封禁了攻击者的IP地址段")
    shown = variants(ws, iid)
    texts = [(key.split("|")[0], text) for key, text in shown.items()] + every_notice(ws, iid)
    assert {loc for loc, _ in texts} == {"zh-CN", "en"}
    for loc, text in texts:
        if loc == "zh-CN":
            assert not [e for e in english if e in text], text
        else:
            assert not HAN.findall(text), text
    for key, text in shown.items():
        if key.split("|")[1] == "email":  # the full notice says every text; SMS and push point to it
            own = chinese if key.startswith("zh-CN") else english
            assert all(t in text for t in own[:3]), (key, text)


def test_a_translation_given_later_clears_the_failure(both_locales: WorkspaceDir):
    """Given an action logged in English first, when the responder adds its Chinese with `log --entry N TEXT`,
    then `show` lists both, the next render has no failure and the notices can be approved."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, "--en", ACTION_EN)
    n = entry_id(ws, iid, ACTION_EN)
    render(ws, iid)
    assert approve(ws, iid).exit_code != 0

    ws.ok("log", iid, "--entry", str(n), ACTION_ZH)
    out = render(ws, iid)

    assert "0 failures" in out, out
    assert approve(ws, iid).exit_code == 0
    entry = next(e for e in ws.json("show", iid)["timeline"] if e["id"] == n)
    assert (entry["text"], entry["text_en"]) == (ACTION_ZH, ACTION_EN)
    assert f"#{n} " in ws.ok("show", iid) and f"{ACTION_ZH} / {ACTION_EN}" in ws.ok("show", iid)
    assert ws.ok("audit", "verify", iid)


# ---- names of people and products are exempt ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "approved"),
    [("", False), ('names = ["张伟"]\n', True)],
    ids=["a-chinese-word-in-english", "an-allow-listed-name"],
)
def test_a_name_from_incident_toml_may_stand_in_either_language(both_locales: WorkspaceDir, names: str, approved: bool):
    """Given an English text that names a colleague in Chinese characters, when the name is not in
    [organisation] names, then it counts as Chinese in English text and approval is refused; when it is, the
    text is English and the notices can be approved. The platform's own names are always exempt."""
    ws = both_locales
    config = ws.root / "incident.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("[organisation]\n", "[organisation]\n" + names, 1), encoding="utf-8")
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, "张伟停用了泄露的账号", "--en", "张伟 disabled the leaked account")
    ws.ok("log", iid, "重置了诚聊购全部会员的密码", "--en", "Reset the password of every 诚聊购 member")

    out = render(ws, iid)
    decided = approve(ws, iid)

    assert (decided.exit_code == 0) is approved, decided.output
    if not approved:
        assert "the English text has Chinese in it ('张')" in out, out
        assert "诚聊购" not in decided.output


def test_a_chinese_text_with_an_english_sentence_in_it_is_a_failure(both_locales: WorkspaceDir):
    """Given a Chinese text that carries an English sentence (pasted from a chat), when rendered, then the lint
    names it; a product name in Latin letters inside Chinese (MySQL) is no failure."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, "已重置MySQL账号", "--en", "Reset the MySQL account")
    ws.ok("log", iid, "已处理：rotated all the keys today", "--en", "Rotated all the keys")

    out = render(ws, iid)

    assert out.count("responder-language") == 1, out
    assert "the zh-CN text has English in it ('rotated all the keys today')" in out


# ---- the announcement and the reports use their own language(s) ------------------------------------------


def test_the_announcement_and_reports_refuse_a_missing_translation_naming_the_entry(both_locales: WorkspaceDir):
    """Given an action logged only in English, when the responder renders the announcement or the CAC report,
    then each is refused naming the entry (the CAC report is Chinese); nothing is written."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, "--en", ACTION_EN)
    n = entry_id(ws, iid, ACTION_EN)
    ws.ok("assess", iid)

    announced = ws.refuse("announce", iid, error="announcement lint failed")
    reported = ws.refuse("report", iid, "--regulator", "cn-cac", error="the cn-cac report needs")

    for result in (announced, reported):
        assert f"timeline entry {n} (" in result.output and "no Chinese (zh-CN) text" in result.output
    assert not (ws.root / "review" / iid / "announcement").exists() or not list(
        (ws.root / "review" / iid / "announcement").glob("announcement.*")
    )
    assert not list((ws.root / "reports").glob(f"{iid}/*")) if (ws.root / "reports").exists() else True


def test_the_announcement_and_each_report_say_each_text_in_their_own_language(both_locales: WorkspaceDir):
    """Given the action in both languages, then the zh-CN announcement and the CAC report say it in Chinese only,
    the English announcement and the GDPR report in English only."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    ws.ok("log", iid, ACTION_ZH, "--en", ACTION_EN)
    ws.ok("assess", iid)
    ws.ok("announce", iid)
    folder = ws.root / "review" / iid / "announcement"
    zh, en = ((folder / f"announcement.{loc}.md").read_text(encoding="utf-8") for loc in ("zh-CN", "en"))
    assert ACTION_ZH in zh and ACTION_EN not in zh
    assert ACTION_EN in en and ACTION_ZH not in en
    approve_announcement(ws, iid, "Legal (Li Na)")

    for regulator, own, other in (("cn-cac", ACTION_ZH, ACTION_EN), ("eu-gdpr", ACTION_EN, ACTION_ZH)):
        out = ws.ok("report", iid, "--regulator", regulator, "--delay-reason", "Found late")
        path = Path(next(line.split("  (sha256")[0] for line in out.splitlines() if ".md  (sha256" in line))
        report = path.read_text(encoding="utf-8")
        measures = report.split("sample", 1)[0]  # the English sample notice follows the report's own text
        assert own in measures and other not in measures, (regulator, report)


# ---- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("中文", "--zh", "也是中文"), "error: --zh: the Chinese text is given twice (as TEXT and --zh): give one"),
        ((), "error: the log entry is empty"),
        (("--entry", "99", "--en", "x"), "error: --entry '99': INC-"),
        (("--entry", "title", "--en", "x"), "error: --entry 'title': INC-"),
        (("--entry", "summary"), "error: --entry: give the text as TEXT (zh-CN) and/or --en TEXT"),
    ],
    ids=["zh-twice", "nothing", "no-such-entry", "not-translatable", "no-text"],
)
def test_a_log_that_cannot_be_kept_is_refused_in_one_line(
    both_locales: WorkspaceDir, args: tuple[str, ...], error: str
):
    """Given an open incident, when `log` gets contradictory or empty input, then one line says why and the
    timeline is unchanged."""
    ws = both_locales
    iid = opened(ws, *BOTH_LANGUAGES)
    before = ws.sql("SELECT id, text, text_en FROM timeline_entry ORDER BY id")

    result = ws.run("log", iid, *args)

    assert result.exit_code != 0 and result.output.startswith(error), result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert ws.sql("SELECT id, text, text_en FROM timeline_entry ORDER BY id") == before
