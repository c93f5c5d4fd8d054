"""Issue 12: the generated hostile corpus. Every case is what a responder (or an attacker with a file) can type or
hand over: bytes a GBK terminal sends, times the clock cannot hold, names longer than a file name, outputs that
are folders, FIFOs or symlinks, inventory, YAML, TOML and audit files built to break their parsers, and database
rows edited into garbage. Each runs through the real `incident` app and must end with one `error:` line that names
the input, a non-zero exit that is not a crash, no traceback, and nothing written: the database and every file
under the sandbox (tmp_path) are the same afterwards.

SAFETY: the tests run as root. Every path-like value is built inside tmp_path; each case runs from
tmp_path/a/b/c/d/e/f/g/h, so `../../..` still lands inside the sandbox; no system path is ever a write target, and
a module fixture proves that /etc/passwd, /etc/group and /dev/null did not change. To grow the corpus, add a value
to one of the tables below."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from snapshots import Snapshot
from support import PEOPLE_HEADER, WorkspaceDir, open_incident

from incident.config import DEFAULT_CONFIG

# ---- what a case is ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sandbox:
    """Where one case runs: the sandbox, the workspace copy in it, the incident's id."""

    tmp: Path
    ws: WorkspaceDir
    incident: str

    def sub(self, text: str) -> str:
        # Plain replacement, not str.format: hostile values are full of braces.
        return text.replace("{ID}", self.incident).replace("{tmp}", str(self.tmp))


Setup = Callable[[Sandbox], None]


@dataclass(frozen=True)
class Case:
    """One hostile input: the command line, what to plant first, and a fragment the one error line must hold."""

    id: str
    args: tuple[str, ...]
    expect: str | tuple[str, ...]  # every fragment must be in the one error line
    setup: tuple[Setup, ...] = ()
    db: bool = False  # reaches the database (runs on PostgreSQL too); otherwise refused before it
    story: str = "assessed"
    sqlite_only: bool = False
    env: tuple[tuple[str, str], ...] = ()  # environment variables set for the run


CASES: list[Case] = []


def add(case: Case) -> None:
    CASES.append(case)


# ---- planting inputs (always inside the sandbox) ----------------------------------------------------------


def write_input(name: str, content: bytes) -> Setup:
    def plant(box: Sandbox) -> None:
        path = box.tmp / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)

    return plant


def make_fifo(name: str) -> Setup:
    def plant(box: Sandbox) -> None:
        path = box.tmp / "in" / name
        path.parent.mkdir(exist_ok=True)
        os.mkfifo(path, 0o644)

    return plant


def make_dir(name: str) -> Setup:
    def plant(box: Sandbox) -> None:
        (box.tmp / "in" / name).mkdir(parents=True)

    return plant


def make_socket(name: str) -> Setup:
    def plant(box: Sandbox) -> None:
        # A Unix socket path is limited to ~100 bytes: bind it by a short name relative to the sandbox.
        (box.tmp / "in").mkdir(exist_ok=True)
        here = Path.cwd()
        os.chdir(box.tmp / "in")
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(name)
            sock.close()
        finally:
            os.chdir(here)

    return plant


def make_elsewhere(box: Sandbox) -> Path:
    """A folder of the sandbox outside the workspace with one world-readable file an attacker points at."""
    folder = box.tmp / "elsewhere"
    folder.mkdir(exist_ok=True)
    victim = folder / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    victim.chmod(0o644)
    return folder


def make_link(name: str, to: str) -> Setup:
    def plant(box: Sandbox) -> None:
        elsewhere = make_elsewhere(box)
        path = box.tmp / "in" / name
        path.parent.mkdir(exist_ok=True)
        target = {"file": elsewhere / "victim.txt", "dir": elsewhere, "nothing": elsewhere / "missing"}[to]
        path.symlink_to(target)

    return plant


def write_config(content: bytes) -> Setup:
    def plant(box: Sandbox) -> None:
        (box.ws.root / "incident.toml").write_bytes(content)

    return plant


def edit_db(sql: str) -> Setup:
    def plant(box: Sandbox) -> None:
        from rawdb import connect

        with connect(box.ws.root) as conn:
            conn.execute(sql, (GARBAGE,) if "?" in sql else ())

    return plant


# ---- A. bytes that are not UTF-8, in every option and argument ----------------------------------------------

NOT_UTF8 = {
    "gbk": "会员数据库泄露".encode("gbk"),
    "big5": "會員資料庫外洩".encode("big5"),
    "shift-jis": "会員データ漏洩".encode("shift_jis"),
    "latin1": "Zoë Müller".encode("latin-1"),
    "raw": b"\xff\xfe\x80abc",
}

# (the command before the option, the option); the rest of each command line is valid.
OPTION_SLOTS: list[tuple[str, str]] = [
    *[
        ("open", opt)
        for opt in (
            "--title",
            "--playbook",
            "--systems",
            "--from",
            "--to",
            "--categories",
            "--discovered",
            "--discovered-by",
            "--where",
            "--summary",
            "--summary-en",
            "--cause",
            "--cause-en",
            "--connected",
        )
    ],
    ("assess {ID}", "--grade"),
    ("assess {ID}", "--reason"),
    ("affected {ID}", "--format"),
    ("affected {ID}", "--output"),
    ("notices approve {ID}", "--reviewer"),
    ("notices approve {ID}", "--manifest"),
    ("notices approve {ID}", "--comment"),
    ("notices reject {ID}", "--reviewer"),
    ("notices reject {ID}", "--comment"),
    ("notices show {ID}", "--person"),
    ("notices show {ID}", "--channel"),
    ("dispatch {ID}", "--channel"),
    ("deliveries {ID}", "--format"),
    ("deliveries {ID}", "--output"),
    ("report {ID}", "--regulator"),
    ("report {ID}", "--stage"),
    ("report {ID}", "--field"),
    ("report {ID}", "--delay-reason"),
    ("report {ID}", "--reference"),
    ("settle {ID} cn-cac-report", "--at"),
    ("settle {ID} cn-cac-report", "--reference"),
    ("log {ID} text", "--kind"),
    ("audit export {ID}", "--output"),
    ("audit verify", "--file"),
    ("inventory import", "--people"),
    ("inventory import", "--holdings"),
    ("inventory import", "--systems"),
    ("inventory import --skip-invalid --people {tmp}/in/p.csv", "--rejects"),
    ("list", "--actor"),
    ("list", "--log-level"),
]
POSITIONAL_SLOTS = [
    "show",
    "log {ID}",
    "assess",
    "notices render",
    "dispatch",
    "letters",
    "close",
    "audit verify",
    "affected",
    "settle {ID}",
    "init",
]
ENCODINGS_PER_FORM = {"separate": ("gbk", "big5", "raw"), "joined": ("gbk", "shift-jis", "latin1")}
PREFIX = 4  # WorkspaceDir.run puts --workspace ROOT --actor ACTOR before every command


def _option_cases() -> None:
    for command, option in OPTION_SLOTS:
        words = tuple(command.split())
        for form, encodings in ENCODINGS_PER_FORM.items():
            for enc in encodings:
                value = os.fsdecode(NOT_UTF8[enc])  # what Python hands over for bytes a terminal sent (PEP 383)
                tail = (option, value) if form == "separate" else (f"{option}={value}",)
                # Root options go before the command; a command's own options after it.
                args = (*tail, *words) if option in ("--actor", "--log-level") else (*words, *tail)
                where = "-".join(w for w in words if "{" not in w)
                add(
                    Case(
                        f"not-utf8-{enc}-{form}-{where}-{option[2:]}",
                        args,
                        f"error: {option}: not UTF-8 text",
                    )
                )
    for command in POSITIONAL_SLOTS:
        words = tuple(command.split())
        for enc in ("gbk", "big5", "raw"):
            add(
                Case(
                    f"not-utf8-{enc}-argument-{'-'.join(words[:2]).replace('{ID}', 'id')}",
                    (*words, os.fsdecode(NOT_UTF8[enc])),
                    f"error: argument {PREFIX + len(words) + 1}: not UTF-8 text",
                )
            )


_option_cases()


# ---- B. times the clock cannot hold ---------------------------------------------------------------------------

BAD_TIMES = {
    "year-1-east-offset": "0001-01-01T00:00:00+05:00",
    "year-9999-west-offset": "9999-12-31T23:00:00-05:00",
    "year-1": "0001-01-01",
    "year-9999": "9999-12-31",
    "before-1900": "1899-12-31",
    "after-9000": "9001-01-01",
    "30-february": "2026-02-30",
    "month-13": "2026-13-01",
    "hour-24": "2026-01-01T24:01",
    "offset-24h": "2026-01-01T00:00:00+24:00",
    "word": "yesterday",
    "empty": "",
    "blank": "  ",
    "exponent": "1e10",
    "fullwidth-digits": "２０２６-０１-０１",
    "4301-digits": "9" * 4301,
}
OPEN = ("open", "--playbook", "database-exfiltration", "--title", "t", "--systems", "member-db")
TIME_SLOTS = {
    "--from": (*OPEN, "--to", "2026-02-01", "--from"),
    "--to": (*OPEN, "--from", "2026-01-01", "--to"),
    "--discovered": (*OPEN, "--from", "2026-01-01", "--to", "2026-02-01", "--discovered"),
    "--at": ("settle", "{ID}", "cn-cac-report", "--at"),
    "--submitted-at": ("report", "{ID}", "--regulator", "cn-cac", "--submitted-at"),
}
for option, words in TIME_SLOTS.items():
    for name, value in BAD_TIMES.items():
        add(Case(f"time-{option[2:]}-{name}", (*words, value), f"error: {option}: "))


# ---- C. playbook and report names that are no name -------------------------------------------------------------

BAD_NAMES = {
    "256-chars": "x" * 256,
    "4097-chars": "a" * 4097,
    "valid-then-long": "database-exfiltration" + "x" * 250,
    "traversal": "../../../../playbooks/lost-device",
    "dotdot": "..",
    "dot": ".",
    "slash": "/",
    "catalogue-file": "categories",
    "rules-file": "jurisdictions",
    "upper-case": "Database-Exfiltration",
    "space": "database exfiltration",
    "with-suffix": "lost-device.yaml",
    "dash": "-",
    "empty": "",
    "emoji": "🔥",
    "bidi": "db\u202eexfil",
    "nested-path": "reports/cn-cac",
}
for name, value in BAD_NAMES.items():
    add(
        Case(
            f"playbook-{name}",
            (*OPEN[:2], value, *OPEN[3:], "--from", "2026-01-01", "--to", "2026-02-01"),
            "error: unknown playbook",
            db=True,
        )
    )
    add(
        Case(f"regulator-{name}", ("report", "{ID}", "--regulator", value), "--regulator: unknown report kind", db=True)
    )


# ---- D. outputs that are no place for a file -------------------------------------------------------------------

OUTPUT_COMMANDS = {
    "affected": ("affected", "{ID}", "--output"),
    "deliveries": ("deliveries", "{ID}", "--output"),
    "audit-export": ("audit", "export", "{ID}", "--output"),
    "rejects": ("inventory", "import", "--skip-invalid", "--people", "{tmp}/in/bad-people.csv", "--rejects"),
}
BAD_PEOPLE = write_input("bad-people.csv", f"{PEOPLE_HEADER}\n,no id,,,,,,,,,,,,\n".encode())
BAD_OUTPUTS: dict[str, tuple[str, tuple[Setup, ...], str]] = {
    "a-folder": ("{tmp}/in/out-dir", (make_dir("out-dir"),), "is a folder, not a file"),
    "the-current-folder": (".", (), "is a folder, not a file"),
    "traversal-to-a-folder": ("../../..", (), "is a folder, not a file"),
    "empty": ("", (), "is a folder, not a file"),
    "a-fifo": ("{tmp}/in/fifo", (make_fifo("fifo"),), "is a device, FIFO or socket"),
    "a-socket": ("{tmp}/in/s.sock", (make_socket("s.sock"),), "is a device, FIFO or socket"),
    "symlink-to-a-file": ("{tmp}/in/link.csv", (make_link("link.csv", "file"),), "is a symbolic link"),
    "symlink-to-a-folder": ("{tmp}/in/link-dir", (make_link("link-dir", "dir"),), "is a symbolic link"),
    "dangling-symlink": ("{tmp}/in/dangling.csv", (make_link("dangling.csv", "nothing"),), "is a symbolic link"),
    "under-a-file": ("{tmp}/in/plain.txt/out.csv", (write_input("plain.txt", b"x"),), "is a file, not a folder"),
    "under-a-fifo": ("{tmp}/in/fifo2/out.csv", (make_fifo("fifo2"),), "is a file, not a folder"),
    "name-too-long": ("{tmp}/in/" + "x" * 300 + ".csv", (), "the name is too long"),
}
for command, words in OUTPUT_COMMANDS.items():
    for name, (value, setup, fragment) in BAD_OUTPUTS.items():
        extra = (BAD_PEOPLE,) if command == "rejects" else ()
        add(Case(f"output-{command}-{name}", (*words, value), fragment, setup=(*extra, *setup)))


# ---- E. inventory files built to break the parsers, or to pass for data ---------------------------------------

DEEP = 100_000
PEOPLE_ROW = "p1,Zhang San,zhang@example.cn,13800000001,,zh-CN,CN-FJ,1990-01-01,,,,,active,"


def people_row(**cells: str) -> str:
    """A good people row with some cells replaced."""
    values = dict(zip(PEOPLE_HEADER.split(","), PEOPLE_ROW.split(","), strict=True)) | cells
    return ",".join(values.values())


# Cell values that must be refused, as (column, value, fragment of the error after "people.csv:2: ").
BAD_CELLS: dict[str, tuple[str, str, str]] = {
    "c1-csi-in-name": ("name", "Zhang\u009b31m", "name: contains U+009B"),
    "c1-nel-in-name": ("name", "Zhang\u0085San", "name: contains U+0085"),
    "rlo-in-name": ("name", "Zhang\u202eSan", "name: contains U+202E"),
    "lri-in-name": ("name", "\u2066Zhang", "name: contains U+2066"),
    "arabic-letter-mark-in-name": ("name", "Zhang\u061c", "name: contains U+061C"),
    "line-separator-in-name": ("name", "Zhang\u2028San", "name: contains U+2028"),
    "paragraph-separator-in-name": ("name", "Zhang\u2029San", "name: contains U+2029"),
    "tab-in-name": ("name", "Zhang\tSan", "name: contains U+0009"),
    "rlo-in-guardian-name": ("guardian_name", "Li\u202eFang", "guardian_name: contains U+202E"),
    "c1-in-push-token": ("push_token", "tok\u0090x", "push_token: contains U+0090"),
    "bidi-in-address": ("postal_address", "Road 1\u202e", "postal_address: contains U+202E"),
    "rlo-in-person-id": ("person_id", "p\u202e1", "person_id: contains U+202E"),
    "c1-in-person-id": ("person_id", "p\u00851", "person_id: contains U+0085"),
    "line-separator-in-person-id": ("person_id", "p\u20281", "person_id: contains U+2028"),
    "tab-in-person-id": ("person_id", "p\t1", "person_id: must be at most 64 characters on one line"),
    "dotless-i-region": ("region", "\u0131n", "region: not an ISO country"),
    "sharp-s-region": ("region", "\u00df", "region: not an ISO country"),
    "fullwidth-region": ("region", "ＣＮ", "region: not an ISO country"),
    "ligature-region": ("region", "cn-\ufb01", "region: not an ISO country"),
    "long-s-region": ("region", "\u017fe", "region: not an ISO country"),
    "e164-no-country": ("phone", "+99912345678", "phone: not a valid phone number"),
    "e164-spaced-no-country": ("phone", "+999 1234 5678", "phone: not a valid phone number"),
    "e164-unassigned-cn": ("phone", "+8612345678901", "phone: not a valid phone number"),
    "e164-zeros-us": ("phone", "+10000000000", "phone: not a valid phone number"),
    "e164-too-short-de": ("phone", "+4912345", "phone: not a valid phone number"),
    "guardian-e164-no-country": ("guardian_phone", "+99987654321", "guardian_phone: not a valid phone number"),
    "birth-in-year-1-with-offset": ("birth_date", "0001-01-01T00:00:00+05:00", "birth_date: is before 1900"),
    "birth-in-year-9999-with-offset": ("birth_date", "9999-12-31T23:00:00-05:00", "birth_date: is in the future"),
}
for name, (column, value, fragment) in BAD_CELLS.items():
    csv_value = f'"{value}"' if "\t" in value or "\u2028" in value else value
    add(
        Case(
            f"people-csv-{name}",
            ("inventory", "import", "--people", "{tmp}/in/people.csv"),
            f"people.csv:2: {fragment}",
            setup=(write_input("people.csv", f"{PEOPLE_HEADER}\n{people_row(**{column: csv_value})}\n".encode()),),
            db=True,
            story="inventory",
        )
    )
    row = dict(zip(PEOPLE_HEADER.split(","), people_row(**{column: value}).split(","), strict=True))
    line = json.dumps({k: v for k, v in row.items() if v}, ensure_ascii=True)
    add(
        Case(
            f"people-jsonl-{name}",
            ("inventory", "import", "--people", "{tmp}/in/people.jsonl"),
            f"people.jsonl:1: {fragment}",
            setup=(write_input("people.jsonl", (line + "\n").encode()),),
            db=True,
            story="inventory",
        )
    )

DATE_ROWS = {
    "cancelled-in-the-future": (
        people_row(account_status="cancelled", cancelled_at="2999-01-01"),
        "cancelled_at: is in the future",
    ),
    "cancelled-before-birth": (
        people_row(birth_date="1990-01-01", account_status="cancelled", cancelled_at="1980-01-01"),
        "cancelled_at: is before birth_date",
    ),
    "cancelled-year-9999-with-offset": (
        people_row(account_status="cancelled", cancelled_at="9999-12-31T23:00:00-05:00"),
        "cancelled_at: is in the future",
    ),
}
for name, (row_text, fragment) in DATE_ROWS.items():
    add(
        Case(
            f"people-csv-{name}",
            ("inventory", "import", "--people", "{tmp}/in/people.csv"),
            f"people.csv:2: {fragment}",
            setup=(write_input("people.csv", f"{PEOPLE_HEADER}\n{row_text}\n".encode()),),
            db=True,
            story="inventory",
        )
    )

JSONL_FILES: dict[str, tuple[bytes, str]] = {
    "lone-high-surrogate-in-name": (b'{"person_id": "p1", "name": "\\ud800"}\n', "people.jsonl:1: name: holds a lone"),
    "lone-low-surrogate-in-email": (b'{"person_id": "p1", "email": "\\udfff@x.cn"}\n', "people.jsonl:1: email: holds"),
    "lone-surrogate-in-person-id": (b'{"person_id": "p\\udbff"}\n', "people.jsonl:1: person_id: holds a lone"),
    "lone-surrogate-as-key": (b'{"person_id": "p1", "\\ud800": "x"}\n', "people.jsonl:1: a field name holds a lone"),
    "surrogate-on-line-3": (
        b'{"person_id": "p1"}\n{"person_id": "p2"}\n{"person_id": "p3", "name": "a\\udc80b"}\n',
        "people.jsonl:3: name: holds a lone",
    ),
    "100k-brackets": (b"[" * DEEP + b"\n", "people.jsonl:1: invalid JSON: nested deeper than 64"),
    "100k-objects": (b'{"a": ' * DEEP + b"\n", "people.jsonl:1: invalid JSON: nested deeper than 64"),
    "deep-inside-a-value": (
        b'{"person_id": "p1", "name": ' + b"[" * DEEP + b"]" * DEEP + b"}\n",
        "people.jsonl:1: invalid JSON: nested deeper than 64",
    ),
    "deep-on-line-2": (b'{"person_id": "p1"}\n' + b"[" * 200 + b"\n", "people.jsonl:2: invalid JSON: nested"),
    "4301-digit-id": (b'{"person_id": ' + b"9" * 4301 + b"}\n", "people.jsonl:1: invalid JSON: a number with more"),
    "50000-digit-name": (
        b'{"person_id": "p1", "name": ' + b"1" * 50000 + b"}\n",
        "people.jsonl:1: invalid JSON: a number with more",
    ),
    "duplicate-person-id": (b'{"person_id": "p1", "person_id": "p2"}\n', "people.jsonl:1: person_id: appears twice"),
    "duplicate-email": (
        b'{"person_id": "p1", "email": "a@x.cn", "email": "b@x.cn"}\n',
        "people.jsonl:1: email: appears twice",
    ),
    "duplicate-on-line-2": (
        b'{"person_id": "p1"}\n{"person_id": "p2", "name": "a", "name": "b"}\n',
        "people.jsonl:2: name: appears twice",
    ),
    "nan-name": (b'{"person_id": "p1", "name": NaN}\n', "people.jsonl:1: name: must be a string"),
    "infinity-id": (b'{"person_id": Infinity}\n', "people.jsonl:1: person_id: must be a string"),
    "not-utf8": ('{"person_id": "p1", "name": "会员"}\n'.encode("gbk"), "people.jsonl:1: not UTF-8 text"),
}
for name, (content, fragment) in JSONL_FILES.items():
    add(
        Case(
            f"people-jsonl-{name}",
            ("inventory", "import", "--people", "{tmp}/in/people.jsonl"),
            fragment,
            setup=(write_input("people.jsonl", content),),
            db=True,
            story="inventory",
        )
    )

SYSTEM = "systems:\n  - name: x\n    kind: internal\n"
YAML_FILES: dict[str, tuple[bytes, str]] = {
    "100k-flow-brackets": (b"systems: " + b"[" * DEEP + b"\n", "systems.yaml:1: nested deeper than 64 levels"),
    "100k-flow-mappings": (b"systems: " + b"{a: " * DEEP + b"\n", "systems.yaml:1: nested deeper than 64 levels"),
    "deep-block-sequences": (b"systems:\n" + b"- " * 100 + b"x\n", "nested deeper than 64 levels"),
    "deep-block-mappings": (
        b"systems:\n" + b"".join(b"  " * i + b"k%d:\n" % i for i in range(1, 100)) + b"  " * 100 + b"v: 1\n",
        "nested deeper than 64 levels",
    ),
    "brackets-in-a-quoted-string-are-not-depth": (
        b'systems:\n  - name: x\n    description: "' + b"[" * 100 + b'"\n    kind: cloud\n',
        "systems.yaml:4: systems.0.kind:",
    ),
    "lone-surrogate": (b'systems:\n  - name: "\\ud800"\n    kind: internal\n', "systems.yaml:2: a lone surrogate"),
    "lone-surrogate-in-key": (b'systems:\n  - "\\udc00": x\n', "systems.yaml:2: a lone surrogate"),
    "4301-digit-int": (SYSTEM.encode() + b"    location: " + b"9" * 4301 + b"\n", "systems.yaml:4: a number with more"),
    "hex-int-too-long": (SYSTEM.encode() + b"    location: 0x" + b"f" * 5000 + b"\n", "systems.yaml:4: a number"),
    "duplicate-key": (
        b"systems:\n  - name: a\n    name: b\n    kind: internal\n",
        "systems.yaml:3: name: duplicate key",
    ),
    "duplicate-top-level": (b"systems: []\nsystems: []\n", "systems.yaml:2: systems: duplicate key"),
    "year-9999-with-offset": (
        SYSTEM.encode() + b"    description: 9999-12-31T23:59:59-05:00\n",
        "systems.yaml:4: systems.0.description",
    ),
    "year-1-with-offset": (
        SYSTEM.encode() + b"    description: 0001-01-01 00:00:00 +05:00\n",
        "systems.yaml:4: systems.0.description",
    ),
    "name-over-255": (
        b"systems:\n  - name: " + b"x" * 300 + b"\n    kind: internal\n",
        "systems.yaml:2: systems.0.name",
    ),
    "not-utf8": ("systems:\n  - name: 会员库\n".encode("gbk"), "systems.yaml: not UTF-8 text"),
    "utf16": ("systems: []\n".encode("utf-16"), "systems.yaml: not UTF-8 text"),
}
for name, (content, fragment) in YAML_FILES.items():
    add(
        Case(
            f"systems-yaml-{name}",
            ("inventory", "import", "--systems", "{tmp}/in/systems.yaml"),
            fragment,
            setup=(write_input("systems.yaml", content),),
            db=True,
            story="inventory",
        )
    )

SPECIAL_INPUTS = {
    "people-fifo": ("--people", "people.csv", make_fifo, "is a device, FIFO or socket"),
    "holdings-fifo": ("--holdings", "holdings.csv", make_fifo, "is a device, FIFO or socket"),
    "systems-fifo": ("--systems", "systems.yaml", make_fifo, "is a device, FIFO or socket"),
    "people-socket": ("--people", "p.csv", make_socket, "is a device, FIFO or socket"),
    "people-folder": ("--people", "people.csv", make_dir, "is a folder, not a file"),
    "systems-folder": ("--systems", "systems.yaml", make_dir, "is a folder, not a file"),
}
for name, (option, file_name, maker, fragment) in SPECIAL_INPUTS.items():
    add(
        Case(
            f"inventory-{name}",
            ("inventory", "import", option, "{tmp}/in/" + file_name),
            f"{file_name}: {fragment}",
            setup=(maker(file_name),),
        )
    )


# ---- F. incident.toml the tool would trip over later -------------------------------------------------------------


def config_with(replace: str, by: str) -> bytes:
    assert replace in DEFAULT_CONFIG, replace
    return DEFAULT_CONFIG.replace(replace, by, 1).encode("utf-8")


CONFIGS: dict[str, tuple[bytes, str]] = {
    "gbk": (DEFAULT_CONFIG.encode("gbk", errors="replace"), "incident.toml: not UTF-8 text"),
    "latin1": ('[organisation]\noperator = "Zoë"\n'.encode("latin-1"), "incident.toml: not UTF-8 text"),
    "utf16": (DEFAULT_CONFIG.encode("utf-16"), "incident.toml: not UTF-8 text"),
    "100k-brackets": (b"x = " + b"[" * DEEP + b"\n", "incident.toml:1: nested deeper than 64 levels"),
    "100k-inline-tables": (b"x = " + b"{a = " * DEEP + b"\n", "incident.toml:1: nested deeper than 64 levels"),
    "deep-after-the-defaults": (
        DEFAULT_CONFIG.encode() + b"[extra]\nx = " + b"[" * 100 + b"\n",
        "nested deeper than 64 levels",
    ),
    "4301-digit-int": (
        DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = " + b"1" * 4301 + b"\n",
        "incident.toml",
    ),
    "lease-text": (DEFAULT_CONFIG.encode() + b'[dispatch]\nlease_seconds = "x"\n', "dispatch.lease_seconds: must be"),
    "lease-bool": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = true\n", "dispatch.lease_seconds: must be"),
    "lease-negative": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = -5\n", "dispatch.lease_seconds: must"),
    "lease-zero": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = 0\n", "dispatch.lease_seconds: must be"),
    "lease-nan": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = nan\n", "dispatch.lease_seconds: must be"),
    "lease-inf": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = inf\n", "dispatch.lease_seconds: must be"),
    "lease-huge": (DEFAULT_CONFIG.encode() + b"[dispatch]\nlease_seconds = 1e300\n", "dispatch.lease_seconds: must"),
    "organisation-text": (b'organisation = "x"\n[database]\n', "organisation: must be a table"),
    "organisation-list": (b"organisation = [1, 2]\n", "organisation: must be a table"),
    "channels-number": (b"channels = 3\n", "channels: must be a table"),
    "channel-text": (b'[channels]\nemail = "x"\n', "channels.email: must be a table"),
    "dispatch-text": (b'dispatch = "x"\n', "dispatch: must be a table"),
    "oncall-number": (b"oncall = 1\n", "oncall: must be a table"),
    "announcement-text": (b'announcement = "x"\n', "announcement: must be a table"),
    "database-number": (b"database = 5\n", "database: must be a table"),
    "platform-en-crlf": (
        config_with('platform_en = "Chengliaogou"', 'platform_en = "Chengliaogou\\r\\nBcc: all@evil.example"'),
        "organisation.platform_en: contains a line break",
    ),
    "platform-en-lf": (
        config_with('platform_en = "Chengliaogou"', 'platform_en = "Chengliaogou\\nX"'),
        "organisation.platform_en: contains a line break",
    ),
    "operator-en-rlo": (
        config_with('operator_en = "Luke', 'operator_en = "\\u202eLuke'),
        "organisation.operator_en: contains",
    ),
    "website-tab": (config_with('website = "https', 'website = "\\thttps'), "organisation.website: contains"),
    "officer-email-crlf": (
        config_with('email = "lookjt@163.com"', 'email = "lookjt@163.com\\r\\nBcc: x@evil.example"'),
        "organisation.officer.email: contains a line break",
    ),
    "officer-text": (b'[organisation]\nofficer = "x"\n', "organisation.officer: must be a table"),
    "operator-number": (
        config_with('operator = "禄可科技集团有限公司"', "operator = 123"),
        "organisation.operator: must",
    ),
    "operator-table": (b"[organisation.operator]\nx = 1\n", "organisation.operator: must be a text string"),
    "unclosed-table": (b"[organisation\n", "incident.toml: "),
    "duplicate-key": (b'[organisation]\noperator = "a"\noperator = "b"\n', "incident.toml: "),
}
for name, (content, fragment) in CONFIGS.items():
    for command in (("list",), ("dispatch", "{ID}", "--dry-run")):
        add(Case(f"config-{name}-{command[0]}", command, fragment, setup=(write_config(content),)))


# ---- G. audit exports that are no export --------------------------------------------------------------------------

FMT = b'"format": "incident-audit-chain/1", "chain": "INC-2026-0001"'
AUDIT_FILES: dict[str, tuple[bytes, str]] = {
    "a-list": (b"[]", "not an audit export"),
    "null": (b"null", "not an audit export"),
    "a-number": (b"1", "not an audit export"),
    "a-string": (b'"chain"', "not an audit export"),
    "empty-object": (b"{}", "not an audit export"),
    "chain-null": (b'{"chain": null}', "not an audit export"),
    "chain-number": (b'{"chain": 1, "entries": []}', "not an audit export"),
    "entries-text": (b"{" + FMT + b', "entries": "x"}', "not an audit export"),
    "entries-null-entry": (b"{" + FMT + b', "entries": [null]}', "not an audit export"),
    "entries-number-entry": (b"{" + FMT + b', "entries": [1]}', "not an audit export"),
    "entry-without-fields": (b"{" + FMT + b', "entries": [{}]}', "a field is missing or malformed"),
    "entry-null-fields": (
        b"{" + FMT + b', "entries": [{"seq": null, "prev_hash": null, "hash": null}]}',
        "a field is missing or malformed",
    ),
    "entry-seq-text": (b"{" + FMT + b', "entries": [{"seq": "1"}]}', "a field is missing or malformed"),
    "100k-brackets": (b"[" * DEEP, "nested deeper than 64 levels"),
    "100k-objects": (b'{"a": ' * DEEP, "nested deeper than 64 levels"),
    "4301-digit-number": (b'{"chain": ' + b"7" * 4301 + b"}", "not a readable audit export"),
    "not-utf8": ('{"chain": "会员"}'.encode("gbk"), "not UTF-8 text"),
    "empty-file": (b"", "not a readable audit export"),
    "truncated": (b"{" + FMT + b', "entries": [{"seq": 1, ', "not a readable audit export"),
    "duplicate-chain-key": (b'{"chain": "INC-1", "chain": "INC-2", "entries": []}', "'chain' appears twice"),
    "nan": (b'{"chain": NaN}', "not an audit export"),
}
for name, (content, fragment) in AUDIT_FILES.items():
    add(
        Case(
            f"audit-file-{name}",
            ("audit", "verify", "--file", "{tmp}/in/chain.json"),
            ("chain.json", fragment),
            setup=(write_input("chain.json", content),),
        )
    )
for name, (maker, fragment) in {
    "a-fifo": (make_fifo, "is a device, FIFO or socket"),
    "a-socket": (make_socket, "is a device, FIFO or socket"),
    "a-folder": (make_dir, "is a folder, not a file"),
}.items():
    add(
        Case(f"audit-file-{name}", ("audit", "verify", "--file", "{tmp}/in/c.json"), fragment, setup=(maker("c.json"),))
    )
add(Case("audit-file-missing", ("audit", "verify", "--file", "{tmp}/in/none.json"), "none.json: cannot read it"))


# ---- H. rows edited into garbage behind the tool's back ------------------------------------------------------------

GARBAGE = b"\x00\xff\x00not zlib"
NOTICES_SHOW = ("notices", "show", "{ID}", "--person", "cn-adult")
CORRUPT = "the database holds a corrupt value: "
# (the edit, the command, the fragment after CORRUPT, whether PostgreSQL's types refuse the edit itself)
CORRUPT_ROWS: dict[str, tuple[str, tuple[str, ...], str, bool]] = {
    "notice-body": ("UPDATE notice SET body = ?", NOTICES_SHOW, "notice ", False),
    "notice-html": ("UPDATE notice SET html = ?", NOTICES_SHOW, "notice ", False),
    "systems-show": ("UPDATE incident SET systems = 'not json'", ("show", "{ID}"), "incident {ID}: systems", False),
    "systems-json": ("UPDATE incident SET systems = '['", ("show", "{ID}", "--json"), "incident {ID}: systems", False),
    "categories": ("UPDATE incident SET categories = '[1'", ("show", "{ID}"), "incident {ID}: categories", False),
    "status-show": ("UPDATE incident SET status = 'bogus'", ("show", "{ID}"), "incident {ID}: status", False),
    "status-render": (
        "UPDATE incident SET status = 'bogus'",
        ("notices", "render", "{ID}"),
        "incident {ID}: status",
        False,
    ),
    "counts-show": ("UPDATE assessment SET counts = '['", ("show", "{ID}"), "assessment of {ID}: counts", False),
    "counts-board": ("UPDATE assessment SET counts = '{'", ("status",), "assessment of {ID}: counts", False),
    "time-show": ("UPDATE incident SET discovered_at = 'garbage'", ("show", "{ID}"), "a stored time", True),
    "time-list": ("UPDATE incident SET discovered_at = 'garbage'", ("list",), "a stored time", True),
    "time-notices": ("UPDATE incident SET discovered_at = 'x'", NOTICES_SHOW, "a stored time", True),
}
for name, (sql, args, fragment, sqlite_only) in CORRUPT_ROWS.items():
    add(
        Case(
            f"corrupt-{name}",
            args,
            CORRUPT + fragment,
            setup=(edit_db(sql),),
            db=True,
            story="rendered",
            sqlite_only=sqlite_only,
        )
    )


# ---- I. values out of range ----------------------------------------------------------------------------

for name, (args, fragment) in {
    "workers-zero": (("dispatch", "{ID}", "--workers", "0"), "--workers"),
    "workers-negative": (("dispatch", "{ID}", "--workers", "-1"), "--workers"),
    "workers-4301-digits": (("dispatch", "{ID}", "--workers", "9" * 4301), "--workers"),
    "worker-workers-zero": (("worker", "--workers", "0"), "--workers"),
    "render-workers-zero": (("notices", "render", "{ID}", "--workers", "0"), "--workers"),
    "affected-format": (("affected", "{ID}", "--format", "xml"), "--format"),
    "deliveries-format": (("deliveries", "{ID}", "--format", "xlsx"), "--format"),
    "report-format": (("report", "{ID}", "--regulator", "cn-cac", "--format", "docx"), "--format"),
    "report-stage": (("report", "{ID}", "--regulator", "cn-cac", "--stage", "later"), "--stage"),
    "report-field": (("report", "{ID}", "--regulator", "cn-cac", "--field", "no-equals"), "--field"),
    "dispatch-channel": (("dispatch", "{ID}", "--channel", "fax"), "--channel"),
    "notices-channel": (("notices", "show", "{ID}", "--person", "cn-adult", "--channel", "fax"), "--channel: 'fax'"),
    "log-kind": (("log", "{ID}", "text", "--kind", "rumour"), "--kind"),
    "assess-grade": (("assess", "{ID}", "--grade", "apocalyptic", "--reason", "x"), "--grade"),
    "log-level": (("--log-level", "LOUD", "list"), "--log-level"),
    "no-such-incident-id-300": (("show", "I" * 300), "no incident"),
    "missing-required-option": (("open", "--title", "x"), "Missing option"),
    "unknown-option": (("list", "--colour"), "No such option"),
}.items():
    add(Case(f"range-{name}", args, fragment, db=True))
add(
    Case(
        "range-settle-before-discovery",
        ("settle", "{ID}", "cn-pipl-authority", "--at", "2026-03-09T23:59:00+00:00"),
        "--at: is before the incident was discovered",
        db=True,
    )
)
add(Case("range-log-level-env", ("list",), "INCIDENT_LOG_LEVEL: 'LOUD'", env=(("INCIDENT_LOG_LEVEL", "LOUD"),)))


# ---- the fixtures ------------------------------------------------------------------------------------------

SYSTEM_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/hosts", "/dev/null")


def _stat(path: str) -> tuple[Any, ...] | None:
    try:
        st = os.stat(path)  # read-only: never opened for writing
    except OSError:
        return None
    return (st.st_mode, st.st_uid, st.st_size, st.st_mtime_ns, st.st_ino)


@pytest.fixture(scope="module", autouse=True)
def system_files_untouched() -> Iterator[None]:
    """The whole corpus leaves the machine's own files as they were (a version of it once overwrote /etc/passwd)."""
    before = {p: _stat(p) for p in SYSTEM_FILES}
    yield
    assert {p: _stat(p) for p in SYSTEM_FILES} == before


def assessed_story(ws: WorkspaceDir) -> str:
    ws.import_inventory()
    incident = open_incident(ws)
    ws.ok("assess", incident.id)
    return incident.id


def inventory_story(ws: WorkspaceDir) -> str:
    ws.import_inventory()
    return "INC-NONE"  # no incident: the import cases need only the inventory


def rendered_story(ws: WorkspaceDir) -> str:
    incident_id = assessed_story(ws)
    ws.ok("notices", "render", incident_id)
    return incident_id


@pytest.fixture(scope="module")
def assessed(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The hand-written inventory with the member-db exfiltration opened and assessed."""
    return Snapshot(tmp_path_factory, "corpus-assessed", assessed_story)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """Only the hand-written inventory (the import cases need no incident; cheaper on PostgreSQL)."""
    return Snapshot(tmp_path_factory, "corpus-inventory", inventory_story)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The same incident with its notices rendered."""
    return Snapshot(tmp_path_factory, "corpus-rendered", rendered_story)


SIDE_FILES = ("incident.db-journal", "incident.db-wal", "incident.db-shm")


def files_under(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every entry under the sandbox (never following a link): its kind, mode and, for a file, its bytes' hash."""
    found: dict[str, tuple[Any, ...]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            rel = str(path.relative_to(root))
            if name in SIDE_FILES:
                continue
            st = os.lstat(path)
            kind = stat.S_IFMT(st.st_mode)
            digest = ""
            if stat.S_ISREG(st.st_mode) and name != "incident.db":  # the database is compared row by row
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                digest = os.readlink(path)
            found[rel] = (kind, stat.S_IMODE(st.st_mode), digest)
    return found


def database_rows(ws: WorkspaceDir) -> dict[str, list[str]]:
    """Every row of every table, read without going through incident.toml (a case may have broken it)."""
    url = os.environ.get("INCIDENT_DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
            return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in names}
    conn = sqlite3.connect(f"file:{ws.root / 'incident.db'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: sorted(map(repr, conn.execute(f'SELECT * FROM "{t}"').fetchall())) for t in names}
    finally:
        conn.close()


@dataclass
class Outcome:
    exit_code: int
    crashed: BaseException | None
    stderr: list[str] = field(default_factory=list)
    output: str = ""


def params() -> list[Any]:
    out = []
    for case in CASES:
        marks = []
        if not case.db:
            marks.append(pytest.mark.nodb)
        if case.sqlite_only:
            marks.append(pytest.mark.sqlite_only)
        out.append(pytest.param(case, id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("case", params())
def test_hostile_input_is_refused_in_one_line_and_changes_nothing(
    case: Case, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given a workspace and one hostile input planted inside the sandbox, when the responder runs the command,
    then it exits non-zero without crashing, prints one `error:` line naming the input and no traceback, and the
    database and every file of the sandbox are as they were."""
    opened = request.getfixturevalue(case.story).copy(tmp_path)
    deep = tmp_path / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # `../../..` in a case stays inside the sandbox
    box = Sandbox(tmp_path, opened.ws, opened.id)
    for setup in case.setup:
        setup(box)
    for name, value in case.env:
        monkeypatch.setenv(name, value)
    files_before, rows_before = files_under(tmp_path), database_rows(box.ws)

    result = box.ws.run(*(box.sub(arg) for arg in case.args))

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    crashed = result.exception if not isinstance(result.exception, SystemExit) else None
    assert crashed is None, f"{case.id}: {type(crashed).__name__}: {crashed}"
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output, result.output
    assert lines and lines[0].startswith("error: "), result.output
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("nothing was imported")), result.output
    for fragment in (case.expect,) if isinstance(case.expect, str) else case.expect:
        assert box.sub(fragment) in lines[0], result.output
    assert database_rows(box.ws) == rows_before
    assert files_under(tmp_path) == files_before


def test_the_corpus_is_large_and_its_names_unique() -> None:
    """The corpus keeps growing: hundreds of cases, each under its own name."""
    assert len(CASES) >= 400
    assert len({c.id for c in CASES}) == len(CASES)
