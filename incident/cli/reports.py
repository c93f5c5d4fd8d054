"""Commands for what the public and regulators receive: announce, report, status, settle."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from incident.cli import print_json, state
from incident.cli.output import echo
from incident.errors import ExitCode, InvalidArgument


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("announce")(announce)
    app.command("report")(report)
    app.command("status")(status)
    app.command("settle")(settle)


def parse_time(text: str | None, option: str) -> Any:
    from incident.cli.output import parse_time as parse

    return parse(text, option)


def announce(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    publish: Annotated[
        bool,
        typer.Option(
            help="Publish the approved announcement to public/ID/ and send it to the "
            "[announcement] targets of incident.toml"
        ),
    ] = False,
) -> None:
    """Render the public announcement (substitute notice) in zh-CN and en, HTML and Markdown, for review; with
    --publish, post the approved one."""
    from incident.reports import flows as use

    st = state(ctx)
    ws = st.ws()
    if publish:
        done = use.publish_announcement(ws, incident_id, st.who())
        echo(
            f"{'published' if done.first_time else 'published again'} {incident_id} announcement "
            f"(first published {done.published_at[:16].replace('T', ' ')}Z) to {done.folder}"
        )
        for path in done.files:
            echo(f"  {path}")
        for send in done.sends:
            echo(f"  target {send['target']}: {send['outcome']}" + (f" ({send['reason']})" if send["reason"] else ""))
        if done.resent:
            echo(f"{done.resent} announcement send(s) were in flight when a previous run stopped: re-sent once")
        if done.failed:
            echo(
                f"error: {len(done.failed)} announcement target(s) failed; run `incident announce "
                f"{incident_id} --publish` again to retry them",
                err=True,
            )
            raise typer.Exit(ExitCode.FAILED)
        return
    result = use.announce(ws, incident_id, st.who())
    echo(f"announcement: {'required' if result.required else 'not required (voluntary)'}")
    for reason in result.reasons:
        echo(f"  - {reason}")
    echo(f"rendered for review in {result.folder}")
    for path in result.files.values():
        echo(f"  {path}")
    echo(f"manifest: {result.manifest} (sha256 {result.manifest_hash})")
    echo(
        f"next: incident notices approve {incident_id} --announcement --reviewer NAME, then "
        f"incident announce {incident_id} --publish"
    )


def _fields(pairs: list[str]) -> dict[str, str]:

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidArgument(f"--field: use KEY=TEXT (got {pair!r})")
        out[key.strip()] = value
    return out


def report(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    regulator: Annotated[
        str | None, typer.Option(help="Report kind: cn-cac, eu-gdpr, us-ca-ag, us-tx-ag (files in playbooks/reports/)")
    ] = None,
    stage: Annotated[str, typer.Option(help="initial | update | final")] = "initial",
    fmt: Annotated[list[str] | None, typer.Option("--format", help="md, html, pdf or json; repeat for several")] = None,
    field: Annotated[list[str] | None, typer.Option(help="A responder-supplied section, KEY=TEXT (repeatable)")] = None,
    delay_reason: Annotated[str | None, typer.Option(help="Why the report is late (GDPR art. 33(1))")] = None,
    list_: Annotated[bool, typer.Option("--list", help="Show what was generated and submitted, when")] = False,
    submitted_at: Annotated[
        str | None,
        typer.Option(
            help="Mark the newest report of --regulator/--stage submitted at this ISO time (settles its obligations)"
        ),
    ] = None,
    reference: Annotated[str | None, typer.Option(help="The regulator's case or receipt number")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output (with --list)")] = False,
) -> None:
    """Generate a regulator report from the incident's aggregates, list the reports, or mark one submitted."""
    from incident.reports import flows as use

    st = state(ctx)
    ws = st.ws()
    if list_:
        rows = use.list_reports(ws, incident_id)
        if as_json:
            print_json(rows)
            return
        from incident.cli.output import submission

        for r in rows:
            echo(
                f"{r['id']:>4}  {r['regulator']:<9} {r['stage']:<7} {r['format']:<4} "
                f"{r['generated_at'][:19]}  sha256 {r['sha256'][:12]}  {submission(r)}  {r['path']}"
            )
        if not rows:
            echo(f"no reports generated for {incident_id}")
        return
    if regulator is None:
        raise InvalidArgument("--regulator: name the report kind (or use --list)")
    if reference is not None and submitted_at is None:
        raise InvalidArgument("--reference: goes with --submitted-at")
    if submitted_at is not None:
        ids, settled = use.submit_report(
            ws,
            incident_id,
            regulator,
            stage=stage,
            submitted_at=parse_time(submitted_at, "--submitted-at"),
            reference=reference,
            actor=st.who(),
        )
        echo(f"marked {regulator} {stage} submitted (report files {', '.join(map(str, ids))})")
        echo("settled: " + (", ".join(settled) or "no obligation names this report"))
        return
    made = use.generate_report(
        ws,
        incident_id,
        regulator,
        stage=stage,
        formats=fmt or ["md"],
        fields=_fields(field or []),
        delay_reason=delay_reason,
        actor=st.who(),
    )
    for r in made.reports:
        echo(f"{r.path}  (sha256 {r.sha256[:12]})")
    if made.settles:
        echo(
            f"once filed: incident report {incident_id} --regulator {regulator} --stage {stage} "
            f"--submitted-at ISO --reference REF  (settles {', '.join(made.settles)})"
        )
    for note in made.notes:
        echo(f"note: {note}")
    for warning in made.warnings:
        echo(f"warning: {warning}", err=True)


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
    notify: Annotated[
        bool,
        typer.Option(
            help="Warn the [oncall] url of incident.toml about obligations within margin_hours or overdue (once each)"
        ),
    ] = False,
) -> None:
    """The deadline board: every obligation of every open incident with its due time, time left and state. Exits
    4 when anything is overdue (for cron)."""
    from incident.cli.output import print_obligations, print_retention
    from incident.reports import flows as use

    st = state(ctx)
    board = use.status_board(st.ws(), st.who(), notify=notify)
    if as_json:
        print_json(board.as_json())
    else:
        echo(
            f"deadline board at {board.now[:16].replace('T', ' ')}Z: {len(board.incidents)} incident(s), "
            f"{board.overdue} overdue"
        )
        for inc in board.incidents:
            echo(f"{inc['id']}  {inc['status']:<16} {inc['title']}")
            if inc.get("sending"):
                echo(f"  {inc['sending']}")
            if not inc["assessed"]:
                echo(f"  not assessed yet: run `incident assess {inc['id']}`")
            print_obligations(inc["obligations"])
            print_retention(inc["retention"], inc["id"])
        for w in board.warnings:
            echo(f"warned {w['target']}: {w['incident']} {w['key']} {w['level']}: {w['outcome']}")
        if board.resent:
            echo(f"{board.resent} on-call warning(s) were in flight when a previous run stopped: re-sent once")
    for w in board.failed_warnings:
        echo(f"error: on-call warning for {w['incident']} {w['key']} failed: {w['reason']}", err=True)
    if board.overdue:
        raise typer.Exit(ExitCode.OVERDUE)
    if board.failed_warnings:
        raise typer.Exit(ExitCode.FAILED)


def settle(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    key: Annotated[str, typer.Argument(help="Obligation key, e.g. ny-regulators")],
    at: Annotated[str | None, typer.Option(help="When it was done (ISO; default now)")] = None,
    reference: Annotated[str | None, typer.Option(help="A receipt, case number or where the proof is")] = None,
) -> None:
    """Mark an obligation done by hand (e.g. a regulator notified outside this tool)."""
    from incident.reports import flows as use

    st = state(ctx)
    done = use.settle_obligation(
        st.ws(), incident_id, key, actor=st.who(), at=parse_time(at, "--at"), reference=reference
    )
    echo(
        f"settled {incident_id} {done['key']} at {done['at'][:16].replace('T', ' ')}Z"
        + (f" (reference {done['reference']})" if done["reference"] else "")
    )
