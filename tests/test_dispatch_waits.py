"""Provider waits and misbehaving servers: a Retry-After that would overflow, one longer than the channel allows,
a gateway that trickles its answer, and an SMTP server that would take credentials in clear text.

Every server is real, on 127.0.0.1; every test is bounded in time."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from servers import SmtpSink, _AnyPortController, _SinkHandler, configure_channels, smtp_sink
from servers import gateway as http_gateway
from support import WorkspaceDir
from test_dispatch import Member, Servers, approve_story

from incident.dispatch.channels import RETRY_AFTER_CAP, parse_retry_after

NOW = datetime(2026, 3, 12, 10, 0, tzinfo=UTC)
SMS_ONLY = tuple(Member(f"p{i}", f"Person {i}", "en", phone=f"+44791111{i:04d}") for i in range(1, 7))
HUGE, INF, DAY = SMS_ONLY[0], SMS_ONLY[1], SMS_ONLY[2]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("1e12", None),  # not delay-seconds (1*DIGIT): the channel's backoff applies
        ("inf", None),
        ("-5", None),
        ("3.5", None),
        ("NaN", None),
        ("九", None),
        ("9" * 5000, RETRY_AFTER_CAP),  # past int()'s digit limit, still no crash
        ("000000000000030", 30.0),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
        (format_datetime(NOW - timedelta(days=1), usegmt=True), 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", RETRY_AFTER_CAP),
        ("Mon, 99 Foo 2026 99:99:99 GMT", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_rfc_9110_delay_seconds_or_http_date_and_capped(header: str | None, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


@contextmanager
def sms_servers(script: dict) -> Iterator[Servers]:
    with smtp_sink() as smtp, http_gateway(script) as sms, http_gateway() as push:
        yield Servers(smtp, sms, push)


def test_a_retry_after_that_would_overflow_neither_crashes_nor_resends_what_was_delivered(workspace: WorkspaceDir):
    """Given a gateway answering 429 with `Retry-After: 1e12` to one person and `inf` to another, when the
    responder runs dispatch twice, then it exits 0, both fall back on the channel's own backoff, and everyone
    else got exactly one SMS: nothing delivered went back to in flight."""
    script = {HUGE.phone: [(429, {"Retry-After": "1e12"})], INF.phone: [(429, {"Retry-After": "inf"})]}
    with sms_servers(script) as servers:
        d = approve_story(workspace, SMS_ONLY, servers)
        started = time.monotonic()
        d.ws.ok("dispatch", d.id)
        d.ws.ok("dispatch", d.id)
        assert time.monotonic() - started < 60
        per_person = {m.phone: len(servers.sms.received_for(m.phone)) for m in SMS_ONLY}
    assert per_person[HUGE.phone] == 3 and per_person[INF.phone] == 3, "retried on the backoff, then fell back"
    assert all(per_person[m.phone] == 1 for m in SMS_ONLY[2:]), per_person
    states = d.states()
    assert states[HUGE.person_id] == states[INF.person_id] == "unreachable"
    assert all(states[m.person_id] == "sent" for m in SMS_ONLY[2:])
    assert d.ws.sql("SELECT COUNT(*) FROM attempt WHERE outcome = 'in-flight'") == [(0,)]


def test_a_retry_after_past_the_channels_backoff_max_falls_back_at_once(workspace: WorkspaceDir):
    """Given a gateway that tells one person's SMS to come back in a day (delay-seconds) and another's at an
    HTTP-date a day away, when dispatch runs, then it does not sleep: both fall back to their next channel."""
    tomorrow = format_datetime(datetime.now(UTC) + timedelta(days=1), usegmt=True)
    cast = (
        Member("wait", "Wai Ting", "en", phone="+447911100101", push="tok-wait"),
        Member("date", "Dat E", "en", phone="+447911100102", push="tok-date"),
        Member("fine", "Fi Ne", "en", phone="+447911100103", push="tok-fine"),
    )
    script = {cast[0].phone: [(429, {"Retry-After": "86400"})], cast[1].phone: [(503, {"Retry-After": tomorrow})]}
    with sms_servers(script) as servers:
        d = approve_story(workspace, cast, servers)
        started = time.monotonic()
        out = d.ws.ok("dispatch", d.id)
        assert time.monotonic() - started < 30, "dispatch waited for the provider"
        assert len(servers.sms.received_for(cast[0].phone)) == 1
        assert sorted(r.to for r in servers.push.requests) == ["tok-date", "tok-wait"]
    assert "sent 3" in out, out
    assert d.states() == {"wait": "sent", "date": "sent", "fine": "sent"}


def test_channel_sms_finds_the_sms_behind_hundreds_of_emails(workspace: WorkspaceDir):
    """Given 250 people due on email whose rows come first and 50 due on SMS, when the responder runs
    `dispatch --channel sms`, then the 50 SMS go out (as `--dry-run --channel sms` said), and no email."""
    by_mail = tuple(Member(f"a{i:03d}", f"Mail {i}", "en", email=f"a{i:03d}@example.com") for i in range(250))
    by_sms = tuple(Member(f"z{i:03d}", f"Text {i}", "en", phone=f"+44791112{i:04d}") for i in range(50))
    with sms_servers({}) as servers:
        d = approve_story(workspace, by_mail + by_sms, servers)
        assert "would send 50 messages" in d.ws.ok("dispatch", d.id, "--dry-run", "--channel", "sms")
        d.ws.ok("dispatch", d.id, "--channel", "sms", "--workers", "2")
        assert sorted(r.to for r in servers.sms.requests) == sorted(m.phone for m in by_sms)
        assert servers.smtp.mails == []
    states = d.states()
    assert all(states[m.person_id] == "sent" for m in by_sms)
    assert all(states[m.person_id] == "pending" for m in by_mail)


@contextmanager
def smtp_with_auth() -> Iterator[tuple[SmtpSink, list[str]]]:
    """An aiosmtpd sink that offers AUTH without TLS (as a misconfigured relay would) and records every login."""
    from aiosmtpd.smtp import AuthResult

    logins: list[str] = []

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        logins.append(auth_data.login.decode())
        return AuthResult(success=True)

    sink = SmtpSink()
    controller = _AnyPortController(
        _SinkHandler(sink),
        hostname="127.0.0.1",
        port=0,
        ready_timeout=10,
        auth_require_tls=False,
        authenticator=authenticator,
    )
    controller.start()
    sink.controller, sink.port = controller, controller.port
    try:
        yield sink, logins
    finally:
        sink.stop()


def test_smtppool_refuses_to_send_a_password_without_tls_unless_told_insecure(workspace: WorkspaceDir, caplog):
    """Given an smtppool:// URL with a user and password but neither starttls=yes nor smtppools://, when the
    responder runs dispatch, then it stops with one line saying so and the password never crossed the wire;
    with insecure=yes it sends, and warns once."""
    cast = (Member("ann", "Ann", "en", email="ann@example.com"), Member("ben", "Ben", "en", email="ben@example.com"))
    with smtp_with_auth() as (smtp, logins), http_gateway() as sms, http_gateway() as push:
        d = approve_story(workspace, cast, Servers(smtp, sms, push))
        url = f"smtppool://relay:s3cret@127.0.0.1:{smtp.port}/{{email}}?from=security@example.com"
        configure_channels(
            d.ws.root,
            email=url,
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}",
        )
        d.ws.refuse("dispatch", d.id, error="would send the SMTP password without TLS")
        assert logins == [] and smtp.mails == []
        assert set(d.states().values()) == {"pending"}, "nothing was spent on the refusal"
        configure_channels(
            d.ws.root,
            email=url + "&insecure=yes",
            sms=f"gateway://127.0.0.1:{sms.port}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{push.port}/push?to={{push_token}}",
        )
        with caplog.at_level(logging.WARNING, logger="incident.dispatch"):
            d.ws.ok("dispatch", d.id, "--workers", "1")
        assert logins == ["relay"] and len(smtp.mails) == 2
    warnings = [r for r in caplog.records if "without TLS" in r.getMessage()]
    assert len(warnings) == 1


@contextmanager
def trickling_server(first: bytes, line: bytes, *, every: float = 0.5) -> Iterator[int]:
    """A server on 127.0.0.1 that reads what it is sent, answers `first`, then one `line` every `every` seconds
    for ever: each read succeeds well within a socket timeout, the answer never ends."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def serve(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(0.1)
            try:
                if first.startswith(b"HTTP"):
                    conn.settimeout(5)
                    conn.recv(65536)  # the request
                conn.sendall(first)
                while not stop.wait(every):
                    conn.sendall(line)
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_a_server_that_trickles_its_answer_hits_the_calls_deadline_and_the_notice_falls_back(
    workspace: WorkspaceDir, channel: str
):
    """Given an SMS gateway that sends one header line every half second (or a mail server that greets one
    line at a time) and a 2-second deadline in the channel URL, when the responder runs dispatch, then each
    call is cut at its deadline and the notice falls back to the next channel: dispatch ends instead of hanging."""
    who = Member("tia", "Tia", "en", email="tia@example.com", phone="+447911100201", push="tok-tia")
    first, line = (
        (b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n") if channel == "sms" else (b"220-slow.example\r\n", b"220-wait\r\n")
    )
    with trickling_server(first, line) as port, sms_servers({}) as servers:
        d = approve_story(workspace, (who,), servers)
        slow = {
            "sms": f"gateway://127.0.0.1:{port}/sms?to={{phone}}&deadline=2",
            "email": f"smtppool://127.0.0.1:{port}/{{email}}?from=security@example.com&deadline=2",
        }
        configure_channels(
            d.ws.root,
            email=slow["email"] if channel == "email" else "smtppool://127.0.0.1:9/{email}?from=a@example.com",
            sms=slow["sms"] if channel == "sms" else f"gateway://127.0.0.1:{servers.sms.port}/sms?to={{phone}}",
            push=f"gateway://127.0.0.1:{servers.push.port}/push?to={{push_token}}",
            retries=1,
        )
        started = time.monotonic()
        d.ws.ok("dispatch", d.id)
        took = time.monotonic() - started
        after = servers.push.requests if channel == "sms" else servers.sms.requests
        assert [r.to for r in after] == ["tok-tia" if channel == "sms" else who.phone]
    assert took < 20, f"dispatch took {took:.1f}s"
    slow_attempt = next(a for a in d.attempts() if a["channel"] == channel)
    assert "deadline of 2s passed" in slow_attempt["reason"], slow_attempt
    assert d.states() == {"tia": "sent"}


def test_no_more_than_eight_per_sending_thread_are_ever_in_flight(workspace: WorkspaceDir, monkeypatch):
    """Given 300 people on a fast gateway, when the responder runs `dispatch --workers 2`, then at every
    settle (the moment a kill -9 would turn what is in flight into unknowns, each one a possible duplicate)
    at most 8 × 2 attempts are in flight: the README's bound holds while the claim batch grows with the rate."""
    from sqlalchemy import text

    from incident.dispatch import sending

    seen: list[int] = []
    settle = sending.settle

    def counting_settle(session, incident_id, results, **kw):
        sql = text("SELECT COUNT(*) FROM attempt WHERE incident_id = :i AND outcome = 'in-flight'")
        seen.append(int(session.connection().execute(sql, {"i": incident_id}).scalar_one()))
        return settle(session, incident_id, results, **kw)

    monkeypatch.setattr(sending, "settle", counting_settle)
    cast = tuple(Member(f"q{i:03d}", f"Quick {i}", "en", phone=f"+44791120{i:04d}") for i in range(300))
    with sms_servers({}) as servers:
        d = approve_story(workspace, cast, servers)
        d.ws.ok("dispatch", d.id, "--workers", "2")
        assert len(servers.sms.requests) == 300
    assert seen and max(seen) <= 8 * 2, f"in flight at settles: max {max(seen)}"


def test_a_stale_approval_lets_the_planned_deliveries_finish_but_plans_nothing_new(workspace: WorkspaceDir):
    """Given an incident already notifying (email went out, an SMS and a push are still pending), when a responder
    logs an action (which makes the approval stale) and runs dispatch and then a worker, then neither refuses: the
    pending notices go out with the approved content, the incident is notified, and dispatch says the approval is
    stale and that nothing new is planned."""
    cast = (
        Member("mai", "Mai", "en", email="mai@example.com"),
        Member("sam", "Sam", "en", phone="+447911100301"),
        Member("sue", "Sue", "en", push="tok-sue"),
    )
    with sms_servers({}) as servers:
        d = approve_story(workspace, cast, servers)
        d.ws.ok("dispatch", d.id, "--channel", "email")
        assert d.states() == {"mai": "sent", "sam": "pending", "sue": "pending"}
        logged = d.ws.run(
            "log", d.id, "重置了全部受影响账号的密码", "--en", "Reset the passwords of every affected account"
        )
        assert logged.exit_code == 0 and "makes the approved notices stale" in logged.stderr, logged.output
        again = d.ws.run("log", d.id, "已告知监管部门", "--en", "Told the regulator")
        assert again.exit_code == 0 and "stale" not in again.stderr, "said once, when it turned stale"
        result = d.ws.run("dispatch", d.id, "--channel", "sms", "--workers", "1")
        assert result.exit_code == 0, result.output
        assert "the approval is stale" in result.stderr and "nothing new is planned" in result.stderr
        assert [r.to for r in servers.sms.requests] == ["+447911100301"] and servers.push.requests == []
        d.ws.ok("worker", "--incident", d.id)
        assert [r.to for r in servers.push.requests] == ["tok-sue"]
        sent = {r.to: r.body["message"] for r in servers.sms.requests + servers.push.requests}
    assert d.states() == {"mai": "sent", "sam": "sent", "sue": "sent"}
    assert all(sent.values())
    assert d.ws.sql("SELECT status FROM incident WHERE id = ?", (d.id,)) == [("notified",)]
