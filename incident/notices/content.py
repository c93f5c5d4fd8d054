"""What a notice says: the incident-wide context and each person's own part of it."""

from __future__ import annotations

import base64
import hmac
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from incident import catalog
from incident.config import Workspace
from incident.incidents import models as incidents
from incident.incidents.models import Incident
from incident.privacy import clean_text as clean

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def day(value: datetime, locale: str) -> str:
    """A date as people read it in their locale (Beijing time for zh-CN)."""
    if locale == "zh-CN":
        local = value.astimezone(ZoneInfo("Asia/Shanghai"))
        return f"{local.year}年{local.month}月{local.day}日"
    return f"{value.day} {MONTHS[value.month - 1]} {value.year}"


def moment(value: datetime, locale: str) -> str:
    """A date and time in the reader's locale."""
    if locale == "zh-CN":
        local = value.astimezone(ZoneInfo("Asia/Shanghai"))
        return f"{day(value, locale)} {local:%H:%M}（北京时间）"
    return f"{day(value, locale)}, {value:%H:%M} UTC"


def notice_ref(secret: str, incident_id: str, person_id: str) -> str:
    """A per-person reference the person can check on the official site; not guessable from their id."""
    digest = hmac.new(secret.encode(), f"{incident_id}\x00{person_id}".encode(), sha256).digest()
    return "N" + base64.b32encode(digest[:7]).decode().rstrip("=")[:10]


def _in(locale: str, zh: str | None, en: str | None) -> str:
    """Responder text in the reader's language, else in the other one (never silently dropped)."""
    first, second = (zh, en) if locale == "zh-CN" else (en, zh)
    return clean(first) or clean(second)


def regulator_reports(
    session: Session, ws: Workspace, incident: Incident
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Each regulator report the incident owes (recipient, state, when made or due, per locale) and the assessed
    people and children: the facts 'what we have done' and the claims lint read. Nothing before an assessment."""
    from incident.assess import picture
    from incident.errors import NotAssessed

    try:
        view = picture.view(session, incident, ws.root)
    except NotAssessed:
        return [], {}
    reports = {
        ob.key: ob
        for r in catalog.jurisdictions(ws.root).regimes
        for ob in r.obligations
        if any(s.startswith("report:") for s in ob.settled_by)
    }
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for ob in view.obligations:
        if ob.key not in reports or ob.recipient in seen:
            continue
        seen.add(ob.recipient)
        out.append(
            {
                "key": ob.key,
                "recipient": {loc: reports[ob.key].recipient(loc) for loc in catalog.LOCALES},
                "state": ob.state,
                "done_at": {loc: moment(ob.done_at, loc) for loc in catalog.LOCALES} if ob.done_at else None,
                "due": {loc: moment(ob.due, loc) for loc in catalog.LOCALES} if ob.due else None,
            }
        )
    counts = view.counts
    return out, {
        "people": counts["people"],
        "children": counts.get("children", 0),
        "by_category": counts["by_category"],
    }


def static_context(session: Session, ws: Workspace, incident: Incident) -> dict[str, Any]:
    """Everything a notice needs that is the same for every person, per locale (picklable). What the company has
    done beyond the playbook's measures (police, regulator reports) and the nature of the breach come from the
    record through the claim statements, never from a default sentence."""
    from incident.notices import claims

    book = catalog.playbook(incident.playbook, ws.root)
    cats = catalog.categories(ws.root)
    claim_rules = claims.rules(ws.root)
    org = dict(ws.organisation)
    officer = dict(org.pop("officer", {}))
    actions = [clean(e.text) for e in incidents.timeline(session, incident.id) if e.kind == "action"]
    reports, counts = regulator_reports(session, ws, incident)
    nature = claims.nature_of(incident.nature, book.nature)
    involved = set(counts.get("by_category") or incident.category_list)
    remedies = [
        {"text": {loc: r(loc) for loc in catalog.LOCALES}, "only_with": list(r.only_with)} for r in book.remedies
    ]
    record = {
        "facts": {
            "police": incident.police_contacted,
            "people": counts.get("people"),
            "children": counts.get("children"),
        },
        "nature": list(nature),
        "reported": [r["recipient"]["en"] for r in reports if r["done_at"]],
        "categories": sorted(involved),
    }
    per_locale: dict[str, Any] = {}
    for loc in catalog.LOCALES:
        natures = claims.natures_text(nature, loc, claim_rules)
        per_locale[loc] = {
            "incident": {
                "id": incident.id,
                "title": clean(incident.title),
                "summary": _in(loc, incident.summary, incident.summary_en) or book.summary(loc),
                "cause": _in(loc, incident.cause, incident.cause_en) or book.cause(loc),
                "impact": book.impact(loc),
                "type": book.incident_type(loc),
                "window_from": day(incident.exposure_from, loc),
                "window_to": day(incident.exposure_to, loc),
                "discovered": moment(incident.discovered_at, loc),
                "natures": natures,
                "nature": claims.fill(claim_rules.statements.nature(loc), natures=natures),
            },
            "measures_done": [
                *(m(loc) for m in book.measures_done),
                *claims.statements(claim_rules, loc, police=incident.police_contacted, reports=reports),
            ],
            "measures_planned": [m(loc) for m in book.measures_planned],
            "remedies": remedies_for(remedies, involved, loc),
        }
    return {
        "record": record,
        "remedies": remedies,
        "org": org,
        "officer": officer,
        "lookup_url": org.get("notice_lookup", org.get("website", "")),
        "actions": actions,
        "locales": per_locale,
        "categories": {
            c.key: {
                "key": c.key,
                "rank": c.rank,
                "sensitive": c.sensitive,
                "label": {loc: c.label(loc) for loc in catalog.LOCALES},
                "impact": {loc: c.impact(loc) for loc in catalog.LOCALES},
                "urgent": {loc: c.urgent_action(loc) for loc in catalog.LOCALES},
                "advice": list(c.advice),
            }
            for c in cats.categories
        },
        "advice": {key: {loc: text(loc) for loc in catalog.LOCALES} for key, text in cats.advice.items()},
        "channels": [c for c in book.channels if c not in book.exclude_channels],
    }


def remedies_for(remedies: list[dict[str, Any]], categories: set[str] | frozenset[str], locale: str) -> list[str]:
    """The remedies that apply to these categories (identity monitoring only when identity documents are)."""
    return [r["text"][locale] for r in remedies if not r["only_with"] or categories & set(r["only_with"])]


def person_context(static: dict[str, Any], person: dict[str, Any], ref: str, today: str) -> dict[str, Any]:
    """This person's notice context: only their own categories, advice most-sensitive first, de-duplicated."""
    loc = person["locale"]
    keys = sorted(person["categories"].split(","), key=lambda k: (-static["categories"][k]["rank"], k))
    cats = [static["categories"][k] for k in keys]
    advice: list[str] = []
    for cat in cats:
        for ref_key in cat["advice"]:
            text = static["advice"][ref_key][loc]
            if text not in advice:
                advice.append(text)
    impacts: list[str] = []
    for cat in cats:
        if cat["impact"][loc] not in impacts:
            impacts.append(cat["impact"][loc])
    fallback = "用户" if loc == "zh-CN" else "Customer"
    return {
        **static["locales"][loc],
        "org": static["org"],
        "officer": static["officer"],
        "lookup_url": static["lookup_url"],
        "actions": static["actions"],
        "audience": person["audience"],
        "person": {
            "name": clean(person["to_name"]) or fallback,
            "subject_name": clean(person["subject_name"]) or fallback,
            "address": clean(person["to_address"]),
        },
        "categories": [{"key": c["key"], "label": c["label"][loc], "sensitive": c["sensitive"]} for c in cats],
        "advice": advice,
        "impacts": impacts,
        "remedies": remedies_for(static["remedies"], set(keys), loc),
        "urgent_action": cats[0]["urgent"][loc],
        "notice": {"ref": ref, "date": today},
    }


def file_sha(path: Path) -> str:
    """sha256 of a file's bytes."""
    return sha256(path.read_bytes()).hexdigest()
