"""Every legal clock in the lawyer's jurisdictions.yaml runs from the right event and flips at the right second.

The cases are generated from the YAML file itself: when a lawyer adds or changes an obligation, these tests
follow without an edit.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from support import OpenedIncident, WorkspaceDir, people_csv

from incident import catalog
from incident.assess.models import settle
from incident.config import find_workspace
from incident.db import unit_of_work

RULES_FILE = Path(__file__).resolve().parents[1] / "playbooks" / "jurisdictions.yaml"
RULES: dict[str, Any] = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
GRADES = sorted(RULES["grades"], key=lambda g: g["people_at_least"])

DISCOVERED = datetime(2026, 3, 10, 8, 0, 0, tzinfo=UTC)
OPENED = DISCOVERED + timedelta(hours=1)
ANCHOR_REACHED = DISCOVERED + timedelta(days=2, hours=3, minutes=7)
SECOND = timedelta(seconds=1)

# The events other than discovery that later steps record; here they are recorded directly.
SETTLED_ANCHORS = {"individuals_notified": "individuals-notified", "announcement_published": "announcement-published"}


def period(obligation: dict[str, Any]) -> timedelta:
    return timedelta(hours=obligation.get("hours") or 0, days=obligation.get("days") or 0)


def home_region(regime: dict[str, Any]) -> str:
    """A region the regime covers."""
    if regime.get("regions"):
        return str(regime["regions"][0])
    return f"{regime['region_prefixes'][0]}X"


def enough_residents(threshold: dict[str, int] | None) -> int:
    """The smallest head-count that meets a residents threshold."""
    if not threshold:
        return 1
    return threshold["over"] + 1 if "over" in threshold else threshold["at_least"]


FIXED = [(r, o) for r in RULES["regimes"] for o in r["obligations"] if period(o) > timedelta(0)]
THRESHOLDS = [(r, o) for r in RULES["regimes"] for o in r["obligations"] if o.get("residents")]


def build_incident(
    ws: WorkspaceDir, region: str, residents: int, *, unreachable: bool = False, grade: str | None = None
) -> OpenedIncident:
    """Import `residents` people of `region` (plus one reachable person in mainland China, and one unreachable
    one if asked), all with a phone number in member-db; open an incident on it discovered at DISCOVERED and
    assess it, at the grade asked."""
    people = [
        {"person_id": f"r{i:06d}", "email": f"r{i}@example.com", "region": region, "locale": "en"}
        for i in range(residents)
    ]
    people.append({"person_id": "elsewhere", "email": "e@example.cn", "region": "CN-FJ"})
    if unreachable:
        people.append({"person_id": "unreachable", "region": "CN-FJ"})
    holdings = "person_id,system,category,since,until\n" + "".join(
        f"{p['person_id']},member-db,phone,2020-01-01,\n" for p in people
    )
    ws.import_inventory(
        people=people_csv(people), holdings=holdings, systems="systems:\n  - {name: member-db, kind: internal}\n"
    )
    with freeze_time(OPENED):
        iid = ws.ok(
            "open",
            "--playbook",
            "database-exfiltration",
            "--title",
            "t",
            "--systems",
            "member-db",
            "--categories",
            "phone",
            "--from",
            "2026-01-01",
            "--to",
            "2026-03-01",
            "--discovered",
            DISCOVERED.isoformat(),
        ).strip()
        ws.ok("assess", iid, *(["--grade", grade, "--reason", "qualitative criteria"] if grade else []))
    return OpenedIncident(ws, iid)


def reach_anchor(incident: OpenedIncident, anchor: str, at: datetime) -> None:
    """Make the event an obligation counts from happen at `at`."""
    with freeze_time(at):
        if anchor == "handling_ended":
            incident.ws.ok("close", incident.id)
        else:
            with unit_of_work(find_workspace(incident.ws.root)) as session:
                settle(session, incident.id, SETTLED_ANCHORS[anchor], "dispatcher@test")


def obligation_at(incident: OpenedIncident, key: str, now: datetime) -> dict[str, Any]:
    with freeze_time(now):
        return incident.obligations()[key]


@pytest.mark.parametrize(("regime", "obligation"), FIXED, ids=[o["key"] for _, o in FIXED])
def test_every_fixed_deadline_flips_at_its_second(
    workspace: WorkspaceDir, regime: dict[str, Any], obligation: dict[str, Any]
) -> None:
    """Given an incident that makes this obligation apply, when its anchor event has happened, then the
    obligation is due one second before anchor + period, due with 0 s left at it, and overdue one second
    after (a minimum period instead runs until then and is done from that second)."""
    grade = obligation.get("grade_at_least")
    incident = build_incident(
        workspace,
        home_region(regime),
        enough_residents(obligation.get("residents")),
        unreachable=bool(obligation.get("when_announcement")),
        grade=grade,
    )
    anchor = obligation["anchor"]
    if anchor == "discovered":
        started = DISCOVERED
    else:
        waiting = obligation_at(incident, obligation["key"], ANCHOR_REACHED - SECOND)
        assert (waiting["state"], waiting["due"]) == ("waiting", None), waiting
        reach_anchor(incident, anchor, ANCHOR_REACHED)
        started = ANCHOR_REACHED
    due = started + period(obligation)

    before = obligation_at(incident, obligation["key"], due - SECOND)
    exactly = obligation_at(incident, obligation["key"], due)
    after = obligation_at(incident, obligation["key"], due + SECOND)

    assert before["due"] == due.isoformat()
    if obligation.get("minimum"):
        # A minimum period (e.g. California's 30-day posting) runs until its end, then is served: never overdue.
        assert (before["state"], before["left_seconds"]) == ("in progress", 1.0)
        assert (exactly["state"], exactly["done_at"]) == ("done", due.isoformat())
        assert (after["state"], after["done_at"]) == ("done", due.isoformat())
    else:
        assert (before["state"], before["left_seconds"]) == ("due", 1.0)
        assert (exactly["state"], exactly["left_seconds"]) == ("due", 0.0)
        assert (after["state"], after["left_seconds"]) == ("overdue", -1.0)
    assert before["regime"] == regime["key"] and before["anchor"] == anchor


def test_the_fixed_deadlines_include_the_ones_the_issue_names() -> None:
    """Given the shipped rules, then the clocks the issue lists are there with their periods."""
    periods = {o["key"]: period(o) for _, o in FIXED}

    assert periods["cn-cac-initial"] == timedelta(hours=4)
    assert periods["cn-cac-final"] == timedelta(days=30)
    assert periods["gdpr-sa-72h"] == timedelta(hours=72)
    assert periods["ca-individuals"] == timedelta(days=30)
    assert periods["ca-ag"] == timedelta(days=15)
    assert periods["tx-individuals"] == timedelta(days=60)
    assert periods["tx-ag"] == timedelta(days=30)


@pytest.mark.parametrize("short", [False, True], ids=["at the threshold", "one below"])
@pytest.mark.parametrize(("regime", "obligation"), THRESHOLDS, ids=[o["key"] for _, o in THRESHOLDS])
def test_a_residents_threshold_applies_from_its_exact_count(
    workspace: WorkspaceDir, regime: dict[str, Any], obligation: dict[str, Any], short: bool
) -> None:
    """Given exactly the head-count that meets a threshold (California AG: over 500, so 501; Texas AG: at least
    250), then the obligation applies; one resident fewer (the rest of the incident unchanged), it does not."""
    residents = enough_residents(obligation["residents"]) - (1 if short else 0)
    incident = build_incident(
        workspace,
        home_region(regime),
        residents,
        unreachable=bool(obligation.get("when_announcement")),
        grade=obligation.get("grade_at_least"),
    )

    with freeze_time(OPENED):
        keys = set(incident.obligations())

    assert (obligation["key"] in keys) is not short, sorted(keys)


def test_the_california_and_texas_thresholds_are_the_statutes() -> None:
    """Given the shipped rules, then California's AG threshold is over 500 and Texas's at least 250."""
    thresholds = {o["key"]: o["residents"] for _, o in THRESHOLDS}

    assert thresholds["ca-ag"] == {"over": 500}
    assert thresholds["tx-ag"] == {"at_least": 250}


@pytest.mark.parametrize(("lower", "grade"), list(itertools.pairwise(GRADES)), ids=[g["key"] for g in GRADES[1:]])
def test_a_cac_grade_starts_at_its_exact_head_count(lower: dict[str, Any], grade: dict[str, Any]) -> None:
    """Given the CAC grading guide's head-counts, then each grade starts exactly at its threshold and one person
    fewer is the grade below."""
    rules = catalog.jurisdictions()

    assert rules.grade_for(grade["people_at_least"]).key == grade["key"]
    assert rules.grade_for(grade["people_at_least"] - 1).key == lower["key"]


def test_a_million_people_is_relatively_major() -> None:
    """Given 999,999 affected people the grade is general; at 1,000,000 it is relatively major (较大)."""
    rules = catalog.jurisdictions()

    assert rules.grade_for(999_999).key == "general"
    assert rules.grade_for(1_000_000).key == "relatively-major"
    assert rules.grade_for(10_000_000).key == "major"
    assert rules.grade_for(100_000_000).key == "particularly-major"


GRADE_GATED = [(r, o) for r in RULES["regimes"] for o in r["obligations"] if o.get("grade_at_least")]
RANK = {g["key"]: i for i, g in enumerate(GRADES)}


@pytest.mark.parametrize("grade", [g["key"] for g in GRADES])
def test_grade_gated_obligations_follow_the_grade(workspace: WorkspaceDir, grade: str) -> None:
    """Given a small incident graded by hand, then the CAC reports (initial report in 4 hours, final summary)
    appear exactly at their grade or above."""
    incident = build_incident(workspace, "CN-FJ", 1, grade=grade if grade != "general" else None)

    with freeze_time(OPENED):
        keys = set(incident.obligations())

    expected = {o["key"] for _, o in GRADE_GATED if RANK[grade] >= RANK[o["grade_at_least"]]}
    assert keys & {o["key"] for _, o in GRADE_GATED} == expected


def test_the_initial_cac_report_is_due_four_hours_after_discovery(workspace: WorkspaceDir) -> None:
    """Given a relatively major incident, then the CAC initial report is due at discovery + 4 h."""
    incident = build_incident(workspace, "CN-FJ", 1, grade="relatively-major")

    initial = obligation_at(incident, "cn-cac-initial", DISCOVERED + timedelta(hours=3, minutes=59))

    assert initial["due"] == "2026-03-10T12:00:00+00:00"
    assert initial["state"] == "due"
    assert initial["left_seconds"] == 60.0


def test_the_final_cac_report_waits_for_close_then_runs_30_days(workspace: WorkspaceDir) -> None:
    """Given a relatively major incident, then the CAC final summary waits while handling goes on; when the
    responder closes the incident it is due 30 days later."""
    incident = build_incident(workspace, "CN-FJ", 1, grade="relatively-major")
    waiting = obligation_at(incident, "cn-cac-final", DISCOVERED + timedelta(days=60))

    with freeze_time("2026-04-01 10:00:00"):
        incident.ws.ok("close", incident.id)
    final = obligation_at(incident, "cn-cac-final", datetime(2026, 4, 2, tzinfo=UTC))

    assert (waiting["state"], waiting["due"]) == ("waiting", None)
    assert (final["state"], final["due"]) == ("due", "2026-05-01T10:00:00+00:00")


def test_show_prints_the_time_left(workspace: WorkspaceDir) -> None:
    """Given a German resident affected, when `incident show` runs 70 hours after discovery, then the GDPR
    72-hour clock shows 2 hours left."""
    incident = build_incident(workspace, "DE", 1)

    with freeze_time(DISCOVERED + timedelta(hours=70)):
        out = incident.ws.ok("show", incident.id)

    line = next(row for row in out.splitlines() if "gdpr-sa-72h" in row)
    assert "2026-03-13 08:00Z" in line and "2h 00m left" in line
