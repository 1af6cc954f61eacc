"""A pure-Python PNG codec, just enough for result images.

``encode`` writes 8-bit RGB or RGBA, unfiltered rows, zlib-compressed: any decoder opens it.
``decode`` reads 8-bit, non-interlaced PNGs of every colour type (grey, RGB, palette, grey+alpha,
RGBA) into RGBA, so a result can be derived from an input uploaded to the sandbox. Anything else
(16-bit, interlaced, JPEG, too large) makes ``decode`` return None and the caller generate the
result instead: an emulator should never fail a task over its own codec.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import attrs

__all__ = ["Image", "colour_of", "decode", "encode", "png_size"]

SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Decoding is plain Python; past this many pixels it would hold the CPU for seconds.
MAX_DECODE_PIXELS = 1_000_000
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@attrs.frozen
class Image:
    """``width`` x ``height`` pixels, ``pixels`` as RGBA bytes, row after row."""

    width: int
    height: int
    pixels: bytes = attrs.field(repr=False)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode(image: Image, *, alpha: bool = True) -> bytes:
    """PNG bytes of ``image`` (RGBA, or RGB when ``alpha`` is false)."""
    stride = image.width * 4
    rows = []
    for y in range(image.height):
        row = image.pixels[y * stride : (y + 1) * stride]
        if not alpha:
            rgb = bytearray(image.width * 3)
            for channel in range(3):
                rgb[channel::3] = row[channel::4]
            row = bytes(rgb)
        rows.append(b"\x00" + row)  # filter type 0: "None"
    header = struct.pack(">IIBBBBB", image.width, image.height, 8, 6 if alpha else 2, 0, 0, 0)
    idat = zlib.compress(b"".join(rows), 6)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG header, without decoding it."""
    if len(data) < 24 or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks = []
    offset = len(SIGNATURE)
    while offset + 8 <= len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        chunks.append((kind, data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
        if kind == b"IEND":
            break
    return chunks


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(raw: bytes, width: int, height: int, bpp: int) -> bytes | None:
    stride = width * bpp
    out = bytearray(stride * height)
    previous = bytearray(stride)
    offset = 0
    for y in range(height):
        kind = raw[offset]
        line = bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += stride + 1
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = previous[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + _paeth(left, previous[i], up_left)) & 0xFF
        elif kind != 0:
            return None
        out[y * stride : (y + 1) * stride] = line
        previous = line
    return bytes(out)


def _to_rgba(flat: bytes, color_type: int, pixels: int, palette: bytes, transparency: bytes) -> bytes:
    rgba = bytearray(b"\xff" * (pixels * 4))
    if color_type == 6:
        return flat
    if color_type == 2:
        for channel in range(3):
            rgba[channel::4] = flat[channel::3]
    elif color_type in (0, 4):
        step = 1 if color_type == 0 else 2
        grey = flat[0::step]
        for channel in range(3):
            rgba[channel::4] = grey
        if color_type == 4:
            rgba[3::4] = flat[1::2]
    else:  # palette: expand indices through per-channel lookup tables
        entries = len(palette) // 3
        for channel in range(3):
            table = bytes(palette[3 * i + channel] if i < entries else 0 for i in range(256))
            rgba[channel::4] = flat.translate(table)
        alpha = bytes(transparency[i] if i < len(transparency) else 255 for i in range(256))
        rgba[3::4] = flat.translate(alpha)
    return bytes(rgba)


def decode(data: bytes) -> Image | None:
    """The RGBA image in ``data``, or None if it is not an 8-bit non-interlaced PNG (or too large)."""
    try:
        return _decode(data)
    except (struct.error, zlib.error, IndexError, ValueError):
        return None


def _decode(data: bytes) -> Image | None:
    if not data.startswith(SIGNATURE):
        return None
    chunks = _chunks(data)
    if not chunks or chunks[0][0] != b"IHDR":
        return None
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or interlace != 0 or color_type not in _CHANNELS:
        return None
    if width == 0 or height == 0 or width * height > MAX_DECODE_PIXELS:
        return None
    palette = b"".join(body for kind, body in chunks if kind == b"PLTE")
    transparency = b"".join(body for kind, body in chunks if kind == b"tRNS")
    bpp = _CHANNELS[color_type]
    expected = (width * bpp + 1) * height
    # Bounded inflate: a small file must not expand into gigabytes.
    inflater = zlib.decompressobj()
    raw = inflater.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"), expected)
    if len(raw) < expected:
        return None
    flat = _unfilter(raw, width, height, bpp)
    if flat is None:
        return None
    if color_type == 3 and not palette:
        return None
    return Image(width, height, _to_rgba(flat, color_type, width * height, palette, transparency))


def colour_of(*parts: object) -> tuple[int, int, int]:
    """An RGB colour fixed by ``parts``: generated images (both protocols') are the same for the same task."""
    digest = hashlib.sha256("\x00".join(str(p) for p in parts).encode()).digest()
    return digest[0], digest[1], digest[2]
