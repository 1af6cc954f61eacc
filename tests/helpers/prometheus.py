"""Reading Prometheus text (format 0.0.4) as a scraper would, for the ``--metrics-port`` tests."""

from __future__ import annotations

import re

__all__ = ["SAMPLE", "parse_totals"]

#: One sample line: a metric name, optional labels, a value.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (\S+)$')


def parse_totals(text: str) -> dict[str, float]:
    """Every line a comment or a valid sample (asserted); the sum of each metric's samples by name."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match is not None, line
        totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(5))
    return totals
