"""Which template files are in effect (a workspace's own override the packaged ones) and their hashes; no Jinja."""

from __future__ import annotations

import hashlib
from pathlib import Path

from incident.errors import IncidentError


def packaged_dir() -> Path:
    """Return the shipped notices/ folder (installed copy first, then the source checkout)."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "_data" / "notices", here.parent / "notices"):
        if candidate.is_dir():
            return candidate
    raise IncidentError("the shipped notices/ folder is missing from this installation")


def template_files(workspace: Path | None) -> dict[str, Path]:
    """Map each template name to the file that will be used (workspace override first)."""
    found: dict[str, Path] = {}
    roots = [packaged_dir()] + ([workspace / "notices"] if workspace and (workspace / "notices").is_dir() else [])
    for root in roots:
        for path in sorted(root.rglob("*.j2")):
            found[path.relative_to(root).as_posix()] = path
    return dict(sorted(found.items()))


def is_notice_template(name: str) -> bool:
    """Whether individual notices use a template: the announcement and regulator reports have approvals of their own."""
    return not (name.startswith("reports/") or name.rsplit("/", 1)[-1].startswith("announcement."))


def template_hashes(workspace: Path | None) -> dict[str, str]:
    """The sha256 of every template in effect, by name."""
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in template_files(workspace).items()}
