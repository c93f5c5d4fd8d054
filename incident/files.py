"""Owner-only files: every folder and file that may hold personal data, their hashes, and CSV cells safe to open.

Every file the tool writes is created new (O_CREAT|O_EXCL|O_NOFOLLOW, as NAME.part) and renamed over its name, so
a symlink, a hard link, a device node or a FIFO planted where a file goes is never written through, truncated or
chmod'ed: the tool changes the mode only of what it has just created itself."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from incident.errors import BadInput

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
CHUNK = 1 << 20
NAME_MAX = 255  # bytes in one file name on Linux and macOS
PSEUDO_FILESYSTEMS = ("proc", "sys", "dev")  # kernel interfaces: a "file" there is a device or a knob
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def safe_cell(value: object) -> str:
    """Return the cell as CSV text no spreadsheet runs as a formula: a risky first character gets a leading quote."""
    # A bare E.164 phone number is left alone: it cannot call a function, and mail merges need it intact.
    text = "" if value is None else str(value)
    if text.startswith(FORMULA_START) and not E164.match(text):
        return "'" + text
    return text


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "is a symbolic link (refused: the tool never writes through one)"
    if stat.S_ISDIR(mode):
        return "is a folder, not a file"
    return "is a device, FIFO or socket, not a regular file (refused)"


def _refuse(path: Path, problem: str) -> BadInput:
    return BadInput(str(path), None, None, problem)


def _os_problem(path: Path, exc: OSError) -> BadInput:
    if exc.errno == errno.ENAMETOOLONG:
        return _refuse(path, "the name is too long")
    return _refuse(path, exc.strerror or "cannot be written")


def _step_into(fd: int, name: str, path: Path, *, create: bool, mode: int = 0o700) -> int:
    """Open folder `name` inside the open folder `fd` without following a symlink, creating it with `mode`."""
    made = False
    if create:
        try:
            os.mkdir(name, mode, dir_fd=fd)
            made = True
        except FileExistsError:
            pass
        except OSError as exc:
            raise _os_problem(path, exc) from None
    try:
        child = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
    except OSError as exc:
        try:
            found = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        except OSError:
            raise _os_problem(path, exc) from None
        if stat.S_ISREG(found):
            raise _refuse(path, "is a file, not a folder") from None
        raise _refuse(path, _kind(found) if not stat.S_ISDIR(found) else exc.strerror or "cannot open") from None
    if made:
        os.fchmod(child, mode)  # whatever the umask; only a folder made just now
    return child


@contextmanager
def _folder_fd(folder: Path, within: Path | None, mode: int = 0o700) -> Iterator[int]:
    """An open descriptor of `folder`, creating what is missing; below `within` no step may be a symlink."""
    if within is not None:
        try:
            parts = folder.relative_to(within).parts
        except ValueError:
            raise _refuse(folder, f"is outside {within}") from None
        start = within
    else:
        # A folder the user named: its existing part is theirs (symlinks included); what is missing is made private.
        start = folder
        missing: list[str] = []
        while not start.is_dir():
            if start.parent == start:
                break
            missing.append(start.name)
            start = start.parent
        parts = tuple(reversed(missing))
    try:
        fd = os.open(start, _DIR_FLAGS)
    except OSError as exc:
        raise _os_problem(start, exc) from None
    try:
        current = start
        for part in parts:
            current = current / part
            child = _step_into(fd, part, current, create=True, mode=mode)
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def private_dir(folder: Path, *, within: Path | None = None) -> Path:
    """Create folder and every missing parent readable by the owner only; below `within`, refuse any symlink."""
    with _folder_fd(folder, within):
        return folder


def check_input(path: Path) -> None:
    """Refuse to read anything but a regular file: a FIFO would block for ever, a device would never end."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # the reader names the missing or unreadable file itself
    if stat.S_ISDIR(mode):
        raise _refuse(path, "is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise _refuse(path, "is a device, FIFO or socket, not a regular file (refused)")


def check_target(path: Path) -> None:
    """Refuse a path where a file cannot safely go: a folder, a symlink, a device, FIFO or socket, /proc, /sys, /dev."""
    if len(os.fsencode(path.name)) > NAME_MAX:
        raise _refuse(path, "the name is too long")
    real = Path(os.path.realpath(path.parent))
    if len(real.parts) > 1 and real.parts[1] in PSEUDO_FILESYSTEMS:
        raise _refuse(path, f"is under /{real.parts[1]}, a pseudo-filesystem: not a place for a file")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise _refuse(path, "a part of the path is a file, not a folder") from None
        raise _os_problem(path, exc) from None
    if not stat.S_ISREG(mode):
        raise _refuse(path, _kind(mode))


def check_output(path: Path) -> None:
    """Refuse an output file before any work is done: not a regular file, or its folder cannot take one."""
    check_target(path)
    parent = path.parent
    while not parent.exists() and parent.parent != parent:
        parent = parent.parent
    if not parent.is_dir():
        raise _refuse(path, "a part of the path is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _refuse(path, "the folder is not writable")


@contextmanager
def _new_file(path: Path, *, within: Path | None, mode: int, folder_mode: int = 0o700) -> Iterator[tuple[int, int]]:
    """Yield (folder fd, fd of a new NAME.part); on success rename it over NAME, on failure remove it."""
    check_target(path)
    name, part = path.name, path.name + ".part"
    with _folder_fd(path.parent, within, folder_mode) as dfd:
        try:
            # A part file a killed run left behind is ours to remove; unlink never follows a symlink.
            os.unlink(part, dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise _os_problem(path, exc) from None
        try:
            fd = os.open(part, _NEW_FILE, mode, dir_fd=dfd)
        except OSError as exc:
            raise _os_problem(path, exc) from None
        try:
            os.fchmod(fd, mode)  # the file made just now, whatever the umask
            yield dfd, fd
            try:
                current = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
            except FileNotFoundError:
                current = stat.S_IFREG
            if not stat.S_ISREG(current):
                raise _refuse(path, _kind(current))  # planted while we wrote
            os.replace(part, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            try:
                os.unlink(part, dir_fd=dfd)
            except OSError:
                pass
            raise


@contextmanager
def replacing_private(path: Path, *, within: Path | None = None) -> Iterator[tuple[IO[str], Path]]:
    """Stream a private text file that replaces `path` only once whole: written as NAME.part, renamed on success."""
    with _new_file(path, within=within, mode=0o600) as (_, fd), os.fdopen(fd, "w", encoding="utf-8") as fh:
        yield fh, path.with_name(path.name + ".part")


@contextmanager
def open_private(path: Path, mode: str = "w", *, within: Path | None = None) -> Iterator[IO[Any]]:
    """Write a text file that will hold personal data, readable by its owner only, whole or not at all."""
    with _new_file(path, within=within, mode=0o600) as (_, fd), os.fdopen(fd, mode, encoding="utf-8", newline="") as fh:
        yield fh


def write_private(path: Path, data: bytes, *, atomic: bool = True, within: Path | None = None) -> None:
    """Write bytes to a file only its owner can read; readers see the old file or the new one whole."""
    # `atomic` is kept for callers: every write is now NAME.part renamed over NAME. No fsync: this survives a killed
    # process, not a power cut.
    with _new_file(path, within=within, mode=0o600) as (_, fd), os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_public(path: Path, data: bytes, *, within: Path | None = None) -> str:
    """Write a text meant for the public (an announcement), readable by all, whole or not at all; return its sha256."""
    # Folders it makes are readable by all too (0755): what is in them is meant to be published.
    with _new_file(path, within=within, mode=0o644, folder_mode=0o755) as (_, fd), os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks so a manifest of tens of MB is never held whole."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
