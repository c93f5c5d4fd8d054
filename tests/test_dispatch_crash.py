"""Issue 4, end to end through the installed `incident` command: the demo opens and assesses an incident on its
synthetic inventory; the responder renders, approves and dispatches; the dispatch is killed with -9 mid-run and
resumed, and two responders dispatch the same incident at once. No recipient is lost; duplicates never exceed
the attempts that were in flight at the moment of the crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from servers import SmtpSink, configure_channels, smtp_sink

pytestmark = pytest.mark.slow

INCIDENT = shutil.which("incident")
PEOPLE = 1000  # the demo at this size has ~230 email recipients: enough to kill a run in the middle
KILL_AFTER = 100  # messages the sink has received when the dispatch is killed
SLOW = 0.01  # seconds the sink takes per message, so a run lasts long enough to be killed


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}


def incident(root: Path | None, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the installed command; it must succeed."""
    where = ["--workspace", str(root)] if root is not None else []
    result = subprocess.run(
        [str(INCIDENT), *where, "--actor", "crash-test", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, f"incident {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


def start_dispatch(root: Path, incident_id: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as err:
        return subprocess.Popen(
            [str(INCIDENT), "--workspace", str(root), "--actor", "crash-test", "dispatch", incident_id],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=clean_env(),
        )


@dataclass
class Demo:
    """The demo workspace with its notices approved and email pointed at the sink."""

    root: Path
    id: str
    sink: SmtpSink

    def sql(self, query: str) -> list[tuple]:
        """Read this incident's rows (the query names the incident as :i)."""
        with sqlite3.connect(self.root / "incident.db") as conn:
            return conn.execute(query, {"i": self.id}).fetchall()

    def expected_email_ids(self) -> set[str]:
        """The X-Notice-Id of every approved email notice: each must arrive at the sink."""
        return {
            f"{self.id}.{ref}.email"
            for (ref,) in self.sql("SELECT ref FROM notice WHERE incident_id = :i AND channel = 'email'")
        }

    def in_flight(self) -> int:
        return self.sql("SELECT COUNT(*) FROM attempt WHERE incident_id = :i AND outcome = 'in-flight'")[0][0]

    def states(self) -> dict[str, int]:
        return dict(self.sql("SELECT state, COUNT(*) FROM delivery WHERE incident_id = :i GROUP BY state"))

    def kill_mid_run(self, tmp_path: Path) -> tuple[int, int]:
        """Start a dispatch, kill -9 it once the sink has KILL_AFTER messages; return (received, in flight)."""
        proc = start_dispatch(self.root, self.id, log=tmp_path / "killed.log")
        try:
            deadline = time.monotonic() + 60
            while not self.sink.wait_for(KILL_AFTER, timeout=0.05):
                assert proc.poll() is None, (tmp_path / "killed.log").read_text()
                assert time.monotonic() < deadline, "the sink never received enough messages"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(30)  # reap it: a zombie's pid still looks alive to the next run
        assert proc.returncode == -signal.SIGKILL
        received, in_flight = len(self.sink.mails), self.in_flight()
        assert received < len(self.expected_email_ids()), "killed after the end: nothing to resume"
        assert in_flight > 0, "the kill must land while attempts are claimed and unsettled"
        return received, in_flight


@pytest.fixture(scope="module")
def demo_inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`incident demo` on 1,000 synthetic people, stopped once its incident is assessed (built once, copied per
    test)."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("demo") / "ws"
    incident(None, "demo", str(root), "--people", str(PEOPLE), "--until", "assessed")
    return root


@pytest.fixture
def slow_sink() -> Iterator[SmtpSink]:
    """An SMTP server that accepts everything but takes 10 ms per message."""
    with smtp_sink(delay=SLOW) as sink:
        yield sink


@pytest.fixture
def approved_demo(demo_inventory: Path, tmp_path: Path, slow_sink: SmtpSink) -> Demo:
    """The demo's incident with its notices rendered and approved; email goes to the slow sink, SMS and push to
    files (the demo's bounce.example addresses are ordinary recipients to this sink)."""
    root = tmp_path / "ws"
    shutil.copytree(demo_inventory, root)
    (incident_id,) = [line.split()[0] for line in incident(root, "list").stdout.splitlines() if line.strip()]
    assert "assessed" in incident(root, "show", incident_id).stdout
    rendered = incident(root, "notices", "render", incident_id).stdout
    manifest = rendered.split("manifest sha256: ")[1].split()[0]
    incident(root, "notices", "approve", incident_id, "--manifest", manifest, "--reviewer", "Legal (Li Na)")
    configure_channels(
        root,
        email=f"smtppool://127.0.0.1:{slow_sink.port}/{{email}}?from=security@example.com",
        sms="outbox://sms/{phone}",
        push="outbox://push/{push_token}",
    )
    return Demo(root, incident_id, slow_sink)


def duplicates(sink: SmtpSink) -> int:
    return sum(n - 1 for n in sink.notice_ids().values())


def test_a_killed_dispatch_resumes_and_reaches_everyone_with_at_most_the_in_flight_duplicates(
    approved_demo: Demo, tmp_path: Path
):
    demo = approved_demo
    _, in_flight = demo.kill_mid_run(tmp_path)
    resumed = incident(demo.root, "dispatch", demo.id)
    assert f"{in_flight} attempts were in flight when a previous run stopped: re-sent once" in resumed.stdout
    assert set(demo.sink.notice_ids()) == demo.expected_email_ids(), "an email recipient was lost"
    assert duplicates(demo.sink) <= in_flight
    assert demo.sql("SELECT COUNT(*) FROM attempt WHERE incident_id = :i AND outcome = 'unknown'") == [(in_flight,)]
    assert set(demo.states()) <= {"sent", "letter", "unreachable"}, demo.states()
    if "letter" in set(demo.states()):  # a queued letter tells nobody: written, then posted by the mail house
        assert "status:     notifying" in incident(demo.root, "show", demo.id).stdout
        incident(demo.root, "letters", demo.id)
        incident(demo.root, "letters", demo.id, "--posted-at", datetime.now(UTC).isoformat())
    assert "status:     notified" in incident(demo.root, "show", demo.id).stdout


def test_hold_unknown_keeps_the_interrupted_attempts_until_a_human_releases_them(approved_demo: Demo, tmp_path: Path):
    demo = approved_demo
    _, in_flight = demo.kill_mid_run(tmp_path)
    held_ids = {
        f"{demo.id}.{ref}.email"
        for (ref,) in demo.sql(
            "SELECT n.ref FROM attempt a JOIN notice n ON n.id = a.notice_id WHERE a.incident_id = :i "
            "AND a.outcome = 'in-flight' AND a.channel = 'email'"
        )
    }
    at_kill = demo.sink.notice_ids()
    resumed = incident(demo.root, "dispatch", demo.id, "--hold-unknown")
    assert f"{in_flight} attempts were in flight when a previous run stopped: held for a decision" in resumed.stdout
    assert demo.states()["held"] == in_flight and "pending" not in demo.states()
    after_hold = demo.sink.notice_ids()
    assert {i: after_hold[i] for i in held_ids} == {i: at_kill[i] for i in held_ids}, "a held notice was sent"
    assert set(after_hold) == demo.expected_email_ids() - (held_ids - set(at_kill))
    released = incident(demo.root, "dispatch", demo.id, "--release-held")
    assert f"released {in_flight} held deliveries" in released.stdout
    assert set(demo.sink.notice_ids()) == demo.expected_email_ids()
    assert duplicates(demo.sink) <= in_flight
    assert set(demo.states()) <= {"sent", "letter", "unreachable"}, demo.states()


def test_two_responders_dispatching_at_once_send_each_notice_once(approved_demo: Demo, tmp_path: Path):
    demo = approved_demo
    first = start_dispatch(demo.root, demo.id, log=tmp_path / "first.log")
    second = start_dispatch(demo.root, demo.id, log=tmp_path / "second.log")
    for proc, log in ((first, "first.log"), (second, "second.log")):
        assert proc.wait(120) == 0, (tmp_path / log).read_text()
    received = demo.sink.notice_ids()
    assert set(received) == demo.expected_email_ids()
    assert [i for i, n in received.items() if n > 1] == [], "a notice was sent twice"
    assert demo.sql("SELECT COUNT(*) FROM attempt WHERE incident_id = :i AND outcome IN ('unknown', 'in-flight')") == [
        (0,)
    ]
    workers = {
        w.split(":")[1] for (w,) in demo.sql("SELECT worker FROM attempt WHERE incident_id = :i AND channel = 'email'")
    }
    assert workers == {str(first.pid), str(second.pid)}, "both processes should have shared the work"
