"""Rendering rows on SQLite: every affected person's notices, beside a plain Jinja loop over the same templates.

prepare() opens two incidents on the workspace the inventory rows imported (the payment partner leaked bank
cards: over all history, about 20% of the people, and up to mid-2019, about a quarter of that) and assesses
them. Two sizes show whether memory stays flat in the number of people.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from harness import Context, Measure, Result, Row, children_peak_mb
from inventory_steps import SCOPE_CATEGORY, SCOPE_SYSTEM, scope_incident

SMALL_UNTIL = "2019-05-01"  # about a quarter of the payment partner's holdings began before this
CHANNEL_TEMPLATES = {
    "email": ("email.txt.j2", "email.html.j2"),
    "letter": ("letter.html.j2",),
    "push": ("push.txt.j2",),
    "sms": ("sms.txt.j2",),
}


def prepare(ctx: Context) -> dict[str, Any]:
    """Open and assess the two incidents on the imported workspace (not timed)."""
    from incident import db
    from incident.assess import flows as assess_flows
    from incident.config import find_workspace

    ws = find_workspace(ctx.workspace)
    found: dict[str, Any] = {}
    for size, until in (("large", None), ("small", datetime.fromisoformat(SMALL_UNTIL).replace(tzinfo=UTC))):
        incident_id = scope_incident(ws, f"Benchmark render ({size}): payment partner leaked bank cards", until)
        picture = assess_flows.assess_incident(ws, incident_id, "bench")
        found[size] = {"id": incident_id, "people": picture["counts"]["people"]}
    db.engine_for(ws).dispose()
    (ctx.run / "render.json").write_text(json.dumps(found))
    return {"render_people": found["large"]["people"], "render_small_people": found["small"]["people"]}


def _incident(ctx: Context, size: str) -> dict[str, Any]:
    return json.loads((ctx.run / "render.json").read_text())[size]  # type: ignore[no-any-return]


def _baseline(ctx: Context, size: str) -> Measure:
    """The plain loop over the SQLite workspace's affected people (sqlite3, every row fetched)."""
    from incident.assess.models import AFFECTED_COLUMNS
    from incident.config import find_workspace

    incident_id = _incident(ctx, size)["id"]
    conn = sqlite3.connect(ctx.workspace / "incident.db")
    try:
        return plain_render(
            find_workspace(ctx.workspace),
            incident_id,
            lambda: conn.execute(
                f"SELECT {', '.join(AFFECTED_COLUMNS)} FROM affected WHERE incident_id = ? ORDER BY person_id",
                (incident_id,),
            ),
        )
    finally:
        conn.close()


def plain_render(ws: Any, incident_id: str, affected: Callable[[], Iterable[tuple[Any, ...]]]) -> Measure:
    """The same compiled templates, the same per-person context (built once per person, partials rendered once
    and shared by the channels), rendered in a plain single-process loop; nothing checked, hashed or stored.
    `affected` gives the incident's affected rows (AFFECTED_COLUMNS) in person order; the clock includes it."""
    from sqlalchemy import text

    from incident import clock
    from incident.assess.models import AFFECTED_COLUMNS
    from incident.db import unit_of_work
    from incident.incidents import models as incidents
    from incident.notices import content, templates
    from incident.notices.lint import ELEMENTS

    with unit_of_work(ws, write=False) as session:
        static = content.static_context(session, ws, incidents.get(session, incident_id))
        secret = (
            session.connection().execute(text("SELECT value FROM schema_meta WHERE key = 'notice_secret'")).scalar()
            or "baseline-secret"
        )
    now = clock.now()
    today = now  # each reader sees the date on their own clock
    env = templates.environment(ws.root)
    compiled = {
        loc: {
            "parts": {name: env.get_template(f"{loc}/partials/{name}.txt.j2") for name in ELEMENTS},
            "subject": env.get_template(f"{loc}/subject.txt.j2"),
            **{f: env.get_template(f"{loc}/{f}") for files in CHANNEL_TEMPLATES.values() for f in files},
        }
        for loc in static["locales"]
    }
    allowed = static["channels"]
    start = time.perf_counter()
    people = notices = 0
    for row in affected():
        person = dict(zip(AFFECTED_COLUMNS, row, strict=True))
        loc = person["locale"]
        tpl = compiled[loc]
        context = content.person_context(
            static, person, content.notice_ref(secret, incident_id, person["person_id"]), today
        )
        context["parts"] = {name: t.render(context).strip() for name, t in tpl["parts"].items()}
        context["subject"] = tpl["subject"].render(context).strip()
        have = {"email": person["to_email"], "sms": person["to_phone"], "push": person["to_push"]}
        channels = [c for c in allowed if have[c]] + (["letter"] if person["to_address"] else [])
        for channel in channels:
            for name in CHANNEL_TEMPLATES[channel]:
                tpl[name].render(context).strip()
            notices += 1
        people += 1
    seconds = time.perf_counter() - start
    return Measure(seconds, notices, f"{notices:,} notices for {people:,} people in one process")


def _ours(ctx: Context, size: str) -> Measure:
    from incident.config import find_workspace

    return ours_render(find_workspace(ctx.workspace), _incident(ctx, size)["id"])


def ours_render(ws: Any, incident_id: str) -> Measure:
    """notices.render.render_notices in its unit of work: both cores, lint, hashes, rows, manifest, bundle."""
    from incident.notices.flows import render_notices

    start = time.perf_counter()
    result = render_notices(ws, incident_id, "bench")
    seconds = time.perf_counter() - start
    pool = children_peak_mb()
    workers = 2 if pool else 0
    manifest = (result.bundle / "manifest.json").stat().st_size / 1e6
    return Measure(
        seconds,
        result.notices,
        f"{result.notices:,} notices for {result.people:,} people, {len(result.variants)} variants, "
        f"linted and stored, manifest.json {manifest:.0f} MB; peak counts this process plus {workers} "
        f"pool workers at {pool:.0f} MB each",
        helpers_mb=workers * pool,
        extra={"manifest_mb": manifest, "pool_mb": pool},
    )


METHOD = [
    "Render: ours is `notices.render.render_notices` in its unit of work, committed: the affected people streamed "
    "from the database, rendered on both cores by a process pool fed through a bounded queue, every notice "
    "linted, hashed and compressed, the rows written, the manifest and the review bundle written. The baseline "
    "renders exactly the same templates (compiled before the clock starts) for the same people, with the same "
    "per-person context (`content.person_context`), in a plain loop in one process, and keeps nothing. Peak "
    "memory of ours adds each pool worker's peak to the parent's (an upper bound: pages the fork shares are "
    "counted twice).",
]

ROWS = [
    Row("Render notices, SQLite ({render_people:,} people)", "render-baseline", "render-ours", 1.5, 500, repeat=1),
    Row(
        "Render notices, SQLite ({render_small_people:,} people: memory flat?)",
        "render-small-baseline",
        "render-small-ours",
        1.5,
        500,
        repeat=1,
    ),
]

STEPS: dict[str, Callable[[Context], Measure]] = {
    "render-baseline": lambda ctx: _baseline(ctx, "large"),
    "render-ours": lambda ctx: _ours(ctx, "large"),
    "render-small-baseline": lambda ctx: _baseline(ctx, "small"),
    "render-small-ours": lambda ctx: _ours(ctx, "small"),
}


def describe(facts: dict[str, Any]) -> str:
    return (
        f"render: {SCOPE_SYSTEM}/{SCOPE_CATEGORY} incidents of {facts['render_people']:,} and "
        f"{facts['render_small_people']:,} people (processor-breach playbook, email/SMS/push/letter)"
    )


def findings(facts: dict[str, Any], results: dict[str, Result]) -> list[str]:
    large, small = results.get("render-ours"), results.get("render-small-ours")
    if large is None or small is None:
        return []
    pool = (small.measure.extra["pool_mb"], large.measure.extra["pool_mb"])
    parent = (small.peak_mb - small.measure.helpers_mb, large.peak_mb - large.measure.helpers_mb)
    manifests = (small.measure.extra["manifest_mb"], large.measure.extra["manifest_mb"])
    ratio = facts["render_people"] / facts["render_small_people"]
    grown = large.peak_mb - small.peak_mb
    verdict = "flat" if grown < 0.1 * small.peak_mb else "NOT flat"
    return [
        f"- Render memory in the number of people: {small.peak_mb:.0f} MB at {facts['render_small_people']:,} "
        f"people, {large.peak_mb:.0f} MB at {facts['render_people']:,} ({ratio:.1f}× the people, "
        f"{grown:+.0f} MB): {verdict}. The pool workers, which render, peak at {pool[0]:.0f} and "
        f"{pool[1]:.0f} MB; the parent, which writes the rows, at {parent[0]:.0f} and {parent[1]:.0f} MB, "
        f"SQLite's page cache (at most 64 MB) included. manifest.json ({manifests[0]:.0f} and "
        f"{manifests[1]:.0f} MB) is written, hashed and later checked in chunks, never held whole.\n"
    ]
