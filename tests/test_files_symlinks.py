"""Issue 12: a file the tool writes never goes through a symlink, a device node or a FIFO planted where it goes.
Every planted link points into another folder of tmp_path (never at a system file): the test then proves that
nothing was written there and that the target's mode did not change."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from support import OpenedIncident, approve_notices

from incident.errors import BadInput
from incident.files import check_output, open_private, private_dir, write_private, write_public

ONE_LINE = 1


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A folder outside the workspace, world-readable, holding one world-readable file: where an attacker points."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    folder.chmod(0o755)
    victim = folder / "victim.txt"
    victim.write_text("keep me\n", encoding="utf-8")
    victim.chmod(0o644)
    return folder


def assert_untouched(elsewhere: Path) -> None:
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
    assert (elsewhere / "victim.txt").read_text(encoding="utf-8") == "keep me\n"
    assert (mode(elsewhere), mode(elsewhere / "victim.txt")) == (0o755, 0o644)


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


# ---- the writers themselves ---------------------------------------------------------------------


@pytest.mark.nodb
@pytest.mark.parametrize(
    "write",
    [
        lambda p, w: write_private(p, b"personal data", within=w),
        lambda p, w: write_public(p, b"announcement", within=w),
        lambda p, w: open_private(p, within=w).__enter__().write("personal data"),
    ],
    ids=["write_private", "write_public", "open_private"],
)
def test_a_symlinked_file_is_refused_and_its_target_keeps_its_content_and_mode(
    tmp_path: Path, elsewhere: Path, write
) -> None:
    """Given a workspace file name that is a symlink to a file elsewhere, when the tool writes that file, then it
    refuses in one line and the target keeps its content and its mode."""
    ws = tmp_path / "ws"
    (ws / "letters").mkdir(parents=True)
    link = ws / "letters" / "mail-merge.csv"
    link.symlink_to(elsewhere / "victim.txt")

    with pytest.raises(BadInput, match="is a symbolic link"):
        write(link, ws)

    assert link.is_symlink()
    assert_untouched(elsewhere)


@pytest.mark.nodb
def test_a_symlinked_folder_inside_the_workspace_is_refused(tmp_path: Path, elsewhere: Path) -> None:
    """Given outbox/ID/email as a symlink to a folder elsewhere, when a message is written into it, then nothing
    is written there and the error names the folder."""
    ws = tmp_path / "ws"
    (ws / "outbox" / "INC-1").mkdir(parents=True)
    (ws / "outbox" / "INC-1" / "email").symlink_to(elsewhere, target_is_directory=True)

    with pytest.raises(BadInput, match=r"outbox/INC-1/email: is a symbolic link"):
        write_private(ws / "outbox" / "INC-1" / "email" / "n1.eml", b"To: someone", within=ws)
    with pytest.raises(BadInput, match="is a symbolic link"):
        private_dir(ws / "outbox" / "INC-1" / "email" / "deeper", within=ws)

    assert_untouched(elsewhere)


@pytest.mark.nodb
def test_a_hard_link_is_replaced_not_written_through(tmp_path: Path, elsewhere: Path) -> None:
    """Given a workspace file that is a hard link to a file elsewhere, when the tool writes it, then the link
    becomes a new owner-only file and the other name keeps its content and mode."""
    ws = tmp_path / "ws"
    ws.mkdir()
    os.link(elsewhere / "victim.txt", ws / "manifest.json")

    write_private(ws / "manifest.json", b"{}", within=ws)

    assert ((ws / "manifest.json").read_bytes(), mode(ws / "manifest.json")) == (b"{}", 0o600)
    assert_untouched(elsewhere)


@pytest.mark.nodb
def test_a_fifo_where_a_file_goes_is_refused_without_blocking(tmp_path: Path) -> None:
    """Given a FIFO where the tool would write, then it is refused at once (no reader is waited for), mode kept."""
    fifo = tmp_path / "out.csv"
    os.mkfifo(fifo, 0o666)
    os.chmod(fifo, 0o666)

    with pytest.raises(BadInput, match="device, FIFO or socket"):
        write_private(fifo, b"x")

    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and mode(fifo) == 0o666


@pytest.mark.nodb
@pytest.mark.parametrize("path", ["/proc/self/status", "/sys/kernel/mm", "/dev/shm/x.csv"])
def test_a_pseudo_filesystem_is_no_output(path: str) -> None:
    """Given an output under /proc, /sys or /dev, then check_output refuses it. check_output only stats the path
    (it never opens it), so pointing it at the machine's own files here writes nothing."""
    with pytest.raises(BadInput, match="a pseudo-filesystem"):
        check_output(Path(path))


# ---- through the command line --------------------------------------------------------------------


@pytest.fixture
def approved(assessed_incident: OpenedIncident) -> OpenedIncident:
    """The hand-written incident with its notices rendered and approved (channels: the default outbox)."""
    ws, iid = assessed_incident.ws, assessed_incident.id
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    return assessed_incident


def test_dispatch_writes_no_email_through_a_symlinked_outbox_folder(approved: OpenedIncident, elsewhere: Path) -> None:
    """Given outbox/ID/email planted as a symlink to a folder outside the workspace, when the responder runs
    dispatch, then no email lands outside the workspace, the folder's mode is kept, and dispatch stops saying
    why instead of sending elsewhere."""
    ws, iid = approved.ws, approved.id
    (ws.root / "outbox" / iid).mkdir(parents=True)
    (ws.root / "outbox" / iid / "email").symlink_to(elsewhere, target_is_directory=True)

    result = ws.run("dispatch", iid)

    assert "Traceback" not in result.output
    assert result.exit_code != 0, result.output
    assert "is a symbolic link" in result.output, result.output
    assert_untouched(elsewhere)


def test_letters_refuse_a_symlinked_mail_merge_file(approved: OpenedIncident, elsewhere: Path) -> None:
    """Given letters/ID/mail-merge.csv planted as a symlink to a file elsewhere, when the responder writes the
    letter batch, then one line names the file, the target is neither truncated nor chmod'ed, and no letter is
    marked as posted."""
    ws, iid = approved.ws, approved.id
    ws.ok("dispatch", iid)
    folder = ws.root / "letters" / iid
    folder.mkdir(parents=True)
    (folder / "mail-merge.csv").symlink_to(elsewhere / "victim.txt")
    posted_before = ws.sql("SELECT COUNT(*) FROM delivery WHERE state = 'posted'")

    result = ws.run("letters", iid)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert len(error_lines(result)) == ONE_LINE, result.output
    assert error_lines(result)[0].endswith(
        f"letters/{iid}/mail-merge.csv: is a symbolic link (refused: the tool never writes through one)"
    )
    assert_untouched(elsewhere)
    assert ws.sql("SELECT COUNT(*) FROM delivery WHERE state = 'posted'") == posted_before


@pytest.mark.parametrize("command", ["affected", "deliveries", "audit export"])
def test_an_output_that_is_a_fifo_or_a_symlink_is_refused_before_any_work(
    approved: OpenedIncident, tmp_path: Path, elsewhere: Path, command: str
) -> None:
    """Given --output naming a FIFO (a stand-in for a device node) or a symlink to a file elsewhere, when an
    export runs, then one line names the path, the exit is 2, and the FIFO's and the target's modes are kept."""
    ws, iid = approved.ws, approved.id
    fifo = tmp_path / "device-like"
    os.mkfifo(fifo)
    os.chmod(fifo, 0o666)
    link = tmp_path / "link.csv"
    link.symlink_to(elsewhere / "victim.txt")

    for target, problem in ((fifo, "is a device, FIFO or socket"), (link, "is a symbolic link")):
        result = ws.run(*command.split(), iid, "--output", str(target))

        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert error_lines(result) == [f"error: {target}: {error_lines(result)[0].split(': ', 2)[2]}"]
        assert problem in result.stderr
    assert mode(fifo) == 0o666 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert_untouched(elsewhere)
