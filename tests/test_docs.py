"""The README documents every command a user can run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from commands import command_paths

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_is_in_the_readme(path: tuple[str, ...]) -> None:
    """Given a command in the CLI tree, then the README names it as `incident <path>` (a whole word: `incident
    log` in `incident login` does not count)."""
    named = re.compile(r"\bincident " + r" ".join(map(re.escape, path)) + r"(?![\w-])")

    assert named.search(README.read_text(encoding="utf-8")), f"README.md never mentions `incident {' '.join(path)}`"
