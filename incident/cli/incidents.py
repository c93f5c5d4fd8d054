"""Commands responders use on an incident: open, list, show, log, close."""

from __future__ import annotations

from typing import Annotated

import typer

from incident.cli import print_json, state
from incident.cli.output import echo, parse_time, print_assessment, print_retention, print_review, split_csv, submission


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
    nature: Annotated[
        str | None,
        typer.Option(help="Nature of the breach: confidentiality,integrity,availability (default: the playbook's)"),
    ] = None,
) -> None:
    """Open an incident from a playbook and print its id (INC-YYYY-NNNN)."""
    from incident.incidents.flows import open_incident
    from incident.incidents.service import OpenRequest

    st = state(ctx)
    req = OpenRequest(
        playbook=playbook,
        title=title,
        systems=split_csv(systems) or [],
        exposure_from=parse_time(from_, "--from"),
        exposure_to=parse_time(to, "--to"),
        categories=split_csv(categories),
        discovered_at=parse_time(discovered, "--discovered"),
        discovered_by=discovered_by,
        discovered_where=where,
        summary=summary,
        summary_en=summary_en,
        cause=cause,
        cause_en=cause_en,
        connected_systems=connected,
        police_contacted=police,
        nature=nature,
    )
    echo(open_incident(st.ws(), req, st.who()))


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
        echo(f"{r['id']}  {r['status']:<16} {people:>12} people  {r['grade'] or '-':<18} {r['title']}")


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
    echo(f"{d['id']}  {d['title']}")
    echo(f"status:     {d.get('sending') or d['status']}")
    echo(f"playbook:   {d['playbook']}")
    echo(f"systems:    {', '.join(d['systems'])}")
    echo(f"categories: {', '.join(d['categories'])}")
    echo(f"exposure:   {d['exposure']['from']} .. {d['exposure']['to']}")
    disc = d["discovered"]
    echo(f"discovered: {disc['at']} by {disc['by']}" + (f" at {disc['where']}" if disc["where"] else ""))
    if d["assessment"]:
        print_assessment(d["assessment"])
    else:
        echo(f"not assessed yet: run `incident assess {d['id']}`")
    n = d["notices"]
    print_review(
        "notices:    ", n, f" ({n['notices']:,} notices, manifest {n['manifest'][:12]})" if n.get("notices") else ""
    )
    dispatch = d["dispatch"]
    if dispatch["deliveries"]:
        echo(
            "dispatch:   "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(dispatch["deliveries"].items()))
            + (f" (re-sent after a crash: {dispatch['unknown_resent']})" if dispatch["unknown_resent"] else "")
        )
        for channel, outcomes in sorted(dispatch["channels"].items()):
            echo(f"  {channel:<7} " + ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())))
        echo(f"notified:   {dispatch['notified']:,} (delivered or posted); unreachable {dispatch['unreachable']:,}")
        ltr = dispatch["letters"]
        if any(ltr[k] for k in ("queued", "written", "posted", "returned")):
            echo(
                f"letters:    queued {ltr['queued']:,}, written {ltr['written']:,} (not yet posted), "
                f"posted {ltr['posted']:,}, returned {ltr['returned']:,}"
            )
    ann = d.get("announcement")
    if ann:
        print_review(
            "announcement: ", ann, f", published {ann['published_at'][:16]}" if ann.get("published_at") else ""
        )
    for r in d.get("reports", []):
        echo(
            f"report:     {r['regulator']} {r['stage']} {r['format']} generated {r['generated_at'][:16]}, "
            f"{submission(r)}"
        )
    print_retention(d["retention"], d["id"])
    echo("timeline:")
    for e in d["timeline"]:
        both = " / ".join(t for t in (e["text"], e.get("text_en")) if t)
        echo(f"  #{e['id']} {e['at'][:19]}  {e['kind']:<8} {e['actor']}: {both}")
    echo("containment checklist (playbook):")
    for step in d["containment"]:
        echo(f"  - {step['en']} / {step['zh-CN']}")


def log(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    text: Annotated[str | None, typer.Argument(help="What happened or was done, in Chinese (zh-CN)")] = None,
    en: Annotated[str | None, typer.Option("--en", help="The same, in English (for English notices)")] = None,
    zh: Annotated[str | None, typer.Option("--zh", help="The Chinese text, when you give the English first")] = None,
    entry: Annotated[
        str | None,
        typer.Option(
            help="Give timeline entry N (or the summary / cause) its text in the language(s) given, instead of logging"
        ),
    ] = None,
    kind: Annotated[
        str,
        typer.Option(
            help="action | finding | decision | police-report (actions feed the notices; a police report is recorded)"
        ),
    ] = "action",
    nature: Annotated[
        str | None,
        typer.Option(help="Restate the nature of the breach (confidentiality,integrity,availability); TEXT says why"),
    ] = None,
) -> None:
    """Add a timestamped entry to the incident timeline, in Chinese (TEXT or --zh) and English (--en)."""
    from incident.errors import InvalidArgument
    from incident.incidents.flows import log as add

    if text is not None and zh is not None:
        raise InvalidArgument("--zh: the Chinese text is given twice (as TEXT and --zh): give one")
    st = state(ctx)
    stale = add(
        st.ws(), incident_id, zh if text is None else text, kind, st.who(), text_en=en, entry=entry, nature=nature
    )
    echo(f"updated {entry} on {incident_id}" if entry is not None else f"logged {kind} on {incident_id}")
    if kind == "police-report" and entry is None:
        echo(f"police report recorded on {incident_id}: notices and reports rendered from now on say so")
    if nature is not None:
        echo(f"nature of the breach on {incident_id}: {nature}")
    if stale:
        echo(
            f"note: this makes the approved notices stale ({stale}): deliveries already planned keep sending the "
            "approved text; nothing new is planned until the notices are approved again",
            err=True,
        )


def close(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
) -> None:
    """Close an incident (handling ends now if not recorded earlier: the CAC 30-day clock starts)."""
    from incident.incidents.flows import close as do_close

    st = state(ctx)
    do_close(st.ws(), incident_id, st.who())
    echo(f"closed {incident_id}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    for name, fn in (("open", open_), ("list", list_), ("show", show), ("log", log), ("close", close)):
        app.command(name)(fn)
