"""A responder loads the company's data inventory: good files land, bad files change nothing."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import uuid
from pathlib import Path

import pytest
from freezegun import freeze_time
from support import HOLDINGS_CSV, PEOPLE_CSV, PEOPLE_HEADER, SYSTEMS_YAML, WorkspaceDir

import incident.inventory.importer


def test_importing_the_hand_inventory_counts_everything(workspace: WorkspaceDir) -> None:
    """Given systems, people and holdings files, when they are imported, then the report and `inventory stats`
    count every system, person, holding, child, cancelled account and unreachable person."""
    out = workspace.import_inventory()

    assert out.strip() == "systems: 4  people: 13 read, 13 new  holdings: 19 read, 19 new"
    with freeze_time("2026-03-10 12:00:00"):
        stats = workspace.json("inventory", "stats")
    assert (stats["people"], stats["holdings"], stats["cancelled"]) == (13, 19, 1)
    assert stats["children"] == 2  # born 2015 and 2016; the one born 2012-03-10 turned 14 that day
    assert stats["no_usable_channel"] == 2  # the adult with no contact, the child with no guardian contact
    by_system = {s["name"]: (s["kind"], s["people"], s["holdings"]) for s in stats["systems"]}
    assert by_system == {
        "archive-backup": ("backup", 1, 1),
        "member-db": ("internal", 11, 15),
        "order-db": ("internal", 2, 2),
        "pay-partner": ("partner", 1, 1),
    }
    assert stats["categories"]["phone"] == {"holdings": 9, "people": 8}  # two in the backup story
    assert stats["categories"]["bank_card"] == {"holdings": 1, "people": 1}


def test_the_human_stats_name_the_same_counts(inventory_with_backups: WorkspaceDir) -> None:
    """Given the hand inventory, when stats are printed for a person, then they show the same numbers."""
    out = inventory_with_backups.ok("inventory", "stats")

    assert "people:            13" in out
    assert "holdings:          19" in out
    assert "archive-backup" in out and "backup" in out


def test_reimporting_the_same_files_changes_nothing(inventory_with_backups: WorkspaceDir) -> None:
    """Given an imported inventory, when the same files are imported again, then no person or holding is
    added and the stats are identical."""
    before = inventory_with_backups.json("inventory", "stats")
    rows_before = inventory_with_backups.sql("SELECT * FROM holding ORDER BY id")

    out = inventory_with_backups.import_inventory()

    assert out.strip() == "systems: 4  people: 13 read, 0 new  holdings: 19 read, 0 new"
    assert inventory_with_backups.json("inventory", "stats") == before
    assert inventory_with_backups.sql("SELECT * FROM holding ORDER BY id") == rows_before


def test_reimporting_a_changed_person_updates_them_in_place(inventory_with_backups: WorkspaceDir) -> None:
    """Given an imported inventory, when a person's row comes again with a new email, then the person is
    updated (upsert by person_id), not duplicated."""
    changed = PEOPLE_HEADER + "\ncn-adult,张伟,new.zhang@example.cn,13800000001,,zh-CN,CN-FJ,1990-05-01,,,,,active,\n"

    out = inventory_with_backups.import_inventory(people=changed, holdings=None, systems=None)

    assert "people: 1 read, 0 new" in out
    assert inventory_with_backups.sql("SELECT email FROM person WHERE person_id = 'cn-adult'") == [
        ("new.zhang@example.cn",)
    ]
    assert inventory_with_backups.sql("SELECT COUNT(*) FROM person") == [(13,)]


def as_jsonl(csv_text: str) -> str:
    """Turn a CSV inventory file into JSON Lines, leaving empty fields out."""
    rows = csv.DictReader(io.StringIO(csv_text))
    return "".join(json.dumps({k: v for k, v in r.items() if v}, ensure_ascii=False) + "\n" for r in rows)


def test_json_lines_import_the_same_inventory_as_csv(
    inventory_with_backups: WorkspaceDir,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Given the same inventory as JSON Lines, when it is imported into a second workspace, then every person
    and holding matches the CSV import exactly."""
    from conftest import init_workspace

    same = (
        "SELECT person_id, name, email, phone, push_token, locale, region, birth_date, guardian_name, "
        "guardian_email, guardian_phone, postal_address, account_status, cancelled_at FROM person ORDER BY 1"
    )
    holdings_sql = "SELECT person_id, system, category, since, until FROM holding ORDER BY 1, 2, 3, 4"
    expected_people, expected_holdings = inventory_with_backups.sql(same), inventory_with_backups.sql(holdings_sql)
    if os.environ.get("INCIDENT_DATABASE_URL"):  # PostgreSQL pass: the second workspace gets its own database
        server = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("INCIDENT_DATABASE_URL", server.create_database(f"t_{uuid.uuid4().hex[:16]}"))
    other = init_workspace(tmp_path / "jsonl")
    people = other.write("people.jsonl", as_jsonl(PEOPLE_CSV))
    holdings = other.write("holdings.jsonl", as_jsonl(HOLDINGS_CSV))
    systems = other.write("systems.yaml", SYSTEMS_YAML)

    out = other.ok(
        "inventory", "import", "--systems", str(systems), "--people", str(people), "--holdings", str(holdings)
    )

    assert out.strip() == "systems: 4  people: 13 read, 13 new  holdings: 19 read, 19 new"
    assert other.sql(same) == expected_people
    assert other.sql(holdings_sql) == expected_holdings


def test_phone_numbers_are_stored_in_e164(inventory_with_backups: WorkspaceDir) -> None:
    """Given national numbers in the people file, then each is stored in E.164 using the person's region."""
    phones = dict(inventory_with_backups.sql("SELECT person_id, phone FROM person WHERE phone IS NOT NULL"))

    assert phones["cn-adult"] == "+8613800000001"  # 13800000001 in CN
    assert phones["ca-resident"] == "+14155550100"  # (415) 555-0100 in US-CA
    assert phones["de-resident"] == "+4915112345678"  # +49 151 12345678, spaces dropped
    assert inventory_with_backups.sql("SELECT guardian_phone FROM person WHERE person_id = 'child-with-guardian'") == [
        ("+8613900000002",)
    ]


def test_a_utf8_bom_and_crlf_line_ends_are_accepted(workspace: WorkspaceDir) -> None:
    """Given files saved by a spreadsheet (UTF-8 BOM, CRLF line ends), when imported, then the first column
    name and the last field of each row come through clean."""
    people = "\ufeff" + PEOPLE_CSV.replace("\n", "\r\n")
    holdings = "\ufeff" + HOLDINGS_CSV.replace("\n", "\r\n")

    out = workspace.import_inventory(people=people, holdings=holdings)

    assert "people: 13 read, 13 new  holdings: 19 read, 19 new" in out
    assert workspace.sql("SELECT cancelled_at FROM person WHERE person_id = 'cancelled-in-backup'") == [("2025-12-01",)]
    assert workspace.sql(
        "SELECT COUNT(*) FROM person WHERE person_id LIKE '%' || char(65279) || '%' "
        "OR account_status NOT IN ('active', 'cancelled')"
    ) == [(0,)]


NEWCOMER = "newcomer,新人,new@example.cn,13800000009,,zh-CN,CN-FJ,1990-01-01,,,,,active,"
HOLDINGS_HEADER = "person_id,system,category,since,until"
NEWCOMER_HOLDING = "newcomer,member-db,phone,2024-01-01,"


def people_file(*rows: str, header: str = PEOPLE_HEADER) -> dict[str, str | bytes]:
    return {"people.csv": "\n".join((header, NEWCOMER, *rows)) + "\n"}


def holdings_file(*rows: str, header: str = HOLDINGS_HEADER) -> dict[str, str | bytes]:
    return {
        "people.csv": f"{PEOPLE_HEADER}\n{NEWCOMER}\n",
        "holdings.csv": "\n".join((header, NEWCOMER_HOLDING, *rows)) + "\n",
    }


# Each case: the files of one import (a good newcomer first, so a refused import visibly adds nothing),
# and the exact error line it must produce.
BAD_INPUT = {
    "bad email": (people_file("bad-email,x,not-an-email,,,,,,,,,,,"), "people.csv:3: email: not an email address"),
    "bad guardian email": (
        people_file("kid,x,,,,,,2016-01-01,Mum,mum@,,,,"),
        "people.csv:3: guardian_email: not an email address",
    ),
    "bad phone": (people_file("bad-phone,x,,call me,,,CN,,,,,,,"), "people.csv:3: phone: not a phone number"),
    "bad date": (
        people_file("bad-date,x,,,,,,2001-13-01,,,,,,"),
        "people.csv:3: birth_date: not an ISO date: '2001-13-01'",
    ),
    "birth in the future": (
        people_file("unborn,x,,,,,,2999-01-01,,,,,,"),
        "people.csv:3: birth_date: is in the future",
    ),
    "unknown locale": (
        people_file("french,x,,,,fr,,,,,,,,"),
        "people.csv:3: locale: unknown locale 'fr' (use zh-CN or en)",
    ),
    "bad region": (
        people_file("somewhere,x,,,,,China,,,,,,,"),
        "people.csv:3: region: not an ISO country or subdivision code: 'CHINA'",
    ),
    "bad account status": (
        people_file("frozen,x,,,,,,,,,,,frozen,"),
        "people.csv:3: account_status: must be active or cancelled, not 'frozen'",
    ),
    "cancelled_at on an active account": (
        people_file("half,x,,,,,,,,,,,active,2025-01-01"),
        "people.csv:3: cancelled_at: is set but account_status is active",
    ),
    "unknown column": (people_file(header=PEOPLE_HEADER + ",shoe_size"), "people.csv:1: shoe_size: unknown column"),
    "missing required column": (
        people_file(header=PEOPLE_HEADER.replace("person_id,", "")),
        "people.csv:1: person_id: required column is missing",
    ),
    "duplicate person_id": (
        people_file(NEWCOMER.replace("新人", "新人二")),
        "people.csv:3: person_id: duplicate id (also on line 2)",
    ),
    "wrong field count": (people_file("short,row"), "people.csv:3: has 2 fields, the header has 14"),
    "latin-1 bytes": (
        {"people.csv": f"{PEOPLE_HEADER}\n{NEWCOMER}\n".encode() + b"latin,Jos\xe9,,,,,,,,,,,,\n"},
        "people.csv:3: not UTF-8 text",
    ),
    "jsonl unknown field": (
        {"people.jsonl": '{"person_id": "a"}\n{"person_id": "b", "shoe_size": "42"}\n'},
        "people.jsonl:2: shoe_size: unknown field",
    ),
    "jsonl broken line": ({"people.jsonl": '{"person_id": "a"}\n{"person_id": \n'}, "people.jsonl:2: invalid JSON"),
    "jsonl bad email": (
        {"people.jsonl": '{"person_id": "a"}\n{"person_id": "b", "email": "b@"}\n'},
        "people.jsonl:2: email: not an email address",
    ),
    "unknown system": (
        holdings_file("newcomer,crm,phone,2024-01-01,"),
        "holdings.csv:3: system: unknown system 'crm' (import it with --systems)",
    ),
    "unknown category": (
        holdings_file("newcomer,member-db,shoe_size,2024-01-01,"),
        "holdings.csv:3: category: unknown category 'shoe_size'",
    ),
    "holding for an unknown person": (
        holdings_file("ghost,member-db,phone,2024-01-01,"),
        "holdings.csv:3: person_id: unknown person 'ghost'",
    ),
    "until before since": (
        holdings_file("newcomer,member-db,password,2024-01-02,2024-01-01"),
        "holdings.csv:3: until: is before since",
    ),
    "bad since": (
        holdings_file("newcomer,member-db,password,01/02/2024,"),
        "holdings.csv:3: since: not an ISO date: '01/02/2024'",
    ),
    "holdings without since": (
        holdings_file(header="person_id,system,category,until"),
        "holdings.csv:1: since: required column is missing",
    ),
}


def import_args(ws: WorkspaceDir, files: dict[str, str | bytes]) -> list[str]:
    args = ["inventory", "import"]
    for name, content in files.items():
        args += [f"--{Path(name).stem}", str(ws.write(name, content))]
    return args


@pytest.mark.parametrize(("files", "error"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_refused_and_changes_nothing(
    inventory_with_backups: WorkspaceDir, files: dict[str, str | bytes], error: str
) -> None:
    """Given an imported inventory, when a file with one bad row is imported, then the command names file, line,
    field and problem, exits non-zero, and no person, holding or audit entry changes."""
    before = inventory_with_backups.tables()

    inventory_with_backups.refuse(
        *import_args(inventory_with_backups, files), error=f"{inventory_with_backups.root / 'inputs'}/{error}"
    )

    assert inventory_with_backups.tables() == before


def test_bad_input_exits_with_the_bad_input_code(inventory_with_backups: WorkspaceDir) -> None:
    """Given a bad row, then the exit status is 2 (bad input), as scripts wrapping the tool expect."""
    result = inventory_with_backups.run(*import_args(inventory_with_backups, BAD_INPUT["bad email"][0]))

    assert result.exit_code == 2, f"{result.exit_code!r} {result.exception!r}\n{result.output}"


def test_a_duplicate_across_batches_is_refused(
    inventory_with_backups: WorkspaceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given batches of two rows, when a person_id from the first batch comes again in the second, then the
    import is refused on the second occurrence's line and nothing changes."""
    monkeypatch.setattr(incident.inventory.importer, "BATCH", 2)
    before = inventory_with_backups.tables()
    files = people_file("other,另一人,,,,,,,,,,,,", NEWCOMER.replace("新人", "新人二"))

    inventory_with_backups.refuse(
        *import_args(inventory_with_backups, files),
        error=f"{inventory_with_backups.root / 'inputs'}/people.csv:4: person_id: duplicate id (appears earlier in "
        "the file)",
    )

    assert inventory_with_backups.tables() == before


def test_several_bad_rows_are_all_listed(inventory_with_backups: WorkspaceDir) -> None:
    """Given two bad rows, then both lines are reported and the user is told nothing was imported."""
    files = people_file("a,x,bad,,,,,,,,,,,", "b,x,,,,xx,,,,,,,,")

    result = inventory_with_backups.refuse(
        *import_args(inventory_with_backups, files), error="people.csv:3: email: not an email address"
    )

    assert "people.csv:4: locale: unknown locale 'xx'" in result.stderr
    assert "nothing was imported (use --skip-invalid to import the good rows)" in result.stderr


def test_skip_invalid_imports_the_good_rows_and_writes_the_rejects(
    inventory_with_backups: WorkspaceDir, tmp_path: Path
) -> None:
    """Given a people file with good and bad rows, when imported with --skip-invalid --rejects FILE, then the
    good rows land and each bad row is written with its reason to an owner-only file."""
    rejects = tmp_path / "rejects" / "people-rejects.csv"
    people = inventory_with_backups.write(
        "people.csv",
        "\n".join(
            (
                PEOPLE_HEADER,
                NEWCOMER,
                "bad-email,x,not-an-email,,,,,,,,,,,",
                "good-two,好人,,,,,,,,,,,,",
                "french,x,,,,fr,,,,,,,,",
            )
        )
        + "\n",
    )

    result = inventory_with_backups.run(
        "inventory", "import", "--people", str(people), "--skip-invalid", "--rejects", str(rejects)
    )

    assert result.exit_code == 0, result.output
    assert "people: 4 read, 2 new" in result.stdout
    assert f"rejected 2 rows; reasons in {rejects}" in result.stderr
    assert {
        r[0]
        for r in inventory_with_backups.sql(
            "SELECT person_id FROM person WHERE person_id IN ('newcomer', 'good-two', 'bad-email', 'french')"
        )
    } == {"newcomer", "good-two"}
    assert stat.S_IMODE(rejects.stat().st_mode) == 0o600
    rows = list(csv.DictReader(rejects.open(encoding="utf-8")))
    assert [(r["line"], r["field"], r["problem"]) for r in rows] == [
        ("3", "email", "not an email address"),
        ("5", "locale", "unknown locale 'fr' (use zh-CN or en)"),
    ]
    assert all(r["file"] == str(people) for r in rows)
    assert "person_id=bad-email" in rows[0]["row"]


def test_skip_invalid_without_a_rejects_file_writes_one_in_the_workspace(inventory_with_backups: WorkspaceDir) -> None:
    """Given --skip-invalid and no --rejects, then the rejects land in the workspace's rejected/ folder."""
    people = inventory_with_backups.write("people.csv", f"{PEOPLE_HEADER}\nbad-email,x,not-an-email,,,,,,,,,,,\n")

    inventory_with_backups.ok("inventory", "import", "--people", str(people), "--skip-invalid")

    written = list((inventory_with_backups.root / "rejected").glob("import-*.csv"))
    assert len(written) == 1
    assert stat.S_IMODE(written[0].stat().st_mode) == 0o600
    assert "not an email address" in written[0].read_text(encoding="utf-8")


SYSTEMS_ERRORS = {
    "bad kind": (
        "systems:\n  - name: member-db\n    kind: internal\n  - name: crm\n    kind: database\n",
        "systems.yaml:5: systems.1.kind: Input should be 'internal', 'backup' or 'partner'",
    ),
    "unknown key": (
        "systems:\n  - name: member-db\n    kind: internal\n    owner: it\n",
        "systems.yaml:4: systems.0.owner: unknown key",
    ),
    "python tag": (
        "systems:\n  - name: member-db\n    kind: !!python/object:os.system\n",
        "systems.yaml:3: invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'",
    ),
    "bad name": (
        "systems:\n  - name: member db\n    kind: internal\n",
        "systems.yaml:2: systems.0.name: String should match pattern",
    ),
    "not a list": ("systems: member-db\n", "systems.yaml:1: systems: Input should be a valid list"),
}


@pytest.mark.parametrize(("content", "error"), list(SYSTEMS_ERRORS.values()), ids=list(SYSTEMS_ERRORS))
def test_a_bad_systems_file_names_file_and_line(inventory_with_backups: WorkspaceDir, content: str, error: str) -> None:
    """Given a systems YAML file with a mistake, when imported, then the error names file, line and field, no
    object-building YAML tag is ever run, and nothing changes."""
    before = inventory_with_backups.tables()
    path = inventory_with_backups.write("systems.yaml", content)

    inventory_with_backups.refuse(
        "inventory", "import", "--systems", str(path), error=f"{inventory_with_backups.root / 'inputs'}/{error}"
    )

    assert inventory_with_backups.tables() == before


def test_an_import_with_no_files_is_a_usage_error(workspace: WorkspaceDir) -> None:
    """Given no --people, --holdings or --systems, then the import is refused."""
    result = workspace.run("inventory", "import")

    assert result.exit_code != 0, result.output
    assert "give at least one of --people, --holdings, --systems" in result.output


def test_other_domains_ask_the_inventory_by_name(inventory_with_backups: WorkspaceDir) -> None:
    """Given the hand inventory, when an incident or a report asks about systems, then the inventory's named
    queries answer: which exist, which are unknown (in the order asked), and each known one's description."""
    from incident.config import find_workspace
    from incident.db import unit_of_work
    from incident.inventory.models import system_exists, system_names, systems_by_name, unknown_systems

    with unit_of_work(find_workspace(inventory_with_backups.root), write=False) as session:
        assert system_exists(session, "member-db") and not system_exists(session, "crm")
        assert unknown_systems(session, ["crm", "member-db", "ledger"]) == ["crm", "ledger"]
        found = systems_by_name(session, ["pay-partner", "crm"])
        assert {name: (s.kind, s.description) for name, s in found.items()} == {
            "pay-partner": ("partner", "支付机构 (payment company)")
        }
        assert system_names(session) == {"member-db", "order-db", "archive-backup", "pay-partner"}
