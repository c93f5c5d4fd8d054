"""Issue 12, High 4: an approval binds to what was reviewed, not to whatever render is current.

Given notices a lawyer reviewed, when a colleague logs an action and re-renders before the approval, or a render
is still under way, then `approve --manifest` of the reviewed render is refused and nothing is approved; the
review page of the re-render shows what changed since the last approval; a signed approval is attributable to a
key and `audit verify` checks it."""

# ruff: noqa: F401, F811 (the notices stories' fixtures, imported to be used here)
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from freezegun import freeze_time
from rawdb import connect
from support import manifest_of
from test_notices import (
    NOTICE_DAY,
    Story,
    approved_notices,
    assessed_story,
    four_people_inventory,
    rendered_notices,
)

from incident.config import find_workspace
from incident.db import BUSY_TIMEOUT_ENV, unit_of_work
from incident.notices.render import begin_render

REVIEWER = "Legal (Li Na)"


def approvals(story: Story) -> list[tuple[str, str]]:
    return story.ws.sql("SELECT decision, manifest_hash FROM approval WHERE artefact = 'notices' ORDER BY id")


def test_approve_without_the_manifest_it_approves_is_refused(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    missing = ws.run("notices", "approve", iid, "--reviewer", REVIEWER)
    assert missing.exit_code == 2 and "--manifest" in missing.output, missing.output
    for bad in ("abc", "g" * 12, manifest_of(ws, iid)[:11]):
        ws.refuse("notices", "approve", iid, "--manifest", bad, "--reviewer", REVIEWER, error="--manifest: give")
    assert approvals(rendered_notices) == []


def test_a_re_render_between_review_and_approval_refuses_the_reviewed_manifest(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    reviewed = manifest_of(ws, iid)
    ws.ok(
        "log", iid, "告知会员其账号可以继续安全使用", "--en", "Told members their accounts are safe to use again"
    )  # the colleague
    rerendered = ws.ok("notices", "render", iid)
    current = rerendered.split("manifest sha256: ")[1].split()[0]
    assert current != reviewed
    result = ws.refuse("notices", "approve", iid, "--manifest", reviewed, "--reviewer", REVIEWER, error=reviewed)
    assert f"not the manifest of the current notices render ({current})" in result.stderr
    assert approvals(rendered_notices) == [] and ws.json("show", iid)["status"] == "notices rendered"
    ws.refuse("dispatch", iid, error="not approved")


def test_a_unique_prefix_of_the_manifest_approves_and_says_exactly_what(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    full = manifest_of(ws, iid)
    out = ws.ok("notices", "approve", iid, "--manifest", full[:12].upper(), "--reviewer", REVIEWER)
    (render_id,) = ws.sql("SELECT id FROM render")[0]
    assert f"approved {iid} notices render {render_id}, manifest sha256 {full} (reviewer {REVIEWER}" in out, out
    assert approvals(rendered_notices) == [("approved", full)]
    page = (rendered_notices.bundle / "index.html").read_text(encoding="utf-8")
    assert f"--manifest {full}" in page and f'<code id="manifest-hash">{full}</code>' in page


@pytest.fixture
def render_under_way(rendered_notices: Story, monkeypatch: pytest.MonkeyPatch):
    """A colleague's `notices render` that has started (its render row committed) and is still running (it holds
    the write lock on the incident), as another process would."""
    monkeypatch.setenv(BUSY_TIMEOUT_ENV, "2")
    ws = find_workspace(rendered_notices.ws.root)
    with unit_of_work(ws) as session:
        begin_render(session, rendered_notices.id, "colleague")
    with connect(rendered_notices.ws.root) as raw:
        if raw.postgres:
            raw.execute("SELECT id FROM incident WHERE id = ? FOR UPDATE", (rendered_notices.id,))
        else:
            raw.conn.isolation_level = None
            raw.execute("BEGIN IMMEDIATE")
        try:
            yield rendered_notices
        finally:
            raw.conn.rollback() if raw.postgres else raw.execute("ROLLBACK")


def test_approve_while_a_render_is_under_way_is_refused(render_under_way: Story):
    ws, iid = render_under_way.ws, render_under_way.id
    manifest = ws.sql("SELECT manifest_hash FROM render WHERE manifest_hash != '' ORDER BY id DESC")[0][0]
    result = ws.refuse(
        "notices", "approve", iid, "--manifest", manifest, "--reviewer", REVIEWER, error="while a render started"
    )
    assert "by colleague has not finished" in result.stderr
    assert ws.sql("SELECT COUNT(*) FROM approval") == [(0,)]


def test_an_interrupted_render_blocks_approval_until_the_next_render(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    with unit_of_work(find_workspace(ws.root)) as session:
        begin_render(session, iid, "colleague")  # ... and the colleague's process was killed here
    before = manifest_of(ws, iid)
    ws.refuse("notices", "approve", iid, "--manifest", before, "--reviewer", REVIEWER, error="if it was interrupted")
    assert ws.json("show", iid)["notices"]["manifest"] == before  # the unfinished row is not the current render
    out = ws.ok("notices", "render", iid)
    manifest = out.split("manifest sha256: ")[1].split()[0]
    ws.ok("notices", "approve", iid, "--manifest", manifest, "--reviewer", REVIEWER)
    assert ws.sql("SELECT COUNT(*) FROM render WHERE manifest_hash = ''") == [(0,)]


def test_a_failed_render_leaves_no_render_row_behind(rendered_notices: Story):
    ws, iid = rendered_notices.ws, rendered_notices.id
    override = ws.root / "notices" / "en" / "partials" / "impact.txt.j2"
    override.parent.mkdir(parents=True)
    override.write_text("{{ nobody.knows }}\n", encoding="utf-8")
    ws.refuse("notices", "render", iid, error=f"{override}:1:")
    assert ws.sql("SELECT COUNT(*) FROM render") == [(1,)]
    override.unlink()
    ws.ok("notices", "approve", iid, "--manifest", manifest_of(ws, iid), "--reviewer", REVIEWER)


def test_the_review_page_of_a_re_render_shows_the_diff_against_the_approved_render(approved_notices: Story):
    ws, iid = approved_notices.ws, approved_notices.id
    first = (approved_notices.bundle / "index.html").read_text(encoding="utf-8")
    assert "Changed since the last approved render" not in first
    remedies = ws.root / "notices" / "en" / "partials" / "remedies.txt.j2"
    remedies.parent.mkdir(parents=True)
    packaged = Path(__file__).resolve().parents[1] / "notices" / "en" / "partials" / "remedies.txt.j2"
    remedies.write_text(packaged.read_text(encoding="utf-8") + "- A free year of credit monitoring.\n", "utf-8")
    with freeze_time(NOTICE_DAY, tick=True):  # the same day as the approved render: only the remedies differ
        ws.ok("notices", "render", iid)
    page = (approved_notices.bundle / "index.html").read_text(encoding="utf-8")
    assert "Changed since the last approved render" in page
    diffs = re.findall(r'<div class="diff" data-variant="([^"]+)"><h3>[^<]*</h3><pre>(.*?)</pre>', page, re.S)
    assert diffs, page
    assert all(key.startswith("en|") for key, _ in diffs), [k for k, _ in diffs]  # zh-CN did not change
    assert all("+- A free year of credit monitoring." in diff for _, diff in diffs)
    assert {key.split("|")[1] for key, _ in diffs} == {"email", "letter"}  # SMS and push carry no remedies


@pytest.fixture
def reviewer_key(tmp_path: Path) -> Path:
    """A throwaway ed25519 key, as a lawyer's own SSH key."""
    key = tmp_path / "keys" / "legal"
    key.parent.mkdir()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "li.na@legal", "-f", str(key)], check=True)
    return key


def fingerprint_of(key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-l", "-f", str(key)], capture_output=True, text=True, check=True).stdout
    return out.split()[1]


def test_a_signed_approval_is_attributable_and_audit_verify_checks_it(rendered_notices: Story, reviewer_key: Path):
    ws, iid = rendered_notices.ws, rendered_notices.id
    manifest = manifest_of(ws, iid)
    out = ws.ok("notices", "approve", iid, "--manifest", manifest, "--reviewer", REVIEWER, "--sign", str(reviewer_key))
    assert f"signed with {fingerprint_of(reviewer_key)}" in out, out
    ((signature, signer),) = ws.sql("SELECT signature, signer FROM approval")
    assert "BEGIN SSH SIGNATURE" in signature and signer == fingerprint_of(reviewer_key)
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)

    with connect(ws.root) as raw:
        raw.execute("UPDATE approval SET reviewer = 'Someone Else'")
    result = ws.run("audit", "verify", iid)
    assert result.exit_code == 3, result.output
    assert "signature does not verify" in result.stderr and "approval 1 (notices)" in result.stderr


def test_a_signed_announcement_approval_names_its_manifest(approved_notices: Story, reviewer_key: Path):
    ws, iid = approved_notices.ws, approved_notices.id
    ws.ok("dispatch", iid)
    ws.ok("announce", iid)
    manifest = manifest_of(ws, iid, announcement=True)
    ws.refuse(
        "notices", "approve", iid, "--announcement", "--manifest", "0" * 64, "--reviewer", REVIEWER, error="0" * 64
    )
    out = ws.ok(
        "notices", "approve", iid, "--announcement", "--manifest", manifest[:16], "--reviewer", REVIEWER,
        "--sign", str(reviewer_key),
    )  # fmt: skip
    assert f"manifest sha256 {manifest}" in out and "signed with SHA256:" in out
    assert f"{iid}: ok" in ws.ok("audit", "verify", iid)


def test_a_key_that_cannot_sign_is_refused_and_nothing_is_approved(rendered_notices: Story, tmp_path: Path):
    ws, iid = rendered_notices.ws, rendered_notices.id
    not_a_key = tmp_path / "not-a-key"
    not_a_key.write_text("hello\n", encoding="utf-8")
    for key in (not_a_key, tmp_path / "missing"):
        result = ws.refuse(
            "notices", "approve", iid, "--manifest", manifest_of(ws, iid), "--reviewer", REVIEWER, "--sign", str(key),
            error=f"--sign: {key}",
        )  # fmt: skip
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert ws.sql("SELECT COUNT(*) FROM approval") == [(0,)]
    assert ws.json("show", iid)["status"] == "notices rendered"
