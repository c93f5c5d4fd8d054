"""Find a workspace, read its incident.toml, and create new ones with the policy's defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from incident.errors import BadConfig, NotAWorkspace

CONFIG_NAME = "incident.toml"

DEFAULT_CONFIG = """\
# incident workspace configuration. Secrets never go in this file: reference environment
# variables as ${NAME} inside channel URLs instead.

[organisation]
# From the privacy policy of the platform (section 十, 您如何联系我们).
operator = "禄可科技集团有限公司"
operator_en = "Luke Technology Group Co., Ltd."
platform = "诚聊购"
platform_en = "Chengliaogou"
website = "https://www.lkkjjt.com"
notice_lookup = "https://www.lkkjjt.com/security-notice"
location = "CN-FJ"

[organisation.officer]
# Personal-information protection officer (个人信息保护负责人).
title = "个人信息保护负责人"
title_en = "Personal Information Protection Officer"
email = "lookjt@163.com"
phone = "4001577888"
address = "福建省平潭县金井湾大道东段179-2号3层"
address_en = "3F, 179-2 Jinjingwan Avenue East, Pingtan County, Fujian, China"

# GDPR art. 33(3)(b): the data protection officer, if one is designated (art. 37), and the representative in
# the EU of a controller established outside it (art. 27). The eu-gdpr report names them; without a DPO it
# names the officer above as the contact point. Keys: name (required), email, phone, address (one at least).
# [organisation.dpo]
# name = "Data Protection Officer"
# email = "dpo@example.com"
# [organisation.eu_representative]
# name = "Example EU Representative GmbH"
# email = "eu-rep@example.com"
# address = "Musterstraße 1, 10115 Berlin, Germany"

[database]
# SQLite file in this workspace by default; INCIDENT_DATABASE_URL overrides this.
url = "sqlite:///incident.db"

# How long an incident's personal data (notices, outbox, letters, contacts, delivery addresses) is kept after
# `incident close`; then `incident purge ID` deletes it, keeping counts, reports and the audit chain. A legal
# hold (`incident hold ID --reason ...`) keeps it longer. 90 days: see README, "Data at rest".
[retention]
days = 90

# Channels: an apprise URL with the recipient as {email}, {phone} or {push_token}; rate in messages per
# second (0 = unlimited; set your provider's limit); retries per channel before falling back; backoff in
# seconds before the first retry (doubles each time, with jitter). Secrets: ${ENV_VAR} inside the URL.
# outbox:// writes each message into outbox/ID/ instead of sending it. For tabletop exercises it refuses
# email addresses whose domain starts with "bounce." (e.g. someone@bounce.example) with a permanent
# "550 mailbox unavailable", so a drill rehearses the fallback to SMS, push and letters.
[channels.email]
url = "outbox://email/{email}?from=security@lkkjjt.com"
rate = 0
concurrency = 4
retries = 3
backoff = 2

[channels.sms]
url = "outbox://sms/{phone}"
rate = 0
concurrency = 4
retries = 3
backoff = 2

[channels.push]
url = "outbox://push/{push_token}"
rate = 0
concurrency = 4
retries = 3
backoff = 2

# Where `incident announce ID --publish` also sends the approved announcement: apprise URLs, one call each
# (a status-page webhook, a newsroom feed). outbox://NAME writes it into outbox/ID/NAME/ instead.
[announcement]
targets = []

# `incident status --notify` warns this apprise URL once per obligation that is within margin_hours of its
# due time, and once more when it is overdue (exit code 4 tells cron that something is overdue).
# [oncall]
# url = "ntfys://${NTFY_TOKEN}@ntfy.example.com/incident-oncall"
# margin_hours = 24
"""


@dataclass(frozen=True)
class Workspace:
    """A workspace folder and its parsed configuration."""

    root: Path
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        """Return the database URL: INCIDENT_DATABASE_URL, else incident.toml, SQLite paths made absolute."""
        url = os.environ.get("INCIDENT_DATABASE_URL") or self.config.get("database", {}).get(
            "url", "sqlite:///incident.db"
        )
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str((self.root / url[len(prefix) :]).resolve())
        return url

    @property
    def organisation(self) -> dict[str, Any]:
        return self.config.get("organisation", {})

    @property
    def retention_days(self) -> int:
        """Days an incident's personal data is kept after it is closed ([retention] days)."""
        return retention_days(self.config, self.root / CONFIG_NAME)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)


TABLES = ("organisation", "database", "channels", "dispatch", "announcement", "oncall")
MAX_TOML_DEPTH = 64


def _check_organisation(path: Path, org: dict[str, Any], prefix: str = "organisation") -> None:
    """Every organisation value is one line of text: it goes into mail headers and every notice."""
    from incident.privacy import UNSAFE_CHARS

    for key, value in org.items():
        where = f"{path}: {prefix}.{key}"
        if prefix == "organisation" and key in ("officer", *CONTACTS):
            if not isinstance(value, dict):
                raise BadConfig(f"{where}: must be a table ([organisation.{key}])")
            # Contacts check their own keys and types (organisation_contacts); here only that text is one line.
            text = value if key == "officer" else {k: v for k, v in value.items() if isinstance(v, str)}
            _check_organisation(path, text, f"{prefix}.{key}")
            continue
        if prefix == "organisation" and key == "names":  # names exempt from the language lint: a list of names
            if not isinstance(value, list):
                raise BadConfig(f"{where}: must be a list of names, not {type(value).__name__}")
            values, wheres = value, [f"{where}[{i}]" for i in range(len(value))]
        else:
            values, wheres = [value], [where]
        for one, at in zip(values, wheres, strict=True):
            if not isinstance(one, str):
                raise BadConfig(f"{at}: must be a text string, not {type(one).__name__}")
            if "\n" in one or "\r" in one or "\t" in one or any(c in UNSAFE_CHARS for c in one):
                # A line break in platform_en would make every English email fail at send time (header injection).
                raise BadConfig(f"{at}: contains a line break, tab or control character (one line of text only)")


def check_config(path: Path, config: dict[str, Any]) -> None:
    """Refuse the shapes the tool would trip over later: a section that is not a table, a bad lease, bad text."""
    for name in TABLES:
        if name in config and not isinstance(config[name], dict):
            raise BadConfig(f"{path}: {name}: must be a table ([{name}]), not {type(config[name]).__name__}")
    for name, entry in config.get("channels", {}).items():
        if not isinstance(entry, dict):
            raise BadConfig(f"{path}: channels.{name}: must be a table ([channels.{name}])")
    lease = config.get("dispatch", {}).get("lease_seconds")
    if lease is not None and (isinstance(lease, bool) or not isinstance(lease, int | float) or not 1 <= lease <= 86400):
        raise BadConfig(f"{path}: dispatch.lease_seconds: must be a number of seconds from 1 to 86400, not {lease!r}")
    _check_organisation(path, config.get("organisation", {}))


def read_config(root: Path) -> dict[str, Any]:
    """Parse root/incident.toml and check its shape, with a one-line error naming the file and the line or key."""
    from incident.datafiles import too_deep

    path = root / CONFIG_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BadConfig(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise BadConfig(f"{path}: cannot read it ({exc.strerror or exc})") from None
    deep = too_deep(text, quotes="\"'", limit=MAX_TOML_DEPTH)
    if deep is not None:
        raise BadConfig(f"{path}:{deep}: nested deeper than {MAX_TOML_DEPTH} levels")
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadConfig(f"{path}: {exc}") from None
    except (ValueError, RecursionError) as exc:  # an integer over 4,300 digits
        raise BadConfig(f"{path}: {str(exc)[:120]}") from None
    check_config(path, config)
    retention_days(config, path)  # checked on load: a typo must not surface only on the day of a purge
    organisation_contacts(config, path)
    return config


CONTACT_KEYS = ("name", "email", "phone", "address")
CONTACTS = ("dpo", "eu_representative")


def organisation_contacts(config: dict[str, Any], path: Path | str = CONFIG_NAME) -> dict[str, dict[str, str]]:
    """The data protection officer and EU representative the organisation names ([organisation.dpo],
    [organisation.eu_representative]), each with a name and at least one way to reach them; absent ones left out."""
    org = config.get("organisation", {})
    if not isinstance(org, dict):
        raise BadConfig(f"{path}: [organisation]: must be a table (an [organisation] section), not {org!r}")
    out: dict[str, dict[str, str]] = {}
    for key in CONTACTS:
        if key not in org:
            continue
        section, where = org[key], f"{path}: [organisation.{key}]"
        if not isinstance(section, dict):
            raise BadConfig(f"{where}: must be a table, not {section!r}")
        for name, value in section.items():
            if name not in CONTACT_KEYS:
                raise BadConfig(f"{where} {name}: unknown key (use {', '.join(CONTACT_KEYS)})")
            if not isinstance(value, str) or not value.strip():
                raise BadConfig(f"{where} {name}: must be non-empty text, not {value!r}")
        if "name" not in section:
            raise BadConfig(f"{where}: name: missing (GDPR art. 33(3)(b) asks for the name and contact details)")
        if not any(section.get(k) for k in CONTACT_KEYS[1:]):
            raise BadConfig(f"{where}: give email, phone or address: a name alone is no contact detail")
        out[key] = {k: section[k].strip() for k in CONTACT_KEYS if k in section}
    return out


# PIPL art. 19 and GB/T 35273-2020 §6.1: the shortest period necessary; no law names a number (README).
DEFAULT_RETENTION_DAYS = 90
MAX_RETENTION_DAYS = 36500


def retention_days(config: dict[str, Any], path: Path | str = CONFIG_NAME) -> int:
    """Days an incident's personal data is kept after it is closed: [retention] days, else the default."""
    section = config.get("retention", {})
    if not isinstance(section, dict):
        raise BadConfig(f"{path}: [retention]: must be a table (a [retention] section), not {section!r}")
    value = section.get("days", DEFAULT_RETENTION_DAYS)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_RETENTION_DAYS:
        raise BadConfig(
            f"{path}: [retention] days: must be a whole number of days from 0 to {MAX_RETENTION_DAYS}, not {value!r}"
        )
    return value


def find_workspace(explicit: Path | None = None) -> Workspace:
    """Locate the workspace: --workspace, then INCIDENT_HOME, then the current directory."""
    if explicit is not None:
        candidates = [explicit]
    elif os.environ.get("INCIDENT_HOME"):
        candidates = [Path(os.environ["INCIDENT_HOME"])]
    else:
        cwd = Path.cwd()
        candidates = [cwd, *cwd.parents]
    for root in candidates:
        if (root / CONFIG_NAME).is_file():
            root = root.resolve()
            return Workspace(root, read_config(root))
    where = candidates[0]
    raise NotAWorkspace(f"no {CONFIG_NAME} in {where} (run `incident init` or pass --workspace)")


def create_workspace(root: Path) -> Workspace:
    """Write a default incident.toml into root (kept if present) and return the workspace."""
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    config = root / CONFIG_NAME
    if not config.exists():
        config.write_text(DEFAULT_CONFIG, encoding="utf-8")
    return Workspace(root.resolve(), read_config(root))
