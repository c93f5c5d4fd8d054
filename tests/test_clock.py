"""One clock, named (issue 13 item 4): every date a person reads is on their region's clock, the same in both
languages, and says which clock it is; the announcement reads the organisation's clock and a report its
regulator's.

The story runs at 23:30 UTC, when the day in Fujian (UTC+8) and Berlin (UTC+1) is already the next one and in
California (UTC-7) still the same: the boundary where a UTC date and a local date part."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from support import MEMBER_DB_YAML, WorkspaceDir, approve_notices, people_csv

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
OFFSET = r"UTC(?:[+-]\d{1,2}(?::\d{2})?)?"
EN_DATE = re.compile(rf"(\d{{1,2}}) ({'|'.join(MONTHS)}) (\d{{4}})(?:, (\d{{2}}:\d{{2}}))? \(([^,()]+), ({OFFSET})\)")
ZH_DATE = re.compile(rf"(\d{{4}})年(\d{{1,2}})月(\d{{1,2}})日(?: (\d{{2}}:\d{{2}}))?（([^，（）]+)，({OFFSET})）")
EN_BARE = re.compile(rf"\d{{1,2}} (?:{'|'.join(MONTHS)}) \d{{4}}")
ZH_BARE = re.compile(r"\d{4}年\d{1,2}月\d{1,2}日")
ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")

NIGHT = "2026-03-12 23:30:00"  # when legal renders the notices: 13 March in Fujian and Berlin, 12 in California
DISCOVERED = "2026-03-10T23:30:00+00:00"
WINDOW = ("2026-01-01T23:30:00+00:00", "2026-03-01T23:30:00+00:00")
REGIONS = {"fj": "CN-FJ", "ca": "US-CA", "de": "DE"}
PHONES = {"fj": "1380000000", "ca": "(415) 555-010", "de": "+49 151 1234567"}
ADDRESS = {
    "fj": "福建省福州市鼓楼区五四路1号",
    "ca": "1 Market Street San Francisco CA 94105",
    "de": "Unter den Linden 1 Berlin",
}

# (the day of the notice, the discovery as day and time) on each region's clock, and what that clock is called
# then; the window (January to March) is on winter time everywhere
EXPECTED = {
    "fj": (date(2026, 3, 13), (date(2026, 3, 11), "07:30"), "UTC+8", ("China Standard Time", "北京时间")),
    "ca": (date(2026, 3, 12), (date(2026, 3, 10), "16:30"), "UTC-7", ("Pacific Daylight Time", "北美太平洋夏令时间")),
    "de": (date(2026, 3, 13), (date(2026, 3, 11), "00:30"), "UTC+1", ("Central European Time", "中欧标准时间")),
}
WINDOW_ON_THEIR_CLOCK = {
    "fj": [(date(2026, 1, 2), None, "UTC+8"), (date(2026, 3, 2), None, "UTC+8")],
    "ca": [(date(2026, 1, 1), None, "UTC-8"), (date(2026, 3, 1), None, "UTC-8")],
    "de": [(date(2026, 1, 2), None, "UTC+1"), (date(2026, 3, 2), None, "UTC+1")],
}


def dates_in(text: str, locale: str) -> list[tuple[date, str | None, str]]:
    """Every named date of a text, parsed: (the day, the time if given, the UTC offset it names)."""
    if locale == "zh-CN":
        return [(date(int(y), int(m), int(d)), t or None, off) for y, m, d, t, _, off in ZH_DATE.findall(text)]
    return [(date(int(y), MONTHS.index(m) + 1, int(d)), t or None, off) for d, m, y, t, _, off in EN_DATE.findall(text)]


def zone_names_in(text: str, locale: str) -> set[str]:
    pattern = ZH_DATE if locale == "zh-CN" else EN_DATE
    return {m.group(5) for m in pattern.finditer(text)}


def assert_every_date_names_its_zone(text: str, where: str) -> None:
    """No date without its clock: every day written in either language is followed by the zone and offset."""
    assert len(EN_BARE.findall(text)) == len(EN_DATE.findall(text)), f"{where}: an English date without its zone"
    assert len(ZH_BARE.findall(text)) == len(ZH_DATE.findall(text)), f"{where}: a Chinese date without its zone"
    assert not ISO_DATE.findall(text), f"{where}: a raw ISO date: {ISO_DATE.findall(text)}"


def every_text(notice: dict[str, Any]) -> str:
    return "\n".join(notice[k] or "" for k in ("subject", "body", "html"))


@pytest.fixture
def rendered_at_night(workspace: WorkspaceDir) -> tuple[WorkspaceDir, str]:
    """Given two readers in each of Fujian, California and Germany, one reading Chinese and one English, all four
    channels each, when the responder opens the incident and renders its notices at 23:30 UTC."""
    people = [
        {
            "person_id": f"{key}-{lang}",
            "name": f"Reader {key} {lang}",
            "email": f"{key}.{lang}@example.com",
            "phone": PHONES[key] + ("1" if lang == "zh" else "2"),
            "push_token": f"tok-{key}-{lang}-0001",
            "locale": "zh-CN" if lang == "zh" else "en",
            "region": region,
            "birth_date": "1980-01-01",
            "postal_address": ADDRESS[key],
            "account_status": "active",
        }
        for key, region in REGIONS.items()
        for lang in ("zh", "en")
    ]
    holdings = "person_id,system,category,since,until\n" + "".join(
        f"{p['person_id']},member-db,phone,2022-01-01,\n" for p in people
    )
    workspace.import_inventory(people_csv(people), holdings, MEMBER_DB_YAML)
    iid = workspace.ok(
        "open",
        "--playbook",
        "database-exfiltration",
        "--title",
        "会员库被导出",
        "--systems",
        "member-db",
        "--categories",
        "phone",
        "--from",
        WINDOW[0],
        "--to",
        WINDOW[1],
        "--discovered",
        DISCOVERED,
    ).strip()
    with freeze_time(NIGHT, tick=True):
        workspace.ok("assess", iid)
        workspace.ok("notices", "render", iid)
    return workspace, iid


def notices_of(ws: WorkspaceDir, iid: str, person_id: str) -> dict[str, dict[str, Any]]:
    return {n["channel"]: n for n in ws.json("notices", "show", iid, "--person", person_id)}


@pytest.mark.parametrize("key", list(REGIONS))
def test_both_languages_of_a_notice_agree_on_every_date_on_every_channel(rendered_at_night, key: str) -> None:
    """Then the Chinese and the English notice of the same region give the same day, time and offset for every
    date, on every channel, on that region's clock: at 23:30 UTC, 13 March in Fujian and Berlin, 12 in California."""
    ws, iid = rendered_at_night
    zh, en = notices_of(ws, iid, f"{key}-zh"), notices_of(ws, iid, f"{key}-en")
    assert set(zh) == set(en) == {"email", "sms", "push", "letter"}
    notice_day, discovered, offset, names = EXPECTED[key]
    for channel in zh:
        zh_dates, en_dates = dates_in(every_text(zh[channel]), "zh-CN"), dates_in(every_text(en[channel]), "en")
        assert zh_dates == en_dates, f"{channel}: zh {zh_dates} but en {en_dates}"
        if channel in ("email", "letter"):  # the full notice: window, discovery and the notice's own date
            expected = {*WINDOW_ON_THEIR_CLOCK[key], (*discovered, offset), (notice_day, None, offset)}
            # and the due time of each regulator report still to be made ("we will report … by …"), on their clock
            promised = {
                d
                for line in every_text(en[channel]).splitlines()
                if "will report" in line
                for d in dates_in(line, "en")
            }
            assert set(en_dates) - promised == expected
            assert {off for _, _, off in promised} <= {off for _, _, off in expected}, promised
            assert names[0] in zone_names_in(every_text(en[channel]), "en")
            assert names[1] in zone_names_in(every_text(zh[channel]), "zh-CN")


def test_every_date_in_every_notice_names_its_zone(rendered_at_night) -> None:
    """Then no notice of anyone, on any channel, carries a date that does not say which clock it is."""
    ws, iid = rendered_at_night
    for key in REGIONS:
        for lang in ("zh", "en"):
            for channel, notice in notices_of(ws, iid, f"{key}-{lang}").items():
                assert_every_date_names_its_zone(every_text(notice), f"{key}-{lang} {channel}")


def test_the_review_page_shows_each_example_on_its_readers_clock(rendered_at_night) -> None:
    """Then the review bundle legal reads shows the dates named too (what they approve is what people read)."""
    ws, iid = rendered_at_night
    page = (ws.root / "review" / iid / "index.html").read_text(encoding="utf-8")
    assert EN_DATE.search(page) and ZH_DATE.search(page)
    assert len(EN_BARE.findall(page)) == len(EN_DATE.findall(page))


def test_the_announcement_reads_the_organisations_clock_in_both_languages(rendered_at_night) -> None:
    """Given the organisation in Fujian ([organisation] location = CN-FJ), when the responder renders the
    announcement at 23:30 UTC, then both languages date it 13 March on Beijing time and agree on every date."""
    ws, iid = rendered_at_night
    approve_notices(ws, iid, "Legal (Li Na)")
    ws.ok("dispatch", iid)
    with freeze_time(NIGHT, tick=True):
        ws.ok("announce", iid)
    folder = ws.root / "review" / iid / "announcement"
    for kind in ("md", "html"):
        zh = next(folder.glob(f"*zh-CN*.{kind}")).read_text(encoding="utf-8")
        en = next(folder.glob(f"*en*.{kind}")).read_text(encoding="utf-8")
        assert dates_in(zh, "zh-CN") == dates_in(en, "en")
        assert (date(2026, 3, 13), None, "UTC+8") in dates_in(en, "en")
        assert {o for _, _, o in dates_in(zh, "zh-CN")} == {"UTC+8"}
        for text in (zh, en):
            assert_every_date_names_its_zone(text.split("audit chain")[0].split("审计链")[0], f"announcement {kind}")


def generated_report(ws: WorkspaceDir, iid: str, regulator: str) -> str:
    fields = ["--field", "law_enforcement_delay=none"] if regulator == "us-ca-ag" else []
    with freeze_time(NIGHT, tick=True):
        out = ws.ok("report", iid, "--regulator", regulator, "--format", "md", *fields)
    return Path(out.splitlines()[0].split("  (sha256")[0]).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("regulator", "offsets", "day"),
    [
        ("cn-cac", {"UTC+8"}, date(2026, 3, 13)),
        ("us-ca-ag", {"UTC-8", "UTC-7"}, date(2026, 3, 12)),  # winter window, summer time from 8 March
        ("us-tx-ag", {"UTC-6", "UTC-5"}, date(2026, 3, 12)),
        ("eu-gdpr", {"UTC+1"}, date(2026, 3, 13)),  # no lead authority configured: Brussels
    ],
)
def test_a_report_is_dated_on_its_regulators_clock(
    rendered_at_night, regulator: str, offsets: set[str], day: date
) -> None:
    """When the responder generates a report at 23:30 UTC, then every date in it is on the regulator's clock and
    named, in whichever language the report writes it: generated on the regulator's day."""
    ws, iid = rendered_at_night
    text = generated_report(ws, iid, regulator)
    both = dates_in(text, "en") + dates_in(text, "zh-CN")
    assert both and {o for _, _, o in both} <= offsets, both
    generated = next(line for line in text.splitlines() if re.search("Generated|Prepared|Date of this notif", line))
    assert day in {d for d, _, _ in dates_in(generated, "en") + dates_in(generated, "zh-CN")}, generated
    assert_every_date_names_its_zone(text.split("\n## ")[0], regulator)


def set_lead_authority(ws: WorkspaceDir, value: str) -> None:
    path = ws.root / "incident.toml"
    toml = path.read_text(encoding="utf-8")
    path.write_text(toml.replace('location = "CN-FJ"\n', f'location = "CN-FJ"\neu_lead_authority = {value}\n'))


def test_the_gdpr_report_reads_the_lead_supervisory_authoritys_clock(rendered_at_night) -> None:
    """Given [organisation] eu_lead_authority = "IE", then the GDPR report is dated on Irish time (UTC+0 in
    March: still 12 March at 23:30 UTC)."""
    ws, iid = rendered_at_night
    set_lead_authority(ws, '"IE"')
    text = generated_report(ws, iid, "eu-gdpr")
    dates = dates_in(text, "en")
    assert dates and {o for _, _, o in dates} == {"UTC"}
    assert date(2026, 3, 12) in {d for d, _, _ in dates} and "Greenwich Mean Time" in zone_names_in(text, "en")


@pytest.mark.parametrize("value", ['"Atlantis"', "42"])
def test_an_unknown_lead_authority_is_one_line_naming_the_setting(rendered_at_night, value: str) -> None:
    """Given a lead authority that is no region code, then the report is refused naming the setting; no file."""
    ws, iid = rendered_at_night
    set_lead_authority(ws, value)
    # a text that names no region is the report's refusal; a value that is no text at all, the config's on load
    result = ws.refuse("report", iid, "--regulator", "eu-gdpr", error="eu_lead_authority")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not [p for p in ws.root.rglob("*eu-gdpr*") if p.is_file()], "a refused report writes no file"
