"""gateway:// and gateways://: JSON over HTTP keep-alive, for SMS and push gateways."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import threading
from typing import Any

from incident import clock
from incident.dispatch.channels import parse_retry_after
from incident.dispatch.transports import (
    PERMANENT,
    SENT,
    TRANSIENT,
    Outcome,
    current_message,
    deadline,
    report,
    ssl_context,
)

_pool = threading.local()  # this thread's kept-alive connections, by (scheme, host, port)


def register() -> None:
    """Make gateway:// (and gateways:// over HTTPS) apprise schemes."""
    from apprise.decorators import notify

    notify(on="gateway", name="incident JSON gateway (HTTP keep-alive)")(gateway_handler)
    notify(on="gateways", name="incident JSON gateway (HTTPS keep-alive)")(gateway_handler)


def http_status_outcome(status: int, reason: str, *, retry_after: str | None, body: str) -> Outcome:
    """2xx sent; 408/429/5xx transient (429 honours Retry-After); other 4xx permanent."""
    text = f"HTTP {status} {reason}: {body[:200]}".strip()
    if 200 <= status < 300:
        return Outcome(SENT, provider_id=body[:200])
    if status == 429 or status == 408 or status >= 500:
        wait = parse_retry_after(retry_after, now=clock.now())
        return Outcome(TRANSIENT, text, retry_after=wait, details={"http_status": status})
    return Outcome(PERMANENT, text, details={"http_status": status})


def _key(meta: dict[str, Any]) -> tuple[Any, ...]:
    return (meta.get("schema"), meta.get("host"), meta.get("port"))


def _connections() -> dict[tuple[Any, ...], http.client.HTTPConnection]:
    conns: dict[tuple[Any, ...], http.client.HTTPConnection] | None = getattr(_pool, "conns", None)
    if conns is None:
        conns = _pool.conns = {}
    return conns


def _http(meta: dict[str, Any]) -> http.client.HTTPConnection:
    pool = _connections()
    conn = pool.get(_key(meta))
    if conn is None:
        timeout = float(meta.get("qsd", {}).get("timeout", 10))
        host, port = meta.get("host") or "localhost", meta.get("port")
        if meta.get("schema") == "gateways":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        pool[_key(meta)] = conn
    return conn


def _drop(meta: dict[str, Any], conn: http.client.HTTPConnection) -> None:
    conn.close()
    _connections().pop(_key(meta), None)


def _headers(meta: dict[str, Any], notice_id: str) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": notice_id,
        "User-Agent": "incident",
    }
    headers.update(meta.get("qsd+") or {})
    token = meta.get("qsd", {}).get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def gateway_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """gateway://HOST:PORT/PATH?to=ADDR: POST {to, title, message, notice_id} with an Idempotency-Key."""
    msg = current_message()
    payload = json.dumps(
        {"to": msg.address, "title": msg.subject, "message": msg.text, "notice_id": msg.notice_id}, ensure_ascii=False
    ).encode()
    headers = _headers(meta, msg.notice_id)
    path = meta.get("fullpath") or "/"
    limit = deadline.seconds_from(meta.get("qsd", {}))
    for attempt in (1, 2):
        conn = _http(meta)
        try:
            with deadline.deadline(limit, functools.partial(_cut, conn)) as call:
                conn.request("POST", path, body=payload, headers=headers)
                resp = conn.getresponse()
                data = resp.read().decode(errors="replace")
        except (http.client.HTTPException, OSError) as exc:
            if not call.expired:
                failed = _failed(meta, conn, exc, attempt)
                if failed is None:
                    continue  # a kept-alive connection closed by the server before our request
                return failed
        if call.expired:  # a cut answer can parse as complete (EOF ends the headers): it is never trusted
            _drop(meta, conn)
            return report(Outcome(TRANSIENT, f"HTTP deadline of {limit:g}s passed (may have been delivered)"))
        if resp.getheader("Connection", "").lower() == "close":
            _drop(meta, conn)
        return report(
            http_status_outcome(resp.status, resp.reason, retry_after=resp.getheader("Retry-After"), body=data)
        )
    return report(Outcome(TRANSIENT, "HTTP: no connection"))


def _cut(conn: http.client.HTTPConnection) -> None:
    """Called by the deadline: unblock the thread reading this connection."""
    if conn.sock is not None:
        conn.sock.shutdown(socket.SHUT_RDWR)


def _failed(meta: dict[str, Any], conn: http.client.HTTPConnection, exc: BaseException, attempt: int) -> bool | None:
    """A call that failed: None to try once more on a fresh connection, else the reported outcome."""
    _drop(meta, conn)
    if isinstance(exc, http.client.RemoteDisconnected | BrokenPipeError | ConnectionResetError):
        if attempt == 1:
            return None
        return report(Outcome(TRANSIENT, f"HTTP connection dropped: {exc}"))
    if isinstance(exc, TimeoutError):
        return report(Outcome(TRANSIENT, f"HTTP timeout (may have been delivered): {exc}"))
    if isinstance(exc, OSError):
        return report(Outcome(TRANSIENT, f"HTTP connection failed: {exc.strerror or exc}"))
    return report(Outcome(TRANSIENT, f"HTTP error: {type(exc).__name__}"))
