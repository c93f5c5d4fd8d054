"""What a render depends on, hashed: templates, playbook, categories, organisation, facts, the affected set."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlmodel import Session

from incident.assess.models import AFFECTED_COLUMNS, affected_dicts
from incident.config import Workspace
from incident.incidents import models as incidents
from incident.notices import content, template_files


def affected_hash(session: Session, incident_id: str) -> str:
    """A hash of the affected set and everything about each person that a notice uses."""
    digest = hashlib.sha256()
    for person in affected_dicts(session, incident_id):
        digest.update(json.dumps([person[c] for c in AFFECTED_COLUMNS], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def fingerprint(
    session: Session, ws: Workspace, incident: incidents.Incident, affected: str | None = None
) -> dict[str, Any]:
    """The hashes of everything a render depends on; an approval goes stale when any of them changes."""
    from incident import catalog

    # An entry without English hashes as before the English existed, so upgrading voids no approval by itself.
    entries = [e for e in incidents.timeline(session, incident.id) if e.kind == "action"]
    actions = [e.text if e.text_en is None else [e.text, e.text_en] for e in entries]
    facts = json.dumps({**incidents.facts(incident), "actions": actions}, ensure_ascii=False, sort_keys=True)
    hashes = template_files.template_hashes(ws.root)
    return {
        "templates": {k: v for k, v in hashes.items() if template_files.is_notice_template(k)},
        "playbook": content.file_sha(catalog.playbook_path(incident.playbook, ws.root)),
        "categories": content.file_sha(catalog.data_file("categories.yaml", ws.root)),
        "organisation": hashlib.sha256(json.dumps(ws.organisation, sort_keys=True).encode()).hexdigest(),
        "facts": hashlib.sha256(facts.encode()).hexdigest(),
        "affected": affected or affected_hash(session, incident.id),
    }
