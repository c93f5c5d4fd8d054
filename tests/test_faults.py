"""Issue 7, faults: a mail server that hangs up after the data, a gateway that never answers, a full disk under
the outbox, a database locked by another process, and two responders changing the same incident at once. Each
time the command says what happened in one line, loses nothing, and a re-run completes.

The faults injected are counted in tests/artifacts/faults.json for the README.
"""

from __future__ import annotations

import email
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from conftest import BACKEND
from servers import configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import MEMBER_DB_YAML, WorkspaceDir, manifest_of, open_incident, people_csv

from incident.config import find_workspace

pytestmark = pytest.mark.slow

INCIDENT = shutil.which("incident")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SENDER = "security@example.com"


def member(n: int, *, mail: bool = True) -> dict[str, str]:
    """Person n of the cast: an English or Chinese speaker with a phone, a push token and (usually) email."""
    en = n % 2 == 1
    return {
        "person_id": f"p{n:02d}",
        "name": f"Person {n}",
        "email": f"p{n:02d}@example.com" if mail else "",
        "phone": f"+86138{n:08d}",
        "push_token": f"tok-{n:02d}",
        "locale": "en" if en else "zh-CN",
        "region": "GB" if en else "CN-FJ",
        "birth_date": "1990-01-01",
        "account_status": "active",
    }


def approved_incident(ws: WorkspaceDir, cast: list[dict[str, str]]) -> str:
    """Import the cast, open an incident on member-db, assess it, render and approve its notices."""
    holdings = "person_id,system,category,since,until\n" + "".join(
        f"{m['person_id']},member-db,{c},2022-01-01,\n" for m in cast for c in ("password", "phone")
    )
    ws.import_inventory(people=people_csv(cast), holdings=holdings, systems=MEMBER_DB_YAML)
    incident_id = open_incident(ws, systems="member-db", categories="password,phone").id
    ws.ok("assess", incident_id)
    ws.ok("notices", "render", incident_id)
    ws.ok("notices", "approve", incident_id, "--manifest", manifest_of(ws, incident_id), "--reviewer", "Legal (Li Na)")
    return incident_id


def attempts(ws: WorkspaceDir, incident_id: str) -> dict[str, list[tuple[str, str, str]]]:
    """person -> [(channel, outcome, reason)] in the order the attempts were made."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    for line in ws.ok("deliveries", incident_id, "--format", "jsonl").splitlines():
        a = json.loads(line)
        out.setdefault(a["person_id"], []).append((a["channel"], a["outcome"], a["reason"] or ""))
    return out


def states(ws: WorkspaceDir, incident_id: str) -> dict[str, str]:
    return dict(ws.sql("SELECT person_id, state FROM delivery WHERE incident_id = ?", (incident_id,)))


def command(ws: WorkspaceDir, *args: str, wrap: list[str] | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed command on the workspace in a process of its own (this test's database too)."""
    env = {k: v for k, v in os.environ.items() if k not in ("INCIDENT_HOME", "INCIDENT_ACTOR")}
    argv = [*(wrap or []), str(INCIDENT), "--workspace", str(ws.root), "--actor", "fault-test", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, check=False, **kw)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed and said why in exactly one line on stderr, without a traceback."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


# ---- the figures ---------------------------------------------------------------------------------------------

FAULTS: dict[str, dict[str, Any]] = {}


def injected(fault: str, cases: int, what: str) -> None:
    FAULTS[fault] = {"cases": cases, "what": what}


@pytest.fixture(scope="module", autouse=True)
def fault_figures() -> Iterator[None]:
    """After the module, merge this backend's injected faults into tests/artifacts/faults.json."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed (pip install -e '.[test]')")
    yield
    if FAULTS:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / "faults.json"
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        faults = {**data.get(BACKEND, {}).get("faults", {}), **FAULTS}  # a partial run (-k) updates its own
        data[BACKEND] = {
            "faults": dict(sorted(faults.items())),
            "total_cases": sum(f["cases"] for f in faults.values()),
        }
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# ---- a mail server that hangs up after the data ---------------------------------------------------------------

DROPPED = ("p01@example.com", "p04@example.com", "p07@example.com")


def test_a_mail_server_that_hangs_up_after_the_data_is_retried_and_the_possible_duplicates_are_counted(
    workspace: WorkspaceDir,
):
    """Given a mail server that takes in the message and then drops the connection without answering, for three
    recipients the first time, when the responder dispatches, then each of those attempts is recorded transient
    because the message may have been delivered, it is retried, everyone is reached, and the duplicates the
    server received are exactly the dropped ones."""
    cast = [member(n) for n in range(1, 11)]
    with smtp_sink(drop_after_data=dict.fromkeys(DROPPED, 1)) as smtp, http_gateway() as sms, http_gateway() as push:
        incident_id = approved_incident(workspace, cast)
        configure_channels(
            workspace.root,
            email=f"smtppool://127.0.0.1:{smtp.port}/{{email}}?from={SENDER}",
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}",
            concurrency=2,
        )
        # One sending thread: every message after the first travels on a reused (pooled) connection.
        out = workspace.ok("dispatch", incident_id, "--workers", "1")
        received = smtp.notice_ids()
        expected = {
            f"{incident_id}.{ref}.email"
            for (ref,) in workspace.sql(
                "SELECT ref FROM notice WHERE incident_id = ? AND channel = 'email'", (incident_id,)
            )
        }
        assert sms.requests == [] and push.requests == []
    assert "email:transient 3" in out and "deliveries: sent 10" in out, out
    made = attempts(workspace, incident_id)
    maybe = {
        p
        for p, tries in made.items()
        for (_, outcome, reason) in tries
        if outcome == "transient" and "may have been delivered" in reason
    }
    assert maybe == {"p01", "p04", "p07"}, made
    for person, tries in made.items():
        assert [(c, o) for c, o, _ in tries] == (
            [("email", "transient"), ("email", "sent")] if person in maybe else [("email", "sent")]
        ), (person, tries)
    assert set(received) == expected, "a recipient was not reached"
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates == len(DROPPED) == len(maybe)
    injected(
        "smtp-drop-after-data",
        len(DROPPED),
        "connections dropped after DATA; each retried, each a counted possible duplicate",
    )


# ---- a gateway that never answers -----------------------------------------------------------------------------


def test_a_gateway_that_never_answers_times_out_and_the_notice_is_retried_or_falls_back(workspace: WorkspaceDir):
    """Given an SMS gateway that never answers one number and answers another only the second time, with a
    one-second timeout, when the responder dispatches, then each silent attempt is recorded transient with a
    timeout reason, the second number gets its SMS on the retry, the first falls back to push, and the whole run
    takes seconds, not the minutes a hung connection could."""
    cast = [member(n, mail=False) for n in range(1, 7)]
    silent, slow = cast[0]["phone"], cast[1]["phone"]
    with smtp_sink() as smtp, http_gateway(hang={silent: 99, slow: 1}) as sms, http_gateway() as push:
        incident_id = approved_incident(workspace, cast)
        configure_channels(
            workspace.root,
            email=f"smtppool://127.0.0.1:{smtp.port}/{{email}}?from={SENDER}",
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}&timeout=1",
            push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}&timeout=1",
            retries=2,
        )
        started = time.monotonic()
        out = workspace.ok("dispatch", incident_id)
        elapsed = time.monotonic() - started
        hung = sum(1 for r in sms.requests if r.status == 0)
        pushed = [r.to for r in push.requests]
    assert elapsed < 10, f"dispatch took {elapsed:.1f} s"
    assert "sms:transient 3" in out and "deliveries: sent 6" in out, out
    made = attempts(workspace, incident_id)
    assert [(c, o) for c, o, _ in made["p01"]] == [("sms", "transient"), ("sms", "transient"), ("push", "sent")]
    assert [(c, o) for c, o, _ in made["p02"]] == [("sms", "transient"), ("sms", "sent")]
    assert all("timeout" in reason.lower() for p in ("p01", "p02") for c, o, reason in made[p] if o == "transient")
    assert all(tries == [("sms", "sent", "")] for p, tries in made.items() if p not in ("p01", "p02"))
    assert pushed == [cast[0]["push_token"]] and hung == 3
    injected("gateway-hang", hung, "gateway requests never answered (1 s timeout); retried, then fell back")


# ---- a full disk under the outbox -----------------------------------------------------------------------------

FILE_SIZE_LIMIT = 8192  # bytes: an email notice with its HTML part is larger, an SMS is not
TINY_FS = "4k"  # a tmpfs of one page: the first 4 KiB of a message fit, the rest is ENOSPC
LEFT_ON_TMPFS = "left on the full filesystem:"


def size_limited() -> None:
    """In the child: writing past FILE_SIZE_LIMIT fails with EFBIG (File too large), as a full disk would."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))


def on_a_tiny_filesystem(folder: Path) -> list[str]:
    """A command prefix that mounts a 4 KiB tmpfs over `folder` in a private user and mount namespace (no
    privileges needed, gone when the command ends) and lists what is left on it afterwards."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], check=False).returncode:
        pytest.skip("no user namespaces here (unshare -rm): a private tmpfs cannot be mounted")
    script = (
        f'mount -t tmpfs -o size={TINY_FS},mode=0700 tmpfs "$0" || exit 99; "$@"; rc=$?; '
        f'echo "{LEFT_ON_TMPFS} $(ls -A "$0" | tr "\\n" " ")"; exit $rc'
    )
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, str(folder)]


@pytest.mark.parametrize("injection", ["file-size-limit", "tiny-filesystem"])
def test_a_full_disk_stops_the_dispatch_clearly_and_a_rerun_delivers_each_notice_exactly_once(
    workspace: WorkspaceDir, injection: str
):
    """Given approved notices going to the file outbox, when `incident dispatch` runs where no file may grow past
    8 KiB (RLIMIT_FSIZE) or where the email outbox is a full 4 KiB filesystem, then it stops with one line saying
    why and how many deliveries are still pending, leaves no half-written message, spends no retry and falls back
    nowhere; a re-run with space delivers each notice exactly once. (Under the size limit on SQLite the database
    shares the disk, so the first write refused is the database's own: the command says so in one line and
    nothing happens.)"""
    cast = [member(n) for n in range(1, 9)]
    incident_id = approved_incident(workspace, cast)
    outbox = workspace.root / "outbox" / incident_id
    if injection == "file-size-limit":
        full = command(workspace, "dispatch", incident_id, preexec_fn=size_limited)
        refusal = "File too large"
    else:
        (outbox / "email").mkdir(parents=True, mode=0o700)
        full = command(workspace, "dispatch", incident_id, wrap=on_a_tiny_filesystem(outbox / "email"))
        refusal = "No space left on device"
        left = [
            line.removeprefix(LEFT_ON_TMPFS).split()
            for line in full.stdout.splitlines()
            if line.startswith(LEFT_ON_TMPFS)
        ]
        assert left == [[]], f"files left half-written on the full filesystem: {left}"
    line = one_error_line(full)
    if injection == "file-size-limit" and BACKEND == "sqlite":
        assert line.startswith("error: the database cannot be written (disk I/O error): is the disk full?"), line
        assert workspace.sql("SELECT COUNT(*) FROM attempt") == [(0,)]
    else:
        assert line.startswith(
            f"error: dispatch stopped: outbox write failed (nothing was sent): {refusal}; "
            f"{len(cast)} deliveries are still pending"
        ), line
        made = attempts(workspace, incident_id)
        assert {p: [(c, o) for c, o, _ in t] for p, t in made.items()} == {
            m["person_id"]: [("email", "transient")] for m in cast
        }
        assert set(states(workspace, incident_id).values()) == {"pending"}
        assert workspace.sql("SELECT DISTINCT position, tries FROM delivery") == [(0, 0)], "a retry was spent"
    assert list(outbox.rglob("*.part")) == [] and list(outbox.rglob("*.eml")) == [], "a half-written message"

    again = command(workspace, "dispatch", incident_id)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(states(workspace, incident_id).values()) == {"sent"}
    files = sorted(p for p in outbox.rglob("*") if p.is_file())
    assert [p.parent.name for p in files] == ["email"] * len(cast), files
    refs = Counter(p.name.split(".")[1] for p in files)
    assert set(refs) == {ref for (ref,) in workspace.sql("SELECT DISTINCT ref FROM notice")} and set(refs.values()) == {
        1
    }
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert message["X-Notice-Id"] == path.stem and path.stat().st_size > FILE_SIZE_LIMIT
        assert message.get_body(preferencelist=("html",)) is not None, f"{path.name} is incomplete"
    refused = 1 if (injection == "file-size-limit" and BACKEND == "sqlite") else len(cast)
    injected(
        f"full-disk-{injection}",
        refused,
        "outbox writes refused with EFBIG under RLIMIT_FSIZE (on SQLite: the database file itself)"
        if injection == "file-size-limit"
        else "outbox writes refused with ENOSPC by a 4 KiB tmpfs",
    )


# ---- a database locked by another process ---------------------------------------------------------------------

LOCK_HOLDER = """
import sys
url, incident_id = sys.argv[1], sys.argv[2]
if url.startswith("sqlite"):
    import sqlite3
    conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
else:
    import psycopg
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    conn.execute("SELECT id FROM incident WHERE id = %s FOR UPDATE", (incident_id,))
print("locked", flush=True)
sys.stdin.readline()
conn.rollback() if hasattr(conn, "rollback") and not url.startswith("sqlite") else conn.execute("ROLLBACK")
"""


def test_a_database_locked_by_another_process_fails_in_one_line_after_the_busy_timeout(opened_incident):
    """Given another process holding the database's write lock (SQLite) or the incident's row (PostgreSQL), and
    `[database] busy_timeout_seconds = 1`, when the responder logs an action, then after about a second the
    command fails in one line saying the database is locked and nothing was changed; once the lock is released
    the same command succeeds."""
    ws, incident_id = opened_incident.ws, opened_incident.id
    toml = ws.root / "incident.toml"
    toml.write_text(
        toml.read_text(encoding="utf-8").replace("[database]\n", "[database]\nbusy_timeout_seconds = 1\n", 1),
        encoding="utf-8",
    )
    url = find_workspace(ws.root).database_url
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, url, incident_id], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        locked = command(ws, "log", incident_id, "Rotated the leaked key (while locked)")
        waited = time.monotonic() - started
        line = one_error_line(locked)
        assert line.startswith("error: the database is locked by another process"), line
        assert "busy_timeout_seconds" in line and 1 <= waited < 10, (line, waited)
    finally:
        holder.communicate("release\n", timeout=30)
    assert holder.returncode == 0
    done = command(ws, "log", incident_id, "Rotated the leaked key")
    assert done.returncode == 0, done.stderr
    texts = [e["text"] for e in opened_incident.show()["timeline"]]
    assert "Rotated the leaked key" in texts and "Rotated the leaked key (while locked)" not in texts
    injected(
        "database-locked",
        1,
        "another process holds the write lock (SQLite) or the incident row (PostgreSQL) past a 1 s busy timeout",
    )


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        (None, None, None),
        (None, "busy_timeout_seconds = 1", 1.0),
        ("2.5", "busy_timeout_seconds = 1", 2.5),
        ("soon", None, "INCIDENT_DB_BUSY_TIMEOUT: not a number of seconds: 'soon'"),
        (None, "busy_timeout_seconds = -3", "[database] busy_timeout_seconds: must be between 0 and 86400 seconds"),
        (None, 'busy_timeout_seconds = "a while"', "[database] busy_timeout_seconds: not a number of seconds"),
    ],
    ids=["default", "incident.toml", "environment-wins", "not-a-number", "negative", "text"],
)
def test_the_busy_timeout_comes_from_the_environment_or_incident_toml(
    workspace: WorkspaceDir,
    monkeypatch: pytest.MonkeyPatch,
    env: str | None,
    toml: str | None,
    expected: float | str | None,
):
    from incident.db import busy_timeout
    from incident.errors import IncidentError

    if env is not None:
        monkeypatch.setenv("INCIDENT_DB_BUSY_TIMEOUT", env)
    if toml is not None:
        path = workspace.root / "incident.toml"
        path.write_text(
            path.read_text(encoding="utf-8").replace("[database]\n", f"[database]\n{toml}\n", 1), encoding="utf-8"
        )
    ws = find_workspace(workspace.root)
    if isinstance(expected, str):
        with pytest.raises(IncidentError, match=re.escape(expected)):
            busy_timeout(ws)
    else:
        assert busy_timeout(ws) == expected


# ---- two responders at once -------------------------------------------------------------------------------------

ENTRIES = 25
ROUNDS = 6  # grade overrides racing as many log entries


def responder_loop(ws: WorkspaceDir, commands: list[list[str]]) -> subprocess.Popen[str]:
    """One responder's shell, running the installed command once per line, one after the other."""
    prefix = [str(INCIDENT), "--workspace", str(ws.root)]
    script = "set -e\n" + "".join(shlex.join([*prefix, *c]) + " >/dev/null\n" for c in commands)
    env = {k: v for k, v in os.environ.items() if k not in ("INCIDENT_HOME", "INCIDENT_ACTOR")}
    return subprocess.Popen(["bash", "-c", script], stderr=subprocess.PIPE, text=True, env=env)


def audit_chain(ws: WorkspaceDir, incident_id: str) -> list[tuple[int, str]]:
    return [
        (int(seq), action)
        for seq, action in ws.sql("SELECT seq, action FROM audit_entry WHERE chain = ? ORDER BY seq", (incident_id,))
    ]


def finish(*loops: subprocess.Popen[str]) -> None:
    for loop in loops:
        _, err = loop.communicate(timeout=180)
        assert loop.returncode == 0, err


def test_two_responders_logging_at_once_lose_no_entry_and_the_audit_chain_holds(opened_incident):
    """Given two responders, each in their own shell running `incident log` 25 times, at the same moment, then
    all 50 entries are in the timeline, the audit chain has 50 `logged` entries with consecutive sequence
    numbers, and `incident audit verify` finds it intact."""
    ws, incident_id = opened_incident.ws, opened_incident.id
    before = audit_chain(ws, incident_id)
    loops = [
        responder_loop(ws, [["--actor", who, "log", incident_id, f"{who} step {i}"] for i in range(ENTRIES)])
        for who in ("alice", "bob")
    ]
    finish(*loops)
    timeline = [(e["actor"], e["text"]) for e in opened_incident.show()["timeline"]]
    assert sorted(timeline) == sorted((who, f"{who} step {i}") for who in ("alice", "bob") for i in range(ENTRIES))
    chain = audit_chain(ws, incident_id)
    assert [seq for seq, _ in chain] == list(range(1, len(chain) + 1)), "sequence numbers not consecutive"
    assert [a for _, a in chain[len(before) :]] == ["logged"] * 2 * ENTRIES
    verified = ws.ok("audit", "verify", incident_id)
    assert f"{incident_id}: ok, {len(chain)} entries" in verified, verified
    injected("concurrent-log", 2 * ENTRIES, "two processes each running `incident log` 25 times at once")


def test_a_grade_override_and_log_entries_made_at_once_are_all_kept(assessed_incident):
    """Given one responder overriding the grade six times while another logs six actions, at the same moment,
    then every override and every entry is stored, the last override is the grade in effect, and the audit
    chain is consecutive and verifies."""
    ws, incident_id = assessed_incident.ws, assessed_incident.id
    grades = ["major", "relatively-major"] * (ROUNDS // 2)
    before = audit_chain(ws, incident_id)
    finish(
        responder_loop(
            ws,
            [
                ["--actor", "carol", "assess", incident_id, "--grade", g, "--reason", f"override {i}"]
                for i, g in enumerate(grades)
            ],
        ),
        responder_loop(ws, [["--actor", "dave", "log", incident_id, f"dave step {i}"] for i in range(ROUNDS)]),
    )
    reasons = [
        r
        for (r,) in ws.sql(
            "SELECT grade_reason FROM assessment WHERE incident_id = ? AND grade_reason IS NOT NULL ORDER BY id",
            (incident_id,),
        )
    ]
    assert reasons == [f"override {i}" for i in range(ROUNDS)]
    shown = assessed_incident.show()
    assert shown["assessment"]["grade"]["key"] == grades[-1]
    assert sorted(e["text"] for e in shown["timeline"] if e["actor"] == "dave") == sorted(
        f"dave step {i}" for i in range(ROUNDS)
    )
    chain = audit_chain(ws, incident_id)
    assert [seq for seq, _ in chain] == list(range(1, len(chain) + 1))
    assert Counter(a for _, a in chain[len(before) :]) == {"assessed": ROUNDS, "logged": ROUNDS}
    assert f"{incident_id}: ok" in ws.ok("audit", "verify", incident_id)
    injected("concurrent-assess-and-log", 2 * ROUNDS, "grade overrides and log entries from two processes at once")
