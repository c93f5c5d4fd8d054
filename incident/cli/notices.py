"""Commands for notices: render, review, approve, reject, show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from incident.cli import print_json, state
from incident.cli.output import echo, print_held
from incident.errors import InvalidArgument

notices_app = typer.Typer(
    help="Render notices, review them, approve or reject them.", no_args_is_help=True, rich_markup_mode=None
)


@notices_app.command("render")
def render(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    workers: Annotated[int | None, typer.Option(help="Render processes (default: up to 2 cores)", min=1)] = None,
) -> None:
    """Render every affected person's notices per channel and write the review bundle review/ID/."""
    from incident.notices.flows import render_notices

    st = state(ctx)
    r = render_notices(st.ws(), incident_id, st.who(), workers=workers)
    echo(
        f"rendered {r.notices:,} notices for {r.people:,} people in {len(r.variants)} variants "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(r.by_channel.items()))})"
    )
    echo(f"lint: {r.lint_checks:,} notices checked, {r.lint_failures:,} failures")
    echo(f"claims: {len(r.claims)} failures" + (" (approval is refused until they are fixed)" if r.claims else ""))
    for failure in r.claims:
        echo(f"  {failure}")
    echo(f"review bundle: {r.bundle / 'index.html'}")
    echo(f"manifest sha256: {r.manifest_hash}")
    print_held(r.held)
    for problem in r.language:
        echo(f"lint failure: {problem}")
    if r.language:
        echo(
            f"approval is refused until every text above has both languages: `incident log {incident_id} "
            "--entry N TEXT --en TEXT` (N: the entry's number, or summary / cause), then render again"
        )
    if r.while_sending:
        echo(
            f"note: {incident_id} is {r.while_sending}: the deliveries already planned keep sending the notices they "
            "were approved with; once this render is approved, what is not yet sent carries it and new people are "
            "planned at the next dispatch"
        )


@notices_app.command("approve")
def approve(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed the bundle (legal)")],
    manifest: Annotated[
        str,
        typer.Option(help="The manifest sha256 you reviewed (or its first 12+ hex characters), from the review page"),
    ],
    comment: Annotated[str | None, typer.Option(help="Review comment")] = None,
    announcement: Annotated[
        bool, typer.Option(help="Decide on the public announcement instead of the notices")
    ] = False,
    sign: Annotated[
        Path | None, typer.Option(help="Sign the approval with this private SSH key file (ssh-keygen -Y sign)")
    ] = None,
) -> None:
    """Approve exactly the render you reviewed (named by its manifest hash), or with --announcement the
    announcement; refused when that is not the current render or a render is under way."""
    _decide(ctx, incident_id, reviewer, "approved", comment, announcement, manifest=manifest, sign=sign)


def _decide(
    ctx: typer.Context,
    incident_id: str,
    reviewer: str,
    decision: str,
    comment: str | None,
    announcement: bool,
    *,
    manifest: str | None = None,
    sign: Path | None = None,
) -> None:
    st = state(ctx)
    args: dict[str, Any] = {"decision": decision, "comment": comment, "actor": st.who()}
    args |= {"manifest": manifest, "sign_key": sign}
    if announcement:
        from incident.reports.flows import decide_announcement

        done = decide_announcement(st.ws(), incident_id, reviewer, **args)
    else:
        from incident.notices.flows import decide_notices

        done = decide_notices(st.ws(), incident_id, reviewer, **args)
    what = "announcement" if announcement else "notices"
    if decision != "approved":
        echo(f"rejected {incident_id} {what}: {comment or ''}")
        return
    echo(
        f"approved {incident_id} {what} render {done['render']}, manifest sha256 {done['manifest']} "
        f"(reviewer {reviewer}, {done['at']})"
    )
    if done["signer"]:
        echo(f"signed with {done['signer']}")


@notices_app.command("reject")
def reject(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    reviewer: Annotated[str, typer.Option(help="Who reviewed the bundle (legal)")],
    comment: Annotated[str, typer.Option(help="What must change")],
    announcement: Annotated[bool, typer.Option(help="Reject the public announcement instead of the notices")] = False,
) -> None:
    """Send the notices back (the incident returns to 'assessed'), or with --announcement the announcement."""
    _decide(ctx, incident_id, reviewer, "rejected", comment, announcement)


NOTICE_CHANNELS = ("email", "sms", "push", "letter")


@notices_app.command("show")
def show(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    person: Annotated[str | None, typer.Option(help="Person id (without it: who the render held back)")] = None,
    channel: Annotated[str | None, typer.Option(help="email | sms | push | letter")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Print one person's rendered notice (contains personal data), or without --person who was held back."""
    from incident.notices.flows import held_notices, show_notice

    if person is None:
        held = held_notices(state(ctx).ws(), incident_id)
        if as_json:
            print_json(held)
        elif held:
            print_held(held)
        else:
            echo(f"{incident_id}: nobody is held back")
        return
    if channel is not None and channel not in NOTICE_CHANNELS:
        raise InvalidArgument(f"--channel: {channel[:20]!r} is not a channel (use {' | '.join(NOTICE_CHANNELS)})")
    found = show_notice(state(ctx).ws(), incident_id, person, channel=channel)
    if as_json:
        print_json(found)
        return
    for n in found:
        echo(f"== {n['channel']} ({n['locale']}, {n['audience']}, ref {n['ref']}, sha256 {n['sha256'][:12]})")
        if n["subject"]:
            echo(f"Subject: {n['subject']}")
        echo(n["body"])
        echo("")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(notices_app, name="notices")
