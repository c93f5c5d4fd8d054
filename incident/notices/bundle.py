"""The review bundle legal reads: one masked real example of every variant, with counts and lint results."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import Session

from incident import clock
from incident.config import Workspace
from incident.files import replacing_private, write_private
from incident.incidents import models as incidents
from incident.notices import compose, content
from incident.notices.manifest import ManifestWriter
from incident.privacy import mask_email, mask_name, mask_phone


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


@dataclass
class Bundle:
    """review/ID/: the manifest an approval binds to and the page legal reads."""

    ws: Workspace
    incident_id: str

    @property
    def folder(self) -> Path:
        return self.ws.path("review", self.incident_id)

    @contextmanager
    def manifest_writer(self) -> Iterator[ManifestWriter]:
        # review/ too: mkdir(parents=True) would leave it at the umask's default. Swap in only a whole manifest: a
        # failed render must not break the one an approval is bound to.
        with replacing_private(self.folder / "manifest.json", within=self.ws.root) as (fh, part):
            yield ManifestWriter(fh, part)

    def write_index(
        self,
        session: Session,
        static: dict[str, Any],
        today: datetime,
        variants: dict[str, int],
        examples: dict[str, dict[str, Any]],
        lint_summary: dict[str, Any],
        manifest_hash: str,
        incident: incidents.Incident,
        render_id: int,
    ) -> Path:
        """Render index.html: one masked real example of every variant, how many receive it, lint results, and
        what changed in each variant's text since the last approved render."""
        from incident.notices import templates

        env = templates.environment(self.ws.root)
        shown = []
        for key in sorted(variants):
            locale, channel, audience, cats = key.split("|")
            masked = mask_person(examples[key])
            _, rendered = compose.render_person(env, static, masked, today)
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
        texts = {v["key"]: _variant_text(v) for v in shown}
        write_private(
            self.folder / f"variants-{render_id}.json",
            json.dumps(texts, ensure_ascii=False).encode(),
            atomic=True,
            within=self.ws.root,
        )
        changes = self._changes_since_approved(session, render_id, texts)
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
                changes=changes,
            )
        )
        path = self.folder / "index.html"
        write_private(path, page.encode("utf-8"), within=self.ws.root)
        return path

    def _changes_since_approved(self, session: Session, render_id: int, texts: dict[str, str]) -> dict[str, Any] | None:
        """Each variant's text diff against the last approved render (None when nothing was approved before)."""
        from incident.approvals import last_approved

        approved = last_approved(session, self.incident_id, "notices")
        if approved is None or approved.render_id == render_id:
            return None
        try:
            before = json.loads((self.folder / f"variants-{approved.render_id}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"render": approved.render_id, "manifest": approved.manifest_hash, "missing": True, "diffs": []}
        diffs = []
        for key in sorted(set(before) | set(texts)):
            old, new = before.get(key), texts.get(key)
            if old == new:
                continue
            lines = difflib.unified_diff(
                (old or "").splitlines(), (new or "").splitlines(), "approved", "this render", lineterm="", n=2
            )
            state = "added" if old is None else "removed" if new is None else "changed"
            diffs.append({"key": key, "state": state, "diff": "\n".join(lines)})
        return {"render": approved.render_id, "manifest": approved.manifest_hash, "missing": False, "diffs": diffs}


def _variant_text(variant: dict[str, Any]) -> str:
    """A variant's example as a lawyer reads it, for the diff: subject, then the text (a letter's is its
    elements' text)."""
    return f"Subject: {variant['subject']}\n\n{variant['body']}" if variant["subject"] else variant["body"]


def _sum_by(shown: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in shown:
        out[v[key]] = out.get(v[key], 0) + v["count"]
    return out


def _review_env() -> Environment:
    # The review page is the tool's own template (not a lawyer's); its data is still escaped.
    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"]))
