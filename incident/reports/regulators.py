"""Regulator reports: the structured context (aggregates only), the files in each format, filing and submission."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlmodel import Session, select

from incident import assess, audit, catalog, clock, incidents
from incident.config import Workspace
from incident.errors import IncidentError, InvalidArgument
from incident.notices import content, templates
from incident.notices.render import render_person
from incident.reports import aggregates, formats, kinds
from incident.reports.models import Report

FORMATS = ("md", "html", "pdf", "json")


def _both(fn: Any) -> dict[str, Any]:
    """A wording in both languages, keyed zh / en for templates."""
    return {"zh": fn("zh-CN"), "en": fn("en")}


def _pair(by_locale: dict[str, Any]) -> dict[str, Any]:
    return {"zh": by_locale["zh-CN"], "en": by_locale["en"]}


def sample_notice(
    session: Session, ws: Workspace, incident: incidents.Incident, categories: list[str], date: datetime
) -> dict[str, str]:
    """The English email notice as a placeholder person would receive it: the sample a regulator asks for, no PII."""
    static = content.static_context(session, ws, incident)
    person = {
        "person_id": "sample",
        "locale": "en",
        "audience": "self",
        "to_name": "[Name]",
        "subject_name": "[Name]",
        "to_email": "[email address]",
        "to_phone": None,
        "to_push": None,
        "to_address": "[postal address]",
        "categories": ",".join(categories),
        "ref": "[notice reference]",
    }
    env = templates.environment(ws.root)
    parts, rendered = render_person(env, static, person, {loc: content.day(date, loc) for loc in catalog.LOCALES})
    notice = next((r for r in rendered if r["channel"] == "email"), rendered[-1])
    body = notice["body"] if notice["channel"] == "email" else "\n\n".join(parts.values())
    return {"channel": notice["channel"], "subject": notice["subject"], "text": body}


def _sections(
    kind: kinds.ReportKind, stage: str, fields: dict[str, str], prefills: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The sections of this stage, each with the responder's text, a prefilled one, or 'to follow'."""
    own = {s.field for s in kind.sections_at(stage) if s.field}
    for name in fields:
        if name not in own:
            other = [st for s in kind.sections if s.field == name for st in s.stages]
            where = f"belongs to the {kind.key} {'/'.join(other)} report" if other else "is unknown"
            raise IncidentError(
                f"--field {name}: {where}, not {kind.key} {stage} (fields here: {', '.join(sorted(own)) or 'none'})"
            )
    missing = [
        s.field for s in kind.sections_at(stage) if s.field and stage in s.required_at and not fields.get(s.field)
    ]
    if missing:
        raise InvalidArgument(f"the {kind.key} {stage} report needs " + ", ".join(f"--field {m}=TEXT" for m in missing))
    out = []
    for s in kind.sections_at(stage):
        given = fields.get(s.field) if s.field else None
        text = {"zh": given, "en": given} if given else prefills.get(s.prefill) if s.prefill else None
        if text is not None and not (text["zh"] or text["en"]):
            text = None
        fallback = s.if_missing or kind.to_follow
        out.append(
            {
                "key": s.key,
                "title": _both(s.title),
                "field": s.field,
                "given": bool(given),
                "text": text,
                "shown": text or _both(fallback),
                "to_follow": bool(s.field) and text is None and s.if_missing is None,
            }
        )
    return out


def _delay(
    kind: kinds.ReportKind, stage: str, incident: incidents.Incident, at: datetime, reason: str | None
) -> dict[str, Any] | None:
    if kind.delay is None or stage not in kind.delay.stages:
        return {"late": False, "hours": None, "limit": None, "reason": reason, "rule": None} if reason else None
    hours = (at - incident.discovered_at).total_seconds() / 3600
    late = hours > kind.delay.after_hours
    if late and not reason:
        raise IncidentError(
            f"the {kind.key} {stage} report is filed {hours:.1f} h after discovery, more than "
            f"{kind.delay.after_hours:g} h: give --delay-reason TEXT ({kind.delay.rule})"
        )
    return {
        "late": late,
        "hours": round(hours, 1),
        "limit": kind.delay.after_hours,
        "reason": reason,
        "rule": kind.delay.rule,
    }


def report_context(
    session: Session,
    ws: Workspace,
    incident: incidents.Incident,
    view: assess.AssessmentView,
    kind: kinds.ReportKind,
    stage: str,
    fields: dict[str, str],
    delay_reason: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Everything a report template may say: incident facts and aggregates (counts, regions, outcomes), never a
    person's data. The counts are the stored assessment's; the outcomes are the delivery records'."""
    rules = catalog.jurisdictions(ws.root)
    regime = next((r for r in rules.regimes if r.key == kind.regime), None)
    if regime is None:
        raise IncidentError(f"report kind {kind.key}: regime {kind.regime!r} is not in jurisdictions.yaml")
    counts = view.counts
    static = content.static_context(session, ws, incident)
    loc = static["locales"]
    regions = aggregates.by_region(session, incident.id)
    events = assess.anchors(session, incident)
    from incident.inventory.models import systems_by_name

    known = systems_by_name(session, incident.system_list)
    systems = [
        {
            "name": name,
            "description": s.description if s else None,
            "kind": s.kind if s else None,
            "location": s.location if s else None,
        }
        for name in incident.system_list
        for s in [known.get(name)]
    ]
    cats = static["categories"]
    figures = aggregates.regime_figures(counts, regions, regime)
    prefills = {
        "cause": _both(lambda lc: loc[lc]["incident"]["cause"]),
        "summary": _both(lambda lc: loc[lc]["incident"]["summary"]),
        "measures_planned": _both(lambda lc: "\n".join(f"- {m}" for m in loc[lc]["measures_planned"])),
        "connected_systems": {
            "zh": content.clean(incident.connected_systems),
            "en": content.clean(incident.connected_systems),
        },
    }
    fields = {k: content.clean(v) for k, v in fields.items()}
    notified = events["individuals_notified"]
    sample_categories = sorted(figures["by_category"]) or sorted(counts["by_category"])
    grade = next(g for g in rules.grades if g.key == view.assessment.grade)
    return {
        "report": {
            "key": kind.key,
            "title": _both(kind.title),
            "recipient": _both(kind.recipient),
            "stage": stage,
            "stage_name": _both(kind.stages[cast(kinds.Stage, stage)]),
            "generated_at": now.isoformat(),
            "generated": _both(lambda lc: content.moment(now, lc)),
        },
        "org": static["org"],
        "officer": static["officer"],
        "lookup_url": static["lookup_url"],
        "incident": {
            "id": incident.id,
            "title": content.clean(incident.title),
            "status": incident.status,
            "type": _both(lambda lc: loc[lc]["incident"]["type"]),
            "summary": prefills["summary"],
            "cause": prefills["cause"],
            "impact": _both(lambda lc: loc[lc]["incident"]["impact"]),
            "discovered_at": incident.discovered_at.isoformat(),
            "discovered": _both(lambda lc: content.moment(incident.discovered_at, lc)),
            "discovered_by": content.clean(incident.discovered_by),
            "discovered_where": content.clean(incident.discovered_where),
            "window": {
                "from": _both(lambda lc: loc[lc]["incident"]["window_from"]),
                "to": _both(lambda lc: loc[lc]["incident"]["window_to"]),
            },
            "systems": systems,
            "connected_systems": content.clean(incident.connected_systems) or None,
            "police_contacted": incident.police_contacted,
            "handling_ended": _both(lambda lc: content.moment(incident.handling_ended_at, lc))
            if incident.handling_ended_at
            else None,
            "grade": {
                "key": grade.key,
                "name": _both(grade.name),
                "computed": view.assessment.grade_auto,
                "override_reason": view.assessment.grade_reason,
                "reportable": grade.reportable,
            },
        },
        "counts": counts,
        "categories": [
            {
                "key": k,
                "label": _pair(cats[k]["label"]),
                "sensitive": cats[k]["sensitive"],
                "people": n,
                "impact": _pair(cats[k]["impact"]),
            }
            for k, n in sorted(counts["by_category"].items(), key=lambda kv: (-cats[kv[0]]["rank"], kv[0]))
        ],
        "regimes": [aggregates.regime_figures(counts, regions, r) for r in aggregates.regimes_in(counts, ws.root)],
        "regime": figures,
        "deliveries": aggregates.delivery_figures(session, incident.id),
        "notified_at": _both(lambda lc: content.moment(notified, lc)) if notified else None,
        "announcement": {
            **view.announcement,
            "published_at": events["announcement_published"].isoformat() if events["announcement_published"] else None,
        },
        "measures": {
            "actions": static["actions"],
            "done": _both(lambda lc: loc[lc]["measures_done"]),
            "planned": _both(lambda lc: loc[lc]["measures_planned"]),
        },
        "sections": _sections(kind, stage, fields, prefills),
        "fields": fields,
        "delay": _delay(kind, stage, incident, now, content.clean(delay_reason) or None),
        "to_follow": _both(kind.to_follow),
        "sample_notice": sample_notice(session, ws, incident, sample_categories, notified or now)
        if sample_categories
        else None,
    }


# ---- generate, list, submit --------------------------------------------------------------------


@dataclass
class Generated:
    reports: list[Report]
    settles: list[str]  # obligations of this incident that submitting this report settles
    notes: list[str] = field(default_factory=list)


def _settled_by(ws: Workspace, regulator: str, stage: str) -> list[str]:
    source = f"report:{regulator}:{stage}"
    return sorted(
        {ob.key for r in catalog.jurisdictions(ws.root).regimes for ob in r.obligations if source in ob.settled_by}
    )


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
    ctx = report_context(session, ws, incident, view, kind, stage, fields, delay_reason, now)
    env = templates.environment(ws.root)
    markdown = templates.render(env, f"reports/{kind.key}.md.j2", ctx) + "\n"
    data: dict[str, bytes] = {}
    for fmt in dict.fromkeys(fmts):
        if fmt == "md":
            data[fmt] = markdown.encode()
        elif fmt == "json":
            data[fmt] = json.dumps(ctx, ensure_ascii=False, indent=1, sort_keys=True, default=str).encode()
        else:
            lang = "zh-CN" if kind.regime == "cn" else "en"
            page = formats.html_page(env, f"{kind.title(lang)} — {incident_id}", lang, markdown)
            data[fmt] = page.encode() if fmt == "html" else formats.pdf(page)
    folder = ws.path("reports", incident_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
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
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        row.path = str(path)
        rows.append(row)
    audit.record(
        session,
        incident_id,
        audit.Event(
            "report-generated",
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
    return Generated(rows, settles, notes)


def list_reports(session: Session, incident_id: str) -> list[Report]:
    """Every generated report of an incident, oldest first."""
    return list(session.exec(select(Report).where(Report.incident_id == incident_id).order_by(Report.id)))  # type: ignore[arg-type]


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
        .order_by(Report.id.desc())
    ).first()  # type: ignore[union-attr]
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
            "report-submitted",
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
