"""Issue 7, hostile text and hostile templates: what a responder types (title, summary, cause, log entries) is
data, shown literally in every notice, page and report and never run as a template; a workspace template that
tries to reach Python's internals from the sandbox fails the render in one line and stores nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape as html_unescape
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from markupsafe import escape
from servers import Gateway, SmtpSink, configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import (
    BREACHED_SYSTEMS,
    DISCOVERED,
    EXPOSED_CATEGORIES,
    EXPOSURE_FROM,
    EXPOSURE_TO,
    WorkspaceDir,
    approve_notices,
)

from incident.cli import app
from incident.notices import content

SCRIPT = '<script>alert("pwned")</script><img src=x onerror="alert(1)">'
JINJA = (
    "{{ 6*111111 }} {% for i in range(3) %}LOOP{% endfor %} {{ ''.__class__.__mro__ }} "
    "{{ cycler.__init__.__globals__ }} {# hidden #}"
)
CONTROL = "\x07\x1b[2J\u202eTXET\u202c \u2066isolated\u2069\u200b"


def hostile(field: str) -> str:
    """Responder text for `field` carrying markup, template syntax, control characters and bidi overrides."""
    return f"start-of-{field} {SCRIPT} {JINJA} {CONTROL} end-of-{field}"


FIELDS = ("title", "summary", "summary-en", "cause", "cause-en", "action")
# What a template would have produced had it run any of that, and what Python prints for its objects.
EVALUATED = re.compile(
    r"666666|LOOPLOOP|<class |<function |<built-in|<module |object at 0x|__builtins__|"
    r"\{'__name__'|<bound method|<jinja2\."
)
UNSAFE_CHARACTER = re.compile(  # control, invisible and bidi characters the notices strip (written here, not imported)
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]"
)


def literal(field: str) -> str:
    """The text as a reader must see it: exactly as typed, minus control and bidi characters."""
    return content.clean(hostile(field))


def assert_inert(text: str, where: str) -> None:
    """Nothing in `text` was evaluated, no Python object leaked, no control or bidi character survived."""
    found = EVALUATED.search(text)
    assert found is None, f"{where}: {found.group(0)!r} in:\n{text[max(0, found.start() - 200) : found.end() + 200]}"
    bad = UNSAFE_CHARACTER.search(text.replace("\r\n", "\n"))  # CRLF: how SMTP carries lines
    assert bad is None, f"{where}: control or bidi character {bad.group(0)!r} survived"


def assert_literal_text(text: str, fields: tuple[str, ...], where: str) -> None:
    assert_inert(text, where)
    for field in fields:
        assert literal(field) in text, f"{where}: the {field} is not shown as typed"


def assert_literal_markdown(markdown: str, fields: tuple[str, ...], where: str) -> None:
    """A Markdown file is read through a viewer: any CommonMark renderer (raw HTML on, as most are) shows the text
    as typed and no tag the responder typed as markup (issue 12: the file itself escapes it for Markdown)."""
    assert_inert(markdown, where)
    rendered = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script" not in rendered.lower() and "<img" not in rendered.lower(), f"{where}: responder markup is live"
    shown = " ".join(html_unescape(re.sub(r"<[^>]+>", " ", rendered)).split())
    for field in fields:
        assert " ".join(literal(field).split()) in shown, f"{where}: the {field} is not shown as typed"


def assert_literal_html(html: str, fields: tuple[str, ...], where: str) -> None:
    """In HTML the text is escaped: no tag the responder typed exists as markup."""
    assert_inert(html, where)
    assert "<script" not in html.lower() and "<img" not in html.lower(), f"{where}: responder markup is live"
    for field in fields:
        shown = " ".join(literal(field).split())
        assert str(escape(shown)) in " ".join(html.split()), f"{where}: the {field} is not shown escaped"


# ---- the story: an incident written by someone who pasted an attacker's note --------------------------------


@dataclass
class HostileStory:
    ws: WorkspaceDir
    id: str
    smtp: SmtpSink
    sms: Gateway
    push: Gateway


@pytest.fixture
def servers_with_fallbacks() -> Iterator[tuple[SmtpSink, Gateway, Gateway]]:
    """cn-adult's mail and SMS are refused (so push carries it), ca-resident's mail is refused (SMS)."""
    with (
        smtp_sink(
            reject={"zhang.wei@example.cn": "550 5.1.1 no such user", "ben@example.com": "550 5.1.1 gone"}
        ) as smtp,
        http_gateway({"+8613800000001": [(400, {})]}) as sms,
        http_gateway() as push,
    ):
        yield smtp, sms, push


@pytest.fixture
def hostile_story(inventory_with_backups: WorkspaceDir, servers_with_fallbacks) -> HostileStory:
    """The hand-written inventory, an incident whose every free-text field is hostile, its notices rendered,
    approved and sent by email, SMS and push through real servers, and the letters written."""
    ws = inventory_with_backups
    smtp, sms, push = servers_with_fallbacks
    # Inside the Chinese texts the hostile payload reads as English phrases, a language-lint failure that
    # tests/test_bilingual.py covers; this story is about showing it literally, so its phrases are declared names.
    toml = ws.root / "incident.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace(
            "[organisation]\n", '[organisation]\nnames = ["for i in range", "isolated", "end-of-"]\n', 1
        ),
        encoding="utf-8",
    )
    iid = ws.ok(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        hostile("title"),
        "--systems",
        BREACHED_SYSTEMS,
        "--from",
        EXPOSURE_FROM,
        "--to",
        EXPOSURE_TO,
        "--categories",
        EXPOSED_CATEGORIES,
        "--discovered",
        DISCOVERED,
        "--summary",
        "事件概况：" + hostile("summary"),
        "--summary-en",
        hostile("summary-en"),
        "--cause",
        "原因：" + hostile("cause"),
        "--cause-en",
        hostile("cause-en"),
        "--where",
        hostile("where"),
    ).strip()
    # Both languages, as every responder text must be: the hostile part is the same in each.
    ws.ok("log", iid, "处置：" + hostile("action"), "--en", hostile("action"), "--kind", "action")
    ws.ok("log", iid, "发现：" + hostile("finding"), "--en", hostile("finding"), "--kind", "finding")
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    configure_channels(
        ws.root,
        email=f"smtppool://127.0.0.1:{smtp.port}/{{email}}?from=security@example.com",
        sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
        push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}",
        retries=1,
    )
    ws.ok("dispatch", iid)
    ws.ok("letters", iid)
    return HostileStory(ws, iid, smtp, sms, push)


def test_every_notice_sent_on_every_channel_shows_the_responders_text_literally(hostile_story: HostileStory):
    """Given an incident whose summary, cause and logged action carry markup, template syntax and control
    characters, when its notices go out by email, SMS, push and letter, then the email's text and HTML and the
    letter show that text exactly as typed (escaped in HTML, control and bidi characters dropped), and nothing
    anywhere was evaluated."""
    s = hostile_story
    mails = {m.rcpt_tos[0]: m for m in s.smtp.mails}
    assert {"chloe@example.com", "anna@example.de", "zhou.jie@example.cn"} <= set(mails), sorted(mails)
    for address, mail in mails.items():
        en = address.endswith((".com", ".de"))
        fields = ("summary-en", "cause-en", "action") if en else ("summary", "cause", "action")
        assert_literal_text(mail.text(), fields, f"email text to {address}")
        assert_literal_html(mail.html(), fields, f"email HTML to {address}")
        assert_inert(str(mail.message["Subject"]), f"subject to {address}")
    assert [r.to for r in s.sms.requests if r.status == 200] == ["+14155550100"]
    assert [r.to for r in s.push.requests] == ["tok-cn-adult"]
    for request in [*s.sms.requests, *s.push.requests]:
        assert_inert(json.dumps(request.body, ensure_ascii=False), f"{request.path} message to {request.to}")
    letters = sorted((s.ws.root / "letters" / s.id).glob("N*.html"))
    assert letters, "the postal-only person should have a letter"
    for letter in letters:
        assert_literal_html(letter.read_text(encoding="utf-8"), ("summary", "cause", "action"), letter.name)
    stored = [
        n
        for person in ("cn-adult", "postal-only")
        for n in json.loads(s.ws.ok("notices", "show", s.id, "--person", person, "--json"))
    ]
    assert {n["channel"] for n in stored} == {"email", "sms", "push", "letter"}
    for notice in stored:
        assert_inert(notice["subject"] + notice["body"] + (notice["html"] or ""), f"stored {notice['channel']} notice")


def test_the_review_page_shows_the_title_and_every_example_literally(hostile_story: HostileStory):
    page = (hostile_story.ws.root / "review" / hostile_story.id / "index.html").read_text(encoding="utf-8")
    assert_inert(page, "review page")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert str(escape(literal("title"))) in page, "the title is not shown as typed"
    # Each example notice sits in an iframe's srcdoc: escaped once for the attribute, once as the notice's HTML.
    assert str(escape(escape(literal("summary")))) in page


def test_the_announcement_and_every_regulator_report_show_the_text_literally(hostile_story: HostileStory):
    ws, iid = hostile_story.ws, hostile_story.id
    registered = {c.name for c in app.registered_commands}
    if not {"announce", "report"} <= registered:
        pytest.skip("`incident announce` and `incident report` (issue 5) are not registered yet")
    ws.ok("announce", iid)
    folder = ws.root / "review" / iid / "announcement"
    pages = sorted(folder.glob("*.html")) + sorted(folder.glob("*.md"))
    assert len(pages) == 4, pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        fields = (
            ("summary-en", "cause-en", "action") if "en" in page.stem.split(".") else ("summary", "cause", "action")
        )
        if page.suffix == ".html":
            assert_literal_html(text, fields, page.name)
        else:
            assert_literal_markdown(text, fields, page.name)
    # A responder-written section of the report, where the kind has one.
    sections = {"cn-cac": "other", "eu-gdpr": None, "us-ca-ag": "law_enforcement_delay", "us-tx-ag": None}
    for regulator, section in sections.items():
        extra = ["--field", f"{section}={hostile('field')}"] if section else []
        if regulator == "eu-gdpr":  # the incident was discovered long ago: the report must say why it is late
            extra = ["--delay-reason", hostile("field")]
        out = ws.ok(
            "report", iid, "--regulator", regulator, "--format", "md", "--format", "html", "--format", "json", *extra
        )
        made = {
            Path(line.split("  ")[0]).suffix: Path(line.split("  ")[0])
            for line in out.splitlines()
            if line.startswith("/")
        }
        assert set(made) == {".md", ".html", ".json"}, out
        markdown, page = made[".md"].read_text(encoding="utf-8"), made[".html"].read_text(encoding="utf-8")
        summary = "summary" if regulator == "cn-cac" else "summary-en"
        assert_literal_markdown(markdown, (summary, "field") if extra else (summary,), made[".md"].name)
        assert_inert(page, made[".html"].name)
        assert "<script" not in page.lower() and "<img" not in page.lower(), f"{made['.html'].name}: live markup"
        assert_inert(
            json.dumps(json.loads(made[".json"].read_text(encoding="utf-8")), ensure_ascii=False), made[".json"].name
        )


# ---- workspace templates that try to leave the sandbox ----------------------------------------------------------

ESCAPES = {
    "mro-subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "cycler-globals": "{{ cycler.__init__.__globals__ }}",
    "template-reference-context": "{{ self._TemplateReference__context }}",
    "namespace-class": "{% set x = namespace() %}{{ x.__class__ }}",
    "config": "{{ config }}",
    "lipsum-os-popen": "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "format-string-attribute": "{{ '{0.__class__.__init__.__globals__}'.format(incident) }}",
    "mutate-context-list": "{{ categories.append(categories) }}",
    "include-outside-notices": "{% include '../../incident.toml' %}",
    "huge-range": "{% for i in range(10**9) %}x{% endfor %}",
}


def override(ws: WorkspaceDir, name: str, text: str) -> Path:
    path = ws.root / "notices" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("attempt", list(ESCAPES.values()), ids=list(ESCAPES))
def test_a_workspace_template_that_tries_to_leave_the_sandbox_fails_the_render_in_one_line_and_stores_nothing(
    assessed_incident, attempt: str
):
    """Given a workspace override of a notice partial that reaches for Python's internals, when the responder
    renders, then the render fails with one line naming that template file, no object's repr is printed, and no
    notice, render, review file or audit entry is stored."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    packaged = Path(__file__).resolve().parents[1] / "notices" / "en" / "partials" / "happened.txt.j2"
    path = override(ws, "en/partials/happened.txt.j2", packaged.read_text(encoding="utf-8") + "\n" + attempt + "\n")
    before = ws.sql("SELECT COUNT(*) FROM audit_entry")
    result = ws.run("notices", "render", iid)
    assert result.exit_code != 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}:"), result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_inert(result.output, "the error")
    assert ws.sql("SELECT COUNT(*) FROM notice") == [(0,)] and ws.sql("SELECT COUNT(*) FROM render") == [(0,)]
    assert ws.sql("SELECT COUNT(*) FROM audit_entry") == before
    assert not (ws.root / "review" / iid / "manifest.json").exists()
    assert not (ws.root / "review" / iid / "index.html").exists()
    assert ws.json("show", iid)["status"] == "assessed"
