"""Commands that send notices and prove it: dispatch, letters, deliveries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from incident.cli import state
from incident.cli.output import echo, stderr_is_terminal, terminal_stream
from incident.errors import ExitCode

BLOCKED = (
    "the deliveries already planned keep sending the notices they were approved with (the list above); nothing "
    "new is planned (new people, new content) until the current render is approved: "
    "`incident notices render ID`, then `incident notices approve ID --manifest SHA256`"
)


def register(app: typer.Typer) -> None:
    app.command("dispatch")(dispatch)
    app.command("letters")(letters)
    app.command("worker")(worker)
    app.command("deliveries")(deliveries)


def _progress() -> tuple[Any, Any]:
    if not stderr_is_terminal():
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
        plan, blocked = flows.dispatch_preview(ws, incident_id, channel)
        total = 0
        for ch, variants in sorted(plan.items()):
            echo(f"{ch}: {sum(variants.values()):,}")
            for variant, n in sorted(variants.items()):
                echo(f"  {n:>9,}  {variant}")
            total += sum(variants.values())
        echo(f"would send {total:,} messages now (nothing was sent)")
        if blocked:
            echo(f"note: new plans are blocked: {blocked}: {BLOCKED}", err=True)
        return
    if release_held:
        echo(f"released {flows.release_held(ws, incident_id, st.who())} held deliveries")
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
        echo(f"note: new plans are blocked: {report.stale}: {BLOCKED}", err=True)
    if report.rebound:
        echo(f"{report.rebound:,} deliveries not yet sent now carry the newly approved notices")
    if report.recovered_unknown:
        what = "held for a decision (--release-held to re-send)" if hold_unknown else "re-sent once"
        echo(f"{report.recovered_unknown} attempts were in flight when a previous run stopped: {what}")
    echo("attempts: " + (", ".join(f"{k} {v:,}" for k, v in sorted(report.tally.items())) or "none"))
    echo("deliveries: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.states.items())))
    letters_due = report.states.get(DeliveryState.LETTER)
    if letters_due:
        echo(f"{letters_due:,} people need a letter: run `incident letters {incident_id}`")
    if report.notified:
        echo(f"{incident_id}: every person is notified or settled (status 'notified')")
    if report.halted:
        echo(
            f"error: dispatch stopped: {report.halted}; {report.states.get(DeliveryState.PENDING, 0):,} deliveries are "
            f"still pending: fix it and run `incident dispatch {incident_id}` again",
            err=True,
        )
        raise typer.Exit(ExitCode.FAILED)


def letters(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    posted_at: Annotated[
        str | None, typer.Option("--posted-at", help="ISO time the mail house confirmed a batch went into the post")
    ] = None,
    batch: Annotated[
        int | None, typer.Option("--batch", help="The batch --posted-at confirms (default: the one waiting)")
    ] = None,
    returned: Annotated[
        Path | None, typer.Option("--returned", help="CSV of letter references (a 'ref' column) the post brought back")
    ] = None,
) -> None:
    """Write the letters people reached only by post get; record when the mail house posted them and which came back."""
    from incident.cli.output import parse_time
    from incident.dispatch import flows
    from incident.errors import InvalidArgument

    st = state(ctx)
    if posted_at is not None and returned is not None:
        raise InvalidArgument("--posted-at and --returned: record one at a time")
    if batch is not None and posted_at is None:
        raise InvalidArgument("--batch: only with --posted-at (the batch the mail house confirmed)")
    if posted_at is not None:
        posted, notified = flows.letters_posted(
            st.ws(), incident_id, posted_at=parse_time(posted_at, "--posted-at"), batch=batch, actor=st.who()
        )
        when = posted.posted_at.isoformat(timespec="seconds")
        if posted.already:
            echo(f"batch {posted.batch} was already recorded as posted at {when}: nothing changed")
        else:
            echo(f"batch {posted.batch}: {posted.letters:,} letters posted at {when}")
        if notified:
            echo(f"{incident_id} is notified: every person is told")
        return
    if returned is not None:
        now, again = flows.letters_returned(st.ws(), incident_id, returned, st.who())
        echo(
            f"{now:,} letters returned: their people count as unreachable"
            + (f" ({again:,} already recorded)" if again else "")
        )
        return
    written = flows.letters(st.ws(), incident_id, st.who())
    if written.batch is None:
        echo("wrote 0 letters: none is waiting")
        return
    echo(f"wrote {written.letters:,} letters to {written.folder} as batch {written.batch} (written, not yet posted)")
    echo(f"  mail merge: {written.csv}")
    echo(f"  print all:  {written.print_file}")
    echo(
        f"once the mail house confirms the posting: `incident letters {incident_id} --posted-at ISO --batch "
        f"{written.batch}`"
    )


def deliveries(
    ctx: typer.Context,
    incident_id: Annotated[str, typer.Argument(help="Incident id")],
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl")] = "csv",
    output: Annotated[Path | None, typer.Option(help="Write to this file (owner-only) instead of stdout")] = None,
) -> None:
    """Export the proof of delivery: every attempt with channel, masked address, times, outcome and reason."""
    from incident.dispatch.flows import export_deliveries

    n = export_deliveries(state(ctx).ws(), incident_id, fmt=fmt, output=output, stdout=terminal_stream())
    if output is not None:
        echo(f"wrote {n:,} attempts to {output}", err=True)


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
        echo(f"{iid}: {tally}")
        if report.recovered_unknown:
            echo(f"  took over {report.recovered_unknown} attempts left in flight by a stopped worker")
        if report.rebound or report.planned:
            echo(f"  newly approved notices: {report.rebound:,} moved to them, {report.planned:,} people planned")
        if report.stale:
            echo(f"  note: new plans are blocked: {report.stale}", err=True)
    if not reports:
        echo("no incident is notifying")
    halted = [f"{iid}: {r.halted}" for iid, r in reports.items() if r.halted]
    if halted:
        echo(
            f"error: dispatch stopped: {'; '.join(halted)} (the rest is still pending; fix it and run the "
            "worker again)",
            err=True,
        )
        raise typer.Exit(ExitCode.FAILED)
