"""Issue 5, end to end through the installed command: `incident demo` runs the whole story and every artefact
it names exists, with numbers that agree with the assessment and the delivery records."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

INCIDENT = shutil.which("incident")
PEOPLE = 2000
BOUNCE = "550 mailbox unavailable (outbox rule for tabletop exercises)"


def run(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")}
    done = subprocess.run(
        [str(INCIDENT), "--actor", "demo-test", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )
    assert done.returncode in ok, f"incident {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`incident demo DIR --people 2000`: its folder and what it printed."""
    if INCIDENT is None:
        pytest.fail("the `incident` console script is not installed (pip install -e '.[test]')")
    root = tmp_path_factory.mktemp("demo") / "ws"
    return root, run("demo", str(root), "--people", str(PEOPLE))


def printed_paths(out: str) -> list[Path]:
    return [
        Path(word)
        for line in out.splitlines()
        for word in line.replace("(", " ").replace(")", " ").split()
        if word.startswith("/")
    ]


def test_the_demo_runs_the_whole_story_and_every_artefact_it_names_exists(demo: tuple[Path, str]) -> None:
    """When `incident demo` has run, then it named the review bundle, the outbox, the letters, the published
    announcement and each regulator report, and each of them exists."""
    root, out = demo
    iid = "INC-2026-0001"
    steps = [line.split(":")[0].strip() for line in out.splitlines() if ":" in line and not line.startswith(" ")]

    assert steps[:11] == [
        "workspace",
        "inventory",
        "opened",
        "assessed",
        "notices",
        "approved",
        "dispatched",
        "letters",
        "announcement",
        "reports",
        "status board (0 overdue)",
    ]
    assert "approved:  by DEMO REVIEWER (auto-approved, not a legal review)" in out
    missing = [p for p in printed_paths(out) if not p.exists()]
    assert missing == []
    assert (root / "review" / iid / "index.html").is_file()
    assert sorted(p.name for p in (root / "public" / iid).iterdir()) == [
        "announcement.en.html",
        "announcement.en.md",
        "announcement.zh-CN.html",
        "announcement.zh-CN.md",
    ]
    reports = sorted(p.name.split("-2026")[0] + p.suffix for p in (root / "reports" / iid).iterdir())
    assert reports == [
        "cn-cac-initial.md",
        "cn-cac-initial.pdf",
        "eu-gdpr-initial.md",
        "us-ca-ag-initial.md",
        "us-tx-ag-initial.md",
    ]
    assert (root / "letters" / iid / "print-all.html").is_file()
    shown = run("--workspace", str(root), "show", iid)
    assert "notices:    approved by DEMO REVIEWER (auto-approved, not a legal review)" in shown
    assert "announcement: published by DEMO REVIEWER" in shown


def test_the_demo_meets_failures_falls_back_and_says_who_it_could_not_reach(demo: tuple[Path, str]) -> None:
    """Given the demo's bouncing addresses, then dispatch recorded the outbox's permanent refusals, fell back to
    SMS for people with a phone, and the announcement is required for those every channel failed for."""
    root, out = demo
    attempts = [
        json.loads(line)
        for line in run("--workspace", str(root), "deliveries", "INC-2026-0001", "--format", "jsonl").splitlines()
    ]
    bounced = {a["person_id"] for a in attempts if a["reason"] == BOUNCE}
    rescued = {a["person_id"] for a in attempts if a["channel"] == "sms" and a["outcome"] == "sent"}
    emails = list((root / "outbox" / "INC-2026-0001" / "email").iterdir())

    assert bounced and all(a["address"].endswith("@bounce.example") for a in attempts if a["reason"] == BOUNCE)
    assert bounced & rescued
    assert len(emails) == sum(a["channel"] == "email" and a["outcome"] == "sent" for a in attempts)
    assessed = json.loads(run("--workspace", str(root), "assess", "INC-2026-0001", "--json"))
    assert any("every channel failed" in r for r in assessed["announcement"]["reasons"])
    assert "every channel failed" in out


def test_the_demo_s_numbers_agree_and_its_announcement_names_nobody(demo: tuple[Path, str]) -> None:
    """Given the demo, then the regulator report's counts are the assessment's and its channel outcomes are the
    delivery records', and no name, email or phone number from the inventory appears in the public files."""
    root, _ = demo
    ws = ("--workspace", str(root))
    assessed = json.loads(run(*ws, "assess", "INC-2026-0001", "--json"))
    attempts = [json.loads(line) for line in run(*ws, "deliveries", "INC-2026-0001", "--format", "jsonl").splitlines()]
    made = run(*ws, "report", "INC-2026-0001", "--regulator", "cn-cac", "--format", "json")
    data: dict[str, Any] = json.loads(Path(made.split()[0]).read_text(encoding="utf-8"))

    assert data["counts"] == assessed["counts"]
    assert data["deliveries"]["channels"] == {
        ch: dict(Counter(a["outcome"] for a in attempts if a["channel"] == ch))
        for ch in {a["channel"] for a in attempts}
    }
    public = "\n".join(p.read_text(encoding="utf-8") for p in (root / "public" / "INC-2026-0001").iterdir())
    with (root / "inventory" / "people.csv").open(encoding="utf-8", newline="") as fh:
        personal = {
            row[k]
            for row in csv.DictReader(fh)
            for k in ("name", "email", "phone", "guardian_name", "guardian_email", "guardian_phone")
            if row[k]
        }
    assert len(personal) > PEOPLE
    assert sorted(v for v in personal if v in public) == []
    assert json.loads(run(*ws, "status", "--json"))["incidents"][0]["id"] == "INC-2026-0001"
