"""The public announcement (substitute notice): what it says, its lint, its render and manifest, and what voids
its approval (publishing is in reports.publishing)."""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from incident import approvals, catalog, clock, zones
from incident.assess import models as assess
from incident.audit import chain as audit
from incident.config import Workspace
from incident.errors import IncidentError
from incident.files import write_public
from incident.incidents import models as incidents
from incident.notices import content, lint, template_files
from incident.reports import aggregates
from incident.reports.models import AnnouncementRender

KINDS = ("html", "md")
MANIFEST = "announcement-manifest.json"


def file_name(locale: str, kind: str) -> str:
    return f"announcement.{locale}.{kind}"


def about(n: int, locale: str) -> str:
    """A head-count for the public: rounded and said as 'about' (exact figures go to the regulators)."""
    zh = locale == "zh-CN"
    if n < 10:
        return "少于10" if zh else "fewer than 10"
    step = 10 if n < 1_000 else 100 if n < 100_000 else 1_000
    rounded = (n + step // 2) // step * step
    if zh:
        return f"约{rounded / 10_000:g}万" if rounded >= 10_000 else f"约{rounded}"
    return f"about {rounded:,}"


def public_counts(counts: dict[str, Any]) -> dict[str, Any]:
    """The exact aggregates the announcement is based on (an approval goes stale when they change)."""
    return {"people": counts["people"], "children": counts["children"], "by_category": counts["by_category"]}


def public_context(
    session: Session, ws: Workspace, incident: incidents.Incident, *, counts: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Per locale, everything the announcement says: no person's data, head-counts rounded."""
    static = content.static_context(session, ws, incident)
    cats = sorted(counts["by_category"].items(), key=lambda kv: (-static["categories"][kv[0]]["rank"], kv[0]))
    out: dict[str, dict[str, Any]] = {}
    for loc in catalog.LOCALES:
        categories = []
        for key, n in cats:
            c = static["categories"][key]
            categories.append(
                {
                    "key": key,
                    "label": c["label"][loc],
                    "sensitive": c["sensitive"],
                    "people": about(n, loc),
                    "impact": c["impact"][loc],
                    "urgent": c["urgent"][loc],
                    "advice": [static["advice"][a][loc] for a in c["advice"]],
                }
            )
        out[loc] = {
            **static["locales"][loc],
            "org": static["org"],
            "officer": static["officer"],
            "lookup_url": static["lookup_url"],
            "categories": categories,
            "people": about(counts["people"], loc),
            "children": about(counts["children"], loc) if counts["children"] else None,
            "locale": loc,
            "zone": zones.zone_for(static["org"].get("location")),  # the organisation's clock, named
        }
    return out


def template_names(ws: Workspace) -> list[str]:
    """The announcement templates and every template they include (for the manifest)."""
    from jinja2 import meta

    from incident.notices import templates

    env = templates.environment(ws.root)
    todo = [f"{loc}/announcement.{kind}.j2" for loc in catalog.LOCALES for kind in KINDS]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = env.loader.get_source(env, name)[0]  # type: ignore[union-attr]
        for ref in meta.find_referenced_templates(env.parse(source)):
            if ref is None:  # a computed include: be safe and bind every template
                return sorted(template_files.template_files(ws.root))
            todo.append(ref)
    return sorted(seen)


def fingerprint(
    ws: Workspace, facts: dict[str, Any], counts: dict[str, Any], names: list[str] | None = None
) -> dict[str, Any]:
    """What an approval binds to besides the files: the templates in effect, the facts and the counts.

    `names`: the templates a render used, as its manifest lists them. Any change to what they include edits one
    of them, so staleness needs no template parsing (and a read command no Jinja)."""
    hashes = template_files.template_hashes(ws.root)
    return {
        "templates": {name: hashes.get(name) for name in (template_names(ws) if names is None else names)},
        "facts": hashlib.sha256(json.dumps(facts, ensure_ascii=False, sort_keys=True).encode()).hexdigest(),
        "counts": public_counts(counts),
    }


# ---- lint: nobody's personal data in a public text ----------------------------------------------

CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
WORD = re.compile(r"[^\W\d_]+")
DIGIT_RUN = re.compile(r"\+?\d[\d \-().]{5,}\d")


def _grams(full: str) -> set[str]:
    """Every 2–4 character CJK run piece and 1–4 word sequence of a text (to look names up in one step)."""
    grams: set[str] = set()
    for run in CJK_RUN.findall(full):
        grams |= {run[i : i + n] for n in (2, 3, 4) for i in range(len(run) - n + 1)}
    words = WORD.findall(full.lower())
    grams |= {" ".join(words[i : i + n]) for n in (1, 2, 3, 4) for i in range(len(words) - n + 1)}
    return grams


def _phone_keys(full: str) -> set[str]:
    keys: set[str] = set()
    for run in DIGIT_RUN.findall(full):
        digits = re.sub(r"\D", "", run)
        keys |= {digits, digits[-10:], digits[-11:]}
    return {k for k in keys if len(k) >= 10}


def lint_public(session: Session, incident_id: str, files: dict[str, str], *, officer: dict[str, Any]) -> list[str]:
    """Problems, one line each: an address or number that is not the officer's (naming the file), or any affected
    person's or guardian's name, email or phone anywhere in the text (streamed, looked up in one pass)."""
    problems: list[str] = []
    officer_email, officer_phone = str(officer.get("email", "")).lower(), str(officer.get("phone", ""))
    for name, body in files.items():
        if any(t.lower() != officer_email for t in lint.emails_in(body)):
            problems.append(f"{name}: an email address that is not the protection officer's")
        if any(t != officer_phone for t in lint.phones_in(body)):
            problems.append(f"{name}: a phone number that is not the protection officer's")
    full = "\n".join(files.values())
    lowered, grams, phones = full.lower(), _grams(full), _phone_keys(full)
    rows = assess.affected_contacts(session, incident_id)
    for subject_name, to_name, email, phone in rows:
        for who in (subject_name, to_name):
            norm = " ".join(str(who or "").lower().split())
            if len(norm) >= 2 and (norm in grams or (len(norm) > 4 and norm in lowered)):
                problems.append("the text names an affected person or guardian")
        if email and email.lower() in lowered:
            problems.append("the text has the email address of an affected person or guardian")
        digits = re.sub(r"\D", "", phone or "")
        if digits and {digits, digits[-10:], digits[-11:]} & phones:
            problems.append("the text has the phone number of an affected person or guardian")
        if problems:
            break
    return list(dict.fromkeys(problems))


# ---- render ------------------------------------------------------------------------------------


@dataclass
class AnnouncementResult:
    render_id: int
    folder: Path
    files: dict[str, Path]
    manifest: Path
    manifest_hash: str
    required: bool
    reasons: list[str] = field(default_factory=list)


def _write(path: Path, data: str, ws: Workspace) -> str:
    return write_public(path, (data if data.endswith("\n") else data + "\n").encode("utf-8"), within=ws.root)


def render(session: Session, ws: Workspace, incident_id: str, actor: str) -> AnnouncementResult:
    """Render the announcement in every locale as HTML and Markdown into review/ID/announcement/, with a manifest."""
    incident = incidents.get(session, incident_id, for_update=True)
    view = aggregates.picture(session, ws, incident)
    facts = public_context(session, ws, incident, counts=view.counts)
    from incident.notices import templates

    env = templates.environment(ws.root)
    now = clock.now()
    texts: dict[str, str] = {}
    for loc in catalog.LOCALES:
        ctx = {**facts[loc], "announcement": {"date": now}}
        for kind in KINDS:
            texts[file_name(loc, kind)] = templates.render(env, f"{loc}/announcement.{kind}.j2", ctx)
    from incident.notices import claims

    told = claims.record_of(content.static_context(session, ws, incident))
    said = [
        claims.Artefact("announcement", n, claims.html_text(t) if n.endswith("html") else t, locale=n.split(".")[1])
        for n, t in texts.items()
    ]
    claims.refuse_if_false(said, told, claims.rules(ws.root), "the announcement")
    problems = lint_public(session, incident_id, texts, officer=facts["en"]["officer"])
    names = lint.name_allow_list(ws.organisation)  # the announcement is read in every locale
    texts_of = content.responder_texts(session, incident)
    problems += lint.missing_translations(texts_of, locales=list(catalog.LOCALES), names=names)
    if problems:
        raise IncidentError("announcement lint failed, nothing was written: " + "; ".join(problems[:3]))
    head = audit.hand_out(session, incident_id)  # printed on the public text: later rewrites show against it
    for loc in catalog.LOCALES:
        line = audit.head_line(incident_id, head, loc)
        texts[file_name(loc, "md")] += "\n\n" + line + "\n"
        page = texts[file_name(loc, "html")]
        at = page.rfind("</body>")
        if line and at >= 0:
            texts[file_name(loc, "html")] = page[:at] + f'<p class="audit-head">{html.escape(line)}</p>\n' + page[at:]
    folder = ws.path("review", incident_id, "announcement")
    files = {name: folder / name for name in texts}
    shas = {name: _write(files[name], body, ws) for name, body in texts.items()}
    manifest = {
        "incident": incident_id,
        "rendered_at": now.isoformat(),
        "files": shas,
        **fingerprint(ws, facts, view.counts),
        "required": view.announcement["required"],
        "reasons": view.announcement["reasons"],
    }
    manifest_path = folder / MANIFEST
    manifest_hash = _write(manifest_path, json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True), ws)
    record = AnnouncementRender(
        incident_id=incident_id,
        at=now,
        actor=actor,
        manifest_hash=manifest_hash,
        folder=str(folder),
        counts=json.dumps(public_counts(view.counts), sort_keys=True),
    )
    session.add(record)
    session.flush()
    assert record.id is not None
    audit.record(
        session,
        incident_id,
        audit.Event(
            audit.Action.ANNOUNCEMENT_RENDERED,
            {"render": record.id, "manifest": manifest_hash, "required": view.announcement["required"]},
        ),
        actor,
    )
    return AnnouncementResult(
        record.id,
        folder,
        files,
        manifest_path,
        manifest_hash,
        view.announcement["required"],
        view.announcement["reasons"],
    )


# ---- approval ----------------------------------------------------------------------------------


def current_render(session: Session, incident_id: str) -> AnnouncementRender | None:
    """The newest render of an incident's announcement."""
    stmt = (
        select(AnnouncementRender)
        .where(AnnouncementRender.incident_id == incident_id)
        .order_by(AnnouncementRender.id.desc())  # type: ignore[union-attr]
    )
    return session.exec(stmt).first()


def changes_since(session: Session, ws: Workspace, render: AnnouncementRender) -> list[str]:
    """Name what changed since the render: the files, templates, facts or counts."""
    path = Path(render.folder) / MANIFEST
    try:
        raw = path.read_bytes()
        before = json.loads(raw)
    except (OSError, ValueError):
        return [f"{path} is missing or unreadable"]
    if hashlib.sha256(raw).hexdigest() != render.manifest_hash:
        return [f"{path} differs from the rendered manifest"]
    changed = []
    for name, sha in before["files"].items():
        file = Path(render.folder) / name
        if not file.is_file() or hashlib.sha256(file.read_bytes()).hexdigest() != sha:
            changed.append(f"{name} was edited or removed after rendering")
    incident = incidents.get(session, render.incident_id)
    counts = json.loads(assess.latest(session, incident.id).counts)  # type: ignore[union-attr]
    now = fingerprint(ws, public_context(session, ws, incident, counts=counts), counts, list(before["templates"]))
    for name in sorted(set(before["templates"]) | set(now["templates"])):
        if before["templates"].get(name) != now["templates"].get(name):
            changed.append(f"template {name} changed")
    if before["facts"] != now["facts"]:
        changed.append("the incident facts, logged actions, playbook or organisation details changed")
    if before["counts"] != now["counts"]:
        changed.append("the affected counts changed (re-assessed)")
    return changed


def _summary(render: AnnouncementRender) -> dict[str, Any]:
    return {
        "render": render.id,
        "manifest": render.manifest_hash,
        "folder": render.folder,
        "published_at": render.published_at.isoformat() if render.published_at else None,
        "changes": [],
    }


def _nothing_to_decide(incident: incidents.Incident, render: AnnouncementRender | None) -> str | None:
    if render is None:
        return f"{incident.id} has no rendered announcement (run `incident announce {incident.id}`)"
    return None


def _current_state(render: AnnouncementRender) -> str:
    return "published" if render.published_at else "approved"


# The announcement's decisions move no incident status: the notices and the announcement are reviewed apart.
ANNOUNCEMENT = approvals.Artefact[AnnouncementRender](
    name="announcement",
    current_render=current_render,
    changes_since=changes_since,
    summary=_summary,
    nothing_to_decide=_nothing_to_decide,
    cannot_approve="cannot approve the announcement: {changes} (re-render with `incident announce {id}`)",
    stale=(
        "the announcement approval is stale: {changes} (re-render with `incident announce {id}` and have it "
        "approved again)"
    ),
    not_approved=(
        "{id} announcement is not approved ({state}): run `incident notices approve {id} --announcement "
        "--reviewer NAME` after reviewing it"
    ),
    reject_needs_comment="--comment: say why the announcement is rejected",
    current_state=_current_state,
    accepted=("approved", "published"),
)


def approval_state(session: Session, ws: Workspace, incident: incidents.Incident) -> dict[str, Any]:
    """Where the announcement stands: not rendered, awaiting review, rejected, approved, stale or published."""
    return approvals.approval_state(session, ws, incident, artefact=ANNOUNCEMENT)
