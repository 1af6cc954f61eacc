"""Read an image's format and pixel size from its header, before any credit is spent.

Pure stdlib and synchronous: it reads a few dozen bytes (JPEG and TIFF: a few more, by seeking, never
the pixel data), so a batch can check thousands of local files cheaply. Callers on the event loop
run it in a thread (``await anyio.to_thread.run_sync(probe_image, path)``). Example::

    info = probe_image("photos/cat.webp")      # ImageInfo(format=<ImageFormat.WEBP: 'webp'>, width=1024, height=768)
    check_image("photos/cat.webp", model="qwen-image-edit")   # ValidationError if a side is < 384 or > 3072 px
"""

from __future__ import annotations

import enum
import os
import struct
from collections.abc import Callable
from typing import IO

import attrs

from .._models.requests import MODEL_RULES
from ..errors import ValidationError

__all__ = [
    "ImageFormat",
    "ImageInfo",
    "ImageProbeError",
    "ImageRules",
    "check_image",
    "format_for_suffix",
    "probe_image",
    "rules_for_model",
    "suffix_for_format",
]

_HEAD = 64  # every format but JPEG and TIFF is decided by these bytes
_MAX_JPEG_SEGMENTS = 1024  # real files have < 30; this bounds the work on a hostile one
_MAX_FILL_BYTES = 64
_MAX_TIFF_ENTRIES = 4096


class ImageFormat(enum.StrEnum):
    """An image container format the probe recognizes."""

    PNG = "png"
    JPEG = "jpeg"
    GIF = "gif"
    WEBP = "webp"
    BMP = "bmp"
    TIFF = "tiff"


_SUFFIXES: dict[ImageFormat, str] = {
    ImageFormat.PNG: ".png", ImageFormat.JPEG: ".jpg", ImageFormat.GIF: ".gif",
    ImageFormat.WEBP: ".webp", ImageFormat.BMP: ".bmp", ImageFormat.TIFF: ".tiff",
}  # fmt: skip
_FORMATS_BY_SUFFIX = {suffix: fmt for fmt, suffix in _SUFFIXES.items()} | {
    ".jpeg": ImageFormat.JPEG, ".jpe": ImageFormat.JPEG, ".jfif": ImageFormat.JPEG, ".tif": ImageFormat.TIFF,
}  # fmt: skip


@attrs.frozen(kw_only=True)
class ImageInfo:
    """What the header says: container format and size in pixels."""

    format: ImageFormat
    width: int
    height: int


class ImageProbeError(ValidationError):
    """Raised when a file is not a readable PNG, JPEG, GIF, WEBP, BMP or TIFF header.

    ``field`` is the file's name, ``rule`` says what was wrong with it.
    """


def suffix_for_format(image_format: ImageFormat | str) -> str:
    """The usual file suffix of a format: ``suffix_for_format("jpeg") == ".jpg"``."""
    try:
        return _SUFFIXES[ImageFormat(image_format)]
    except ValueError:
        raise ValueError(f"unknown image format {image_format!r}") from None


def format_for_suffix(suffix: str) -> ImageFormat | None:
    """The format a file suffix claims (``".JPEG"`` -> ``ImageFormat.JPEG``), or None."""
    return _FORMATS_BY_SUFFIX.get(suffix.lower())


# -- reading -------------------------------------------------------------------------------------

ReadAt = Callable[[int, int], bytes]  # (offset, size) -> up to size bytes


class _Truncated(Exception):
    pass


class _Corrupt(Exception):
    pass


def _need(read_at: ReadAt, offset: int, size: int) -> bytes:
    data = read_at(offset, size)
    if len(data) < size:
        raise _Truncated(f"header ends early (needed {offset + size} bytes)")
    return data


def _file_reader(handle: IO[bytes]) -> ReadAt:
    def read_at(offset: int, size: int) -> bytes:
        handle.seek(offset)
        return handle.read(size)

    return read_at


def probe_image(source: str | os.PathLike[str] | bytes, *, field: str | None = None) -> ImageInfo:
    """Format and size of an image file (a path) or of the leading bytes of one.

    Reads only headers. Raises :class:`ImageProbeError` (a ``ValidationError``; ``field`` defaults
    to the file name) for an unknown format, a corrupt header, or bytes that stop before the size
    is known; ``OSError`` if the file cannot be read.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        return _probe(lambda offset, size: data[offset : offset + size], field or "image")
    path = os.fspath(source)
    with open(path, "rb") as handle:
        return _probe(_file_reader(handle), field or os.path.basename(path))


def _probe(read_at: ReadAt, field: str) -> ImageInfo:
    head = read_at(0, _HEAD)
    parser = _sniff(head)
    if parser is None:
        shown = head[:8].hex(" ") if head else "nothing (empty)"
        raise ImageProbeError(field, f"not a PNG, JPEG, GIF, WEBP, BMP or TIFF image (starts with {shown})")
    try:
        image_format, width, height = parser(read_at)
    except _Truncated as exc:
        raise ImageProbeError(field, f"truncated or corrupt image: {exc}") from None
    except (_Corrupt, struct.error) as exc:
        raise ImageProbeError(field, f"corrupt image header: {exc}") from None
    if width <= 0 or height <= 0:
        raise ImageProbeError(field, f"corrupt image header: {image_format.value} of {width}x{height} px")
    return ImageInfo(format=image_format, width=width, height=height)


Parser = Callable[[ReadAt], tuple[ImageFormat, int, int]]


def _sniff(head: bytes) -> Parser | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png
    if head.startswith(b"\xff\xd8\xff"):
        return _jpeg
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return _gif
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp
    if head[:2] == b"BM":
        return _bmp
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff
    return None


# -- formats -------------------------------------------------------------------------------------


def _png(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    length, chunk_type, width, height = struct.unpack(">I4sII", _need(read_at, 8, 16))
    if chunk_type != b"IHDR" or length != 13:
        raise _Corrupt("PNG does not start with an IHDR chunk")
    return ImageFormat.PNG, width, height


def _gif(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    width, height = struct.unpack("<HH", _need(read_at, 6, 4))
    return ImageFormat.GIF, width, height


def _webp(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    chunk = _need(read_at, 12, 4)
    if chunk == b"VP8 ":  # lossy: 3-byte frame tag, start code, 14-bit sizes (+2 bits of scale)
        data = _need(read_at, 20, 10)
        if data[3:6] != b"\x9d\x01\x2a":
            raise _Corrupt("WEBP VP8 frame has no start code")
        width, height = struct.unpack("<HH", data[6:10])
        return ImageFormat.WEBP, width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: signature 0x2f, then 14 bits each of width-1 and height-1
        data = _need(read_at, 20, 5)
        if data[0] != 0x2F:
            raise _Corrupt("WEBP VP8L chunk has no signature")
        bits = int.from_bytes(data[1:5], "little")
        return ImageFormat.WEBP, (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1 after 4 bytes of flags
        data = _need(read_at, 24, 6)
        return ImageFormat.WEBP, int.from_bytes(data[0:3], "little") + 1, int.from_bytes(data[3:6], "little") + 1
    raise _Corrupt(f"WEBP starts with an unknown chunk {chunk!r}")


def _bmp(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    (dib_size,) = struct.unpack("<I", _need(read_at, 14, 4))
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sizes
        width, height = struct.unpack("<HH", _need(read_at, 18, 4))
    elif 16 <= dib_size <= 256:  # BITMAPINFOHEADER and later: signed 32-bit; negative height = top-down rows
        width, height = struct.unpack("<ii", _need(read_at, 18, 8))
        height = abs(height)
    else:
        raise _Corrupt(f"BMP has an unknown header size {dib_size}")
    return ImageFormat.BMP, width, height


def _tiff(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    head = _need(read_at, 0, 8)
    order = "<" if head[:2] == b"II" else ">"
    if struct.unpack(order + "H", head[2:4])[0] == 43:
        raise _Corrupt("BigTIFF is not supported")
    (ifd,) = struct.unpack(order + "I", head[4:8])
    if ifd < 8:
        raise _Corrupt(f"TIFF first IFD offset {ifd} points into the header")
    (count,) = struct.unpack(order + "H", _need(read_at, ifd, 2))
    if not 0 < count <= _MAX_TIFF_ENTRIES:
        raise _Corrupt(f"TIFF IFD has {count} entries")
    entries = _need(read_at, ifd + 2, 12 * count)
    sizes: dict[int, int] = {}
    for index in range(count):
        tag, kind, n = struct.unpack(order + "HHI", entries[12 * index : 12 * index + 8])
        if tag in (256, 257) and n == 1:  # ImageWidth, ImageLength: SHORT or LONG, stored inline
            value = entries[12 * index + 8 : 12 * index + 12]
            if kind == 3:
                sizes[tag] = struct.unpack(order + "H", value[:2])[0]
            elif kind == 4:
                sizes[tag] = struct.unpack(order + "I", value)[0]
    if 256 not in sizes or 257 not in sizes:
        raise _Corrupt("TIFF IFD lacks ImageWidth or ImageLength")
    return ImageFormat.TIFF, sizes[256], sizes[257]


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


def _jpeg(read_at: ReadAt) -> tuple[ImageFormat, int, int]:
    # Walk the segment chain from marker to marker, seeking over each segment's payload (EXIF
    # blocks and embedded thumbnails can be tens of KB), until the frame header.
    offset = 2
    for _ in range(_MAX_JPEG_SEGMENTS):
        if _need(read_at, offset, 1) != b"\xff":
            raise _Corrupt(f"JPEG has no marker at byte {offset}")
        for _ in range(_MAX_FILL_BYTES):  # any number of 0xFF fill bytes may precede a marker
            marker = _need(read_at, offset + 1, 1)[0]
            if marker != 0xFF:
                break
            offset += 1
        else:
            raise _Corrupt("JPEG has a run of fill bytes")
        if marker in _STANDALONE_MARKERS:
            offset += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            raise _Corrupt("JPEG has no frame header before its image data")
        (length,) = struct.unpack(">H", _need(read_at, offset + 2, 2))
        if length < 2:
            raise _Corrupt(f"JPEG segment at byte {offset} has length {length}")
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", _need(read_at, offset + 5, 4))
            if height == 0:
                raise _Corrupt("JPEG defines its height later (DNL marker); not supported")
            return ImageFormat.JPEG, width, height
        offset += 2 + length
    raise _Corrupt(f"JPEG has more than {_MAX_JPEG_SEGMENTS} segments before its frame header")


# -- model rules ---------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ImageRules:
    """What a model accepts as an input image: formats (None: any) and side limits in pixels."""

    formats: frozenset[ImageFormat] | None = None
    min_side: int | None = None
    max_side: int | None = None

    def check(self, info: ImageInfo, *, field: str, model: str = "this model") -> None:
        """Raise :class:`ValidationError` on ``field`` if ``info`` breaks a rule."""
        if self.formats is not None and info.format not in self.formats:
            allowed = ", ".join(sorted(f.value.upper() for f in self.formats))
            raise ValidationError(field, f"{model} accepts {allowed} images, this is {info.format.value.upper()}")
        low, high = self.min_side or 1, self.max_side
        if info.width < low or info.height < low or (high is not None and max(info.width, info.height) > high):
            limits = f"[{low}, {high}]" if high is not None else f">= {low}"
            raise ValidationError(
                field, f"{model} needs width and height in {limits} px, this is {info.width}x{info.height}"
            )


_SIDE_LIMITS = {"qwen-image-edit": (384, 3072)}  # API.md A2


def rules_for_model(model: str) -> ImageRules | None:
    """The documented image rules of ``model``, or None when none are known."""
    model_rules = MODEL_RULES.get(model)
    extensions = model_rules.extensions if model_rules is not None else None
    formats = None if extensions is None else frozenset(filter(None, map(format_for_suffix, extensions)))
    min_side, max_side = _SIDE_LIMITS.get(model, (None, None))
    if formats is None and min_side is None and max_side is None:
        return None
    return ImageRules(formats=formats, min_side=min_side, max_side=max_side)


def check_image(source: str | os.PathLike[str] | bytes, *, model: str, field: str | None = None) -> ImageInfo:
    """Probe ``source`` and check it against ``model``'s documented rules; returns the probe.

    >>> check_image(path, model="qwen-image-edit")  # doctest: +SKIP
    ImageInfo(format=<ImageFormat.PNG: 'png'>, width=1024, height=1024)
    """
    info = probe_image(source, field=field)
    rules = rules_for_model(model)
    if rules is not None:
        name = field or ("image" if isinstance(source, bytes | bytearray | memoryview) else os.path.basename(source))
        rules.check(info, field=name, model=model)
    return info
