"""The review bundle legal reads: manifest.json (what an approval binds to) and the masked review page."""

from __future__ import annotations

import hashlib
import json
import os
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
from incident.files import file_sha256, private_dir, replacing_private, write_private
from incident.incidents import models as incidents
from incident.notices import compose, content
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


@dataclass(frozen=True)
class ManifestLines:
    """A batch of notices as manifest.json lists them and as they feed its notices digest."""

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
        """Close the list with the render's facts and fingerprint; return the finished file's sha256."""
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
    """review/ID/: the manifest an approval binds to and the page legal reads."""

    ws: Workspace
    incident_id: str

    @property
    def folder(self) -> Path:
        return self.ws.path("review", self.incident_id)

    @contextmanager
    def manifest_writer(self) -> Iterator[ManifestWriter]:
        private_dir(self.folder)  # review/ too: mkdir(parents=True) would leave it at the umask's default
        os.chmod(self.folder, 0o700)
        # Swap in only a whole manifest: a failed render must not break the one an approval is bound to.
        with replacing_private(self.folder / "manifest.json") as (fh, part):
            yield ManifestWriter(fh, part)

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
        write_private(path, page.encode("utf-8"), atomic=False)
        return path


def _sum_by(shown: list[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in shown:
        out[v[key]] = out.get(v[key], 0) + v["count"]
    return out


def _review_env() -> Environment:
    # The review page is the tool's own template (not a lawyer's); its data is still escaped.
    return Environment(loader=FileSystemLoader(Path(__file__).parent), autoescape=select_autoescape(["j2"]))


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
