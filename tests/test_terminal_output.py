"""Responder text printed to the terminal cannot carry escape sequences or bidi overrides."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from support import PEOPLE_HEADER, OpenedIncident, WorkspaceDir, manifest_of

from incident.notices.models import pack_content

HOSTILE = "\x1b]0;pwned\x07\x1b[2J清屏\u202eevil\u202c done"


def test_show_and_list_print_responder_text_without_control_sequences(opened_incident: OpenedIncident) -> None:
    """Given a log entry with an OSC title sequence, a clear-screen escape and a bidi override, when the
    responder runs `show` and `list`, then none of those characters reaches the terminal; the words do."""
    ws = opened_incident.ws
    ws.ok("log", opened_incident.id, HOSTILE)

    shown, listed = ws.ok("show", opened_incident.id), ws.ok("list")

    for out in (shown, listed):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "清屏" in shown and "evil" in shown and "done" in shown


def test_config_show_masks_a_url_signature(workspace) -> None:
    """Given a channel URL signed with ?sig=, then `config show` masks the signature."""
    config = workspace.root / "incident.toml"
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            'url = "outbox://sms/{phone}"', 'url = "json://gw.example.com/sms?to={phone}&sig=s3cr3tSIGNATURE"'
        ),
        encoding="utf-8",
    )

    out = workspace.ok("config", "show")

    assert "s3cr3tSIGNATURE" not in out and "sig=****" in out


# ---- issue 12: one output filter for every print ------------------------------------------------------------

# An OSC window-title sequence, a C1 control sequence introducer (one byte, no ESC) and a bidi override.
OSC, C1_CSI, RLO = "\x1b]0;pwn\x07", "\x9b31m", "\u202e"
ESCAPES = (OSC, C1_CSI, RLO)
RAW = ("\x1b", "\x07", "\x9b", "\u202e")
CLI = Path(__file__).resolve().parents[1] / "incident" / "cli"


def assert_inert(output: str) -> None:
    """No control character, escape introducer or bidi override of the hostile text reaches the terminal."""
    found = [hex(ord(c)) for c in RAW if c in output]
    assert found == [], f"raw {found} reached the terminal:\n{output!r}"


def test_status_and_show_print_a_hostile_title_and_reviewer_inert(inventory_with_backups: WorkspaceDir) -> None:
    """Given an incident titled with an OSC sequence, a C1 CSI and a bidi override, and notices approved by a
    reviewer whose name holds the same, when the responder runs `status` and `show`, then none of those characters
    reaches the terminal, the words do, and `show --json` still carries the exact title (escaped as \\uXXXX)."""
    ws = inventory_with_backups
    title = f"会员库{OSC}被导出{C1_CSI}{RLO}evil"
    incident_id = ws.ok(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        title,
        "--systems",
        "member-db",
        "--from",
        "2026-01-01",
        "--to",
        "2026-03-01",
        "--discovered",
        "2026-03-10T08:00:00+00:00",
    ).strip()
    ws.ok("assess", incident_id)
    ws.ok("notices", "render", incident_id)
    reviewer = f"Li{OSC} Na{C1_CSI}{RLO}"
    approved = ws.ok(
        "notices", "approve", incident_id, "--manifest", manifest_of(ws, incident_id), "--reviewer", reviewer
    )

    status = ws.run("status")
    shown = ws.ok("show", incident_id)
    as_json = ws.ok("show", incident_id, "--json")

    for out in (status.output, shown, approved, as_json):
        assert_inert(out)
    assert "会员库" in status.output and "被导出" in status.output and "evil" in status.output
    assert "Li" in shown and "Na" in shown and "会员库" in shown
    assert json.loads(as_json)["title"] == title


def test_notices_show_prints_a_stored_notice_with_c1_controls_inert(opened_incident: OpenedIncident) -> None:
    """Given a stored notice whose subject and text hold a person's name with a C1 CSI, an OSC sequence and a bidi
    override (rendered before names were cleaned, or written into the database), when the responder runs
    `notices show` for that person, then the notice prints with the name's letters and none of its controls."""
    ws = opened_incident.ws
    ws.ok("assess", opened_incident.id)
    ws.ok("notices", "render", opened_incident.id)
    name = f"张{C1_CSI}伟{OSC}{RLO}"
    body, _ = pack_content(f"尊敬的{name}：您的个人信息可能已泄露。", None)
    ws.sql(
        "UPDATE notice SET subject = ?, body = ?, html = NULL WHERE person_id = ? AND channel = ?",
        (f"致{name}", body, "cn-adult", "email"),
    )

    out = ws.ok("notices", "show", opened_incident.id, "--person", "cn-adult", "--channel", "email")

    assert_inert(out)
    assert "尊敬的张" in out and "伟" in out and "致张" in out


def test_an_import_error_prints_a_hostile_header_cell_inert(workspace: WorkspaceDir) -> None:
    """Given a people file whose header holds a cell with an OSC sequence, a C1 CSI and a bidi override, when the
    responder imports it, then the import is refused with one line naming the file, and the cell's control
    characters do not reach the terminal."""
    header = PEOPLE_HEADER.replace("name,", f"name{OSC}{C1_CSI}{RLO},", 1)
    people = workspace.write("people.csv", header + "\ncn-adult,张伟,zhang.wei@example.cn,,,zh-CN,CN,1990-05-01\n")

    result = workspace.run("inventory", "import", "--people", str(people))

    assert result.exit_code != 0, result.output
    assert "people.csv" in result.stderr and "Traceback" not in result.output
    assert_inert(result.output)


PRINTERS = {"echo", "secho", "print", "write", "print_json", "log"}


def test_no_cli_module_reaches_the_terminal_except_through_the_output_filter() -> None:
    """Given every module of incident/cli, then none calls print(), typer/click echo, a rich console, or writes to
    sys.stdout/sys.stderr itself: the only way out is incident.cli.output, whose every line is filtered."""
    bypass = []
    for path in sorted(CLI.glob("*.py")):
        if path.name == "output.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                bypass.append(f"{where}: print()")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PRINTERS:
                owner = ast.unparse(node.func.value)
                if owner != "typer.Typer" and not owner.startswith("incident.cli.output"):
                    bypass.append(f"{where}: {owner}.{node.func.attr}()")
            elif isinstance(node, ast.Attribute) and node.attr in ("stdout", "stderr"):
                bypass.append(f"{where}: {ast.unparse(node)}")
            elif isinstance(node, ast.ImportFrom) and node.module in ("rich.console", "click", "typer"):
                names = {a.name for a in node.names} & {"Console", "echo", "secho", "print"}
                bypass += [f"{where}: imports {node.module}.{n}" for n in sorted(names)]

    assert bypass == []
