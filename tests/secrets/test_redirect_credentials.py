"""Nothing of an API call follows a redirect to another origin; a download follows it without credentials.

Two origins on loopback (the same host, two ports): ``home`` is the API the client was configured
with, ``other`` records what reaches it. An API call (Evolink, a Midjourney proxy) redirected there
is refused (``RedirectRefusedError``): its body (a prompt, a callback URL's token) and the answer it
would take as the task's belong to the origin the client was pointed at. A download of results
follows a redirect (CDNs do that) but carries no credential there: not the key, not a gateway key
in ``default_headers``, not the caller's own session headers. A redirect within ``home`` keeps them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import evolink_async as evolink
from tests.conftest import API_KEY
from tests.helpers.images import png_bytes
from tests.helpers.origins import Origin, recording_origin

GATEWAY_KEY = "gw-secret-0123456789"
MJ_SECRET = "mj-secret-0123456789"
EVOLINK_TASK = {"id": "task-unified-1-abc", "object": "image.generation.task", "status": "processing", "progress": 10}
MJ_TASK = {"id": "1748339029401828", "action": "IMAGINE", "status": "IN_PROGRESS", "progress": "10%"}
SECRET_VALUES = (API_KEY, GATEWAY_KEY, MJ_SECRET)


@pytest.fixture
async def origins() -> AsyncIterator[tuple[Origin, Origin]]:
    async with recording_origin() as home, recording_origin() as other:
        yield home, other


def redirect(to: str, status: int = 302) -> Any:
    def answer(_: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers={"Location": to})

    return answer


def answer_json(body: Any) -> Any:
    return lambda _: web.json_response(body)


def assert_no_credentials(origin: Origin) -> None:
    assert origin.seen, "the redirect was not followed"
    for _, _, headers in origin.seen:
        for name in ("Authorization", "mj-api-secret", "X-Gateway-Key", "Proxy-Authorization", "Cookie"):
            assert name not in headers, f"{name} followed the redirect"
        for value in headers.values():
            assert not any(secret in value for secret in SECRET_VALUES)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_an_evolink_query_redirected_elsewhere_is_refused_and_nothing_reaches_there(
    origins: tuple[Origin, Origin], status: int
) -> None:
    home, other = origins
    home.answers["/v1/tasks/task-unified-1-abc"] = redirect(f"{other.url}/v1/tasks/task-unified-1-abc", status)
    other.answers["/v1/tasks/task-unified-1-abc"] = answer_json(EVOLINK_TASK)
    async with evolink.EvolinkClient(
        API_KEY, base_url=home.url, default_headers={"X-Gateway-Key": GATEWAY_KEY}
    ) as client:
        with pytest.raises(evolink.RedirectRefusedError) as refused:
            await client.tasks.get("task-unified-1-abc")
    assert refused.value.status_code == status
    assert other.url in str(refused.value)
    assert not any(secret in str(refused.value) for secret in SECRET_VALUES)
    (sent,) = home.headers_at("/v1/tasks/task-unified-1-abc")
    assert sent["Authorization"] == f"Bearer {API_KEY}"  # the home origin still gets them
    assert sent["X-Gateway-Key"] == GATEWAY_KEY
    assert other.seen == []  # not even without credentials: its answer would be taken as the task's


async def test_a_submit_redirected_elsewhere_sends_its_body_and_callback_token_nowhere(
    origins: tuple[Origin, Origin]
) -> None:
    home, other = origins
    home.answers["/v1/images/generations"] = redirect(f"{other.url}/v1/images/generations", 307)
    other.answers["/v1/images/generations"] = answer_json(EVOLINK_TASK)
    async with evolink.EvolinkClient(API_KEY, base_url=home.url) as client:
        request = evolink.QwenImageEdit(prompt="a secret plan", image_urls=["https://example.com/a.png"],
                                        callback_url="https://hooks.example.com/t/token-0123456789")  # fmt: skip
        with pytest.raises(evolink.RedirectRefusedError):
            await client.images.submit(request)
        # A fan-out of such submits ends at the first (the submit endpoint is the same for every input).
        with pytest.raises(evolink.RedirectRefusedError):
            async with client.fan_out([request] * 20, max_in_flight=2) as stream:
                async for _ in stream:
                    pass
    assert other.seen == []
    assert len(home.headers_at("/v1/images/generations")) <= 1 + 2  # not one submit per input


@pytest.mark.parametrize("auth", ["mj-api-secret", "bearer"])
async def test_a_midjourney_proxy_redirected_elsewhere_is_refused(origins: tuple[Origin, Origin], auth: Any) -> None:
    home, other = origins
    home.answers["/mj/task/1748339029401828/fetch"] = redirect(f"{other.url}/mj/task/1748339029401828/fetch")
    other.answers["/mj/task/1748339029401828/fetch"] = answer_json(MJ_TASK)
    home.answers["/mj/submit/shorten"] = redirect(f"{other.url}/mj/submit/shorten", 307)
    other.answers["/mj/submit/shorten"] = answer_json({"code": 1, "description": "ok", "result": "1748339029401828"})
    async with evolink.MidjourneyClient(
        MJ_SECRET, base_url=home.url, auth=auth, default_headers={"X-Gateway-Key": GATEWAY_KEY}
    ) as mj:
        with pytest.raises(evolink.RedirectRefusedError):
            await mj.tasks.get("1748339029401828")
        with pytest.raises(evolink.RedirectRefusedError):
            await mj.submit(evolink.Shorten(prompt="a long prompt"))
    header = "mj-api-secret" if auth == "mj-api-secret" else "Authorization"
    assert all(header in sent for sent in home.headers_at("/mj/task/1748339029401828/fetch"))
    assert other.seen == []


async def test_another_port_or_scheme_is_another_origin(origins: tuple[Origin, Origin]) -> None:
    home, other = origins
    port = other.url.rsplit(":", 1)[1]
    # "localhost" names the same machine, but not the same origin as 127.0.0.1.
    home.answers["/v1/tasks/task-unified-1-abc"] = redirect(f"http://localhost:{port}/v1/tasks/task-unified-1-abc")
    other.answers["/v1/tasks/task-unified-1-abc"] = answer_json(EVOLINK_TASK)
    async with evolink.EvolinkClient(
        API_KEY, base_url=home.url, max_retries=0, default_headers={"X-Gateway-Key": GATEWAY_KEY}
    ) as client:
        with pytest.raises(evolink.RedirectRefusedError):
            await client.tasks.get("task-unified-1-abc")
    assert other.seen == []


async def test_a_redirect_within_the_origin_keeps_the_credentials(origins: tuple[Origin, Origin]) -> None:
    home, _ = origins
    home.answers["/v1/tasks/task-unified-1-abc"] = redirect("/v1/tasks/moved")
    home.answers["/v1/tasks/moved"] = answer_json(EVOLINK_TASK)
    async with evolink.EvolinkClient(
        API_KEY, base_url=home.url, default_headers={"X-Gateway-Key": GATEWAY_KEY}
    ) as client:
        await client.tasks.get("task-unified-1-abc")
    (sent,) = home.headers_at("/v1/tasks/moved")
    assert sent["Authorization"] == f"Bearer {API_KEY}"
    assert sent["X-Gateway-Key"] == GATEWAY_KEY


async def test_a_download_redirected_elsewhere_carries_no_session_secret(
    origins: tuple[Origin, Origin], tmp_path: Path
) -> None:
    home, other = origins
    image = png_bytes(8, 8)
    home.answers["/result.png"] = redirect(f"{other.url}/cdn/result.png")
    other.answers["/cdn/result.png"] = lambda _: web.Response(body=image, content_type="image/png")
    # The caller's own session, with their gateway's credentials as its default headers.
    session_headers = {"mj-api-secret": MJ_SECRET, "X-Gateway-Key": GATEWAY_KEY, "Authorization": f"Bearer {API_KEY}"}
    async with aiohttp.ClientSession(headers=session_headers) as session:
        async with evolink.EvolinkClient(API_KEY, base_url=home.url, session=session) as client:
            (path,) = await client.download([f"{home.url}/result.png"], tmp_path, name="cat")
    assert path.read_bytes() == image
    assert_no_credentials(other)
