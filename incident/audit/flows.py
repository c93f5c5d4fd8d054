"""Workspace-level use cases: create a workspace, migrate its database, verify and export the audit trail.

The chain itself (audit.chain, audit.models) imports no domain; these use cases also check what the chain covers
in other domains (the delivery attempts of dispatch), as every use case may compose domains.
"""

from __future__ import annotations

from pathlib import Path

from incident.audit import chain as audit
from incident.config import Workspace, create_workspace
from incident.db import create_schema, unit_of_work


def init_workspace(directory: Path, actor: str) -> Workspace:
    """Create incident.toml and the database schema, and open the workspace audit chain."""
    ws = create_workspace(directory)
    create_schema(ws)
    with unit_of_work(ws) as session:
        if not audit.entries(session, audit.WORKSPACE_CHAIN):
            audit.record(session, audit.WORKSPACE_CHAIN, audit.Event(audit.Action.WORKSPACE_CREATED, {}), actor)
    return ws


def verify_audit(ws: Workspace, chain: str | None, head: tuple[int, str] | None = None) -> list[audit.Verdict]:
    """Verify one incident's chain (or every chain and every incident: one without a chain fails), the rows each
    chain covers, the report files, every signed approval's signature and, given one, a handed-out head."""
    from dataclasses import replace

    from incident.approvals import signature_problems
    from incident.audit import coverage
    from incident.incidents.models import get, list_incidents
    from incident.reports.models import report_file_findings

    with unit_of_work(ws, write=False) as session:
        if chain is not None:
            get(session, chain)
        names = (
            [chain] if chain is not None else sorted({*audit.chains(session), *(i.id for i in list_incidents(session))})
        )
        verdicts = []
        for name in names:
            verdict = audit.verify(session, name)
            problems: list[str] = []
            first: int | None = None
            if verdict.ok and head is not None and not audit.holds(session, name, *head):
                problems.append(audit.rewritten(*head))
                first = head[0]
            if verdict.ok and name != audit.WORKSPACE_CHAIN:
                found = coverage.problems(session, name, audit.entries(session, name))
                first = first or min((p.seq for p in found if p.seq is not None), default=None)
                files, notes = report_file_findings(session, name)
                problems += [p.text for p in found] + files + signature_problems(session, name)
                verdict = replace(verdict, notes=verdict.notes + tuple(notes))
            if problems:
                verdict = replace(verdict, ok=False, first_bad_seq=first, problem="; ".join(problems[:3]))
            verdicts.append(verdict)
        return verdicts


def chain_head(ws: Workspace, incident_id: str) -> tuple[int, str]:
    """The incident's chain head (seq, hash), to hand out: a later `audit verify --head` proves it is still there."""
    from incident.errors import IncidentError
    from incident.incidents.models import get

    with unit_of_work(ws, write=False) as session:
        get(session, incident_id)
        found = audit.head_of(session, incident_id)
    if found is None:
        raise IncidentError(f"{incident_id} has no audit chain (deleted?): `incident audit verify` fails on it")
    return found


def upgrade_database(ws: Workspace, actor: str) -> tuple[str | None, str]:
    """Migrate the schema and record it in the workspace audit chain."""
    from incident.db import upgrade_schema

    before, after = upgrade_schema(ws)
    if before != after:
        with unit_of_work(ws) as session:
            audit.record(
                session,
                audit.WORKSPACE_CHAIN,
                audit.Event(audit.Action.SCHEMA_UPGRADED, {"from": before, "to": after}),
                actor,
            )
    return before, after


def export_audit(ws: Workspace, incident_id: str, output: Path) -> str:
    """Write an incident's chain to a JSON file; return its head hash."""
    import json

    from incident.files import check_output, open_private
    from incident.incidents.models import get

    check_output(output)
    with unit_of_work(ws, write=False) as session:
        get(session, incident_id)
        data = audit.export_chain(session, incident_id)

    with open_private(output) as fh:  # the chain names actors and people ids: owner-only, like every export
        fh.write(json.dumps(data, ensure_ascii=False, indent=1))
    return str(data["head"]["hash"]) if data["head"] else ""


ENTRY_FIELDS: dict[str, type] = {
    "seq": int,
    "at": str,
    "actor": str,
    "action": str,
    "payload": str,
    "prev_hash": str,
    "hash": str,
}


def verify_exported_chain(path: Path, head: tuple[int, str] | None = None) -> audit.Verdict:
    """Verify an exported chain file without any database (and, given one, that it holds a handed-out head)."""
    import json

    from incident.datafiles import MAX_DEPTH, no_duplicate_keys, too_deep
    from incident.errors import BadInput
    from incident.files import check_input

    def bad(problem: str) -> BadInput:
        return BadInput(str(path), None, None, problem)

    check_input(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise bad("not an audit export (not UTF-8 text)") from None
    except OSError as exc:
        raise bad(f"cannot read it ({exc.strerror or exc})") from None
    deep = too_deep(text)
    if deep is not None:
        raise BadInput(str(path), deep, None, f"not an audit export (nested deeper than {MAX_DEPTH} levels)")
    try:
        data = json.loads(text, object_pairs_hook=no_duplicate_keys(lambda key: ValueError(f"{key!r} appears twice")))
    except (ValueError, RecursionError) as exc:
        raise bad(f"not a readable audit export ({str(exc)[:120]})") from None
    if not isinstance(data, dict) or not isinstance(data.get("chain"), str):
        raise bad("not an audit export (expected an object naming its `chain`)")
    entries = data.get("entries", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise bad("not an audit export (`entries` must be a list of objects)")
    for n, entry in enumerate(entries, 1):
        # The file's own shape first: a hand-edited entry is a bad file, whatever the chain's head says.
        values = {k: entry.get(k) for k in ENTRY_FIELDS}
        wrong = [k for k, v in values.items() if not isinstance(v, ENTRY_FIELDS[k]) or isinstance(v, bool)]
        if wrong:
            raise bad(f"not an audit export (entry {n}: a field is missing or malformed: {', '.join(wrong)})")
    try:
        verdict = audit.verify_export(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A hand-edited export with a field missing or of the wrong type: the file is bad, not the chain it copies.
        raise bad(f"not an audit export (a field is missing or malformed: {str(exc)[:80]})") from None
    if verdict.ok and head is not None:
        seq, digest = head
        if not audit.holds_in(entries, seq, digest):
            from dataclasses import replace

            return replace(verdict, ok=False, first_bad_seq=seq, problem=audit.rewritten(seq, digest))
    return verdict
