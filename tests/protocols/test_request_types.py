"""What Evolink's submit takes as a request: the built-in types, or any object with the ``Request``
protocol's members (checked after the built-in classes, which skip the protocol's slower check)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from evolink_async import EvolinkClient, ValidationError
from evolink_async._models.requests import ImageInput, Request, is_request
from evolink_async.sandbox import Sandbox

Build = Callable[..., EvolinkClient]


class OwnRequest:
    """A caller's own request type: no base class, just the protocol's members."""

    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        self.image_urls: tuple[ImageInput, ...] = ("https://example.com/park.png",)

    @property
    def model(self) -> str:
        return "qwen-image-edit"

    def to_body(self) -> dict[str, Any]:
        return {"model": self.model, "prompt": self.prompt, "image_urls": list(self.image_urls)}

    def with_image_urls(self, image_urls: tuple[ImageInput, ...]) -> Request:
        return self


class NoBody:
    """Has a model and images, but no ``to_body``: not a request."""

    model = "qwen-image-edit"
    image_urls = ("https://example.com/park.png",)


def test_the_protocol_decides_for_types_of_the_callers_own() -> None:
    assert is_request(OwnRequest("autumn"))
    assert not is_request(NoBody())


async def test_a_request_of_the_callers_own_type_is_submitted_as_it_describes_itself(
    evolink_sandbox: Sandbox, scaled_client: Build
) -> None:
    async with scaled_client(evolink_sandbox) as client:
        task = await client.images.submit(OwnRequest("autumn"))
        assert task.model == "qwen-image-edit"
        with pytest.raises(ValidationError, match="request"):
            await client.images.submit(NoBody())  # type: ignore[arg-type]
    assert evolink_sandbox.ledger.requests["POST /v1/images/generations"] == 1
