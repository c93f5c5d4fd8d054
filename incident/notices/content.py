"""What a notice says: the incident-wide context and each person's own part of it."""

from __future__ import annotations

import base64
import hmac
import re
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import Any

from sqlmodel import Session

from incident import catalog, clock, zones
from incident.config import Workspace
from incident.incidents import models as incidents
from incident.incidents.models import Incident
from incident.privacy import clean_text as clean


def notice_ref(secret: str, incident_id: str, person_id: str) -> str:
    """A per-person reference the person can check on the official site; not guessable from their id."""
    digest = hmac.new(secret.encode(), f"{incident_id}\x00{person_id}".encode(), sha256).digest()
    return "N" + base64.b32encode(digest[:7]).decode().rstrip("=")[:10]


def _in(locale: str, zh: str | None, en: str | None) -> str:
    """Responder text in the reader's language only: the other language never stands in for it (the lint names
    what lacks a translation)."""
    return clean(zh if locale == "zh-CN" else en)


def responder_texts(session: Session, incident: Incident) -> list[dict[str, str]]:
    """Every responder text a notice shows, in both languages, with where it comes from (for the lint)."""
    found = [
        {"where": where, "zh-CN": clean(zh), "en": clean(en)}
        for where, zh, en in (
            ("summary (--summary / --summary-en)", incident.summary, incident.summary_en),
            ("cause (--cause / --cause-en)", incident.cause, incident.cause_en),
        )
        if zh or en
    ]
    for e in incidents.timeline(session, incident.id):
        if e.kind == "action":
            at = e.at.strftime("%Y-%m-%d %H:%M UTC")
            found.append({"where": f"timeline entry {e.id} ({at})", "zh-CN": clean(e.text), "en": clean(e.text_en)})
    return found


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
                # instants: each sentence writes them on its reader's clock (claims.statements' `when`)
                "done_at": clock.as_utc(ob.done_at).isoformat() if ob.done_at else None,
                "due": clock.as_utc(ob.due).isoformat() if ob.due else None,
            }
        )
    counts = view.counts
    done = {ob.key for ob in view.obligations if ob.key in reports and ob.done_at}
    # Every regulator a sentence could name (owed or not), by the names a reader would know it by.
    regulators: dict[str, bool] = {}
    for key, rule in reports.items():
        for name in recipient_names(rule.recipient("zh-CN")) + recipient_names(rule.recipient("en")):
            regulators[name] = regulators.get(name, False) or key in done
    return out, {
        "people": counts["people"],
        "children": counts.get("children", 0),
        "by_category": counts["by_category"],
        "regulators": regulators,
    }


ACRONYM = re.compile(r"\b[A-Z]{3,6}\b")


def recipient_names(recipient: str) -> list[str]:
    """The names a sentence may call a recipient by: its name before any parenthesis or comma, and an acronym
    it carries ('Provincial Cyberspace Administration (CAC) where …' → that name, and CAC)."""
    main = re.split(r"[(（,，、]", recipient, maxsplit=1)[0].strip()
    names = [main] if len(main) >= 3 else []
    return names + [a for a in ACRONYM.findall(recipient) if a not in names]


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
    texts = responder_texts(session, incident)
    actions = [t for t in texts if t["where"].startswith("timeline entry")]
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
            "regulators": counts.get("regulators", {}),  # name → whether a report to it is marked submitted
            # every instant a notice may state: the window, the discovery, the reports made or due, and now
            # (the notice's own date); the claims lint holds each date a notice writes to one of them
            "instants": [
                clock.as_utc(at).isoformat()
                for at in (incident.exposure_from, incident.exposure_to, incident.discovered_at, clock.now())
            ]
            + [at for r in reports for at in (r["done_at"], r["due"]) if at],
        },
        "nature": list(nature),
        "reported": [r["recipient"]["en"] for r in reports if r["done_at"]],
        "categories": sorted(involved),
    }
    org_zone = zones.zone_for(org.get("location"))  # the announcement's clock
    # a notice says these on its reader's clock: person_context writes them again for each person
    said = {
        "rules": claim_rules,
        "police": incident.police_contacted,
        "reports": reports,
        "measures_done": {loc: [m(loc) for m in book.measures_done] for loc in catalog.LOCALES},
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
                # instants (ISO, UTC): the templates write them on each reader's clock (`day`, `moment` filters)
                "window_from": clock.as_utc(incident.exposure_from).isoformat(),
                "window_to": clock.as_utc(incident.exposure_to).isoformat(),
                "discovered": clock.as_utc(incident.discovered_at).isoformat(),
                "natures": natures,
                "nature": claims.fill(claim_rules.statements.nature(loc), natures=natures),
            },
            "measures_done": _measures_done(said, loc, org_zone),
            "measures_planned": [m(loc) for m in book.measures_planned],
            "remedies": remedies_for(remedies, involved, loc),
            "actions": [a[loc] for a in actions if a[loc]],
        }
    return {
        "record": record,
        "claims": said,
        "remedies": remedies,
        "org": org,
        "officer": officer,
        "lookup_url": org.get("notice_lookup", org.get("website", "")),
        "responder_texts": texts,
        "locales": per_locale,
        "categories": {
            c.key: {
                "key": c.key,
                "rank": c.rank,
                "sensitive": c.sensitive,
                "label": {loc: c.label(loc) for loc in catalog.LOCALES},
                "impact": {loc: c.impact(loc) for loc in catalog.LOCALES},
                "regulator_impact": {loc: c.regulator_impact(loc) for loc in catalog.LOCALES},
                "urgent": {loc: c.urgent_action(loc) for loc in catalog.LOCALES},
                "advice": list(c.advice),
            }
            for c in cats.categories
        },
        "advice": {key: {loc: text(loc) for loc in catalog.LOCALES} for key, text in cats.advice.items()},
        "channels": [c for c in book.channels if c not in book.exclude_channels],
    }


def measures_done(static: dict[str, Any], locale: str, zone: str) -> list[str]:
    """What has been done, in `locale`: the playbook's measures, then the sentences the record bears out (police,
    regulator reports), their dates on `zone`'s clock (a reader's, or a report's regulator's)."""
    return _measures_done(static["claims"], locale, zone)


def _measures_done(said: dict[str, Any], locale: str, zone: str) -> list[str]:
    from incident.notices import claims

    made = claims.statements(
        said["rules"], locale, police=said["police"], reports=said["reports"], when=_on_clock(zone, locale)
    )
    return [*said["measures_done"][locale], *made]


def _on_clock(zone: str, locale: str) -> Any:
    """A formatter of instants on one zone's clock, in one language (a claim sentence's dates)."""
    return lambda at: zones.format_moment(at, zone, locale)


def remedies_for(remedies: list[dict[str, Any]], categories: set[str] | frozenset[str], locale: str) -> list[str]:
    """The remedies that apply to these categories (identity monitoring only when identity documents are)."""
    return [r["text"][locale] for r in remedies if not r["only_with"] or categories & set(r["only_with"])]


def person_context(static: dict[str, Any], person: dict[str, Any], ref: str, today: datetime) -> dict[str, Any]:
    """This person's notice context: only their own categories, advice most-sensitive first, de-duplicated; every
    date on one clock, their region's, in either language."""
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
    zone = zones.zone_for(person.get("region"))
    return {
        **static["locales"][loc],
        "org": static["org"],
        "officer": static["officer"],
        "lookup_url": static["lookup_url"],
        "audience": person["audience"],
        "locale": loc,
        "zone": zone,
        "measures_done": measures_done(static, loc, zone),
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
