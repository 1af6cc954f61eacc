"""The CLI configures OpenTelemetry's SDK from the standard ``OTEL_*`` variables (only when asked)."""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import pytest

from evolink_async import EvolinkClient, PollPolicy, QwenImageEdit
from evolink_async.cli._otel import start_telemetry
from evolink_async.sandbox import Sandbox
from tests.helpers.images import write_png

REMOTE_IMAGE = "https://images.example.com/fox.png"  # never fetched: the sandbox contacts no other host


def json_documents(text: str) -> list[Any]:
    """Every JSON value in ``text``, one after another (the CLI's JSON lines and the console
    exporters' indented objects, interleaved)."""
    decoder, documents, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return documents
        document, index = decoder.raw_decode(text, index)
        documents.append(document)


@pytest.mark.evolink_sandbox(time_scale=0.02, seed=3)
async def test_console_exporters_from_the_environment(evolink_sandbox: Sandbox, tmp_path: Path) -> None:
    for index in range(3):
        write_png(tmp_path / "in" / f"{index}.png", shade=index * 50)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console",
           "OTEL_SERVICE_NAME": "nightly-edits"}  # fmt: skip
    argv = [sys.executable, "-m", "evolink_async", "edit", str(tmp_path / "in"), "--prompt", "autumn",
            "--out", str(tmp_path / "out"), "--json", "--base-url", evolink_sandbox.base_url,
            "--files-base-url", evolink_sandbox.files_base_url, "--api-key", evolink_sandbox.api_key,
            "--poll-scale", "0.02"]  # fmt: skip
    with anyio.fail_after(90):
        done = await anyio.run_process(argv, env=env, check=False)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    documents = json_documents(stdout)
    spans = [d for d in documents if isinstance(d, dict) and "context" in d and "name" in d]
    exports = [d for d in documents if isinstance(d, dict) and "resource_metrics" in d]
    names = [span["name"] for span in spans]
    assert names.count("batch") == 1
    assert names.count("generate_content qwen-image-edit") == 3 == len(evolink_sandbox.ledger.billed)
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"nightly-edits"}
    assert len({span["context"]["trace_id"] for span in spans}) == 1  # the run is one trace
    metric_names = {
        metric["name"]
        for export in exports
        for resource in export["resource_metrics"]
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    }
    assert {"evolink.tasks.in_flight", "evolink.queries", "evolink.task.duration"} <= metric_names
    assert evolink_sandbox.api_key not in stdout + stderr


@pytest.mark.evolink_sandbox(time_scale=0.02, seed=4)
@pytest.mark.parametrize("command", ["status", "watch", "download"])
async def test_the_short_commands_export_their_spans_too(evolink_sandbox: Sandbox, tmp_path: Path, command: str) -> None:
    """``evolink status/watch/download`` read the same ``OTEL_*`` variables as the batch commands."""
    async with EvolinkClient(evolink_sandbox.api_key, base_url=evolink_sandbox.base_url,
                             files_base_url=evolink_sandbox.files_base_url,
                             poll_policy=PollPolicy().scaled(0.02)) as client:  # fmt: skip
        task = await client.images.generate(QwenImageEdit(prompt="a fox", image_urls=[REMOTE_IMAGE]), timeout=60)
    env = {**os.environ, "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "one-look"}
    extra = ["--out", str(tmp_path / "out")] if command == "download" else []
    argv = [sys.executable, "-m", "evolink_async", command, task.id, *extra, "--json",
            "--base-url", evolink_sandbox.base_url, "--files-base-url", evolink_sandbox.files_base_url,
            "--api-key", evolink_sandbox.api_key, "--poll-scale", "0.02"]  # fmt: skip
    with anyio.fail_after(90):
        done = await anyio.run_process(argv, env=env, check=False)
    stdout, stderr = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, stderr
    spans = [d for d in json_documents(stdout) if isinstance(d, dict) and "context" in d and "name" in d]
    assert "GET /v1/tasks/{task_id}" in [span["name"] for span in spans]
    assert {span["resource"]["attributes"]["service.name"] for span in spans} == {"one-look"}
    assert evolink_sandbox.api_key not in stdout + stderr


async def test_an_exporter_not_installed_is_one_line_and_the_run_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    # An endpoint alone asks for OTLP (the OpenTelemetry default exporter), not installed here.
    assert not list(metadata.entry_points(group="opentelemetry_traces_exporter", name="otlp"))
    endpoint = "http://collector.internal:4317/?token=do-not-print"
    telemetry = await start_telemetry(None, environ={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})
    await telemetry.stop()
    err = capsys.readouterr().err
    assert "asks for the otlp exporter, which is not installed" in err
    assert "pip install opentelemetry-exporter-otlp" in err
    assert "do-not-print" not in err
    assert telemetry.tracer_provider is None
    assert telemetry.meter_provider is None


async def test_nothing_is_configured_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    for environ in ({}, {"OTEL_SERVICE_NAME": "x"}, {"OTEL_TRACES_EXPORTER": "none"},
                    {"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}):  # fmt: skip
        telemetry = await start_telemetry(None, environ=environ)
        assert telemetry.client_options == {"tracer_provider": None, "meter_provider": None}, environ
    assert capsys.readouterr().err == ""


async def test_without_the_sdk_an_asked_for_export_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in [name for name in sys.modules if name.startswith("opentelemetry.sdk")] + ["opentelemetry.sdk"]:
        monkeypatch.setitem(sys.modules, name, None)  # `import opentelemetry.sdk...` raises ImportError
    quiet = await start_telemetry(None, environ={})
    assert capsys.readouterr().err == ""
    telemetry = await start_telemetry(None, environ={"OTEL_TRACES_EXPORTER": "console"})
    assert "opentelemetry-sdk is not installed" in capsys.readouterr().err
    assert telemetry.client_options == quiet.client_options == {"tracer_provider": None, "meter_provider": None}


async def test_a_metrics_port_and_an_otel_metrics_exporter_read_one_provider(capsys: pytest.CaptureFixture[str]) -> None:
    telemetry = await start_telemetry(0, environ={"OTEL_METRICS_EXPORTER": "console"})
    try:
        assert telemetry.metrics is not None
        assert telemetry.meter_provider is telemetry.metrics.meter_provider
        assert telemetry.tracer_provider is None
    finally:
        await telemetry.stop()
    assert "metrics on http://127.0.0.1:" in capsys.readouterr().err
