"""``python -m benchmarks [--quick] [--only NAME ...]``: run the scenarios and write the results.

Writes ``benchmarks/results/latest.json`` always; a full run of every scenario also writes
``benchmarks/RESULTS.md`` (a quick or ``--only`` run prints its table instead, so the committed
full-run table is not overwritten; pass ``--markdown PATH`` to write it somewhere). Exits 0 when
every scenario ran and the JSON was written, 1 when a scenario crashed (missed timing targets are
reported, never an exit code).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ._common import machine_info
from .report import render_markdown, write_json

SCENARIOS = (
    "lifecycle", "polling", "scale", "fan_out", "downloads", "mj_polling", "callbacks", "journal", "progress",
    "uploads", "telemetry", "query_path",
)  # fmt: skip
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="every scenario small (under a minute in all)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "latest.json", help="where the JSON goes")
    parser.add_argument("--markdown", type=Path, default=None, help="where the markdown goes")
    args = parser.parse_args(argv)
    partial = args.quick or args.only
    markdown = args.markdown if args.markdown is not None else (None if partial else HERE / "RESULTS.md")
    names = args.only or list(SCENARIOS)

    started = time.perf_counter()
    report: dict[str, Any] = {
        "command": "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (f" --only {' '.join(names)}" if args.only else ""),
        "mode": "quick" if args.quick else "full",
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "scenarios": [],
    }
    crashed = False
    for name in names:
        print(f"== {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        module = importlib.import_module(f"benchmarks.{name}")
        try:
            scenario = asyncio.run(module.run(args.quick)).to_json()
        except Exception:
            crashed = True
            scenario = {"name": name, "title": name, "error": traceback.format_exc()}
            print(scenario["error"], file=sys.stderr)
        scenario["seconds"] = round(time.perf_counter() - t0, 1)
        report["scenarios"].append(scenario)
        for t in scenario.get("targets", []):
            verdict = {True: "PASS", False: "FAIL", None: "n/a"}[t["passed"]]
            print(f"   {verdict:4}  {t['name']}: {t['value']} (goal {t['goal']})", file=sys.stderr)
        print(f"   ({scenario['seconds']} s)", file=sys.stderr, flush=True)
    report["duration_s"] = round(time.perf_counter() - started, 1)
    report["ok"] = not crashed
    write_json(report, args.json)
    text = render_markdown(report)
    if markdown is not None:
        markdown.write_text(text)
        print(f"wrote {args.json} and {markdown}", file=sys.stderr)
    else:
        print(text)
        print(f"wrote {args.json}", file=sys.stderr)
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
