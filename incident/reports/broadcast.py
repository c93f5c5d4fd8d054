"""One message to one configured target (a status-page webhook, the on-call channel): one apprise call."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from incident.dispatch import transports


def mask_url(url: str) -> str:
    """The URL as it may appear in logs and tables: apprise's privacy form, without the query string."""
    import apprise

    parts = urlsplit(url)
    if parts.scheme in transports.OWN_SCHEMES:  # our schemes keep no secret outside the password
        user = f"{parts.username}{':****' if parts.password else ''}@" if parts.username else ""
        return f"{parts.scheme}://{user}{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    transports.register()
    try:
        plugin = apprise.Apprise.instantiate(transports.expand_secrets(url))
    except Exception:
        plugin = None
    if plugin is None:
        return f"{urlsplit(url).scheme}://****"
    return str(plugin.url(privacy=True)).split("?", 1)[0]


def url_hash(url: str) -> str:
    """A stable key for a configured URL that does not store the URL (it may hold a token)."""
    return hashlib.sha256(url.encode()).hexdigest()


def send_text(url: str, key: str, title: str, body: str, outbox: Path) -> transports.Outcome:
    """Send one text message; `key` is its idempotency key; outbox:// targets write under `outbox`."""
    message = transports.Message(notice_id=key, channel="notice", address="", subject=title, text=body, outbox=outbox)
    return transports.send(url, message)
