"""The snapshot's aggregates: people, categories, sensitive, children, regions, and who has no channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from incident import catalog
from incident.assess.models import exposed_by_region, holding_conditions, no_channel_sql, no_electronic_sql
from incident.incidents.models import Incident


def count(session: Session, incident: Incident, workspace: Path | None) -> dict[str, Any]:
    """Aggregate the snapshot: people, categories, sensitive, children, cancelled, regions, no channel."""
    conn = session.connection()
    p = {"iid": incident.id}

    def scalar(where: str = "1=1") -> int:
        sql = f"SELECT COUNT(*) FROM affected WHERE incident_id = :iid AND {where}"
        return int(conn.execute(text(sql), {**p, "true": True}).scalar_one())

    sensitive_keys = [
        c.key for c in catalog.categories(workspace).categories if c.sensitive and c.key in incident.category_list
    ]
    conditions, params = holding_conditions(session, sensitive_keys, "s")
    any_sensitive = " OR ".join(conditions) or "1=0"
    sensitive = conn.execute(
        text(f"SELECT COUNT(*) FROM affected WHERE incident_id = :iid AND (is_child = :true OR {any_sensitive})"),
        {**p, **params, "true": True},
    ).scalar_one()
    by_category: dict[str, int] = {}
    for per in exposed_by_region(session, incident).values():
        for key, n in per.items():
            by_category[key] = by_category.get(key, 0) + n
    by_category = dict(sorted(by_category.items()))
    by_region = {
        (r[0] or "unknown"): int(r[1])
        for r in conn.execute(
            text("SELECT region, COUNT(*) FROM affected WHERE incident_id = :iid GROUP BY region ORDER BY region"), p
        )
    }
    channels = catalog.playbook(incident.playbook, workspace).allowed_channels
    return {
        "people": scalar(),
        "by_category": by_category,
        "records": sum(by_category.values()),
        "sensitive": int(sensitive),
        "children": scalar("is_child = :true"),
        "cancelled": scalar("account_status = 'cancelled'"),
        "by_region": by_region,
        "no_usable_channel": scalar(no_channel_sql(channels)),
        "letter_only": scalar(f"{no_electronic_sql(channels)} AND to_address IS NOT NULL"),
    }


def residents(by_region: dict[str, int], regime: catalog.Regime) -> int:
    """How many affected people live where a regime applies."""
    return sum(n for region, n in by_region.items() if regime.covers(region))
