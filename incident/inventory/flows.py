"""Inventory use cases: import the inventory files, count the inventory. Each opens one unit of work."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from incident import clock
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import unit_of_work
from incident.files import check_output
from incident.inventory.importer import ImportReport, OnBytes, import_inventory
from incident.inventory.models import stats

PROGRESS_FROM_BYTES = 8 << 20


@contextmanager
def _progress_bar(total: int) -> Iterator[OnBytes | None]:
    """Show a bar on a terminal's stderr while `total` bytes (8 MiB or more) are imported; yield what advances it."""
    if total < PROGRESS_FROM_BYTES or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
    task = bar.add_task("importing", total=total)
    bar.start()
    try:
        yield lambda n: bar.advance(task, n)
    finally:
        bar.stop()


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
    """Import the files in one transaction and audit it; a bad row refuses all, unless skip_invalid sets it aside."""
    # --skip-invalid without --rejects writes the bad rows to a dated file in the workspace's rejected/ folder.
    total = sum(p.stat().st_size for p in (people, holdings) if p is not None and p.is_file())
    if skip_invalid and rejects is None:
        stamp = clock.now().strftime("%Y%m%dT%H%M%S")
        rejects = ws.path("rejected", f"import-{stamp}.csv")
    elif rejects is not None:
        check_output(rejects)
    with unit_of_work(ws) as session:
        with _progress_bar(total) as progress:
            report = import_inventory(
                session,
                people=people,
                holdings=holdings,
                systems=systems,
                workspace=ws.root,
                skip_invalid=skip_invalid,
                rejects_path=rejects,
                progress=progress,
            )
        audit.record(session, audit.WORKSPACE_CHAIN, _imported_event(report, people, holdings, systems), actor)
    return report


def _imported_event(
    report: ImportReport, people: Path | None, holdings: Path | None, systems: Path | None
) -> audit.Event:
    """The audit event of an import: the files' names (never their folders) and what each step counted."""
    files = {
        k: Path(v).name for k, v in (("people", people), ("holdings", holdings), ("systems", systems)) if v is not None
    }
    return audit.Event(
        audit.Action.INVENTORY_IMPORTED,
        {
            "files": files,
            "systems": report.systems,
            "people_read": report.people_read,
            "people_new": report.people_new,
            "holdings_read": report.holdings_read,
            "holdings_new": report.holdings_new,
            "rejected": report.rejected,
        },
    )


def inventory_stats(ws: Workspace) -> dict[str, Any]:
    """Count the inventory: people, holdings by system and category, children, cancelled, unreachable."""
    with unit_of_work(ws, write=False) as session:
        return stats(session)
