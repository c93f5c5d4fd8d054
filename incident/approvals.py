"""One approval for every reviewed artefact (the notices, the announcement, later a call-centre pack or a
correction notice): render → manifest → decide → stale.

A decision binds to one render of one artefact through the render's manifest hash; anything the manifest covers
that changes afterwards voids it. Each artefact says, in an `Artefact`, how to find its current render, what
changed since, how its messages read and what a decision does beyond being recorded."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, Session, SQLModel, select

from incident import clock
from incident.audit import chain as audit
from incident.audit import coverage
from incident.config import Workspace
from incident.db import UTCDateTime
from incident.errors import IncidentError, InvalidArgument
from incident.incidents import models as incidents


class Decision(StrEnum):
    """What a reviewer decided about a render."""

    APPROVED = "approved"
    REJECTED = "rejected"


class Approval(SQLModel, table=True):
    """A reviewer's decision on one render of one artefact, bound to its manifest hash."""

    __tablename__ = "approval"
    __table_args__ = (Index("ix_approval_key", "incident_id", "artefact", "version", "manifest_hash"),)
    id: int | None = Field(default=None, primary_key=True)
    incident_id: str = Field(foreign_key="incident.id")
    artefact: str  # notices | announcement
    version: int  # the wave of notices or the version of the announcement: 1 until there are several
    manifest_hash: str
    render_id: int  # the artefact's own render row (notices: render, announcement: announcement_render)
    decision: str  # a Decision
    reviewer: str
    comment: str | None = Field(default=None, sa_column=Column(Text))
    at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    signature: str | None = Field(default=None, sa_column=Column(Text))  # ssh-keygen -Y sign over statement()
    signer: str | None = None  # the signing key's fingerprint (SHA256:...)


coverage.declare(
    "approval",
    key="id",
    columns=(
        "id",
        "artefact",
        "version",
        "manifest_hash",
        "render_id",
        "decision",
        "reviewer",
        "comment",
        "at",
        "signature",
        "signer",
    ),
)


class Rendered(Protocol):
    """What every artefact's render row has: an id, its incident and the hash of the manifest it wrote."""

    @property
    def id(self) -> int | None: ...

    @property
    def incident_id(self) -> str: ...

    @property
    def manifest_hash(self) -> str: ...


R = TypeVar("R", bound=Rendered)


def _approved(_: Any) -> str:
    return "approved"


def _first_version(_: Any) -> int:
    return 1


@dataclass(frozen=True)
class Artefact(Generic[R]):
    """How one reviewed artefact plugs into the approval: its renders, its staleness and its wording.

    The messages are templates over {id} (the incident), {state} and {changes} (what changed, `; `-joined)."""

    name: str  # stored in approval.artefact and named in the audit events (notices-approved)
    current_render: Callable[[Session, str], R | None]
    changes_since: Callable[[Session, Workspace, R], list[str]]
    summary: Callable[[R], dict[str, Any]]  # what approval_state shows of a render
    nothing_to_decide: Callable[[incidents.Incident, R | None], str | None]  # why a decision is refused, if it is
    cannot_approve: str
    stale: str
    not_approved: str
    reject_needs_comment: str
    on_decision: Callable[[Session, incidents.Incident, Decision, str, str], None] | None = None  # reviewer, actor
    current_state: Callable[[R], str] = _approved  # the state of a current approval (the announcement: published)
    accepted: tuple[str, ...] = ("approved",)  # the states require_current lets through
    version: Callable[[R], int] = _first_version
    in_progress: Callable[[Session, str], str | None] | None = None  # a render under way, described, if any
    failures: Callable[[R], list[str]] | None = None  # the render's lint failures: approval refused while any stand


def latest_decision(session: Session, artefact: Artefact[R], render: R) -> Approval | None:
    """The newest decision on exactly this render of the artefact (same version, same manifest)."""
    stmt = (
        select(Approval)
        .where(
            Approval.incident_id == render.incident_id,
            Approval.artefact == artefact.name,
            Approval.version == artefact.version(render),
            Approval.manifest_hash == render.manifest_hash,
            Approval.render_id == render.id,
        )
        .order_by(Approval.id.desc())  # type: ignore[union-attr]
    )
    return session.exec(stmt).first()


def last_approved(session: Session, incident_id: str, artefact_name: str) -> Approval | None:
    """The newest approval of the incident's artefact, whichever render it was made on."""
    stmt = select(Approval).where(
        Approval.incident_id == incident_id,
        Approval.artefact == artefact_name,
        Approval.decision == Decision.APPROVED,
    )
    return session.exec(stmt.order_by(Approval.id.desc())).first()  # type: ignore[union-attr]


def approval_state(
    session: Session, ws: Workspace, incident: incidents.Incident, *, artefact: Artefact[R]
) -> dict[str, Any]:
    """Where the artefact stands: not rendered, awaiting review, rejected, approved (or the artefact's own word for
    a current approval) or stale, naming what changed."""
    render = artefact.current_render(session, incident.id)
    if render is None:
        return {"state": "not rendered", "changes": []}
    base = artefact.summary(render)
    decision = latest_decision(session, artefact, render)
    if decision is None:
        return {**base, "state": "awaiting review", "changes": []}
    base |= {"reviewer": decision.reviewer, "at": decision.at.isoformat(), "comment": decision.comment}
    if decision.decision == Decision.REJECTED:
        return {**base, "state": "rejected", "changes": []}
    changes = artefact.changes_since(session, ws, render)
    return {**base, "state": "stale" if changes else artefact.current_state(render), "changes": changes}


def decide(
    session: Session,
    ws: Workspace,
    incident_id: str,
    *,
    artefact: Artefact[R],
    reviewer: str,
    decision: Decision,
    comment: str | None,
    actor: str,
    manifest: str | None,
    sign_key: Path | None = None,
) -> Approval:
    """Record a reviewer's decision on the current render: an approval only of the manifest the reviewer names
    and only while nothing has changed since it was rendered, a rejection only with a comment; either bound to
    the render's manifest hash, optionally signed with the reviewer's SSH key, and audited."""
    if not reviewer.strip():
        raise InvalidArgument("--reviewer: name the reviewer")
    given = _manifest_prefix(manifest, required=decision == Decision.APPROVED)
    incident = incidents.get(session, incident_id, for_update=True)
    refuse_while_rendering(session, incident_id, artefact=artefact)
    render = artefact.current_render(session, incident_id)
    refused = artefact.nothing_to_decide(incident, render)
    if refused is not None or render is None:
        raise IncidentError(refused or f"{incident_id} has nothing rendered to review")
    if given is not None and not render.manifest_hash.startswith(given):
        raise IncidentError(
            f"--manifest {given}: not the manifest of the current {artefact.name} render ({render.manifest_hash}): "
            "it was re-rendered after the render you reviewed; review the current bundle and approve its manifest"
        )
    if decision == Decision.APPROVED:
        changes = artefact.changes_since(session, ws, render)
        if changes:
            raise IncidentError(artefact.cannot_approve.format(id=incident_id, changes="; ".join(changes)))
        failed = artefact.failures(render) if artefact.failures is not None else []
        if failed:
            raise IncidentError(
                f"cannot approve the {artefact.name}: {len(failed)} lint failure(s) stand: "
                + "; ".join(failed[:5])
                + " (correct the template, the texts or the record, then render again)"
            )
    elif not (comment or "").strip():
        raise InvalidArgument(artefact.reject_needs_comment)
    assert render.id is not None
    approval = Approval(
        incident_id=incident_id,
        artefact=artefact.name,
        version=artefact.version(render),
        manifest_hash=render.manifest_hash,
        render_id=render.id,
        decision=decision,
        reviewer=reviewer,
        comment=comment,
        at=clock.now().replace(microsecond=0),  # the signed statement names the second
    )
    if sign_key is not None:
        from incident import signing

        approval.signature, approval.signer = signing.sign(statement(approval), sign_key)
    session.add(approval)
    if artefact.on_decision is not None:
        artefact.on_decision(session, incident, decision, reviewer, actor)
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action(f"{artefact.name}-{decision}"),
            {
                "render": render.id,
                "manifest": render.manifest_hash,
                "reviewer": reviewer,
                # A digest only: a comment is free text that may quote an affected person, and a purge keeps the
                # chain (the text itself stays in the approval table, next to the other responder text).
                "comment_sha256": hashlib.sha256(comment.encode("utf-8")).hexdigest() if comment else None,
                **({"signer": approval.signer} if approval.signer else {}),
            },
        ),
        actor,
    )
    return approval


def require_current(session: Session, ws: Workspace, incident: incidents.Incident, *, artefact: Artefact[R]) -> R:
    """Return the render a current approval holds, or refuse naming what is missing or what changed."""
    state = approval_state(session, ws, incident, artefact=artefact)
    if state["state"] in artefact.accepted:
        render = artefact.current_render(session, incident.id)
        assert render is not None
        return render
    if state["state"] == "stale":
        raise IncidentError(artefact.stale.format(id=incident.id, changes="; ".join(state["changes"])))
    raise IncidentError(artefact.not_approved.format(id=incident.id, state=state["state"]))


MANIFEST_PREFIX = re.compile(r"[0-9a-f]{12,64}")


def _manifest_prefix(manifest: str | None, *, required: bool) -> str | None:
    """The manifest sha256 (or a prefix of 12 or more hex characters) the reviewer names, normalised."""
    if manifest is None:
        if required:
            raise InvalidArgument(
                "--manifest: name the manifest sha256 you reviewed (printed by render, shown on the review page)"
            )
        return None
    given = manifest.strip().lower()
    if not MANIFEST_PREFIX.fullmatch(given):
        raise InvalidArgument("--manifest: give the manifest sha256, or at least its first 12 hex characters")
    return given


def refuse_while_rendering(session: Session, incident_id: str, *, artefact: Artefact[R]) -> None:
    """Refuse a decision while a render of the artefact has started and not finished: it would replace what
    was reviewed."""
    if artefact.in_progress is not None:
        running = artefact.in_progress(session, incident_id)
        if running is not None:
            raise IncidentError(f"cannot decide on {incident_id} {artefact.name} while {running}")


def statement(approval: Approval) -> str:
    """What a signed approval says, from its own row: an edit to any of these fields breaks the signature."""
    return (
        f"incident-approval v1\nincident: {approval.incident_id}\nartefact: {approval.artefact}\n"
        f"version: {approval.version}\nmanifest: {approval.manifest_hash}\ndecision: {approval.decision}\n"
        f"reviewer: {approval.reviewer}\nat: {approval.at.isoformat(timespec='seconds')}\n"
    )


def signature_problems(session: Session, incident_id: str) -> list[str]:
    """Every stored approval signature of the incident that does not verify, or whose key is not the one
    recorded; empty when all do (unsigned approvals have nothing to check)."""
    from incident import signing

    stmt = select(Approval).where(Approval.incident_id == incident_id, Approval.signature.is_not(None))  # type: ignore[union-attr]
    problems = []
    for approval in session.exec(stmt.order_by(Approval.id)):  # type: ignore[arg-type]
        assert approval.signature is not None
        problem, signer = signing.check(statement(approval), approval.signature)
        if problem is None and signer != approval.signer:
            problem = f"signed by {signer}, recorded as {approval.signer}"
        if problem is not None:
            problems.append(f"approval {approval.id} ({approval.artefact}): {problem}")
    return problems


def decided(approval: Approval) -> dict[str, Any]:
    """What a decision recorded, as the CLI prints it."""
    return {
        "incident": approval.incident_id,
        "artefact": approval.artefact,
        "decision": approval.decision,
        "render": approval.render_id,
        "manifest": approval.manifest_hash,
        "reviewer": approval.reviewer,
        "at": approval.at.isoformat(),
        "signer": approval.signer,
    }


def decide_in_units(
    ws: Workspace,
    incident_id: str,
    *,
    artefact: Artefact[Any],
    reviewer: str,
    decision: str,
    comment: str | None,
    actor: str,
    manifest: str | None,
    sign_key: Path | None = None,
) -> dict[str, Any]:
    """The decision use case of every artefact: refuse while a render runs, then decide in one unit of work and
    return what was decided."""
    from incident.db import unit_of_work

    # A render holds the write lock while it runs: look for it first without waiting for that lock.
    with unit_of_work(ws, write=False) as session:
        refuse_while_rendering(session, incident_id, artefact=artefact)
    with unit_of_work(ws) as session:
        return decided(
            decide(
                session,
                ws,
                incident_id,
                artefact=artefact,
                reviewer=reviewer,
                decision=Decision(decision),
                comment=comment,
                actor=actor,
                manifest=manifest,
                sign_key=sign_key,
            )
        )
