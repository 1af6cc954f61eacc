"""A resumable batch of Midjourney ``/imagine`` prompts: the folder batch's journal, resume and
downloads, with prompts instead of image files and a ``MidjourneyClient`` instead of Evolink.

Each input is one prompt: ``prompt-0001``, ``prompt-0002``, ... (the N copies of ``--count N``,
or line N of a prompts file; blank lines are skipped but keep their numbers, so a key always
names the same line). Its result images are saved as ``prompt-0001.result-0.png``.

A Midjourney proxy has no idempotency key: the SDK sends it as the task's ``state``. So a run
that was killed between a submit and recording its task id finds that task in ``task/list`` by
its ``state`` before anything is submitted again; when the list cannot tell, the input is not
submitted (it stays pending, the run reports it) rather than paid for twice.

>>> async with MidjourneyClient() as mj:
...     spec = PromptSpec(prompts=PromptSource.repeat("a red fox", 4), output_dir=Path("foxes"))
...     summary = await PromptBatch(mj, spec).run()
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
import attrs

from .._core.checks import COUNT, SECONDS
from .._models.requests import Request
from .._protocols.midjourney.requests import Bot, Imagine, SpeedMode
from ..errors import EvolinkError, SubmitOutcomeUnknownError, ValidationError
from ._entries import Entry, EntryStatus
from ._run import Batch
from ._spec import BatchSpec

if TYPE_CHECKING:
    from .._clients.midjourney import MidjourneyClient

__all__ = ["IMAGINE_MODEL", "PromptBatch", "PromptInput", "PromptSource", "PromptSpec"]

#: The ``model`` a prompt batch's journal records (another command's journal is refused).
IMAGINE_MODEL = "midjourney-imagine"
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


def _content(prompt: str) -> str:
    # In the fingerprint, so an edited line is a new input (submitted again), not a resume.
    return "prompt:" + hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()


class PromptBatch(Batch):
    """Runs a :class:`PromptSpec` with a ``MidjourneyClient``; see the module docstring."""

    def __init__(self, client: MidjourneyClient, spec: PromptSpec, **options: Any) -> None:
        super().__init__(client, spec.batch_spec(), **options)
        self._mj = client
        self._prompt_spec = spec
        #: Keys whose earlier submit could not be settled: not sent again this run.
        self._unsettled: dict[str, EvolinkError] = {}

    async def _check_inputs(self) -> None:
        path = self._prompt_spec.prompts.path
        if path is not None and not await anyio.to_thread.run_sync(path.is_file):
            raise ValidationError("prompts", f"{path} is not a file")

    def _inputs(self, *, counting: bool = False) -> Iterator[Any]:
        return iter(self._prompt_spec.prompts)

    def _key(self, path: Any) -> str:
        return cast(PromptInput, path).key

    async def _inspect(self, path: Any) -> tuple[str | None, str | None]:
        prompt = cast(PromptInput, path).prompt
        if any("\ud800" <= ch <= "\udfff" for ch in prompt):
            return "the line is not valid UTF-8", None
        try:
            self._imagine(prompt)
        except ValidationError as exc:
            return str(exc), None
        return None, _content(prompt)

    def _imagine(self, prompt: str) -> Imagine:
        return Imagine(prompt=prompt, bot=self._prompt_spec.bot, mode=self._prompt_spec.mode)

    async def _request_body(self, path: Any, key: str, entry: Entry) -> dict[str, object]:
        if key in self._unsettled:  # transient: the entry stays pending, a later run looks again
            raise SubmitOutcomeUnknownError(entry.idempotency_key, self._unsettled[key])
        body = {"prompt": cast(PromptInput, path).prompt}
        stored: dict[str, object] = json.loads(await self.journal.record_request(key, json.dumps(body)))
        return stored

    def _request_from_body(self, body: dict[str, object]) -> Request:
        # bot and mode are in the journal's meta: a resume cannot change them.
        return cast(Request, self._imagine(str(body.get("prompt", ""))))

    async def _run(self) -> None:
        try:
            await self._settle_lost_submits()
            await super()._run()
        finally:
            # A Midjourney proxy never says what a task costs: "0 credits reserved" would be false.
            if not self.summary.credits_reserved:
                self.summary.credits_reserved = None

    async def _settle_lost_submits(self) -> None:
        """Inputs an earlier run may have submitted (a body is stored, no task id): find their
        tasks by ``state`` and record them, so the run re-attaches instead of submitting again."""
        journal = self.journal
        async for entry in journal.entries(status=EntryStatus.PENDING_SUBMIT):
            if entry.request_body is None:
                continue  # never sent: nothing to find
            try:
                task = await self._mj.find_submitted(entry.idempotency_key, submitted_after=entry.updated_at)
            except EvolinkError as exc:  # the list cannot tell: not sent this run (see _request_body)
                self._unsettled[entry.key] = exc
                continue
            if task is not None:
                await journal.record_submitted(entry.key, task.id)
