"""What a regulator report may say: incident facts and aggregates (counts, regions, outcomes), never a person's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlmodel import Session

from incident import catalog, regions, zones
from incident.assess.obligations import anchors
from incident.assess.picture import AssessmentView
from incident.config import CONFIG_NAME, Workspace, organisation_contacts
from incident.errors import BadConfig, IncidentError, InvalidArgument
from incident.incidents import models as incidents
from incident.notices import content, templates
from incident.notices.compose import render_person
from incident.reports import aggregates, kinds


def _both(fn: Any) -> dict[str, Any]:
    """A wording in both languages, keyed zh / en for templates."""
    return {"zh": fn("zh-CN"), "en": fn("en")}


def _pair(by_locale: dict[str, Any]) -> dict[str, Any]:
    return {"zh": by_locale["zh-CN"], "en": by_locale["en"]}


def report_region(ws: Workspace, kind: kinds.ReportKind) -> str | None:
    """The region whose clock the report is written on: the organisation's setting the kind names, else its own."""
    if kind.zone_region_from:
        value = ws.organisation.get(kind.zone_region_from)
        if value is not None:
            code = str(value).strip().upper()
            if not isinstance(value, str) or code not in zones.table().regions:
                raise BadConfig(
                    f"incident.toml: [organisation] {kind.zone_region_from}: {value!r} is not a region code "
                    "incident/timezones.yaml knows (e.g. IE, DE, FR)"
                )
            return code
    return kind.zone_region


def sample_notice(
    session: Session,
    ws: Workspace,
    incident: incidents.Incident,
    categories: list[str],
    date: datetime,
    region: str | None = None,
) -> dict[str, str]:
    """The English email notice as a placeholder person of `region` would receive it (on that region's clock):
    the sample a regulator asks for, no PII."""
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
        "region": region,
        "ref": "[notice reference]",
    }
    env = templates.environment(ws.root)
    parts, rendered = render_person(env, static, person, date)
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


def _place(code: str | None, ws: Workspace) -> dict[str, Any] | None:
    """A region code as readers see it: its name in both languages (the code itself when no source knows it)."""
    if not code:
        return None
    return {"code": code, "zh": regions.label(code, "zh-CN", ws.root), "en": regions.label(code, "en", ws.root)}


def _regions(by_region: dict[str, int], ws: Workspace) -> list[dict[str, Any]]:
    """The people affected per region, each region named; people with no region recorded are counted as such."""
    out = []
    for code, n in by_region.items():
        place = _place(code if code and code != "unknown" else None, ws) or {
            "code": None,
            "zh": "未记录地区",
            "en": "region not recorded",
        }
        out.append({**place, "people": n})
    return out


# The inventory's three kinds of system, as a report names them in each language.
SYSTEM_KINDS = {
    "internal": {"zh": "自有系统", "en": "internal system"},
    "backup": {"zh": "备份", "en": "backup"},
    "partner": {"zh": "合作方系统", "en": "partner system"},
}


def _systems(session: Session, ws: Workspace, incident: incidents.Incident) -> list[dict[str, Any]]:
    """The breached systems as the inventory describes them (GB/T 35273 §10.1: the systems involved)."""
    from incident.inventory.models import systems_by_name

    known = systems_by_name(session, incident.system_list)
    return [
        {
            "name": name,
            "description": s.description if s else None,
            "kind": s.kind if s else None,
            "kind_name": SYSTEM_KINDS.get(s.kind, {"zh": s.kind, "en": s.kind}) if s else None,
            "location": s.location if s else None,
            "place": _place(s.location, ws) if s else None,
        }
        for name in incident.system_list
        for s in [known.get(name)]
    ]


def _consequences(categories: list[dict[str, Any]]) -> dict[str, list[str]]:
    """What a regulator is told could follow, one third-person wording per category involved, each once."""
    out: dict[str, list[str]] = {"zh": [], "en": []}
    for c in categories:
        for lang in out:
            if c["impact"][lang] not in out[lang]:
                out[lang].append(c["impact"][lang])
    return out


def unknown_regions(ctx: dict[str, Any]) -> list[str]:
    """The region codes a report had to show as codes because no source names them."""
    places = [ctx["org"].get("place"), *ctx["regions"]] + [s["place"] for s in ctx["incident"]["systems"]]
    found: list[str] = []
    for p in places:
        if p and p["code"] and p["en"] == p["code"] and p["code"] not in found:
            found.append(p["code"])
    return found


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


def _refuse_missing_translations(static: dict[str, Any], kind: kinds.ReportKind, ws: Workspace) -> None:
    """A report says the responder's text in its own language(s): Chinese for the CAC, English for the others and
    for the sample notice every report carries; a text missing in one of them is refused, never substituted."""
    from incident.notices.lint import missing_translations, name_allow_list

    locales = ["zh-CN", "en"] if kind.regime == "cn" else ["en"]
    missing = missing_translations(static["responder_texts"], locales=locales, names=name_allow_list(ws.organisation))
    if missing:
        raise IncidentError(
            f"the {kind.key} report needs the responder's text in {' and '.join(locales)}: "
            + "; ".join(missing[:3])
            + " (give it with `incident log ID --entry N TEXT --en TEXT`, N the entry's number or summary / cause)"
        )


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
    _refuse_missing_translations(static, kind, ws)
    loc = static["locales"]
    regions = aggregates.by_region(session, incident.id)
    events = anchors(session, incident)
    systems = _systems(session, ws, incident)
    cats = static["categories"]
    figures = aggregates.regime_figures(counts, regions, regime)
    prefills = _prefills(incident, loc)
    fields = {k: content.clean(v) for k, v in fields.items()}
    notified = events["individuals_notified"]
    sample_categories = sorted(figures["by_category"]) or sorted(counts["by_category"])
    grade = next(g for g in rules.grades if g.key == view.assessment.grade)
    region = report_region(ws, kind)
    zone = zones.zone_for(region)

    def day(at: Any) -> dict[str, str]:
        return _both(lambda lc: zones.format_day(at, zone, lc))

    def moment(at: Any) -> dict[str, str]:
        return _both(lambda lc: zones.format_moment(at, zone, lc))

    contacts = {
        key: {k: content.clean(v) for k, v in person.items()}
        for key, person in organisation_contacts(ws.config, ws.root / CONFIG_NAME).items()
    }
    # A report speaks to a regulator: the third-person wording, never the notice's "your information may …".
    categories = [
        {
            "key": k,
            "label": _pair(cats[k]["label"]),
            "sensitive": cats[k]["sensitive"],
            "people": n,
            "impact": _pair(cats[k]["regulator_impact"]),
        }
        for k, n in sorted(counts["by_category"].items(), key=lambda kv: (-cats[kv[0]]["rank"], kv[0]))
    ]
    return {
        "zone": zone,  # the regulator's clock: the `day` and `moment` filters write every other date on it
        "report": {
            "key": kind.key,
            "title": _both(kind.title),
            "recipient": _both(kind.recipient),
            "stage": stage,
            "stage_name": _both(kind.stages[cast(kinds.Stage, stage)]),
            "generated_at": now.isoformat(),
            "generated": moment(now),
        },
        "org": {**static["org"], "place": _place(static["org"].get("location"), ws)},
        "officer": static["officer"],
        # GDPR art. 33(3)(b): the DPO, else the officer is the contact point; the representative if designated.
        "dpo": contacts.get("dpo"),
        "eu_representative": contacts.get("eu_representative"),
        "lookup_url": static["lookup_url"],
        "incident": {
            "id": incident.id,
            "title": content.clean(incident.title),
            "status": incident.status,
            "type": _both(lambda lc: loc[lc]["incident"]["type"]),
            "summary": prefills["summary"],
            "cause": prefills["cause"],
            "discovered_at": incident.discovered_at.isoformat(),
            "discovered": moment(incident.discovered_at),
            "discovered_by": content.clean(incident.discovered_by),
            "discovered_where": content.clean(incident.discovered_where),
            "window": {
                "from": day(incident.exposure_from),
                "to": day(incident.exposure_to),
            },
            "systems": systems,
            "connected_systems": content.clean(incident.connected_systems) or None,
            "police_contacted": incident.police_contacted,
            "nature": _both(lambda lc: loc[lc]["incident"]["natures"]),
            "handling_ended": moment(incident.handling_ended_at) if incident.handling_ended_at else None,
            "grade": {
                "key": grade.key,
                "name": _both(grade.name),
                "computed": view.assessment.grade_auto,
                "override_reason": view.assessment.grade_reason,
                "reportable": grade.reportable,
            },
        },
        "counts": counts,
        "categories": categories,
        "consequences": _consequences(categories),
        "regions": _regions(counts["by_region"], ws),
        "regimes": [aggregates.regime_figures(counts, regions, r) for r in aggregates.regimes_in(counts, ws.root)],
        "regime": figures,
        "deliveries": aggregates.delivery_figures(session, incident.id),
        "notified_at": moment(notified) if notified else None,
        "announcement": {
            **view.announcement,
            "published_at": events["announcement_published"].isoformat() if events["announcement_published"] else None,
        },
        "measures": {
            "actions": _both(lambda lc: loc[lc]["actions"]),
            "done": _both(lambda lc: content.measures_done(static, lc, zone)),  # on the regulator's clock
            "planned": _both(lambda lc: loc[lc]["measures_planned"]),
        },
        "sections": _sections(kind, stage, fields, prefills),
        "fields": fields,
        "delay": _delay(kind, stage, incident, now, content.clean(delay_reason) or None),
        "to_follow": _both(kind.to_follow),
        "sample_notice": sample_notice(session, ws, incident, sample_categories, notified or now, region)
        if sample_categories
        else None,
    }
