"""One send call per recipient and channel through apprise, and how its outcome is classified.

apprise is the transport; the outcome of each call is classified here as sent, transient (retry),
permanent (fall back now) or unknown. Our own schemes (outbox://, smtppool://, gateway://, one module
each) read the full message (text, HTML, notice id, outbox folder) from a thread-local, because apprise
runs them inline in the calling thread (service_timeout=0). This core imports none of them: register()
does, by name, once per process.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    import ssl

SENT, TRANSIENT, PERMANENT, UNKNOWN = "sent", "transient", "permanent", "unknown"
HALT = "halt"  # in Outcome.details: a fault on our side that every further message would meet too

# Our schemes, and the module under incident.dispatch.transports that registers each.
SCHEME_MODULES = {
    "outbox": "outbox",
    "smtppool": "smtppool",
    "smtppools": "smtppool",
    "gateway": "gateway",
    "gateways": "gateway",
}
OWN_SCHEMES = tuple(SCHEME_MODULES)


@dataclass
class Message:
    """One notice on its way to one address (outbox: the folder outbox:// writes into)."""

    notice_id: str
    channel: str
    address: str
    subject: str
    text: str
    html: str | None = None
    outbox: Path | None = None


@dataclass
class Outcome:
    """What one call did: sent, transient (retry), permanent (fall back now) or unknown (may have been sent)."""

    status: str  # sent | transient | permanent | unknown
    reason: str = ""
    provider_id: str = ""
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


_local = threading.local()


def current_message() -> Message:
    """The message this thread is sending (what our scheme handlers deliver)."""
    message: Message = _local.message
    return message


def current_outcome() -> Outcome | None:
    """The outcome this thread's scheme handler reported last (None before it reported)."""
    outcome: Outcome | None = getattr(_local, "outcome", None)
    return outcome


def report(outcome: Outcome) -> bool:
    """Hand a scheme handler's outcome back to deliver(); True for apprise when it was sent."""
    _local.outcome = outcome
    return outcome.status == SENT


@cache
def ssl_context() -> ssl.SSLContext:
    """One TLS context per process: apprise's mailto builds a new one per message (~22 ms)."""
    import ssl

    return ssl.create_default_context()


# ---- registration and the one call --------------------------------------------------------------

_registered = threading.Event()
_lock = threading.Lock()


def register() -> None:
    """Register our schemes with apprise once per process (each scheme module registers its own)."""
    with _lock:
        if _registered.is_set():
            return
        import apprise  # noqa: F401 - imported here: the CLI must start without it

        for module in dict.fromkeys(SCHEME_MODULES.values()):
            importlib.import_module(f"{__name__}.{module}").register()
        # apprise's records carry recipients and payloads: capture them per call (notify(log_level=...)),
        # and never let them reach a handler. Without a handler of its own, Python's last-resort handler
        # would print apprise warnings (with addresses) to stderr.
        apprise_log = logging.getLogger("apprise")
        apprise_log.setLevel(logging.DEBUG)
        apprise_log.propagate = False
        apprise_log.handlers[:] = [logging.NullHandler()]
        _registered.set()


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
    from incident.dispatch.transports.gateway import http_status_outcome
    from incident.dispatch.transports.smtppool import smtp_code_outcome

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
        return http_status_outcome(int(match.group(1)), "", retry_after=None, body=reason)
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
    from incident import clock

    if prepared.refused is not None:
        return prepared.refused
    message = prepared.message
    _local.message, _local.outcome = message, None
    sent_at = clock.now()
    started = time.monotonic()
    try:
        outcome = _call_own(prepared) if prepared.own else _call_stock(prepared)
    finally:
        _local.message = None
    outcome.details.setdefault("elapsed_ms", round((time.monotonic() - started) * 1000, 1))
    outcome.reason = masked_reason(outcome.reason, message.channel, message.address)
    if outcome.provider_id:  # a receipt may echo the recipient; its own ids (a Message-ID) stay readable
        from incident.privacy import mask_recipient

        outcome.provider_id = mask_recipient(outcome.provider_id, message.channel, message.address)
    outcome.details["started"] = sent_at
    return outcome


def _call_own(prepared: Prepared) -> Outcome:
    """Our schemes read the whole message from the thread-local and report through it, so the plugin's own
    notify() is the call: the Apprise wrapper would add only what they do not use (format conversion, per-call
    log capture, its dispatch machinery), about 0.3 ms a message."""
    import apprise

    message = prepared.message
    try:
        prepared.plugin.notify(
            body=message.text or " ",
            title=message.subject,
            notify_type=apprise.NotifyType.INFO,
            body_format=apprise.NotifyFormat.TEXT,
        )
    except Exception:  # as inside Apprise.notify: a crash leaves no outcome (unknown), never raises here
        pass
    outcome: Outcome | None = _local.outcome
    return outcome or Outcome(UNKNOWN, "transport returned no outcome")


def _call_stock(prepared: Prepared) -> Outcome:
    """A stock apprise plugin through the Apprise wrapper, its logs captured for this call only."""
    import apprise

    message = prepared.message
    fmt = apprise.NotifyFormat.HTML if message.html else apprise.NotifyFormat.TEXT
    body = message.html if fmt == apprise.NotifyFormat.HTML else message.text
    result = apprise.Apprise(prepared.plugin, asset=_asset()).notify(
        title=message.subject, body=body or " ", body_format=fmt, log_level=logging.DEBUG
    )
    return classify_stock(result)


def send(url_template: str, message: Message) -> Outcome:
    """One recipient, one channel, one apprise call, run inline in this thread; never raises."""
    return deliver(prepare(url_template, message))


def masked_reason(reason: str, channel: str, address: str) -> str:
    """A failure reason fit for the proof and the logs: servers echo the recipient ("550 <bob@x.org>: unknown",
    "invalid number 13800000001"), in any format; every email and phone-looking token is masked."""
    from incident.privacy import mask_contacts

    return mask_contacts(reason, channel, address)


@cache
def _asset() -> Any:
    import apprise

    # Run plugins inline in our own threads (apprise's shared pool would cap concurrency at 6),
    # and never let apprise retry: an ambiguous failure retried inside apprise double-sends.
    return apprise.AppriseAsset(service_timeout=0, async_mode=False, default_service_retry=0, secure_logging=True)


def mask_address(channel: str, address: str) -> str:
    """A masked address for logs and proof rows: u***@example.com, +8613*****0001, tok-****."""
    from incident.privacy import mask_address as mask

    return mask(channel, address)
