"""Issue 13 items 2 and 8: a regulator report speaks to the regulator, in the third person, and gets the small
things right that a regulator notices: region names instead of codes, lists as lists, balanced brackets, how the
breach was discovered, and the data protection officer and EU representative.

The story: the hand-written inventory's incident (people in mainland China, Germany, California and Texas) is
assessed and notified; the responder files every report there is, in every format.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from snapshots import Snapshot
from support import OpenedIncident, WorkspaceDir, approve_notices, open_incident

REPO = Path(__file__).resolve().parents[1]
# Every report kind with the extra arguments its initial stage needs in this story (it is filed late).
REPORTS = {
    "cn-cac": (),
    "eu-gdpr": ("--delay-reason", "Scope of the breach was confirmed only after the forensic review."),
    "us-ca-ag": ("--field", "law_enforcement_delay=No."),
    "us-tx-ag": (),
}
FORMATS = ("md", "html", "json", "pdf")
SECOND_PERSON = re.compile(r"您|你|\byou\b|\byour\b", re.IGNORECASE)
# The one place a report may quote the second person: the sample notice, fenced by these two lines.
SAMPLE = re.compile(r"Sample notice begins.*?Sample notice ends", re.DOTALL)
ISO_SUBDIVISION = re.compile(r"\b(?:CN|US|DE)-[A-Z]{2}\b")


def story(ws: WorkspaceDir) -> str:
    """The incident of the shared inventory, discovered by the SOC through a database audit alert, notified."""
    ws.import_inventory()
    iid = open_incident(ws, "--where", "database audit alert, Fuzhou data centre", "--discovered-by", "SOC").id
    ws.ok("assess", iid)
    ws.ok("notices", "render", iid)
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    return iid


@pytest.fixture(scope="module")
def notified_once(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    return Snapshot(tmp_path_factory, "report-voice", story)


@pytest.fixture
def notified(notified_once: Snapshot, tmp_path: Path) -> OpenedIncident:
    """A private copy of the notified incident."""
    return notified_once.copy(tmp_path)


def generate(ws: WorkspaceDir, iid: str, regulator: str, *formats: str) -> dict[str, Path]:
    """Run `incident report` once for `formats` and return each file it wrote, by format."""
    args = [a for f in formats for a in ("--format", f)]
    out = ws.ok("report", iid, "--regulator", regulator, *args, *REPORTS[regulator])
    paths = [Path(line.split("  (sha256")[0]) for line in out.splitlines() if "  (sha256" in line]
    return {p.suffix[1:]: p for p in paths}


def own_voice(path: Path) -> str:
    """The text a report says in its own voice: the PDF as pdftotext reads it, the HTML without tags, the JSON
    without its `sample_notice` field, and the fenced sample notice left out of every format."""
    if path.suffix == ".pdf":
        text = subprocess.run(
            ["pdftotext", str(path), "-"], capture_output=True, text=True, check=True, timeout=60
        ).stdout
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        data.pop("sample_notice")
        text = json.dumps(data, ensure_ascii=False)
    else:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            text = re.sub(r"<[^>]+>", " ", text)
    return SAMPLE.sub("", text)


def test_no_report_speaks_to_the_regulator_as_if_it_were_the_affected_person(notified: OpenedIncident) -> None:
    """Given a notified incident, when the responder generates every report in every format (the CAC report in
    Chinese with its English headings, the others in English), then none says 您, 你, you or your in its own
    voice: the consequences are the categories' third-person wordings for regulators, and the only second
    person left is the California sample notice, quoted between its two fence lines."""
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed: scripts/system-deps installs it")
    ws, iid = notified.ws, notified.id
    seen = {}
    for regulator in REPORTS:
        for fmt, path in generate(ws, iid, regulator, *FORMATS).items():
            text = own_voice(path)
            seen[regulator, fmt] = text
            found = sorted({m.group(0) for m in SECOND_PERSON.finditer(text)})
            assert found == [], f"{regulator} {fmt} addresses the reader: {found}"

    assert "相关密码可能被用于登录当事人的账户" in seen["cn-cac", "md"]
    assert "The passwords could be used to sign in to the affected accounts" in seen["eu-gdpr", "md"]
    assert "Dear [Name]" in generate(ws, iid, "us-ca-ag", "md")["md"].read_text(encoding="utf-8")
    data = json.loads(generate(ws, iid, "eu-gdpr", "json")["json"].read_text(encoding="utf-8"))
    assert "impact" not in data["incident"]
    assert data["consequences"]["zh"][0].startswith("相关")


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "    regulator_impact:\n      zh-CN: 相关密码",
            "    regulator_wording:\n      zh-CN: 相关密码",
            "category 'password' has no regulator_impact",
        ),
        (
            "The passwords could be used to sign in to the affected accounts",
            "Someone could sign in to your account",
            "category 'password': regulator_impact en addresses the reader ('your')",
        ),
    ],
    ids=["missing", "second person"],
)
def test_a_category_without_a_third_person_regulator_wording_is_refused(
    notified: OpenedIncident, old: str, new: str, problem: str
) -> None:
    """Given a workspace copy of categories.yaml whose `password` category lacks its regulator wording (or says
    "your" in it), when the responder generates a report, then one line names the file, the category's line
    and the category, and no report is written."""
    ws, iid = notified.ws, notified.id
    path = ws.root / "playbooks" / "categories.yaml"
    path.parent.mkdir(exist_ok=True)
    shipped = (REPO / "playbooks" / "categories.yaml").read_text(encoding="utf-8")
    assert old in shipped
    path.write_text(shipped.replace(old, new, 1), encoding="utf-8")
    line = next(
        n for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if text == "  - key: password"
    )

    result = ws.refuse("report", iid, "--regulator", "eu-gdpr", *REPORTS["eu-gdpr"], error=f"{path}:{line}: ")

    assert problem in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (ws.root / "reports").exists() or list((ws.root / "reports").rglob("*.md")) == []


def test_reports_name_regions_and_countries_instead_of_iso_codes(notified: OpenedIncident) -> None:
    """Given people in Fujian, Beijing, Germany, California and Texas and a company located in CN-FJ, when the
    CAC and GDPR reports are generated, then the CAC report says 福建省, 北京市, 德国, 得克萨斯州, the GDPR report
    Fujian, Germany and Texas, and neither shows a subdivision code like CN-FJ or US-TX."""
    ws, iid = notified.ws, notified.id
    cac = generate(ws, iid, "cn-cac", "md")["md"].read_text(encoding="utf-8")
    gdpr = generate(ws, iid, "eu-gdpr", "md")["md"].read_text(encoding="utf-8")

    assert "- 所在地：福建省" in cac
    for row in ("| 福建省 | 1 |", "| 北京市 | 1 |", "| 德国 | 1 |", "| 得克萨斯州 | 1 |", "| 中国 | 1 |"):
        assert row in cac, row
    for row in ("| Fujian | 1 |", "| Germany | 1 |", "| Texas | 1 |", "| California | 1 |"):
        assert row in gdpr, row
    assert ISO_SUBDIVISION.findall(cac) == [] and ISO_SUBDIVISION.findall(gdpr) == []
    # the breached systems' kinds in Chinese too: 备份 / 合作方系统 / 自有系统, never the inventory's English word
    systems = [line for line in cac.splitlines() if line.lstrip().startswith("- ") and "（" in line and "：" in line]
    assert any("（备份" in s for s in systems) and any("（合作方系统" in s for s in systems), systems
    assert not re.search(r"（(?:backup|partner|internal)\b", cac)


def test_a_region_no_source_knows_is_shown_as_its_code_with_a_warning(notified: OpenedIncident) -> None:
    """Given the company's location set to a code that no data source names (CN-QQ), when the CAC report is
    generated, then it shows the code rather than a blank and the responder is warned, naming the code."""
    ws, iid = notified.ws, notified.id
    toml = ws.root / "incident.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace('location = "CN-FJ"', 'location = "CN-QQ"'))

    result = ws.run("report", iid, "--regulator", "cn-cac")

    assert result.exit_code == 0, result.output
    assert "warning: region 'CN-QQ' has no known name" in result.stderr
    path = Path(result.stdout.splitlines()[0].split("  (sha256")[0])
    assert "- 所在地：CN-QQ" in path.read_text(encoding="utf-8")


def unbalanced(text: str) -> str | None:
    """The first bracket that does not pair up, with its neighbourhood, else None."""
    pairs = {")": "(", "）": "（", "]": "["}
    stack: list[tuple[str, int]] = []
    for i, ch in enumerate(text):
        if ch in pairs.values():
            stack.append((ch, i))
        elif ch in pairs:
            if not stack or stack[-1][0] != pairs[ch]:
                return text[max(0, i - 60) : i + 20]
            stack.pop()
    return text[stack[-1][1] : stack[-1][1] + 60] if stack else None


def test_every_report_has_balanced_parentheses_and_brackets(notified: OpenedIncident) -> None:
    """Given every report kind as Markdown and JSON, then each (), （） and [] opens and closes in order: no
    "§10.2 a): publish …)" left dangling."""
    ws, iid = notified.ws, notified.id
    for regulator in REPORTS:
        for fmt, path in generate(ws, iid, regulator, "md", "json").items():
            text = path.read_text(encoding="utf-8")
            if fmt == "json":
                text = "\n".join(str(v) for v in _strings(json.loads(text)))
            assert unbalanced(text) is None, f"{regulator} {fmt}: {unbalanced(text)!r}"


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_gdpr_report_says_how_the_breach_was_discovered_and_lists_the_systems(notified: OpenedIncident) -> None:
    """Given an incident opened with --where and --discovered-by, then the GDPR notification says how the breach
    was discovered, and names the breached systems as a Markdown list, one system a line, not a comma run."""
    ws, iid = notified.ws, notified.id
    text = generate(ws, iid, "eu-gdpr", "md")["md"].read_text(encoding="utf-8")

    assert "- How it was discovered: database audit alert, Fuzhou data centre, by SOC" in text
    systems = text.split("- Systems:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [s.split(":")[0].strip() for s in systems] == ["- archive-backup", "- member-db", "- pay-partner"]
    assert "(located in China)" in systems[0]


def test_without_a_dpo_the_gdpr_contact_point_is_the_pi_protection_officer(notified: OpenedIncident) -> None:
    """Given an organisation with no [organisation.dpo], then the GDPR notification says no DPO is designated
    and names the PI protection officer and how to reach them as the contact point (art. 33(3)(b)): never blank."""
    text = generate(notified.ws, notified.id, "eu-gdpr", "md")["md"].read_text(encoding="utf-8")

    assert (
        "- Contact point: no data protection officer is designated; the contact point is the Personal Information "
        "Protection Officer: lookjt@163.com, 4001577888, 3F, 179-2 Jinjingwan Avenue East" in text
    )
    assert "Representative in the Union" not in text


DPO = """
[organisation.dpo]
name = "Dr. Eva Schmidt"
email = "dpo@lkkjjt.com"
phone = "+49 30 1234567"

[organisation.eu_representative]
name = "EU-Rep Services GmbH"
email = "lkkjjt@eu-rep.example"
address = "Friedrichstraße 1, 10117 Berlin, Germany"
"""


def add_to_organisation(ws: WorkspaceDir, toml_text: str) -> None:
    """Insert tables into incident.toml right after [organisation.officer], as a responder would."""
    path = ws.root / "incident.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("\n[database]", toml_text + "\n[database]", 1), encoding="utf-8")


def test_the_gdpr_report_names_the_dpo_and_the_eu_representative(notified: OpenedIncident) -> None:
    """Given [organisation.dpo] and [organisation.eu_representative] in incident.toml, when the GDPR notification
    is generated, then it names the DPO as the contact point and the representative in the Union, with their
    contact details."""
    ws, iid = notified.ws, notified.id
    add_to_organisation(ws, DPO)

    text = own_voice(generate(ws, iid, "eu-gdpr", "html")["html"])

    assert "Data protection officer (the contact point): Dr. Eva Schmidt, dpo@lkkjjt.com, +49 30 1234567" in text
    assert (
        "Representative in the Union (art. 27): EU-Rep Services GmbH, lkkjjt@eu-rep.example, "
        "Friedrichstraße 1, 10117 Berlin, Germany" in text
    )
    assert "no data protection officer is designated" not in text


@pytest.mark.parametrize(
    ("toml_text", "error"),
    [
        ('\n[organisation.dpo]\nemail = "dpo@lkkjjt.com"\n', "[organisation.dpo]: name: missing"),
        ('\n[organisation.dpo]\nname = "Eva"\n', "[organisation.dpo]: give email, phone or address"),
        ('\n[organisation.dpo]\nname = "Eva"\nmail = "x@y.z"\n', "[organisation.dpo] mail: unknown key"),
        ('\n[organisation.eu_representative]\nname = ""\nemail = "a@b.c"\n', "name: must be non-empty text"),
        ('\n[organisation.eu_representative]\nname = 7\nemail = "a@b.c"\n', "name: must be non-empty text, not 7"),
    ],
    ids=["no name", "no contact", "unknown key", "empty name", "not text"],
)
def test_a_bad_dpo_or_representative_is_refused_on_load(notified: OpenedIncident, toml_text: str, error: str) -> None:
    """Given a mistake in [organisation.dpo] or [organisation.eu_representative], when the responder runs any
    command, then one line names incident.toml and the field, and no report is written."""
    ws, iid = notified.ws, notified.id
    good = (ws.root / "incident.toml").read_text(encoding="utf-8")
    before = ws.sql("SELECT COUNT(*) FROM report")
    add_to_organisation(ws, toml_text)

    result = ws.refuse("report", iid, "--regulator", "eu-gdpr", *REPORTS["eu-gdpr"], error=error)

    assert "incident.toml" in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    (ws.root / "incident.toml").write_text(good, encoding="utf-8")
    assert ws.sql("SELECT COUNT(*) FROM report") == before
