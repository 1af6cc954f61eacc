"""Invariant 4: the API key never appears in a repr, a log line or an exception."""

from __future__ import annotations

import logging
import pickle

import aiohttp
import pytest
from aioresponses import aioresponses

import evolink_async as evolink
from evolink_async import EvolinkClient, QwenImageEdit
from evolink_async._core.secret import Secret, redact
from tests.conftest import API_KEY, BASE


def test_reprs_hide_the_key(client: EvolinkClient) -> None:
    for text in (repr(client), str(client), repr(client.config), repr(client.config.api_key), str(client.config.api_key)):
        assert API_KEY not in text
    assert "***" in repr(client)


def test_secret_cannot_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Secret(API_KEY))


def test_redact_scrubs_key_shapes() -> None:
    assert redact(f"key={API_KEY}") == "key=sk-evo-***"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("sk-evo-somethingElse123 failed") == "sk-evo-*** failed"
    assert redact("custom-secret-42 here", "custom-secret-42") == "*** here"


async def test_key_absent_from_logs_and_errors(
    mock_http: aioresponses, client: EvolinkClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="evolink_async")
    echo = {"error": {"code": "invalid_api_key", "message": f"Invalid key {API_KEY}", "type": "authentication_error"}}
    mock_http.post(f"{BASE}/v1/images/generations", status=503, body=f"upstream said Bearer {API_KEY}")
    mock_http.post(f"{BASE}/v1/images/generations", exception=aiohttp.ClientConnectionError(f"reset by {API_KEY}"))
    mock_http.post(f"{BASE}/v1/images/generations", status=401, payload=echo)
    with pytest.raises(evolink.AuthenticationError) as info:
        await client.images.submit(QwenImageEdit(prompt="p", image_urls=["https://example.com/a.png"]))
    texts = [str(info.value), repr(info.value), info.value.message, *(r.getMessage() for r in caplog.records)]
    assert len(caplog.records) >= 2  # retries were logged
    for text in texts:
        assert API_KEY not in text
    assert "***" in str(info.value)


def test_foreign_log_calls_through_the_package_logger_are_scrubbed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="evolink_async")
    logging.getLogger("evolink_async").info("header was %s", f"Bearer {API_KEY}")
    assert API_KEY not in caplog.text


def test_a_key_in_use_stays_scrubbed_after_an_equal_one_is_dropped() -> None:
    """Secrets compare equal by value: the scrub list must not forget a value when the first of
    two equal secrets dies while the second one is still in use (it did, held in a WeakSet)."""
    import gc

    from evolink_async._core.secret import Secret, redact

    value = "K3y-not-evo-shaped-weak-0001"
    first = Secret(value)
    second = Secret(value)
    del first
    gc.collect()
    assert redact(f"echo {value}") == "echo ***"
    del second
    gc.collect()
    assert redact(f"echo {value}") == f"echo {value}"  # held weakly: nothing left to scrub for


def test_the_scrub_list_follows_keys_made_and_dropped_after_a_scrub() -> None:
    """The values scrubbed are cached between answers: a key made after a scrub must be scrubbed
    by the next one, and a dropped key must leave the cache (no clear copy kept alive)."""
    import gc

    from evolink_async._core.secret import Secret, scrub_known

    old = Secret("K3y-old-not-evo-shaped-0002")
    assert scrub_known("id K3y-old-not-evo-shaped-0002") == "id ***"  # fills the cache
    new = Secret("K3y-new-not-evo-shaped-0003")
    assert scrub_known("id K3y-new-not-evo-shaped-0003") == "id ***"
    del old
    gc.collect()
    assert scrub_known("id K3y-old-not-evo-shaped-0002") == "id K3y-old-not-evo-shaped-0002"
    assert scrub_known("id K3y-new-not-evo-shaped-0003") == "id ***"
    del new
