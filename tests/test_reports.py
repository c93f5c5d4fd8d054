"""Issue 5: regulator reports, defined as data, carrying aggregates only, stored, listed and marked submitted.

The story: the hand-written inventory's incident (people in mainland China, Germany, California and Texas,
children, a cancelled account still in the backup) is assessed and its notices dispatched. The responder files
the CAC report, the GDPR notification, the California sample notice and the Texas form; every number in them
is the assessment's or the delivery records', and submitting a report settles the obligation it discharges.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from freezegun import freeze_time
from snapshots import Snapshot
from support import PEOPLE_CSV, OpenedIncident, WorkspaceDir, approve_notices, open_incident

REPO = Path(__file__).resolve().parents[1]
RULES = yaml.safe_load((REPO / "playbooks" / "jurisdictions.yaml").read_text(encoding="utf-8"))
DISCOVERED = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
CN_CAC_HEADINGS = (
    "一、单位名称及受影响设施、系统、平台基本情况",
    "二、事件发现（发生）时间、地点、类型、级别",
    "三、事件可能的发展趋势及进一步影响",
    "四、事件原因初步分析",
    "五、调查溯源线索",
    "六、拟进一步采取的措施及需要的支持",
    "七、事件现场保护情况",
    "八、其他需要报告的事项",
    "附：个人信息安全事件记录",
)
FINAL_FIELDS = {
    "root_cause": "数据库账号密码泄露于公开代码仓库",
    "accountability": "对责任人给予处分",
    "remediation": "启用密钥托管并扫描代码仓库",
    "lessons": "凭证不得写入代码",
}


def report(ws: WorkspaceDir, iid: str, regulator: str, *args: str) -> Path:
    """Generate one report and return the path of the (first) file it printed."""
    out = ws.ok("report", iid, "--regulator", regulator, *args)
    return Path(out.splitlines()[0].split("  (sha256")[0])


def report_json(ws: WorkspaceDir, iid: str, regulator: str, *args: str) -> dict[str, Any]:
    return json.loads(report(ws, iid, regulator, "--format", "json", *args).read_text(encoding="utf-8"))


def dispatch_story(ws: WorkspaceDir) -> str:
    """The hand-written inventory's incident (as conftest opens it), assessed, its notices rendered, approved,
    dispatched to the file outbox and its letters written."""
    ws.import_inventory()
    iid = open_incident(
        ws,
        "--where",
        "数据库审计告警, Fuzhou DC",
        "--discovered-by",
        "SOC on-call",
        "--connected",
        "订单系统未受影响",
        "--police",
    ).id
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    ws.ok("letters", iid)
    ws.ok("letters", iid, "--posted-at", datetime.now(UTC).isoformat())  # the mail house posted the batch
    return iid


@pytest.fixture(scope="module")
def dispatched_once(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "reports", dispatch_story)


@pytest.fixture
def dispatched(dispatched_once: Snapshot, tmp_path: Path) -> OpenedIncident:
    """A private copy of the dispatched incident."""
    return dispatched_once.copy(tmp_path)


def test_every_report_s_numbers_are_the_assessment_s_and_the_delivery_records(dispatched: OpenedIncident) -> None:
    """Given a dispatched incident, when each kind of report is generated as JSON, then its counts are exactly
    `incident assess --json`'s, its channel outcomes are exactly the attempts `incident deliveries` exports, and
    each regime's residents, records and people notified match the affected list and the delivery records."""
    ws, iid = dispatched.ws, dispatched.id
    assessed = ws.json("assess", iid)
    attempts = [json.loads(line) for line in ws.ok("deliveries", iid, "--format", "jsonl").splitlines()]
    affected = dispatched.affected()
    regimes = {r["key"]: r["residents"] for r in assessed["regimes"]}
    reached = {a["person_id"] for a in attempts if a["outcome"] in ("sent", "printed")}

    for regulator, regime, prefixes, extra in (
        ("cn-cac", "cn", ("CN",), ()),
        ("eu-gdpr", "eu-gdpr", ("DE",), ("--delay-reason", "late")),
        ("us-ca-ag", "us-ca", ("US-CA",), ("--field", "law_enforcement_delay=No")),
        ("us-tx-ag", "us-tx", ("US-TX",), ()),
    ):
        data = report_json(ws, iid, regulator, *extra)
        residents = [p for p in affected.values() if (p["region"] or "").startswith(prefixes)]

        assert data["counts"] == assessed["counts"], regulator
        assert data["deliveries"]["channels"] == {
            ch: dict(Counter(a["outcome"] for a in attempts if a["channel"] == ch))
            for ch in {a["channel"] for a in attempts}
        }, regulator
        assert data["regime"]["residents"] == regimes[regime] == len(residents), regulator
        assert data["regime"]["records"] == sum(len(p["categories"].split(",")) for p in residents)
        assert data["regime"]["notified"] == sum(p["person_id"] in reached for p in residents), regulator
    assert sum(data["deliveries"]["deliveries"].values()) == assessed["counts"]["people"]


def test_the_cac_initial_report_carries_items_1_and_2_and_marks_the_rest_to_follow(dispatched: OpenedIncident) -> None:
    """Given only the incident facts, when the responder files the CAC initial report, then items 1-8 and the
    GB/T 35273 record are there, items 1-2 and the record are filled from the incident, and what the responder
    has not supplied reads 待补报 — unless given with --field."""
    ws, iid = dispatched.ws, dispatched.id
    text = report(ws, iid, "cn-cac").read_text(encoding="utf-8")
    given = report(ws, iid, "cn-cac", "--field", "likely_development=预计不会进一步扩散").read_text(encoding="utf-8")

    assert [h in text for h in CN_CAC_HEADINGS] == [True] * len(CN_CAC_HEADINGS)
    assert text.startswith("# 网络安全事件报告（初次报告）")
    assert "- 发现人：SOC on-call" in text and "- 发现地点：数据库审计告警, Fuzhou DC" in text
    assert "- 是否已联系执法机关或有关部门：是" in text and "- 对其他互联系统的影响：订单系统未受影响" in text
    assert "涉及11人、12条个人信息记录" in text
    sections = dict(part.split("\n", 1) for part in text.split("\n## ")[1:])
    follow = [title[:2] for title, body in sections.items() if body.strip().endswith("待补报")]
    assert follow == ["二、", "三、", "五、", "六、", "七、"]
    assert "预计不会进一步扩散" in given and given.count("待补报") == text.count("待补报") - 1


def test_the_cac_final_summary_needs_its_six_parts(dispatched: OpenedIncident) -> None:
    """Given a closed incident, when the responder files the CAC final summary without the responder's parts,
    then it is refused naming each one; with them, the summary carries them under their headings."""
    ws, iid = dispatched.ws, dispatched.id
    ws.ok("close", iid)
    ws.refuse(
        "report",
        iid,
        "--regulator",
        "cn-cac",
        "--stage",
        "final",
        error="the cn-cac final report needs --field root_cause=TEXT, --field accountability=TEXT, "
        "--field remediation=TEXT, --field lessons=TEXT",
    )

    args = [a for k, v in FINAL_FIELDS.items() for a in ("--field", f"{k}={v}")]
    text = report(ws, iid, "cn-cac", "--stage", "final", *args).read_text(encoding="utf-8")

    assert text.startswith("# 网络安全事件报告（总结报告）")
    for heading, value in zip(
        ("三、事件原因", "六、责任处理情况", "七、整改情况", "八、经验教训"), FINAL_FIELDS.values(), strict=True
    ):
        assert f"## {heading}" in text and value in text.split(f"## {heading}")[1]
    assert "## 四、应对处置情况" in text and "## 五、危害后果" in text and "待补报" not in text


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("--field", "nonsense=x"), "--field nonsense: is unknown, not cn-cac initial"),
        (("--field", "lessons=x"), "--field lessons: belongs to the cn-cac final report, not cn-cac initial"),
        (("--field", "no-equals-sign"), "--field: use KEY=TEXT"),
        (("--stage", "interim"), "--stage: the cn-cac report has the stages initial, update, final"),
        (("--format", "docx"), "--format: use md, html, pdf, json (got docx)"),
        (("--reference", "R-1"), "--reference: goes with --submitted-at"),
    ],
    ids=["unknown field", "other stage's field", "not KEY=TEXT", "unknown stage", "unknown format", "stray ref"],
)
def test_bad_report_requests_are_refused_in_one_line(
    dispatched: OpenedIncident, args: tuple[str, ...], error: str
) -> None:
    """Given a bad option, then the report is refused with one line naming it, and nothing is stored."""
    dispatched.ws.refuse("report", dispatched.id, "--regulator", "cn-cac", *args, error=error)

    assert dispatched.ws.sql("SELECT COUNT(*) FROM report") == [(0,)]
    assert not (dispatched.ws.root / "reports").exists()


def test_an_unknown_report_kind_lists_the_known_ones(dispatched: OpenedIncident) -> None:
    dispatched.ws.refuse(
        "report",
        dispatched.id,
        "--regulator",
        "xx-ag",
        error="--regulator: unknown report kind 'xx-ag' (known: cn-cac, eu-gdpr, us-ca-ag, us-tx-ag)",
    )


def test_a_gdpr_notification_after_72_hours_must_give_the_reasons_for_the_delay(dispatched: OpenedIncident) -> None:
    """Given a German resident affected, then the GDPR notification needs no reasons up to 72 hours after
    discovery; one second later it is refused without --delay-reason, and with it the reasons lead the report."""
    ws, iid = dispatched.ws, dispatched.id
    with freeze_time(DISCOVERED + timedelta(hours=72)):
        on_time = report(ws, iid, "eu-gdpr").read_text(encoding="utf-8")
    with freeze_time(DISCOVERED + timedelta(hours=72, seconds=1)):
        ws.refuse(
            "report",
            iid,
            "--regulator",
            "eu-gdpr",
            error="the eu-gdpr initial report is filed 72.0 h after discovery, more than 72 h: give "
            "--delay-reason TEXT (GDPR art. 33(1)",
        )
        late = report(ws, iid, "eu-gdpr", "--delay-reason", "The scope was only known after forensic imaging")
        phased = report(ws, iid, "eu-gdpr", "--stage", "update", "--field", "new_information=Root cause confirmed")

    text = late.read_text(encoding="utf-8")
    assert "Reasons for the delay" not in on_time
    assert "## Reasons for the delay (art. 33(1))" in text and "forensic imaging" in text
    assert text.index("Reasons for the delay") < text.index("Nature of the breach (art. 33(3)(a))")
    for heading in (
        "(art. 33(3)(b))",
        "Categories and approximate numbers of data subjects and records",
        "Likely consequences (art. 33(3)(c))",
        "Measures taken or proposed",
    ):
        assert heading in text
    assert "| Data subjects | 1 | 11 |" in text
    assert "Root cause confirmed" in phased.read_text(encoding="utf-8")


def test_marking_a_late_gdpr_notification_submitted_needs_reasons_in_it(dispatched: OpenedIncident) -> None:
    """Given a GDPR notification generated in time without reasons for a delay, then marking it submitted after
    72 hours is refused; submitted within 72 hours it settles the GDPR obligation at that time."""
    ws, iid = dispatched.ws, dispatched.id
    with freeze_time(DISCOVERED + timedelta(hours=70)):
        report(ws, iid, "eu-gdpr")
    with freeze_time(DISCOVERED + timedelta(hours=80)):
        ws.refuse(
            "report",
            iid,
            "--regulator",
            "eu-gdpr",
            "--submitted-at",
            (DISCOVERED + timedelta(hours=73)).isoformat(),
            error="submitted 73.0 h after discovery, more than 72 h, but the report gives no reasons",
        )
        out = ws.ok(
            "report",
            iid,
            "--regulator",
            "eu-gdpr",
            "--submitted-at",
            (DISCOVERED + timedelta(hours=71)).isoformat(),
            "--reference",
            "DPC-2026-0042",
        )
        obligation = dispatched.obligations()["gdpr-sa-72h"]

    assert "settled: gdpr-sa-72h" in out
    assert (obligation["state"], obligation["done_at"]) == ("done", "2026-03-13T07:00:00+00:00")


def test_submitting_a_report_settles_what_it_discharges_and_the_list_shows_it(dispatched: OpenedIncident) -> None:
    """Given a relatively major incident, when the CAC initial report (Markdown and HTML) is generated and then
    marked submitted, then `--list` shows both files with their hashes, submitted with the reference, and the
    4-hour CAC report and the PIPL authority report are done at the time of submission."""
    ws, iid = dispatched.ws, dispatched.id
    ws.ok("assess", iid, "--grade", "relatively-major", "--reason", "qualitative criteria")
    submitted_at = (DISCOVERED + timedelta(hours=3, minutes=10)).isoformat()
    with freeze_time(DISCOVERED + timedelta(hours=2)):
        ws.refuse(
            "report",
            iid,
            "--regulator",
            "cn-cac",
            "--submitted-at",
            submitted_at,
            error="--submitted-at: is in the future",
        )
        ws.refuse(
            "report",
            iid,
            "--regulator",
            "cn-cac",
            "--submitted-at",
            DISCOVERED.isoformat(),
            error=f"no cn-cac initial report of {iid} to mark submitted",
        )
        generated = ws.ok("report", iid, "--regulator", "cn-cac", "--format", "md", "--format", "html")
        ws.refuse(
            "report",
            iid,
            "--regulator",
            "cn-cac",
            "--submitted-at",
            DISCOVERED.isoformat(),
            error="--submitted-at: before the report was generated (2026-03-10T10:00:00+00:00)",
        )
        before = ws.json("report", iid, "--list")
    with freeze_time(DISCOVERED + timedelta(hours=5)):
        out = ws.ok(
            "report", iid, "--regulator", "cn-cac", "--submitted-at", submitted_at, "--reference", "FJ-CAC-2026-117"
        )
        after = ws.json("report", iid, "--list")
        obligations = dispatched.obligations()
        again = ws.run("report", iid, "--regulator", "cn-cac", "--submitted-at", submitted_at)

    assert "(settles cn-cac-initial, cn-pipl-authority)" in generated
    assert [(r["format"], r["submitted_at"]) for r in before] == [("md", None), ("html", None)]
    assert all(Path(r["path"]).is_file() and len(r["sha256"]) == 64 for r in before)
    assert "settled: cn-cac-initial, cn-pipl-authority" in out
    assert [(r["format"], r["submitted_at"], r["reference"]) for r in after] == [
        (f, submitted_at, "FJ-CAC-2026-117") for f in ("md", "html")
    ]
    for key in ("cn-cac-initial", "cn-pipl-authority"):
        assert (obligations[key]["state"], obligations[key]["done_at"]) == ("done", submitted_at)
    assert "submitted 2026-03-10T11:10 ref FJ-CAC-2026-117" in ws.ok("report", iid, "--list").splitlines()[0]
    assert again.exit_code == 1 and "the cn-cac initial report was already marked submitted" in again.stderr


def test_the_cac_pdf_shows_its_chinese_headings(dispatched: OpenedIncident) -> None:
    """Given the CAC initial report as PDF (WeasyPrint with a CJK font), when it is turned back into text with
    pdftotext, then the Chinese title and every item heading are there."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: scripts/system-deps installs it")
    pdf = report(dispatched.ws, dispatched.id, "cn-cac", "--format", "pdf")

    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=60
    ).stdout

    assert pdf.read_bytes().startswith(b"%PDF")
    assert "网络安全事件报告（初次报告）" in text
    for heading in CN_CAC_HEADINGS:
        assert heading[:8] in text, heading
    assert "待补报" in text and "禄可科技集团有限公司" in text


def test_the_california_sample_notice_is_the_email_with_placeholders_and_no_personal_data(
    dispatched: OpenedIncident,
) -> None:
    """Given California residents among the affected, then the AG sample is the English email notice as a
    placeholder person gets it, with the count of California residents, and nobody's personal data."""
    ws, iid = dispatched.ws, dispatched.id
    text = report(ws, iid, "us-ca-ag", "--field", "law_enforcement_delay=No.").read_text(encoding="utf-8")
    people = [line.split(",") for line in PEOPLE_CSV.strip().splitlines()[1:]]
    personal = [v for row in people for v in (row[1], row[2], row[3], row[8], row[9]) if v]

    assert "- California residents affected: 1" in text
    assert "**Subject:** Notice of Data Breach" in text and "Dear [Name]," in text
    assert "WHAT INFORMATION WAS INVOLVED" in text and "[notice reference]" in text
    assert "Was notification delayed because of a law enforcement investigation? No." in text
    assert [v for v in personal if v in text] == []


def test_the_texas_form_counts_texans_notified_from_the_delivery_records(dispatched: OpenedIncident) -> None:
    """Given one Texan affected and notified by email, then the Texas form says 1 affected, 1 notified (0 by
    mail), and that law enforcement is involved (the incident says police were contacted)."""
    text = report(dispatched.ws, dispatched.id, "us-tx-ag").read_text(encoding="utf-8")
    sections = dict(part.split("\n", 1) for part in text.split("\n## ")[1:])

    assert sections["Number of Texans affected"].strip() == "1"
    assert (
        sections["Number of affected Texans notified by mail or other direct method"]
        .strip()
        .startswith("1 (0 by mail, 1 by email, SMS or app notification)")
    )
    assert sections["Whether law enforcement is engaged in investigating the breach"].strip().startswith("Yes")


def test_the_html_report_shows_responder_markup_as_text(dispatched: OpenedIncident) -> None:
    """Given a responder field with HTML in it, then the HTML report escapes it and uses a CJK font family."""
    page = report(
        dispatched.ws, dispatched.id, "cn-cac", "--format", "html", "--field", "other=<script>alert(1)</script>"
    ).read_text(encoding="utf-8")

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert '"Noto Sans CJK SC"' in page and "<h2>一、单位名称及受影响设施、系统、平台基本情况</h2>" in page


SETTLED_BY_REPORTS = sorted(
    {s for r in RULES["regimes"] for o in r["obligations"] for s in o.get("settled_by", []) if s.startswith("report:")}
)


@pytest.mark.parametrize("source", SETTLED_BY_REPORTS)
def test_every_report_the_rules_name_exists_with_that_stage(source: str) -> None:
    """Given jurisdictions.yaml, then each `report:KIND:STAGE` it names has playbooks/reports/KIND.yaml with that
    stage and a template notices/reports/KIND.md.j2."""
    _, kind, stage = source.split(":")
    data = yaml.safe_load((REPO / "playbooks" / "reports" / f"{kind}.yaml").read_text(encoding="utf-8"))

    assert stage in data["stages"]
    assert (REPO / "notices" / "reports" / f"{kind}.md.j2").is_file()


@pytest.mark.parametrize(
    ("edit", "marker", "error"),
    [
        (
            (
                "    stages: [initial, update]\n    field: investigation_leads",
                "    stages: [initial, interim]\n    field: investigation_leads",
            ),
            "[initial, interim]",
            "sections.5.stages.1: Input should be 'initial', 'update' or 'final'",
        ),
        (("  - key: leads\n", "  - key: leads\n    colour: red\n"), "colour: red", "sections.5.colour: unknown key"),
        (
            ("  - key: development\n", "  - key: entity\n"),
            "key: entity\n    title: {zh-CN: 三",
            "sections.3.key: duplicate section key 'entity'",
        ),
        (
            ("    stages: [update]\n    field: new_developments", "    stages: [initial]\n    field: new_developments"),
            "key: developments",
            "sections.2: Value error, required_at names stages the section is not in: update",
        ),
    ],
    ids=["unknown stage", "unknown key", "duplicate key", "required_at outside stages"],
)
def test_a_bad_report_kind_file_is_refused_naming_file_line_and_field(
    dispatched: OpenedIncident, edit: tuple[str, str], marker: str, error: str
) -> None:
    """Given a workspace copy of cn-cac.yaml with a mistake, then generating the report names the file, the
    line of the mistake and the field, and stores nothing."""
    source = (REPO / "playbooks" / "reports" / "cn-cac.yaml").read_text(encoding="utf-8")
    assert edit[0] in source
    broken = source.replace(edit[0], edit[1], 1)
    line = broken[: broken.index(marker)].count("\n") + 1
    path = dispatched.ws.root / "playbooks" / "reports" / "cn-cac.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(broken, encoding="utf-8")

    dispatched.ws.refuse("report", dispatched.id, "--regulator", "cn-cac", error=f"{path}:{line}: {error}")

    assert dispatched.ws.sql("SELECT COUNT(*) FROM report") == [(0,)]
