"""The manifest an approval binds to: every rendered notice's sha256, streamed, and its tail read from the end."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from incident.files import file_sha256


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


TAIL_MARK = b"\n],\n"  # ends the notices list; what follows is ManifestWriter.finish's object (no list entry


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
