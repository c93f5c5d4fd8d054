"""Lint every rendered notice: elements present, nothing unrendered, lengths kept, nobody else's data; and the
responder's own text, which must exist in each language a notice is read in."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

ELEMENTS = ("happened", "involved", "impact", "measures", "advice", "remedies", "contact", "reference")
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|\$\{|\bUndefined\b")
PLACEHOLDER_HINTS = ("{{", "}}", "{%", "%}", "{#", "#}", "${", "Undefined")
EMAIL_TOKEN = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
EMAIL_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
PHONE_TOKEN = re.compile(r"(?<![\d+])(\+\d{7,15}|1[3-9]\d{9})(?!\d)")
PHONE_HINT = re.compile(r"\+\d{7}|1[3-9]\d{9}")  # every PHONE_TOKEN match contains one of these
REF_TOKEN = re.compile(r"(?<![A-Za-z0-9])N[A-Z2-7]{10}(?![A-Za-z0-9])")
REF_CANDIDATE = re.compile(r"N[A-Z2-7]{10}(?![A-Za-z0-9])")
ASCII_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")

# The token scans below give exactly what EMAIL_TOKEN, PHONE_TOKEN and REF_TOKEN's findall give (a property test
# checks it), several times faster: a pattern that starts with a literal or a character set lets the regex engine
# skip ahead, and most notices hold no phone number at all. Lint runs on every notice, so this is the render's
# second cost after Jinja itself.


def emails_in(text: str) -> list[str]:
    """Every e-mail address in the text (EMAIL_TOKEN.findall), found from its '@'."""
    found: list[str] = []
    at, end = text.find("@"), 0
    while at != -1:
        start = at
        while start > end and text[start - 1] in EMAIL_LOCAL:
            start -= 1
        match = EMAIL_TOKEN.match(text, start) if start < at else None
        if match:
            found.append(match.group(0))
            end = match.end()
        at = text.find("@", max(at + 1, end))
    return found


def phones_in(text: str) -> list[str]:
    """Every phone number in the text (PHONE_TOKEN.findall)."""
    return PHONE_TOKEN.findall(text) if PHONE_HINT.search(text) else []


def refs_in(text: str) -> list[str]:
    """Every notice reference in the text (REF_TOKEN.findall)."""
    return [m.group(0) for m in REF_CANDIDATE.finditer(text) if m.start() == 0 or text[m.start() - 1] not in ASCII_WORD]


def placeholder_in(text: str) -> str | None:
    """The first unrendered template syntax in the text (PLACEHOLDER.search), if any."""
    if not any(hint in text for hint in PLACEHOLDER_HINTS):
        return None
    match = PLACEHOLDER.search(text)
    return match.group(0) if match else None


GSM7 = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXT = set("^{}\\[~]|€")
SMS_MAX_SEGMENTS = 3
PUSH_TITLE_MAX = 64
PUSH_BODY_MAX = 240


def sms_segments(text: str) -> tuple[int, str]:
    """Segments a concatenated SMS needs (3GPP TS 23.040: 160/153 GSM-7 septets, 70/67 UCS-2 units)."""
    if all(c in GSM7 or c in GSM7_EXT for c in text):
        septets = sum(2 if c in GSM7_EXT else 1 for c in text)
        return (1 if septets <= 160 else math.ceil(septets / 153)), "GSM-7"
    units = len(text.encode("utf-16-le")) // 2
    return (1 if units <= 70 else math.ceil(units / 67)), "UCS-2"


def _elements(channel: str, body: str, html: str | None, parts: dict[str, str], ref: str) -> Iterator[tuple[str, str]]:
    """Every required element (PIPL art. 57) is in a full notice; a short one carries at least the reference."""
    if channel in ("email", "letter"):
        for name in ELEMENTS:
            if not parts.get(name, "").strip():
                yield "element-missing", f"required element '{name}' rendered empty"
            elif html is not None and f'data-element="{name}"' not in html:
                yield "element-missing", f"required element '{name}' is not in the HTML"
            elif channel == "email" and parts[name].strip() not in body:
                yield "element-missing", f"required element '{name}' is not in the text part"
        return
    if ref not in body:
        yield "element-missing", "the notice reference is missing"
    if not body.strip():
        yield "element-missing", "empty message"


def _placeholders(full: str, data_texts: list[str]) -> Iterator[tuple[str, str]]:
    """Template syntax left in the output, once the responder's own text (which may quote it) is taken out."""
    if not placeholder_in(full):
        return
    scrubbed = full
    for text in data_texts:
        if text:
            scrubbed = scrubbed.replace(text, "")
    placeholder = placeholder_in(scrubbed)
    if placeholder:
        yield "unrendered-placeholder", f"found {placeholder!r}"


def _lengths(channel: str, subject: str, body: str) -> Iterator[tuple[str, str]]:
    """SMS within its segments, push within what a lock screen shows."""
    if channel == "sms":
        segments, coding = sms_segments(body)
        if segments > SMS_MAX_SEGMENTS:
            yield "length", f"SMS needs {segments} {coding} segments (max {SMS_MAX_SEGMENTS})"
    if channel == "push":
        if len(subject) > PUSH_TITLE_MAX:
            yield "length", f"push title is {len(subject)} characters (max {PUSH_TITLE_MAX})"
        if len(body) > PUSH_BODY_MAX:
            yield "length", f"push body is {len(body)} characters (max {PUSH_BODY_MAX})"


def _foreign_data(
    full: str, person: dict[str, Any], own: dict[str, set[str]], previous_names: list[str]
) -> Iterator[tuple[str, str]]:
    """Nobody else's address, number, reference or name in this person's notice."""
    for token in emails_in(full):
        if token.lower() not in own["emails"]:
            yield "foreign-data", "an email address that is not this recipient's"
    for token in phones_in(full):
        if token not in own["phones"]:
            yield "foreign-data", "a phone number that is not this recipient's"
    for token in refs_in(full):
        if token != person["ref"]:
            yield "foreign-data", "another person's notice reference"
    mine = " ".join(n for n in (person.get("to_name"), person.get("subject_name")) if n)
    for name in previous_names:
        if name and len(name) >= 2 and name not in mine and name in full:
            yield "foreign-data", "the name of another recipient"


def lint_notice(
    notice: dict[str, Any],
    *,
    parts: dict[str, str],
    person: dict[str, Any],
    own: dict[str, set[str]],
    data_texts: list[str],
    previous_names: list[str],
    person_texts: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """Return a rendered notice's problems as 'template: rule: detail' (empty when the notice is clean).

    `notice` is what render_person returns for one channel: channel, template, subject, body, html."""
    channel, subject, body, html = notice["channel"], notice["subject"], notice["body"], notice["html"]
    full = "\n".join(x for x in (subject, body, html or "") if x)
    found = [
        *_elements(channel, body, html, parts, person["ref"]),
        *_placeholders(full, [*data_texts, *person_texts]),
        *_lengths(channel, subject, body),
        *_foreign_data(full, person, own, previous_names),
    ]
    return [f"{notice['template']}: {rule}: {detail}" for rule, detail in found]


SENTINEL = "X"  # what a person's own text becomes when lint asks whether a failure is theirs or the template's


def _sentinel(text: str | None, person_texts: list[str] | tuple[str, ...]) -> str | None:
    if text is None:
        return None
    for value in person_texts:
        text = text.replace(value, SENTINEL)
    return text


def lint_person_notice(
    notice: dict[str, Any],
    *,
    parts: dict[str, str],
    person: dict[str, Any],
    own: dict[str, set[str]],
    data_texts: list[str],
    previous_names: list[str],
    person_texts: list[str] | tuple[str, ...],
) -> tuple[list[str], list[str]]:
    """Lint one notice and tell the template's failures (global: they block the whole render) from those the
    person's own data causes (they hold back this person only): a rule that still fails with the person's
    fields replaced by a sentinel is the template's."""
    args: dict[str, Any] = {
        "own": own,
        "data_texts": data_texts,
        "previous_names": previous_names,
        "person_texts": person_texts,
    }
    found = lint_notice(notice, parts=parts, person=person, **args)
    if not found or not person_texts:
        return found, []
    neutral = {**notice, **{k: _sentinel(notice[k], person_texts) for k in ("subject", "body", "html")}}
    neutral_parts = {k: _sentinel(v, person_texts) or "" for k, v in parts.items()}
    still = {p.split(": ")[1] for p in lint_notice(neutral, parts=neutral_parts, person=person, **args)}
    template = [p for p in found if p.split(": ")[1] in still]
    return template, [p for p in found if p.split(": ")[1] not in still]


# ---- responder text in the reader's language ---------------------------------------------------------------

HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff01-\uff60]")  # Han and CJK punctuation
LATIN_SENTENCE = re.compile(r"[A-Za-z]{2,}(?:[\s,;:'’-]+[A-Za-z]+){3,}")  # four Latin words in a row: English
LANGUAGE_NAMES = {"zh-CN": "Chinese (zh-CN)", "en": "English"}


def name_allow_list(organisation: dict[str, Any]) -> list[str]:
    """Names that may stand in either language's text: the platform and operator names of incident.toml, and
    [organisation] names (people, products, systems)."""
    names = [organisation.get(k) for k in ("platform", "platform_en", "operator", "operator_en")]
    extra = organisation.get("names", [])
    names += extra if isinstance(extra, list) else []
    return sorted({str(n) for n in names if n and str(n).strip()}, key=len, reverse=True)


def language_problem(text: str, locale: str, names: list[str]) -> str | None:
    """Why `text` cannot stand in a `locale` notice (missing, or written in the other script), else None; the
    allow-listed names are exempt."""
    if not text.strip():
        return f"no {LANGUAGE_NAMES[locale]} text"
    bare = text
    for name in names:
        bare = bare.replace(name, " ")
    if not bare.strip(" \t\n,.;:()（），。、；："):
        return None  # nothing but names
    if locale == "zh-CN":
        if not HAN.search(bare):
            return "the zh-CN text is not Chinese"
        sentence = LATIN_SENTENCE.search(bare)
        return f"the zh-CN text has English in it ({sentence.group(0)[:30]!r})" if sentence else None
    found = CJK.search(bare)
    return f"the English text has Chinese in it ({found.group(0)!r})" if found else None


def missing_translations(texts: list[dict[str, str]], *, locales: list[str], names: list[str]) -> list[str]:
    """Responder texts a notice in one of `locales` cannot show in its reader's language, one line each naming
    the entry and its text's start: a notice never silently shows the other language's text instead."""
    found = []
    for t in texts:
        start = (t["zh-CN"] or t["en"]).replace("\n", " ")
        start = start if len(start) <= 24 else start[:24] + "…"
        for loc in locales:
            problem = language_problem(t[loc], loc, names)
            if problem:
                found.append(f"responder-language: {t['where']} “{start}”: {problem}")
    return found
