"""The full assessment picture built from the stored snapshot: counts, grade, regimes, obligations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from incident import catalog
from incident.assess.counts import residents
from incident.assess.models import Assessment, latest
from incident.assess.obligations import ObligationStatus, announcement_reasons, obligation_states
from incident.db import stored_json
from incident.errors import NotAssessed
from incident.incidents.models import Incident


@dataclass(frozen=True)
class AssessmentView:
    incident: Incident
    assessment: Assessment
    counts: dict[str, Any]
    grade_name: str
    regimes: list[dict[str, Any]]
    obligations: list[ObligationStatus]
    individual_notice: dict[str, Any]
    announcement: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {
            "incident": self.incident.id,
            "assessed_at": self.assessment.at.isoformat(),
            "assessed_by": self.assessment.actor,
            "counts": self.counts,
            "grade": {
                "key": self.assessment.grade,
                "name": self.grade_name,
                "computed": self.assessment.grade_auto,
                "override_reason": self.assessment.grade_reason,
            },
            "regimes": self.regimes,
            "individual_notice": self.individual_notice,
            "announcement": self.announcement,
            "obligations": [o.as_json() for o in self.obligations],
        }


def view(
    session: Session,
    incident: Incident,
    workspace: Path | None,
    locale: str = "en",
    extra_announcement_reasons: list[str] | None = None,
) -> AssessmentView:
    """Build the full assessment picture from the stored snapshot."""
    stored = latest(session, incident.id)
    if stored is None:
        raise NotAssessed(f"{incident.id} has not been assessed yet (run `incident assess {incident.id}`)")
    counts = stored_json(stored.counts, f"assessment of {incident.id}: counts")
    rules = catalog.jurisdictions(workspace)
    reasons = announcement_reasons(counts, rules) + list(extra_announcement_reasons or [])
    grade = next(g for g in rules.grades if g.key == stored.grade)
    regimes = []
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if regime.always or n:
            regimes.append({"key": regime.key, "name": regime.name(locale), "residents": n})
    return AssessmentView(
        incident=incident,
        assessment=stored,
        counts=counts,
        grade_name=grade.name(locale),
        regimes=regimes,
        obligations=obligation_states(session, incident, counts, stored.grade, bool(reasons), rules, locale),
        individual_notice={
            "required": counts["people"] > 0,
            "reason": "PIPL art. 57 and GB/T 35273 §10.2: every affected person is told"
            if counts["people"]
            else "nobody is affected",
        },
        announcement={"required": bool(reasons), "reasons": reasons},
    )
