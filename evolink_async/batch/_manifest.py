"""Inputs that span machines: a JSON Lines manifest, one input per line.

Each line is an object ``{"key": ..., "model": ..., "prompt": ..., "image_urls": [...],
"model_params": {...}}``; ``image_urls`` holds URLs (``https://...``) or paths relative to a
shared ``root`` (uploaded by whichever worker submits the input). A folder becomes the same
lines (key and image: the file's path relative to the folder), so ``evolink edit DIR`` can be
planned for a fleet on a shared file system::

    for item in read_manifest("edits.jsonl"):
        print(item.key, item.fingerprint)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import attrs

from .._files.image_probe import check_image
from .._files.local_images import check_upload_format
from .._models.requests import ImageInput, ImageRequest
from ..errors import Remedy, ValidationError
from ._entries import request_fingerprint
from ._spec import ESTIMATED_CREDITS, iter_inputs

__all__ = [
    "IMAGINE_MODEL", "ManifestInput", "check_local_image", "checked_inputs", "folder_manifest", "parse_line",
    "read_manifest",
]  # fmt: skip

_FIELDS = frozenset({"key", "model", "prompt", "image_urls", "model_params"})


#: The ``model`` of a Midjourney ``/imagine`` prompt: the journal meta of a prompt batch, and the
#: model of a manifest line that is one (run by ``ImagineSource``, not as an image request).
IMAGINE_MODEL = "midjourney-imagine"


def _is_url(image: str) -> bool:
    return image.startswith(("https://", "http://"))


def estimated_credits(model: str, model_params: Mapping[str, Any]) -> float:
    """The credits one input is expected to reserve (budget accounting; the server's answer wins later)."""
    cost = ESTIMATED_CREDITS.get(model, 1.0)
    return cost * 2 if model_params.get("speed") == "turbo" else cost


@attrs.frozen(kw_only=True)
class ManifestInput:
    """One input of a fleet batch, as planned (paths stay relative to the shared root)."""

    key: str
    model: str
    prompt: str | None = None
    image_urls: tuple[str, ...] = ()
    model_params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "model": self.model, "prompt": self.prompt, "image_urls": list(self.image_urls),
                "model_params": dict(self.model_params)}  # fmt: skip

    def canonical(self) -> str:
        """The line as stored in the journal (sorted keys: the same input always reads the same)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    @property
    def fingerprint(self) -> str:
        return request_fingerprint(self.to_json())

    @property
    def credits_estimate(self) -> float:
        return estimated_credits(self.model, self.model_params)

    def local_paths(self, root: Path) -> list[Path]:
        return [root / image for image in self.image_urls if not _is_url(image)]

    def request(self, root: Path | None) -> ImageRequest:
        """The request, local paths resolved under ``root`` (validated; nothing is read or sent)."""
        images: list[ImageInput] = []
        for image in self.image_urls:
            if _is_url(image):
                images.append(image)
            elif root is None:
                raise ValidationError("image_urls", f"{self.key}: {image!r} is a path, but the folder it is "
                                      f"relative to was not given ({Remedy.ROOT})", remedy=Remedy.ROOT)  # fmt: skip
            else:
                images.append(root / image)
        return ImageRequest(model=self.model, prompt=self.prompt, image_urls=tuple(images),
                            model_params=dict(self.model_params) or None)  # fmt: skip


# NUL (a raw byte or ``\u0000``): PostgreSQL text cannot hold it, and a C string ends at it. Lone
# surrogates (``\ud800`` escapes): not text, they cannot be encoded, stored or sent.
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def _not_text(value: object) -> str | None:
    """The first NUL or lone surrogate in any string of ``value`` (object keys too), or None."""
    if isinstance(value, str):
        found = _NOT_TEXT.search(value)
        return None if found is None else found.group()
    if isinstance(value, dict):
        return next((bad for item in value.items() for bad in map(_not_text, item) if bad is not None), None)
    if isinstance(value, list):
        return next((bad for bad in map(_not_text, value) if bad is not None), None)
    return None


def parse_line(text: str, *, line_number: int = 0) -> ManifestInput:
    """One manifest line -> a checked :class:`ManifestInput` (``ValidationError`` names the line)."""
    where = f"line {line_number}" if line_number else "manifest line"
    try:
        data = json.loads(text)
        bad = _not_text(data)
    except json.JSONDecodeError as exc:
        raise ValidationError(where, f"is not JSON: {exc.msg}") from None
    except RecursionError:
        raise ValidationError(where, "is nested too deep") from None
    if not isinstance(data, dict):
        raise ValidationError(where, "must be a JSON object")
    if bad is not None:
        what = "a NUL character" if bad == "\x00" else f"a lone surrogate (\\u{ord(bad):04x}), which is not text"
        raise ValidationError(where, f"contains {what}")
    unknown = set(data) - _FIELDS
    if unknown:
        raise ValidationError(where, f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS)}")
    key, model, prompt = data.get("key"), data.get("model"), data.get("prompt")
    images, params = data.get("image_urls", []), data.get("model_params") or {}
    if not isinstance(key, str) or not key:
        raise ValidationError(where, "needs a non-empty string 'key'")
    if not isinstance(model, str) or not model:
        raise ValidationError(where, f"{key}: needs a string 'model'")
    if prompt is not None and not isinstance(prompt, str):
        raise ValidationError(where, f"{key}: 'prompt' must be a string")
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise ValidationError(where, f"{key}: 'image_urls' must be an array of URLs or relative paths")
    if not isinstance(params, dict):
        raise ValidationError(where, f"{key}: 'model_params' must be an object")
    for image in images:
        if not _is_url(image):
            path = PurePosixPath(image)
            if path.is_absolute() or ".." in path.parts:
                raise ValidationError(where, f"{key}: {image!r} must be a relative path without '..' (relative "
                                      f"to {Remedy.ROOT})", remedy=Remedy.ROOT)  # fmt: skip
    item = ManifestInput(key=key, model=model, prompt=prompt, image_urls=tuple(images), model_params=params)
    try:
        # The model's rules (prompt, image count, suffixes), with paths as stand-ins.
        item.request(Path("/"))
    except ValidationError as exc:
        raise ValidationError(where, f"{key}: {exc}") from None
    return item


def _digest(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest())


def read_manifest(path: str | os.PathLike[str]) -> Iterator[ManifestInput]:
    """The manifest's inputs, lazily (blank lines skipped); a bad line raises, naming its number.

    A line that is not UTF-8 or holds a NUL is refused, naming it. A key on two lines with
    different requests is refused naming both lines: one of them would be dropped, and which one
    the user meant cannot be guessed. The same key with the *same* request is one input, taken
    once: a manifest appended to twice, or two that overlap, plan as they would one by one (a
    re-plan of identical lines is a no-op too). To tell them apart the reader keeps two 64-bit
    digests and a line number per key, about 100 bytes (100 MB for a million lines); the lines
    themselves are never held.
    """
    seen: dict[int, tuple[int, int]] = {}  # digest of the key -> (first line, digest of its request)
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, 1):
            if (nul := raw.find(b"\0")) >= 0:
                raise ValidationError(f"line {number}", f"contains a NUL byte (column {nul + 1})")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError(f"line {number}", f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at "
                                      f"column {exc.start + 1})") from None  # fmt: skip
            if not line.strip():
                continue
            item = parse_line(line, line_number=number)
            key, request = _digest(item.key), _digest(item.canonical())
            first = seen.setdefault(key, (number, request))
            if first[0] == number:
                yield item
            elif first[1] != request:
                raise ValidationError(f"line {number}", f"repeats the key {item.key!r} of line {first[0]} with "
                                      "another request; give one of them another key")  # fmt: skip


def folder_manifest(
    folder: Path,
    *,
    model: str,
    prompt: str | None,
    model_params: Mapping[str, Any] | None = None,
    recursive: bool = False,
    pattern: str = "*",
) -> Iterator[ManifestInput]:
    """A folder's images as manifest inputs (keys and paths relative to ``folder``, the root).

    A sub-folder that cannot be listed is refused, not skipped: a plan is written once for the
    whole fleet, and one that silently left a folder out could never be completed.
    """

    def refuse(sub_folder: Path, error: OSError) -> None:
        where = sub_folder.relative_to(folder).as_posix()
        reason = error.strerror or error
        raise ValidationError("input_dir", f"{where} cannot be read ({reason}): fix it, then plan again")

    for path in iter_inputs(folder, recursive=recursive, pattern=pattern, on_unreadable=refuse):
        relative = path.relative_to(folder).as_posix()
        yield ManifestInput(key=relative, model=model, prompt=prompt, image_urls=(relative,),
                            model_params=dict(model_params or {}))  # fmt: skip


def check_local_image(path: Path, *, model: str, key: str) -> None:
    """Refuse a local image of input ``key`` that is missing, unreadable, or one the Files API does not
    store or ``model`` does not accept (``ValidationError`` naming the key); reads the header only,
    so call it off the event loop."""
    if not path.is_file():
        raise ValidationError(key, f"{path} is not a file under the {Remedy.ROOT} folder", remedy=Remedy.ROOT)
    try:
        info = check_image(path, model=model, field=key)
    except OSError as exc:
        raise ValidationError(key, f"{path} cannot be read: {exc.strerror or exc}") from None
    check_upload_format(info, field=key, hint="convert it to JPEG or PNG")


def checked_inputs(items: Iterator[ManifestInput], *, root: Path | None) -> Iterator[ManifestInput]:
    """``items``, each after its local images are checked (lazily, in order; read from disk, so
    call it off the event loop): a file under ``root``, an image the Files API stores and the
    model accepts. An input with local paths needs ``root``. A bad one raises ``ValidationError``
    naming its key, before anything of the batch is planned or paid for.

    >>> await journal.plan(checked_inputs(read_manifest(path), root=Path("/shared")), root=Path("/shared"))
    """
    for item in items:
        for path in item.local_paths(root) if root is not None else ():
            check_local_image(path, model=item.model, key=item.key)
        if root is None and any(not i.startswith(("http://", "https://")) for i in item.image_urls):
            raise ValidationError(item.key, f"has local paths: give {Remedy.ROOT} (the shared folder they are under)",
                                  remedy=Remedy.ROOT)  # fmt: skip
        yield item
