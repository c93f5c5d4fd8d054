"""smtppool:// and smtppools://: one persistent SMTP connection per thread, per-recipient SMTP codes."""

from __future__ import annotations

import functools
import logging
import smtplib
import socket
import threading
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Any

from incident.dispatch.transports import (
    HALT,
    PERMANENT,
    SENT,
    TRANSIENT,
    Message,
    Outcome,
    current_message,
    current_outcome,
    deadline,
    report,
    ssl_context,
)

log = logging.getLogger("incident.dispatch")
_pool = threading.local()  # this thread's connections, by (host, port, user, scheme)


def register() -> None:
    """Make smtppool:// (and smtppools:// over TLS) apprise schemes."""
    from apprise.decorators import notify

    notify(on="smtppool", name="incident pooled SMTP")(smtppool_handler)
    notify(on="smtppools", name="incident pooled SMTP over TLS")(smtppool_handler)


def email_message(msg: Message, sender: str, reply_to: str | None = None) -> EmailMessage:
    """Build the MIME message we send: our approved text and HTML, an X-Notice-Id for receiver dedup."""
    email = EmailMessage()
    email["From"] = sender
    email["To"] = msg.address
    if reply_to:
        email["Reply-To"] = reply_to
    email["Subject"] = msg.subject
    email["Message-ID"] = make_msgid(idstring=msg.notice_id, domain=parseaddr(sender)[1].split("@")[-1] or None)
    email["X-Notice-Id"] = msg.notice_id
    email.set_content(msg.text)
    if msg.html:
        email.add_alternative(msg.html, subtype="html")
    return email


def smtp_code_outcome(code: int, text: str) -> Outcome:
    """RFC 5321: 5xx is permanent (fall back now), 4xx is transient (retry)."""
    status = PERMANENT if 500 <= code < 600 else TRANSIENT
    return Outcome(status, f"SMTP {code} {text}"[:300], details={"smtp_code": code})


class _DataTracking:
    """Remember whether the message data went out on this connection: a connection dropped before it can be
    re-tried at once (nothing was delivered), one dropped after it may have delivered the message."""

    data_sent = False

    def data(self, msg: Any) -> Any:
        self.data_sent = True
        return super().data(msg)  # type: ignore[misc]


class _SMTP(_DataTracking, smtplib.SMTP):
    pass


class _SMTPSSL(_DataTracking, smtplib.SMTP_SSL):
    pass


def _key(meta: dict[str, Any]) -> tuple[Any, ...]:
    return (meta.get("host"), meta.get("port"), meta.get("user"), meta.get("schema"))


def _connections() -> dict[tuple[Any, ...], _SMTP | _SMTPSSL]:
    conns: dict[tuple[Any, ...], _SMTP | _SMTPSSL] | None = getattr(_pool, "conns", None)
    if conns is None:
        conns = _pool.conns = {}
    return conns


class InsecureAuth(Exception):
    """Credentials would cross the network in clear text (AUTH without TLS)."""


_warned_insecure = threading.Event()


def _yes(qsd: dict[str, Any], name: str) -> bool:
    return str(qsd.get(name, "no")).lower() in ("yes", "1", "true")


def _check_auth_tls(meta: dict[str, Any]) -> None:
    """Refuse AUTH over a connection without TLS unless the URL says insecure=yes (then warn once a process)."""
    qsd = meta.get("qsd", {})
    if not (meta.get("user") and meta.get("password")) or meta.get("schema") == "smtppools" or _yes(qsd, "starttls"):
        return
    if not _yes(qsd, "insecure"):
        raise InsecureAuth(
            "smtppool:// would send the SMTP password without TLS: add starttls=yes, use smtppools://, "
            "or say insecure=yes"
        )
    if not _warned_insecure.is_set():
        _warned_insecure.set()
        log.warning("smtppool:// sends the SMTP password without TLS (insecure=yes)")


def _smtp(meta: dict[str, Any], opening: list[_SMTP | _SMTPSSL]) -> _SMTP | _SMTPSSL:
    qsd = meta.get("qsd", {})
    pool = _connections()
    pooled = pool.get(_key(meta))
    if pooled is not None:
        return pooled
    _check_auth_tls(meta)
    timeout = float(qsd.get("timeout", 15))
    host, port = meta.get("host") or "localhost", int(meta.get("port") or 25)
    # Built unconnected and handed to the caller first, so the call's deadline can cut a server that greets slowly.
    conn: _SMTP | _SMTPSSL
    if meta.get("schema") == "smtppools":
        conn = _SMTPSSL(timeout=timeout, context=ssl_context())
    else:
        conn = _SMTP(timeout=timeout)
    opening.append(conn)
    code, greeting = conn.connect(host, port)
    if code != 220:
        conn.close()
        raise smtplib.SMTPConnectError(code, greeting)
    if meta.get("schema") != "smtppools" and _yes(qsd, "starttls"):
        conn.starttls(context=ssl_context())
    user, password = meta.get("user"), meta.get("password")
    if user and password:
        conn.login(user, password)
    pool[_key(meta)] = conn
    return conn


def _drop_smtp(meta: dict[str, Any]) -> None:
    conn = _connections().pop(_key(meta), None)
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


def _text(raw: bytes | str) -> str:
    return raw.decode(errors="replace") if isinstance(raw, bytes) else raw


def smtppool_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """smtppool://HOST:PORT/ADDR?from=...: send over a reused connection with per-recipient SMTP codes, within
    the URL's total deadline (deadline=SECONDS)."""
    limit = deadline.seconds_from(meta.get("qsd", {}))
    used: list[_SMTP | _SMTPSSL] = []
    pooled = _connections().get(_key(meta))
    if pooled is not None:
        used.append(pooled)
    with deadline.deadline(limit, functools.partial(_cut, used)) as call:
        sent = _send(meta, used)
    outcome = current_outcome()
    if call.expired and outcome is not None:
        _drop_smtp(meta)
        if sent:  # the cut raced the server's 250: ambiguous, like any lost connection after the data
            return report(Outcome(TRANSIENT, f"SMTP deadline of {limit:g}s passed (may have been delivered)"))
        outcome.reason = f"SMTP deadline of {limit:g}s passed: {outcome.reason}"[:300]
    return sent


def _cut(used: list[_SMTP | _SMTPSSL]) -> None:
    """Called by the deadline: unblock the thread reading these connections."""
    for conn in used:
        sock = getattr(conn, "sock", None)
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)


def _send(meta: dict[str, Any], used: list[_SMTP | _SMTPSSL]) -> bool:
    msg = current_message()
    qsd = meta.get("qsd", {})
    sender = qsd.get("from") or "security@localhost"
    email = email_message(msg, sender, qsd.get("reply"))
    for attempt in (1, 2):
        fresh = _connections() == {} or attempt == 2
        try:
            conn = _smtp(meta, used)
        except InsecureAuth as exc:  # our configuration: every message would meet it, so the run stops
            return report(Outcome(PERMANENT, str(exc), details={HALT: True}))
        except (OSError, smtplib.SMTPException) as exc:
            return report(Outcome(TRANSIENT, f"SMTP connect failed: {exc}"[:300]))
        conn.data_sent = False
        try:
            refused = conn.send_message(email, from_addr=parseaddr(sender)[1], to_addrs=[msg.address])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return report(smtp_code_outcome(code, _text(text)))
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return report(smtp_code_outcome(exc.smtp_code, _text(exc.smtp_error)))
        except (OSError, smtplib.SMTPException) as exc:
            _drop_smtp(meta)
            dropped = isinstance(exc, smtplib.SMTPServerDisconnected | BrokenPipeError | ConnectionResetError)
            if attempt == 1 and not fresh and dropped and not conn.data_sent:
                continue  # an idle pooled connection was closed before our message went out: reconnect once
            return report(_lost(exc, dropped=dropped, delivered=conn.data_sent))
        if refused:
            code, text = next(iter(refused.values()))
            return report(smtp_code_outcome(code, _text(text)))
        return report(Outcome(SENT, provider_id=str(email["Message-ID"])))
    return report(Outcome(TRANSIENT, "SMTP: no connection"))


def _lost(exc: BaseException, *, dropped: bool, delivered: bool) -> Outcome:
    """A connection that failed mid-send: transient, and said to be ambiguous once the data went out."""
    detail = str(exc) or type(exc).__name__
    if delivered:
        return Outcome(
            TRANSIENT, f"SMTP connection lost after the message data (may have been delivered): {detail}"[:300]
        )
    what = "connection dropped" if dropped else "error"
    return Outcome(TRANSIENT, f"SMTP {what}: {detail}"[:300])
