"""The one source of time: timezone-aware UTC, so freezegun moves every clock at once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta


def now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def parse_when(text: str, field: str = "time") -> datetime:
    """Parse an ISO date or datetime; naive values are taken as UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+05:00 or 9999-12-31T23:00-05:00: the same instant in UTC is outside year 1..9999.
        raise ValueError(f"{field}: outside the years 1 to 9999 in UTC") from None


def as_utc(value: datetime) -> datetime:
    """Return value as aware UTC (naive values from SQLite are stored as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def years_before(day: date, years: int) -> date:
    """Return the same calendar day `years` earlier (29 Feb falls back to 28 Feb)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def humanize(delta: timedelta) -> str:
    """Render a duration as '2d 03h 10m' (negative: 'overdue by ...')."""
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    text = f"{days}d {hours:02d}h {minutes:02d}m" if days else f"{hours}h {minutes:02d}m"
    return sign + text
