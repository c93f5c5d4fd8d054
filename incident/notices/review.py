"""The review bundle legal reads, the manifest an approval binds to, and whether an approval still holds."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import text
from sqlmodel import Session, select

from incident import clock
from incident.audit import chain as audit
from incident.config import Workspace
from incident.errors import IncidentError, InvalidArgument
from incident.incidents import models as incidents
from incident.incidents.models import Status
from incident.notices import content
from incident.notices import render as rendering
from incident.notices.models import Approval, Notice, Render, unpack_content


def workspace_secret(session: Session) -> str:
    """The workspace's secret for notice references (created once, kept in the database)."""
    conn = session.connection()
    found = conn.execute(text("SELECT value FROM schema_meta WHERE key = 'notice_secret'")).scalar()
    if found:
        return str(found)
    value = secrets.token_hex(32)
    conn.execute(text("INSERT INTO schema_meta (key, value) VALUES ('notice_secret', :v)"), {"v": value})
    return value


def mask_name(name: str | None) -> str:
    """张三丰 → 张**, Anna Smith → A*** S****."""
    if not name:
        return ""
    if " " in name:
        return " ".join(mask_name(part) for part in name.split())
    return name[0] + "*" * (len(name) - 1)


def mask_email(email: str | None) -> str:
    if not email:
        return ""
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str | None) -> str:
    if not phone:
        return ""
    return phone[:4] + "*" * max(0, len(phone) - 8) + phone[-4:] if len(phone) > 8 else "****"


def mask_person(person: dict[str, Any]) -> dict[str, Any]:
    """A copy of an affected person with every contact detail and name masked (for the review bundle)."""
    masked = dict(person)
    masked["to_name"] = mask_name(person["to_name"])
    masked["subject_name"] = mask_name(person["subject_name"])
    masked["to_email"] = mask_email(person["to_email"])
    masked["to_phone"] = mask_phone(person["to_phone"])
    masked["to_push"] = "****" if person["to_push"] else None
    masked["to_address"] = "*** (masked)" if person["to_address"] else None
    masked["person_id"] = mask_phone(person["person_id"]) if len(person["person_id"]) > 8 else "****"
    return masked


def file_sha256(path: Path) -> str:
    """sha256 of a file read in chunks (a manifest of 200,000 people is tens of MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class ManifestLines:
    entries: str  # the manifest's JSON objects, one a line, comma-separated
    digest: bytes  # what they add to notices_digest


def manifest_lines(notices: list[tuple[str, str, str]]) -> ManifestLines:
    """Format (person, channel, sha256) notices for manifest.json and for its notices digest."""
    entries = ",\n".join(
        f'{{"person": {json.dumps(person, ensure_ascii=False)}, "channel": "{channel}", "sha256": "{sha}"}}'
        for person, channel, sha in notices
    )
    digest = "".join(f"{person}\x1f{channel}\x1f{sha}\n" for person, channel, sha in notices).encode()
    return ManifestLines(entries, digest)


class ManifestWriter:
    """Stream manifest.json: every template, the playbook, the facts, and every rendered notice's sha256."""

    def __init__(self, fh: Any, path: Path) -> None:
        self.fh, self.path, self.first, self.digest = fh, path, True, hashlib.sha256()
        fh.write('{"notices": [\n')

    def notices(self, lines: ManifestLines) -> None:
        """Append a batch of notices, as `manifest_lines` formatted them (in a pool worker)."""
        if lines.entries:
            self.fh.write(("" if self.first else ",\n") + lines.entries)
            self.digest.update(lines.digest)
            self.first = False

    def finish(self, incident_id: str, at: datetime, prints: dict[str, Any]) -> str:
        tail = {
            "incident": incident_id,
            "rendered_at": at.isoformat(),
            "notices_digest": self.digest.hexdigest(),
            **prints,
        }
        self.fh.write("\n],\n" + json.dumps(tail, ensure_ascii=False, indent=1, sort_keys=True)[1:])
        self.fh.flush()
        self.fh.close()
        return file_sha256(self.path)


@dataclass
class Bundle:
    ws: Workspace
    incident_id: str

    @property
    def folder(self) -> Path:
        return self.ws.path("review", self.incident_id)

    @contextmanager
    def manifest_writer(self) -> Iterator[ManifestWriter]:
        from incident.files import private_dir

        private_dir(self.folder)  # review/ too: mkdir(parents=True) would leave it at the umask's default
        os.chmod(self.folder, 0o700)
        path = self.folder / "manifest.json"
        part = path.with_name("manifest.json.part")
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yield ManifestWriter(fh, part)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        # Swap in only a whole manifest: a failed render must not break the one an approval is bound to.
        os.replace(part, path)

    def write_index(
        self,
        session: Session,
        static: dict[str, Any],
        today: dict[str, str],
        variants: dict[str, int],
        examples: dict[str, dict[str, Any]],
        lint_summary: dict[str, Any],
        manifest_hash: str,
        incident: incidents.Incident,
    ) -> Path:
        """Render index.html: one masked real example of every variant, how many receive it, lint results."""
        from incident.notices import templates

        env = templates.environment(self.ws.root)
        shown = []
        for key in sorted(variants):
            locale, channel, audience, cats = key.split("|")
            masked = mask_person(examples[key])
            _, rendered = rendering.render_person(env, static, masked, today)
            notice = next(r for r in rendered if r["channel"] == channel)
            shown.append(
                {
                    "key": key,
                    "locale": locale,
                    "channel": channel,
                    "audience": audience,
                    "categories": cats.replace(",", ", "),
                    "count": variants[key],
                    **notice,
                }
            )
        page = (
            _review_env()
            .get_template("review.html.j2")
            .render(
                incident=incident,
                title=content.clean(incident.title),
                variants=shown,
                total=sum(variants.values()),
                lint=lint_summary,
                manifest_hash=manifest_hash,
                generated=clock.now().isoformat(timespec="seconds"),
                by_channel=_sum_by(shown, "channel"),
                by_locale=_sum_by(shown, "locale"),
            )
        )
        path = self.folder / "index.html"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        return path


def _sum_by(shown: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in shown:
        out[v[key]] = out.get(v[key], 0) + v["count"]
    return out


def _review_env() -> Environment:
    # The review page is the tool's own template (not a lawyer's); its data is still escaped.
    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"]))


# ---- approval -----------------------------------------------------------------------------------


def current_render(session: Session, incident_id: str) -> Render | None:
    """The newest render of an incident."""
    stmt = select(Render).where(Render.incident_id == incident_id).order_by(Render.id.desc())  # type: ignore[union-attr]
    return session.exec(stmt).first()


def latest_decision(session: Session, render_id: int) -> Approval | None:
    stmt = select(Approval).where(Approval.render_id == render_id).order_by(Approval.id.desc())  # type: ignore[union-attr]
    return session.exec(stmt).first()


def changes_since(session: Session, ws: Workspace, incident: incidents.Incident, render: Render) -> list[str]:
    """Name everything that changed since the render: templates, playbook, facts, affected set, notices."""
    before = json.loads(render.fingerprint)
    now = rendering.fingerprint(session, ws, incident)
    changed: list[str] = []
    old_t, new_t = before.get("templates", {}), now["templates"]
    for name in sorted(set(old_t) | set(new_t)):
        if old_t.get(name) != new_t.get(name):
            changed.append(
                f"template {name} changed"
                if name in old_t and name in new_t
                else f"template {name} {'added' if name in new_t else 'removed'}"
            )
    labels = {
        "playbook": "the playbook",
        "categories": "the data-category catalogue",
        "organisation": "the organisation details in incident.toml",
        "facts": "the incident facts or logged actions",
        "affected": "the affected set (re-assessed)",
    }
    for key, label in labels.items():
        if before.get(key) != now[key]:
            changed.append(f"{label} changed")
    if notices_digest(session, incident.id) != before_digest(render, ws):
        changed.append("rendered notices in the database differ from the approved manifest")
    return changed


def notices_digest(session: Session, incident_id: str) -> str:
    """Recompute the manifest's notices digest from the stored notices and their content."""
    digest = hashlib.sha256()
    rows = session.connection().execute(
        text(
            "SELECT person_id, channel, subject, body, html, sha256 FROM notice WHERE incident_id = :iid "
            "ORDER BY person_id, id"
        ),
        {"iid": incident_id},
        execution_options={"stream_results": True, "yield_per": 2000},
    )
    for person_id, channel, subject, body, html, sha in rows:
        actual = rendering.notice_sha(subject, *unpack_content(body, html))
        digest.update(f"{person_id}\x1f{channel}\x1f{actual if actual == sha else 'TAMPERED'}\n".encode())
    return digest.hexdigest()


TAIL_MARK = b"\n],\n"  # ends the notices list; what follows is ManifestWriter.finish's object (no list entry
# holds a newline: json.dumps escapes it)


def manifest_tail(path: Path, chunk: int = 1 << 16) -> dict[str, Any]:
    """The object after the notices in manifest.json, read from the end of the file (the list is tens of MB)."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        start, found = size, -1
        while found < 0 and start > 0:
            start = max(0, start - chunk)
            fh.seek(start)
            found = fh.read(size - start).rfind(TAIL_MARK)
        if found < 0:
            raise ValueError("no end of the notices list")
        fh.seek(start + found + len(TAIL_MARK))
        tail = json.loads(b"{" + fh.read())
    if not isinstance(tail, dict):
        raise ValueError("not an object")
    return tail


def before_digest(render: Render, ws: Workspace) -> str | None:
    """The notices digest of the manifest the render wrote, if that file is still the one it hashed."""
    path = Path(render.bundle) / "manifest.json"
    try:
        if file_sha256(path) != render.manifest_hash:
            return None
        return str(manifest_tail(path).get("notices_digest"))
    except (OSError, ValueError):
        return None


def approval_state(session: Session, ws: Workspace, incident: incidents.Incident) -> dict[str, Any]:
    """Where approval stands: none, rejected, approved (current) or stale (naming what changed)."""
    render = current_render(session, incident.id)
    if render is None:
        return {"state": "not rendered", "changes": []}
    decision = latest_decision(session, render.id)  # type: ignore[arg-type]
    base = {"render": render.id, "manifest": render.manifest_hash, "notices": render.notices, "bundle": render.bundle}
    if decision is None:
        return {**base, "state": "awaiting review", "changes": []}
    base |= {"reviewer": decision.reviewer, "at": decision.at.isoformat(), "comment": decision.comment}
    if decision.decision == "rejected":
        return {**base, "state": "rejected", "changes": []}
    changes = changes_since(session, ws, incident, render)
    return {**base, "state": "stale" if changes else "approved", "changes": changes}


def decide(
    session: Session, ws: Workspace, incident_id: str, reviewer: str, decision: str, comment: str | None, actor: str
) -> Approval:
    """Record a reviewer's approval (bound to the manifest hash) or rejection (back to re-render)."""
    if not reviewer.strip():
        raise InvalidArgument("--reviewer: name the reviewer")
    incident = incidents.get(session, incident_id, for_update=True)
    render = current_render(session, incident_id)
    if render is None or Status(incident.status) not in (Status.RENDERED, Status.APPROVED):
        raise IncidentError(f"{incident_id} has no rendered notices awaiting review (status '{incident.status}')")
    if decision == "approved":
        changes = changes_since(session, ws, incident, render)
        if changes:
            raise IncidentError(
                "cannot approve: " + "; ".join(changes) + f" (re-render with `incident notices render {incident_id}`)"
            )
    elif not (comment or "").strip():
        raise InvalidArgument("--comment: say why the notices are rejected")
    approval = Approval(
        incident_id=incident_id,
        render_id=render.id,
        decision=decision,
        reviewer=reviewer,  # type: ignore[arg-type]
        comment=comment,
        at=clock.now(),
        manifest_hash=render.manifest_hash,
    )
    session.add(approval)
    incidents.transition(
        session,
        incident,
        Status.APPROVED if decision == "approved" else Status.ASSESSED,
        actor,
        f"notices {decision} by {reviewer}",
    )
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action(f"notices-{decision}"),
            {"render": render.id, "manifest": render.manifest_hash, "reviewer": reviewer, "comment": comment},
        ),
        actor,
    )
    return approval


def require_current_approval(session: Session, ws: Workspace, incident: incidents.Incident) -> Render:
    """Return the approved render, or refuse naming what is missing or what changed."""
    state = approval_state(session, ws, incident)
    if state["state"] == "approved":
        render = current_render(session, incident.id)
        assert render is not None
        return render
    if state["state"] == "stale":
        raise IncidentError(
            "the approval is stale: "
            + "; ".join(state["changes"])
            + f" (re-render and have legal approve again: `incident notices render {incident.id}`)"
        )
    raise IncidentError(
        f"{incident.id} notices are not approved ({state['state']}): run `incident notices "
        f"approve {incident.id} --reviewer NAME` after reviewing the bundle"
    )


def stored_notice(session: Session, incident_id: str, person_id: str, channel: str | None) -> list[dict[str, Any]]:
    """One person's rendered notices, decompressed."""
    stmt = select(Notice).where(Notice.incident_id == incident_id, Notice.person_id == person_id)
    if channel:
        stmt = stmt.where(Notice.channel == channel)
    out = []
    for n in session.exec(stmt.order_by(Notice.id)):  # type: ignore[arg-type]
        body, html = unpack_content(n.body, n.html)
        out.append(
            {
                "channel": n.channel,
                "locale": n.locale,
                "audience": n.audience,
                "ref": n.ref,
                "subject": n.subject,
                "body": body,
                "html": html,
                "sha256": n.sha256,
            }
        )
    return out
