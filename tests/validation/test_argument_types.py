"""Arguments of the wrong type or beyond any sense, found by a hostile user's trial (session 9).

Each raised a bare TypeError, ValueError or OverflowError (or, for ``download``, wrote into the
current folder): now a ``ValidationError`` naming the field, before anything is sent.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import evolink_async as evolink
from tests.helpers.hostile import API_KEY, client_for, hostile_server, json_answer, task_body

_SPEC = {"model": "qwen-image-edit", "prompt": "p", "input_dir": "i", "output_dir": "o"}


@pytest.mark.parametrize(
    ("build", "field"),
    [
        *[(lambda v=v: evolink.BatchSpec(**_SPEC, model_params=v), "model_params")
          for v in (7, math.nan, True, "speed=fast", b"x", object(), [("speed", math.inf)])],
        (lambda: evolink.BatchSpec(**_SPEC, model_params={"x": math.nan}), "model_params"),
        (lambda: evolink.ImageRequest(model=[], prompt="x"), "model"),
        (lambda: evolink.ImageRequest(model={}, prompt="x"), "model"),
        *[(lambda v=v: evolink.Imagine(prompt="a fox", images=v), "images") for v in (3, math.nan, True, object())],
        (lambda: evolink.Imagine(prompt="a fox", images={Path("a.png"): 1}), "images"),
        (lambda: evolink.Blend(images=7), "images"),
    ],
)
def test_wrong_types_are_validation_errors(build: Any, field: str) -> None:
    with pytest.raises(evolink.ValidationError) as info:
        build()
    assert info.value.field == field


@pytest.mark.parametrize("field", ["heartbeat", "retry", "linger", "progress_every", "min_gap"])
@pytest.mark.parametrize("value", [1e308, 10**30])
def test_relay_durations_past_a_year_are_validation_errors(field: str, value: float) -> None:
    client = evolink.EvolinkClient(API_KEY, base_url="https://api.example")
    with pytest.raises(evolink.ValidationError) as info:
        evolink.ProgressRelay(client, **{field: value})
    assert info.value.field == field
    assert "at most" in str(info.value)


@pytest.mark.asyncio
@pytest.mark.parametrize("dest_dir", [None, "", 3, math.nan, b"out", object()])
async def test_download_refuses_a_bad_folder_before_any_request(dest_dir: Any, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a "" folder used to mean this one

    async def handler(request: web.Request) -> web.StreamResponse:
        return json_answer(task_body(status="completed"))

    async with hostile_server(handler) as server, client_for(server) as client:
        done = evolink.Task(id="task-unified-1-x", status=evolink.TaskStatus.COMPLETED,
                            results=(f"{server.url}/result.png",))
        with pytest.raises(evolink.ValidationError) as info:
            await client.download(done, dest_dir)
    assert info.value.field == "dest_dir"
    assert server.total == 0
    assert list(tmp_path.iterdir()) == []
