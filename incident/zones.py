"""Which clock a reader reads: a region's time zone (incident/timezones.yaml), and every date and time written
in it, in either language, with the zone named."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator

from incident import clock
from incident.catalog import Strict, Text
from incident.datafiles import load_yaml
from incident.errors import IncidentError

TABLE = Path(__file__).with_name("timezones.yaml")
UTC_ZONE = "UTC"
MONTHS = (
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
)


class ZoneTable(Strict):
    """The reviewed table: offset names per zone family, each zone's family, each region's zone."""

    names: dict[str, dict[str, Text]] = Field(min_length=1)
    zones: dict[str, str] = Field(min_length=1)
    regions: dict[str, str] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ZoneTable:
        for family, offsets in self.names.items():
            for offset in offsets:
                if len(offset) != 6 or offset[0] not in "+-" or offset[3] != ":":
                    raise ValueError(f"names.{family}: offset {offset!r} is not written as +HH:MM")
        for zone, family in self.zones.items():
            if family not in self.names:
                raise ValueError(f"zones.{zone}: no names for {family!r}")
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"zones.{zone}: not an IANA time zone this machine knows") from None
        for region, zone in self.regions.items():
            if zone not in self.zones:
                raise ValueError(f"regions.{region}: zone {zone!r} is not in zones")
        if UTC_ZONE not in self.zones:
            raise ValueError("zones: UTC must be named (the zone of a region the table does not know)")
        return self


@cache
def table() -> ZoneTable:
    """The packaged zone table, validated once per process."""
    return load_yaml(TABLE, ZoneTable)


@cache
def zone_for(region: str | None) -> str:
    """The IANA zone a person of `region` reads: the subdivision's own, else the country's, else UTC."""
    regions = table().regions
    code = (region or "").strip().upper()
    return regions.get(code) or regions.get(code.split("-")[0]) or UTC_ZONE


def known_zone(zone: str) -> str:
    """`zone` if the table names it (so every date in it can say which clock it is), else an error naming it."""
    if zone not in table().zones:
        raise IncidentError(f"time zone {zone!r} is not in incident/timezones.yaml (known: {', '.join(table().zones)})")
    return zone


def _offset(delta: timedelta | None) -> tuple[str, str]:
    """(+HH:MM as the table keys it, the short form readers see: UTC, UTC+8, UTC-3:30)."""
    minutes = int((delta or timedelta()).total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    short = "UTC" if minutes == 0 else f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")
    return f"{sign}{hours:02d}:{mins:02d}", short


def local(value: datetime | str, zone: str) -> datetime:
    """The instant `value` (aware, naive UTC, or ISO text) on the clock of `zone`."""
    instant = clock.parse_when(value) if isinstance(value, str) else clock.as_utc(value)
    return instant.astimezone(ZoneInfo(known_zone(zone)))


def zone_name(value: datetime | str, zone: str, locale: str) -> str:
    """The zone's name at that instant and its offset: 'China Standard Time, UTC+8' / '北京时间，UTC+8'."""
    at = local(value, zone)
    key, short = _offset(at.utcoffset())
    named = table().names[table().zones[zone]].get(key)
    zh = locale == "zh-CN"
    name = named(locale) if named else (f"{zone}时间" if zh else f"{zone} time")
    return f"{name}，{short}" if zh else f"{name}, {short}"


def _wrap(text: str, label: str, locale: str) -> str:
    return f"{text}（{label}）" if locale == "zh-CN" else f"{text} ({label})"


def format_day(value: datetime | str, zone: str, locale: str) -> str:
    """A calendar day on the zone's clock, the zone named: '13 March 2026 (China Standard Time, UTC+8)'."""
    at = local(value, zone)
    text = f"{at.year}年{at.month}月{at.day}日" if locale == "zh-CN" else f"{at.day} {MONTHS[at.month - 1]} {at.year}"
    return _wrap(text, zone_name(at, zone, locale), locale)


def format_moment(value: datetime | str, zone: str, locale: str) -> str:
    """A date and time on the zone's clock, the zone named: '13 March 2026, 07:30 (China Standard Time, UTC+8)'."""
    at = local(value, zone)
    if locale == "zh-CN":
        text = f"{at.year}年{at.month}月{at.day}日 {at:%H:%M}"
    else:
        text = f"{at.day} {MONTHS[at.month - 1]} {at.year}, {at:%H:%M}"
    return _wrap(text, zone_name(at, zone, locale), locale)
