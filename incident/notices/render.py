"""Render every affected person's notices on both cores, lint them, store them, and write the review bundle."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import weakref
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from markupsafe import escape
from sqlalchemy import text
from sqlmodel import Session

from incident import clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import insert_rows
from incident.errors import IncidentError
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.notices import content, lint, templates
from incident.notices.models import Render, pack_content

BATCH = 500
PARALLEL_FROM = 2000  # below this, a process pool costs more than it saves
LETTER = "letter"


def channels_for(person: dict[str, Any], allowed: list[str]) -> list[str]:
    """The channels this person (or their guardian) can receive, in fallback order, letter last."""
    have = {"email": person["to_email"], "sms": person["to_phone"], "push": person["to_push"]}
    out = [c for c in allowed if have[c]]
    if person["to_address"]:
        out.append(LETTER)
    return out


def variant_key(locale: str, channel: str, audience: str, categories: str) -> str:
    return f"{locale}|{channel}|{audience}|{categories}"


def notice_sha(subject: str, body: str, html: str | None) -> str:
    """The hash an approval binds to, for one notice."""
    return hashlib.sha256("\x1f".join((subject, body, html or "")).encode("utf-8")).hexdigest()


_compiled: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _render(env: Any, name: str, ctx: dict[str, Any]) -> str:
    """templates.render, with each environment's compiled templates kept at hand: a notice renders about a dozen
    templates and Jinja's own cache lookup (an LRU under a lock) costs a few microseconds each time."""
    known = _compiled.setdefault(env, {})
    try:
        template = known.get(name)
        if template is None:
            template = known[name] = env.get_template(name)
        return str(template.render(ctx)).strip()
    except (TemplateError, OverflowError) as exc:  # exactly as templates.render reports them
        raise templates.template_error(exc) from None


def render_person(
    env: Any, static: dict[str, Any], person: dict[str, Any], today: dict[str, str]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """Render one person's partials once, then every channel they can receive from them."""
    loc = person["locale"]
    ctx = content.person_context(static, person, person["ref"], today[loc])
    parts = {name: _render(env, f"{loc}/partials/{name}.txt.j2", ctx) for name in lint.ELEMENTS}
    ctx["parts"] = parts
    subject = _render(env, f"{loc}/subject.txt.j2", ctx)
    ctx["subject"] = subject
    out = []
    for channel in channels_for(person, static["channels"]):
        html = None
        if channel == "email":
            body = _render(env, f"{loc}/email.txt.j2", ctx)
            html = _render(env, f"{loc}/email.html.j2", ctx)
            subj, name = subject, f"{loc}/email"
        elif channel == LETTER:
            html = _render(env, f"{loc}/letter.html.j2", ctx)
            body = "\n\n".join(parts[n] for n in lint.ELEMENTS)
            subj, name = subject, f"{loc}/letter.html.j2"
        elif channel == "push":
            title, _, body = _render(env, f"{loc}/push.txt.j2", ctx).partition("\n")
            subj, body, name = title.strip(), body.strip(), f"{loc}/push.txt.j2"
        else:
            subj, body, name = "", _render(env, f"{loc}/sms.txt.j2", ctx), f"{loc}/sms.txt.j2"
        out.append({"channel": channel, "template": name, "subject": subj, "body": body, "html": html})
    return parts, out


# ---- worker side (runs in a pool process, or inline for small incidents) ------------------------

_worker: dict[str, Any] = {}


def _init_worker(
    workspace: str | None, static: dict[str, Any], today: dict[str, str], secret: str, incident_id: str, render_id: int
) -> None:
    _worker.update(
        env=templates.environment(Path(workspace) if workspace else None),
        static=static,
        today=today,
        data_texts=_data_texts(static),
        secret=secret,
        incident_id=incident_id,
        render_id=render_id,
    )


def _data_texts(static: dict[str, Any]) -> list[str]:
    """Responder text as it can appear in a notice (as written, and HTML-escaped), for the placeholder lint."""
    texts = list(static["actions"])
    for loc in static["locales"].values():
        texts += [loc["incident"]["summary"], loc["incident"]["cause"], loc["incident"]["title"]]
    forms: set[str] = set()
    for t in texts:
        if t:
            forms |= {t, str(escape(t))} | {str(escape(line.strip())) for line in t.splitlines() if line.strip()}
    return sorted(forms, key=len, reverse=True)


def _render_batch(people: list[dict[str, Any]]) -> dict[str, Any]:
    """Render, lint, hash and compress a batch of people's notices; return the rows ready to insert, the batch's
    manifest lines, its counts and one example person per variant (for the review page)."""
    env, static, today = _worker["env"], _worker["static"], _worker["today"]
    officer, render_id, incident_id = static["officer"], _worker["render_id"], _worker["incident_id"]
    rows: list[tuple[Any, ...]] = []
    problems: list[str] = []
    examples: dict[str, dict[str, Any]] = {}
    listed: list[tuple[str, str, str]] = []
    variants: Counter[str] = Counter()
    by_channel: Counter[str] = Counter()
    previous: list[str] = []
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
        for r in rendered:
            problems += lint.lint_notice(
                r,
                parts=parts,
                person=person,
                own=own,
                data_texts=_worker["data_texts"],
                previous_names=previous,
            )
            variant = variant_key(person["locale"], r["channel"], person["audience"], person["categories"])
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
    from incident.notices.bundle import manifest_lines

    return {
        "rows": rows,
        "problems": problems[:20],
        "failed": len(problems),
        "examples": examples,
        "affected": b"".join(affected),
        "variants": variants,
        "by_channel": by_channel,
        "manifest": manifest_lines(listed),
    }


# ---- the use case -------------------------------------------------------------------------------


NOTICE_COLUMNS = (
    "render_id",
    "incident_id",
    "person_id",
    "channel",
    "locale",
    "audience",
    "variant",
    "ref",
    "subject",
    "body",
    "html",
    "sha256",
)  # the order of _render_batch's rows
AFFECTED_COLUMNS = (
    "person_id",
    "audience",
    "subject_name",
    "to_name",
    "to_email",
    "to_phone",
    "to_push",
    "to_address",
    "locale",
    "region",
    "categories",
)


def affected_dicts(session: Session, incident_id: str) -> Iterator[dict[str, Any]]:
    """Stream the snapshot as plain dicts, in person order, without ORM objects."""
    result = session.connection().execute(
        text(f"SELECT {', '.join(AFFECTED_COLUMNS)} FROM affected WHERE incident_id = :iid ORDER BY person_id"),
        {"iid": incident_id},
        execution_options={"stream_results": True, "yield_per": BATCH},
    )
    for row in result:
        yield dict(zip(AFFECTED_COLUMNS, row, strict=True))


def affected_hash(session: Session, incident_id: str) -> str:
    """A hash of the affected set and everything about each person that a notice uses."""
    digest = hashlib.sha256()
    for person in affected_dicts(session, incident_id):
        digest.update(json.dumps([person[c] for c in AFFECTED_COLUMNS], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def fingerprint(
    session: Session, ws: Workspace, incident: incidents.Incident, affected: str | None = None
) -> dict[str, Any]:
    """The hashes of everything a render depends on; an approval goes stale when any of them changes."""
    from incident import catalog

    actions = [e.text for e in incidents.timeline(session, incident.id) if e.kind == "action"]
    facts = json.dumps({**incidents.facts(incident), "actions": actions}, ensure_ascii=False, sort_keys=True)
    return {
        "templates": {k: v for k, v in templates.template_hashes(ws.root).items() if templates.is_notice_template(k)},
        "playbook": content.file_sha(catalog.playbook_path(incident.playbook, ws.root)),
        "categories": content.file_sha(catalog.data_file("categories.yaml", ws.root)),
        "organisation": hashlib.sha256(json.dumps(ws.organisation, sort_keys=True).encode()).hexdigest(),
        "facts": hashlib.sha256(facts.encode()).hexdigest(),
        "affected": affected or affected_hash(session, incident.id),
    }


@dataclass
class RenderResult:
    render_id: int
    notices: int
    people: int
    variants: dict[str, int]
    bundle: Path
    manifest_hash: str
    lint_checks: int
    by_channel: dict[str, int] = field(default_factory=dict)
    lint_failures: int = 0


def _batches(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for person in rows:
        batch.append(person)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _results(
    batches: Iterator[list[dict[str, Any]]],
    people: int,
    ws: Workspace,
    static: dict[str, Any],
    today: dict[str, str],
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


def render_notices(
    session: Session, ws: Workspace, incident_id: str, actor: str, workers: int | None = None
) -> RenderResult:
    """Render every notice of the incident into the database and write review/ID/ (stops on any lint failure)."""
    from incident.notices.bundle import Bundle
    from incident.notices.models import workspace_secret

    incident = incidents.get(session, incident_id, for_update=True)
    if assess.latest(session, incident_id) is None:
        raise IncidentError(f"{incident_id} has not been assessed yet (run `incident assess {incident_id}`)")
    incidents.transition(session, incident, Status.RENDERED, actor)
    conn = session.connection()
    conn.execute(text("DELETE FROM notice WHERE incident_id = :iid"), {"iid": incident_id})
    static = content.static_context(session, ws, incident)
    now = clock.now()
    today = {loc: content.day(now, loc) for loc in static["locales"]}
    record = Render(
        incident_id=incident_id,
        at=now,
        actor=actor,
        manifest_hash="",
        fingerprint="{}",
        notices=0,
        people=0,
        variants="{}",
        lint="{}",
        bundle="",
    )
    session.add(record)
    session.flush()
    assert record.id is not None
    people = int(
        conn.execute(text("SELECT COUNT(*) FROM affected WHERE incident_id = :iid"), {"iid": incident_id}).scalar_one()
    )
    secret = workspace_secret(session)
    bundle = Bundle(ws, incident_id)
    affected_digest = hashlib.sha256()
    variants: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    by_channel: Counter[str] = Counter()
    total = failures = 0

    workers = workers or min(2, os.cpu_count() or 1)
    with bundle.manifest_writer() as manifest:
        for result in _results(
            _batches(affected_dicts(session, incident_id)),
            people,
            ws,
            static,
            today,
            workers,
            secret,
            incident_id,
            record.id,
        ):
            if "fatal" in result:
                raise IncidentError(result["fatal"])
            failures += result["failed"]
            if result["problems"]:
                shown = "; ".join(result["problems"][:3])
                raise IncidentError(f"lint failed, nothing was rendered: {shown}")
            affected_digest.update(result["affected"])
            rows = result["rows"]
            insert_rows(session, "notice", NOTICE_COLUMNS, rows)
            manifest.notices(result["manifest"])
            variants.update(result["variants"])
            by_channel.update(result["by_channel"])
            for key, person in result["examples"].items():
                examples.setdefault(key, person)
            total += len(rows)
        prints = fingerprint(session, ws, incident, affected_digest.hexdigest())
        manifest_hash = manifest.finish(incident_id, now, prints)
    checks = total
    lint_summary = {
        "notices_checked": checks,
        "failures": failures,
        "rules": ["element-missing", "unrendered-placeholder", "length", "foreign-data"],
    }
    bundle.write_index(session, static, today, variants, examples, lint_summary, manifest_hash, incident)
    record.manifest_hash, record.fingerprint = manifest_hash, json.dumps(prints, sort_keys=True)
    record.notices, record.people = total, people
    record.variants, record.lint = json.dumps(variants, ensure_ascii=False), json.dumps(lint_summary)
    record.bundle = str(bundle.folder)
    session.add(record)
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action.NOTICES_RENDERED,
            {
                "render": record.id,
                "notices": total,
                "people": people,
                "manifest": manifest_hash,
                "variants": len(variants),
            },
        ),
        actor,
    )
    return RenderResult(record.id, total, people, variants, bundle.folder, manifest_hash, checks, by_channel, failures)
