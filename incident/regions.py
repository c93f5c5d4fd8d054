"""Region names for what people read: ISO 3166 codes shown as names (CN-FJ → 福建省 / Fujian, US-TX → Texas,
DE → 德国 / Germany), from pycountry (the iso-codes data) and a reviewed file for China's provinces."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field

from incident.catalog import Strict, Text, data_file
from incident.datafiles import load_yaml


class ChinaDivisions(Strict):
    subdivisions: dict[str, Text] = Field(min_length=1)


@cache
def _china(path: Path, mtime: float) -> dict[str, Text]:
    return load_yaml(path, ChinaDivisions).subdivisions


@cache
def _translation(domain: str) -> Any:
    import gettext

    import pycountry

    return gettext.translation(domain, pycountry.LOCALES_DIR, languages=["zh_CN"], fallback=True)


def _iso(code: str, locale: str) -> str | None:
    """A country or subdivision name from pycountry: English, or its zh_CN translation where iso-codes has one."""
    import pycountry

    if "-" in code:
        entry = pycountry.subdivisions.get(code=code)
        domain = "iso3166-2"
    else:
        entry = pycountry.countries.get(alpha_2=code)
        domain = "iso3166-1"
    if entry is None:
        return None
    english = str(getattr(entry, "common_name", None) or entry.name)
    if locale != "zh-CN":
        return english
    translated = str(_translation(domain).gettext(entry.name))
    # iso-codes translates few subdivision names into Chinese; the English name is still a name, not a code.
    return translated if translated != entry.name else english


def name(code: str | None, locale: str, workspace: Path | None = None) -> str | None:
    """The name of an ISO 3166 country or subdivision code in `locale`, or None when no source knows it."""
    if not code:
        return None
    code = code.strip().upper()
    if code.startswith("CN-"):
        path = data_file("regions/cn.yaml", workspace)
        known = _china(path, path.stat().st_mtime).get(code)
        return known(locale) if known else None
    try:
        return _iso(code, locale)
    except (KeyError, LookupError):
        return None


def label(code: str | None, locale: str, workspace: Path | None = None) -> str:
    """The region's name in `locale`, falling back to the code itself when it is unknown."""
    return name(code, locale, workspace) or (code or "")


def unknown(codes: list[str | None], workspace: Path | None = None) -> list[str]:
    """The codes among `codes` that have no name, each once, in order (the caller warns about them)."""
    out: list[str] = []
    for code in codes:
        if code and code not in out and name(code, "en", workspace) is None:
            out.append(code)
    return out
