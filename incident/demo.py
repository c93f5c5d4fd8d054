"""The end-to-end demo: a synthetic platform, a realistic incident, and every step a responder takes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from incident import cases, clock
from incident.incidents import OpenRequest
from incident.synthetic import write_inventory
from incident.workspace import import_files, init_workspace


def run_demo(directory: Path, *, people: int = 10_000, seed: int = 7, actor: str = "demo") -> Iterator[str]:
    """Build the demo workspace and walk the incident through the flow, yielding what to print."""
    if (directory / "incident.toml").exists():
        shutil.rmtree(directory)
    ws = init_workspace(directory, actor)
    yield f"workspace: {ws.root}"
    files = write_inventory(ws.path("inventory"), people, seed)
    report = import_files(ws, actor, people=files.people, holdings=files.holdings, systems=files.systems)
    yield (f"inventory: {report.people_new:,} people, {report.holdings_new:,} holdings, "
           f"{report.systems} systems ({files.people.parent})")
    now = clock.now()
    req = OpenRequest(
        playbook="database-exfiltration",
        title="会员数据库分片B及注销账户备份被非法导出 / Member DB shard B and cancelled-account backup exfiltrated",
        systems=["member-db-b", "archive-backup"],
        categories=["phone", "password"],
        exposure_from=now - timedelta(days=20),
        exposure_to=now - timedelta(days=2),
        discovered_at=now - timedelta(hours=3),
        discovered_by="SOC on-call (demo)",
        discovered_where="数据库审计告警 / database audit alert, Fuzhou DC",
        summary="攻击者利用泄露的数据库账号，从一个会员数据库分片以及保存注销账户数据（在清除前）的备份中导出了会员记录。",
        summary_en=("An attacker used a leaked database account to export member records from one database shard "
                 "and from the backup that keeps cancelled accounts until they are purged."),
        cause="一个数据库服务账号的密码在公开代码仓库中泄露。",
        cause_en="A database service account password was exposed in a public code repository.",
        connected_systems="No evidence of access to the order, payment or identity systems.",
    )
    incident_id = cases.open_incident(ws, req, actor)
    yield f"opened:    {incident_id} (playbook database-exfiltration)"
    for text in ("Disabled the leaked database account and rotated all service credentials",
                 "Blocked the attacker's IP ranges at the edge firewall",
                 "Forced a password reset for every member of shard B"):
        cases.log(ws, incident_id, text, "action", actor)
    cases.log(ws, incident_id, "Exfiltration confirmed from DB audit logs: 2 tables exported", "finding", actor)
    result = cases.assess_incident(ws, incident_id, actor)
    c = result["counts"]
    yield (f"assessed:  {c['people']:,} people affected ({c['children']:,} children via guardians, "
           f"{c['cancelled']:,} cancelled accounts still in the backup, {c['no_usable_channel']:,} with no "
           f"usable channel); grade {result['grade']['key']}")
    for ob in result["obligations"]:
        due = ob["due"][:16] + "Z" if ob["due"] else "-"
        yield f"  {ob['state']:<17} {due:<18} {ob['key']:<22} {ob['title']}"
    yield f"next: incident --workspace {ws.root} show {incident_id}"
