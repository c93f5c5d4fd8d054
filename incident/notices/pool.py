"""Rendering in batches on a process pool: each worker renders, lints, hashes and compresses a batch of people."""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from markupsafe import escape

from incident.assess.models import AFFECTED_COLUMNS
from incident.config import Workspace
from incident.errors import IncidentError
from incident.notices import claims, content, lint, templates
from incident.notices.compose import render_person, variant_key
from incident.notices.models import notice_sha, pack_content

BATCH = 500


PARALLEL_FROM = 2000  # below this, a process pool costs more than it saves


_worker: dict[str, Any] = {}


def _init_worker(
    workspace: str | None, static: dict[str, Any], today: datetime, secret: str, incident_id: str, render_id: int
) -> None:
    _worker.update(
        env=templates.environment(Path(workspace) if workspace else None),
        static=static,
        today=today,
        data_texts=_data_texts(static),
        secret=secret,
        incident_id=incident_id,
        render_id=render_id,
        claim_rules=claims.rules(Path(workspace) if workspace else None),
    )


def claim_failures(
    rendered: dict[str, Any], person: dict[str, Any], variant: str, person_texts: list[str]
) -> list[str]:
    """The claims lint on one rendered notice (subject, text and HTML), the person's own fields taken out: a claim
    is the template's or the responder's, never a name's."""
    record = claims.record_of(_worker["static"], person["categories"])
    parts = [("", rendered["subject"]), ("", rendered["body"])]
    if rendered["html"]:
        parts.append((" (HTML)", claims.html_text(rendered["html"])))
    found: list[str] = []
    for suffix, text in parts:
        neutral = lint._sentinel(text, person_texts) or ""
        artefact = claims.Artefact("notices", rendered["template"] + suffix, neutral, variant, person["locale"])
        found += [str(f) for f in claims.lint(artefact, record, _worker["claim_rules"])]
    return found


def _data_texts(static: dict[str, Any]) -> list[str]:
    """Responder text as it can appear in a notice (as written, and HTML-escaped), for the placeholder lint."""
    texts: list[str] = []
    for loc in static["locales"].values():
        texts += [*loc["actions"], loc["incident"]["summary"], loc["incident"]["cause"], loc["incident"]["title"]]
    forms: set[str] = set()
    for t in texts:
        if t:
            forms |= {t, str(escape(t))} | {str(escape(line.strip())) for line in t.splitlines() if line.strip()}
    return sorted(forms, key=len, reverse=True)


def _person_texts(person: dict[str, Any]) -> list[str]:
    """The person's own fields as a notice can show them (as written, cleaned, line by line, HTML-escaped): lint
    treats these as data, never as template residue."""
    texts = [person[k] for k in ("to_email", "to_phone", "person_id") if person[k] and len(person[k]) >= 3]
    for key in ("to_name", "subject_name", "to_address"):
        value = content.clean(person[key]) if person[key] else ""
        if value:
            texts += [value, *(line.strip() for line in value.splitlines() if line.strip())]
    forms = {t for t in texts if t} | {str(escape(t)) for t in texts if t}
    return sorted(forms, key=len, reverse=True)


def _render_batch(people: list[dict[str, Any]]) -> dict[str, Any]:
    """Render, lint, hash and compress a batch of people's notices; return the rows ready to insert, the batch's
    manifest lines, its counts and one example person per variant (for the review page)."""
    env, static, today = _worker["env"], _worker["static"], _worker["today"]
    officer, render_id, incident_id = static["officer"], _worker["render_id"], _worker["incident_id"]
    rows: list[tuple[Any, ...]] = []
    problems: list[str] = []
    held: list[dict[str, Any]] = []  # people whose own data fails a check: their notices are held back
    examples: dict[str, dict[str, Any]] = {}
    listed: list[tuple[str, str, str]] = []
    variants: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    previous: list[str] = []
    claimed: dict[str, list[str]] = {}  # the claims lint runs once per variant: claims differ only by variant
    affected = []  # this batch's lines of the affected-set hash (see affected_hash), hashed in order by the parent
    for person in people:
        affected.append(json.dumps([person[c] for c in AFFECTED_COLUMNS], ensure_ascii=False).encode() + b"\n")
        person["ref"] = content.notice_ref(_worker["secret"], _worker["incident_id"], person["person_id"])
        try:
            parts, rendered = render_person(env, static, person, today)
        except IncidentError as exc:
            return {"fatal": str(exc)}
        own = {
            "emails": {e.lower() for e in (person["to_email"], officer.get("email")) if e},
            "phones": {p for p in (person["to_phone"],) if p},
        }
        own_texts = _person_texts(person)
        theirs: list[str] = []
        for r in rendered:
            template, data = lint.lint_person_notice(
                r,
                parts=parts,
                person=person,
                own=own,
                data_texts=_worker["data_texts"],
                previous_names=previous,
                person_texts=own_texts,
            )
            problems += template
            theirs += data
        if theirs and not problems:
            held.append({"person_id": person["person_id"], "problems": sorted(set(theirs))})
        for r in rendered if not theirs else ():
            variant = variant_key(person["locale"], r["channel"], person["audience"], person["categories"])
            if variant not in claimed:
                claimed[variant] = claim_failures(r, person, variant, own_texts)
            examples.setdefault(variant, person)
            variants[variant] += 1
            by_channel[r["channel"]] += 1
            sha = notice_sha(r["subject"], r["body"], r["html"])
            rows.append(
                (
                    render_id,
                    incident_id,
                    person["person_id"],
                    r["channel"],
                    person["locale"],
                    person["audience"],
                    variant,
                    person["ref"],
                    r["subject"],
                    *pack_content(r["body"], r["html"]),
                    sha,
                )
            )
            listed.append((person["person_id"], r["channel"], sha))
        previous = [n for n in (person["to_name"], person["subject_name"]) if n]
        if problems:
            break
    from incident.notices.manifest import manifest_lines

    return {
        "rows": rows,
        "problems": problems[:20],
        "failed": len(problems) + sum(len(h["problems"]) for h in held),
        "held": held,
        "claims": sorted({f for found in claimed.values() for f in found}),
        "examples": examples,
        "affected": b"".join(affected),
        "variants": variants,
        "by_channel": by_channel,
        "manifest": manifest_lines(listed),
    }


def batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for person in rows:
        batch.append(person)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def rendered_batches(
    batches: Iterator[list[dict[str, Any]]],
    people: int,
    ws: Workspace,
    static: dict[str, Any],
    today: datetime,
    workers: int,
    secret: str,
    incident_id: str,
    render_id: int,
) -> Iterator[dict[str, Any]]:
    """Render batches in order; on both cores for large incidents, with a bounded queue (flat memory)."""
    setup = (str(ws.root), static, today, secret, incident_id, render_id)
    if people < PARALLEL_FROM or workers <= 1:
        _init_worker(*setup)
        for batch in batches:
            yield _render_batch(batch)
        return
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=setup) as pool:
        pending: deque[Future[dict[str, Any]]] = deque()
        for batch in batches:
            pending.append(pool.submit(_render_batch, batch))
            if len(pending) >= workers * 3:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
