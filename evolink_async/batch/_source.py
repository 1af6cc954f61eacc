"""Where a batch's inputs come from, and how each becomes the request a fan-out submits.

A batch is configuration: one per-input pipeline (journal, submit, watch, save results) run over
an :class:`InputSource`. The SDK has three: the images of a folder (``FolderSource``, the default
of :class:`~evolink_async.batch.Batch`), Midjourney prompts (``ImagineSource``, what
``PromptBatch`` runs) and the lines of a manifest (``ManifestSource``, also what a fleet
``Worker`` makes of its claimed lines). A source of your own needs only these few methods::

    class Words:
        async def check(self) -> None: ...
        def inputs(self, *, on_unreadable=None): return iter(["fox", "owl"])
        def key_of(self, item): return item
        async def inspect(self, item): return None, item          # (problem, content signature)
        async def check_request(self, item): ...
        async def prepare(self, item, entry, context): return PreparedRequest(body={"text": item})
        def request_from_body(self, body): return Shout(body["text"])

    summary = await Batch(client, spec, source=Words()).run()

What a source does *not* decide stays with the pipeline, the same for every source: the input key
rules, the journal's reservation, the budget, the settling of a submit whose answer was lost (a
property of the client's protocol, not of where inputs come from), downloads and outcomes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import attrs

from ..errors import Remedy
from ._entries import Entry
from ._journal_uploads import JournalUpload
from ._manifest import ManifestInput
from ._spec import BatchEvent, FailedInput, UnreadableFolder

__all__ = [
    "OUTSIDE_LINK", "InputSource", "PlannedSource", "PreparedRequest", "RequestMaker", "SourceContext", "Uploader",
    "invalid_input", "key_problem",
]  # fmt: skip

ItemT = TypeVar("ItemT")
ItemT_contra = TypeVar("ItemT_contra", contravariant=True)


class Uploader(Protocol):
    """Uploads a local image for one input (the Files API within the key's quota), reusing the
    input's live upload when it has one; ``taken``: files already used for other images of it."""

    async def file_for(self, key: str, entry: Entry, source: Callable[[], Awaitable[Path]], *,
                       taken: Collection[str] = ()) -> JournalUpload: ...  # fmt: skip


@attrs.frozen(kw_only=True)
class SourceContext:
    """What a run lends a source while it prepares one input."""

    #: Where local images go; None when the client has no Files API (a source that needs one refuses).
    uploads: Uploader | None
    emit: Callable[[BatchEvent], None]
    #: A folder for temporary copies (normalized images), next to the journal.
    scratch_dir: Path


@attrs.frozen(kw_only=True)
class PreparedRequest:
    """An input made ready to submit: the exact body the journal stores before the submit (a resume
    sends it again, byte for byte), and the files uploaded for it (recorded with the body)."""

    body: dict[str, object]
    uploads: tuple[JournalUpload, ...] = ()


class RequestMaker(Protocol[ItemT_contra]):
    """The part of a source both the one-machine batch and a fleet worker use: an input -> a body -> a request."""

    async def prepare(self, item: ItemT_contra, entry: Entry, context: SourceContext) -> PreparedRequest:
        """The body of a first submit of ``item`` (uploading its local images); raises ``EvolinkError``
        (``ValidationError`` for a local rule: nothing was sent) or ``OSError``."""
        ...

    def request_from_body(self, body: Mapping[str, Any]) -> Any:
        """The request the fan-out submits, from the body the journal stored."""
        ...


class InputSource(RequestMaker[ItemT], Protocol[ItemT]):
    """Inputs a one-machine :class:`~evolink_async.batch.Batch` finds itself (a folder, prompts, a manifest)."""

    async def check(self) -> None:
        """Refuse inputs that cannot be found at all (``ValidationError``), before the journal is opened."""
        ...

    def inputs(self, *, on_unreadable: Callable[[UnreadableFolder], None] | None = None) -> Iterator[ItemT]:
        """The inputs, lazily: advanced in a worker thread, one at a time, and walked a second
        time to count them (``on_unreadable`` None: that count, which reports nothing)."""
        ...

    def key_of(self, item: ItemT) -> str:
        """The input's stable key in the journal (and the stem of its result files)."""
        ...

    async def inspect(self, item: ItemT) -> tuple[str | None, str | None]:
        """``(problem, content)``: why the input may not be used, or a signature of its content (a
        changed one is a new input, submitted again); may raise ``OSError``."""
        ...

    async def check_request(self, item: ItemT) -> None:
        """The local rules the input's request must meet, checked before anything is read or sent
        (and by the dry run, which sends nothing); raises ``ValidationError`` or ``OSError``."""
        ...


class PlannedSource(RequestMaker[ItemT], Protocol[ItemT]):
    """What a fleet :class:`~evolink_async.batch.Worker` makes of the manifest lines it claims."""

    def item_of(self, line: ManifestInput) -> ItemT:
        """The input a planned line stands for (``ValidationError`` when this source cannot run it)."""
        ...


def key_problem(key: str) -> str | None:
    """Why a key cannot be an input's key, or None (the rule for every source).

    C0/C1 controls and DEL (``Cc``), line and paragraph separators forge terminal lines and break
    multipart headers; lone surrogates (bytes that are not UTF-8) cannot be stored or sent.
    """
    categories = {unicodedata.category(ch) for ch in key}
    if categories & {"Cc", "Zl", "Zp"}:
        return "the file name contains control characters; rename the file"
    if "Cs" in categories:
        return "the file name is not valid UTF-8; rename the file"
    return None


#: The problem of a link out of the input folder: ``follow_symlinks=True`` takes it.
OUTSIDE_LINK = f"is a symbolic link to a file outside the input folder ({Remedy.FOLLOW_SYMLINKS} takes it)"


def invalid_input(key: str, problem: str) -> FailedInput:
    """An input refused by a local check (``key_problem``, a source's ``inspect``), for the run and the plan."""
    remedy = Remedy.FOLLOW_SYMLINKS if problem == OUTSIDE_LINK else None
    return FailedInput(key=key, code="invalid_input", message=problem, remedy=remedy)
