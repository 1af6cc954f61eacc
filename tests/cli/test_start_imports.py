"""What a command loads before its work begins: nothing it was not asked for.

Every fleet worker is a process of its own; each import at its start is paid once per worker
(six workers on a two-core machine wait for one another's imports before the first claim).
The OpenTelemetry SDK is loaded only when an ``OTEL_*`` variable asks for export, aiohttp's
server side only for ``--listen`` or ``--metrics-port``.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Loads the command line as `evolink` does, starts a run's telemetry from ``ENVIRON``, and prints
#: the heavy modules then loaded.
_PROBE = """
import asyncio, json, sys
from evolink_async.cli._main import main
from evolink_async.cli._otel import start_telemetry
telemetry = asyncio.run(start_telemetry(None, environ=json.loads(sys.argv[1])))
print(json.dumps({"tracing": telemetry.tracer_provider is not None,
                  "loaded": [name for name in ("opentelemetry.sdk", "aiohttp.web", "evolink_async.metrics")
                             if name in sys.modules]}))
"""


def _start(environ: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", _PROBE, environ], check=True, timeout=60, capture_output=True,
                          text=True)  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_command_without_export_or_listen_loads_no_otel_sdk_and_no_web_server() -> None:
    assert _start("{}") == {"tracing": False, "loaded": []}


def test_export_asked_for_still_loads_the_sdk() -> None:
    started = _start('{"OTEL_TRACES_EXPORTER": "console"}')
    assert started["tracing"] is True
    assert "opentelemetry.sdk" in started["loaded"]  # type: ignore[operator]
