"""Each field check of the inventory import answers with its own exact line, and the first bad field of a row is
always the same one: a responder fixing a file row by row is told the same thing every time."""

from __future__ import annotations

import pytest
from support import PEOPLE_HEADER, WorkspaceDir

NEWCOMER = "newcomer,新人,new@example.cn,13800000009,,zh-CN,CN-FJ,1990-01-01,,,,,active,"
HOLDINGS_HEADER = "person_id,system,category,since,until"


def people(row: str) -> dict[str, str]:
    """A people file: the header, a good row (line 2), then `row` (line 3)."""
    return {"people.csv": f"{PEOPLE_HEADER}\n{NEWCOMER}\n{row}\n"}


def holdings(row: str) -> dict[str, str]:
    """The newcomer, and a holdings file: the header, a good holding (line 2), then `row` (line 3)."""
    return {
        "people.csv": f"{PEOPLE_HEADER}\n{NEWCOMER}\n",
        "holdings.csv": f"{HOLDINGS_HEADER}\nnewcomer,member-db,phone,2024-01-01,\n{row}\n",
    }


LONG = "x" * 1001

# Each case: one bad row and the exact line the import must answer with (after "error: <inputs folder>/").
FIELD_ERRORS = {
    "empty person_id": (people(",x,,,,,,,,,,,,"), "people.csv:3: person_id: is empty"),
    "person_id over 64 characters": (
        people("p" * 65 + ",x,,,,,,,,,,,,"),
        "people.csv:3: person_id: must be at most 64 characters on one line",
    ),
    "tab in person_id": (
        people("a\tb,x,,,,,,,,,,,,"),
        "people.csv:3: person_id: must be at most 64 characters on one line",
    ),
    "newline in person_id": (
        people('"a\nb",x,,,,,,,,,,,,'),
        "people.csv:3: person_id: must be at most 64 characters on one line",
    ),
    "control character in person_id": (
        people("a\x01b,x,,,,,,,,,,,,"),
        "people.csv:3: person_id: contains control characters",
    ),
    "name over 1000 characters": (
        people(f"long,{LONG},,,,,,,,,,,,"),
        "people.csv:3: name: is longer than 1000 characters",
    ),
    "control character in guardian_name": (
        people("kid,x,,,,,,2016-01-01,Mu\x07m,mum@example.cn,,,,"),
        "people.csv:3: guardian_name: contains control characters",
    ),
    "escape in push_token": (
        people("tok,x,,,\x1b[2Jtok,,,,,,,,,"),
        "people.csv:3: push_token: contains control characters",
    ),
    "carriage return in postal_address": (
        people('post,x,,,,,,,,,,"Line 1\rLine 2",,'),
        "people.csv:3: postal_address: contains control characters",
    ),
    "postal_address over 1000 characters": (
        people(f"post,x,,,,,,,,,,{LONG},,"),
        "people.csv:3: postal_address: is longer than 1000 characters",
    ),
    "bad guardian_phone": (
        people("kid,x,,,,,,2016-01-01,Mum,,not-a-phone,,,"),
        "people.csv:3: guardian_phone: not a phone number",
    ),
    "phone that is no number anywhere": (
        people("short,x,,12345,,,CN,,,,,,,"),
        "people.csv:3: phone: not a valid phone number",
    ),
    "bad cancelled_at": (
        people("gone,x,,,,,,,,,,,cancelled,2025-02-30"),
        "people.csv:3: cancelled_at: not an ISO date: '2025-02-30'",
    ),
    "a long bad date is quoted cut to 20 characters": (
        people("late,x,,,,,,1990-01-01T25:00:00+08:00 and more,,,,,,"),
        "people.csv:3: birth_date: not an ISO date: '1990-01-01T25:00:00+'",
    ),
    "empty person_id in holdings": (
        holdings(",member-db,phone,2024-01-01,"),
        "holdings.csv:3: person_id: is empty",
    ),
    "bad until": (
        holdings("newcomer,member-db,password,2024-01-01,soon"),
        "holdings.csv:3: until: not an ISO date: 'soon'",
    ),
    # Several problems in one row: the checks run person_id, region, locale, email, guardian_email, phone,
    # guardian_phone, birth_date, cancelled_at, account_status, free text.
    "region before locale and email": (
        people("many,x,bad,,,fr,China,,,,,,,"),
        "people.csv:3: region: not an ISO country or subdivision code: 'CHINA'",
    ),
    "locale before email": (
        people("many,x,bad,,,fr,,,,,,,,"),
        "people.csv:3: locale: unknown locale 'fr' (use zh-CN or en)",
    ),
    "email before phone and dates": (
        people("many,x,bad,call me,,,,not-a-date,,,,,,"),
        "people.csv:3: email: not an email address",
    ),
    "dates before account_status": (
        people("many,x,,,,,,not-a-date,,,,,frozen,"),
        "people.csv:3: birth_date: not an ISO date: 'not-a-date'",
    ),
    "account_status before free text": (
        people(f"many,{LONG},,,,,,,,,,,frozen,"),
        "people.csv:3: account_status: must be active or cancelled, not 'frozen'",
    ),
    "the name before the person_id's control characters": (
        people("a\x01b,n\x02,,,,,,,,,,,,"),
        "people.csv:3: name: contains control characters",
    ),
}


def import_args(ws: WorkspaceDir, files: dict[str, str]) -> list[str]:
    args = ["inventory", "import"]
    for name, content in files.items():
        args += [f"--{name.split('.')[0]}", str(ws.write(name, content))]
    return args


@pytest.mark.parametrize(("files", "error"), list(FIELD_ERRORS.values()), ids=list(FIELD_ERRORS))
def test_each_field_check_answers_with_its_exact_line_and_changes_nothing(
    inventory_with_backups: WorkspaceDir, files: dict[str, str], error: str
) -> None:
    """Given an imported inventory, when a file with one bad row is imported, then the first line of the error is
    exactly file:line: field: problem, and no person, holding or audit entry changes."""
    ws = inventory_with_backups
    before = ws.tables()

    result = ws.refuse(*import_args(ws, files), error=error)

    assert result.stderr.splitlines()[0] == f"error: {ws.root / 'inputs'}/{error}", result.output
    assert ws.tables() == before


def test_an_address_may_span_lines(workspace: WorkspaceDir) -> None:
    """Given a postal address over two lines, when imported, then it is stored with its line break."""
    path = workspace.write("people.csv", f'{PEOPLE_HEADER}\npost,x,,,,,,,,,,"四川省成都市\n红星路1号",,\n')

    workspace.ok("inventory", "import", "--people", str(path))

    assert workspace.sql("SELECT postal_address FROM person WHERE person_id = 'post'") == [("四川省成都市\n红星路1号",)]
