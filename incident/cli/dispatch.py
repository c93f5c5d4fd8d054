"""Commands that send notices and prove it: dispatch, letters, deliveries."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from incident.cli import state
from incident.errors import ExitCode


def register(app: typer.Typer) -> None:
    app.command("dispatch")(dispatch)
    app.command("letters")(letters)
    app.command("worker")(worker)
    app.command("deliveries")(deliveries)


def _progress() -> tuple[Any, Any]:
    if not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("dispatch"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:.0f}/s"),
        TimeRemainingColumn(),
        transient=True,
    )
    return bar, bar.add_task("dispatch", total=None, rate=0.0)


def dispatch(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    dry_run: Annotated[
        bool, typer.Option(help="Print what would be sent per channel and variant; send nothing")
    ] = False,
    channel: Annotated[str | None, typer.Option(help="Only send on this channel (email, sms, push)")] = None,
    workers: Annotated[int, typer.Option(help="Sending threads", min=1)] = 8,
    hold_unknown: Annotated[
        bool,
        typer.Option(help="Keep attempts interrupted by a crash for a human decision instead of re-sending them once"),
    ] = False,
    release_held: Annotated[bool, typer.Option(help="Re-send the held (unknown) attempts, then dispatch")] = False,
    enqueue_only: Annotated[
        bool,
        typer.Option(
            help="Plan the deliveries and start notifying, but leave the sending to `incident worker` processes"
        ),
    ] = False,
) -> None:
    """Send the approved notices: retries, fallback email → SMS → push → letter, resumable after a crash."""
    from incident.dispatch import flows
    from incident.dispatch.models import DeliveryState

    st = state(ctx)
    ws = st.ws()
    if dry_run:
        plan = flows.dispatch_preview(ws, incident_id, channel)
        total = 0
        for ch, variants in sorted(plan.items()):
            typer.echo(f"{ch}: {sum(variants.values()):,}")
            for variant, n in sorted(variants.items()):
                typer.echo(f"  {n:>9,}  {variant}")
            total += sum(variants.values())
        typer.echo(f"would send {total:,} messages now (nothing was sent)")
        return
    if release_held:
        typer.echo(f"released {flows.release_held(ws, incident_id, st.who())} held deliveries")
    import time

    bar, task = _progress()
    started = time.monotonic()

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(task, completed=done, total=total, rate=done / max(time.monotonic() - started, 1e-6))

    if bar is not None:
        bar.start()
    try:
        report = flows.dispatch(
            ws,
            incident_id,
            st.who(),
            workers=workers,
            channel=channel,
            hold_unknown=hold_unknown,
            progress=progress,
            enqueue_only=enqueue_only,
        )
    finally:
        if bar is not None:
            bar.stop()
    if report.stale:
        typer.echo(
            f"note: the approval is stale ({report.stale}): the deliveries already planned keep sending the approved "
            "notices; nothing new is planned until the notices are approved again",
            err=True,
        )
    if report.recovered_unknown:
        what = "held for a decision (--release-held to re-send)" if hold_unknown else "re-sent once"
        typer.echo(f"{report.recovered_unknown} attempts were in flight when a previous run stopped: {what}")
    typer.echo("attempts: " + (", ".join(f"{k} {v:,}" for k, v in sorted(report.tally.items())) or "none"))
    typer.echo("deliveries: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.states.items())))
    letters_due = report.states.get(DeliveryState.LETTER)
    if letters_due:
        typer.echo(f"{letters_due:,} people need a letter: run `incident letters {incident_id}`")
    if report.notified:
        typer.echo(f"{incident_id}: every person is notified or settled (status 'notified')")
    if report.halted:
        typer.echo(
            f"error: dispatch stopped: {report.halted}; {report.states.get(DeliveryState.PENDING, 0):,} deliveries are "
            f"still pending: fix it and run `incident dispatch {incident_id}` again",
            err=True,
        )
        raise typer.Exit(ExitCode.FAILED)


def letters(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
) -> None:
    """Write printable letters and a mail-merge CSV for people reached only by post."""
    from incident.dispatch import flows

    st = state(ctx)
    batch = flows.letters(st.ws(), incident_id, st.who())
    typer.echo(f"wrote {batch.letters:,} letters to {batch.folder}")
    typer.echo(f"  mail merge: {batch.csv}")
    typer.echo(f"  print all:  {batch.print_file}")


def deliveries(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write to this file (owner-only) instead of stdout")] = None,
) -> None:
    """Export the proof of delivery: every attempt with channel, masked address, times, outcome and reason."""
    from incident.dispatch.flows import export_deliveries

    n = export_deliveries(state(ctx).ws(), incident_id, fmt=fmt, output=output, stdout=sys.stdout)
    if output is not None:
        typer.echo(f"wrote {n:,} attempts to {output}", err=True)


def worker(
    ctx: typer.Context,
    incident_id: Annotated[str | None, typer.Option("--incident", help="Serve only this incident")] = None,
    workers: Annotated[int, typer.Option(help="Sending threads in this process", min=1)] = 8,
    follow: Annotated[bool, typer.Option(help="Keep polling for work instead of exiting when none is left")] = False,
    hold_unknown: Annotated[
        bool, typer.Option(help="Hold attempts taken over from a dead worker instead of re-sending them once")
    ] = False,
) -> None:
    """Send pending notices of notifying incidents; run on any number of hosts sharing one database."""
    from incident.dispatch import flows

    st = state(ctx)
    reports = flows.work(
        st.ws(), st.who(), incident_id=incident_id, workers=workers, hold_unknown=hold_unknown, follow=follow
    )
    for iid, report in reports.items():
        tally = ", ".join(f"{k} {v:,}" for k, v in sorted(report.tally.items())) or "nothing to send"
        typer.echo(f"{iid}: {tally}")
        if report.recovered_unknown:
            typer.echo(f"  took over {report.recovered_unknown} attempts left in flight by a stopped worker")
    if not reports:
        typer.echo("no incident is notifying")
    halted = [f"{iid}: {r.halted}" for iid, r in reports.items() if r.halted]
    if halted:
        typer.echo(
            f"error: dispatch stopped: {'; '.join(halted)} (the rest is still pending; fix it and run the "
            "worker again)",
            err=True,
        )
        raise typer.Exit(ExitCode.FAILED)
