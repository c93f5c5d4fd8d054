"""The responder learns who is affected, through whom each person is reached, and how grave it is."""

from __future__ import annotations

import csv
import stat
from pathlib import Path

import pytest
from freezegun import freeze_time
from support import EXPECTED_AFFECTED, PEOPLE_HEADER, OpenedIncident, WorkspaceDir, open_incident


def test_the_affected_set_is_exactly_the_people_in_scope(assessed_incident: OpenedIncident) -> None:
    """Given the hand inventory and an incident on member-db, the backup and the payment partner, when it is
    assessed, then exactly the people with an overlapping holding are affected, each with only their own
    exposed categories."""
    affected = assessed_incident.affected()

    assert {pid: row["categories"] for pid, row in affected.items()} == EXPECTED_AFFECTED


# Each holding's fate against the window 2026-01-01 .. 2026-03-01 (`since <= to and (until empty or until >= from)`).
OVERLAP = {
    "held until exactly the first day": ("de-resident", "phone", True),
    "held until the day before": ("de-resident", "real_name", False),
    "held from exactly the last day": ("ca-resident", "password", True),
    "held from the day after": ("ca-resident", "phone", False),
    "ended before the window": ("left-before-window", "phone", False),
    "still held (no until)": ("tx-resident", "phone", True),
    "category not breached": ("tx-resident", "device_id", False),
    "system not breached": ("orders-only", "order_details", False),
    "deleted from the live system": ("cancelled-in-backup", "phone", True),  # ...but still in the backup
}


@pytest.mark.parametrize(("person", "category", "exposed"), list(OVERLAP.values()), ids=list(OVERLAP))
def test_a_holding_overlaps_the_window_inclusively(
    assessed_incident: OpenedIncident, person: str, category: str, exposed: bool
) -> None:
    """Given holdings that end or start on the window's edges, then both edge days count as inside."""
    affected = assessed_incident.affected()

    got = person in affected and category in affected[person]["categories"].split(",")
    assert got is exposed


def test_a_time_of_day_on_the_window_does_not_move_its_edge_days(inventory_with_backups: WorkspaceDir) -> None:
    """Given a window given as times (noon to noon), then the holdings of the first and last calendar day still
    count: a holding is kept by day."""
    ws = inventory_with_backups
    iid = ws.ok(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        "t",
        "--systems",
        "member-db",
        "--categories",
        "phone,password",
        "--from",
        "2026-01-01T12:00:00Z",
        "--to",
        "2026-03-01T12:00:00Z",
        "--discovered",
        "2026-03-10T08:00:00Z",
    ).strip()
    ws.ok("assess", iid)

    affected = OpenedIncident(ws, iid).affected()

    assert affected["de-resident"]["categories"] == "phone"
    assert affected["ca-resident"]["categories"] == "password"


def test_cancelled_accounts_in_a_backup_and_partner_holdings_count(assessed_incident: OpenedIncident) -> None:
    """Given a cancelled account whose data is only in the backup, and a person only at the payment partner,
    then both are affected like anyone else."""
    affected = assessed_incident.affected()

    assert affected["cancelled-in-backup"]["account_status"] == "cancelled"
    assert affected["cancelled-in-backup"]["to_email"] == "liu.min@example.cn"
    assert affected["partner-only"]["categories"] == "bank_card"


def test_a_child_is_reached_through_the_guardian(assessed_incident: OpenedIncident) -> None:
    """Given a child under 14 at discovery with a guardian on file, then the notice goes to the guardian's
    contacts, never to the child's own email or app."""
    child = assessed_incident.affected()["child-with-guardian"]

    assert (child["audience"], child["is_child"], child["subject_name"]) == ("guardian", True, "李小明")
    assert (child["to_name"], child["to_email"], child["to_phone"], child["to_push"]) == (
        "李芳",
        "li.fang@example.cn",
        "+8613900000002",
        None,
    )


def test_a_child_without_guardian_contact_is_unreachable(assessed_incident: OpenedIncident) -> None:
    """Given a child under 14 with their own phone and email but no guardian contact, then no channel is left."""
    child = assessed_incident.affected()["child-unreachable"]

    assert (child["audience"], child["is_child"]) == ("guardian", True)
    assert [child[k] for k in ("to_email", "to_phone", "to_push", "to_address")] == [None] * 4


def test_adults_are_reached_on_their_own_channels(assessed_incident: OpenedIncident) -> None:
    """Given adults with email and app, with only a postal address, or with nothing, then each carries just
    the channels they have."""
    affected = assessed_incident.affected()

    adult = affected["cn-adult"]
    assert (adult["audience"], adult["to_email"], adult["to_phone"], adult["to_push"]) == (
        "self",
        "zhang.wei@example.cn",
        "+8613800000001",
        "tok-cn-adult",
    )
    assert affected["postal-only"]["to_address"] == "四川省成都市锦江区红星路1号"
    assert affected["postal-only"]["to_email"] is None
    assert [affected["no-contact"][k] for k in ("to_email", "to_phone", "to_push", "to_address")] == [None] * 4


@pytest.mark.parametrize(
    ("discovered", "is_child"),
    [
        ("2026-03-10T08:00:00Z", False),  # the 14th birthday: no longer a child (under 14 = child, policy §八)
        ("2026-03-09T23:59:59Z", True),  # the last second before it
    ],
)
def test_a_child_who_turns_14_on_the_discovery_day_is_not_a_child(
    inventory_with_backups: WorkspaceDir, discovered: str, is_child: bool
) -> None:
    """Given a person born on 2012-03-10, then an incident discovered on 2026-03-10 reaches them directly, and
    one discovered the day before reaches their guardian."""
    opened = open_incident(inventory_with_backups, discovered=discovered)
    inventory_with_backups.ok("assess", opened.id)

    person = opened.affected()["turns-14-on-discovery"]

    assert person["is_child"] is is_child
    assert person["to_email"] == ("zhao.father@example.cn" if is_child else "zhao.qiang@example.cn")


@pytest.mark.parametrize(("now", "is_child"), [("2026-03-10 00:00:00", False), ("2026-03-09 23:59:59", True)])
def test_age_at_discovery_follows_the_clock_when_discovery_is_now(
    inventory_with_backups: WorkspaceDir, now: str, is_child: bool
) -> None:
    """Given no --discovered, then the age is taken on the day the incident is opened."""
    with freeze_time(now):
        opened = open_incident(inventory_with_backups, discovered=None)
        inventory_with_backups.ok("assess", opened.id)

    assert opened.affected()["turns-14-on-discovery"]["is_child"] is is_child


def test_the_assessment_counts_the_snapshot(assessed_incident: OpenedIncident) -> None:
    """Given the hand inventory, then the assessment counts people, records by category, sensitive, children,
    cancelled, regions, the unreachable and the letter-only."""
    counts = assessed_incident.show()["assessment"]["counts"]

    assert counts == {
        "people": 11,
        "records": 12,
        "by_category": {"bank_card": 1, "password": 2, "phone": 6, "real_name": 3},
        # Children's data is sensitive whatever it is; real_name alone is not (postal-only, turns-14).
        "sensitive": 9,
        "children": 2,
        "cancelled": 1,
        "by_region": {
            "CN": 1,
            "CN-BJ": 1,
            "CN-FJ": 1,
            "CN-GD": 1,
            "CN-JS": 1,
            "CN-SC": 1,
            "CN-SH": 1,
            "CN-ZJ": 1,
            "DE": 1,
            "US-CA": 1,
            "US-TX": 1,
        },
        "no_usable_channel": 2,  # the unreachable child and the adult with no contact
        "letter_only": 1,
    }


def test_the_regimes_and_notices_that_apply(assessed_incident: OpenedIncident) -> None:
    """Given affected people in China, Germany, California and Texas, then each regime applies with its
    residents, every person must be told, and the unreachable force a public announcement."""
    assessment = assessed_incident.show()["assessment"]

    assert {r["key"]: r["residents"] for r in assessment["regimes"]} == {"cn": 8, "eu-gdpr": 1, "us-ca": 1, "us-tx": 1}
    assert assessment["individual_notice"]["required"] is True
    assert assessment["announcement"]["required"] is True
    assert assessment["announcement"]["reasons"][0].startswith("2 affected people have no usable contact channel")
    assert assessment["grade"] == {"key": "general", "name": "general", "computed": "general", "override_reason": None}


def test_the_snapshot_holds_until_an_explicit_reassessment(assessed_incident: OpenedIncident) -> None:
    """Given an assessed incident, when the inventory changes (a new holding in scope, a new email), then the
    affected list and counts stay as assessed, even after a plain `assess`; `assess --reassess` takes them in."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    before = assessed_incident.affected()
    ws.import_inventory(
        systems=None,
        people=PEOPLE_HEADER + "\ncn-adult,张伟,new.zhang@example.cn,13800000001,,zh-CN,CN-FJ,1990-05-01,,,,,active,\n",
        holdings="person_id,system,category,since,until\norders-only,member-db,phone,2020-01-01,\n",
    )

    assert assessed_incident.affected() == before
    assert ws.json("assess", iid)["counts"]["people"] == 11
    assert assessed_incident.affected() == before

    assert ws.json("assess", iid, "--reassess")["counts"]["people"] == 12
    after = assessed_incident.affected()
    assert after["orders-only"]["categories"] == "phone"
    assert after["cn-adult"]["to_email"] == "new.zhang@example.cn"


def test_a_manual_grade_needs_a_reason(assessed_incident: OpenedIncident) -> None:
    """Given an assessed incident, when the responder raises the grade without a reason, then it is refused and
    the grade stays as computed."""
    assessed_incident.ws.refuse(
        "assess", assessed_incident.id, "--grade", "major", error="error: --grade needs --reason"
    )
    assessed_incident.ws.refuse(
        "assess", assessed_incident.id, "--grade", "huge", "--reason", "x", error="error: --grade: unknown grade 'huge'"
    )

    assert assessed_incident.show()["assessment"]["grade"]["key"] == "general"


def test_a_manual_grade_with_a_reason_overrides_until_the_next_snapshot(assessed_incident: OpenedIncident) -> None:
    """Given an assessed incident, when the responder sets a grade with a reason, then `show --json` carries it
    next to the computed grade, a plain `assess` keeps it, and a new snapshot is graded afresh."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    reason = "身份证件 and bank cards of minors: qualitative criteria"

    ws.ok("assess", iid, "--grade", "relatively-major", "--reason", reason)
    grade = assessed_incident.show()["assessment"]["grade"]
    ws.ok("assess", iid)
    kept = assessed_incident.show()["assessment"]["grade"]
    ws.ok("assess", iid, "--reassess")
    fresh = assessed_incident.show()["assessment"]["grade"]

    assert grade == {
        "key": "relatively-major",
        "name": "relatively major",
        "computed": "general",
        "override_reason": reason,
    }
    assert kept == grade
    assert fresh == {"key": "general", "name": "general", "computed": "general", "override_reason": None}


def test_the_affected_list_goes_to_a_private_csv(assessed_incident: OpenedIncident, tmp_path: Path) -> None:
    """Given an assessed incident, when the list is written with --output, then the file is owner-only CSV
    with one row per affected person."""
    target = tmp_path / "out" / "affected.csv"

    result = assessed_incident.ws.run("affected", assessed_incident.id, "--output", str(target))

    assert result.exit_code == 0, result.output
    assert f"wrote 11 people to {target}" in result.stderr
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert {r["person_id"]: r["categories"] for r in rows} == EXPECTED_AFFECTED
    assert next(r for r in rows if r["person_id"] == "cn-adult")["to_phone"] == "+8613800000001"


def test_the_affected_list_needs_an_assessment(opened_incident: OpenedIncident) -> None:
    """Given an incident not yet assessed, then there is no affected list to stream."""
    opened_incident.ws.refuse(
        "affected", opened_incident.id, error=f"error: {opened_incident.id} has not been assessed yet"
    )
