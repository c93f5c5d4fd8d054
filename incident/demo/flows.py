"""The end-to-end demo: a synthetic platform, a realistic incident, and every step a responder takes."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from incident import clock
from incident.assess import flows as assess_flows
from incident.audit.flows import init_workspace
from incident.demo.synthetic import write_inventory
from incident.dispatch import flows as dispatch_flows
from incident.errors import InvalidArgument
from incident.files import open_private
from incident.incidents import flows as incident_flows
from incident.incidents.service import OpenRequest
from incident.inventory.flows import import_files
from incident.notices import flows as notices
from incident.reports import flows as publish

DEMO_REVIEWER = "DEMO REVIEWER (auto-approved, not a legal review)"
# Where `incident demo --until` may stop: after assessment, after dispatch and letters, after the announcement.
STOPS = ("assessed", "notified", "announced", "all")
BOUNCE_EVERY = 8  # every 8th person's email is at bounce.example, which the outbox refuses (a tabletop rule)


def bounce_some_emails(people_csv: Path, every: int = BOUNCE_EVERY) -> int:
    """Move every `every`-th person's email to bounce.example, so dispatch meets failures and falls back."""
    rows = list(csv.reader(people_csv.open(encoding="utf-8", newline="")))
    header, moved = rows[0], 0
    col = header.index("email")
    for n, row in enumerate(rows[1:], 1):
        if n % every == 0 and row[col]:
            row[col] = row[col].split("@")[0] + "@bounce.example"
            moved += 1
    with open_private(people_csv) as fh:
        csv.writer(fh).writerows(rows)
    return moved


def run_demo(
    directory: Path, *, people: int = 10_000, seed: int = 7, actor: str = "demo", until: str = "all"
) -> Iterator[str]:
    """Build the demo workspace and walk the incident through the whole flow (or `until` a step), yielding what
    to print."""
    if until not in STOPS:
        raise InvalidArgument(f"--until: one of {', '.join(STOPS)}")
    if (directory / "incident.toml").exists():
        shutil.rmtree(directory)
    ws = init_workspace(directory, actor)
    yield f"workspace: {ws.root}"
    files = write_inventory(ws.path("inventory"), people, seed)
    bounced = bounce_some_emails(files.people)
    report = import_files(ws, actor, people=files.people, holdings=files.holdings, systems=files.systems)
    yield (
        f"inventory: {report.people_new:,} people, {report.holdings_new:,} holdings, "
        f"{report.systems} systems ({files.people.parent}); {bounced:,} emails at bounce.example, which the "
        "outbox refuses like a mail server would"
    )
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
        summary_en=(
            "An attacker used a leaked database account to export member records from one database shard "
            "and from the backup that keeps cancelled accounts until they are purged."
        ),
        cause="一个数据库服务账号的密码在公开代码仓库中泄露。",
        cause_en="A database service account password was exposed in a public code repository.",
        connected_systems="No evidence of access to the order, payment or identity systems.",
    )
    incident_id = incident_flows.open_incident(ws, req, actor)
    yield f"opened:    {incident_id} (playbook database-exfiltration)"
    for text, text_en in (
        (
            "停用了泄露的数据库账号，并轮换了全部服务凭据",
            "Disabled the leaked database account and rotated all service credentials",
        ),
        ("在边界防火墙封禁了攻击者的IP地址段", "Blocked the attacker's IP ranges at the edge firewall"),
        ("强制分片B的全部会员重置密码", "Forced a password reset for every member of shard B"),
    ):
        incident_flows.log(ws, incident_id, text, "action", actor, text_en=text_en)
    incident_flows.log(
        ws,
        incident_id,
        "数据库审计日志确认数据被导出：2张表",
        "finding",
        actor,
        text_en="Exfiltration confirmed from DB audit logs: 2 tables exported",
    )
    result = assess_flows.assess_incident(ws, incident_id, actor)
    c = result["counts"]
    yield (
        f"assessed:  {c['people']:,} people affected ({c['children']:,} children via guardians, "
        f"{c['cancelled']:,} cancelled accounts still in the backup, {c['no_usable_channel']:,} with no "
        f"usable channel); grade {result['grade']['key']}"
    )
    if until == "assessed":
        yield f"next: incident --workspace {ws.root} show {incident_id}"
        return

    rendered = notices.render_notices(ws, incident_id, actor)
    yield (
        f"notices:   {rendered.notices:,} rendered for {rendered.people:,} people in {len(rendered.variants)} "
        f"variants; review bundle {rendered.bundle / 'index.html'}"
    )
    notices.decide_notices(
        ws,
        incident_id,
        DEMO_REVIEWER,
        decision="approved",
        comment="tabletop exercise: no lawyer has read these",
        actor=actor,
        manifest=rendered.manifest_hash,
    )
    yield f"approved:  by {DEMO_REVIEWER}"
    sent = dispatch_flows.dispatch(ws, incident_id, actor, workers=16, channel=None, hold_unknown=False)
    yield (
        "dispatched: attempts "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(sent.tally.items()))
        + "; deliveries "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(sent.states.items()))
        + f" (outbox {ws.path('outbox', incident_id)})"
    )
    batch = dispatch_flows.letters(ws, incident_id, actor)
    yield f"letters:   {batch.letters:,} written to {batch.folder} (print {batch.print_file.name})"
    if batch.letters:  # written is not told: only the mail house's confirmation makes them count as notified
        yield f"           not posted yet: when the mail house confirms, `incident letters {incident_id} --posted-at T`"
    if until == "notified":
        return

    announced = publish.announce(ws, incident_id, actor)
    yield f"announcement: {'required' if announced.required else 'voluntary'}"
    for reason in announced.reasons:
        yield f"  - {reason}"
    publish.decide_announcement(
        ws,
        incident_id,
        DEMO_REVIEWER,
        decision="approved",
        comment="tabletop exercise",
        actor=actor,
        manifest=announced.manifest_hash,
    )
    posted = publish.publish_announcement(ws, incident_id, actor)
    yield f"  approved by {DEMO_REVIEWER}; published to {posted.folder}"
    if until == "announced":
        return

    yield "reports:"
    for regulator, formats, fields in (
        ("cn-cac", ["md", "pdf"], {}),
        ("eu-gdpr", ["md"], {}),
        ("us-ca-ag", ["md"], {"law_enforcement_delay": "No."}),
        ("us-tx-ag", ["md"], {}),
    ):
        made = publish.generate_report(
            ws,
            incident_id,
            regulator,
            stage="initial",
            formats=formats,
            fields=fields,
            delay_reason=None,
            actor=actor,
        )
        for r in made.reports:
            yield f"  {regulator:<9} {r.path}"

    board = publish.status_board(ws, actor)
    yield f"status board ({board.overdue} overdue):"
    for inc in board.incidents:
        for ob in inc["obligations"]:
            due = ob["due"][:16] + "Z" if ob["due"] else "-"
            yield f"  {inc['id']}  {ob['state']:<17} {due:<18} {ob['key']:<22} {ob['title']}"
    yield f"next: incident --workspace {ws.root} show {incident_id}   (and: status, report {incident_id} --list)"
