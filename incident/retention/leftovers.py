"""The workspace files that hold one incident's personal data, and their removal (never outside the workspace)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

# review/ID/announcement holds the public text an approval is bound to: no personal data, and it stays with the
# announcement's approval. Everything else under these folders is the incident's people's.
PERSONAL_FOLDERS = ("outbox", "letters", "review")
KEPT = {("review", "announcement")}


def personal_files(root: Path, incident_id: str) -> list[str]:
    """The workspace paths (relative to root) of the incident's outbox, letters and review bundle."""
    found: list[str] = []
    for top in PERSONAL_FOLDERS:
        folder = root / top / incident_id
        if not os.path.lexists(folder):
            continue
        keeps = {name for folder_name, name in KEPT if folder_name == top}
        if not keeps or folder.is_symlink() or not folder.is_dir():
            found.append(f"{top}/{incident_id}")
            continue
        for child in sorted(folder.iterdir()):
            if (top, child.name) not in KEPT:
                found.append(f"{top}/{incident_id}/{child.name}")
    return found


def inside(root: Path, path: str | Path) -> str | None:
    """`path` relative to the workspace root when it lies inside it (symlinked folders resolved), else None."""
    real_root = Path(os.path.realpath(root))
    full = Path(path) if Path(path).is_absolute() else root / path
    parent = Path(os.path.realpath(full.parent))
    try:
        rel = (parent / full.name).relative_to(real_root)
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def remove(root: Path, paths: list[str]) -> tuple[list[str], list[str]]:
    """Remove these workspace paths (files, or folders with everything in them); return those removed and those
    left because their folder leads out of the workspace (a symlinked folder).

    A symlink is removed itself, never what it points to: a purge deletes only what lies inside the workspace."""
    removed, outside = [], []
    for rel in paths:
        full = root / rel
        if not os.path.lexists(full):
            continue
        if inside(root, rel) != rel:
            outside.append(rel)
            continue
        if full.is_symlink() or not full.is_dir():
            full.unlink()
        else:
            shutil.rmtree(full)
        removed.append(rel)
    return removed, outside
