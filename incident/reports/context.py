"""What a regulator report may say: incident facts and aggregates (counts, regions, outcomes), never a person's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlmodel import Session

from incident import catalog
from incident.assess.obligations import anchors
from incident.assess.picture import AssessmentView
from incident.config import Workspace
from incident.errors import IncidentError, InvalidArgument
from incident.incidents import models as incidents
from incident.notices import content, templates
from incident.notices.compose import render_person
from incident.reports import aggregates, kinds


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
    return {"channel": notice["channel"], "subject": notice["subject"], "text": templates.markdown_code(body)}


def _check_fields(kind: kinds.ReportKind, stage: str, fields: dict[str, str]) -> None:
    """Every --field belongs to this report and stage, and every field the stage requires is given."""
    own = {s.field for s in kind.sections_at(stage) if s.field}
    for name in fields:
        if name not in own:
            other = [st for s in kind.sections if s.field == name for st in s.stages]
            where = f"belongs to the {kind.key} {'/'.join(other)} report" if other else "is unknown"
            raise InvalidArgument(
                f"--field {name}: {where}, not {kind.key} {stage} (fields here: {', '.join(sorted(own)) or 'none'})"
            )
    missing = [
        s.field for s in kind.sections_at(stage) if s.field and stage in s.required_at and not fields.get(s.field)
    ]
    if missing:
        raise InvalidArgument(f"the {kind.key} {stage} report needs " + ", ".join(f"--field {m}=TEXT" for m in missing))


def _sections(
    kind: kinds.ReportKind, stage: str, fields: dict[str, str], prefills: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The sections of this stage, each with the responder's text, a prefilled one, or 'to follow'."""
    _check_fields(kind, stage, fields)
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


def _systems(session: Session, incident: incidents.Incident) -> list[dict[str, Any]]:
    """The breached systems as the inventory describes them (GB/T 35273 §10.1: the systems involved)."""
    from incident.inventory.models import systems_by_name

    known = systems_by_name(session, incident.system_list)
    return [
        {
            "name": name,
            "description": s.description if s else None,
            "kind": s.kind if s else None,
            "location": s.location if s else None,
        }
        for name in incident.system_list
        for s in [known.get(name)]
    ]


def _prefills(incident: incidents.Incident, loc: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Section texts the record already holds, so the responder need not type them again."""
    return {
        "cause": _both(lambda lc: loc[lc]["incident"]["cause"]),
        "summary": _both(lambda lc: loc[lc]["incident"]["summary"]),
        "measures_planned": _both(
            lambda lc: templates.MarkdownSafe(
                "\n".join(f"- {templates.markdown_escape(m)}" for m in loc[lc]["measures_planned"])
            )
        ),
        "connected_systems": {
            "zh": content.clean(incident.connected_systems),
            "en": content.clean(incident.connected_systems),
        },
    }


def report_context(
    session: Session,
    ws: Workspace,
    incident: incidents.Incident,
    *,
    view: AssessmentView,
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
    events = anchors(session, incident)
    systems = _systems(session, incident)
    cats = static["categories"]
    figures = aggregates.regime_figures(counts, regions, regime)
    prefills = _prefills(incident, loc)
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
            "nature": _both(lambda lc: loc[lc]["incident"]["natures"]),
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
