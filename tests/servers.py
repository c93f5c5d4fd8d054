"""Real servers on 127.0.0.1 (port 0) that record what they receive: an SMTP sink and an HTTP JSON gateway.

Both take a script of answers per recipient, so a test says "this address gets a 550" or "this number gets
500, then 200" and then asserts what arrived, message by message.
"""

from __future__ import annotations

import asyncio
import email
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

# ---- SMTP ---------------------------------------------------------------------------------------


@dataclass
class Mail:
    """One message the SMTP sink accepted: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def notice_id(self) -> str:
        return str(self.message["X-Notice-Id"])

    def text(self) -> str:
        """The text/plain part (or the whole body when the message is not multipart)."""
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


@dataclass
class SmtpSink:
    """An aiosmtpd server: accepts everyone except `reject` (permanent) and `defer` (temporary, N times)."""

    reject: dict[str, str] = field(default_factory=dict)  # address -> "550 ..." answered to RCPT
    defer: dict[str, int] = field(default_factory=dict)  # address -> how many times to answer 451 first
    delay: float = 0.0  # seconds the server takes per accepted message (after recording it)
    drop_after_data: dict[str, int] = field(default_factory=dict)  # address -> times to hang up after the data
    mails: list[Mail] = field(default_factory=list)
    rcpt_log: list[tuple[str, str]] = field(default_factory=list)  # (address, answer) for every RCPT TO
    host: str = "127.0.0.1"
    port: int = 0
    controller: Any = None
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` messages have arrived (False when the timeout passes first)."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.mails) >= count, timeout)

    def received_for(self, address: str) -> list[Mail]:
        return [m for m in self.mails if address in m.rcpt_tos]

    def notice_ids(self) -> Counter[str]:
        return Counter(m.notice_id for m in list(self.mails))

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


class _SinkHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any) -> str:
        with self.lock:
            if address in self.sink.reject:
                answer = self.sink.reject[address]
            elif self.sink.defer.get(address, 0) > 0:
                self.sink.defer[address] -= 1
                answer = "451 4.3.0 Mailbox busy, try again later"
            else:
                envelope.rcpt_tos.append(address)
                answer = "250 OK"
            self.sink.rcpt_log.append((address, answer))
        return answer

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=policy.default)
        # Recorded as soon as the data is in: from here on the recipient's system has the message.
        with self.sink.arrived:
            self.sink.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
            self.sink.arrived.notify_all()
        with self.lock:
            drop = [a for a in envelope.rcpt_tos if self.sink.drop_after_data.get(a, 0) > 0]
            for address in drop:
                self.sink.drop_after_data[address] -= 1
        if drop:
            # The message is in, but the client never hears so: it cannot know whether it was delivered.
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        return "250 2.0.0 OK: queued"


class _AnyPortController(Controller):
    """aiosmtpd's Controller on port 0: learn the port the kernel chose before the readiness probe."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def start_smtp_sink(
    reject: dict[str, str] | None = None,
    defer: dict[str, int] | None = None,
    delay: float = 0.0,
    drop_after_data: dict[str, int] | None = None,
) -> SmtpSink:
    """Start an SMTP sink on 127.0.0.1 with a free port; it answers before this returns."""
    sink = SmtpSink(
        reject=dict(reject or {}), defer=dict(defer or {}), delay=delay, drop_after_data=dict(drop_after_data or {})
    )
    controller = _AnyPortController(_SinkHandler(sink), hostname="127.0.0.1", port=0, ready_timeout=10)
    controller.start()
    sink.controller, sink.port = controller, controller.port
    with socket.create_connection((sink.host, sink.port), timeout=5) as probe:
        assert probe.recv(512).startswith(b"220"), "the SMTP sink does not greet"
    return sink


@contextmanager
def smtp_sink(**kw: Any) -> Iterator[SmtpSink]:
    sink = start_smtp_sink(**kw)
    try:
        yield sink
    finally:
        sink.stop()


# ---- HTTP gateway -------------------------------------------------------------------------------


@dataclass
class Request:
    """One request the gateway received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int  # what the gateway answered
    at: float = field(default_factory=time.time)  # when it arrived (wall clock, shared across processes)

    @property
    def to(self) -> str:
        return str(self.body.get("to", ""))


@dataclass
class Gateway:
    """A JSON-over-HTTP gateway: answers per recipient (`to` in the JSON body) follow a script, else 200."""

    script: dict[str, list[tuple[int, dict[str, str]]]] = field(default_factory=dict)
    hang: dict[str, int] = field(default_factory=dict)  # recipient -> times to never answer (until stopped)
    bodies: dict[str, str] = field(default_factory=dict)  # recipient -> the body of its error answers
    requests: list[Request] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    server: Any = None
    thread: Any = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def hangs_for(self, to: str) -> bool:
        """Whether this request is one the gateway never answers (counting it down)."""
        with self.lock:
            if self.hang.get(to, 0) > 0:
                self.hang[to] -= 1
                return True
            return False

    def answer_for(self, to: str) -> tuple[int, dict[str, str]]:
        with self.lock:
            queue = self.script.get(to)
            if queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
            return 200, {}

    def received_for(self, to: str) -> list[Request]:
        return [r for r in self.requests if r.to == to]

    def stop(self) -> None:
        self.stopping.set()  # lets hanging handlers go
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(5)
            self.server = None


REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error"}


def _handler_for(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real gateways do

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw.decode("utf-8") or "{}")
            except ValueError:
                body = {"raw": raw.decode("utf-8", "replace")}
            to = str(body.get("to", ""))
            if gateway.hangs_for(to):
                gateway.requests.append(Request("POST", self.path, dict(self.headers.items()), body, 0))
                gateway.stopping.wait(60)  # never answers while the test runs
                self.close_connection = True
                return
            status, extra = gateway.answer_for(to)
            gateway.requests.append(Request("POST", self.path, dict(self.headers.items()), body, status))
            payload = json.dumps(
                {"id": f"msg-{len(gateway.requests)}"} if status < 300 else {"error": REASONS.get(status, "error")}
            ).encode()
            if status >= 300 and to in gateway.bodies:  # a gateway that echoes the request in its error
                payload = gateway.bodies[to].encode()
            self.send_response(status, REASONS.get(status))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_PUT = do_POST

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean (and recipients out of logs)

    return Handler


def start_gateway(
    script: dict[str, list[tuple[int, dict[str, str]]]] | None = None,
    hang: dict[str, int] | None = None,
    bodies: dict[str, str] | None = None,
) -> Gateway:
    """Start an HTTP gateway on 127.0.0.1 with a free port.

    `script` maps a recipient to the answers it gets in turn, e.g. {"+86139...": [(500, {}), (200, {})]}.
    The last answer in each list repeats (a permanent 400 stays 400). `hang` maps a recipient to how many of
    its requests the gateway takes in and never answers (status 0 in `requests`). `bodies` maps a recipient to
    the body its error answers carry instead of {"error": ...}.
    """
    gateway = Gateway(
        script={k: list(v) for k, v in (script or {}).items()}, hang=dict(hang or {}), bodies=dict(bodies or {})
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(gateway))
    server.daemon_threads = True
    gateway.server, gateway.port = server, server.server_address[1]
    gateway.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    gateway.thread.start()
    with socket.create_connection((gateway.host, gateway.port), timeout=5):
        pass
    return gateway


@contextmanager
def gateway(
    script: dict[str, list[tuple[int, dict[str, str]]]] | None = None,
    hang: dict[str, int] | None = None,
    bodies: dict[str, str] | None = None,
) -> Iterator[Gateway]:
    gw = start_gateway(script, hang, bodies)
    try:
        yield gw
    finally:
        gw.stop()


# ---- pointing a workspace at these servers ------------------------------------------------------------


def configure_channels(root: Path, *, email: str, sms: str, push: str, retries: int = 3, concurrency: int = 4) -> None:
    """Rewrite the [channels.*] of ROOT/incident.toml to these apprise URLs, with no backoff between retries."""
    path = root / "incident.toml"
    head = path.read_text(encoding="utf-8").split("[channels.email]")[0]
    blocks = [
        f'[channels.{name}]\nurl = "{url}"\nrate = 0\nconcurrency = {concurrency}\nretries = {retries}\nbackoff = 0\n'
        for name, url in (("email", email), ("sms", sms), ("push", push))
    ]
    path.write_text(head + "\n".join(blocks), encoding="utf-8")
