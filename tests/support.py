"""What the tests share: the hand-written inventory and a workspace driven through the real CLI."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.testing
from rawdb import connect
from typer.testing import CliRunner, Result

from incident.cli import app

# typer rebuilds the whole click command tree on every CliRunner.invoke (~30 ms, most of a test's time); a
# real process builds it once. Build it once here too: the tree is the same object the command line runs.
if hasattr(typer.testing, "_get_command"):
    typer.testing._get_command = functools.cache(typer.testing._get_command)

ACTOR = "responder@test"

# The story every incident test shares: data held between these days was exposed, found on the 10th.
EXPOSURE_FROM = "2026-01-01"
EXPOSURE_TO = "2026-03-01"
DISCOVERED = "2026-03-10T08:00:00+00:00"
BREACHED_SYSTEMS = "member-db,archive-backup,pay-partner"
EXPOSED_CATEGORIES = "phone,password,real_name,bank_card"

# The one system of the smaller stories (notices, dispatch, faults, announcement): the member database.
MEMBER_DB_YAML = "systems:\n  - {name: member-db, description: 会员数据库, location: CN, kind: internal}\n"

SYSTEMS_YAML = """\
systems:
  - name: member-db
    description: 会员数据库
    location: CN
    kind: internal
  - name: order-db
    description: 订单库
    location: CN
    kind: internal
  - name: archive-backup
    description: 注销账户备份 (cancelled accounts kept until purge)
    location: CN
    kind: backup
  - name: pay-partner
    description: 支付机构 (payment company)
    location: CN
    kind: partner
"""

PEOPLE_HEADER = (
    "person_id,name,email,phone,push_token,locale,region,birth_date,guardian_name,guardian_email,"
    "guardian_phone,postal_address,account_status,cancelled_at"
)

PEOPLE_CSV = (
    PEOPLE_HEADER
    + """
cn-adult,张伟,zhang.wei@example.cn,13800000001,tok-cn-adult,zh-CN,CN-FJ,1990-05-01,,,,,active,
de-resident,Anna Müller,anna@example.de,+49 151 12345678,,en,DE,1985-02-03,,,,,active,
ca-resident,Ben Smith,ben@example.com,(415) 555-0100,,en,US-CA,1979-07-08,,,,,active,
tx-resident,Chloe Brown,chloe@example.com,,,en,US-TX,1992-11-30,,,,,active,
child-with-guardian,李小明,xiaoming@example.cn,,,zh-CN,CN-BJ,2015-06-01,李芳,li.fang@example.cn,13900000002,,active,
child-unreachable,陈小红,xiaohong@example.cn,13700000003,,zh-CN,CN-SH,2016-01-01,,,,,active,
turns-14-on-discovery,赵强,zhao.qiang@example.cn,,,zh-CN,CN-GD,2012-03-10,赵父,zhao.father@example.cn,,,active,
cancelled-in-backup,刘敏,liu.min@example.cn,13600000004,,zh-CN,CN-ZJ,1988-08-08,,,,,cancelled,2025-12-01
partner-only,周杰,zhou.jie@example.cn,,,zh-CN,CN-JS,1995-04-04,,,,,active,
postal-only,吴娟,,,,zh-CN,CN-SC,1950-10-10,,,,四川省成都市锦江区红星路1号,active,
no-contact,孙涛,,,,zh-CN,CN,1960-01-01,,,,,active,
left-before-window,黄磊,huang.lei@example.cn,,,zh-CN,CN-FJ,1991-01-01,,,,,active,
orders-only,马超,ma.chao@example.cn,,,zh-CN,CN-FJ,1993-03-03,,,,,active,
"""
)

HOLDINGS_CSV = """\
person_id,system,category,since,until
cn-adult,member-db,phone,2020-01-01,
cn-adult,member-db,password,2020-01-01,
cn-adult,order-db,order_details,2021-01-01,
de-resident,member-db,phone,2023-01-01,2026-01-01
de-resident,member-db,real_name,2023-01-01,2025-12-31
ca-resident,member-db,password,2026-03-01,
ca-resident,member-db,phone,2026-03-02,
tx-resident,member-db,phone,2024-01-01,
tx-resident,member-db,device_id,2024-01-01,
child-with-guardian,member-db,real_name,2022-01-01,
child-unreachable,member-db,phone,2022-01-01,
turns-14-on-discovery,member-db,real_name,2022-01-01,
cancelled-in-backup,member-db,phone,2019-01-01,2025-12-01
cancelled-in-backup,archive-backup,phone,2025-12-01,
partner-only,pay-partner,bank_card,2024-06-01,
postal-only,member-db,real_name,2021-01-01,
no-contact,member-db,phone,2021-01-01,
left-before-window,member-db,phone,2020-01-01,2025-12-31
orders-only,order-db,order_details,2022-01-01,
"""

# Who the incident above reaches, and with which of their own categories.
EXPECTED_AFFECTED = {
    "cn-adult": "password,phone",
    "de-resident": "phone",  # held until exactly the first day of the window
    "ca-resident": "password",  # held from exactly the last day of the window
    "tx-resident": "phone",
    "child-with-guardian": "real_name",
    "child-unreachable": "phone",
    "turns-14-on-discovery": "real_name",
    "cancelled-in-backup": "phone",  # gone from member-db, still in the backup
    "partner-only": "bank_card",
    "postal-only": "real_name",
    "no-contact": "phone",
}


@dataclass
class WorkspaceDir:
    """A workspace folder driven through the real CLI, with a read-only look into its SQLite file."""

    root: Path

    @property
    def db(self) -> Path:
        return self.root / "incident.db"

    def run(self, *args: str, actor: str = ACTOR) -> Result:
        """Invoke `incident --workspace ROOT --actor ACTOR ARGS...` in-process."""
        return CliRunner().invoke(app, ["--workspace", str(self.root), "--actor", actor, *args])

    def ok(self, *args: str, actor: str = ACTOR) -> str:
        """Run a command that must succeed and return what it printed on stdout."""
        result = self.run(*args, actor=actor)
        assert result.exit_code == 0, f"incident {' '.join(args)} failed:\n{result.output}"
        return result.stdout

    def json(self, *args: str) -> Any:
        """Run a command with --json and parse its output."""
        return json.loads(self.ok(*args, "--json"))

    def refuse(self, *args: str, error: str) -> Result:
        """Run a command that must fail with `error` in its message."""
        result = self.run(*args)
        assert result.exit_code != 0, f"incident {' '.join(args)} should have failed:\n{result.output}"
        assert error in result.stderr, f"expected {error!r} in the error:\n{result.output}"
        return result

    def write(self, name: str, content: str | bytes) -> Path:
        """Write an input file into the workspace's inputs/ folder."""
        path = self.root / "inputs" / name
        path.parent.mkdir(exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def sql(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the database directly, as an auditor with sqlite3 would."""
        with connect(self.root) as conn:
            return conn.execute(query, params).fetchall()

    def tables(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of the inventory and audit tables, to prove a refused command changed nothing."""
        return {
            t: self.sql(f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in ("system", "person", "holding", "audit_entry", "audit_head")
        }

    def import_inventory(
        self, people: str | None = PEOPLE_CSV, holdings: str | None = HOLDINGS_CSV, systems: str | None = SYSTEMS_YAML
    ) -> str:
        """Write the given inventory files and import them."""
        args = ["inventory", "import"]
        for option, name, content in (
            ("--systems", "systems.yaml", systems),
            ("--people", "people.csv", people),
            ("--holdings", "holdings.csv", holdings),
        ):
            if content is not None:
                args += [option, str(self.write(name, content))]
        return self.ok(*args)


@dataclass
class OpenedIncident:
    """An incident id and the workspace it lives in."""

    ws: WorkspaceDir
    id: str

    def show(self) -> dict[str, Any]:
        return self.ws.json("show", self.id)

    def obligations(self) -> dict[str, dict[str, Any]]:
        """The obligations `show --json` lists, by key."""
        assessment = self.show()["assessment"]
        return {o["key"]: o for o in assessment["obligations"]}

    def affected(self) -> dict[str, dict[str, Any]]:
        """The stored snapshot, by person_id, as `incident affected --format jsonl` streams it."""
        out = self.ws.ok("affected", self.id, "--format", "jsonl")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {r["person_id"]: r for r in rows}


def open_incident(
    ws: WorkspaceDir,
    *extra: str,
    systems: str = BREACHED_SYSTEMS,
    categories: str | None = EXPOSED_CATEGORIES,
    discovered: str | None = DISCOVERED,
    playbook: str = "database-exfiltration",
) -> OpenedIncident:
    """Open an incident through the CLI and return it."""
    args = [
        "open",
        "--playbook",
        playbook,
        "--title",
        "会员库被导出",
        "--systems",
        systems,
        "--from",
        EXPOSURE_FROM,
        "--to",
        EXPOSURE_TO,
        *extra,
    ]
    if categories is not None:
        args += ["--categories", categories]
    if discovered is not None:
        args += ["--discovered", discovered]
    incident_id = ws.ok(*args).strip()
    return OpenedIncident(ws, incident_id)


def people_csv(rows: list[dict[str, str]]) -> str:
    """Render generated people as a people CSV (missing columns left empty)."""
    columns = PEOPLE_HEADER.split(",")
    lines = [PEOPLE_HEADER] + [",".join(r.get(c, "") for c in columns) for r in rows]
    return "\n".join(lines) + "\n"


def manifest_of(ws: WorkspaceDir, incident_id: str, *, announcement: bool = False) -> str:
    """The manifest sha256 of the current render, as the reviewer reads it on the review page."""
    shown = ws.json("show", incident_id)
    return str(shown["announcement" if announcement else "notices"]["manifest"])


def approve_notices(ws: WorkspaceDir, incident_id: str, reviewer: str) -> str:
    """Approve the current notices render as the reviewer does: naming the manifest on the review page."""
    return ws.ok("notices", "approve", incident_id, "--manifest", manifest_of(ws, incident_id), "--reviewer", reviewer)


def approve_announcement(ws: WorkspaceDir, incident_id: str, reviewer: str) -> str:
    """Approve the current announcement render as the reviewer does: naming the manifest on the review page."""
    manifest = manifest_of(ws, incident_id, announcement=True)
    return ws.ok("notices", "approve", incident_id, "--manifest", manifest, "--announcement", "--reviewer", reviewer)
