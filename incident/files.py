"""Owner-only files: every folder and file that may hold personal data, their hashes, and CSV cells safe to open."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CHUNK = 1 << 20


def safe_cell(value: object) -> str:
    """Return the cell as CSV text no spreadsheet runs as a formula: a risky first character gets a leading quote."""
    # A bare E.164 phone number is left alone: it cannot call a function, and mail merges need it intact.
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not E164.match(text):
        return "'" + text
    return text


def private_dir(folder: Path) -> Path:
    """Create folder and every missing parent readable by the owner only (mkdir's mode= covers only the leaf)."""
    missing = []
    current = folder
    while not current.is_dir():
        missing.append(current)
        current = current.parent
    for step in reversed(missing):
        try:
            step.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by a concurrent writer, which makes it private too
        os.chmod(step, 0o700)  # whatever the umask
    return folder


def open_private(path: Path, mode: str = "w") -> IO[Any]:
    """Open a text file that will hold personal data for writing, readable by its owner only."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.chmod(path, 0o600)
    return os.fdopen(fd, mode, encoding="utf-8", newline="")


def write_private(path: Path, data: bytes, *, atomic: bool) -> None:
    """Write bytes to a file only its owner can read; when atomic, readers see the old file or the new one whole."""
    # Atomic: write NAME.part, then rename it over NAME. No fsync: this survives a killed process, not a power cut.
    if not path.parent.is_dir():
        private_dir(path.parent)
    target = path.with_name(path.name + ".part") if atomic else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o600)  # O_CREAT's mode does not apply to a file an earlier run left behind
            fh.write(data)
        if atomic:
            os.replace(target, path)
    except BaseException:
        if atomic:
            target.unlink(missing_ok=True)
        raise


@contextmanager
def replacing_private(path: Path) -> Iterator[tuple[IO[str], Path]]:
    """Stream a private text file that replaces `path` only once whole: written as NAME.part, renamed on success."""
    private_dir(path.parent)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            yield fh, part
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, path)


def write_public(path: Path, data: bytes) -> str:
    """Write a text meant for the public (an announcement), readable by all, whole or not at all; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks so a manifest of tens of MB is never held whole."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
