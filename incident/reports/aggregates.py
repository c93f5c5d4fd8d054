"""The numbers the public and regulators are given: only aggregates, from the assessment and the delivery records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import Session

from incident import catalog
from incident.assess import models as assess
from incident.assess.counts import residents
from incident.assess.picture import AssessmentView
from incident.assess.picture import view as assessment_view
from incident.config import Workspace
from incident.dispatch import models as dispatch_models
from incident.dispatch.models import delivery_states_by_region
from incident.dispatch.postal import returned_count
from incident.dispatch.proof import channel_summary
from incident.incidents import models as incidents
from incident.incidents.models import Incident


def failed_everywhere(session: Session, incident_id: str) -> int:
    """People dispatch tried on at least one channel, every one of which failed, and who have no postal address."""
    return dispatch_models.failed_everywhere(session, incident_id)


def dispatch_reasons(session: Session, incident_id: str) -> list[str]:
    """Announcement reasons that only dispatch can reveal: people every channel failed for."""
    failed = failed_everywhere(session, incident_id)
    returned = returned_count(session, incident_id)
    reasons = []
    if failed:
        reasons.append(
            f"{failed} affected people could not be reached: every channel failed for them during dispatch "
            "(GB/T 35273 §10.2(a): publish a public warning)"
        )
    if returned:
        reasons.append(
            f"{returned} affected people could not be reached: the post returned their letter "
            "(GB/T 35273 §10.2(a): publish a public warning)"
        )
    return reasons


def picture(session: Session, ws: Workspace, incident: Incident, locale: str = "en") -> AssessmentView:
    """The assessment as it stands now, including what dispatch found out (who could not be reached)."""
    return assessment_view(
        session, incident, ws.root, locale, extra_announcement_reasons=dispatch_reasons(session, incident.id)
    )


def regimes_in(counts: dict[str, Any], workspace: Path | None) -> list[catalog.Regime]:
    """The regimes with at least one affected resident (or that always apply)."""
    return [r for r in catalog.jurisdictions(workspace).regimes if r.always or residents(counts["by_region"], r)]


def by_region(session: Session, incident_id: str) -> dict[str, Any]:
    """Per region: exposed records by category, and deliveries by state and final channel."""
    records = assess.exposed_by_region(session, incidents.get(session, incident_id))
    deliveries: dict[str, dict[str, int]] = {}
    for region, state, channel, n in delivery_states_by_region(session, incident_id):
        key = f"{state}:{channel}" if state == "sent" else state
        per = deliveries.setdefault(region or "unknown", {})
        per[key] = per.get(key, 0) + int(n)
    return {"records": records, "deliveries": deliveries}


def regime_figures(counts: dict[str, Any], regions: dict[str, Any], regime: catalog.Regime) -> dict[str, Any]:
    """One regime's residents, records by category, and how they were notified (mail, electronic, not yet)."""
    covered = [r for r in set(counts["by_region"]) | set(regions["records"]) if regime.covers(r)]
    by_category: dict[str, int] = {}
    states: dict[str, int] = {}
    for region in covered:
        for category, n in regions["records"].get(region, {}).items():
            by_category[category] = by_category.get(category, 0) + n
        for state, n in regions["deliveries"].get(region, {}).items():
            states[state] = states.get(state, 0) + n
    electronic = sum(n for s, n in states.items() if s.startswith("sent:"))
    return {
        "key": regime.key,
        "name": {"zh": regime.name("zh-CN"), "en": regime.name("en")},
        "residents": residents(counts["by_region"], regime),
        "records": sum(by_category.values()),
        "by_category": dict(sorted(by_category.items())),
        "deliveries": dict(sorted(states.items())),
        # A letter tells someone once posted; written (not yet posted) and returned letters tell nobody.
        "notified_by_mail": states.get("posted", 0),
        "notified_electronically": electronic,
        "notified": states.get("posted", 0) + electronic,
        "letters_written": states.get("written", 0),
        "letters_posted": states.get("posted", 0),
        "letters_returned": states.get("returned", 0),
        "unreachable": states.get("unreachable", 0) + states.get("returned", 0),
    }


def delivery_figures(session: Session, incident_id: str) -> dict[str, Any]:
    """Attempts per channel and outcome, deliveries per state: the same numbers `incident deliveries` proves."""
    return channel_summary(session, incident_id)
