"""Commands responders use on an incident: open, log, list, show, assess, affected, close."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from incident.cli import print_json, state
from incident.privacy import terminal_safe as safe


def register(app: typer.Typer) -> None:
    for name, fn in (
        ("open", open_),
        ("list", list_),
        ("show", show),
        ("log", log),
        ("assess", assess),
        ("affected", affected),
        ("close", close),
    ):
        app.command(name)(fn)


def _when(text: str | None, option: str) -> Any:
    from incident.clock import parse_when
    from incident.errors import InvalidArgument

    if text is None:
        return None
    try:
        return parse_when(text)
    except ValueError:
        raise InvalidArgument(f"{option}: not an ISO date or time: {text!r}") from None


def _csv(text: str | None) -> list[str] | None:
    return [p.strip() for p in text.split(",") if p.strip()] if text else None


def open_(
    ctx: typer.Context,
    playbook: Annotated[str, typer.Option(help="Playbook key, e.g. database-exfiltration")],
    title: Annotated[str, typer.Option(help="Short title of the incident")],
    systems: Annotated[str, typer.Option(help="Breached systems, comma-separated (names from the inventory)")],
    from_: Annotated[str, typer.Option("--from", help="Start of the exposure window (ISO date/time)")],
    to: Annotated[str, typer.Option(help="End of the exposure window (ISO date/time)")],
    categories: Annotated[str | None, typer.Option(help="Exposed data categories (default: the playbook's)")] = None,
    discovered: Annotated[str | None, typer.Option(help="When it was discovered (default: now)")] = None,
    discovered_by: Annotated[str | None, typer.Option(help="Who discovered it (default: --actor)")] = None,
    where: Annotated[str | None, typer.Option(help="Where it was discovered (site, team, tool)")] = None,
    summary: Annotated[str | None, typer.Option(help="What happened (zh-CN), for notices and reports")] = None,
    summary_en: Annotated[str | None, typer.Option(help="What happened, in English")] = None,
    cause: Annotated[str | None, typer.Option(help="Cause as known so far (zh-CN)")] = None,
    cause_en: Annotated[str | None, typer.Option(help="Cause as known so far, in English")] = None,
    connected: Annotated[str | None, typer.Option(help="Effect on connected systems (GB/T 35273 §10.1)")] = None,
    police: Annotated[bool, typer.Option(help="Law enforcement has been contacted")] = False,
) -> None:
    """Open an incident from a playbook and print its id (INC-YYYY-NNNN)."""
    from incident.incidents.flows import open_incident
    from incident.incidents.service import OpenRequest

    st = state(ctx)
    req = OpenRequest(
        playbook=playbook,
        title=title,
        systems=_csv(systems) or [],
        exposure_from=_when(from_, "--from"),
        exposure_to=_when(to, "--to"),
        categories=_csv(categories),
        discovered_at=_when(discovered, "--discovered"),
        discovered_by=discovered_by,
        discovered_where=where,
        summary=summary,
        summary_en=summary_en,
        cause=cause,
        cause_en=cause_en,
        connected_systems=connected,
        police_contacted=police,
    )
    typer.echo(open_incident(st.ws(), req, st.who()))


def list_(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """List incidents with their status, head-count and grade."""
    from incident.assess.flows import list_incidents

    rows = list_incidents(state(ctx).ws())
    if as_json:
        print_json(rows)
        return
    for r in rows:
        people = "-" if r["people"] is None else f"{r['people']:,}"
        typer.echo(f"{r['id']}  {r['status']:<16} {people:>12} people  {r['grade'] or '-':<18} {safe(r['title'])}")


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


def submission(report: dict[str, Any]) -> str:
    """Whether and when a stored regulator report was submitted."""
    if not report["submitted_at"]:
        return "not submitted"
    return f"submitted {report['submitted_at'][:16]} ref {report['reference'] or '-'}"


def show(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Show an incident: facts, timeline, counts, and every deadline with the time left."""
    from incident.reports.flows import describe

    d = describe(state(ctx).ws(), incident_id)
    if as_json:
        print_json(d)
        return
    typer.echo(f"{d['id']}  {safe(d['title'])}")
    typer.echo(f"status:     {d['status']}")
    typer.echo(f"playbook:   {d['playbook']}")
    typer.echo(f"systems:    {', '.join(d['systems'])}")
    typer.echo(f"categories: {', '.join(d['categories'])}")
    typer.echo(f"exposure:   {d['exposure']['from']} .. {d['exposure']['to']}")
    disc = d["discovered"]
    typer.echo(
        f"discovered: {disc['at']} by {safe(disc['by'])}" + (f" at {safe(disc['where'])}" if disc["where"] else "")
    )
    if d["assessment"]:
        print_assessment(d["assessment"])
    else:
        typer.echo(f"not assessed yet: run `incident assess {d['id']}`")
    n = d["notices"]
    print_review(
        "notices:    ", n, f" ({n['notices']:,} notices, manifest {n['manifest'][:12]})" if n.get("notices") else ""
    )
    dispatch = d["dispatch"]
    if dispatch["deliveries"]:
        typer.echo(
            "dispatch:   "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(dispatch["deliveries"].items()))
            + (f" (re-sent after a crash: {dispatch['unknown_resent']})" if dispatch["unknown_resent"] else "")
        )
        for channel, outcomes in sorted(dispatch["channels"].items()):
            typer.echo(f"  {channel:<7} " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))
    ann = d.get("announcement")
    if ann:
        print_review(
            "announcement: ", ann, f", published {ann['published_at'][:16]}" if ann.get("published_at") else ""
        )
    for r in d.get("reports", []):
        typer.echo(
            f"report:     {r['regulator']} {r['stage']} {r['format']} generated {r['generated_at'][:16]}, "
            f"{submission(r)}"
        )
    typer.echo("timeline:")
    for e in d["timeline"]:
        typer.echo(f"  {e['at'][:19]}  {e['kind']:<8} {safe(e['actor'])}: {safe(e['text'])}")


def log(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    text: Annotated[str, typer.Argument(help="What happened or was done")],
    kind: Annotated[str, typer.Option(help="action | finding | decision (actions feed the notices)")] = "action",
) -> None:
    """Add a timestamped entry to the incident timeline."""
    from incident.incidents.flows import log as add

    st = state(ctx)
    add(st.ws(), incident_id, text, kind, st.who())
    typer.echo(f"logged {kind} on {incident_id}")


def assess(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    reassess: Annotated[bool, typer.Option(help="Take a new snapshot of the affected people")] = False,
    grade: Annotated[str | None, typer.Option(help="Override the CAC grade (needs --reason)")] = None,
    reason: Annotated[str | None, typer.Option(help="Why the grade is overridden")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Determine the affected people, grade the incident, and list every obligation with its due time."""
    from incident.assess.flows import assess_incident

    st = state(ctx)
    result = assess_incident(st.ws(), incident_id, st.who(), reassess=reassess, grade=grade, reason=reason)
    if as_json:
        print_json(result)
    else:
        print_assessment(result)


def affected(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write to this file (owner-only) instead of stdout")] = None,
) -> None:
    """Stream the affected people from the stored snapshot (contains personal data)."""
    from incident.assess.flows import export_affected_to

    n = export_affected_to(state(ctx).ws(), incident_id, fmt, output, sys.stdout)
    if output is not None:
        typer.echo(f"wrote {n} people to {output}", err=True)


def close(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
) -> None:
    """Close an incident (handling ends now if not recorded earlier: the CAC 30-day clock starts)."""
    from incident.incidents.flows import close as do_close

    st = state(ctx)
    do_close(st.ws(), incident_id, st.who())
    typer.echo(f"closed {incident_id}")
