"""Notice internals a reviewer relies on without seeing them: the lint's token scans and the stored format.

Lint runs on every rendered notice, so it scans e-mail addresses, phone numbers and notice references with
shortcuts (from each '@', a cheap hint before the phone pattern, a literal-led reference pattern). Given any text
built from the characters those tokens are made of, each shortcut returns what the plain `findall` returns.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from incident.notices import lint

# The characters tokens are made of, and the ones that end them (including CJK next to a reference).
ALPHABET = "aZN2@.-_+%1389 \n编号：<>\"'{}#$%AB7Q"
pieces = st.sampled_from(
    [
        "@",
        ".com",
        "N",
        "NABCDEFGHJ2",
        "+8613800138000",
        "13912345678",
        "officer@example.com",
        "编号",
        "{{",
        "}}",
        "{%",
        "${",
        "Undefined",
        "x.y",
        "-",
        "+",
    ]
)
texts = st.lists(st.one_of(st.text(alphabet=ALPHABET, max_size=12), pieces), max_size=25).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=texts)
def test_each_fast_scan_finds_what_its_regular_expression_finds(text: str) -> None:
    assert lint.emails_in(text) == lint.EMAIL_TOKEN.findall(text)
    assert lint.phones_in(text) == lint.PHONE_TOKEN.findall(text)
    assert lint.refs_in(text) == lint.REF_TOKEN.findall(text)
    match = lint.PLACEHOLDER.search(text)
    assert lint.placeholder_in(text) == (match.group(0) if match else None)


def test_a_reference_right_after_chinese_text_is_still_found() -> None:
    """Given a notice that prints another person's reference straight after a Chinese word, then the lint sees
    it (a Unicode word boundary would not: 号 is a word character)."""
    assert lint.refs_in("通知编号NABCDEFGHJ2。") == ["NABCDEFGHJ2"]
    sms = {
        "channel": "sms",
        "template": "zh-CN/sms.txt.j2",
        "subject": "",
        "body": "您的通知编号NABCDEFGHJ2，另见编号NQQQQQQQQQ2",
        "html": None,
    }
    problems = lint.lint_notice(
        sms,
        parts={},
        person={"ref": "NABCDEFGHJ2"},
        own={"emails": set(), "phones": set()},
        data_texts=[],
        previous_names=[],
    )
    assert problems == ["zh-CN/sms.txt.j2: foreign-data: another person's notice reference"]


def test_the_shortcuts_are_used_for_text_without_any_token() -> None:
    """A long plain notice without '@', phone digits or template syntax yields nothing (and the hint regexes
    are what decide it)."""
    text = "Notice of Data Breach. " * 200
    assert not lint.PHONE_HINT.search(text) and "@" not in text
    assert (lint.emails_in(text), lint.phones_in(text), lint.refs_in(text), lint.placeholder_in(text)) == (
        [],
        [],
        [],
        None,
    )
    assert re.search(r"N[A-Z2-7]{10}", text) is None


def test_stored_notice_content_round_trips_and_rows_from_before_the_dictionary_still_read() -> None:
    """Given a notice's text and HTML, pack_content stores them (the HTML against the text as dictionary, so
    smaller than alone) and unpack_content gives them back; an HTML column compressed the earlier way, without a
    dictionary, still unpacks."""
    import zlib

    from incident.notices.models import pack_content, unpack_content

    body = "\n\n".join(f"第{i}段：您的银行卡信息可能已泄露，请尽快联系发卡行。" for i in range(20))
    html = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.split("\n\n")) + "</body></html>"
    packed_body, packed_html = pack_content(body, html)
    assert unpack_content(packed_body, packed_html) == (body, html)
    assert packed_html is not None and len(packed_html) < len(zlib.compress(html.encode(), 1))
    assert unpack_content(*pack_content("短信正文", None)) == ("短信正文", None)
    assert unpack_content(zlib.compress(body.encode(), 6), zlib.compress(html.encode(), 6)) == (body, html)
