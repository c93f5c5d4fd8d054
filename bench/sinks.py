"""Receivers for the dispatch rows, each in a process of its own: an SMTP sink and an HTTP JSON gateway.

They accept everything and count what arrived, optionally taking `delay` seconds per message (a provider's
latency). They run in a spawned process so their CPU is not ours and both sides of a row meet the same server.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Sink:
    """A running receiver: where it listens and how many messages it has accepted."""

    port: int
    counter: Any  # multiprocessing.Value('q')

    @property
    def received(self) -> int:
        return int(self.counter.value)


def _serve_smtp(ready: Any, counter: Any, delay: float) -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if delay:
                await asyncio.sleep(delay)
            with counter.get_lock():
                counter.value += 1
            return "250 2.0.0 OK: queued"

    class AnyPort(Controller):
        def _trigger_server(self) -> None:
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = AnyPort(Counting(), hostname="127.0.0.1", port=0, ready_timeout=30)
    controller.start()
    ready.put(controller.port)
    threading.Event().wait()


def _serve_http(ready: Any, counter: Any, delay: float) -> None:
    import time

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        # One write per response, flushed by the server after each request: a status line and a body in two
        # small writes would meet the client's delayed ACK (Nagle) and cost 40 ms a request.
        wbufsize = 1 << 16
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            json.loads(body)
            if delay:
                time.sleep(delay)
            with counter.get_lock():
                counter.value += 1
                n = counter.value
            payload = json.dumps({"id": f"msg-{n}"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.request_queue_size = 128
    ready.put(server.server_address[1])
    server.serve_forever(poll_interval=0.2)


@contextmanager
def running(kind: str, delay: float = 0.0) -> Iterator[Sink]:
    """Start an 'smtp' or 'http' receiver in a spawned process; stop it afterwards."""
    mp = multiprocessing.get_context("spawn")
    ready, counter = mp.Queue(), mp.Value("q", 0)
    target = {"smtp": _serve_smtp, "http": _serve_http}[kind]
    proc = mp.Process(target=target, args=(ready, counter, delay), daemon=True)
    proc.start()
    try:
        yield Sink(ready.get(timeout=60), counter)
    finally:
        proc.terminate()
        proc.join(10)
