"""The benchmark's moving parts: a row is a bare baseline beside ours; each side runs in a fresh child process.

A steps module offers `prepare(ctx)` (run just before its rows), `STEPS` (name -> function returning a Measure),
`ROWS`, `describe(facts)` and `METHOD`; optionally `findings(facts, results)` (extra lines or sections for the
results file) and `cleanup(ctx)` (stop what prepare started). run.py collects them.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
SYNTHETIC = BENCH.parent / "incident" / "demo" / "synthetic.py"
COLUMNS = ("step", "baseline", "ours", "ratio", "target", "peak MB (ours)", "peak MB (baseline)", "verdict")


@dataclass(frozen=True)
class Context:
    """Where one benchmark run keeps its inputs and databases."""

    people: int
    seed: int
    work: Path
    quick: bool = False

    @property
    def data(self) -> Path:
        """The cached synthetic inventory, keyed by size, seed and the generator's source."""
        digest = hashlib.sha1(SYNTHETIC.read_bytes()).hexdigest()[:8]
        return self.work / f"data-{self.people}-{self.seed}-{digest}"

    @property
    def run(self) -> Path:
        """Scratch space of this run: databases and workspaces, rebuilt every run."""
        return self.work / f"run-{self.people}"

    @property
    def workspace(self) -> Path:
        """The workspace the last import-ours step filled; later steps read it."""
        return self.run / "ws"


@dataclass(frozen=True)
class Measure:
    """What one measured step did: how long, how many items, and what to print beside it."""

    seconds: float
    items: int
    note: str = ""
    helpers_mb: float = 0.0  # peak memory of our own helper processes (a render pool), added to this one's
    extra: dict[str, Any] = field(default_factory=dict)  # figures a module's findings() uses (CPU seconds, ...)


@dataclass(frozen=True)
class Row:
    """One line of the table: a bare baseline beside ours, and the target the ratio must meet.

    kind "time": ratio = ours seconds / baseline seconds, at most `target`.
    kind "rate": ratio = ours items per second / baseline items per second, at least `target`.
    """

    label: str  # formatted with the facts prepare() returns, e.g. {people:,}
    baseline: str
    ours: str
    target: float
    max_mb: float
    kind: str = "time"
    same_items: bool = True  # both sides must have produced the same number of items
    repeat: int | None = None  # at most this many runs a side (long rows), whatever --repeat says


@dataclass(frozen=True)
class Result:
    measure: Measure
    peak_mb: float


def peak_mb() -> float:
    """This process's peak resident set size in MB.

    VmHWM belongs to the current address space; ru_maxrss would also count the parent's peak before exec.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_step(name: str, ctx: Context) -> Result:
    """Run one step in a fresh interpreter (`run.py --step NAME`) and read back its measure and peak memory."""
    cmd = [
        sys.executable,
        str(BENCH / "run.py"),
        "--step",
        name,
        "--people",
        str(ctx.people),
        "--seed",
        str(ctx.seed),
        "--work",
        str(ctx.work),
        *(["--quick"] if ctx.quick else []),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"step {name} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    measure = Measure(data["seconds"], data["items"], data["note"], data["helpers_mb"], data["extra"])
    return Result(measure, data["peak_mb"] + data["helpers_mb"])


def report_child(measure: Measure) -> None:
    """The child side of run_step: print the measure and this process's peak as one JSON line."""
    print(
        json.dumps(
            {
                "seconds": measure.seconds,
                "items": measure.items,
                "note": measure.note,
                "peak_mb": peak_mb(),
                "helpers_mb": measure.helpers_mb,
                "extra": measure.extra,
            }
        )
    )


def children_peak_mb() -> float:
    """The largest peak resident set among this process's finished (waited-for) children."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wait_until(check: Any, timeout: float, what: str) -> None:
    """Poll `check()` until true; a benchmark that never finishes its work must fail, not hang."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def measure_row(row: Row, ctx: Context, repeat: int) -> tuple[Result, Result]:
    """Alternate baseline and ours `repeat` times; keep each side's fastest run and its highest peak."""
    runs: dict[str, list[Result]] = {row.baseline: [], row.ours: []}
    for _ in range(min(repeat, row.repeat or repeat)):
        for step in (row.baseline, row.ours):
            runs[step].append(run_step(step, ctx))
    best = {step: min(results, key=lambda r: r.measure.seconds) for step, results in runs.items()}
    peak = {step: max(r.peak_mb for r in results) for step, results in runs.items()}
    return Result(best[row.baseline].measure, peak[row.baseline]), Result(best[row.ours].measure, peak[row.ours])


def _amount(row: Row, result: Result) -> str:
    if row.kind == "rate":
        return f"{result.measure.items / result.measure.seconds:,.0f}/s"
    return f"{result.measure.seconds:.2f} s"


def judge(row: Row, base: Result, ours: Result) -> dict[str, str]:
    """Turn two results into the table's cells."""
    if row.kind == "rate":
        ratio = (ours.measure.items / ours.measure.seconds) / (base.measure.items / base.measure.seconds)
        ratio_ok, target = ratio >= row.target, f"≥ {row.target:g}×, < {row.max_mb:g} MB"
    else:
        ratio = ours.measure.seconds / base.measure.seconds
        ratio_ok, target = ratio <= row.target, f"≤ {row.target:g}×, < {row.max_mb:g} MB"
    problems = [] if ratio_ok else ["ratio"]
    if ours.peak_mb >= row.max_mb:
        problems.append("memory")
    if row.same_items and ours.measure.items != base.measure.items:
        problems.append("counts differ")
    return {
        "baseline": _amount(row, base),
        "ours": _amount(row, ours),
        "ratio": f"{ratio:.2f}×",
        "target": target,
        "peak MB (ours)": f"{ours.peak_mb:.0f}",
        "peak MB (baseline)": f"{base.peak_mb:.0f}",
        "verdict": "PASS" if not problems else f"FAIL ({', '.join(problems)})",
    }


def text_table(rows: list[dict[str, str]]) -> str:
    widths = [max(len(c), *(len(r[c]) for r in rows)) for c in COLUMNS]
    lines = [" | ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)), "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(r[c].ljust(w) for c, w in zip(COLUMNS, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def markdown_table(rows: list[dict[str, str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r[c] for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs (nproc), {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}"
    )


def load() -> str:
    """The 1-minute load average: other work on the machine slows both sides, not always equally."""
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"
