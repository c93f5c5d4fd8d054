"""Workers on several hosts: `incident worker` processes share one PostgreSQL dispatch, survive a kill -9 of one
of them, and keep a channel's rate limit together. (The hosts are processes here; the database is real.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from rawdb import connect
from servers import configure_channels, gateway, smtp_sink

from incident.clock import parse_when

INCIDENT = shutil.which("incident")
PEOPLE = 1200
RATE = 50.0


def worker_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    env["INCIDENT_DATABASE_URL"] = url
    return env


def run(root: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(INCIDENT), "--workspace", str(root), "--actor", "worker-test", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert result.returncode == 0, f"incident {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def start_workers(root: Path, env: dict[str, str], n: int, threads: int, logs: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(n):
        with (logs / f"worker{i}.log").open("wb") as err:
            procs.append(
                subprocess.Popen(
                    [
                        str(INCIDENT),
                        "--workspace",
                        str(root),
                        "--actor",
                        f"worker-{i}",
                        "worker",
                        "--workers",
                        str(threads),
                    ],
                    stdout=err,
                    stderr=err,
                    env=env,
                )
            )
    return procs


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on the session's PostgreSQL (started in either pass: workers need a shared server)."""
    server = request.getfixturevalue("postgres_server")
    return str(server.create_database(f"w_{uuid.uuid4().hex[:16]}"))


@pytest.fixture
def enqueued_demo(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Path, str, dict[str, str]]]:
    """The demo's incident on PostgreSQL, rendered, approved and enqueued for workers (nothing sent yet)."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed (pip install -e '.[test]')")
    root, env = tmp_path / "ws", worker_env(postgres_url)
    run(root.parent, env, "demo", str(root), "--people", str(PEOPLE), "--until", "assessed")
    (incident_id,) = [line.split()[0] for line in run(root, env, "list").splitlines() if line.strip()]
    yield root, incident_id, env


def approve_and_enqueue(root: Path, incident_id: str, env: dict[str, str]) -> None:
    manifest = run(root, env, "notices", "render", incident_id).split("manifest sha256: ")[1].split()[0]
    run(root, env, "notices", "approve", incident_id, "--manifest", manifest, "--reviewer", "Legal")
    run(root, env, "dispatch", incident_id, "--enqueue-only")


def test_four_workers_share_a_dispatch_and_a_killed_one_loses_nobody(enqueued_demo, tmp_path: Path) -> None:
    """Given an enqueued incident on PostgreSQL and an SMTP server that takes 30 ms a message, when four workers
    send it and one is killed with SIGKILL mid-run, then every email recipient is reached, and duplicates are no
    more than the attempts the killed worker had in flight."""
    root, incident_id, env = enqueued_demo
    with smtp_sink(delay=0.03) as sink:
        configure_channels(
            root,
            email=f"smtppool://127.0.0.1:{sink.port}/{{email}}?from=security@example.com",
            sms="outbox://sms/{phone}",
            push="outbox://push/{push_token}",
            concurrency=2,
        )
        approve_and_enqueue(root, incident_id, env)
        with connect_env(root, env) as db:
            expected = {
                f"{incident_id}.{ref}.email"
                for (ref,) in db.execute("SELECT ref FROM notice WHERE channel = 'email'").fetchall()
            }
        assert len(expected) > 150
        procs = start_workers(root, env, 4, threads=2, logs=tmp_path)
        victim = procs[1]
        try:
            deadline = time.monotonic() + 60
            while not sink.wait_for(len(expected) // 3, timeout=0.05):
                assert time.monotonic() < deadline, "the workers never got going"
            victim.send_signal(signal.SIGKILL)
            victim.wait(30)  # reap it: a zombie's pid still looks alive
            with connect_env(root, env) as db:
                in_flight = db.execute(
                    "SELECT COUNT(*) FROM attempt WHERE outcome = 'in-flight' AND worker LIKE ?", (f"%:{victim.pid}:%",)
                ).fetchone()[0]
            for proc in procs:
                if proc is not victim:
                    assert proc.wait(120) == 0, (tmp_path / f"worker{procs.index(proc)}.log").read_text()
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
        received = sink.notice_ids()
        duplicates = sum(n - 1 for n in received.values())
        assert set(received) == expected, "every email recipient must be reached"
        assert duplicates <= in_flight, (duplicates, in_flight)
        with connect_env(root, env) as db:
            states = dict(db.execute("SELECT state, COUNT(*) FROM delivery GROUP BY state").fetchall())
            workers = {
                w.split(":")[1]
                for (w,) in db.execute("SELECT DISTINCT worker FROM attempt WHERE channel = 'email'").fetchall()
            }
        assert "pending" not in states and "held" not in states, states
        assert len(workers) >= 3, "the work was shared by several workers"
    assert "ok" in run(root, env, "audit", "verify", incident_id)


def test_four_workers_keep_a_channel_rate_limit_together(enqueued_demo, tmp_path: Path) -> None:
    """Given an SMS channel limited to 50 messages a second and four workers with four threads each, when they
    send, then no one-second window holds more than 50 sends (plus the one message of burst the algorithm
    allows), and the gateway sees 50/s on average."""
    root, incident_id, env = enqueued_demo
    playbook = root / "playbooks" / "database-exfiltration.yaml"
    playbook.parent.mkdir(exist_ok=True)
    source = Path(__file__).resolve().parent.parent / "playbooks" / "database-exfiltration.yaml"
    playbook.write_text(
        source.read_text(encoding="utf-8").replace("channels: [email, sms, push]", "channels: [sms]"), encoding="utf-8"
    )
    with gateway() as gw:
        configure_channels(
            root,
            email="outbox://email/{email}",
            sms=f"gateway://127.0.0.1:{gw.port}/sms?to={{phone}}",
            push="outbox://push/{push_token}",
            concurrency=4,
        )
        config = root / "incident.toml"
        config.write_text(
            config.read_text(encoding="utf-8")
            .replace("[channels.sms]\nurl", f"[channels.sms]\nrate = {RATE}\nurl")
            .replace("[channels.sms]\nrate", "[channels.sms]\nrate", 1),
            encoding="utf-8",
        )
        config.write_text(_drop_second_rate(config.read_text(encoding="utf-8")), encoding="utf-8")
        run(root, env, "assess", incident_id, "--reassess")
        approve_and_enqueue(root, incident_id, env)
        procs = start_workers(root, env, 4, threads=4, logs=tmp_path)
        for i, proc in enumerate(procs):
            assert proc.wait(180) == 0, (tmp_path / f"worker{i}.log").read_text()
        arrived = sorted(r.at for r in gw.requests)
        with connect_env(root, env) as db:
            sent = sorted(
                parse_when(str(s)).timestamp()
                for (s,) in db.execute(
                    "SELECT started FROM attempt WHERE channel = 'sms' AND outcome = 'sent'"
                ).fetchall()
            )
            by_worker = {w.split(":")[1] for (w,) in db.execute("SELECT worker FROM attempt").fetchall()}
    assert len(sent) == len(arrived) >= 150, "every SMS sent once, enough to measure a rate"
    assert len(by_worker) == 4, "all four workers sent"
    # When we send (the start of each call, in the proof of delivery): GCRA allows rate × window + 1.
    worst = max(sum(1 for t in sent[i:] if t < start + 1.0) for i, start in enumerate(sent))
    assert worst <= RATE + 1, f"{worst} messages sent in one second with a limit of {RATE}/s"
    # What the gateway saw over the run, its own scheduling jitter included.
    elapsed = arrived[-1] - arrived[0]
    assert len(arrived) / elapsed <= RATE * 1.05
    assert len(arrived) / elapsed >= RATE * 0.6, "the shared budget should not starve the workers"


def _drop_second_rate(text: str) -> str:
    """configure_channels writes `rate = 0` per channel; keep only the rate we set for SMS."""
    head, _, rest = text.partition("[channels.sms]\n")
    block, sep, tail = rest.partition("\n[")
    lines = [line for line in block.splitlines() if line != "rate = 0"]
    return head + "[channels.sms]\n" + "\n".join(lines) + ("\n" + sep.lstrip("\n") + tail if sep else "\n")


def connect_env(root: Path, env: dict[str, str]):  # a context manager
    """Direct database access with the workers' database URL."""
    os.environ["INCIDENT_DATABASE_URL"] = env["INCIDENT_DATABASE_URL"]
    return connect(root)


@pytest.mark.sqlite_only
def test_a_single_worker_serves_a_sqlite_workspace(tmp_path: Path) -> None:
    """Given the embedded SQLite workspace, when the responder enqueues and one worker runs, then everything is
    sent and the incident is notified (the same command, one host)."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    root = tmp_path / "ws"
    run(tmp_path, env, "demo", str(root), "--people", "300", "--until", "assessed")
    (incident_id,) = [line.split()[0] for line in run(root, env, "list").splitlines() if line.strip()]
    approve_and_enqueue(root, incident_id, env)
    out = run(root, env, "worker", "--incident", incident_id)
    assert "sent" in out
    assert "notified" in run(root, env, "show", incident_id)
