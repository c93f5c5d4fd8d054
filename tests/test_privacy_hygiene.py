"""Issue 7, personal-data hygiene: the demo is run through the installed command with debug logging, and every
byte it writes outside the database and the files meant to hold personal data is searched for every email
address, phone number, name and postal address of its inventory. Files that do hold personal data are the
owner's alone; secrets in the configuration never print; a traceback shows no local variables.

The figures (bytes scanned, identifiers checked) are written to tests/artifacts/hygiene.json for the README.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from conftest import BACKEND, init_workspace
from rawdb import connect
from servers import configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import HOLDINGS_CSV, PEOPLE_CSV, SYSTEMS_YAML, WorkspaceDir, approve_notices
from typer.testing import CliRunner

from incident.cli import app

INCIDENT = shutil.which("incident")
PDFTOTEXT = shutil.which("pdftotext")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DEMO_PEOPLE = 400
INCIDENT_ID = "INC-2026-0001"
# Where personal data is meant to be: the database, the inventory it was imported from, the messages and
# letters themselves, the rejected rows of an import. Everything else the demo writes is scanned.
INTENDED = ("incident.db", "inventory", "outbox", "letters", "rejected")


# ---- the demo, run once for this module through the installed command -----------------------------------


@dataclass
class Run:
    """One invocation of the installed command and everything it printed."""

    label: str
    returncode: int
    stdout: bytes
    stderr: bytes


@dataclass
class DemoRun:
    """The demo workspace, the commands run on it, and the personal-data outputs asked for explicitly."""

    root: Path
    env: dict[str, str]
    runs: list[Run] = field(default_factory=list)
    exports: Path = Path()

    @property
    def affected_csv(self) -> Path:
        return self.exports / "new-folder" / "affected.csv"

    def incident(self, *args: str, ok: tuple[int, ...] = (0,)) -> Run:
        """Run `incident --log-level DEBUG --workspace ROOT ARGS` and keep what it printed."""
        argv = [str(INCIDENT), "--log-level", "DEBUG", "--actor", "hygiene-test", "--workspace", str(self.root), *args]
        done = subprocess.run(argv, capture_output=True, timeout=180, env=self.env, check=False)
        run = Run(" ".join(args), done.returncode, done.stdout, done.stderr)
        self.runs.append(run)
        assert done.returncode in ok, f"{' '.join(args)}:\n{done.stdout.decode()}\n{done.stderr.decode()}"
        return run


def command_env(database_url: str | None) -> dict[str, str]:
    """The environment of every command: debug logging on, the test backend's database, nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env["INCIDENT_LOG_LEVEL"] = "DEBUG"
    if database_url:
        env["INCIDENT_DATABASE_URL"] = database_url
    return env


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> DemoRun:
    """`incident demo` with debug logging, then what a responder runs afterwards: show, affected --output,
    deliveries, status, config show, a re-import with bad rows (--skip-invalid) and an audit export."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed (pip install -e '.[test]')")
    url = None
    if BACKEND == "postgresql":
        url = request.getfixturevalue("postgres_server").create_database(f"h_{uuid.uuid4().hex[:16]}")
    base = tmp_path_factory.mktemp("hygiene")
    demo = DemoRun(base / "ws", command_env(url), exports=base / "exports")
    argv = [
        str(INCIDENT),
        "--log-level",
        "DEBUG",
        "--actor",
        "hygiene-test",
        "demo",
        str(demo.root),
        "--people",
        str(DEMO_PEOPLE),
    ]
    done = subprocess.run(argv, capture_output=True, timeout=300, env=demo.env, check=False)
    demo.runs.append(Run("demo", done.returncode, done.stdout, done.stderr))
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    demo.incident("show", INCIDENT_ID)
    demo.incident("show", INCIDENT_ID, "--json")
    demo.incident("list")
    demo.incident("inventory", "stats")
    demo.incident("affected", INCIDENT_ID, "--output", str(demo.affected_csv))
    demo.incident("deliveries", INCIDENT_ID)
    demo.incident("deliveries", INCIDENT_ID, "--format", "jsonl")
    demo.incident("status", "--json", ok=(0, 4))  # 4: an obligation is overdue, which is not this test's point
    demo.incident("config", "show")
    demo.incident("report", INCIDENT_ID, "--list")
    demo.incident("dispatch", INCIDENT_ID)
    demo.incident("letters", INCIDENT_ID)
    demo.incident("audit", "verify")
    demo.incident("audit", "export", INCIDENT_ID, "--output", str(demo.exports / "chain.json"))
    # Re-import the demo's own people with a few rows broken: the good rows change nothing, the bad ones go to
    # the rejects file (personal data, owner-only) and their errors to stderr (which must not repeat them).
    people = demo.root / "inventory" / "people.csv"
    rows = list(csv.reader(people.open(encoding="utf-8", newline="")))
    for row in rows[1:4]:
        row[7] = "born yesterday"
    broken = demo.exports / "people-with-bad-rows.csv"
    with broken.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    imported = demo.incident("inventory", "import", "--people", str(broken), "--skip-invalid")
    assert b"rejected 3 rows" in imported.stderr, imported.stderr.decode()
    return demo


# ---- what counts as a personal identifier of the demo ---------------------------------------------------


def phone_forms(number: str, region: str) -> set[str]:
    """A phone number as written, in E.164 and as people write it nationally: '+8613812345678',
    '138 1234 5678', '13812345678'."""
    parsed = phonenumbers.parse(number, region.split("-")[0] or None)
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    return {number, e164, national, str(parsed.national_number), "".join(c for c in national if c.isdigit())}


def identifiers(people: list[dict[str, str]]) -> set[str]:
    """Every email, phone number (each form), name and postal address of these people.csv rows."""
    found: set[str] = set()
    for row in people:
        for column in ("email", "guardian_email"):
            if row[column]:
                found.add(row[column])
        for column in ("phone", "guardian_phone"):
            if row[column]:
                found |= phone_forms(row[column], row["region"])
        for column in ("name", "guardian_name", "postal_address"):
            if len(row[column]) >= 2:
                found.add(row[column])
    return found


def demo_identifiers(people_csv: Path) -> set[str]:
    """The identifiers of everyone in the demo's people.csv."""
    with people_csv.open(encoding="utf-8", newline="") as fh:
        return identifiers(list(csv.DictReader(fh)))


def readable_text(path: Path) -> str:
    """A file's text as a reader sees it (a PDF's through pdftotext: its raw bytes hold glyph ids, not text)."""
    data = path.read_bytes()
    if path.suffix == ".pdf":
        data += subprocess.run(
            [str(PDFTOTEXT), "-enc", "UTF-8", str(path), "-"], capture_output=True, check=True
        ).stdout
    return data.decode("utf-8", "replace")


def hits(text: str, wanted: set[str]) -> list[str]:
    return sorted(i for i in wanted if i in text)


def scanned_files(root: Path) -> Iterator[Path]:
    """Every file the demo wrote into the workspace except the database and the intended personal-data
    outputs."""
    for path in sorted(root.rglob("*")):
        top = path.relative_to(root).parts[0]
        if path.is_file() and not any(top == x or top.startswith(x + "-") for x in INTENDED):
            yield path


def record_figures(name: str, figures: dict[str, Any]) -> None:
    """Merge this backend's figures into tests/artifacts/NAME.json (the README quotes them)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[BACKEND] = figures
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# ---- no identifier outside the intended outputs --------------------------------------------------------------


@pytest.mark.slow
def test_no_address_phone_or_name_of_the_demo_appears_in_any_output_log_or_page(demo_run: DemoRun):
    """Given the demo run with debug logging and every command a responder runs afterwards, when every byte
    they printed and every file outside the database and the intended outputs is searched, then none of the
    demo's emails, phone numbers, names or postal addresses is found."""
    if PDFTOTEXT is None:
        pytest.fail("pdftotext is missing (apt-get install poppler-utils): the PDF report cannot be searched")
    wanted = demo_identifiers(demo_run.root / "inventory" / "people.csv")
    assert len(wanted) > DEMO_PEOPLE, "the demo's people.csv yielded too few identifiers to mean anything"

    leaks: dict[str, list[str]] = {}
    scanned = 0
    for run in demo_run.runs:
        for stream, data in (("stdout", run.stdout), ("stderr", run.stderr)):
            scanned += len(data)
            found = hits(data.decode("utf-8", "replace"), wanted)
            if found:
                leaks[f"{run.label} ({stream})"] = found[:5]
    files = [*scanned_files(demo_run.root), demo_run.exports / "chain.json"]
    folders = sorted({p.relative_to(demo_run.root).parts[0] for p in files if p.is_relative_to(demo_run.root)})
    assert {"review", "public", "reports", "incident.toml"} <= set(folders), folders
    for path in files:
        scanned += path.stat().st_size
        found = hits(readable_text(path), wanted)
        if found:
            leaks[str(path)] = found[:5]
    debug_lines = sum(r.stderr.count(b" DEBUG incident") for r in demo_run.runs)
    assert debug_lines > 0, "debug logging was not on: the scan would prove nothing about the logs"
    assert leaks == {}, f"personal data outside the database and the intended outputs: {leaks}"

    # The same search finds them where they are meant to be: it is not blind.
    assert hits(demo_run.affected_csv.read_text(encoding="utf-8"), wanted)
    outbox = next((demo_run.root / "outbox" / INCIDENT_ID / "email").glob("*.eml"))
    assert hits(outbox.read_text(encoding="utf-8"), wanted)

    figures = {
        "demo_people": DEMO_PEOPLE,
        "identifiers_checked": len(wanted),
        "bytes_scanned": scanned,
        "files_scanned": len(files),
        "commands_captured": len(demo_run.runs),
        "debug_log_lines": debug_lines,
        "hits": 0,
    }
    record_figures("hygiene.json", figures)
    print(
        f"\nhygiene: {scanned:,} bytes from {len(demo_run.runs)} commands and {len(files)} files searched for "
        f"{len(wanted):,} identifiers of {DEMO_PEOPLE} people: 0 found"
    )


# ---- files holding personal data are the owner's alone --------------------------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def loose(paths: list[Path]) -> list[str]:
    """Files not 0600 and folders not 0700, as 'octal path'."""
    return [f"{mode(p):o} {p}" for p in paths if mode(p) != (0o700 if p.is_dir() else 0o600)]


def tree(folder: Path) -> list[Path]:
    return [folder, *sorted(folder.rglob("*"))]


@pytest.mark.slow
def test_every_file_and_folder_holding_personal_data_is_readable_by_its_owner_only(demo_run: DemoRun):
    """Given the demo's outputs, then the outbox, the letters, the review bundle, the rejected rows, the
    affected-people export (and any folder created for it) and the synthetic inventory are 0600 files in 0700
    folders, all the way up."""
    root = demo_run.root
    outbox, letters = tree(root / "outbox"), tree(root / "letters")
    # The announcement under review/ID/announcement/ is the public text, made to be published; it is checked
    # for personal data by the scan above and by the announcement's own tests.
    review = [p for p in tree(root / "review") if "announcement" not in p.relative_to(root).parts]
    rejected = tree(root / "rejected")
    exported = [demo_run.affected_csv.parent, demo_run.affected_csv]
    inventory = [root / "inventory", root / "inventory" / "people.csv", root / "inventory" / "holdings.csv"]
    assert len([p for p in outbox if p.suffix == ".eml"]) > 50 and len([p for p in letters if p.is_file()]) > 2
    assert (
        len([p for p in rejected if p.suffix == ".csv"]) == 1
        and (root / "review" / INCIDENT_ID / "index.html").exists()
    )
    assert loose(outbox + letters + review + rejected + exported + inventory) == []


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_the_sqlite_database_is_readable_by_its_owner_only(demo_run: DemoRun):
    files = [p for p in demo_run.root.glob("incident.db*")]
    assert demo_run.root / "incident.db" in files
    assert loose(files) == []


@pytest.mark.slow
def test_an_exported_audit_chain_is_readable_by_its_owner_only(demo_run: DemoRun):
    """The chain names actors and reviewers: it goes to a regulator, not to everyone on the machine."""
    assert loose([demo_run.exports / "chain.json"]) == []


def test_a_mail_server_that_repeats_the_address_in_its_refusal_does_not_put_it_in_the_proof_or_the_logs(
    assessed_incident,
):
    """Given a mail server whose refusals name the recipient ("550 <anna@example.de>: unknown"), as most do, when
    the notices are dispatched with debug logging, then the proof of delivery and the log show the refusal with
    the address masked."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    people = list(csv.DictReader(PEOPLE_CSV.splitlines()))
    emails = [a for row in people for a in (row["email"], row["guardian_email"]) if a]
    refusal = "550 5.1.1 <{}>: Recipient address rejected: User unknown in local recipient table"
    with (
        smtp_sink(reject={a: refusal.format(a.upper() if a.startswith("anna") else a) for a in emails}) as smtp,
        http_gateway() as sms,
        http_gateway() as push,
    ):
        ws.ok("notices", "render", iid)
        approve_notices(ws, iid, "Legal (Li Na)")
        configure_channels(
            ws.root,
            email=f"smtppool://127.0.0.1:{smtp.port}/{{email}}?from=security@example.com",
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}",
        )
        logger = logging.getLogger("incident")
        saved = logger.handlers[:], logger.level
        try:
            dispatched = CliRunner().invoke(app, ["--log-level", "DEBUG", "--workspace", str(ws.root), "dispatch", iid])
        finally:  # --log-level configures this process's logger: leave it as the next test expects
            logger.handlers[:], logger.level = saved[0], saved[1]
        assert dispatched.exit_code == 0, dispatched.output
        assert len(smtp.rcpt_log) >= 5 and all(answer.startswith("550") for _, answer in smtp.rcpt_log)
    proof = ws.ok("deliveries", iid) + ws.ok("deliveries", iid, "--format", "jsonl")
    assert "Recipient address rejected" in proof and "<a***@example.de>" in proof.lower(), proof
    everything = proof + dispatched.output
    assert "DEBUG incident.dispatch" in dispatched.output
    assert hits(everything.lower(), {a.lower() for a in emails}) == [], everything


# ---- tracebacks and configuration ------------------------------------------------------------------------------


def test_the_command_line_never_prints_local_variables_in_a_traceback():
    assert app.pretty_exceptions_show_locals is False


INJECTED_FAULT = "injected fault: the person table refuses writes"


def refuse_person_writes(ws: WorkspaceDir) -> None:
    """Install a trigger that fails every insert into `person`: an unexpected exception deep in the import,
    with the rows being imported in the local variables of the frames it passes through."""
    with connect(ws.root) as db:
        if db.postgres:
            db.execute(
                "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION '"
                + INJECTED_FAULT
                + "' USING ERRCODE = 'XX000'; END $$ LANGUAGE plpgsql"
            )
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON person FOR EACH ROW EXECUTE FUNCTION refuse()")
        else:
            db.execute(
                f"CREATE TRIGGER refuse BEFORE INSERT ON person BEGIN SELECT RAISE(ABORT, '{INJECTED_FAULT}'); END"
            )


@pytest.mark.slow
def test_an_unexpected_error_while_importing_people_prints_no_personal_data(tmp_path: Path):
    """Given a database that fails in a way nobody planned for, when the responder imports the people file,
    then the command fails with the error and where it happened, but neither the traceback's variables nor the
    failed statement's parameters show anyone's name, address or phone number."""
    ws = init_workspace(tmp_path / "ws")
    refuse_person_writes(ws)
    for name, content in (("systems.yaml", SYSTEMS_YAML), ("people.csv", PEOPLE_CSV), ("holdings.csv", HOLDINGS_CSV)):
        ws.write(name, content)
    env = command_env(os.environ.get("INCIDENT_DATABASE_URL"))
    done = subprocess.run(
        [
            str(INCIDENT),
            "--log-level",
            "DEBUG",
            "--workspace",
            str(ws.root),
            "inventory",
            "import",
            "--systems",
            str(ws.root / "inputs" / "systems.yaml"),
            "--people",
            str(ws.root / "inputs" / "people.csv"),
            "--holdings",
            str(ws.root / "inputs" / "holdings.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0 and INJECTED_FAULT in output, output
    assert hits(output, identifiers(list(csv.DictReader(PEOPLE_CSV.splitlines())))) == [], output
    assert "locals" not in output, output
    assert ws.sql("SELECT COUNT(*) FROM person") == [(0,)]


SECRETS = {
    "SMTP_PASSWORD_VALUE": "Sup3r-Secret-Pw",
    "QUERY_PASS": "PassInQuery42",
    "QUERY_TOKEN": "Tok3nInQuery99",
    "HEADER_SECRET": "HeaderSecret77",
    "API_KEY": "ApiKey0000111",
    "WEBHOOK_KEY": "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6",
    "BOT_TOKEN": "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw",
    "ONCALL_PASSWORD": "OnCallPw31",
    "DB_PASSWORD": "DbPassw0rd",
}
CHANNELS_WITH_SECRETS = f"""
[channels.email]
url = "smtppools://mailer:{SECRETS["SMTP_PASSWORD_VALUE"]}@smtp.example.com:465/{{email}}?from=security@example.com&pass={SECRETS["QUERY_PASS"]}"

[channels.sms]
url = "gateway://sms.example.com:8080/send?to={{phone}}&token={SECRETS["QUERY_TOKEN"]}&+Authorization=Bearer%20{SECRETS["HEADER_SECRET"]}"

[channels.push]
url = "ntfys://${{NTFY_TOKEN}}@push.example.com/{{push_token}}?apikey={SECRETS["API_KEY"]}"

[announcement]
targets = ["json://hooks.example.com/{SECRETS["WEBHOOK_KEY"]}", "tgram://123456789:{SECRETS["BOT_TOKEN"]}/-100123"]

[oncall]
url = "mailto://oncall:{SECRETS["ONCALL_PASSWORD"]}@mail.example.com"
"""


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_config_show_masks_every_secret_and_credential(
    workspace: WorkspaceDir, monkeypatch: pytest.MonkeyPatch, as_json: bool
):
    """Given channel URLs with a user:password, ?pass=, ?token=, an Authorization header, an API key, a webhook
    key, a bot token and ${ENV} references (whose values are set), when `incident config show` prints the
    configuration, then no secret appears, while the names of the environment variables may."""
    toml = workspace.root / "incident.toml"
    head = toml.read_text(encoding="utf-8").split("[channels.email]")[0]
    toml.write_text(head + CHANNELS_WITH_SECRETS, encoding="utf-8")
    monkeypatch.setenv("NTFY_TOKEN", "EnvTokenValue123")
    monkeypatch.setenv("INCIDENT_DATABASE_URL", f"postgresql+psycopg://incident:{SECRETS['DB_PASSWORD']}@db.internal/x")
    out = workspace.ok("config", "show", *(["--json"] if as_json else []))
    leaked = sorted(name for name, value in {**SECRETS, "NTFY_TOKEN": "EnvTokenValue123"}.items() if value in out)
    assert leaked == [], out
    assert "${NTFY_TOKEN}" in out and "smtp.example.com:465" in out and "to={phone}" in out, out
    assert out.count("****") >= 9, out
