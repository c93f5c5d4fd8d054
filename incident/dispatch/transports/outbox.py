"""outbox://: the embedded default, one file per message in the workspace (tabletop exercises, no server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from incident.dispatch.transports import HALT, PERMANENT, SENT, TRANSIENT, Outcome, current_message, report
from incident.dispatch.transports.smtppool import email_message
from incident.errors import BadInput

BOUNCE_PREFIX = "bounce."


def register() -> None:
    """Make outbox:// an apprise scheme."""
    from apprise.decorators import notify

    notify(on="outbox", name="incident file outbox")(outbox_handler)


def outbox_handler(body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kw: Any) -> bool:
    """outbox://email/ADDR, outbox://sms/PHONE, outbox://push/TOKEN: write .eml or .json under the message's outbox.

    One rule for tabletop exercises: an email address whose domain starts with "bounce." is refused
    permanently, as a mail server would, so a drill can rehearse fallbacks without a real server."""
    msg = current_message()
    if msg.outbox is None:
        return report(Outcome(PERMANENT, "outbox root not configured"))
    kind = meta.get("host") or msg.channel
    if kind == "email" and msg.address.rpartition("@")[2].lower().startswith(BOUNCE_PREFIX):
        return report(Outcome(PERMANENT, "550 mailbox unavailable (outbox rule for tabletop exercises)"))
    folder = msg.outbox / kind
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
    except (OSError, BadInput) as exc:
        # A full disk, a read-only folder or a symlink planted in the outbox is our fault, not the recipient's:
        # stop the run (HALT) with the delivery still pending on this channel, instead of falling back.
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return report(Outcome(TRANSIENT, f"outbox write failed (nothing was sent): {why}", details={HALT: True}))
    return report(Outcome(SENT, provider_id=path.name))


def _write_private(path: Path, data: bytes) -> None:
    from incident.files import write_private

    # outbox/ID/KIND/NAME inside the workspace: no step below the workspace may be a symlink that leads out of it.
    write_private(path, data, within=path.parents[3])
