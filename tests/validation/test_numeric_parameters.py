"""Every numeric parameter of every library entry point refuses NaN, infinities, out-of-range
values, bools and strings with a ``ValidationError`` naming the parameter, before anything runs.

The attrs option classes are walked field by field (a field added later is tested too); the
functions and constructors are listed with the parameters their signatures declare numeric.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

import evolink_async as evolink
from evolink_async import BatchSpec, ClientConfig, PollPolicy, RetryPolicy, ValidationError
from evolink_async._core.secret import Secret
from evolink_async.batch._prompts import PromptSource, PromptSpec
from evolink_async.batch._worker import WorkerOptions

KEY = "sk-evo-TESTKEY0123456789abcdef"
#: 10**400 is beyond any float: not a finite number, and beyond every count.
BAD: list[Any] = [math.nan, math.inf, -math.inf, -1, True, "5", 10**400]

OPTION_CLASSES: dict[type, Callable[..., Any]] = {
    WorkerOptions: WorkerOptions,
    BatchSpec: lambda **kw: BatchSpec(model="qwen-image-edit", prompt="p", input_dir=Path("in"),
                                      output_dir=Path("out"), **kw),
    PromptSpec: lambda **kw: PromptSpec(prompts=PromptSource.repeat("a fox", 1), output_dir=Path("out"), **kw),
    PollPolicy: PollPolicy,
    RetryPolicy: RetryPolicy,
    ClientConfig: lambda **kw: ClientConfig(api_key=Secret(KEY), **kw),
}


def _numeric(annotation: object) -> bool:
    text = str(annotation)
    return any(word in text.replace("|", " ").split() for word in ("int", "float"))


def _fields() -> list[Any]:
    cases = []
    for cls, make in OPTION_CLASSES.items():
        for field in attrs.fields(cls):
            if _numeric(field.type) and field.name != "max_response_bytes":
                cases += [pytest.param(make, field.name, value, id=f"{cls.__name__}.{field.name}={value!r:.12}")
                          for value in BAD]  # fmt: skip
    return cases


def test_the_option_classes_have_the_numeric_fields_this_test_expects() -> None:
    found = {f"{cls.__name__}.{f.name}" for cls in OPTION_CLASSES for f in attrs.fields(cls) if _numeric(f.type)}
    assert {"WorkerOptions.max_credits", "WorkerOptions.lease", "WorkerOptions.claim_size", "WorkerOptions.max_held",
            "WorkerOptions.poll_interval", "BatchSpec.max_credits", "BatchSpec.timeout", "PromptSpec.timeout",
            "PromptSpec.max_in_flight", "RetryPolicy.max_retries", "ClientConfig.timeout"} <= found  # fmt: skip


@pytest.mark.parametrize(("make", "name", "value"), _fields())
def test_an_option_field_refuses_a_bad_number_naming_itself(make: Callable[..., Any], name: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        make(**{name: value})
    assert info.value.field == name


def _signature_params(function: Callable[..., Any]) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if _numeric(p.annotation)]


CLIENTS = {"EvolinkClient": lambda **kw: evolink.EvolinkClient(KEY, base_url="http://127.0.0.1:9", **kw),
           "MidjourneyClient": lambda **kw: evolink.MidjourneyClient(KEY, base_url="http://127.0.0.1:9", **kw),
           "CallbackReceiver": lambda **kw: evolink.CallbackReceiver("https://hooks.example.com/x", **kw)}  # fmt: skip
CONSTRUCTED = {"EvolinkClient": evolink.EvolinkClient.__init__, "MidjourneyClient": evolink.MidjourneyClient.__init__,
               "CallbackReceiver": evolink.CallbackReceiver.__init__}  # fmt: skip


@pytest.mark.parametrize(
    ("name", "param", "value"),
    [pytest.param(name, param, value, id=f"{name}.{param}={value!r:.12}")
     for name, init in CONSTRUCTED.items() for param in _signature_params(init) for value in BAD],
)  # fmt: skip
def test_a_constructor_refuses_a_bad_number_naming_it(name: str, param: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        CLIENTS[name](**{param: value})
    assert info.value.field == param


@pytest.mark.parametrize("value", BAD, ids=repr)
def test_prompt_source_repeat_refuses_a_bad_count(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        PromptSource.repeat("a fox", value)
    assert info.value.field == "count"


@pytest.mark.parametrize("value", [*BAD, 0, 1e-9, 1e9], ids=repr)
def test_poll_policy_scaled_refuses_a_factor_out_of_range(value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        PollPolicy().scaled(value)
    assert info.value.field == "factor"


FAN_OUT_PARAMS = _signature_params(evolink.EvolinkClient.fan_out)


@pytest.mark.parametrize(
    ("param", "value"),
    [pytest.param(p, v, id=f"{p}={v!r:.12}") for p in FAN_OUT_PARAMS for v in BAD],
)  # fmt: skip
async def test_fan_out_refuses_a_bad_number_naming_it(param: str, value: Any) -> None:
    extra = {"credits_per_task": 1.0} if param == "max_credits" else {"max_credits": 10.0} \
        if param == "credits_per_task" else {}  # fmt: skip
    async with evolink.EvolinkClient(KEY, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ValidationError) as info:
            async with client.fan_out([], **{param: value, **extra}):
                pass
    assert info.value.field == param


@pytest.mark.parametrize("value", BAD, ids=repr)
async def test_wait_and_stream_refuse_a_bad_timeout(value: Any) -> None:
    async with evolink.EvolinkClient(KEY, base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ValidationError) as info:
            await client.tasks.wait("task-1", timeout=value)
        assert info.value.field == "timeout"
        with pytest.raises(ValidationError) as info:
            async with client.tasks.stream("task-1", timeout=value):
                pass
        assert info.value.field == "timeout"
