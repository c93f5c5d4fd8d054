"""Render every notice of an incident into the database and write the review bundle."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session

from incident import clock
from incident.assess import models as assess
from incident.assess.models import affected_dicts, count_affected
from incident.audit import chain as audit
from incident.config import Workspace
from incident.db import insert_rows
from incident.errors import IncidentError
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.notices import content
from incident.notices.fingerprint import fingerprint
from incident.notices.models import Render, delete_notices
from incident.notices.pool import batches, rendered_batches

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
    held: list[dict[str, Any]] = field(default_factory=list)  # people held back by their own data, and why
    while_sending: str = ""  # the incident's status when it renders while notices are going out
    language: list[str] = field(default_factory=list)  # responder text missing in a language: approval refused
    claims: list[str] = field(default_factory=list)  # claims the record contradicts: approval waits for none


def begin_render(session: Session, incident_id: str, actor: str) -> int:
    """Check the incident can be rendered and record that its render has started; return the render row's id."""
    from incident.notices.models import start_render

    incidents.get(session, incident_id, for_update=True)
    if assess.latest(session, incident_id) is None:
        raise IncidentError(f"{incident_id} has not been assessed yet (run `incident assess {incident_id}`)")
    return start_render(session, incident_id, actor, clock.now())


def abandon_render(session: Session, render_id: int) -> None:
    """Drop a started render row after its render failed (it wrote nothing else: that transaction rolled back)."""
    record = session.get(Render, render_id)
    if record is not None and not record.manifest_hash:
        session.delete(record)


def render_notices(
    session: Session,
    ws: Workspace,
    incident_id: str,
    actor: str,
    workers: int | None = None,
    *,
    render_id: int,
    keep_renders: Collection[int] = (),
) -> RenderResult:
    """Render every notice of the incident into the database and write review/ID/ (stops on a template's lint
    failure; a person whose own data fails a check is held back, the others render). The notices of
    `keep_renders` stay: deliveries still send them or attempts sent them."""
    from incident.notices.bundle import Bundle
    from incident.notices.models import workspace_secret

    incident = incidents.get(session, incident_id, for_update=True)
    if assess.latest(session, incident_id) is None:
        raise IncidentError(f"{incident_id} has not been assessed yet (run `incident assess {incident_id}`)")
    status = Status(incident.status)
    sending = status in (Status.NOTIFYING, Status.NOTIFIED)
    if sending:  # sending goes on; the new render awaits its approval
        incidents.transition(session, incident, status, actor, "notices re-rendered while sending")
    else:
        incidents.transition(session, incident, Status.RENDERED, actor)
    delete_notices(session, incident_id, keep_renders=keep_renders)
    static = content.static_context(session, ws, incident)
    now = clock.now()
    today = now  # the notice's date: each reader sees it on their own clock
    record = session.get(Render, render_id)
    if record is None or record.manifest_hash:
        raise IncidentError(f"{incident_id}: another `notices render` replaced this one; run it again")
    record.at = now
    assert record.id is not None
    people = count_affected(session, incident_id)
    secret = workspace_secret(session)
    bundle = Bundle(ws, incident_id)
    affected_digest = hashlib.sha256()
    variants: Counter[str] = Counter()
    examples: dict[str, dict[str, Any]] = {}
    by_channel: Counter[str] = Counter()
    total = failures = 0
    held: list[dict[str, Any]] = []
    claim_failures: set[str] = set()

    workers = workers or min(2, os.cpu_count() or 1)
    with bundle.manifest_writer() as manifest:
        for result in rendered_batches(
            batches(affected_dicts(session, incident_id)),
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
            held += result["held"]
            claim_failures.update(result["claims"])
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
    from incident.notices.lint import missing_translations, name_allow_list

    locales = sorted({key.split("|")[0] for key in variants})
    language = missing_translations(static["responder_texts"], locales=locales, names=name_allow_list(ws.organisation))
    failures += len(claim_failures)
    lint_summary = {
        "notices_checked": checks,
        "failures": failures + len(language),
        "rules": [
            "element-missing",
            "unrendered-placeholder",
            "length",
            "foreign-data",
            "responder-language",
            "claims",
        ],
        "held": held,
        "language": language,  # global: approval is refused while any stands
        "claims": sorted(claim_failures),
    }
    bundle.write_index(session, static, today, variants, examples, lint_summary, manifest_hash, incident, record.id)
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
    return RenderResult(
        record.id,
        total,
        people,
        variants,
        bundle.folder,
        manifest_hash,
        checks,
        by_channel,
        failures + len(language),
        held,
        status.value if sending else "",
        language,
        sorted(claim_failures),
    )
