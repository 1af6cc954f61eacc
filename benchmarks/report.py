"""Write ``results/latest.json`` and the markdown table (``RESULTS.md``) from scenario results."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["render_markdown", "write_json"]


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return f"{value:g}"
    return str(value).replace("|", "\\|")


def _verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def _clean(value: Any) -> Any:
    # JSON has no NaN: write null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(report: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(report), indent=2, sort_keys=False) + "\n")


def render_markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
    lines = [
        "# evolink_async benchmarks",
        "",
        f"Run: `{report['command']}` ({report['mode']}), {report['started_at']}, {report['duration_s']:.0f} s.",
        "",
        f"- Machine: {machine['platform']}, {machine['cpu_count']} CPUs ({machine['cpu_model']}),"
        f" {(machine['memory_bytes'] or 0) / 2**30:.0f} GiB",
        f"- Python {machine['python']} ({machine['python_implementation']})",
        f"- Libraries: {versions}",
        "- The sandbox runs in a separate process; every figure is this client process's alone.",
        "",
        "## Targets",
        "",
        "| scenario | target | goal | measured | verdict |",
        "|---|---|---|---|---|",
    ]
    for scenario in report["scenarios"]:
        if scenario.get("error"):
            lines.append(f"| {scenario['title']} | (scenario crashed) | | | ERROR |")
            continue
        for t in scenario["targets"]:
            measured = _cell(t["value"]) + (f" ({t['note']})" if t.get("note") else "")
            lines.append(
                f"| {scenario['name']} | {_cell(t['name'])} | {_cell(t['goal'])} | {measured} |"
                f" {_verdict(t['passed'])} |"
            )
    for scenario in report["scenarios"]:
        lines += ["", f"## {scenario['title']}", ""]
        if scenario.get("error"):
            lines += ["```", scenario["error"].rstrip(), "```"]
            continue
        params = ", ".join(f"{k}={_cell(v)}" for k, v in scenario["params"].items())
        lines += [f"Parameters: {params}.", ""]
        columns = scenario["columns"]
        lines.append("| " + " | ".join(columns) + " |")
        lines.append("|" + "---|" * len(columns))
        for row in scenario["rows"]:
            lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
        if scenario["notes"]:
            lines.append("")
            lines += [f"- {note}" for note in scenario["notes"]]
    return "\n".join(lines) + "\n"
