"""Run the benchmark: each row's baseline and ours in fresh child processes, then print and save the table.

    python bench/run.py                  # 1,000,000 people, 3 runs a side; writes bench/RESULTS.md
    python bench/run.py --quick          # 50,000 people smoke test; prints only
    python bench/run.py --people 200000 --repeat 1 --output /tmp/results.md
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
import inventory_steps
from harness import BENCH, Context

# Every steps module: prepare(ctx) -> facts, STEPS, ROWS, describe(facts), METHOD. Later issues add rendering, dispatch
# and PostgreSQL modules here.
MODULES = [inventory_steps]
STEPS = {name: step for module in MODULES for name, step in module.STEPS.items()}


def results_markdown(table: str, details: list[str], facts: dict[str, Any], command: str, total: float,
                     loads: str) -> str:
    data = "; ".join(module.describe(facts) for module in MODULES)
    method = "\n".join(f"- {line}" for module in MODULES for line in module.METHOD)
    return f"""# Benchmark results

- Date: {datetime.now(UTC).date().isoformat()}
- Machine: {harness.machine()}; load average {loads} (start, end)
- Command: `{command}` ({total:.0f} s in all, data generation included when not cached)
- Data: {data}

{table}

{chr(10).join(f"- {d}" for d in details)}

## Method

- Every measured step runs in a fresh Python process (`run.py --step NAME`); peak memory is that process's peak
  resident set (VmHWM), interpreter and imports included. Baseline and ours are measured in the same run, on the
  same files and the same database schema (the DDL is copied from the real database's `sqlite_master`, the
  PRAGMAs read from the real engine's connection).
{method}
- Time is wall-clock (`time.perf_counter`) around the measured call only. Baseline and ours alternate `--repeat`
  times and each side keeps its fastest run (and its highest peak memory), which damps other load on the machine.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark incident against bare baselines.")
    parser.add_argument("--people", type=int, default=1_000_000, help="people in the synthetic inventory")
    parser.add_argument("--quick", action="store_true", help="50,000 people, print only (a smoke test)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic inventory")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side of a row; the fastest counts")
    parser.add_argument("--work", type=Path, default=BENCH / "work", help="cache and scratch folder")
    parser.add_argument("--output", type=Path, default=None,
                        help="results file (default bench/RESULTS.md; none with --quick)")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    people = 50_000 if args.quick else args.people
    ctx = Context(people=people, seed=args.seed, work=args.work.resolve())
    if args.step:
        harness.report_child(STEPS[args.step](ctx))
        return
    output = args.output if args.output is not None else (None if args.quick else BENCH / "RESULTS.md")
    started, load_start = time.perf_counter(), harness.load()
    facts: dict[str, Any] = {}
    for module in MODULES:
        facts.update(module.prepare(ctx))
    cells, details = [], []
    for module in MODULES:
        for row in module.ROWS:
            label = row.label.format(**facts)
            print(f"{label}: baseline and ours, {args.repeat}× ...", flush=True)
            base, ours = harness.measure_row(row, ctx, args.repeat)
            cells.append({"step": label, **harness.judge(row, base, ours)})
            details.append(f"{label}: baseline {base.measure.note}; ours {ours.measure.note}")
    total = time.perf_counter() - started
    loads = f"{load_start}, {harness.load()}"
    print()
    print(harness.text_table(cells))
    for d in details:
        print(d)
    print(f"{harness.machine()}; load average {loads}; {total:.0f} s in all")
    if output is not None:
        command = " ".join(["python bench/run.py", *sys.argv[1:]])
        output.write_text(results_markdown(harness.markdown_table(cells), details, facts, command, total, loads),
                          encoding="utf-8")
        print(f"wrote {output}")
    if any(not c["verdict"].startswith("PASS") for c in cells):
        sys.exit(1)


if __name__ == "__main__":
    main()
