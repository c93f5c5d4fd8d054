"""How the CLI prints what several commands share: times given as options, obligations, reviews, assessments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

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
        typer.echo(f"  {o['state']:<17} {due:<18} {_left(o['left_seconds']):<24} {o['key']:<22} {o['title']}")


def print_assessment(a: dict[str, Any]) -> None:
    """Print an assessment for humans."""
    c = a["counts"]
    typer.echo(f"affected people:   {c['people']:,}  ({c['records']:,} exposed records)")
    typer.echo(f"  sensitive:       {c['sensitive']:,}")
    typer.echo(f"  children (<14):  {c['children']:,}  (told through their guardians)")
    typer.echo(f"  cancelled:       {c['cancelled']:,}")
    typer.echo(f"  no usable channel: {c['no_usable_channel']:,}   letter only: {c['letter_only']:,}")
    typer.echo("  by region:       " + ", ".join(f"{k} {v:,}" for k, v in c["by_region"].items()))
    typer.echo("  by category:     " + ", ".join(f"{k} {v:,}" for k, v in c["by_category"].items()))
    g = a["grade"]
    override = f" (override of {g['computed']}: {g['override_reason']})" if g["override_reason"] else ""
    typer.echo(f"grade (CAC 分级指南): {g['key']} / {g['name']}{override}")
    typer.echo("regimes:           " + ", ".join(f"{r['key']} ({r['residents']:,})" for r in a["regimes"]))
    n = a["individual_notice"]
    typer.echo(f"individual notice: {'required' if n['required'] else 'not required'} ({n['reason']})")
    ann = a["announcement"]
    typer.echo(f"announcement:      {'required' if ann['required'] else 'not required'}")
    for reason in ann["reasons"]:
        typer.echo(f"  - {reason}")
    typer.echo("obligations:")
    print_obligations(a["obligations"])


def print_review(label: str, review: dict[str, Any], extra: str) -> None:
    """Print where a review stands (notices or announcement) and what changed since its approval."""
    by = f" by {review['reviewer']} at {review['at'][:16]}" if review.get("reviewer") else ""
    typer.echo(f"{label}{review['state']}{by}{extra}")
    for change in review["changes"]:
        typer.echo(f"  changed since approval: {change}")
    print_held(review.get("held") or [])


def print_held(held: list[dict[str, Any]]) -> None:
    """Name each person a render held back (their own data failed a check) and why: they are unreached."""
    from incident.privacy import terminal_safe

    if held:
        typer.echo(f"  held back: {len(held):,} people (no notice until their data is fixed and re-rendered)")
    for h in held:
        typer.echo(f"  held back: {terminal_safe(h['person_id'])}: {terminal_safe('; '.join(h['problems']))}")


def submission(report: dict[str, Any]) -> str:
    """Whether and when a stored regulator report was submitted."""
    if not report["submitted_at"]:
        return "not submitted"
    return f"submitted {report['submitted_at'][:16]} ref {report['reference'] or '-'}"
