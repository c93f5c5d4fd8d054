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

import dispatch_steps
import harness
import inventory_steps
import pg_steps
import render_steps
from harness import BENCH, Context, Result

# Every steps module: prepare(ctx) -> facts, STEPS, ROWS, describe(facts), METHOD; optionally findings(facts,
# results) and cleanup(ctx). A module's prepare runs just before its rows (render reads the imported workspace).
MODULES = [inventory_steps, render_steps, dispatch_steps, pg_steps]
STEPS = {name: step for module in MODULES for name, step in module.STEPS.items()}


def results_markdown(
    table: str,
    details: list[str],
    facts: dict[str, Any],
    command: str,
    total: float,
    loads: str,
    sections: list[str],
    modules: list[Any],
) -> str:
    data = "; ".join(module.describe(facts) for module in modules)
    method = "\n".join(f"- {line}" for module in modules for line in module.METHOD)
    return f"""# Benchmark results

- Date: {datetime.now(UTC).date().isoformat()}
- Machine: {harness.machine()}; load average {loads} (start, end)
- Command: `{command}` ({total:.0f} s in all, data generation included when not cached)
- Data: {data}

{table}

{chr(10).join(f"- {d}" for d in details)}
{"".join(sections)}
## Method

- Every measured step runs in a fresh Python process (`run.py --step NAME`); peak memory is that process's peak
  resident set (VmHWM), interpreter and imports included, plus the peak of the helper processes ours starts
  itself where there are any (the render pool, `incident worker` processes; each row's note says how). Receivers
  (SMTP sink, HTTP gateway) and PostgreSQL run in processes of their own and count on neither side. Baseline and
  ours are measured in the same run, on the same files and the same database schema (the DDL is copied from the
  real database's `sqlite_master`, the PRAGMAs read from the real engine's connection).
{method}
- Time is wall-clock (`time.perf_counter`) around the measured call only. Baseline and ours alternate `--repeat`
  times (long rows fewer, as each row's note says) and each side keeps its fastest run (and its highest peak
  memory), which damps other load on the machine. Rows of kind "rate" compare throughput (items per second).
"""


def main() -> None:
    parser = argparse.ArgumentParser(description="Benchmark incident against bare baselines.")
    parser.add_argument("--people", type=int, default=1_000_000, help="people in the synthetic inventory")
    parser.add_argument(
        "--quick", action="store_true", help="50,000 people, 2,000 messages a dispatch row, print only (a smoke test)"
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic inventory")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side of a row; the fastest counts")
    parser.add_argument("--work", type=Path, default=BENCH / "work", help="cache and scratch folder")
    parser.add_argument(
        "--output", type=Path, default=None, help="results file (default bench/RESULTS.md; none with --quick)"
    )
    parser.add_argument(
        "--only",
        default=None,
        help="run only these modules' rows, comma-separated (inventory, render, dispatch, pg); "
        "render needs the workspace the inventory rows leave behind",
    )
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    people = 50_000 if args.quick else args.people
    ctx = Context(people=people, seed=args.seed, work=args.work.resolve(), quick=args.quick)
    if args.step:
        harness.report_child(STEPS[args.step](ctx))
        return
    output = args.output if args.output is not None else (None if args.quick else BENCH / "RESULTS.md")
    started, load_start = time.perf_counter(), harness.load()
    facts: dict[str, Any] = {}
    results: dict[str, Result] = {}
    cells, details = [], []
    modules = [m for m in MODULES if args.only is None or m.__name__.removesuffix("_steps") in args.only.split(",")]
    try:
        for module in modules:
            facts.update(module.prepare(ctx))
            for row in module.ROWS:
                label = row.label.format(**facts)
                runs = min(args.repeat, row.repeat or args.repeat)
                print(f"{label}: baseline and ours, {runs}× ...", flush=True)
                base, ours = harness.measure_row(row, ctx, args.repeat)
                results[row.baseline], results[row.ours] = base, ours
                cells.append({"step": label, **harness.judge(row, base, ours)})
                details.append(
                    f"{label}, best of {runs} a side: baseline {base.measure.note}; ours {ours.measure.note}"
                )
    finally:
        for module in modules:
            if hasattr(module, "cleanup"):
                module.cleanup(ctx)
    sections = [s for module in modules if hasattr(module, "findings") for s in module.findings(facts, results)]
    total = time.perf_counter() - started
    loads = f"{load_start}, {harness.load()}"
    print()
    print(harness.text_table(cells))
    for d in details:
        print(d)
    for section in sections:
        print(section)
    print(f"{harness.machine()}; load average {loads}; {total:.0f} s in all")
    if output is not None:
        command = " ".join(["python bench/run.py", *sys.argv[1:]])
        output.write_text(
            results_markdown(harness.markdown_table(cells), details, facts, command, total, loads, sections, modules),
            encoding="utf-8",
        )
        print(f"wrote {output}")
    if any(not c["verdict"].startswith("PASS") for c in cells):
        sys.exit(1)


if __name__ == "__main__":
    main()
