"""Our apprise schemes (outbox://, smtppool://, gateway://) and one send call per recipient and channel.

apprise is the transport; the outcome of each call is classified here as sent, transient (retry),
permanent (fall back now) or unknown. Our own schemes read the full message (text, HTML, notice id)
from a thread-local, because apprise runs them inline in the calling thread (service_timeout=0).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formataddr, make_msgid, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

SENT, TRANSIENT, PERMANENT, UNKNOWN = "sent", "transient", "permanent", "unknown"
HALT = "halt"  # in Outcome.details: a fault on our side that every further message would meet too


@dataclass
class Message:
    """One notice on its way to one address."""

    notice_id: str
    channel: str
    address: str
    subject: str
    text: str
    html: str | None = None


@dataclass
class Outcome:
    status: str  # sent | transient | permanent | unknown
    reason: str = ""
    provider_id: str = ""
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


_local = threading.local()
OUTBOX_ROOT: dict[str, Path] = {}


def _current() -> Message:
    return _local.message  # type: ignore[no-any-return]


def _report(outcome: Outcome) -> bool:
    _local.outcome = outcome
    return outcome.status == SENT


# ---- outbox:// (embedded default: one file per message in the workspace) -------------------------


def _write_private(path: Path, data: bytes) -> None:
    if not path.parent.is_dir():
        from incident.files import private_dir

        private_dir(path.parent)  # outbox/, outbox/ID/ and outbox/ID/KIND/ alike, not just the last one
    tmp = path.with_suffix(path.suffix + ".part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # Whole or absent, never half-written; survives kill -9 (not power loss: no fsync per message).
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


BOUNCE_PREFIX = "bounce."


def outbox_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """outbox://email/ADDR, outbox://sms/PHONE, outbox://push/TOKEN: write .eml or .json into the workspace.

    One rule for tabletop exercises: an email address whose domain starts with "bounce." is refused
    permanently, as a mail server would, so a drill can rehearse fallbacks without a real server."""
    msg = _current()
    root = OUTBOX_ROOT.get("root")
    if root is None:
        return _report(Outcome(PERMANENT, "outbox root not configured"))
    kind = meta.get("host") or msg.channel
    if kind == "email" and msg.address.rpartition("@")[2].lower().startswith(BOUNCE_PREFIX):
        return _report(Outcome(PERMANENT, "550 mailbox unavailable (outbox rule for tabletop exercises)"))
    folder = root / kind
    try:
        if kind == "email":
            data = bytes(email_message(msg, meta.get("qsd", {}).get("from", "security@localhost")))
            path = folder / f"{msg.notice_id}.eml"
        else:
            data = json.dumps(
                {"notice_id": msg.notice_id, "to": msg.address, "title": msg.subject, "message": msg.text},
                ensure_ascii=False,
                indent=1,
            ).encode()
            path = folder / f"{msg.notice_id}.json"
        _write_private(path, data)
    except OSError as exc:
        # A full disk or a read-only folder is our fault, not the recipient's: stop the run (HALT) with the
        # delivery still pending on this channel, instead of spending its retries and falling back.
        return _report(
            Outcome(TRANSIENT, f"outbox write failed (nothing was sent): {exc.strerror or exc}", details={HALT: True})
        )
    return _report(Outcome(SENT, provider_id=path.name))


# ---- smtppool:// (one persistent SMTP connection per thread) -------------------------------------

_context: ssl.SSLContext | None = None


def _ssl_context() -> ssl.SSLContext:
    # apprise's mailto builds a new SSL context per message (~22 ms); we build one per process.
    global _context
    if _context is None:
        _context = ssl.create_default_context()
    return _context


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


def _smtp(meta: dict[str, Any]) -> smtplib.SMTP:
    qsd = meta.get("qsd", {})
    key = (meta.get("host"), meta.get("port"), meta.get("user"), meta.get("schema"))
    pool: dict[Any, smtplib.SMTP] = getattr(_local, "smtp", None) or {}
    _local.smtp = pool
    conn = pool.get(key)
    if conn is not None:
        return conn
    timeout = float(qsd.get("timeout", 15))
    host, port = meta.get("host") or "localhost", int(meta.get("port") or 25)
    if meta.get("schema") == "smtppools":
        conn = _SMTPSSL(host, port, timeout=timeout, context=_ssl_context())
    else:
        conn = _SMTP(host, port, timeout=timeout)
        if qsd.get("starttls", "no").lower() in ("yes", "1", "true"):
            conn.starttls(context=_ssl_context())
    user, password = meta.get("user"), meta.get("password")
    if user and password:
        conn.login(user, password)
    pool[key] = conn
    return conn


def _drop_smtp(meta: dict[str, Any]) -> None:
    pool = getattr(_local, "smtp", {}) or {}
    key = (meta.get("host"), meta.get("port"), meta.get("user"), meta.get("schema"))
    conn = pool.pop(key, None)
    if conn is not None:
        try:
            conn.close()
        except Exception:
            pass


def smtp_code_outcome(code: int, text: str) -> Outcome:
    """RFC 5321: 5xx is permanent (fall back now), 4xx is transient (retry)."""
    status = PERMANENT if 500 <= code < 600 else TRANSIENT
    return Outcome(status, f"SMTP {code} {text}"[:300], details={"smtp_code": code})


def smtppool_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """smtppool://HOST:PORT/ADDR?from=...: send over a reused connection with per-recipient SMTP codes."""
    msg = _current()
    qsd = meta.get("qsd", {})
    sender = qsd.get("from") or "security@localhost"
    email = email_message(msg, sender, qsd.get("reply"))
    for attempt in (1, 2):
        fresh = getattr(_local, "smtp", {}) == {} or attempt == 2
        try:
            conn = _smtp(meta)
        except (OSError, smtplib.SMTPException) as exc:
            return _report(Outcome(TRANSIENT, f"SMTP connect failed: {exc}"[:300]))
        conn.data_sent = False  # type: ignore[attr-defined]
        try:
            refused = conn.send_message(email, from_addr=parseaddr(sender)[1], to_addrs=[msg.address])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return _report(smtp_code_outcome(code, text.decode(errors="replace")))
        except smtplib.SMTPSenderRefused as exc:
            return _report(smtp_code_outcome(exc.smtp_code, exc.smtp_error.decode(errors="replace")))
        except smtplib.SMTPDataError as exc:
            return _report(smtp_code_outcome(exc.smtp_code, exc.smtp_error.decode(errors="replace")))
        except (OSError, smtplib.SMTPException) as exc:
            _drop_smtp(meta)
            delivered = getattr(conn, "data_sent", True)
            dropped = isinstance(exc, smtplib.SMTPServerDisconnected | BrokenPipeError | ConnectionResetError)
            if attempt == 1 and not fresh and dropped and not delivered:
                continue  # an idle pooled connection was closed before our message went out: reconnect once
            if delivered:
                return _report(
                    Outcome(
                        TRANSIENT,
                        f"SMTP connection lost after the message data (may have been "
                        f"delivered): {str(exc) or type(exc).__name__}"[:300],
                    )
                )
            what = "connection dropped" if dropped else "error"
            return _report(Outcome(TRANSIENT, f"SMTP {what}: {str(exc) or type(exc).__name__}"[:300]))
        if refused:
            code, text = next(iter(refused.values()))
            return _report(smtp_code_outcome(code, text.decode(errors="replace")))
        return _report(Outcome(SENT, provider_id=str(email["Message-ID"])))
    return _report(Outcome(TRANSIENT, "SMTP: no connection"))


# ---- gateway:// (JSON over HTTP keep-alive, for SMS and push gateways) ---------------------------


def _http(meta: dict[str, Any]) -> http.client.HTTPConnection:
    key = (meta.get("schema"), meta.get("host"), meta.get("port"))
    pool: dict[Any, http.client.HTTPConnection] = getattr(_local, "http", None) or {}
    _local.http = pool
    conn = pool.get(key)
    if conn is None:
        timeout = float(meta.get("qsd", {}).get("timeout", 10))
        host, port = meta.get("host") or "localhost", meta.get("port")
        if meta.get("schema") == "gateways":
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=_ssl_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        pool[key] = conn
    return conn


def http_status_outcome(status: int, reason: str, retry_after: str | None, body: str) -> Outcome:
    """2xx sent; 408/429/5xx transient (429 honours Retry-After); other 4xx permanent."""
    text = f"HTTP {status} {reason}: {body[:200]}".strip()
    if 200 <= status < 300:
        return Outcome(SENT, provider_id=body[:200])
    if status == 429 or status == 408 or status >= 500:
        wait = None
        if retry_after:
            try:
                wait = max(0.0, float(retry_after))
            except ValueError:
                wait = None
        return Outcome(TRANSIENT, text, retry_after=wait, details={"http_status": status})
    return Outcome(PERMANENT, text, details={"http_status": status})


def gateway_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """gateway://HOST:PORT/PATH?to=ADDR: POST {to, title, message, notice_id} with an Idempotency-Key."""
    msg = _current()
    qsd = meta.get("qsd", {})
    payload = json.dumps(
        {"to": msg.address, "title": msg.subject, "message": msg.text, "notice_id": msg.notice_id}, ensure_ascii=False
    ).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Idempotency-Key": msg.notice_id,
        "User-Agent": "incident",
    }
    for key, value in (meta.get("qsd+") or {}).items():
        headers[key] = value
    token = qsd.get("token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    path = meta.get("fullpath") or "/"
    for attempt in (1, 2):
        conn = _http(meta)
        try:
            conn.request("POST", path, body=payload, headers=headers)
            resp = conn.getresponse()
            data = resp.read().decode(errors="replace")
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            conn.close()
            getattr(_local, "http", {}).pop((meta.get("schema"), meta.get("host"), meta.get("port")), None)
            if attempt == 1:
                continue  # a kept-alive connection closed by the server before our request
            return _report(Outcome(TRANSIENT, f"HTTP connection dropped: {exc}"))
        except TimeoutError as exc:
            conn.close()
            getattr(_local, "http", {}).pop((meta.get("schema"), meta.get("host"), meta.get("port")), None)
            return _report(Outcome(TRANSIENT, f"HTTP timeout (may have been delivered): {exc}"))
        except OSError as exc:
            conn.close()
            getattr(_local, "http", {}).pop((meta.get("schema"), meta.get("host"), meta.get("port")), None)
            return _report(Outcome(TRANSIENT, f"HTTP connection failed: {exc.strerror or exc}"))
        if resp.getheader("Connection", "").lower() == "close":
            conn.close()
            getattr(_local, "http", {}).pop((meta.get("schema"), meta.get("host"), meta.get("port")), None)
        return _report(http_status_outcome(resp.status, resp.reason, resp.getheader("Retry-After"), data))
    return _report(Outcome(TRANSIENT, "HTTP: no connection"))


# ---- registration and the one call --------------------------------------------------------------

_registered = False
_lock = threading.Lock()


def register() -> None:
    """Register our schemes with apprise once per process."""
    global _registered
    with _lock:
        if _registered:
            return
        import apprise  # noqa: F401 - imported here: the CLI must start without it
        from apprise.decorators import notify

        notify(on="outbox", name="incident file outbox")(outbox_handler)
        notify(on="smtppool", name="incident pooled SMTP")(smtppool_handler)
        notify(on="smtppools", name="incident pooled SMTP over TLS")(smtppool_handler)
        notify(on="gateway", name="incident JSON gateway (HTTP keep-alive)")(gateway_handler)
        notify(on="gateways", name="incident JSON gateway (HTTPS keep-alive)")(gateway_handler)
        # Failure reasons are only logged at DEBUG; capture them per call, never to our own logs.
        # apprise's records carry recipients and payloads: capture them per call (notify(log_level=...)),
        # and never let them reach a handler. Without a handler of its own, Python's last-resort handler
        # would print apprise warnings (with addresses) to stderr.
        apprise_log = logging.getLogger("apprise")
        apprise_log.setLevel(logging.DEBUG)
        apprise_log.propagate = False
        apprise_log.handlers[:] = [logging.NullHandler()]
        _registered = True


OWN_SCHEMES = ("outbox", "smtppool", "smtppools", "gateway", "gateways")
ENV_REF = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")


def expand_secrets(url: str) -> str:
    """Fill ${NAME} from the environment (secrets never live in incident.toml)."""

    def sub(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            raise KeyError(match.group(1))
        return quote(value, safe="")

    return ENV_REF.sub(sub, url)


def build_url(template: str, address: str, notice_id: str) -> str:
    """The apprise URL for one recipient: the channel template with the address and our idempotency key."""
    placeholder = re.search(r"\{(email|phone|push_token|address)\}", template)
    url = template.replace(placeholder.group(0), quote(address, safe="@+")) if placeholder else template
    url = expand_secrets(url)
    scheme = urlsplit(url).scheme
    if scheme not in OWN_SCHEMES:
        sep = "&" if "?" in url else "?"
        header = "X-Notice-Id" if scheme.startswith("mailto") else "Idempotency-Key"
        url += f"{sep}%2B{header}={quote(notice_id)}"
    return url


HTTP_STATUS = re.compile(r"error=(\d{3})")
SMTP_CODE = re.compile(r"\((\d{3}), b?['\"]")


def classify_stock(result: Any) -> Outcome:
    """Classify a stock apprise plugin's result from its per-call logs (no response headers there)."""
    logs = []
    for entry in result.logs():
        message = getattr(entry, "message", str(entry))
        level = getattr(entry, "level", "")
        if level in ("WARNING", "ERROR") or message.startswith(("Socket Exception", "Response Details")):
            logs.append(message)
    reason = "; ".join(logs)[:300]
    if bool(result):
        return Outcome(SENT)
    if result.status.name == "TIMEOUT" or "timed out" in reason.lower():
        return Outcome(UNKNOWN if result.status.name == "TIMEOUT" else TRANSIENT, reason or "timeout")
    match = HTTP_STATUS.search(reason)
    if match:
        return http_status_outcome(int(match.group(1)), "", None, reason)
    match = SMTP_CODE.search(reason)
    if match:
        return smtp_code_outcome(int(match.group(1)), reason)
    if "connection" in reason.lower() or "socket" in reason.lower():
        return Outcome(TRANSIENT, reason)
    return Outcome(PERMANENT, reason or f"apprise: {result.status.name}")


@dataclass
class Prepared:
    """A message ready to go: its apprise plugin built, nothing sent yet (or the reason it cannot be sent)."""

    message: Message
    plugin: Any = None
    own: bool = False
    refused: Outcome | None = None


def prepare(url_template: str, message: Message) -> Prepared:
    """Everything before the network: apprise import, the URL with secrets, the plugin. Never raises."""
    import apprise

    register()
    try:
        url = build_url(url_template, message.address, message.notice_id)
    except KeyError as exc:
        return Prepared(
            message,
            refused=Outcome(
                PERMANENT, f"environment variable {exc.args[0]} is not set (referenced by the channel URL)"
            ),
        )
    try:
        plugin = apprise.Apprise.instantiate(url, asset=_asset(), suppress_exceptions=False)
    except Exception as exc:
        return Prepared(message, refused=Outcome(PERMANENT, f"channel URL rejected by apprise: {type(exc).__name__}"))
    if plugin is None:
        return Prepared(message, refused=Outcome(PERMANENT, "unsupported or disabled apprise scheme"))
    return Prepared(message, plugin, urlsplit(url).scheme in OWN_SCHEMES)


def deliver(prepared: Prepared) -> Outcome:
    """The one apprise call, inline in this thread, stamped with when it started; never raises."""
    import apprise

    from incident import clock

    if prepared.refused is not None:
        return prepared.refused
    message, own = prepared.message, prepared.own
    _local.message, _local.outcome = message, None
    sent_at = clock.now()
    started = time.monotonic()
    try:
        if own:
            # Our schemes read the whole message from the thread-local and report through it, so the plugin's
            # own notify() is the call: the Apprise wrapper would add only what they do not use (format
            # conversion, per-call log capture, its dispatch machinery), about 0.3 ms a message.
            try:
                prepared.plugin.notify(
                    body=message.text or " ",
                    title=message.subject,
                    notify_type=apprise.NotifyType.INFO,
                    body_format=apprise.NotifyFormat.TEXT,
                )
            except Exception:  # as inside Apprise.notify: a crash leaves no outcome (unknown), never raises here
                pass
        else:
            fmt = apprise.NotifyFormat.HTML if message.html else apprise.NotifyFormat.TEXT
            body = message.html if fmt == apprise.NotifyFormat.HTML else message.text
            result = apprise.Apprise(prepared.plugin, asset=_asset()).notify(
                title=message.subject, body=body or " ", body_format=fmt, log_level=logging.DEBUG
            )
    finally:
        _local.message = None
    outcome = (_local.outcome or Outcome(UNKNOWN, "transport returned no outcome")) if own else classify_stock(result)
    outcome.details.setdefault("elapsed_ms", round((time.monotonic() - started) * 1000, 1))
    outcome.reason = masked_reason(outcome.reason, message.channel, message.address)
    outcome.details["started"] = sent_at
    return outcome


def send(url_template: str, message: Message) -> Outcome:
    """One recipient, one channel, one apprise call, run inline in this thread; never raises."""
    return deliver(prepare(url_template, message))


EMAIL_IN_TEXT = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")


def masked_reason(reason: str, channel: str, address: str) -> str:
    """A failure reason fit for the proof and the logs: servers echo the recipient ("550 <bob@x.org>: unknown")."""
    if not reason:
        return reason  # a sent message has none: skip compiling a pattern for every address
    if address and len(address) > 3:
        reason = re.sub(re.escape(address), lambda _: mask_address(channel, address), reason, flags=re.IGNORECASE)
    return EMAIL_IN_TEXT.sub(lambda m: mask_address("email", m.group(0)), reason)


_assets: dict[str, Any] = {}


def _asset() -> Any:
    import apprise

    if "asset" not in _assets:
        # Run plugins inline in our own threads (apprise's shared pool would cap concurrency at 6),
        # and never let apprise retry: an ambiguous failure retried inside apprise double-sends.
        _assets["asset"] = apprise.AppriseAsset(
            service_timeout=0, async_mode=False, default_service_retry=0, secure_logging=True
        )
    return _assets["asset"]


def parse_query(url: str) -> dict[str, str]:
    """Query parameters of a URL (for config validation)."""
    return dict(parse_qsl(urlsplit(url).query))


def mask_address(channel: str, address: str) -> str:
    """A masked address for logs and proof rows: u***@example.com, +8613*****0001, tok-****."""
    if not address:
        return ""
    if channel == "email" and "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    if channel == "sms":
        return address[:5] + "*" * max(0, len(address) - 9) + address[-4:] if len(address) > 9 else "****"
    return address[:4] + "****"


def formatted_sender(name: str, address: str) -> str:
    return formataddr((name, address))
