"""Every documented input rule, both sides of each limit, raising ValidationError before any I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

import evolink_async as evolink
from evolink_async import ImageRequest, QwenImageEdit, RemoveBackground, Retexture, ValidationError

URL = "https://example.com/photo.jpg"


def rejects(field: str, rule_part: str, build: object) -> None:
    assert callable(build)
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field
    assert rule_part in info.value.rule
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"{field}: ")


class TestRetexture:
    def test_valid_request_builds_the_wire_body(self) -> None:
        request = Retexture(prompt="cyberpunk neon", image_urls=[URL], speed="turbo")
        assert request.to_body() == {
            "model": "mj-v7-retexture",
            "prompt": "cyberpunk neon",
            "image_urls": [URL],
            "model_params": {"speed": "turbo"},
        }
        assert request.speed is evolink.Speed.TURBO

    def test_prompt_required(self) -> None:
        rejects("prompt", "required", lambda: Retexture(prompt="  ", image_urls=[URL]))

    def test_prompt_length_limit_both_sides(self) -> None:
        Retexture(prompt="x" * 8192, image_urls=[URL])
        rejects("prompt", "at most 8192", lambda: Retexture(prompt="x" * 8193, image_urls=[URL]))

    def test_exactly_one_image(self) -> None:
        rejects("image_urls", "at least 1", lambda: Retexture(prompt="p", image_urls=[]))
        rejects("image_urls", "at most 1", lambda: Retexture(prompt="p", image_urls=[URL, URL]))

    @pytest.mark.parametrize("speed", ["fast", "turbo"])
    def test_speeds_accepted(self, speed: str) -> None:
        assert Retexture(prompt="p", image_urls=[URL], speed=speed).to_body()["model_params"] == {"speed": speed}

    def test_draft_speed_rejected_for_retexture(self) -> None:
        rejects("speed", "accepts speed fast, turbo", lambda: Retexture(prompt="p", image_urls=[URL], speed="draft"))

    def test_unknown_speed_rejected(self) -> None:
        rejects("speed", "one of draft, fast, turbo", lambda: Retexture(prompt="p", image_urls=[URL], speed="slow"))

    def test_no_model_params_without_speed(self) -> None:
        assert "model_params" not in Retexture(prompt="p", image_urls=[URL]).to_body()


class TestRemoveBackground:
    def test_body_has_no_prompt(self) -> None:
        assert RemoveBackground(image_urls=[URL]).to_body() == {"model": "mj-v7-remove-bg", "image_urls": [URL]}

    def test_prompt_forbidden_via_generic_request(self) -> None:
        rejects("prompt", "not accepted", lambda: ImageRequest(model="mj-v7-remove-bg", prompt="x", image_urls=[URL]))

    def test_a_prompt_is_refused_naming_the_rule(self) -> None:
        # Was a TypeError ("unexpected keyword argument"); the README promises the rule by name.
        rejects("prompt", "not accepted", lambda: RemoveBackground(prompt="x", image_urls=[URL]))

    @pytest.mark.parametrize("suffix", [".png", ".gif", ".webp", ".jpg", ".jpeg", ".JPG"])
    def test_allowed_formats(self, suffix: str) -> None:
        RemoveBackground(image_urls=[f"https://example.com/a{suffix}?sig=1"])

    @pytest.mark.parametrize("suffix", [".bmp", ".tiff", ".svg"])
    def test_other_formats_rejected(self, suffix: str) -> None:
        rejects("image_urls[0]", "accepts", lambda: RemoveBackground(image_urls=[f"https://example.com/a{suffix}"]))

    def test_url_without_extension_is_accepted(self) -> None:
        RemoveBackground(image_urls=["https://files.evolink.ai/api/v1/files/download/file_abc123"])

    def test_local_path_suffix_checked(self) -> None:
        RemoveBackground(image_urls=[Path("photo.png")])
        rejects("image_urls[0]", "accepts", lambda: RemoveBackground(image_urls=[Path("photo.bmp")]))

    def test_at_most_one_image(self) -> None:
        rejects("image_urls", "at most 1", lambda: RemoveBackground(image_urls=[URL, URL]))
        rejects("image_urls", "at least 1", lambda: RemoveBackground(image_urls=[]))


class TestQwenImageEdit:
    def test_prompt_limit_both_sides(self) -> None:
        QwenImageEdit(prompt="x" * 1000, image_urls=[URL])
        rejects("prompt", "at most 1000", lambda: QwenImageEdit(prompt="x" * 1001, image_urls=[URL]))

    def test_prompt_required(self) -> None:
        rejects("prompt", "required", lambda: QwenImageEdit(prompt="", image_urls=[URL]))

    def test_image_count_both_sides(self) -> None:
        QwenImageEdit(prompt="p", image_urls=[URL] * 3)
        rejects("image_urls", "at most 3", lambda: QwenImageEdit(prompt="p", image_urls=[URL] * 4))
        rejects("image_urls", "at least 1", lambda: QwenImageEdit(prompt="p", image_urls=[]))

    @pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tiff"])
    def test_allowed_formats(self, suffix: str) -> None:
        QwenImageEdit(prompt="p", image_urls=[f"https://example.com/a{suffix}"])

    def test_gif_rejected(self) -> None:
        rejects("image_urls[1]", "accepts", lambda: QwenImageEdit(prompt="p", image_urls=[URL, "https://e.com/a.gif"]))


class TestImageUrls:
    @pytest.mark.parametrize("url", ["ftp://example.com/a.png", "file:///etc/passwd", "javascript:alert(1)", "a.png"])
    def test_scheme_must_be_http(self, url: str) -> None:
        rejects("image_urls[0]", "http(s)", lambda: QwenImageEdit(prompt="p", image_urls=[url]))

    def test_host_required(self) -> None:
        rejects("image_urls[0]", "host", lambda: QwenImageEdit(prompt="p", image_urls=["https:///a.png"]))

    def test_single_string_is_not_split_into_characters(self) -> None:
        rejects("image_urls", "list", lambda: QwenImageEdit(prompt="p", image_urls=URL))  # type: ignore[arg-type]

    def test_non_string_item(self) -> None:
        rejects("image_urls[0]", "URL string", lambda: ImageRequest(model="x", image_urls=[42]))  # type: ignore[list-item]

    def test_plain_http_is_allowed_for_inputs(self) -> None:
        QwenImageEdit(prompt="p", image_urls=["http://example.com/a.png"])


class TestCallbackUrl:
    def request(self, url: str) -> Retexture:
        return Retexture(prompt="p", image_urls=[URL], callback_url=url)

    def test_https_public_host_accepted(self) -> None:
        assert self.request("https://hooks.example.com/evolink?secret=abc").to_body()["callback_url"].startswith("https")

    def test_http_rejected(self) -> None:
        rejects("callback_url", "https", lambda: self.request("http://hooks.example.com/x"))

    @pytest.mark.parametrize(
        "host",
        [
            "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.1.1",
            "0.0.0.0", "[::1]", "[::]", "[fe80::1]", "[fc00::1]", "[::ffff:127.0.0.1]", "[::ffff:10.0.0.1]",
            "100.64.0.1", "localhost", "api.localhost",
        ],
    )
    def test_private_and_loopback_rejected(self, host: str) -> None:
        rejects("callback_url", "must not point", lambda: self.request(f"https://{host}/hook"))

    @pytest.mark.parametrize("host", ["172.15.0.1", "172.32.0.1", "8.8.8.8", "[2606:4700::1111]"])
    def test_public_neighbours_accepted(self, host: str) -> None:
        self.request(f"https://{host}/hook")

    def test_length_limit_both_sides(self) -> None:
        base = "https://hooks.example.com/"
        self.request(base + "a" * (2048 - len(base)))
        rejects("callback_url", "at most 2048", lambda: self.request(base + "a" * (2049 - len(base))))


class TestImageRequest:
    def test_generic_model_body(self) -> None:
        request = ImageRequest(
            model="gpt-image-1.5", prompt="a lighthouse", model_params={"quality": "high"}, extra={"size": "1024x1024"}
        )
        assert request.to_body() == {
            "model": "gpt-image-1.5",
            "prompt": "a lighthouse",
            "model_params": {"quality": "high"},
            "size": "1024x1024",
        }

    def test_known_model_rules_apply(self) -> None:
        rejects("prompt", "at most 1000", lambda: ImageRequest(model="qwen-image-edit", prompt="x" * 1001, image_urls=[URL]))
        rejects("speed", "accepts speed", lambda: ImageRequest(model="mj-v7-retexture", prompt="p", image_urls=[URL],
                                                               model_params={"speed": "draft"}))
        ImageRequest(model="mj-v7", prompt="p", model_params={"speed": "draft"})

    def test_extra_cannot_override_fields(self) -> None:
        rejects("extra['model']", "override", lambda: ImageRequest(model="x", extra={"model": "y"}))

    def test_model_required(self) -> None:
        rejects("model", "non-empty", lambda: ImageRequest(model=" "))

    def test_local_paths_must_be_uploaded_before_to_body(self) -> None:
        request = QwenImageEdit(prompt="p", image_urls=[Path("a.png")])
        rejects("image_urls", "uploaded first", request.to_body)
        uploaded = request.with_image_urls(("https://files.example/a.png",))
        assert uploaded.to_body()["image_urls"] == ["https://files.example/a.png"]

    def test_requests_are_immutable(self) -> None:
        request = QwenImageEdit(prompt="p", image_urls=[URL])
        with pytest.raises(AttributeError):
            request.prompt = "q"  # type: ignore[misc]


class TestFromBody:
    def test_round_trip(self) -> None:
        for request in (
            Retexture(prompt="p", image_urls=[URL], speed="fast", callback_url="https://hooks.example.com/x"),
            QwenImageEdit(prompt="p", image_urls=[URL, URL]),
            ImageRequest(model="gpt-image-1.5", prompt="p", extra={"size": "1024x1024", "n": 2}),
        ):
            body = request.to_body()
            assert ImageRequest.from_body(body).to_body() == body

    def test_stored_body_is_validated_again(self) -> None:
        rejects("prompt", "at most 1000",
                lambda: ImageRequest.from_body({"model": "qwen-image-edit", "prompt": "x" * 1001, "image_urls": [URL]}))
        rejects("image_urls", "array", lambda: ImageRequest.from_body({"model": "x", "image_urls": URL}))
        rejects("model", "required", lambda: ImageRequest.from_body({"prompt": "p"}))
