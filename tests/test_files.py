"""Owner-only files: whatever may hold personal data is written readable by its owner only, whole or not at all."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from incident.files import file_sha256, open_private, private_dir, safe_cell, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A umask that would leave new files world-readable, as on many shared machines."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("open_umask")
def test_a_private_folder_and_every_missing_parent_are_owner_only(tmp_path: Path) -> None:
    """Given a folder three levels below an existing one, when it is made private, then each new level is 0700."""
    leaf = private_dir(tmp_path / "a" / "b" / "c")

    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", leaf)] == [0o700, 0o700, 0o700]


@pytest.mark.usefixtures("open_umask")
def test_an_open_private_file_is_owner_only_even_when_it_existed(tmp_path: Path) -> None:
    """Given a world-readable file, when it is opened privately and written, then it is 0600 and replaced."""
    path = tmp_path / "out" / "export.csv"
    path.parent.mkdir()
    path.write_text("old")
    path.chmod(0o644)

    with open_private(path) as fh:
        fh.write("new")

    assert (mode(path), path.read_text(encoding="utf-8")) == (0o600, "new")


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize("atomic", [True, False])
def test_write_private_writes_an_owner_only_file(tmp_path: Path, atomic: bool) -> None:
    """Given bytes for a new folder, when written, then file and folders are owner-only and no part file stays."""
    path = tmp_path / "outbox" / "1" / "message.eml"

    write_private(path, b"hello", atomic=atomic)

    assert (path.read_bytes(), mode(path), mode(path.parent), mode(path.parent.parent)) == (
        b"hello",
        0o600,
        0o700,
        0o700,
    )
    assert list(path.parent.iterdir()) == [path]


@pytest.mark.usefixtures("open_umask")
def test_an_atomic_write_fixes_the_mode_of_a_leftover_part_file(tmp_path: Path) -> None:
    """Given a world-readable part file an earlier run left behind, when written atomically, then the result is
    0600 (O_CREAT's mode applies only to new files)."""
    path = tmp_path / "manifest.json"
    (tmp_path / "manifest.json.part").write_bytes(b"stale")
    (tmp_path / "manifest.json.part").chmod(0o644)

    write_private(path, b"{}", atomic=True)

    assert (path.read_bytes(), mode(path), (tmp_path / "manifest.json.part").exists()) == (b"{}", 0o600, False)


def test_a_failed_atomic_write_keeps_the_previous_file_and_no_part(tmp_path: Path) -> None:
    """Given a file already written, when an atomic rewrite fails half-way, then the old file is intact and the
    part file is gone."""
    path = tmp_path / "manifest.json"
    write_private(path, b"whole", atomic=True)

    with pytest.raises(TypeError):
        write_private(path, object(), atomic=True)  # type: ignore[arg-type]  # fails inside the write

    assert path.read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_file_sha256_is_the_sha256_of_the_whole_file(tmp_path: Path) -> None:
    """Given a file larger than one read chunk, then its hash is the sha256 of all its bytes."""
    data = os.urandom(3 << 20) + b"tail"
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil";"x")', '\'=HYPERLINK("http://evil";"x")'),
        ("+1+1", "'+1+1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("+8613800000001", "+8613800000001"),
        ("张伟", "张伟"),
        (None, ""),
        (42, "42"),
    ],
)
def test_a_cell_that_could_run_as_a_formula_gets_a_leading_quote(cell: object, written: str) -> None:
    """Given a CSV cell, then a formula start is quoted and a bare E.164 number or plain text is left alone."""
    assert safe_cell(cell) == written
