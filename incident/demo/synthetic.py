"""A deterministic synthetic inventory of a platform like the policy's, for the demo and the benchmark."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from incident.files import open_private, private_dir
from incident.inventory.validation import PEOPLE_COLUMNS

SYSTEMS_YAML = """\
# Systems of the synthetic platform: where personal information lives (privacy policy §二, §四).
systems:
  - {name: member-db-a, description: 会员数据库 shard A, location: CN, kind: internal}
  - {name: member-db-b, description: 会员数据库 shard B, location: CN, kind: internal}
  - {name: member-db-c, description: 会员数据库 shard C, location: CN, kind: internal}
  - {name: member-db-d, description: 会员数据库 shard D, location: CN, kind: internal}
  - {name: order-db, description: 订单库, location: CN, kind: internal}
  - {name: kyc-vault, description: 实名认证库 (identity documents), location: CN, kind: internal}
  - {name: app-telemetry, description: 设备与日志, location: CN, kind: internal}
  - {name: archive-backup, description: 注销账户备份 (cancelled accounts kept until purge), location: CN, kind: backup}
  - {name: pay-partner, description: 支付机构 (payment company), location: CN, kind: partner}
  - {name: logistics-partner, description: 物流服务商 (logistics provider), location: CN, kind: partner}
  - {name: ad-partner, description: 广告合作方 (advertising partner), location: SG, kind: partner}
"""

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
FIRST_EN = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Iris",
    "Jonas",
    "Klara",
    "Liam",
    "Mia",
    "Noah",
    "Olivia",
    "Paul",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
]
LAST_EN = [
    "Smith",
    "Müller",
    "Garcia",
    "Rossi",
    "Dubois",
    "Jansen",
    "Novak",
    "Kowalski",
    "Murphy",
    "Silva",
    "Johnson",
    "Brown",
    "Lee",
    "Nguyen",
    "Martin",
]
CN_REGIONS = ["CN-FJ", "CN-BJ", "CN-SH", "CN-GD", "CN-ZJ", "CN-JS", "CN-SC", "CN"]
EU = ["DE", "FR", "NL", "IE", "IT", "ES", "AT", "PL", "SE", "BE"]
THIRD = [
    ("order-db", "order_details"),
    ("pay-partner", "bank_card"),
    ("logistics-partner", "shipping_address"),
    ("kyc-vault", "id_document"),
    ("app-telemetry", "device_id"),
]
PEOPLE_HEADER = list(PEOPLE_COLUMNS)  # every column the importer knows


@dataclass(frozen=True)
class InventoryFiles:
    systems: Path
    people: Path
    holdings: Path


CN_MOBILE_PREFIXES = ("138", "139", "135", "136", "137", "150", "186")


def _phone(rng: random.Random, region: str) -> str:
    country = region.split("-")[0]
    # Numbers phonenumbers.is_valid_number accepts (the import refuses the others), drawn with the same calls on
    # `rng` as before so every other field of the synthetic inventory stays the same.
    if country == "CN":
        return f"+86{rng.choice(CN_MOBILE_PREFIXES)}{rng.randrange(10**9) % 10**8:08d}"
    if country == "US":
        return f"+1{rng.choice(['415', '512', '212', '646'])}555{rng.randrange(10**4):04d}"
    return f"+49151{rng.randrange(10**9) % 10**8:08d}"


def _region(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.80:
        return rng.choice(CN_REGIONS)
    if r < 0.90:
        return rng.choice(EU)
    if r < 0.95:
        return "US-CA"
    if r < 0.98:
        return "US-TX"
    return "US-NY"


def _name(rng: random.Random, cn: bool) -> str:
    if cn:
        return rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.6 else "")
    return f"{rng.choice(FIRST_EN)} {rng.choice(LAST_EN)}"


def _contacts(rng: random.Random, n: int, region: str, cn: bool) -> tuple[str, str, str, str]:
    """Email, phone, push token and postal address: most people have several, some one, a few none."""
    email = phone = push = address = ""
    kind = rng.random()
    if kind < 0.70:
        email, phone, push = f"user{n}@example.com", _phone(rng, region), f"tok-{n:08d}"
    elif kind < 0.85:
        phone = _phone(rng, region)
    elif kind < 0.91:
        email = f"user{n}@example.com"
    elif kind < 0.96:
        address = (
            f"{rng.choice(CN_REGIONS)} 示例路{rng.randrange(1, 999)}号"
            if cn
            else f"{rng.randrange(1, 999)} Example Street"
        )
    return email, phone, push, address


def _person(rng: random.Random, n: int, today: date) -> tuple[list[str], date, date | None]:
    """One person's row of people.csv, their sign-up day and, for a cancelled account, its cancellation day."""
    region = _region(rng)
    cn = region.startswith("CN")
    name = _name(rng, cn)
    child = rng.random() < 0.05
    birth = (
        today - timedelta(days=rng.randrange(6 * 365, 14 * 365 - 30))
        if child
        else today - timedelta(days=rng.randrange(18 * 365, 70 * 365))
    )
    email, phone, push, address = _contacts(rng, n, region, cn)
    guardian = ("", "", "")
    if child and rng.random() < 0.9:
        gname = (rng.choice(SURNAMES) + rng.choice(GIVEN)) if cn else f"{rng.choice(FIRST_EN)} Parent"
        guardian = (gname, f"guardian{n}@example.com", _phone(rng, region) if rng.random() < 0.5 else "")
    # Nobody signs up before they are born (a child's account opens after birth; the import refuses the rest).
    signup = max(today - timedelta(days=rng.randrange(30, 10 * 365)), birth + timedelta(days=1))
    cancelled = rng.random() < 0.06
    cancelled_at = signup + timedelta(days=rng.randrange(1, max(2, (today - signup).days - 30))) if cancelled else None
    row = [
        f"U{n:08d}",
        name,
        email,
        phone,
        push,
        "zh-CN" if cn else "en",
        region,
        birth.isoformat(),
        *guardian,
        address,
        "cancelled" if cancelled else "active",
        cancelled_at.isoformat() if cancelled_at else "",
    ]
    return row, signup, cancelled_at


def _holdings(rng: random.Random, n: int, signup: date, cancelled_at: date | None) -> list[list[str]]:
    """A person's holdings: phone and password in a member-db shard, one third-party system, and backups."""
    pid, shard = f"U{n:08d}", "member-db-" + "abcd"[n % 4]
    until = cancelled_at.isoformat() if cancelled_at else ""
    system, category = THIRD[rng.randrange(len(THIRD))]
    rows = [
        [pid, shard, "phone", signup.isoformat(), until],
        [pid, shard, "password", signup.isoformat(), until],
        [pid, system, category, signup.isoformat(), until],
    ]
    if cancelled_at is not None:
        rows.append([pid, "archive-backup", "phone", cancelled_at.isoformat(), ""])
    return rows


def write_inventory(folder: Path, people: int, seed: int = 7, today: date | None = None) -> InventoryFiles:
    """Write systems.yaml, people.csv and holdings.csv (about 3 holdings per person) into folder."""
    rng = random.Random(seed)
    today = today or date(2026, 11, 1)
    private_dir(folder)
    files = InventoryFiles(folder / "systems.yaml", folder / "people.csv", folder / "holdings.csv")
    files.systems.write_text(SYSTEMS_YAML, encoding="utf-8")
    with open_private(files.people) as pf, open_private(files.holdings) as hf:
        pw, hw = csv.writer(pf), csv.writer(hf)
        pw.writerow(PEOPLE_HEADER)
        hw.writerow(["person_id", "system", "category", "since", "until"])
        for n in range(1, people + 1):
            row, signup, cancelled_at = _person(rng, n, today)
            pw.writerow(row)
            hw.writerows(_holdings(rng, n, signup, cancelled_at))
    return files
