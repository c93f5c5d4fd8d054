"""Which obligations apply, from which event each counts, when each is due, and where it stands."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from incident import catalog, clock
from incident.assess.counts import residents
from incident.assess.models import ObligationDone
from incident.incidents.models import Incident


@dataclass(frozen=True)
class ObligationStatus:
    """One legal clock: what, to whom, due when, and where it stands."""

    regime: str
    key: str
    title: str
    recipient: str
    anchor: str
    due: datetime | None
    state: str  # done | due | overdue | in progress (minimum period) | waiting (no anchor yet) | no fixed deadline
    left_seconds: float | None
    source: str
    done_at: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["due"] = self.due.isoformat() if self.due else None
        data["done_at"] = self.done_at.isoformat() if self.done_at else None
        return data


def anchors(session: Session, incident: Incident) -> dict[str, datetime | None]:
    """The events obligations count from, as far as they have happened."""
    done = {d.key: d.at for d in session.exec(select(ObligationDone).where(ObligationDone.incident_id == incident.id))}
    return {
        "discovered": incident.discovered_at,
        "handling_ended": incident.handling_ended_at,
        "individuals_notified": done.get("individuals-notified"),
        "announcement_published": done.get("announcement-published"),
    }


def applicable_obligations(
    counts: dict[str, Any], grade: str, announcement: bool, rules: catalog.Jurisdictions
) -> Iterator[tuple[catalog.Regime, catalog.Obligation]]:
    """Yield the (regime, obligation) pairs that apply to these counts and this grade."""
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if not regime.always and n == 0:
            continue
        for ob in regime.obligations:
            if ob.grade_at_least and rules.grade_rank(grade) < rules.grade_rank(ob.grade_at_least):
                continue
            if ob.residents is not None and not ob.residents.met(counts["people"] if regime.always else n):
                continue
            if ob.when_announcement and not announcement:
                continue
            yield regime, ob


def _settled_at(ob: catalog.Obligation, settled: dict[str, datetime]) -> datetime | None:
    """When an obligation was settled: by hand or by a report, or by an event its settled_by names."""
    if ob.key in settled:
        return settled[ob.key]
    events = [
        settled[name]
        for kind, _, name in (s.partition(":") for s in ob.settled_by)
        if kind == "event" and name in settled
    ]
    return min(events, default=None)


def obligation_states(
    session: Session,
    incident: Incident,
    counts: dict[str, Any],
    grade: str,
    announcement: bool,
    rules: catalog.Jurisdictions,
    locale: str = "en",
) -> list[ObligationStatus]:
    """Every obligation with its due time and state at clock.now()."""
    now = clock.now()
    events = anchors(session, incident)
    settled = {
        d.key: d.at for d in session.exec(select(ObligationDone).where(ObligationDone.incident_id == incident.id))
    }
    out = []
    for regime, ob in applicable_obligations(counts, grade, announcement, rules):
        period = timedelta(hours=ob.hours or 0, days=ob.days or 0)
        start = events[ob.anchor]
        due = start + period if start is not None and period > timedelta(0) else None
        done_at = _settled_at(ob, settled)
        if done_at is not None:
            state, left = "done", None
        elif start is None:
            state, left = "waiting", None
        elif due is None:
            state, left = "no fixed deadline", None
        elif ob.minimum and now >= due:
            state, left, done_at = "done", None, due
        else:
            left = (due - now).total_seconds()
            state = "in progress" if ob.minimum else "overdue" if now > due else "due"
        out.append(
            ObligationStatus(
                regime.key,
                ob.key,
                ob.title(locale),
                ob.recipient(locale),
                ob.anchor,
                due,
                state,
                left,
                ob.source,
                done_at,
            )
        )
    return sorted(out, key=lambda o: (o.due is None, o.due or now, o.key))


def announcement_reasons(counts: dict[str, Any], rules: catalog.Jurisdictions) -> list[str]:
    """Why a public announcement (substitute notice) is required, if it is."""
    reasons = []
    if counts["no_usable_channel"]:
        reasons.append(
            f"{counts['no_usable_channel']} affected people have no usable contact channel "
            "(GB/T 35273 §10.2(a): publish a public warning)"
        )
    for regime in rules.regimes:
        n = residents(counts["by_region"], regime)
        if regime.substitute_notice_over is not None and n > regime.substitute_notice_over:
            reasons.append(
                f"{regime.key}: {n} residents affected, over the substitute-notice threshold "
                f"of {regime.substitute_notice_over}"
            )
    for reason in counts.get("extra_announcement_reasons", []):
        reasons.append(reason)
    return reasons
