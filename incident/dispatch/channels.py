"""Channel settings from incident.toml: apprise URL template, rate, concurrency, retries, backoff."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

from incident.config import Workspace
from incident.errors import BadConfig

PLACEHOLDERS = {"email": "{email}", "sms": "{phone}", "push": "{push_token}"}
# No provider wait is taken past a day: a larger (or non-finite) Retry-After would overflow the datetime arithmetic,
# and next_state falls back long before that (a wait past the channel's backoff_max moves to the next channel).
RETRY_AFTER_CAP = 86400.0


@dataclass(frozen=True)
class ChannelConfig:
    """One [channels.NAME] table: where to send, how fast, how often to retry before falling back."""

    name: str
    url: str
    rate: float  # messages per second, 0 = unlimited
    concurrency: int
    retries: int  # attempts on this channel before falling back
    backoff: float  # seconds before the first retry; doubles each time
    backoff_max: float


def channel_configs(ws: Workspace) -> dict[str, ChannelConfig]:
    """Read and check [channels.*] from incident.toml."""
    raw: dict[str, Any] = ws.config.get("channels", {})
    out = {}
    for name, entry in raw.items():
        if name not in PLACEHOLDERS:
            raise BadConfig(f"incident.toml: [channels.{name}]: unknown channel (use email, sms, push)")
        url = str(entry.get("url", ""))
        if "://" not in url:
            raise BadConfig(f"incident.toml: [channels.{name}] url: not an apprise URL")
        if PLACEHOLDERS[name] not in url:
            raise BadConfig(f"incident.toml: [channels.{name}] url: must contain {PLACEHOLDERS[name]}")
        try:
            out[name] = ChannelConfig(
                name=name,
                url=url,
                rate=float(entry.get("rate", 0)),
                concurrency=int(entry.get("concurrency", 4)),
                retries=int(entry.get("retries", 3)),
                backoff=float(entry.get("backoff", 2.0)),
                backoff_max=float(entry.get("backoff_max", 300.0)),
            )
        except (TypeError, ValueError) as exc:
            raise BadConfig(f"incident.toml: [channels.{name}]: {exc}") from None
        if out[name].retries < 1 or out[name].concurrency < 1:
            raise BadConfig(f"incident.toml: [channels.{name}]: retries and concurrency must be at least 1")
    return out


def next_attempt_at(
    now: datetime, cfg: ChannelConfig, tries: int, *, retry_after: float | None = None, rng: random.Random | None = None
) -> datetime:
    """When to retry: Retry-After when the provider gave one, else exponential backoff with ±50% jitter."""
    if retry_after is not None:
        wait = retry_after if math.isfinite(retry_after) else RETRY_AFTER_CAP
        return now + timedelta(seconds=min(max(wait, 0.0), RETRY_AFTER_CAP))
    base = min(cfg.backoff * (2 ** max(0, tries - 1)), cfg.backoff_max)
    jitter = (rng or random).uniform(0.5, 1.5)
    return now + timedelta(seconds=base * jitter)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110 10.2.3: delay-seconds or an HTTP-date), capped at
    RETRY_AFTER_CAP; None when absent or malformed (then the channel's own backoff applies)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # delay-seconds = 1*DIGIT: no sign, point, exponent or "inf"
        digits = value.lstrip("0") or "0"
        return RETRY_AFTER_CAP if len(digits) > 6 else min(float(int(digits)), RETRY_AFTER_CAP)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # RFC 9110: an HTTP-date is always GMT
    return min(max((when - now).total_seconds(), 0.0), RETRY_AFTER_CAP)
