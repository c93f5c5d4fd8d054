"""What a notice says: the incident-wide context and each person's own part of it."""

from __future__ import annotations

import base64
import hmac
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


def static_context(session: Session, ws: Workspace, incident: Incident) -> dict[str, Any]:
    """Everything a notice needs that is the same for every person, per locale (picklable)."""
    book = catalog.playbook(incident.playbook, ws.root)
    cats = catalog.categories(ws.root)
    org = dict(ws.organisation)
    officer = dict(org.pop("officer", {}))
    texts = responder_texts(session, incident)
    actions = [t for t in texts if t["where"].startswith("timeline entry")]
    per_locale: dict[str, Any] = {}
    for loc in catalog.LOCALES:
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
            },
            "measures_done": [m(loc) for m in book.measures_done],
            "measures_planned": [m(loc) for m in book.measures_planned],
            "remedies": [r(loc) for r in book.remedies],
            "actions": [a[loc] for a in actions if a[loc]],
        }
    return {
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
    return {
        **static["locales"][loc],
        "org": static["org"],
        "officer": static["officer"],
        "lookup_url": static["lookup_url"],
        "audience": person["audience"],
        "locale": loc,
        "zone": zones.zone_for(person.get("region")),
        "person": {
            "name": clean(person["to_name"]) or fallback,
            "subject_name": clean(person["subject_name"]) or fallback,
            "address": clean(person["to_address"]),
        },
        "categories": [{"key": c["key"], "label": c["label"][loc], "sensitive": c["sensitive"]} for c in cats],
        "advice": advice,
        "impacts": impacts,
        "urgent_action": cats[0]["urgent"][loc],
        "notice": {"ref": ref, "date": today},
    }


def file_sha(path: Path) -> str:
    """sha256 of a file's bytes."""
    return sha256(path.read_bytes()).hexdigest()
