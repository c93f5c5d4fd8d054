"""Who is affected: the people whose holdings were in the incident's scope, in one INSERT..SELECT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, text
from sqlmodel import Session

from incident.incidents.models import Incident
from incident.inventory.models import child_cutoff

AFFECTED_INSERT = """
INSERT INTO affected (incident_id, person_id, subject_name, audience, to_name, to_email, to_phone, to_push,
                      to_address, locale, region, account_status, is_child, categories)
SELECT :iid, p.person_id, p.name,
       CASE WHEN p.birth_date > :cutoff THEN 'guardian' ELSE 'self' END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_name ELSE p.name END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_email ELSE p.email END,
       CASE WHEN p.birth_date > :cutoff THEN p.guardian_phone ELSE p.phone END,
       CASE WHEN p.birth_date > :cutoff THEN NULL ELSE p.push_token END,
       CASE WHEN p.birth_date > :cutoff AND p.guardian_name IS NULL THEN NULL ELSE p.postal_address END,
       p.locale, p.region, p.account_status,
       CASE WHEN p.birth_date > :cutoff THEN :true ELSE :false END,
       e.cats
FROM ({grouped}) e JOIN person p ON p.person_id = e.person_id
"""


# Each person in scope with their exposed categories, sorted and comma-separated, straight from the holdings.
GROUPED = {
    "sqlite": "SELECT person_id, group_concat(category, ',') AS cats FROM (SELECT DISTINCT h.person_id, h.category "
    "FROM holding h WHERE {scope} ORDER BY h.person_id, h.category) GROUP BY person_id",
    "postgresql": "SELECT h.person_id, string_agg(DISTINCT h.category, ',' ORDER BY h.category) AS cats "
    "FROM holding h WHERE {scope} GROUP BY h.person_id",
}


def scope_params(incident: Incident) -> dict[str, Any]:
    """The SQL parameters of an incident's scope: systems, categories, exposure window."""
    return {
        "systems": incident.system_list,
        "categories": incident.category_list,
        "from": incident.exposure_from.date().isoformat(),
        "to": incident.exposure_to.date().isoformat(),
    }


# A holding is in scope when its system and category are the incident's and its period overlaps the window.
SCOPE_WHERE = (
    "h.system IN :systems AND h.category IN :categories AND h.since <= :to AND (h.until IS NULL OR h.until >= :from)"
)


def determine_affected(session: Session, incident: Incident) -> int:
    """Replace the incident's snapshot with the people whose holdings were in scope; return how many.

    One INSERT..SELECT: the holdings in scope grouped per person (their categories joined), joined to the person.
    """
    conn = session.connection()
    iid = incident.id
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":  # sort and hash 200,000 people in memory rather than in temporary files
        conn.execute(text("SET LOCAL work_mem = '64MB'"))
    conn.execute(text("DELETE FROM affected WHERE incident_id = :iid"), {"iid": iid})
    grouped = GROUPED.get(dialect, GROUPED["postgresql"]).format(scope=SCOPE_WHERE)
    cutoff = child_cutoff(incident.discovered_at.date()).isoformat()
    insert = text(AFFECTED_INSERT.format(grouped=grouped)).bindparams(
        bindparam("systems", expanding=True), bindparam("categories", expanding=True)
    )
    result = conn.execute(
        insert, {"iid": iid, "cutoff": cutoff, "true": True, "false": False, **scope_params(incident)}
    )
    return int(result.rowcount)
