"""Publishing the approved announcement: public/ID/ and every configured target, each send made outside a
transaction.

The rule every send here (and on-call's warnings in reports.board) follows, as dispatch does: record the intent
(a row 'sending' with its owner process and a lease), commit, send with no transaction open, record the outcome
in a new transaction. A run that finds a 'sending' row whose process is gone (or whose lease ran out) cannot know
whether the message arrived: it marks the row unknown, sends once more and says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from incident import approvals, catalog, clock
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.config import Workspace
from incident.dispatch import transports
from incident.dispatch.recovery import owner_alive, owner_id
from incident.errors import BadConfig
from incident.files import write_public
from incident.incidents import models as incidents
from incident.reports import broadcast
from incident.reports.announcement import ANNOUNCEMENT, KINDS, file_name
from incident.reports.models import AnnouncementSend

SENDING = "sending"
SEND_LEASE = timedelta(minutes=5)  # longer than any one apprise call may take; another host's row is trusted until
IN_DOUBT = "in flight when its process stopped: it may or may not have been delivered"
RESENT = "re-sent once: it was in flight when a previous run stopped"


def owner_gone(owner: str | None, lease_until: datetime | None, now: datetime) -> bool:
    """Whether the process that recorded a 'sending' row has stopped (on this host) or its lease ran out."""
    if lease_until is None or lease_until < now:
        return True
    return owner_alive(owner or "") is False


@dataclass
class PublishResult:
    folder: Path
    files: list[Path]
    published_at: str
    first_time: bool
    sends: list[dict[str, str]] = field(default_factory=list)
    resent: int = 0  # sends a stopped run left in flight, sent once more by this run

    @property
    def failed(self) -> list[dict[str, str]]:
        return [s for s in self.sends if s["outcome"] != "sent"]


@dataclass
class Publication:
    """One run of `announce --publish`: what it sends, to which targets, and what it found in flight."""

    incident_id: str
    render_id: int
    manifest_hash: str
    title: str
    body: str
    targets: list[str]
    outbox: Path
    result: PublishResult
    in_doubt: set[str] = field(default_factory=set)  # target hashes left 'sending' by a stopped run

    @property
    def key(self) -> str:
        return f"{self.incident_id}.announcement.{self.render_id}"


def targets(ws: Workspace) -> list[str]:
    """The [announcement] targets of incident.toml: apprise URLs (a status-page webhook, a newsroom feed)."""
    found = ws.config.get("announcement", {}).get("targets", [])
    if not isinstance(found, list) or not all(isinstance(t, str) and "://" in t for t in found):
        raise BadConfig("incident.toml: [announcement] targets: give a list of apprise URLs")
    return found


def start(session: Session, ws: Workspace, incident_id: str, actor: str) -> Publication:
    """Check the approval is current, copy the approved files to public/ID/, record the first publication, and take
    over what a stopped run left in flight."""
    incident = incidents.get(session, incident_id, for_update=True)
    render = approvals.require_current(session, ws, incident, artefact=ANNOUNCEMENT)
    assert render.id is not None
    urls = targets(ws)
    public = ws.path("public", incident_id)
    written = []
    for loc in catalog.LOCALES:
        for kind in KINDS:
            name = file_name(loc, kind)
            write_public(public / name, (Path(render.folder) / name).read_bytes(), within=ws.root)
            written.append(public / name)
    now = clock.now()
    first = render.published_at is None
    if first:
        render.published_at = now
        session.add(render)
        assess.settle(session, incident_id, "announcement-published", actor, now, f"announcement {render.id}")
    assert render.published_at is not None
    bodies = {loc: (Path(render.folder) / file_name(loc, "md")).read_text(encoding="utf-8") for loc in catalog.LOCALES}
    return Publication(
        incident_id=incident_id,
        render_id=render.id,
        manifest_hash=render.manifest_hash,
        title=" / ".join(bodies[loc].splitlines()[0].lstrip("# ").strip() for loc in catalog.LOCALES),
        body="\n\n---\n\n".join(bodies.values()),
        targets=urls,
        outbox=ws.path("outbox", incident_id),
        result=PublishResult(public, written, render.published_at.isoformat(), first),
        in_doubt=recover_sends(session, incident_id, render.id, actor),
    )


def recover_sends(session: Session, incident_id: str, render_id: int, actor: str) -> set[str]:
    """Mark 'sending' rows whose process stopped unknown; return the target hashes of this render among them."""
    now = clock.now()
    stmt = select(AnnouncementSend).where(
        AnnouncementSend.incident_id == incident_id, AnnouncementSend.outcome == SENDING
    )
    found = [row for row in session.exec(stmt) if owner_gone(row.owner, row.lease_until, now)]
    for row in found:
        row.outcome, row.reason, row.at, row.owner, row.lease_until = "unknown", IN_DOUBT, now, None, None
        session.add(row)
    if found:
        audit.record(
            session,
            incident_id,
            audit.Event(
                audit.Action.ANNOUNCEMENT_SEND_RECOVERED,
                {"targets": [{"render": r.render_id, "target": r.target} for r in found], "action": "re-send once"},
            ),
            actor,
        )
    return {row.target_hash for row in found if row.render_id == render_id}


def claim_send(session: Session, publication: Publication, url: str) -> int | None:
    """Record the intent to send to one target (committed before the call); None when it needs no send: already
    reached, or another run is sending it now."""
    incidents.get(session, publication.incident_id, for_update=True)  # one claimer at a time
    target_hash = broadcast.url_hash(url)
    rows = session.exec(
        select(AnnouncementSend).where(
            AnnouncementSend.render_id == publication.render_id, AnnouncementSend.target_hash == target_hash
        )
    ).all()
    masked = broadcast.mask_url(url)
    if any(r.outcome == "sent" for r in rows):
        publication.result.sends.append({"target": masked, "outcome": "sent", "reason": "already sent"})
        return None
    if any(r.outcome == SENDING for r in rows):
        publication.result.sends.append(
            {"target": masked, "outcome": SENDING, "reason": "another run is sending it now"}
        )
        return None
    now = clock.now()
    row = AnnouncementSend(
        incident_id=publication.incident_id,
        render_id=publication.render_id,
        target=masked,
        target_hash=target_hash,
        at=now,
        outcome=SENDING,
        owner=owner_id(),
        lease_until=now + SEND_LEASE,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return row.id


def send(publication: Publication, url: str) -> transports.Outcome:
    """The one call to one target (no transaction may be open: it can take as long as the target does)."""
    return broadcast.send_text(url, publication.key, publication.title, publication.body, publication.outbox)


def record_send(
    session: Session, publication: Publication, send_id: int, url: str, outcome: transports.Outcome
) -> None:
    """Settle the claimed send with its outcome (a failure is retried by the next publish)."""
    row = session.get(AnnouncementSend, send_id)
    assert row is not None
    row.outcome, row.reason, row.at = outcome.status, outcome.reason or None, clock.now()
    row.owner, row.lease_until = None, None
    session.add(row)
    reason = outcome.reason
    if row.target_hash in publication.in_doubt:
        publication.result.resent += 1
        reason = RESENT + (f"; {outcome.reason}" if outcome.reason else "")
    publication.result.sends.append({"target": row.target, "outcome": outcome.status, "reason": reason})


def finish(session: Session, publication: Publication, actor: str) -> None:
    """Audit the run: which render went out, first time or again, and what each target answered."""
    audit.record(
        session,
        publication.incident_id,
        audit.Event(
            audit.Action.ANNOUNCEMENT_PUBLISHED,
            {
                "render": publication.render_id,
                "manifest": publication.manifest_hash,
                "first": publication.result.first_time,
                "targets": [{"target": s["target"], "outcome": s["outcome"]} for s in publication.result.sends],
            },
        ),
        actor,
    )
