"""Header probing on images built byte by byte here (no Pillow), and on broken ones."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from evolink_async._files.image_probe import (
    ImageFormat,
    ImageInfo,
    ImageProbeError,
    ImageRules,
    check_image,
    format_for_suffix,
    probe_image,
    rules_for_model,
    suffix_for_format,
)
from evolink_async.errors import ValidationError

# -- builders -------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A complete, decodable 8-bit greyscale PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(width) for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def jpeg(width: int, height: int, *, sof: int = 0xC0, exif_kb: int = 0, fill: int = 0) -> bytes:
    """JPEG markers as a camera writes them: JFIF, a large EXIF block, tables, then the frame header."""

    def segment(marker: int, payload: bytes) -> bytes:
        return b"\xff" * fill + bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload

    out = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    for _ in range(exif_kb // 60):  # segments are at most 64 KiB: a big EXIF block is several
        out += segment(0xE1, b"Exif\x00\x00" + bytes(60 * 1024))
    out += segment(0xDB, b"\x00" + bytes(range(64)))  # quantization table
    out += b"\xff\xd0"  # a stray restart marker: standalone, no length
    out += segment(sof, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    out += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + b"\x00" * 16 + b"\xff\xd9"
    return out


def gif(width: int, height: int) -> bytes:
    """A complete one-colour GIF89a."""
    return (
        b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
        + b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0) + b"\x02\x02\x44\x01\x00" + b"\x3b"
    )  # fmt: skip


def riff(chunk: bytes, payload: bytes) -> bytes:
    body = b"WEBP" + chunk + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def webp_lossy(width: int, height: int) -> bytes:
    return riff(b"VP8 ", b"\x30\x01\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + bytes(10))


def webp_lossless(width: int, height: int) -> bytes:
    bits = (width - 1) | (height - 1) << 14
    return riff(b"VP8L", b"\x2f" + struct.pack("<I", bits) + bytes(8))


def webp_extended(width: int, height: int) -> bytes:
    flags = b"\x10\x00\x00\x00"  # alpha
    return riff(b"VP8X", flags + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def bmp(width: int, height: int, *, top_down: bool = False) -> bytes:
    row = (width * 3 + 3) // 4 * 4
    info = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, 24, 0, row * height, 0, 0, 0, 0)
    pixels = bytes(row * height)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(pixels), 0, 0, 54) + info + pixels


def bmp_core(width: int, height: int) -> bytes:
    return b"BM" + struct.pack("<IHHI", 26, 0, 0, 26) + struct.pack("<IHHHH", 12, width, height, 1, 24)


def tiff(width: int, height: int, *, order: str = "<", pixels: int = 4096) -> bytes:
    """A TIFF whose IFD sits after the pixel data, as many writers put it: the probe must seek."""
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    ifd_offset = 8 + pixels
    entries = [
        struct.pack(order + "HHI", 256, 3, 1) + struct.pack(order + "H", width) + b"\x00\x00",  # SHORT
        struct.pack(order + "HHII", 257, 4, 1, height),  # LONG
        struct.pack(order + "HHIHH", 258, 3, 1, 8, 0),
    ]
    ifd = struct.pack(order + "H", len(entries)) + b"".join(entries) + struct.pack(order + "I", 0)
    return magic + struct.pack(order + "I", ifd_offset) + bytes(pixels) + ifd


CASES = {
    "photo.png": (png(640, 480), ImageFormat.PNG),
    "photo.jpg": (jpeg(4032, 3024, exif_kb=180, fill=2), ImageFormat.JPEG),
    "progressive.jpg": (jpeg(800, 600, sof=0xC2), ImageFormat.JPEG),
    "anim.gif": (gif(320, 200), ImageFormat.GIF),
    "lossy.webp": (webp_lossy(1024, 768), ImageFormat.WEBP),
    "lossless.webp": (webp_lossless(3000, 16383), ImageFormat.WEBP),
    "extended.webp": (webp_extended(16777, 2), ImageFormat.WEBP),
    "bottom-up.bmp": (bmp(33, 17), ImageFormat.BMP),
    "top-down.bmp": (bmp(33, 17, top_down=True), ImageFormat.BMP),
    "os2.bmp": (bmp_core(33, 17), ImageFormat.BMP),
    "intel.tiff": (tiff(1234, 567), ImageFormat.TIFF),
    "motorola.tif": (tiff(1234, 567, order=">"), ImageFormat.TIFF),
}
SIZES = {
    "photo.png": (640, 480), "photo.jpg": (4032, 3024), "progressive.jpg": (800, 600), "anim.gif": (320, 200),
    "lossy.webp": (1024, 768), "lossless.webp": (3000, 16383), "extended.webp": (16777, 2),
    "bottom-up.bmp": (33, 17), "top-down.bmp": (33, 17), "os2.bmp": (33, 17),
    "intel.tiff": (1234, 567), "motorola.tif": (1234, 567),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_probe_reads_format_and_size_from_a_file(tmp_path: Path, name: str) -> None:
    data, image_format = CASES[name]
    path = tmp_path / name
    path.write_bytes(data)
    width, height = SIZES[name]
    assert probe_image(path) == ImageInfo(format=image_format, width=width, height=height)
    assert probe_image(str(path)) == probe_image(data)  # a path and the whole bytes agree


def test_jpeg_behind_a_large_exif_block_is_found_by_seeking(tmp_path: Path) -> None:
    data = jpeg(100, 50, exif_kb=600)
    assert len(data) > 600_000
    path = tmp_path / "big-exif.jpg"
    path.write_bytes(data)
    assert probe_image(path).width == 100
    # The first 64 KiB do not contain the frame header: a head-only probe says so clearly.
    with pytest.raises(ImageProbeError, match="truncated"):
        probe_image(data[:65536])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "starts with nothing"),
        (b"hello world, this is text", "not a PNG, JPEG"),
        (b"\x00\x00\x01\x00" + bytes(40), "not a PNG, JPEG"),  # an .ico
        (png(10, 10)[:20], "truncated"),
        (png(10, 10)[:12] + b"IDAT" + png(10, 10)[16:], "IHDR"),
        (png(0, 10), "0x10"),
        (gif(0, 0), "0x0"),
        (b"\xff\xd8\xff\xd9", "no frame header"),
        (b"\xff\xd8\xff\xe0\x00\x00" + bytes(100), "length 0"),
        (b"\xff\xd8" + b"\xff\xe0\x00\x02" * 2000, "more than 1024 segments"),
        (b"\xff\xd8\xff\xe0\x00\x10" + bytes(14) + b"\x12\x34", "no marker"),
        (jpeg(0, 10)[:-30], "0x10"),  # cut inside the data, the frame header is still whole
        (riff(b"ALPH", bytes(20)), "unknown chunk"),
        (riff(b"VP8 ", bytes(20)), "start code"),
        (riff(b"VP8L", bytes(20)), "signature"),
        (b"BM" + bytes(12) + struct.pack("<I", 999) + bytes(40), "header size 999"),
        (b"II*\x00" + struct.pack("<I", 10_000) + bytes(10), "truncated"),
        (b"II*\x00" + struct.pack("<I", 4) + bytes(10), "points into the header"),
        (b"II+\x00" + bytes(20), "BigTIFF"),
        (b"MM\x00*" + struct.pack(">IH", 8, 1) + struct.pack(">HHII", 258, 3, 1, 8) + bytes(4), "lacks ImageWidth"),
    ],
)
def test_unknown_and_corrupt_inputs_fail_clearly(data: bytes, message: str) -> None:
    with pytest.raises(ImageProbeError, match=message) as caught:
        probe_image(data, field="upload.png")
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "upload.png"


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image at all")
    with pytest.raises(ImageProbeError) as caught:
        probe_image(path)
    assert caught.value.field == "notes.png"
    with pytest.raises(FileNotFoundError):
        probe_image(tmp_path / "missing.png")


def test_qwen_side_limits_are_checked_before_spending(tmp_path: Path) -> None:
    for width, height in [(384, 384), (3072, 3072), (384, 3072)]:
        assert check_image(png(width, height), model="qwen-image-edit").width == width
    for width, height in [(383, 1000), (1000, 383), (3073, 1000), (1000, 3073)]:
        with pytest.raises(ValidationError, match=r"\[384, 3072\] px") as caught:
            check_image(png(width, height), model="qwen-image-edit", field="image_urls[0]")
        assert caught.value.field == "image_urls[0]"
        assert f"{width}x{height}" in caught.value.rule
    path = tmp_path / "small.png"
    path.write_bytes(png(100, 100))
    with pytest.raises(ValidationError) as from_file:
        check_image(path, model="qwen-image-edit")
    assert from_file.value.field == "small.png"


def test_formats_per_model() -> None:
    with pytest.raises(ValidationError, match="qwen-image-edit accepts BMP, JPEG, PNG, TIFF, WEBP images, this is GIF"):
        check_image(gif(500, 500), model="qwen-image-edit")
    with pytest.raises(ValidationError, match="mj-v7-remove-bg accepts"):
        check_image(tiff(500, 500), model="mj-v7-remove-bg")
    assert check_image(gif(20, 20), model="mj-v7-remove-bg").format is ImageFormat.GIF  # no size limits known
    assert check_image(bmp(5, 5), model="some-future-model").format is ImageFormat.BMP  # unknown model: probe only
    assert rules_for_model("some-future-model") is None
    assert rules_for_model("qwen-image-edit") == ImageRules(
        formats=frozenset(ImageFormat) - {ImageFormat.GIF}, min_side=384, max_side=3072
    )


def test_suffixes() -> None:
    assert [suffix_for_format(f) for f in ImageFormat] == [".png", ".jpg", ".gif", ".webp", ".bmp", ".tiff"]
    assert suffix_for_format("jpeg") == ".jpg"
    with pytest.raises(ValueError, match="unknown image format"):
        suffix_for_format("heic")
    assert format_for_suffix(".JPEG") is ImageFormat.JPEG
    assert format_for_suffix(".tif") is ImageFormat.TIFF
    assert format_for_suffix(".heic") is None


def test_jpeg_height_defined_later_is_refused() -> None:
    with pytest.raises(ImageProbeError, match="DNL"):
        probe_image(jpeg(10, 0))


def test_fill_byte_runs_are_bounded() -> None:
    with pytest.raises(ImageProbeError, match="fill bytes"):
        probe_image(b"\xff\xd8" + b"\xff" * 500)
