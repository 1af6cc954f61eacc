"""A resumable batch of Midjourney ``/imagine`` prompts: the batch's one pipeline (journal, resume,
downloads) over an :class:`ImagineSource` of prompts instead of a folder of image files, run with a
``MidjourneyClient``.

Each input is one prompt: ``prompt-0001``, ``prompt-0002``, ... (the N copies of ``--count N``,
or line N of a prompts file; blank lines are skipped but keep their numbers, so a key always
names the same line). Its result images are saved as ``prompt-0001.result-0.png``.

A Midjourney proxy has no idempotency key: the SDK sends it as the task's ``state``. So a run
that was killed between a submit and recording its task id finds that task in ``task/list`` by
its ``state`` before anything is submitted again (``Batch`` does so with any client that has
``find_submitted``); when the list cannot tell, the input is not submitted (it stays pending, the
run reports it) rather than paid for twice.

The same source runs a fleet batch of prompts: a planned manifest line ``{"key": ..., "model":
"midjourney-imagine", "prompt": ...}`` is one input (``ImagineSource.item_of``).

>>> async with MidjourneyClient() as mj:
...     spec = PromptSpec(prompts=PromptSource.repeat("a red fox", 4), output_dir=Path("foxes"))
...     summary = await PromptBatch(mj, spec).run()
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from .._core.checks import COUNT, SECONDS
from .._protocols.midjourney.requests import Bot, Imagine, SpeedMode
from ..errors import Remedy, ValidationError
from ._client_api import BatchClient
from ._entries import Entry
from ._manifest import IMAGINE_MODEL, ManifestInput
from ._run import Batch
from ._source import PreparedRequest, SourceContext
from ._spec import BatchSpec, UnreadableFolder

__all__ = ["IMAGINE_MODEL", "ImagineSource", "PromptBatch", "PromptInput", "PromptSource", "PromptSpec"]

_KEY_DIGITS = 4


def prompt_key(number: int) -> str:
    """The input key of prompt ``number`` (1-based): ``prompt-0001``."""
    return f"prompt-{number:0{_KEY_DIGITS}d}"


@attrs.frozen(kw_only=True)
class PromptInput:
    """One input of a prompt batch: its key and its prompt."""

    key: str
    prompt: str


@attrs.frozen(kw_only=True)
class PromptSource:
    """Where the prompts come from: one prompt ``count`` times, or the lines of a file (read lazily).

    >>> PromptSource.repeat("a red fox", 6)
    >>> PromptSource.from_file(Path("prompts.txt"))
    """

    prompt: str | None = None
    count: int = 1
    path: Path | None = None

    @classmethod
    def repeat(cls, prompt: str, count: int) -> PromptSource:
        return cls(prompt=prompt, count=COUNT.check("count", count))

    @classmethod
    def from_file(cls, path: str | Path) -> PromptSource:
        return cls(path=Path(path))

    def __iter__(self) -> Iterator[PromptInput]:
        """The inputs in order; a file is read one line at a time (call it off the event loop)."""
        if self.path is None:
            for number in range(1, self.count + 1):
                yield PromptInput(key=prompt_key(number), prompt=self.prompt or "")
            return
        with self.path.open(encoding="utf-8", errors="surrogateescape") as lines:  # a bad line fails alone
            for number, line in enumerate(lines, start=1):
                text = line.strip()
                if text:
                    yield PromptInput(key=prompt_key(number), prompt=text)


@attrs.frozen(kw_only=True)
class PromptSpec:
    """One prompt batch: every prompt -> its images under ``output_dir``, journalled there."""

    prompts: PromptSource
    output_dir: Path = attrs.field(converter=Path)
    bot: Bot = Bot.MID_JOURNEY
    mode: SpeedMode | None = None
    max_in_flight: int = attrs.field(default=4, validator=COUNT.validator())
    timeout: float | None = attrs.field(default=None, validator=SECONDS.optional())
    retry_failed: bool = False
    #: As ``BatchSpec.new_journal``: start a new journal when the folder's one is lost.
    new_journal: bool = False

    def batch_spec(self) -> BatchSpec:
        """The folder batch's spec this batch runs under: its journal meta names the command, the
        bot and the mode (the output folder stands in for the input folder, which has none)."""
        params: dict[str, Any] = {"bot": self.bot.value, "mode": self.mode.value if self.mode is not None else None}
        return BatchSpec(
            model=IMAGINE_MODEL, model_params=params, input_dir=self.output_dir, output_dir=self.output_dir,
            max_in_flight=self.max_in_flight, timeout=self.timeout, retry_failed=self.retry_failed,
            new_journal=self.new_journal,
        )  # fmt: skip

    def source(self) -> ImagineSource:
        """The batch's inputs: these prompts, each an ``Imagine`` of this bot and mode."""
        return ImagineSource(self.prompts, bot=self.bot, mode=self.mode)


def _content(prompt: str) -> str:
    # In the fingerprint, so an edited line is a new input (submitted again), not a resume.
    return "prompt:" + hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


class ImagineSource:
    """Midjourney ``/imagine`` prompts as a batch's inputs (an ``InputSource``, and a fleet's ``PlannedSource``).

    Each input is a :class:`PromptInput`; its stored body is ``{"prompt": ...}``: the bot and the
    mode are in the journal's meta (a one-machine run) or given to every worker alike (a fleet),
    so a resume cannot change them.

    >>> await Batch(mj, spec.batch_spec(), source=ImagineSource(PromptSource.repeat("a fox", 4))).run()
    """

    def __init__(self, prompts: PromptSource | None = None, *, bot: Bot = Bot.MID_JOURNEY,
                 mode: SpeedMode | None = None) -> None:  # fmt: skip
        self._prompts = prompts
        self._bot = bot
        self._mode = mode

    async def check(self) -> None:
        path = self._prompts.path if self._prompts is not None else None
        if path is not None and not await anyio.to_thread.run_sync(path.is_file):
            raise ValidationError("prompts", f"{path} is not a file")

    def inputs(self, *, on_unreadable: Callable[[UnreadableFolder], None] | None = None) -> Iterator[PromptInput]:
        return iter(self._prompts) if self._prompts is not None else iter(())

    def key_of(self, item: PromptInput) -> str:
        return item.key

    async def inspect(self, item: PromptInput) -> tuple[str | None, str | None]:
        if any("\ud800" <= ch <= "\udfff" for ch in item.prompt):
            return "the line is not valid UTF-8", None
        try:
            self._imagine(item.prompt)
        except ValidationError as exc:
            return str(exc), None
        return None, _content(item.prompt)

    async def check_request(self, item: PromptInput) -> None:
        self._imagine(item.prompt)

    def item_of(self, line: ManifestInput) -> PromptInput:
        # The key comes first in the message: it says what the line is, and what runs it.
        if line.model != IMAGINE_MODEL:
            raise ValidationError(line.key, f"this manifest line is an image request (model {line.model!r}), not a "
                                  f"Midjourney prompt: run its batch with {Remedy.REQUEST_SOURCE}",
                                  remedy=Remedy.REQUEST_SOURCE)  # fmt: skip
        if line.image_urls:
            raise ValidationError(line.key, f"this manifest line has image_urls: a Midjourney prompt line "
                                  f"(model {IMAGINE_MODEL!r}) has a prompt only")  # fmt: skip
        prompt = PromptInput(key=line.key, prompt=line.prompt or "")
        self._imagine(prompt.prompt)
        return prompt

    def _imagine(self, prompt: str) -> Imagine:
        return Imagine(prompt=prompt, bot=self._bot, mode=self._mode)

    async def prepare(self, item: PromptInput, entry: Entry, context: SourceContext) -> PreparedRequest:
        return PreparedRequest(body={"prompt": item.prompt})

    def request_from_body(self, body: Mapping[str, Any]) -> Imagine:
        return self._imagine(str(body.get("prompt", "")))


class PromptBatch(Batch):
    """Runs a :class:`PromptSpec` with a ``MidjourneyClient`` (any client whose protocol submits an
    ``Imagine``): a :class:`Batch` over its prompts."""

    def __init__(self, client: BatchClient, spec: PromptSpec, **options: Any) -> None:
        super().__init__(client, spec.batch_spec(), source=spec.source(), **options)
