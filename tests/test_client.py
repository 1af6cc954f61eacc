"""Client construction, configuration from the environment, session ownership, with_options."""

from __future__ import annotations

import aiohttp
import pytest
from aioresponses import aioresponses

from evolink_async import EvolinkClient, MissingAPIKeyError
from tests.conftest import API_KEY


def test_missing_key_fails_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOLINK_API_KEY", raising=False)
    with pytest.raises(MissingAPIKeyError, match="EVOLINK_API_KEY"):
        EvolinkClient()
    monkeypatch.setenv("EVOLINK_API_KEY", "   ")
    with pytest.raises(MissingAPIKeyError):
        EvolinkClient()


async def test_environment_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_API_KEY", API_KEY)
    monkeypatch.setenv("EVOLINK_BASE_URL", "http://127.0.0.1:9999/")
    monkeypatch.setenv("EVOLINK_FILES_BASE_URL", "http://127.0.0.1:9998")
    async with EvolinkClient() as client:
        assert client.base_url == "http://127.0.0.1:9999"
        assert client.files_base_url == "http://127.0.0.1:9998"
        assert client.config.api_key.reveal() == API_KEY


async def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVOLINK_API_KEY", "sk-evo-from-env-000000")
    monkeypatch.setenv("EVOLINK_BASE_URL", "http://127.0.0.1:1")
    async with EvolinkClient(API_KEY, base_url="http://127.0.0.1:2") as client:
        assert client.base_url == "http://127.0.0.1:2"
        assert client.config.api_key.reveal() == API_KEY


def test_defaults_are_the_public_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EVOLINK_BASE_URL", raising=False)
    monkeypatch.delenv("EVOLINK_FILES_BASE_URL", raising=False)
    client = EvolinkClient(API_KEY)
    assert client.base_url == "https://api.evolink.ai"
    assert client.files_base_url == "https://files-api.evolink.ai"


async def test_caller_session_is_used_and_never_closed(mock_http: aioresponses) -> None:
    mock_http.get("https://api.test/v1/tasks/t", payload={"id": "t", "status": "pending"})
    async with aiohttp.ClientSession() as session:
        async with EvolinkClient(API_KEY, base_url="https://api.test", session=session) as client:
            assert client._transport.session is session
            await client.tasks.get("t")
        assert not session.closed


async def test_owned_session_is_closed_and_bounded() -> None:
    client = EvolinkClient(API_KEY, max_connections=7)
    session = client._transport.session
    assert isinstance(session.connector, aiohttp.TCPConnector)
    assert session.connector.limit == 7
    await client.aclose()
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        client._transport.session  # noqa: B018


async def test_with_options_shares_the_session() -> None:
    async with EvolinkClient(API_KEY, timeout=10) as client:
        patient = client.with_options(timeout=300, max_retries=7, default_headers={"X-Team": "imaging"})
        assert patient._transport.session is client._transport.session
        assert patient.config.timeout == 300
        assert patient.config.retry.max_retries == 7
        assert patient.config.default_headers == {"X-Team": "imaging"}
        assert client.config.timeout == 10
        await patient.aclose()
        assert not client._transport.session.closed


def _client_arguments() -> list[tuple[object, str]]:
    from evolink_async import Client, ClientConfig, MidjourneyClient
    from evolink_async._core.secret import Secret
    from evolink_async._protocols.evolink.protocol import EvolinkProtocol

    config = ClientConfig(api_key=Secret(API_KEY), base_url="http://127.0.0.1:9")
    return [
        (lambda: Client("evolink", config), "protocol"),  # type: ignore[arg-type]
        (lambda: Client(EvolinkProtocol(), {"api_key": API_KEY}), "config"),  # type: ignore[arg-type]
        (lambda: Client(EvolinkProtocol(), config, trace_configs=5), "trace_configs"),  # type: ignore[arg-type]
        (lambda: Client(EvolinkProtocol(), config, batch_polling="yes"), "batch_polling"),  # type: ignore[arg-type]
        (lambda: EvolinkClient(API_KEY, default_headers=5), "default_headers"),  # type: ignore[arg-type]
        (lambda: EvolinkClient(API_KEY, default_headers={"X-A": 1}), "default_headers"),  # type: ignore[dict-item]
        (lambda: EvolinkClient(API_KEY, default_headers={"X-A": "a\r\nX-Forged: 1"}), "default_headers"),
        (lambda: MidjourneyClient("", base_url="http://127.0.0.1:9", default_headers=[("a", "b")]), "default_headers"),  # type: ignore[arg-type]
        (lambda: EvolinkClient(API_KEY).with_options(default_headers="X-A: 1"), "default_headers"),
        (lambda: ClientConfig(api_key=Secret(API_KEY), default_headers={"X-A": None}), "default_headers"),  # type: ignore[dict-item]
        (lambda: MidjourneyClient("", base_url="http://127.0.0.1:9").fan_out([], normalize=True), "normalize"),
        (lambda: MidjourneyClient("", base_url="http://127.0.0.1:9").fan_out([], max_credits=3), "credits_per_task"),
        (lambda: MidjourneyClient("", base_url="http://127.0.0.1:9", poll_policy=1), "poll_policy"),  # type: ignore[arg-type]
        (lambda: Client(object(), config), "protocol"),  # type: ignore[arg-type]
        (lambda: ClientConfig(api_key=API_KEY, retry=3), "retry"),  # type: ignore[arg-type]
        (lambda: ClientConfig(api_key=API_KEY, max_response_bytes=-1), "max_response_bytes"),
        (lambda: ClientConfig(api_key=API_KEY, max_response_bytes=float("nan")), "max_response_bytes"),  # type: ignore[arg-type]
        (lambda: ClientConfig(api_key=API_KEY, auth_header=""), "auth_header"),
        (lambda: ClientConfig(api_key=API_KEY, auth_header="X-Key\r\nX-Forged"), "auth_header"),
        (lambda: ClientConfig(api_key=API_KEY, base_url="http://[::1"), "base_url"),
        (lambda: ClientConfig(api_key=API_KEY, files_base_url=5), "files_base_url"),  # type: ignore[arg-type]
        (lambda: ClientConfig(api_key=5), "api_key"),  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("case", range(len(_client_arguments())))
def test_every_client_argument_is_checked_before_anything_is_sent(case: int) -> None:
    from evolink_async import ValidationError

    build, field = _client_arguments()[case]
    with pytest.raises(ValidationError) as caught:
        build()  # type: ignore[operator]
    assert caught.value.field == field


def test_a_protocol_that_lacks_a_member_is_told_which() -> None:
    from evolink_async import Client, ClientConfig, ValidationError
    from evolink_async._protocols.evolink.protocol import EvolinkProtocol

    class Partial(EvolinkProtocol):
        def connect(self, transport, callbacks):  # type: ignore[no-untyped-def]
            return object()  # no submit, no fetch, ...

    with pytest.raises(ValidationError, match="object lacks submit, fetch, fetch_many"):
        Client(Partial(), ClientConfig(api_key=API_KEY, base_url="http://127.0.0.1:9"))


@pytest.mark.parametrize("request_value", ["hello", None, 5])
async def test_a_request_of_the_wrong_type_is_a_validation_error(request_value: object) -> None:
    from evolink_async import Imagine, ValidationError

    async with EvolinkClient(API_KEY, base_url="http://127.0.0.1:9") as client:
        for value in (request_value, Imagine(prompt="a fox")):  # another protocol's request too
            with pytest.raises(ValidationError, match="request"):
                await client.images.submit(value)  # type: ignore[arg-type]
