"""What an output folder shows of earlier runs, for a batch whose journal is missing or unreadable.

The journal is the only record of which inputs were submitted: lose it (``rm``, a truncation,
overwritten bytes) and a run would pay for every input again. The folder keeps evidence of its
own: the run lock file (every run creates it before its journal) and result files named by input.
A batch that finds such evidence without a usable journal refuses to start unless its spec says
``new_journal``; a run with a new journal then takes each input that has a result file as done
(``result_files``), so only inputs without results are submitted again.

A damaged write-ahead log is found before SQLite opens the file, because SQLite would silently
ignore it and the records it held: ``wal_problem`` reads the log's header and the frame count
SQLite last recorded in the ``-shm`` index. With ``synchronous=FULL`` (the journal's default)
every committed frame was on disk before its ``COMMIT`` returned, so a torn *last* frame only
loses a write that had not finished, which the journal's step order makes safe to redo.
"""

from __future__ import annotations

import datetime
import os
import struct
from pathlib import Path, PurePosixPath
from typing import overload

import anyio.to_thread

from .._core.logging import logger
from .._files.image_probe import ImageFormat
from .._files.safe_paths import is_result_file_name, result_file_name
from ._entries import JournalCorruptError, JournalLostError
from ._spec import LOCK_NAME, BatchSpec
from ._sqlite_store import Journal

__all__ = ["open_batch_journal", "result_file_name_of", "result_files", "wal_problem"]

_WAL_MAGIC = (0x377F0682, 0x377F0683)  # the low bit: checksums over big-endian words
_WAL_HEADER, _FRAME_HEADER = 32, 24
_SIDE_FILES = ("-wal", "-shm")


def result_file_name_of(key: str, index: int, image_format: ImageFormat, *, keep_suffix: bool = True) -> str:
    """Where result ``index`` of input ``key`` is saved, relative to the output folder (the one naming rule).

    ``keep_suffix``: the input's suffix stays in the name (a.png and a.jpg never compete for one
    result name); a fleet worker's results leave it out (its keys are the manifest's names).
    """
    relative = PurePosixPath(key)
    name = result_file_name(relative.name, index, image_format=image_format, keep_suffix=keep_suffix)
    return name if str(relative.parent) == "." else f"{relative.parent}/{name}"


def result_files(output_dir: Path, key: str) -> tuple[Path, ...]:
    """The result files of ``key`` already in ``output_dir`` (result 0, 1, ... while they exist); stats only."""
    found: list[Path] = []
    for index in range(64):  # a task has a handful of results; the bound keeps a hostile folder cheap
        names = (output_dir / result_file_name_of(key, index, image_format) for image_format in ImageFormat)
        path = next((p for p in names if p.is_file()), None)
        if path is None:
            break
        found.append(path)
    return tuple(found)


def _earlier_run_evidence(output_dir: Path, journal: Path, *, lock_existed: bool) -> str | None:
    """A short description of what ``output_dir`` holds of an earlier run, or None for a fresh folder."""
    found: list[str] = []
    if lock_existed:
        found.append(f"its lock file {LOCK_NAME}")
    side = [journal.name + suffix for suffix in _SIDE_FILES if journal.with_name(journal.name + suffix).exists()]
    if side:
        found.append(" and ".join(side))
    results = 0
    example = ""
    for folder, _, files in os.walk(output_dir):  # stops at the first few: evidence, not an inventory
        for name in files:
            if is_result_file_name(name):
                results += 1
                example = example or os.path.relpath(os.path.join(folder, name), output_dir)
                if results >= 10:
                    break
        if results >= 10:
            break
    if results:
        found.append(f"{'at least 10' if results >= 10 else results} result file(s) such as {example!r}")
    return ", ".join(found) or None


def wal_problem(journal: Path) -> str | None:
    """Why the journal's write-ahead log cannot be trusted, or None (absent, empty, whole up to a torn last frame)."""
    wal = journal.with_name(journal.name + "-wal")
    try:
        with wal.open("rb") as file:
            header = file.read(_WAL_HEADER)
        size = wal.stat().st_size
    except FileNotFoundError:
        return None
    committed = _indexed_frames(journal.with_name(journal.name + "-shm"))
    if size == 0 or committed == 0:  # the index says no frame of this log was committed: nothing to lose
        return None
    if len(header) < _WAL_HEADER:
        return f"its write-ahead log {wal.name} is cut short ({size} bytes)"
    magic, _, page_size, _, _, _, check0, check1 = struct.unpack(">8I", header)
    if magic not in _WAL_MAGIC or _wal_checksum(header[:24], big_endian=magic & 1 == 1) != (check0, check1):
        return f"the header of its write-ahead log {wal.name} is overwritten"
    frames = (size - _WAL_HEADER) // (_FRAME_HEADER + page_size)
    if committed is not None and committed > frames:
        return (f"its write-ahead log {wal.name} holds {frames} of the {committed} pages it had written: "
                "records that were committed are lost")  # fmt: skip
    return None


def _wal_checksum(data: bytes, *, big_endian: bool) -> tuple[int, int]:
    """SQLite's WAL checksum (two running 32-bit sums over pairs of words)."""
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    s0 = s1 = 0
    for index in range(0, len(words), 2):
        s0 = (s0 + words[index] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[index + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def _indexed_frames(shm: Path) -> int | None:
    """The number of WAL frames SQLite's index (``-shm``) says were written, or None when it cannot say."""
    try:
        with shm.open("rb") as file:
            header = file.read(96)
    except FileNotFoundError:
        return None
    if len(header) < 96 or header[:48] != header[48:96] or header[12] != 1:  # two equal copies, initialised
        return None
    # Native byte order (the index is a memory map, never moved between machines): mxFrame at 16.
    return int(struct.unpack_from("=I", header, 16)[0])


def _journal_problem(journal: Path) -> tuple[str | None, str | None]:
    """``(problem, damage)`` of the journal before SQLite opens it: missing, empty, or a damaged log."""
    try:
        size = journal.stat().st_size
    except FileNotFoundError:
        return "is missing", None
    if size == 0:  # SQLite would take it as a new, empty database
        return "is empty (0 bytes)", None
    damage = wal_problem(journal)
    return (None, None) if damage is None else (f"is damaged ({damage})", damage)


def _set_aside(journal: Path) -> Path | None:
    """Move the journal and its ``-wal``, ``-shm`` aside (kept for a look) so a new one can start; None if none exist.

    A stale ``-wal`` left beside a new journal would be read into it by SQLite.
    """
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
    aside = journal.with_name(f"{journal.name}.unreadable-{stamp}")
    moved = False
    for suffix in ("", *_SIDE_FILES):
        source = journal.with_name(journal.name + suffix)
        if source.exists():
            source.rename(aside.with_name(aside.name + suffix))
            moved = True
    return aside if moved else None


@overload
async def open_batch_journal(spec: BatchSpec, *, lock_existed: bool) -> Journal: ...
@overload
async def open_batch_journal(spec: BatchSpec, *, lock_existed: bool, dry_run: bool) -> Journal | None: ...


async def open_batch_journal(spec: BatchSpec, *, lock_existed: bool, dry_run: bool = False) -> Journal | None:
    """The batch's journal, open; refuses (``JournalLostError``) a lost one while the folder shows an earlier run.

    ``lock_existed``: the run lock file was in the folder before this run created it. A journal
    that is missing or empty in a folder without evidence is a first run; a damaged one is
    always refused (``JournalLostError`` when the folder shows a run, else ``JournalCorruptError``)
    unless ``spec.new_journal``, which moves it aside and starts another.

    ``dry_run``: refuse as a run would, but change no file: None where a run would start a new
    journal (nothing to read), the journal only when it is there and sound.
    """
    path = spec.journal_path
    problem, damage = await anyio.to_thread.run_sync(_journal_problem, path)
    if problem is None:
        try:
            return await Journal.open(path)
        except JournalCorruptError as exc:
            problem, damage = f"is damaged ({exc.reason})", exc.reason
    if spec.new_journal:
        if dry_run:
            return None
        aside = await anyio.to_thread.run_sync(_set_aside, path)
        if aside is not None:
            logger.warning("journal %s %s: moved aside to %s; a new journal starts (new_journal)", path, problem, aside)
        return await Journal.open(path)
    evidence = await anyio.to_thread.run_sync(
        lambda: _earlier_run_evidence(spec.output_dir, path, lock_existed=lock_existed)
    )
    if evidence is not None:
        raise JournalLostError(str(path), problem=problem, evidence=evidence)
    if damage is not None:
        raise JournalCorruptError(str(path), damage)
    return None if dry_run else await Journal.open(path)  # missing or empty, no run shown: a first run
