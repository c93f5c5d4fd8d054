"""Hostile and broken input: every importer and loader answers with one line naming file, line and field,
never a traceback, and leaves the database as it was. The case counts below are quoted in the README."""

from __future__ import annotations

import csv
import io
import re
import shutil
from pathlib import Path

import pytest
from conftest import init_workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import HOLDINGS_CSV, PEOPLE_CSV, PEOPLE_HEADER, SYSTEMS_YAML, WorkspaceDir

ONE_LINE_ERROR = re.compile(r"^error: \S+(:\d+)?: ")
HYPOTHESIS_EXAMPLES = 40

H = "person_id,system,category,since,until\n"
P = PEOPLE_HEADER + "\n"
ROW = "p1,张三,zhang@example.com,13800000001,,zh-CN,CN,1990-01-01,,,,,active,\n"

# (file name, content, the exact error fragment, the line it must name)
NASTY_FILES: list[tuple[str, bytes, str]] = [
    (
        "people.csv",
        (P + ROW).encode("latin-1", "replace") + "p2,Zoë,,,,en,DE,,,,,,active,\n".encode("latin-1"),
        "people.csv:3: not UTF-8 text",
    ),
    ("people.csv", "\ufeff".encode("utf-16-le") + (P + ROW).encode("utf-16-le"), "people.csv:1: not UTF-8 text"),
    ("people.csv", (P + 'p1,"unterminated,zhang@example.com\n').encode(), "people.csv:2: malformed CSV"),
    ("people.csv", (P + "p1," + "x" * (1 << 20 + 1) + "\n").encode(), "people.csv:2: malformed CSV"),
    ("people.csv", (P + "p1,a\x00b,,,,,,,,,,,active,\n").encode(), "people.csv:2: name: contains control"),
    ("people.csv", (P + ROW + ROW).encode(), "people.csv:3: person_id: duplicate id"),
    ("people.csv", b"person_id,name\np1,x,extra\n", "people.csv:2: has 3 fields, the header has 2"),
    ("people.csv", b"name,email\nx,y@example.com\n", "people.csv:1: person_id: required column is missing"),
    ("people.csv", b"person_id,nmae\np1,x\n", "people.csv:1: nmae: unknown column"),
    ("people.csv", b"", "people.csv:1: the file is empty"),
    ("people.csv", (P + "p1,x,=cmd|' /C calc'!A0,,,,,,,,,,active,\n").encode(), "people.csv:2: email: not an email"),
    ("people.csv", (P + "p1,x,,+86 1,,,,,,,,,active,\n").encode(), "people.csv:2: phone: not a phone number"),
    ("people.csv", (P + "p1,x,,,,klingon,,,,,,,active,\n").encode(), "people.csv:2: locale: unknown locale"),
    ("people.csv", (P + "p1,x,,,,,CHINA,,,,,,active,\n").encode(), "people.csv:2: region: not an ISO country"),
    ("people.csv", (P + "p1,x,,,,,,1990-13-45,,,,,active,\n").encode(), "people.csv:2: birth_date: not an ISO"),
    ("people.csv", (P + "p1,x,,,,,,,,,,,deleted,\n").encode(), "people.csv:2: account_status: must be"),
    ("people.csv", (P + "p1\r\nx,,,,,,,,,,,,active,\n").encode(), "people.csv:2: has 1 fields"),
    ("people.jsonl", b'{"person_id": "p1"}\n[1, 2]\n', "people.jsonl:2: each line must be a JSON object"),
    ("people.jsonl", b'{"person_id": "p1", "name": {"$gt": ""}}\n', "people.jsonl:1: name: must be a string"),
    ("people.jsonl", b'{"person_id": "p1", "admin": true}\n', "people.jsonl:1: admin: unknown field"),
    ("people.jsonl", b'{"person_id": "p1"\n', "people.jsonl:1: invalid JSON"),
    ("people.xlsx", b"PK\x03\x04", "people.xlsx: unknown file type"),
    ("holdings.csv", (H + "cn-adult,member-db,phone,yesterday,\n").encode(), "holdings.csv:2: since: not an ISO"),
    (
        "holdings.csv",
        (H + "cn-adult,member-db,phone,2020-01-01,2019-01-01\n").encode(),
        "holdings.csv:2: until: is before since",
    ),
    ("holdings.csv", (H + "nobody,member-db,phone,2020-01-01,\n").encode(), "holdings.csv:2: person_id: unknown"),
    ("holdings.csv", (H + "cn-adult,mainframe,phone,2020-01-01,\n").encode(), "holdings.csv:2: system: unknown"),
    ("holdings.csv", (H + "cn-adult,member-db,soul,2020-01-01,\n").encode(), "holdings.csv:2: category: unknown"),
    ("holdings.csv", b"person_id,system\ncn-adult,member-db\n", "holdings.csv:1: category: required column"),
]

NASTY_YAML: list[tuple[str, str, str]] = [
    ("systems.yaml", "systems:\n  - !!python/object/apply:os.system ['touch /tmp/pwned']\n", "systems.yaml:2:"),
    ("systems.yaml", "systems:\n  - name: x\n    kind: cloud\n", "systems.yaml:3: systems.0.kind:"),
    (
        "systems.yaml",
        "systems:\n  - name: x\n    kind: internal\n    owner: bob\n",
        "systems.yaml:4: systems.0.owner: unknown key",
    ),
    ("systems.yaml", "systems: {name: x}\n", "systems.yaml:1: systems: Input should be a valid list"),
    ("systems.yaml", "systems:\n  - name: x\n    kind: [internal\n", "systems.yaml:4: invalid YAML"),
    (
        "systems.yaml",
        "a: &a [1, 1]\nb: &b [*a, *a]\nsystems: [*b, *b]\n",
        "systems.yaml:2: YAML aliases (*name) are not allowed",
    ),
    ("systems.yaml", "", "systems.yaml:1: the file is empty"),
    ("systems.yaml", "systems:\n  - name: '../../etc/passwd'\n    kind: internal\n", "systems.yaml:2: systems.0.name"),
]


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, result.output
    return lines[0]


@pytest.mark.parametrize(("name", "content", "fragment"), NASTY_FILES, ids=[f[2][:48] for f in NASTY_FILES])
def test_a_nasty_inventory_file_is_refused_in_one_line_and_changes_nothing(
    inventory_with_backups: WorkspaceDir, name: str, content: bytes, fragment: str
) -> None:
    """Given a good inventory, when a broken or hostile file is imported, then one line names file, line and
    field, the exit is non-zero, nothing is written, and no traceback is shown."""
    ws = inventory_with_backups
    before = ws.tables()
    path = ws.root / "inputs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    option = "--holdings" if name.startswith("holdings") else "--people"

    result = ws.run("inventory", "import", option, str(path))

    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert ONE_LINE_ERROR.match(error_line(result)), result.output
    assert fragment in result.stderr, result.output
    assert ws.tables() == before


@pytest.mark.parametrize(("name", "content", "fragment"), NASTY_YAML, ids=[y[2][:48] for y in NASTY_YAML])
def test_a_hostile_systems_file_is_refused_without_building_objects(
    workspace: WorkspaceDir, name: str, content: str, fragment: str
) -> None:
    """Given a systems YAML with object-building tags, alias bombs, wrong types or unknown keys, when it is
    imported, then it is refused with file and line, and no object is ever constructed."""
    marker = Path("/tmp/pwned")
    marker.unlink(missing_ok=True)
    before = workspace.tables()

    result = workspace.run("inventory", "import", "--systems", str(workspace.write(name, content)))

    assert result.exit_code != 0, result.output
    assert fragment in result.stderr, result.output
    assert "Traceback" not in result.output
    assert not marker.exists()
    assert workspace.tables() == before


@pytest.mark.parametrize(
    "broken",
    [
        ("title:\n  zh-CN: 标题\n", "title.en: Field required"),
        ("channels: [email, fax]\n", "channels.1:"),
        ("categories: soul\n", "categories: Input should be a valid list"),
        ("colour: red\n", "colour: unknown key"),
        ("containment: !!python/name:os.system\n", "could not determine a constructor"),
    ],
)
def test_a_broken_playbook_in_the_workspace_names_file_line_and_field(
    inventory_with_backups: WorkspaceDir, broken: tuple[str, str]
) -> None:
    """Given a workspace copy of a playbook with one broken key, when an incident is opened from it, then the
    error names the playbook file, the line and the field."""
    text, fragment = broken
    ws = inventory_with_backups
    source = Path(__file__).resolve().parent.parent / "playbooks" / "lost-device.yaml"
    target = ws.root / "playbooks" / "lost-device.yaml"
    target.parent.mkdir(exist_ok=True)
    key = text.split(":")[0]
    kept = [line for line in source.read_text(encoding="utf-8").splitlines(keepends=True)]
    out, skipping = [], False
    for line in kept:
        if line.startswith(f"{key}:"):
            skipping = True
            continue
        if skipping and (line.startswith((" ", "-")) or not line.strip()):
            continue
        skipping = False
        out.append(line)
    target.write_text("".join(out) + text, encoding="utf-8")

    result = ws.run(
        "open",
        "--playbook",
        "lost-device",
        "--title",
        "t",
        "--systems",
        "member-db",
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-02",
    )

    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert re.search(r"lost-device\.yaml:\d+: ", result.stderr), result.output
    assert fragment in result.stderr, result.output


# ---- properties ---------------------------------------------------------------------------------

hostile_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
cell = st.one_of(
    hostile_text,
    st.sampled_from(
        ["=cmd|' /C calc'!A0", "+1+1", "@SUM(A1)", "-2", '"', "\r\n", "{{ 7*7 }}", "<script>", "\x00", ",", "\u202e"]
    ),
)


@pytest.fixture(scope="module")
def template_workspace(tmp_path_factory: pytest.TempPathFactory) -> WorkspaceDir:
    """One imported inventory, copied for each example (a fresh import per example would be slow)."""
    ws = init_workspace(tmp_path_factory.mktemp("hostile") / "ws")
    ws.import_inventory()
    return ws


def fresh_copy(template: WorkspaceDir, tmp_path_factory: pytest.TempPathFactory) -> WorkspaceDir:
    root = tmp_path_factory.mktemp("example") / "ws"
    shutil.copytree(template.root, root)
    return WorkspaceDir(root)


def assert_clean_outcome(ws: WorkspaceDir, result, before) -> None:
    assert "Traceback" not in result.output, result.output
    if result.exit_code == 0:
        return
    assert ONE_LINE_ERROR.match(error_line(result)), result.output
    assert ws.tables() == before


@pytest.mark.sqlite_only
@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=st.lists(st.lists(cell, min_size=14, max_size=14), min_size=1, max_size=4))
def test_any_people_rows_import_or_fail_in_one_line(
    template_workspace: WorkspaceDir, tmp_path_factory: pytest.TempPathFactory, rows: list[list[str]]
) -> None:
    """Given arbitrary cells (formulas, quotes, control and bidi characters, template syntax), when they are
    imported as people, then the import succeeds or fails with one line, and never half-writes."""
    ws = fresh_copy(template_workspace, tmp_path_factory)
    before = ws.tables()
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(PEOPLE_HEADER.split(","))
    writer.writerows(rows)
    result = ws.run("inventory", "import", "--people", str(ws.write("people.csv", buf.getvalue())))
    assert_clean_outcome(ws, result, before)


@pytest.mark.sqlite_only
@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.binary(max_size=300))
def test_any_bytes_as_holdings_fail_in_one_line_or_import(
    template_workspace: WorkspaceDir, tmp_path_factory: pytest.TempPathFactory, content: bytes
) -> None:
    """Given arbitrary bytes after a valid header, when imported as holdings, then no traceback and no
    partial write."""
    ws = fresh_copy(template_workspace, tmp_path_factory)
    before = ws.tables()
    path = ws.root / "inputs" / "holdings.csv"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(H.encode() + content)
    result = ws.run("inventory", "import", "--holdings", str(path))
    assert_clean_outcome(ws, result, before)


@pytest.mark.sqlite_only
@settings(
    max_examples=HYPOTHESIS_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=st.text(max_size=200))
def test_any_text_as_systems_yaml_fails_in_one_line_or_imports(
    template_workspace: WorkspaceDir, tmp_path_factory: pytest.TempPathFactory, content: str
) -> None:
    """Given arbitrary text as a systems YAML file, then it imports or fails with one line; never a
    traceback."""
    ws = fresh_copy(template_workspace, tmp_path_factory)
    before = ws.tables()
    result = ws.run("inventory", "import", "--systems", str(ws.write("systems.yaml", content)))
    assert_clean_outcome(ws, result, before)


def test_formula_cells_are_neutralised_in_every_csv_export(workspace: WorkspaceDir) -> None:
    """Given a person whose name is a spreadsheet formula, when the affected list is exported as CSV, then
    the cell starts with a quote so no spreadsheet runs it."""
    people = PEOPLE_CSV.replace("张伟", '=HYPERLINK("http://evil";"x")', 1).replace("Anna Müller", "@SUM(A1)")
    workspace.import_inventory(people=people, holdings=HOLDINGS_CSV, systems=SYSTEMS_YAML)
    from support import open_incident

    incident = open_incident(workspace)
    workspace.ok("assess", incident.id)
    rows = list(csv.reader(io.StringIO(workspace.ok("affected", incident.id, "--format", "csv"))))
    names = {row[2] for row in rows[1:]}
    assert '\'=HYPERLINK("http://evil";"x")' in names
    assert not any(name.startswith(("=", "+", "@", "-")) for name in names)
