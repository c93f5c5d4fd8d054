"""The CLI's one way to the terminal (every line through the terminal filter), and how it prints what several
commands share: times given as options, obligations, reviews, assessments."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import IO, Any

import typer

from incident.privacy import UNSAFE_CHARS, terminal_safe

# JSON keeps every character but says the unsafe ones as \uXXXX: the document stays exact and the terminal inert.
_UNSAFE_IN_JSON = re.compile("[" + "".join(re.escape(c) for c in sorted(UNSAFE_CHARS)) + "]")


def echo(message: object = "", *, err: bool = False) -> None:
    """Print one line: control characters, escape sequences and bidi overrides show as U+FFFD, never act."""
    typer.echo(terminal_safe(message), err=err)


def echo_json(data: Any) -> None:
    """Print machine-readable output, every unsafe character escaped as \\uXXXX inside its JSON string."""
    import json

    text = json.dumps(data, ensure_ascii=False, indent=2, default=str)
    typer.echo(_UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


class _FilteredStream:
    """stdout for a streamed export (CSV, JSONL): the rows go out through the terminal filter; CSV's CRLF stays."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write("\r\n".join(terminal_safe(part) for part in text.split("\r\n")))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def stderr_is_terminal() -> bool:
    """Whether a person watches stderr (a progress bar is worth drawing)."""
    import sys

    return sys.stderr.isatty()


def terminal_stream() -> IO[str]:
    """stdout for commands that stream an export, behind the same filter as every printed line."""
    import sys

    return _FilteredStream(sys.stdout)  # type: ignore[return-value]


EARLIEST_YEAR, LATEST_YEAR = 1900, 9000


def parse_time(text: str | None, option: str) -> Any:
    """Parse a date or time given as an option, in the years a deadline can be computed from."""
    from incident.clock import parse_when
    from incident.errors import InvalidArgument

    if text is None:
        return None
    try:
        when = parse_when(text)
    except ValueError:
        raise InvalidArgument(f"{option}: not an ISO date or time: {text[:40]!r}") from None
    # Deadlines are computed from these times (72 hours on, 14 years back): year 1 or 9999 would overflow them.
    if not EARLIEST_YEAR <= when.year <= LATEST_YEAR:
        raise InvalidArgument(f"{option}: {text[:40]!r} is outside the years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return when


def split_csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def _left(seconds: float | None) -> str:
    from incident.clock import humanize

    if seconds is None:
        return ""
    text = humanize(timedelta(seconds=seconds))
    return f"overdue by {text[1:]}" if text.startswith("-") else f"{text} left"


def print_obligations(obligations: list[dict[str, Any]]) -> None:
    """Print a deadline table."""
    for o in obligations:
        due = o["due"][:16].replace("T", " ") + "Z" if o["due"] else "-"
        echo(f"  {o['state']:<17} {due:<18} {_left(o['left_seconds']):<24} {o['key']:<22} {o['title']}")


def print_assessment(a: dict[str, Any]) -> None:
    """Print an assessment for humans."""
    c = a["counts"]
    echo(f"affected people:   {c['people']:,}  ({c['records']:,} exposed records)")
    echo(f"  sensitive:       {c['sensitive']:,}")
    echo(f"  children (<14):  {c['children']:,}  (told through their guardians)")
    echo(f"  cancelled:       {c['cancelled']:,}")
    echo(f"  no usable channel: {c['no_usable_channel']:,}   letter only: {c['letter_only']:,}")
    echo("  by region:       " + ", ".join(f"{k} {v:,}" for k, v in c["by_region"].items()))
    echo("  by category:     " + ", ".join(f"{k} {v:,}" for k, v in c["by_category"].items()))
    g = a["grade"]
    override = f" (override of {g['computed']}: {g['override_reason']})" if g["override_reason"] else ""
    echo(f"grade (CAC 分级指南): {g['key']} / {g['name']}{override}")
    echo("regimes:           " + ", ".join(f"{r['key']} ({r['residents']:,})" for r in a["regimes"]))
    n = a["individual_notice"]
    echo(f"individual notice: {'required' if n['required'] else 'not required'} ({n['reason']})")
    ann = a["announcement"]
    echo(f"announcement:      {'required' if ann['required'] else 'not required'}")
    for reason in ann["reasons"]:
        echo(f"  - {reason}")
    echo("obligations:")
    print_obligations(a["obligations"])


def print_review(label: str, review: dict[str, Any], extra: str) -> None:
    """Print where a review stands (notices or announcement) and what changed since its approval."""
    by = f" by {review['reviewer']} at {review['at'][:16]}" if review.get("reviewer") else ""
    echo(f"{label}{review['state']}{by}{extra}")
    for change in review["changes"]:
        echo(f"  changed since approval: {change}")
    print_held(review.get("held") or [])


def print_held(held: list[dict[str, Any]]) -> None:
    """Name each person a render held back (their own data failed a check) and why: they are unreached."""
    if held:
        echo(f"  held back: {len(held):,} people (no notice until their data is fixed and re-rendered)")
    for h in held:
        echo(f"  held back: {h['person_id']}: {'; '.join(h['problems'])}")


def submission(report: dict[str, Any]) -> str:
    """Whether and when a stored regulator report was submitted."""
    if not report["submitted_at"]:
        return "not submitted"
    return f"submitted {report['submitted_at'][:16]} ref {report['reference'] or '-'}"


def print_retention(retention: dict[str, Any], incident_id: str) -> None:
    """Print where the incident's personal data stands: kept until when, due for purge, held, or purged."""
    state, until = retention["state"], (retention["purge_after"] or "")[:16]
    hold, purged = retention["hold"], retention["purged"]
    if purged:
        echo(f"personal data: purged {purged['at'][:16]} by {purged['by']} (counts kept)")
    elif hold:
        echo(f"personal data: under legal hold since {hold['since'][:16]} by {hold['by']}: {hold['reason']}")
    elif state == "purge due":
        echo(f"personal data: retention ended {until}: run `incident purge {incident_id}`")
    elif state == "kept":
        echo(f"personal data: kept until {until} ({retention['days']} days after closing)")
