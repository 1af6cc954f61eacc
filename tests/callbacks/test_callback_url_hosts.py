"""callback_url host forms that reach loopback or private hosts are refused."""

from __future__ import annotations

import pytest

import evolink_async as evolink

IMAGE = "https://example.com/in.png"
PUBLIC = "https://hooks.example.com/x"

HOSTILE = {
    "decimal-ipv4": "https://2130706433/",
    "hex-ipv4": "https://0x7f000001/",
    "octal-ipv4": "https://017700000001/",
    "short-ipv4": "https://127.1/",
    "zero": "https://0/",
    "localhost-trailing-dot": "https://localhost./",
    "fullwidth-localhost": "https://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
    "ideographic-dots": "https://127\u30020\u30020\u30021/",
    "nat64": "https://[64:ff9b::7f00:1]/",
    "ipv4-compatible-ipv6": "https://[::127.0.0.1]/",
    "port-out-of-range": "https://hooks.example.com:70000/x",
    "space-in-host": "https://hooks example.com/x",
    "backslash-userinfo": "https://127.0.0.1\\@example.com/",
}


@pytest.mark.parametrize("url", list(HOSTILE.values()), ids=list(HOSTILE))
def test_callback_url_host_forms_that_reach_private_hosts_are_refused(url: str) -> None:
    """Item 17: each loopback/private/malformed host form raises ValidationError naming
    callback_url; a valid public https URL is still accepted (checked first, as a control)."""
    accepted = evolink.QwenImageEdit(prompt="x", image_urls=[IMAGE], callback_url=PUBLIC)
    assert accepted.callback_url == PUBLIC
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.QwenImageEdit(prompt="x", image_urls=[IMAGE], callback_url=url)
    assert "callback_url" in str(exc.value)


@pytest.mark.parametrize("url", ["https://2130706433/", "https://[::127.0.0.1]/", "https://localhost./"])
def test_generic_image_request_refuses_the_same_callback_hosts(url: str) -> None:
    """Item 17: the generic ImageRequest applies the same callback_url rules."""
    with pytest.raises(evolink.ValidationError) as exc:
        evolink.ImageRequest(model="some-other-model", prompt="x", image_urls=[IMAGE], callback_url=url)
    assert "callback_url" in str(exc.value)
