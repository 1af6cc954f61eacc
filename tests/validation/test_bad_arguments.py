"""Bad constructor and option arguments across the SDK are ValidationErrors naming their field."""

from __future__ import annotations

import math
from typing import Any

import pytest

import evolink_async as evolink
from evolink_async.sandbox import Faults, Sandbox
from tests.helpers.hostile import API_KEY


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: evolink.EvolinkClient(API_KEY, base_url=""), "base_url"),
        (lambda: evolink.EvolinkClient(API_KEY, files_base_url=""), "files_base_url"),
        (lambda: evolink.EvolinkClient(API_KEY, timeout=10**400), "timeout"),
        (lambda: evolink.MidjourneyClient(API_KEY, base_url="https://mj.example", path_prefix=None), "path_prefix"),
        (lambda: evolink.PollPolicy().scaled("2"), "factor"),
        (lambda: evolink.PollPolicy().scaled(math.nan), "factor"),
        (lambda: evolink.RemoveBackground(prompt="x", image_urls=["https://e.com/a.png"]), "prompt"),
        (lambda: evolink.ImageRequest(model="z-image-turbo", model_params={"x": math.nan}), "model_params"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   max_in_flight=math.nan), "max_in_flight"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir=None, output_dir="o"), "input_dir"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   max_credits=math.nan), "max_credits"),
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt="p", input_dir="i", output_dir="o",
                                   recursive=1), "recursive"),
        # Found by a new user's trial (session 8): each was accepted, or raised a bare TypeError/ValueError.
        (lambda: evolink.BatchSpec(model="qwen-image-edit", prompt=" ", input_dir="i", output_dir="o"), "prompt"),
        (lambda: evolink.RetryPolicy(initial_delay=10, max_delay=1), "initial_delay"),
        (lambda: evolink.PollPolicy(default_estimated_time=5000), "default_estimated_time"),
        (lambda: evolink.MidjourneyClient(API_KEY, base_url="https://mj.example", auth=[]), "auth"),
        (lambda: Sandbox(time_scale=""), "time_scale"),
        (lambda: Sandbox(time_scale=True), "time_scale"),
        (lambda: Sandbox(seed=math.nan), "seed"),
        (lambda: Sandbox(seed=[]), "seed"),
        (lambda: Faults(server_error_rate=""), "server_error_rate"),
        (lambda: Faults(stuck_rate=math.nan), "stuck_rate"),
    ],
)
def test_more_bad_arguments_are_validation_errors(build: Any, field: str) -> None:
    with pytest.raises(evolink.ValidationError) as info:
        build()
    assert info.value.field == field
