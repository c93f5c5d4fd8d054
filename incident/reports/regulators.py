"""Regulator reports: the files in each format, filing and submission."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from incident import catalog, clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.config import Workspace
from incident.errors import IncidentError, InvalidArgument
from incident.files import private_dir, write_private
from incident.incidents import models as incidents
from incident.notices import templates
from incident.reports import aggregates, formats, kinds
from incident.reports.context import report_context, unknown_regions
from incident.reports.models import Report

FORMATS = ("md", "html", "pdf", "json")


@dataclass
class Generated:
    reports: list[Report]
    settles: list[str]  # obligations of this incident that submitting this report settles
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what a reviewer should fix before filing


def _settled_by(ws: Workspace, regulator: str, stage: str) -> list[str]:
    source = f"report:{regulator}:{stage}"
    return sorted(
        {ob.key for r in catalog.jurisdictions(ws.root).regimes for ob in r.obligations if source in ob.settled_by}
    )


def _hold_to_the_record(
    session: Session, ws: Workspace, incident: incidents.Incident, regulator: str, stage: str, markdown: str
) -> None:
    """Refuse a report whose claims the record contradicts: it is a legal statement filed outside the tool, so a
    false one is never written (a marked copy could still be sent by mistake)."""
    from dataclasses import replace

    from incident.notices import claims, content
    from incident.reports.aggregates import delivery_figures

    record = claims.record_of(content.static_context(session, ws, incident))
    told = delivery_figures(session, incident.id)  # what dispatch proves: the counts a report may state
    facts = {"notified": told["notified"], "letters_posted": told["letters"]["posted"]}
    record = replace(record, facts={**record.facts, **facts, "letters_returned": told["letters"]["returned"]})
    artefact = claims.Artefact("report", f"{regulator} {stage}", markdown)
    claims.refuse_if_false([artefact], record, claims.rules(ws.root), f"the {regulator} {stage} report")


def generate(
    session: Session,
    ws: Workspace,
    incident_id: str,
    regulator: str,
    stage: str,
    fmts: list[str],
    fields: dict[str, str],
    delay_reason: str | None,
    actor: str,
) -> Generated:
    """Render a regulator report in each format asked, store each file with its sha256, and record it."""
    kind = kinds.load(regulator, ws.root)
    if stage not in kind.stages:
        raise InvalidArgument(f"--stage: the {regulator} report has the stages {', '.join(kind.stages)}")
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise InvalidArgument(f"--format: use {', '.join(FORMATS)} (got {', '.join(bad) or 'none'})")
    incident = incidents.get(session, incident_id, for_update=True)
    now = clock.now()
    view = aggregates.picture(session, ws, incident)
    ctx = report_context(
        session, ws, incident, view=view, kind=kind, stage=stage, fields=fields, delay_reason=delay_reason, now=now
    )
    env = templates.environment(ws.root)
    lang = "zh-CN" if kind.regime == "cn" else "en"
    head = audit.hand_out(session, incident_id)  # a rewrite after submission shows against the submitted copy
    ctx["audit_chain_head"] = {"seq": head[0], "sha256": head[1]} if head else None
    markdown = (
        templates.render(env, f"reports/{kind.key}.md.j2", ctx)
        + "\n\n"
        + audit.head_line(incident_id, head, lang)
        + "\n"
    )
    _hold_to_the_record(session, ws, incident, kind.key, stage, markdown)
    data: dict[str, bytes] = {}
    for fmt in dict.fromkeys(fmts):
        if fmt == "md":
            data[fmt] = markdown.encode()
        elif fmt == "json":
            data[fmt] = json.dumps(ctx, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode()
        else:
            page = formats.html_page(env, f"{kind.title(lang)} — {incident_id}", lang, markdown)
            data[fmt] = page.encode() if fmt == "html" else formats.pdf(page)
    folder = ws.path("reports", incident_id)
    private_dir(folder, within=ws.root)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    rows = []
    for fmt, blob in data.items():
        row = Report(
            incident_id=incident_id,
            regulator=regulator,
            stage=stage,
            format=fmt,
            at=now,
            actor=actor,
            sha256=hashlib.sha256(blob).hexdigest(),
            path="",
            delay_reason=(ctx["delay"] or {}).get("reason"),
        )
        session.add(row)
        session.flush()
        path = folder / f"{regulator}-{stage}-{stamp}-{row.id}.{fmt}"
        write_private(path, blob, within=ws.root)
        row.path = str(path)
        rows.append(row)
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action.REPORT_GENERATED,
            {
                "regulator": regulator,
                "stage": stage,
                "files": [{"id": r.id, "format": r.format, "sha256": r.sha256} for r in rows],
            },
        ),
        actor,
    )
    settles = [k for k in _settled_by(ws, regulator, stage) if k in {o.key for o in view.obligations}]
    notes = [] if settles else [f"no obligation of {incident_id} requires this report (it is voluntary)"]
    warnings = [
        f"region {code!r} has no known name (pycountry, playbooks/regions/cn.yaml): the report shows the code"
        for code in unknown_regions(ctx)
    ]
    return Generated(rows, settles, notes, warnings)


def submit(
    session: Session,
    ws: Workspace,
    incident_id: str,
    regulator: str,
    stage: str,
    submitted_at: datetime,
    reference: str | None,
    actor: str,
) -> tuple[list[Report], list[str]]:
    """Mark the newest generated report of this kind and stage (every format of it) submitted; settle what it
    discharges. Refuses a time in the future, before the report existed, or late without reasons for the delay."""
    kind = kinds.load(regulator, ws.root)
    incident = incidents.get(session, incident_id, for_update=True)
    if submitted_at > clock.now():
        raise InvalidArgument("--submitted-at: is in the future")
    newest = session.exec(
        select(Report)
        .where(Report.incident_id == incident_id, Report.regulator == regulator, Report.stage == stage)
        .order_by(col(Report.id).desc())
    ).first()
    if newest is None:
        raise IncidentError(
            f"no {regulator} {stage} report of {incident_id} to mark submitted (generate it with "
            f"`incident report {incident_id} --regulator {regulator} --stage {stage}`)"
        )
    rows = list(
        session.exec(
            select(Report).where(
                Report.incident_id == incident_id,
                Report.regulator == regulator,
                Report.stage == stage,
                Report.at == newest.at,
            )
        )
    )
    if newest.submitted_at is not None:
        raise IncidentError(
            f"the {regulator} {stage} report was already marked submitted at "
            f"{newest.submitted_at.isoformat()} (reference {newest.reference or '-'})"
        )
    if submitted_at < newest.at - timedelta(minutes=1):  # a time typed to the minute is still fine
        raise InvalidArgument(f"--submitted-at: before the report was generated ({newest.at.isoformat()})")
    if kind.delay and stage in kind.delay.stages and not newest.delay_reason:
        hours = (submitted_at - incident.discovered_at).total_seconds() / 3600
        if hours > kind.delay.after_hours:
            raise IncidentError(
                f"submitted {hours:.1f} h after discovery, more than {kind.delay.after_hours:g} h, "
                f"but the report gives no reasons for the delay: regenerate it with --delay-reason "
                f"TEXT ({kind.delay.rule})"
            )
    for row in rows:
        row.submitted_at, row.reference = submitted_at, reference
        session.add(row)
    settled = assess.settle_by(
        session,
        incident_id,
        f"report:{regulator}:{stage}",
        actor,
        catalog.jurisdictions(ws.root),
        submitted_at,
        reference,
    )
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action.REPORT_SUBMITTED,
            {
                "regulator": regulator,
                "stage": stage,
                "reports": [r.id for r in rows],
                "reference": reference,
                "submitted_at": submitted_at.isoformat(),
                "settles": settled,
            },
        ),
        actor,
    )
    return rows, settled
