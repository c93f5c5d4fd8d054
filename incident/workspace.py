"""Workspace-level use cases: create a workspace, import the inventory, count it, verify the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from incident import clock
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import unit_of_work
from incident.inventory import ImportReport, import_inventory, stats


def _progress_bar(total: int) -> tuple[Any, Any]:
    import sys

    if total < 8 << 20 or not sys.stderr.isatty():
        return None, None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    return bar, bar.add_task("importing", total=total)


def import_files(
    ws: Workspace,
    actor: str,
    *,
    people: Path | None = None,
    holdings: Path | None = None,
    systems: Path | None = None,
    skip_invalid: bool = False,
    rejects: Path | None = None,
) -> ImportReport:
    """Import the given files in one transaction, with a progress bar on large files."""
    total = sum(p.stat().st_size for p in (people, holdings) if p is not None and p.is_file())
    bar, task = _progress_bar(total)
    if skip_invalid and rejects is None:
        stamp = clock.now().strftime("%Y%m%dT%H%M%S")
        rejects = ws.path("rejected", f"import-{stamp}.csv")
    with unit_of_work(ws) as session:
        if bar is not None:
            bar.start()
        try:
            report = import_inventory(
                session,
                people=people,
                holdings=holdings,
                systems=systems,
                workspace=ws.root,
                skip_invalid=skip_invalid,
                rejects_path=rejects,
                progress=(lambda n: bar.advance(task, n)) if bar is not None else None,
            )
        finally:
            if bar is not None:
                bar.stop()
        audit.record(
            session,
            audit.WORKSPACE_CHAIN,
            audit.Event(
                audit.Action.INVENTORY_IMPORTED,
                {
                    "files": {
                        k: Path(v).name
                        for k, v in (("people", people), ("holdings", holdings), ("systems", systems))
                        if v is not None
                    },
                    "systems": report.systems,
                    "people_read": report.people_read,
                    "people_new": report.people_new,
                    "holdings_read": report.holdings_read,
                    "holdings_new": report.holdings_new,
                    "rejected": report.rejected,
                },
            ),
            actor,
        )
    return report


def inventory_stats(ws: Workspace) -> dict[str, Any]:
    """Count the inventory."""
    with unit_of_work(ws, write=False) as session:
        return stats(session)
