"""What a stored file is, read from its bytes (never its name), and whether an image is whole.

The Files API stores JPEG, PNG, GIF and WebP images and any audio or video (API.md A6); BMP and
TIFF are refused although ``qwen-image-edit`` takes them by URL. The type comes from magic
bytes, as a server must decide it: a ``.png`` name on a BMP is still a BMP.

``image_intact`` is the check a task makes when it downloads its input: a truncated or corrupt
image fails the task with ``image_processing_error``. It walks the container structure (PNG
chunks and their CRCs, JPEG segments up to the scan and its end marker, GIF trailer, the RIFF
length of WebP) without decoding pixels, so it costs one pass over the bytes.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["IMAGE_TYPES", "KNOWN_SUFFIXES", "REFUSED_IMAGE_TYPES", "extension_for", "image_intact", "sniff", "storable"]

#: Image types the Files API stores (A6).
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
#: Images recognised only to be refused by name in the 40002 message.
REFUSED_IMAGE_TYPES = frozenset({"image/bmp", "image/tiff"})

_PNG = b"\x89PNG\r\n\x1a\n"
_PREFIXES: tuple[tuple[bytes, str], ...] = (
    (_PNG, "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"ID3", "audio/mpeg"),
    (b"fLaC", "audio/flac"),
    (b"OggS", "audio/ogg"),
    (b"\x1aE\xdf\xa3", "video/webm"),  # EBML: WebM and Matroska
)
_RIFF_KINDS = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
# ISO base media (MP4 family): the brand after ``ftyp`` tells audio from video.
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")
_EXTENSIONS = {
    "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
    "audio/mpeg": ".mp3", "audio/flac": ".flac", "audio/ogg": ".ogg", "audio/wav": ".wav", "audio/mp4": ".m4a",
    "video/mp4": ".mp4", "video/quicktime": ".mov", "video/webm": ".webm", "video/x-msvideo": ".avi",
}  # fmt: skip
#: Name endings that already say what a file is (a stored name gets one when it has none).
KNOWN_SUFFIXES = (*_EXTENSIONS.values(), ".jpeg", ".mkv", ".m4v", ".opus", ".oga")


def sniff(data: bytes) -> str | None:
    """The MIME type of ``data`` by its magic bytes, or None when it is nothing recognised."""
    if data[:4] == b"RIFF":
        return _RIFF_KINDS.get(data[8:12])
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand in _AUDIO_BRANDS:
            return "audio/mp4"
        return "video/quicktime" if brand == b"qt  " else "video/mp4"
    for prefix, mime in _PREFIXES:
        if data.startswith(prefix):
            return mime
    # MPEG audio without an ID3 tag starts with a frame sync (11 set bits), layer bits non-zero.
    if len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0 and data[1] & 0x06:
        return "audio/mpeg"
    return None


def storable(mime: str) -> bool:
    """True for what the Files API keeps: the four image types, any audio, any video."""
    return mime in IMAGE_TYPES or mime.startswith(("audio/", "video/"))


def extension_for(mime: str) -> str:
    return _EXTENSIONS.get(mime, "")


def image_intact(data: bytes) -> bool:
    """True when ``data`` is a whole JPEG, PNG, GIF or WebP image (structure checked, not pixels)."""
    mime = sniff(data)
    check = _CHECKS.get(mime) if mime is not None else None
    return check is not None and check(data)


def _png_intact(data: bytes) -> bool:
    position = len(_PNG)
    first = True
    while position + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, position)
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data) or (first and kind != b"IHDR"):
            return False
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(data[position + 4 : end - 4]) != crc:
            return False
        if kind == b"IEND":
            return True  # bytes after IEND are ignored by decoders, and here
        position, first = end, False
    return False


# Markers without a length field: SOI, EOI, RST0-7, TEM.
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})
_START_OF_FRAME = frozenset({*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC})


def _jpeg_intact(data: bytes) -> bool:
    position, frame = 2, False
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return False
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            position += 2
            continue
        (length,) = struct.unpack_from(">H", data, position + 2)
        if length < 2 or position + 2 + length > len(data):
            return False
        frame = frame or marker in _START_OF_FRAME
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the end-of-image marker
            return frame and data.rfind(b"\xff\xd9", position + 2 + length) != -1
        position += 2 + length
    return False


def _gif_intact(data: bytes) -> bool:
    # Header (6) + logical screen descriptor (7), at least one block, and the 0x3B trailer.
    return len(data) > 14 and data.rstrip(b"\x00").endswith(b";")


def _webp_intact(data: bytes) -> bool:
    (size,) = struct.unpack_from("<I", data, 4)
    # The RIFF size counts everything after its own field; a truncated file is shorter than it says.
    return len(data) >= 8 + size and size >= 12 and data[12:16] in (b"VP8 ", b"VP8L", b"VP8X")


_CHECKS = {"image/png": _png_intact, "image/jpeg": _jpeg_intact, "image/gif": _gif_intact, "image/webp": _webp_intact}
