"""Value types of the folder batch: what to do (``BatchSpec``), what happened (``BatchEvent``,
``BatchSummary``), what a dry run found (``BatchPlan``), and how inputs are found (pure, no I/O
beyond listing folders)."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from .._core.checks import CREDITS, SECONDS, check_path, count_at_least
from .._files.safe_paths import is_result_file_name
from .._models.requests import MODEL_RULES, ImageInput, ImageRequest, json_params
from ..errors import BatchLockedError, Remedy, ValidationError

__all__ = [
    "ESTIMATED_CREDITS",
    "INPUT_SUFFIXES",
    "NORMALIZED_DIR",
    "JOURNAL_NAME",
    "BatchEvent",
    "BatchLockedError",
    "BatchPlan",
    "BatchSpec",
    "BatchSummary",
    "FailedInput",
    "UnreadableFolder",
    "iter_inputs",
]

#: The journal's file name inside the output folder.
JOURNAL_NAME = "evolink-journal.sqlite3"
LOCK_NAME = ".evolink-batch.lock"
#: Files a folder batch takes as inputs (by suffix; the header is checked before upload).
INPUT_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".heif"})
#: Where normalized copies of inputs go, next to the journal (hidden: never taken as an input).
NORMALIZED_DIR = ".evolink-normalized"
#: Credits per call for the dry run's estimate, from the API's published examples (A1 shows 1.8
#: for mj-v7-retexture). The server's ``usage.credits_reserved`` is what is actually charged.
ESTIMATED_CREDITS: Mapping[str, float] = {"mj-v7-retexture": 1.8, "mj-v7-remove-bg": 1.8, "qwen-image-edit": 1.0}


def _input_dir(value: object) -> Path:
    return check_path("input_dir", value)


def _output_dir(value: object) -> Path:
    return check_path("output_dir", value)


def _string(field: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def validate(_: object, __: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, str) or not value:
            raise ValidationError(field, f"must be a non-empty string, got {value!r}")

    return validate


def _optional_string(field: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def validate(_: object, __: attrs.Attribute[Any], value: object) -> None:
        if value is not None and not isinstance(value, str):
            raise ValidationError(field, f"must be a string, got {type(value).__name__}")
        if value is not None and not value.strip():  # every input would fail its request check later
            raise ValidationError(field, "must not be blank (None for a model that takes no prompt)")

    return validate


def _flag(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, bool):
        raise ValidationError(attribute.name, f"must be True or False, got {value!r}")


@attrs.frozen(kw_only=True)
class BatchSpec:
    """One folder batch: every image under ``input_dir`` -> results under ``output_dir``.

    >>> BatchSpec(model="qwen-image-edit", prompt="make it autumn", input_dir=Path("photos"),
    ...           output_dir=Path("out"), recursive=True, pattern="*.jpg", max_in_flight=16)
    """

    model: str = attrs.field(validator=_string("model"))
    input_dir: Path = attrs.field(converter=_input_dir)
    output_dir: Path = attrs.field(converter=_output_dir)
    prompt: str | None = attrs.field(default=None, validator=_optional_string("prompt"))
    model_params: Mapping[str, Any] = attrs.field(factory=dict, converter=json_params, hash=False)
    recursive: bool = attrs.field(default=False, validator=_flag)
    #: A glob matched against each file's name and its path relative to ``input_dir``.
    pattern: str = attrs.field(default="*", validator=_string("pattern"))
    max_in_flight: int = attrs.field(default=8, validator=count_at_least(1))
    #: Seconds each task may take before it is reported timed out (a re-run keeps waiting).
    timeout: float | None = attrs.field(default=None, validator=SECONDS.optional())
    #: Uploads (and local checks) running at once, ahead of the submits.
    max_uploads: int = attrs.field(default=4, validator=count_at_least(1))
    max_downloads: int = attrs.field(default=4, validator=count_at_least(1))
    #: Start inputs whose task failed in an earlier run afresh (a new, billed submit each).
    retry_failed: bool = attrs.field(default=False, validator=_flag)
    #: Take inputs that are symbolic links to files outside ``input_dir`` (by default such an
    #: input fails, naming the reason: a link must not smuggle an outside file into an upload).
    follow_symlinks: bool = attrs.field(default=False, validator=_flag)
    #: Credits this run may reserve (estimated per input before each submit); inputs past it end
    #: ``not_submitted`` and stay in the journal for a later run.
    max_credits: float | None = attrs.field(default=None, validator=CREDITS.optional())
    #: Start a new journal when this folder's journal is missing, empty or damaged while the folder
    #: shows an earlier run (its lock file, results); without it such a run is refused
    #: (``JournalLostError``), as it could not tell what was already paid for. Inputs with results in
    #: the folder are then taken as done; the damaged journal is moved aside. Ignored when the
    #: journal is usable.
    new_journal: bool = attrs.field(default=False, validator=_flag)
    #: Keep each uploaded input file after its task ended (by default it is deleted: the Files API
    #: keeps 100 files per key, so a batch of more inputs finishes only by deleting as it goes).
    keep_uploads: bool = attrs.field(default=False, validator=_flag)
    #: Convert local images the service would refuse (BMP, TIFF, HEIC; EXIF rotation; sides out of
    #: the model's range) into PNGs next to the journal instead of failing them (needs the
    #: ``[images]`` extra: Pillow).
    normalize: bool = attrs.field(default=False, validator=_flag)

    def request(self, image: ImageInput) -> ImageRequest:
        """The request for one input (validated: raises ``ValidationError`` before any upload)."""
        return ImageRequest(
            model=self.model, prompt=self.prompt, image_urls=(image,), model_params=dict(self.model_params) or None
        )

    def meta(self) -> dict[str, str]:
        """What a journal must agree with for a run to resume it."""
        return {
            "model": self.model,
            "prompt": self.prompt or "",
            "model_params": json.dumps(dict(self.model_params), sort_keys=True),
            "input_dir": str(self.input_dir.resolve()),
        }

    def fingerprint_body(self, key: str, *, content: str | None = None) -> dict[str, Any]:
        # Not the uploaded URL: it changes with every upload, while the input stays the same.
        # ``content`` (size and mtime) makes a replaced file a new input; journals written before
        # it existed hold the body without it.
        body = {"input": key, "model": self.model, "prompt": self.prompt, "model_params": dict(self.model_params)}
        if content is not None:
            body["content"] = content
        return body

    @property
    def journal_path(self) -> Path:
        return self.output_dir / JOURNAL_NAME

    @property
    def estimated_credits_per_input(self) -> float | None:
        cost = ESTIMATED_CREDITS.get(self.model)
        if cost is not None and self.model_params.get("speed") == "turbo":
            cost *= 2
        return cost


def iter_inputs(
    root: Path,
    *,
    recursive: bool,
    pattern: str = "*",
    exclude: Path | None = None,
    on_unreadable: Callable[[Path, OSError], None] | None = None,
) -> Iterator[Path]:
    """Image files under ``root`` in a stable order, lazily, one folder listing at a time.

    Skips hidden entries, symlinked folders, files that look like results
    (``*.result-<n>.<ext>``: a re-run never pays for its own outputs) and, when ``exclude`` is
    given, that folder (an output folder inside the input folder).

    A sub-folder that cannot be listed (no permission, removed meanwhile) is passed to
    ``on_unreadable`` and skipped: one such folder must not stop a batch of thousands of
    readable inputs. Without ``on_unreadable`` its ``OSError`` is raised. ``root`` itself
    unreadable raises ``ValidationError`` (there is nothing to run).
    """
    excluded = exclude.resolve() if exclude is not None else None
    pending = [root]
    while pending:
        folder = pending.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            if folder == root:
                raise ValidationError("input_dir", f"{root} cannot be read: {exc.strerror or exc}") from None
            if on_unreadable is None:
                raise
            on_unreadable(folder, exc)
            continue
        subfolders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                if recursive and Path(entry.path).resolve() != excluded:
                    subfolders.append(Path(entry.path))
                continue
            if not entry.is_file() or Path(entry.name).suffix.lower() not in INPUT_SUFFIXES:
                continue
            if is_result_file_name(entry.name):
                continue
            relative = PurePosixPath(Path(entry.path).relative_to(root).as_posix())
            if fnmatch.fnmatch(entry.name, pattern) or fnmatch.fnmatch(str(relative), pattern):
                yield Path(entry.path)
        pending.extend(reversed(subfolders))


@attrs.frozen(kw_only=True)
class BatchEvent:
    """Something that happened to one input (or the batch). ``kind`` is one of:

    ``found`` (an input joined the batch; ``total``: found so far, a lower bound), ``counted``
    (all inputs counted ahead of the walk: ``total``; may not come, for a walk that ends first),
    ``done_before`` (finished in an
    earlier run), ``changed`` (its content differs from the earlier run's: a new input),
    ``uploaded``, ``submitted``, ``reattached``, ``progress``, ``completed``,
    ``downloaded`` (``paths``), ``failed`` (``error_code``, ``message``), ``discovered`` (all
    inputs found; ``total``), ``normalized`` (a converted copy was made: ``paths``), ``quota_wait``
    (the Files API quota is full: an upload waits for a deletion; ``total`` is the attempt,
    ``message`` says how long).
    """

    kind: str
    key: str | None = None
    task_id: str | None = None
    progress: int | None = None
    status: str | None = None
    error_code: str | None = None
    message: str | None = None
    paths: tuple[str, ...] = ()
    total: int | None = None
    #: Of a ``failed`` event: the option that would get past it, as ``message`` names it.
    remedy: Remedy | None = None

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON object without empty fields (one line of ``--json`` output)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items() if v not in (None, ())}


@attrs.frozen(kw_only=True)
class FailedInput:
    """An input that has no result: its key, a short error code and the message."""

    key: str
    code: str
    message: str
    #: The option that would get past it, as ``message`` names it (``retry_failed=True``).
    remedy: Remedy | None = None


@attrs.frozen(kw_only=True)
class UnreadableFolder:
    """A sub-folder that could not be listed: its inputs are not in the run (``path``: relative to the input)."""

    path: str
    message: str


@attrs.define(kw_only=True)
class BatchSummary:
    """What a run did. ``ok`` is true when every input found has its results on disk."""

    inputs: int = 0
    done_before: int = 0
    downloaded: int = 0
    submitted: int = 0
    reattached: int = 0
    results_saved: int = 0
    #: What the server's answers reserved; None where the protocol never says (a Midjourney proxy).
    credits_reserved: float | None = 0.0
    #: Uploads that waited because the Files API quota was full (code 40003: another client of the key).
    quota_waits: int = 0
    #: Uploaded input files deleted by this run (its own, and those an earlier run left behind).
    uploads_deleted: int = 0
    #: Submits retried after a failure the server may have acted on (see ``FanOutSummary``): each
    #: is safe only where the server honours ``Idempotency-Key``.
    retried_uncertain_submits: int = 0
    #: Submits this run sent whose answer never came (cut off by a stop past the fan-out's wait, or
    #: lost after the retries): each may have made a task, and a re-run sends it again under the
    #: same ``Idempotency-Key``, which is safe only where the server honours the key. (0 for a
    #: client whose re-run looks such submits up first: a Midjourney proxy's, by ``state``.)
    interrupted_submits: int = 0
    failed: list[FailedInput] = attrs.field(factory=list)
    #: Sub-folders that could not be listed: the run is not complete (``ok`` is false) until they can.
    unreadable_folders: list[UnreadableFolder] = attrs.field(factory=list)
    #: Cancelled (Ctrl-C): a re-run resumes. Not set when an error stopped the run (``error``).
    interrupted: bool = False
    #: The error that stopped the run early (a wrong key, say), or ``None``.
    error: str | None = None
    output_dir: str = ""
    journal: str = ""

    @property
    def ok(self) -> bool:
        return (not self.failed and not self.unreadable_folders and not self.interrupted and self.error is None
                and self.done_before + self.downloaded == self.inputs)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["ok"] = self.ok
        return data


@attrs.frozen(kw_only=True)
class BatchPlan:
    """What a dry run found: nothing was uploaded, submitted or written."""

    inputs: int
    to_submit: int
    already_handled: int
    #: The inputs the run would fail, as it would report them: refused by a local check, or failed
    #: in an earlier run (unless ``retry_failed``).
    invalid: tuple[FailedInput, ...]
    credits_per_input: float | None
    model: str
    unreadable_folders: tuple[UnreadableFolder, ...] = ()

    @property
    def estimated_credits(self) -> float | None:
        return None if self.credits_per_input is None else round(self.to_submit * self.credits_per_input, 6)

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["estimated_credits"] = self.estimated_credits
        return data


def known_model(model: str) -> bool:
    """Whether the SDK knows the model's input rules (unknown models are still allowed)."""
    return model in MODEL_RULES
