"""File names from untrusted text (URLs, server answers, user input) that stay inside their folder.

Three layers, used together when saving a download::

    name = result_file_name("cats/tom.png", 0, image_format="webp")   # "tom.result-0.webp"
    path = resolve_inside(dest_dir, name)      # UnsafePathError if it would land outside dest_dir
    path = create_unique(path)                 # claims "tom.result-0 (1).webp" if the name is taken

``safe_file_name`` turns any string into one harmless path component on both POSIX and Windows;
``resolve_inside`` checks the resolved result (symlinks followed) is inside the folder;
``create_unique`` claims a free name atomically (``O_EXCL``), so it never overwrites anything,
an input included, even when many downloads race for one name.
"""

from __future__ import annotations

import os
import re
import stat
import unicodedata
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from ..errors import ValidationError
from .image_probe import ImageFormat, format_for_suffix, suffix_for_format

__all__ = [
    "UnsafePathError",
    "create_unique",
    "existing_variants",
    "is_result_file_name",
    "publish_unique",
    "resolve_inside",
    "result_file_name",
    "safe_file_name",
    "unique_path",
]

_MAX_NAME_BYTES = 255  # the per-component limit of ext4, APFS, NTFS (in UTF-16 units, which is looser)
_MAX_SUFFIX = 16
_WINDOWS_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')
# Not separators anywhere, but they look like one: a name must not read as a path to a human either.
_LOOKALIKE_SLASHES = str.maketrans(dict.fromkeys("\u2044\u2215\u29f8\u29f9\u2571\u2572", "_"))
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})  # controls, bidi overrides, ...
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"} | {f"{dev}{n}" for dev in ("COM", "LPT") for n in range(10)}
)
_RESULT_NAME = re.compile(r".*\.result-\d+( \(\d+\))?\.[a-z0-9]{1,8}")  # " (n)": numbered copies from create_unique


class UnsafePathError(ValidationError):
    """Raised when a name would resolve outside the folder it is meant for (``..``, absolute, symlink)."""


def safe_file_name(name: str, *, default: str, max_length: int = 200) -> str:
    """Turn ``name`` into one harmless file name; ``default`` when nothing usable is left.

    Keeps the last path component (either separator), drops control and invisible formatting
    characters, replaces characters Windows forbids, strips leading and trailing dots and
    spaces, defuses reserved Windows device names, and shortens to ``max_length`` characters
    (and 255 UTF-8 bytes) keeping the suffix. The result is never empty, ``.`` or ``..``.

    >>> safe_file_name("../../etc/passwd", default="file")
    'passwd'
    >>> safe_file_name("..\\\\..\\\\CON.txt", default="file")
    '_CON.txt'
    """
    if max_length < 1:
        raise ValueError("max_length must be >= 1")
    cleaned = _clean(name, max_length)
    if cleaned:
        return cleaned
    fallback = _clean(default, max_length)
    if not fallback:
        raise ValueError(f"default {default!r} is not a usable file name either")
    return fallback


def _clean(name: str, max_length: int) -> str:
    # NFKC first: it folds the fullwidth solidus, reverse solidus and full stop (U+FF0F, U+FF3C,
    # U+FF0E) and the two-dot leader (U+2025) into the ASCII that is then treated as "/" and "..".
    text = unicodedata.normalize("NFKC", name).replace("\\", "/")
    parts = [part for part in text.split("/") if part.strip(" .")]
    text = parts[-1] if parts else ""
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = _WINDOWS_FORBIDDEN.sub("_", text.translate(_LOOKALIKE_SLASHES))
    text = text.strip(" .")  # leading: hidden files and ".." remnants; trailing: Windows drops them
    text = _shorten(text, max_length)
    if text.split(".", 1)[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        text = _shorten("_" + text, max_length)  # "_CON.txt"; shortening it again cannot re-create a device name
    return text


def _fits(text: str, max_length: int) -> bool:
    return len(text) <= max_length and len(text.encode()) <= _MAX_NAME_BYTES


def _shorten(text: str, max_length: int) -> str:
    stem, dot, suffix = text.rpartition(".")
    if dot and stem and len(suffix) < _MAX_SUFFIX and _fits(f"x.{suffix}", max_length):
        suffix = "." + suffix  # keep the suffix: it tells programs what the file is
    else:
        stem, suffix = text, ""
    stem = stem[:max_length]  # bounds the loop below on absurdly long input
    while stem and not _fits(stem + suffix, max_length):
        stem = stem[:-1]
    stem = stem.rstrip(" .")
    return stem + suffix if stem else ""


def resolve_inside(base_dir: str | os.PathLike[str], name: str | os.PathLike[str]) -> Path:
    """``base_dir / name`` resolved (symlinks followed), or :class:`UnsafePathError` if it leaves ``base_dir``.

    ``name`` may contain sub-folders (``"a/b.png"``) as long as the result stays inside; the
    folder itself is not a valid result.

    >>> resolve_inside("/srv/out", "../etc/passwd")  # doctest: +SKIP
    Traceback (most recent call last):
    evolink_async._files.safe_paths.UnsafePathError: ../etc/passwd: must stay inside /srv/out
    """
    text = os.fspath(name)
    if "\x00" in text:
        raise UnsafePathError(repr(text), "must not contain NUL characters")
    base = Path(base_dir).resolve()
    target = (base / text).resolve()
    if target == base or not target.is_relative_to(base):
        raise UnsafePathError(text, f"must stay inside {base}")
    return target


def _numbered(dest: Path, number: int) -> Path:
    return dest if number == 0 else dest.with_name(f"{dest.stem} ({number}){dest.suffix}")


def existing_variants(dest: str | os.PathLike[str], *, max_tries: int = 10_000) -> list[Path]:
    """``dest``, ``name (1).ext``, ... as far as they exist: the names :func:`create_unique` skips."""
    dest = Path(dest)
    found = []
    for number in range(max_tries):
        candidate = _numbered(dest, number)
        if not os.path.lexists(candidate):
            break
        found.append(candidate)
    return found


def unique_path(dest: str | os.PathLike[str], *, max_tries: int = 10_000) -> Path:
    """``dest`` if nothing is there (not even a dangling symlink), else ``name (1).png``, ``name (2).png`` ...

    Only a check: two callers can pick the same name. To claim one, use :func:`create_unique`.
    """
    dest = Path(dest)
    taken = len(existing_variants(dest, max_tries=max_tries))
    if taken >= max_tries:
        raise FileExistsError(f"no free name like {dest} after {max_tries} tries")
    return _numbered(dest, taken)


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def create_unique(dest: str | os.PathLike[str], *, max_tries: int = 10_000) -> Path:
    """Atomically create an empty file at ``dest`` or the first free ``name (n).ext``; return its path.

    ``O_EXCL`` makes the claim atomic and refuses any existing entry, a symlink included, so
    nothing is ever overwritten or written through a link. Write the content to a temporary
    file and ``os.replace`` it onto the returned path.
    """
    dest = Path(dest)
    for number in range(max_tries):
        candidate = _numbered(dest, number)
        try:
            fd = os.open(candidate, _CREATE_FLAGS, 0o644)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free name like {dest} after {max_tries} tries")


def publish_unique(source: str | os.PathLike[str], dest: str | os.PathLike[str], *, max_tries: int = 10_000) -> Path:
    """Give the finished file ``source`` the name ``dest`` (or the first free ``name (n).ext``); return it.

    Claim and publish are one step: a hard link fails if the name exists, so no empty file is
    ever visible under a real name, and a process killed at any point leaves either the whole
    result or nothing (beside the temporary ``source``). An empty regular file under a candidate
    name (a claim an interrupted run of an older version left) is taken over, not skipped.
    Where hard links are not supported, falls back to :func:`create_unique` and ``os.replace``.
    """
    dest = Path(dest)
    for number in range(max_tries):
        candidate = _numbered(dest, number)
        try:
            os.link(source, candidate)
        except FileExistsError:
            if _is_empty_file(candidate):
                os.replace(source, candidate)
                return candidate
            continue
        except OSError:  # no hard links here (some network and FAT file systems)
            claimed = create_unique(dest, max_tries=max_tries)
            os.replace(source, claimed)
            return claimed
        os.unlink(source)
        return candidate
    raise FileExistsError(f"no free name like {dest} after {max_tries} tries")


def _is_empty_file(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size == 0


def result_file_name(
    input_name: str,
    index: int,
    *,
    url: str | None = None,
    image_format: ImageFormat | str | None = None,
    max_length: int = 200,
    keep_suffix: bool = False,
) -> str:
    """The file name for result ``index`` of an input: ``photo.jpg`` -> ``photo.result-0.png``.

    The suffix comes from ``image_format`` (best: probe the downloaded bytes), else from the
    URL's path if it names an image format, else ``.png``. Every name returned matches
    :func:`is_result_file_name`; a batch that skips such names when it lists its inputs can
    therefore never have a result name equal to an input's.

    ``keep_suffix=True`` keeps the input's own suffix in the stem (``photo.jpg`` ->
    ``photo.jpg.result-0.png``), so ``a.png`` and ``a.jpg`` never compete for one name.

    >>> result_file_name("shots/cat.jpeg", 1, url="https://files.example/x/abc.WEBP?sig=1")
    'cat.result-1.webp'
    """
    if index < 0:
        raise ValueError("index must be >= 0")
    if image_format is not None:
        suffix = suffix_for_format(image_format)
    else:
        url_suffix = PurePosixPath(unquote(urlsplit(url).path)).suffix if url else ""
        known = format_for_suffix(url_suffix)
        suffix = suffix_for_format(known) if known is not None else ".png"
    marker = f".result-{index}{suffix}"
    base = safe_file_name(input_name, default="image", max_length=max_length)
    stem = base.rsplit(".", 1)[0] if "." in base and not keep_suffix else base
    room = max(1, max_length - len(marker))
    stem = safe_file_name(stem[:room], default="image", max_length=room)
    return stem + marker


def is_result_file_name(name: str) -> bool:
    """Whether ``name`` has the shape of a result (``*.result-<n>.<ext>``, or a ``(<k>)`` numbered copy).

    A batch that lists a folder for inputs skips these, so a re-run never mistakes (and pays
    for) its own earlier results as new inputs.
    """
    return _RESULT_NAME.fullmatch(name) is not None
