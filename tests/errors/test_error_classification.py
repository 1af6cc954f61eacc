"""What each error means to whoever handles it: the four questions of ``evolink_async.errors``,
answered in one place and asked by the transport, the tracker, the fan-out, the batch and the
protocols alike. Each row is one error; each column one question's answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from evolink_async import errors
from evolink_async.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BannedPromptError,
    ClientClosedError,
    InsufficientCreditsError,
    MidjourneyError,
    NotFoundError,
    NotSubmittedError,
    PermissionDeniedError,
    QueueFullError,
    RateLimitError,
    RequestTooLargeError,
    ResponseFormatError,
    ServerError,
    SubmitOutcomeUnknownError,
    UnsupportedOperationError,
    ValidationError,
)

B, F, R, M = "billed", "fatal", "refused", "missing"

# (error, the questions it answers yes to)
TABLE: list[tuple[BaseException, set[str]]] = [
    (APIConnectionError("connection reset"), {B}),
    (APITimeoutError("timed out after 60 s"), {B}),
    (SubmitOutcomeUnknownError("key-1", APIConnectionError("reset")), {B}),
    (ResponseFormatError("invalid JSON"), {B}),
    (ServerError("bad gateway", status_code=502), {B}),
    (ServerError("internal", status_code=500), {B}),
    # 501: the server may have acted (a 5xx) and it says it has no such endpoint.
    (ServerError("not implemented", status_code=501), {B, M}),
    (AuthenticationError("invalid key", status_code=401), {F}),
    (PermissionDeniedError("forbidden", status_code=403), {F}),
    (InsufficientCreditsError("no credits", status_code=402), {R}),
    (RateLimitError("slow down", status_code=429), {R}),
    (QueueFullError("queue full", code=23), {R}),
    (NotSubmittedError("credits exhausted"), {R}),
    (NotFoundError("no such route", status_code=404), {M}),
    (APIStatusError("method not allowed", status_code=405), {M}),
    (UnsupportedOperationError("cancel", "no cancel endpoint"), {M}),
    (BadRequestError("bad prompt", status_code=400), set()),
    (RequestTooLargeError("too large", status_code=413), set()),
    (APIStatusError("conflict", status_code=409), set()),
    (MidjourneyError("invalid parameter", code=3), set()),
    (BannedPromptError("banned", code=24), set()),
    (ValidationError("prompt", "must not be empty"), set()),
    (ClientClosedError("closed"), set()),
    (ValueError("not ours"), set()),
    (asyncio.CancelledError(), set()),
]

QUESTIONS: dict[str, Callable[[BaseException], bool]] = {
    B: errors.may_have_been_billed,
    F: errors.is_fatal_to_batch,
    R: errors.was_refused_for_now,
    M: errors.means_endpoint_missing,
}


def _row_id(row: tuple[BaseException, set[str]]) -> str:
    error = row[0]
    status = getattr(error, "status_code", None)
    return f"{type(error).__name__}{'-' + str(status) if status else ''}"


@pytest.mark.parametrize("question", sorted(QUESTIONS))
@pytest.mark.parametrize(("error", "yes"), TABLE, ids=[_row_id(row) for row in TABLE])
def test_each_question_answers_as_the_table_says(question: str, error: BaseException, yes: set[str]) -> None:
    assert QUESTIONS[question](error) is (question in yes)


def test_billed_and_refused_never_both() -> None:
    """A failure is either one after which the task may exist, or a sure refusal: never both (the
    batch keeps both kinds pending, but only the first may be a second task if sent again)."""
    for error, _ in TABLE:
        assert not (errors.may_have_been_billed(error) and errors.was_refused_for_now(error)), error


def test_the_questions_are_public_and_the_moved_errors_keep_their_old_import_paths() -> None:
    import evolink_async
    from evolink_async._clients.evolink import MissingAPIKeyError
    from evolink_async.batch import BatchLockedError
    from evolink_async.batch._entries import JournalError, JournalMismatchError, JournalStateError
    from evolink_async.batch._spec import BatchLockedError as spec_locked

    for name in QUESTIONS.values():
        assert name.__name__ in errors.__all__
    assert MissingAPIKeyError is errors.MissingAPIKeyError is evolink_async.MissingAPIKeyError
    assert BatchLockedError is spec_locked is errors.BatchLockedError is evolink_async.BatchLockedError
    assert JournalError is errors.JournalError is evolink_async.JournalError
    assert JournalMismatchError is errors.JournalMismatchError
    assert JournalStateError is errors.JournalStateError
    assert issubclass(JournalMismatchError, JournalError)
    assert issubclass(MissingAPIKeyError, ValueError)
    for cls in (MissingAPIKeyError, BatchLockedError, JournalError, JournalMismatchError, JournalStateError):
        assert cls.__module__ == "evolink_async.errors"


# Each question's set, as the copies that used to be spread over the package spelled it.
_COPIED_SETS = {
    "billed": {"APIConnectionError", "ServerError"},
    "fatal": {"AuthenticationError", "PermissionDeniedError"},
}


def test_no_module_keeps_its_own_copy_of_a_set() -> None:
    """The rule lives in errors.py only: a tuple of those classes, or the endpoint-missing
    statuses, anywhere else in the SDK is a copy that can drift (the CLI's message for a refused
    key names the classes for its text, not to classify, and is left out)."""
    import ast
    from pathlib import Path

    package = Path(errors.__file__).parent
    copies = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "errors.py" or "cli" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple):
                names = {element.id for element in node.elts if isinstance(element, ast.Name)}
                copies += [f"{path.name}:{node.lineno} {kind}" for kind, cls in _COPIED_SETS.items() if cls <= names]
            if isinstance(node, ast.Set | ast.Tuple):
                numbers = {element.value for element in node.elts if isinstance(element, ast.Constant)}
                if {404, 405, 501} <= numbers:
                    copies.append(f"{path.name}:{node.lineno} endpoint-missing")
    assert copies == []
