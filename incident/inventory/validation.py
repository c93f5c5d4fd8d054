"""Check one inventory row field by field: each check returns the value to store or names the field and the problem.

The checks run on every row of files with millions of people, so each is a small function over one cell, with the
common case (an empty or already normalised cell) first.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from incident import clock
from incident.inventory.rows import Cells
from incident.privacy import has_control_chars

PEOPLE_COLUMNS = (
    "person_id",
    "name",
    "email",
    "phone",
    "push_token",
    "locale",
    "region",
    "birth_date",
    "guardian_name",
    "guardian_email",
    "guardian_phone",
    "postal_address",
    "account_status",
    "cancelled_at",
)
HOLDING_COLUMNS = ("person_id", "system", "category", "since", "until")

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
# NUL and other C0 controls (PostgreSQL refuses NUL in text; none belongs in a name); a postal address may
# span lines.
E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
CN_MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
REGION_RE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
# Characters that pass for nothing or reorder what a reader sees: C1 controls, bidi marks, embeddings, overrides
# and isolates (CVE-2021-42574), the line and paragraph separators, and tabs (a one-line field must read as one).
UNSEEN_RE = re.compile("[\t\u0080-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
LOCALES = {"zh-CN": "zh-CN", "zh-cn": "zh-CN", "en": "en"}
ACCOUNT_STATUSES = ("active", "cancelled")
MAX_ID = 64
EARLIEST_BIRTH = "1900-01-01"
MAX_TEXT = 1000


class BadCell(ValueError):
    """One cell of a row is refused: `field` names its column, `problem` says why (args are (field, problem))."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(field, problem)
        self.field, self.problem = field, problem


# ---- single values ------------------------------------------------------------------------------


def normalise_email(value: str) -> str:
    """Return a syntactically valid address with a lower-cased domain, or raise ValueError."""
    if len(value) > 254 or not EMAIL_RE.match(value) or ".." in value:
        raise ValueError("not an email address")
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


@lru_cache(maxsize=4096)
def normalise_region(value: str) -> str:
    """Return the upper-cased ISO country or subdivision code (CN-FJ, DE, US-CA); cached, regions repeat."""
    # ASCII only, compared before upper-casing: "ın".upper() is "IN" and "ß".upper() is "SS".
    region = value.upper() if value.isascii() else value
    if not REGION_RE.match(region):
        raise ValueError(f"not an ISO country or subdivision code: {region[:12]!r}")
    return region


@lru_cache(maxsize=1)
def _cn_mobile() -> re.Pattern[str]:
    """phonenumbers' own pattern of a valid Chinese mobile number, for the fast path of the common case."""
    import phonenumbers

    metadata = phonenumbers.PhoneMetadata.metadata_for_region("CN")
    mobile = metadata.mobile if metadata is not None else None
    pattern = mobile.national_number_pattern if mobile is not None else None
    return re.compile(pattern or r"1[3-9]\d{9}")


def _valid_e164(number: str) -> bool:
    """Whether an E.164-shaped number is a real one (+999... has the shape and no country)."""
    # phonenumbers takes ~35 µs a number; a Chinese mobile, most of an inventory, is checked by its pattern alone.
    if number.startswith("+86") and _cn_mobile().fullmatch(number[3:]):
        return True
    import phonenumbers

    try:
        return bool(phonenumbers.is_valid_number(phonenumbers.parse(number, None)))
    except phonenumbers.NumberParseException:
        return False


def normalise_phone(value: str, region: str | None) -> str:
    """Return a valid number in E.164 (+8613800000000); national numbers use the person's region."""
    compact = value if E164_RE.match(value) else re.sub(r"[\s().-]", "", value)
    if E164_RE.match(compact):
        if not _valid_e164(compact):
            raise ValueError("not a valid phone number")
        return compact
    country = (region or "CN").split("-")[0]
    if country == "CN" and CN_MOBILE_RE.match(compact) and _cn_mobile().fullmatch(compact):
        return "+86" + compact
    import phonenumbers  # slow to import and to call: only for numbers not already in E.164

    try:
        parsed = phonenumbers.parse(value, country)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError("not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def parse_date(value: str) -> date:
    """Parse an ISO date (a datetime is cut to its date)."""
    if len(value) == 10:
        return date.fromisoformat(value)
    return datetime.fromisoformat(value).date()


@lru_cache(maxsize=1 << 16)
def iso_date(value: str) -> str:
    """Return the date a cell holds as YYYY-MM-DD; cached, as an inventory repeats a few thousand dates."""
    return parse_date(value).isoformat()


# ---- one cell of a row --------------------------------------------------------------------------


def _check_person_id(pid: str) -> None:
    if not pid:
        raise BadCell("person_id", "is empty")
    if len(pid) > MAX_ID or "\n" in pid or "\r" in pid or "\t" in pid:
        raise BadCell("person_id", "must be at most 64 characters on one line")


def _region(value: str) -> str | None:
    if not value:
        return None
    try:
        return normalise_region(value)
    except ValueError as exc:
        raise BadCell("region", str(exc)) from None


def _locale(value: str) -> str:
    locale = value or "zh-CN"
    code = LOCALES.get(locale)
    if code is None:
        raise BadCell("locale", f"unknown locale {locale[:12]!r} (use zh-CN or en)")
    return code


def _email(field: str, value: str) -> str | None:
    if not value:
        return None
    try:
        return normalise_email(value)
    except ValueError as exc:
        raise BadCell(field, str(exc)) from None


def _phone(field: str, value: str, region: str | None) -> str | None:
    if not value:
        return None
    try:
        return normalise_phone(value, region)
    except ValueError as exc:
        raise BadCell(field, str(exc)) from None


def _date(field: str, value: str) -> str:
    try:
        return iso_date(value)
    except ValueError:
        raise BadCell(field, f"not an ISO date: {value[:20]!r}") from None


def _optional_date(field: str, value: str) -> str | None:
    return _date(field, value) if value else None


def _account_status(value: str, cancelled_at: str | None) -> str:
    status = value or "active"
    if status not in ACCOUNT_STATUSES:
        raise BadCell("account_status", f"must be active or cancelled, not {status[:20]!r}")
    if status == "active" and cancelled_at:
        raise BadCell("cancelled_at", "is set but account_status is active")
    return status


def _check_born(birth_date: str | None, cancelled_at: str | None, today: str | None) -> None:
    # ISO dates (YYYY-MM-DD) order as strings like the days they name.
    today = today or clock.now().date().isoformat()
    if birth_date and birth_date > today:
        raise BadCell("birth_date", "is in the future")
    if birth_date and birth_date < EARLIEST_BIRTH:
        raise BadCell("birth_date", f"is before {EARLIEST_BIRTH[:4]}: no one alive was born then")
    if cancelled_at and cancelled_at > today:
        raise BadCell("cancelled_at", "is in the future")
    if cancelled_at and birth_date and cancelled_at < birth_date:
        raise BadCell("cancelled_at", "is before birth_date")


def _free_text_suspect(pid: str, name: str, guardian_name: str, push_token: str, address: str) -> bool:
    """Decide, with one search over every free-text cell, whether the row needs the field-by-field check."""
    return (
        len(name) > MAX_TEXT
        or len(guardian_name) > MAX_TEXT
        or len(push_token) > MAX_TEXT
        or len(address) > MAX_TEXT
        or has_control_chars(f"{pid}{name}{guardian_name}{push_token}{address.replace(chr(10), '')}")
        or UNSEEN_RE.search(f"{pid}{name}{guardian_name}{push_token}{address.replace(chr(9), '')}") is not None
    )


def _check_free_text(pid: str, fields: tuple[tuple[str, str], ...]) -> None:
    """Raise the first problem of the free-text cells: too long, or control characters (an address may span lines)."""
    for col, value in fields:
        if len(value) > MAX_TEXT:
            raise BadCell(col, "is longer than 1000 characters")
        if has_control_chars(value) and not (
            col == "postal_address" and not has_control_chars(value.replace("\n", ""))
        ):
            raise BadCell(col, "contains control characters")
        unseen = UNSEEN_RE.search(value.replace("\t", "") if col == "postal_address" else value)
        if unseen is not None:
            raise BadCell(col, _unseen_problem(unseen.group()))
    if has_control_chars(pid):
        raise BadCell("person_id", "contains control characters")
    unseen = UNSEEN_RE.search(pid)
    if unseen is not None:
        raise BadCell("person_id", _unseen_problem(unseen.group()))


def _unseen_problem(char: str) -> str:
    return f"contains U+{ord(char):04X}, a tab, invisible or direction character that changes how the text reads"


# ---- whole rows ---------------------------------------------------------------------------------


def person_values(cells: Cells, today: str | None = None) -> tuple[Any, ...]:
    """Return one people row as stored (cells in PEOPLE_COLUMNS order), or raise BadCell for its first bad field."""
    # The fields are checked in a fixed order, so a row with several problems always names the same one. `today`
    # is clock.now()'s date, passed in so that a million rows do not read the clock a million times.
    pid, name, email, phone, push_token, locale, region, birth, g_name, g_email, g_phone, address, status, gone = cells
    _check_person_id(pid)
    region_code = _region(region)
    locale_code = _locale(locale)
    email_address = _email("email", email)
    guardian_address = _email("guardian_email", g_email)
    phone_number = _phone("phone", phone, region_code)
    guardian_number = _phone("guardian_phone", g_phone, region_code)
    birth_date = _optional_date("birth_date", birth)
    cancelled_at = _optional_date("cancelled_at", gone)
    account_status = _account_status(status, cancelled_at)
    _check_born(birth_date, cancelled_at, today)
    if _free_text_suspect(pid, name, g_name, push_token, address):
        free_text = (("name", name), ("guardian_name", g_name), ("push_token", push_token), ("postal_address", address))
        _check_free_text(pid, free_text)
    return (
        pid,
        name or None,
        email_address,
        phone_number,
        push_token or None,
        locale_code,
        region_code,
        birth_date,
        g_name or None,
        guardian_address,
        guardian_number,
        address or None,
        account_status,
        cancelled_at,
    )


def holding_values(cells: Cells, systems: set[str], categories: set[str]) -> tuple[Any, ...]:
    """Return one holdings row as stored (cells in HOLDING_COLUMNS order), or raise BadCell for its first bad field."""
    pid, system, category, since_cell, until_cell = cells
    if not pid:
        raise BadCell("person_id", "is empty")
    if system not in systems:
        raise BadCell("system", f"unknown system {system[:64]!r} (import it with --systems)")
    if category not in categories:
        raise BadCell("category", f"unknown category {category[:64]!r}")
    since = _date("since", since_cell)
    until = _optional_date("until", until_cell)
    if until is not None and until < since:
        raise BadCell("until", "is before since")
    return (pid, system, category, since, until)
