"""Dispatch rows on SQLite: email to an SMTP sink, SMS to an HTTP gateway, and a latency-bound gateway.

prepare() builds one workspace whose incidents are rendered and approved (nothing sent): email-only people,
phone-only people, and a smaller phone-only group for the latency row. Every run of ours dispatches a fresh
copy of it; every baseline sends the same stored, approved bodies with the standard library. The receivers run
in a process of their own (sinks.py), started afresh for each run.
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sinks
from harness import Context, Measure, Row, cpu_seconds, wait_until

SENDER = "security@example.com"
LATENCY = 0.05  # seconds the slow gateway takes per request
THREADS = 4  # dispatch threads (and channel concurrency) of the zero-latency rows
MANY, ONE = 16, 1  # threads of the latency row's two sides
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
FIRST_EN = ["Anna", "Ben", "Chloe", "David", "Emma", "Felix", "Grace", "Hugo", "Iris", "Jonas"]
LAST_EN = ["Smith", "Garcia", "Rossi", "Dubois", "Jansen", "Novak", "Murphy", "Silva", "Brown", "Lee"]


def sizes(ctx: Context) -> dict[str, int]:
    """Messages per row: the issue's 20,000 (about 2,000 with --quick)."""
    if ctx.quick:
        return {"email": 2_000, "sms": 2_000, "latency_many": 400, "latency_one": 40}
    return {"email": 20_000, "sms": 20_000, "latency_many": 1_000, "latency_one": 100}


def write_dispatch_inventory(folder: Path, groups: list[tuple[str, str, int]], seed: int = 11) -> None:
    """Adults reachable on exactly one channel: (system, 'email' | 'sms', count) per group; half zh-CN, half en."""
    from incident.demo.synthetic import PEOPLE_HEADER, SYSTEMS_YAML

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "systems.yaml").write_text(SYSTEMS_YAML, encoding="utf-8")
    n = 0
    with (
        open(folder / "people.csv", "w", encoding="utf-8", newline="") as pf,
        open(folder / "holdings.csv", "w", encoding="utf-8", newline="") as hf,
    ):
        pw, hw = csv.writer(pf), csv.writer(hf)
        pw.writerow(PEOPLE_HEADER)
        hw.writerow(["person_id", "system", "category", "since", "until"])
        for system, kind, count in groups:
            for _ in range(count):
                n += 1
                zh = n % 2 == 0
                name = (
                    rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
                    if zh
                    else f"{rng.choice(FIRST_EN)} {rng.choice(LAST_EN)}"
                )
                email = f"user{n}@example.com" if kind == "email" else ""
                phone = f"+86139{n:08d}" if kind == "sms" else ""
                pw.writerow(
                    [
                        f"D{n:07d}",
                        name,
                        email,
                        phone,
                        "",
                        "zh-CN" if zh else "en",
                        "CN-FJ" if zh else "US-CA",
                        "1985-05-05",
                        "",
                        "",
                        "",
                        "",
                        "active",
                        "",
                    ]
                )
                hw.writerow([f"D{n:07d}", system, "phone", "2020-01-01", ""])
                hw.writerow([f"D{n:07d}", system, "password", "2020-01-01", ""])


def approved_incident(ws: Any, system: str, title: str) -> str:
    """Open, assess, render and approve an incident on one system; return its id."""
    from incident import clock
    from incident.assess import flows as assess_flows
    from incident.incidents import flows as incident_flows
    from incident.incidents.service import OpenRequest
    from incident.notices import flows as notices

    now = clock.now()
    incident_id = incident_flows.open_incident(
        ws,
        OpenRequest(
            playbook="database-exfiltration",
            title=title,
            systems=[system],
            categories=["phone", "password"],
            exposure_from=datetime(2021, 1, 1, tzinfo=UTC),
            exposure_to=now - timedelta(days=2),
            discovered_at=now - timedelta(hours=3),
        ),
        "bench",
    )
    assess_flows.assess_incident(ws, incident_id, "bench")
    rendered = notices.render_notices(ws, incident_id, "bench")
    notices.decide_notices(
        ws,
        incident_id,
        "Benchmark reviewer",
        decision="approved",
        comment="benchmark data, not a legal review",
        actor="bench",
        manifest=rendered.manifest_hash,
    )
    return incident_id


def configure_channels(
    root: Path, *, email: str = "outbox://email/{email}", sms: str = "outbox://sms/{phone}", concurrency: int = 4
) -> None:
    """Point a workspace's [channels.*] at these URLs: no rate limit, no backoff."""
    path = root / "incident.toml"
    head = path.read_text(encoding="utf-8").split("[channels.email]")[0]
    blocks = [
        f'[channels.{name}]\nurl = "{url}"\nrate = 0\nconcurrency = {concurrency}\nretries = 3\nbackoff = 0\n'
        for name, url in (("email", email), ("sms", sms), ("push", "outbox://push/{push_token}"))
    ]
    path.write_text(head + "\n".join(blocks), encoding="utf-8")


def prepare(ctx: Context) -> dict[str, Any]:
    """One workspace with three approved incidents (email, SMS, latency), nothing sent yet."""
    from incident import db
    from incident.audit.flows import init_workspace
    from incident.inventory.flows import import_files

    size = sizes(ctx)
    root = ctx.run / "dispatch-ws"
    shutil.rmtree(root, ignore_errors=True)
    print(f"preparing the dispatch incidents ({size['email']:,} emails, {size['sms']:,} SMS) ...", flush=True)
    data = ctx.run / "dispatch-data"
    write_dispatch_inventory(
        data,
        [
            ("member-db-a", "email", size["email"]),
            ("member-db-b", "sms", size["sms"]),
            ("member-db-c", "sms", size["latency_many"]),
        ],
    )
    ws = init_workspace(root, "bench")
    import_files(ws, "bench", people=data / "people.csv", holdings=data / "holdings.csv", systems=data / "systems.yaml")
    ids = {
        kind: approved_incident(ws, system, f"Benchmark dispatch ({kind})")
        for kind, system in (("email", "member-db-a"), ("sms", "member-db-b"), ("latency", "member-db-c"))
    }
    db.engine_for(ws).dispose()
    (ctx.run / "dispatch.json").write_text(json.dumps(ids))
    return {f"dispatch_{k}": v for k, v in size.items()}


def _ids(ctx: Context) -> dict[str, str]:
    return json.loads((ctx.run / "dispatch.json").read_text())  # type: ignore[no-any-return]


def _stored(ctx: Context, incident_id: str, channel: str) -> list[tuple[str, str, str, bytes, bytes | None]]:
    """The approved notices of one channel as stored: (notice id, address, subject, text, html), the bodies still
    compressed (decompressing them is part of the work timed, as in ours; holding 20,000 HTML bodies would not)."""
    conn = sqlite3.connect(ctx.run / "dispatch-ws" / "incident.db")
    column = {"email": "a.to_email", "sms": "a.to_phone"}[channel]
    rows = conn.execute(
        f"SELECT n.ref, {column}, n.subject, n.body, n.html FROM notice n JOIN affected a ON a.incident_id = "
        "n.incident_id AND a.person_id = n.person_id WHERE n.incident_id = ? AND n.channel = ? ORDER BY n.id",
        (incident_id, channel),
    ).fetchall()
    conn.close()
    return [
        (f"{incident_id}.{ref}.{channel}", address, subject, body, html) for ref, address, subject, body, html in rows
    ]


def _fresh_copy(ctx: Context) -> Path:
    root = ctx.run / "dispatch-run"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(ctx.run / "dispatch-ws", root)
    return root


def timed_dispatch(
    root: Path, incident_id: str, channel: str, sink: sinks.Sink, threads: int, stop_after: int | None = None
) -> Measure:
    """run_dispatch on a prepared workspace; check the receiver got every message sent."""
    from incident.config import find_workspace
    from incident.dispatch.flows import run_dispatch

    ws = find_workspace(root)
    cpu = cpu_seconds()
    start = time.perf_counter()
    report = run_dispatch(ws, incident_id, "bench", workers=threads, stop_after=stop_after)
    seconds = time.perf_counter() - start
    cpu = cpu_seconds() - cpu
    sent = report.tally.get(f"{channel}:sent", 0)
    other = {k: v for k, v in report.tally.items() if k != f"{channel}:sent"}
    if other:
        raise SystemExit(f"dispatch {incident_id}: unexpected outcomes {other}")
    wait_until(lambda: sink.received >= sent, 30, "the receiver to count every message")
    if sink.received != sent:
        raise SystemExit(f"dispatch {incident_id}: sent {sent} but the receiver counted {sink.received}")
    return Measure(
        seconds,
        sent,
        f"{sent:,} sent by run_dispatch({threads} threads) in {seconds:.1f} s, "
        f"{cpu / sent * 1000:.2f} ms CPU a message in our process",
        extra={"cpu_seconds": cpu, "threads": threads},
    )


def _dispatch(
    ctx: Context, kind: str, channel: str, sink: sinks.Sink, url: str, threads: int, stop_after: int | None = None
) -> Measure:
    """timed_dispatch on a fresh copy of the prepared workspace, its channel pointed at the receiver."""
    root = _fresh_copy(ctx)
    configure_channels(root, **{channel: url}, concurrency=threads)
    return timed_dispatch(root, _ids(ctx)[kind], channel, sink, threads, stop_after)


def email_baseline(ctx: Context) -> Measure:
    return smtp_baseline(_stored(ctx, _ids(ctx)["email"], "email"))


def smtp_baseline(messages: list[tuple[str, str, str, bytes, bytes | None]]) -> Measure:
    """smtplib over one persistent connection: the same stored bodies built into the same MIME message."""
    import smtplib
    from email.message import EmailMessage
    from email.utils import make_msgid

    from incident.notices.models import unpack_content

    with sinks.running("smtp") as sink:
        cpu = cpu_seconds()
        start = time.perf_counter()
        smtp = smtplib.SMTP("127.0.0.1", sink.port)
        for notice_id, address, subject, body, html in messages:
            msg = EmailMessage()
            msg["From"], msg["To"], msg["Subject"] = SENDER, address, subject
            msg["Message-ID"] = make_msgid(idstring=notice_id, domain="example.com")
            msg["X-Notice-Id"] = notice_id
            text_part, html_part = unpack_content(body, html)  # zlib, the HTML with the text as its dictionary
            msg.set_content(text_part)
            if html_part is not None:
                msg.add_alternative(html_part, subtype="html")
            smtp.send_message(msg, from_addr=SENDER, to_addrs=[address])
        smtp.quit()
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
        wait_until(lambda: sink.received >= len(messages), 30, "the SMTP sink")
    return Measure(
        seconds,
        len(messages),
        f"{len(messages):,} sent over one connection, {cpu / len(messages) * 1000:.2f} ms CPU a message",
        extra={"cpu_seconds": cpu},
    )


def email_ours(ctx: Context) -> Measure:
    with sinks.running("smtp") as sink:
        return _dispatch(
            ctx, "email", "email", sink, f"smtppool://127.0.0.1:{sink.port}/{{email}}?from={SENDER}", THREADS
        )


def gateway_baseline(messages: list[tuple[str, str, str, bytes, bytes | None]], delay: float = 0.0) -> Measure:
    """http.client over one keep-alive connection, POSTing the JSON our gateway:// sends."""
    import http.client

    with sinks.running("http", delay) as sink:
        cpu = cpu_seconds()
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", sink.port, timeout=30)
        for notice_id, address, subject, body, _ in messages:
            payload = json.dumps(
                {"to": address, "title": subject, "message": zlib.decompress(body).decode(), "notice_id": notice_id},
                ensure_ascii=False,
            ).encode()
            conn.request(
                "POST",
                "/sms",
                body=payload,
                headers={"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": notice_id},
            )
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                raise SystemExit(f"gateway answered {resp.status}")
        conn.close()
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu
    return Measure(
        seconds,
        len(messages),
        f"{len(messages):,} POSTed over one keep-alive connection, {cpu / len(messages) * 1000:.2f} ms CPU a message",
        extra={"cpu_seconds": cpu},
    )


def sms_baseline(ctx: Context) -> Measure:
    """http.client with keep-alive, POSTing the JSON our gateway:// sends, to the same gateway."""
    return gateway_baseline(_stored(ctx, _ids(ctx)["sms"], "sms"))


def sms_ours(ctx: Context) -> Measure:
    with sinks.running("http") as sink:
        return _dispatch(ctx, "sms", "sms", sink, f"gateway://127.0.0.1:{sink.port}/sms?to={{phone}}", THREADS)


def latency_one(ctx: Context) -> Measure:
    """One dispatch thread against a gateway that takes 50 ms a request."""
    with sinks.running("http", LATENCY) as sink:
        return _dispatch(
            ctx,
            "latency",
            "sms",
            sink,
            f"gateway://127.0.0.1:{sink.port}/sms?to={{phone}}",
            ONE,
            stop_after=sizes(ctx)["latency_one"],
        )


def latency_many(ctx: Context) -> Measure:
    """Sixteen dispatch threads (channel concurrency 16) against the same slow gateway."""
    with sinks.running("http", LATENCY) as sink:
        return _dispatch(ctx, "latency", "sms", sink, f"gateway://127.0.0.1:{sink.port}/sms?to={{phone}}", MANY)


METHOD = [
    "Dispatch: prepare() builds a workspace of adults reachable by email only or by phone only, opens, assesses, "
    "renders and approves one incident per row (not timed). Each run of ours copies that workspace, points "
    "`[channels.*]` at the receiver (no rate limit, no backoff) and times `dispatch.flows.run_dispatch` whole: "
    "planning the deliveries, claiming, the content-hash check, the apprise call through our `smtppool://` or "
    "`gateway://` scheme, settling, the proof rows and the audit chain. The receiver's count must equal what ours "
    "reports sent.",
    "Email baseline: the same stored, approved bodies (read before the clock starts, decompressed in the loop) built "
    "into the same "
    "MIME message (From, To, Subject, Message-ID, X-Notice-Id, text and HTML alternatives) and sent with "
    "`smtplib.SMTP.send_message` over one persistent connection. SMS baseline: the same JSON our `gateway://` "
    "posts, sent with `http.client` over one keep-alive connection. The receivers (aiosmtpd, accepting and "
    "counting; a threaded `http.server`) run in a process of their own on the same two cores.",
    f"Latency-bound HTTP: the gateway sleeps {LATENCY * 1000:.0f} ms per request (threaded, so requests overlap); "
    f"both sides are ours, `run_dispatch(workers=1)` with channel concurrency 1 sending the first "
    "messages versus `run_dispatch(workers=16)` with concurrency 16 sending a whole incident.",
]

ROWS = [
    Row(
        f"Email dispatch, SQLite ({{dispatch_email:,}} to aiosmtpd, smtppool://, {THREADS} threads)",
        "email-baseline",
        "email-ours",
        0.5,
        400,
        kind="rate",
        repeat=1,
    ),
    Row(
        f"SMS dispatch, SQLite ({{dispatch_sms:,}} to an HTTP gateway, gateway://, {THREADS} threads)",
        "sms-baseline",
        "sms-ours",
        0.25,
        400,
        kind="rate",
        repeat=2,
    ),
    Row(
        "Latency-bound HTTP (50 ms a request): 16 threads ({dispatch_latency_many:,}) vs 1 ({dispatch_latency_one:,})",
        "latency-one",
        "latency-many",
        8.0,
        400,
        kind="rate",
        same_items=False,
        repeat=2,
    ),
]

STEPS: dict[str, Callable[[Context], Measure]] = {
    "email-baseline": email_baseline,
    "email-ours": email_ours,
    "sms-baseline": sms_baseline,
    "sms-ours": sms_ours,
    "latency-one": latency_one,
    "latency-many": latency_many,
}


def describe(facts: dict[str, Any]) -> str:
    return (
        f"dispatch: {facts['dispatch_email']:,} email-only and {facts['dispatch_sms']:,} phone-only adults "
        "(half zh-CN, half en), one approved incident each"
    )


def _duration(seconds: float) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


PEOPLE_10M = 10_000_000
WORKER_COUNTS = (1, 4, 16)
# (provider, channel, its rate limit, whether it answers in 50 ms: then a worker's rate is the latency row's)
PROVIDERS = [
    ("SMTP relay at 200/s", "email", 200.0, False),
    ("SMTP relay at 1,000/s", "email", 1_000.0, False),
    ("SMS provider at 100/s", "sms", 100.0, False),
    ("SMS provider at 1,000/s", "sms", 1_000.0, False),
    ("SMS provider at 1,000/s answering in 50 ms", "sms", 1_000.0, True),
    ("SMS provider at 10,000/s", "sms", 10_000.0, False),
]


def findings(facts: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """What 10 million notices take: the measured per-message cost against providers' rate limits."""
    measured: list[tuple[str, str, float, float]] = []  # (channel, database, per-worker rate, per CPU-second)
    for channel, step, where in (
        ("email", "email-ours", "SQLite"),
        ("email", "pg-email-ours", "PostgreSQL"),
        ("sms", "sms-ours", "SQLite"),
        ("sms", "pg-sms-ours", "PostgreSQL"),
    ):
        ours = results.get(step)
        if ours is not None:
            m = ours.measure
            measured.append((channel, where, m.items / m.seconds, m.items / m.extra["cpu_seconds"]))
    if not measured:
        return []
    # Several workers share a PostgreSQL: its figure counts when there is one (the later entry wins).
    rates = {channel: (where, rate) for channel, where, rate, _ in measured}
    slow = results.get("latency-many")
    if slow is not None:
        rates["sms-latency"] = ("SQLite, 16 threads, 50 ms a request", slow.measure.items / slow.measure.seconds)
    lines = ["", "## What 10 million notices take", ""]
    lines.append(
        f"From this run, one dispatch process (`run_dispatch`, {THREADS} threads, the receiver on the same two "
        "cores) sent "
        + "; ".join(
            f"{channel} on {where} at {rate:,.0f} messages/s ({per_cpu:,.0f} per CPU-second of our process)"
            for channel, where, rate, per_cpu in measured
        )
        + ". Time for 10,000,000 messages with N workers = max(10M / (N × per-worker rate), 10M / provider limit). "
        "Against a provider that answers in 50 ms a worker's rate is the latency row's (16 threads"
        + (f": {rates['sms-latency'][1]:,.0f}/s" if "sms-latency" in rates else "")
        + "); "
        "more threads raise it while the CPU has room. Several workers also need a database that keeps up: the "
        "workers row measures 4 processes on one PostgreSQL; 16 is an extrapolation."
    )
    lines += [
        "",
        "| provider | per-worker rate (measured) | "
        + " | ".join(f"{n} worker{'s' if n > 1 else ''}" for n in WORKER_COUNTS)
        + " |",
        "|---|---|" + "---|" * len(WORKER_COUNTS),
    ]
    for label, channel, limit, latency in PROVIDERS:
        key = "sms-latency" if latency else channel
        if key not in rates:
            continue
        where, per_worker = rates[key]
        cells = []
        for n in WORKER_COUNTS:
            ours_s, provider_s = PEOPLE_10M / (n * per_worker), PEOPLE_10M / limit
            cells.append(f"{_duration(max(ours_s, provider_s))} ({'provider' if provider_s >= ours_s else 'us'})")
        lines.append(f"| {label} | {per_worker:,.0f}/s ({channel}, {where}) | " + " | ".join(cells) + " |")
    lines += [
        "",
        "In brackets, which side sets the pace. The provider's limit does as soon as N × per-worker rate "
        "passes it: at 100 SMS/s, 10 million take 28 hours however many workers run, so a higher limit (or "
        "several provider accounts) is what shortens it; more workers pay off against fast or slow-answering "
        "providers.",
        "",
    ]
    return ["\n".join(lines)]
