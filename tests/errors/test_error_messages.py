"""What an error's message says of its HTTP status."""

from __future__ import annotations

from evolink_async.errors import BadRequestError, NotFoundError


def test_a_success_status_that_means_not_found_is_not_named() -> None:
    # A Midjourney proxy answers an unknown task with 200 and an empty body.
    assert str(NotFoundError("task 123 not found", status_code=200)) == "task 123 not found"
    assert str(NotFoundError("task 123 not found", status_code=200, request_id="r1")) == (
        "task 123 not found (request_id=r1)"
    )


def test_an_error_status_is_named() -> None:
    assert str(NotFoundError("no such task", status_code=404)) == "HTTP 404: no such task"
    assert str(BadRequestError("bad", status_code=400, code="invalid_parameter", param="size")) == (
        "HTTP 400 invalid_parameter: bad (param=size)"
    )
