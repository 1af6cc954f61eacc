"""Local images the service would refuse, made acceptable: the optional ``[images]`` extra (Pillow).

A local image must be a type the Files API stores (JPEG, PNG, GIF, WebP by content; API.md A6) and
keep the model's rules (``qwen-image-edit``: each side in 384-3072 px; A2). :func:`plan_image` says,
from the header alone, whether an image is fine as it is, can be normalized, or must be refused;
:func:`normalize_image` (blocking: run it in a thread) writes the normalized copy:

- BMP, TIFF (and HEIC/HEIF where the ``pillow-heif`` plugin is installed) become PNG;
- the EXIF orientation is applied to the pixels (a portrait photo stays a portrait);
- sides are scaled, keeping the aspect ratio, into the model's range (refused when no scale can:
  100x5000 px cannot fit 384-3072);
- metadata (EXIF, XMP, ICC text chunks, comments) is not carried over: only pixels are written.

Copies are written to a folder the caller names (the batch: ``.evolink-normalized`` next to its
journal), never over the user's image. Without Pillow, an image that needs normalizing is refused
with a :class:`~evolink_async.ValidationError` that names the file, the rule and the extra to install.

>>> plan = plan_image(Path("scan.bmp"), model="qwen-image-edit", field="scan.bmp", normalize=True)
>>> plan.needed
True
>>> normalize_image(Path("scan.bmp"), Path("out/.evolink-normalized"), model="qwen-image-edit", name="scan.bmp")
PosixPath('out/.evolink-normalized/scan.bmp-3f1c0a9e.png')
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path
from typing import Any

import attrs

from ..errors import Remedy, ValidationError
from .image_probe import ImageInfo, ImageProbeError, check_image, probe_image, rules_for_model
from .local_images import FILES_API_FORMATS, check_upload_format
from .safe_paths import safe_file_name

__all__ = ["INSTALL_HINT", "ImagePlan", "normalize_available", "normalize_image", "plan_image"]

INSTALL_HINT = 'pip install "evolink-async[images]"'
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
#: Pixels Pillow may decode from one input (a 100-megapixel photo, not a decompression bomb).
_MAX_PIXELS = 200_000_000


def normalize_available() -> bool:
    """Whether Pillow (the ``[images]`` extra) is installed and imports."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


def _heif_opener() -> bool:
    """Register pillow-heif's HEIC/HEIF opener, if that plugin is installed."""
    if importlib.util.find_spec("pillow_heif") is None:
        return False
    import pillow_heif  # type: ignore[import-not-found, unused-ignore]

    pillow_heif.register_heif_opener()
    return True


def _is_heif(path: Path) -> bool:
    with open(path, "rb") as handle:
        head = handle.read(12)
    return head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS


@attrs.frozen(kw_only=True)
class ImagePlan:
    """What an input needs: ``needed`` (a normalized copy) or not; ``info`` from its header (None for HEIC)."""

    needed: bool
    info: ImageInfo | None = None


def plan_image(path: Path, *, model: str, field: str, normalize: bool) -> ImagePlan:
    """Check a local image (blocking; reads headers only): fine, to be normalized, or refused.

    Raises :class:`ValidationError` naming ``field`` when the image is refused: a broken rule and
    ``normalize`` off (the message says how to normalize), or normalizing asked for without Pillow,
    or a rule no normalizing can mend (a corrupt file, an aspect ratio no scale fits).
    """
    if _is_heif(path):
        if not normalize:
            raise ValidationError(field, "the Files API does not store HEIC/HEIF images; convert it, or normalize it "
                                  f"({Remedy.NORMALIZE}, needs {INSTALL_HINT} and pillow-heif)",
                                  remedy=Remedy.NORMALIZE)  # fmt: skip
        _need_pillow(field, "is a HEIC/HEIF image")
        if not _heif_opener():
            raise ValidationError(field, "is a HEIC/HEIF image: normalizing it needs the pillow-heif plugin "
                                  "(pip install pillow-heif), or convert it to JPEG or PNG")  # fmt: skip
        return ImagePlan(needed=True)
    info = probe_image(path, field=field)
    try:
        check_image(path, model=model, field=field)
        check_upload_format(info, field=field)
    except ValidationError as exc:
        if not normalize:
            raise ValidationError(field, f"{exc.rule}; normalize it ({Remedy.NORMALIZE}, needs {INSTALL_HINT})",
                                  remedy=Remedy.NORMALIZE) from None  # fmt: skip
        _need_pillow(field, exc.rule)
        _scale_for(info.width, info.height, model=model, field=field)  # refused here if no scale fits
        return ImagePlan(needed=True, info=info)
    if normalize and normalize_available() and _rotated(path):
        return ImagePlan(needed=True, info=info)
    return ImagePlan(needed=False, info=info)


def _need_pillow(field: str, rule: str) -> None:
    if not normalize_available():
        raise ValidationError(field, f"{rule}; normalizing it needs Pillow: {INSTALL_HINT}")


def _rotated(path: Path) -> bool:
    """Whether a JPEG/TIFF/WebP carries an EXIF orientation other than "as stored" (Pillow installed)."""
    from PIL import Image

    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
    return orientation not in (1, None)


def _scale_for(width: int, height: int, *, model: str, field: str) -> float:
    """The factor that brings both sides into the model's range (1.0 when they are), or refuse."""
    rules = rules_for_model(model)
    low = (rules.min_side if rules else None) or 1
    high = rules.max_side if rules else None
    scale = 1.0
    if min(width, height) < low:
        scale = low / min(width, height)
    if high is not None and max(width, height) * scale > high:
        scale = high / max(width, height)
        if min(width, height) * scale < low:
            raise ValidationError(field, f"is {width}x{height} px: no scale fits both sides into [{low}, {high}] px "
                                  f"for {model}; crop it")  # fmt: skip
    return scale


def normalize_image(source: Path, folder: Path, *, model: str, name: str) -> Path:
    """Write a normalized PNG copy of ``source`` into ``folder`` and return its path (blocking).

    The copy's name is derived from ``name`` and the source's content signature (size, mtime), so
    a changed input never reuses a stale copy; it is written to a temporary name and renamed.
    """
    from PIL import Image, ImageOps

    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS
    if _is_heif(source):
        _heif_opener()
    stat = source.stat()
    signature = f"{source.resolve()}\0{name}\0{stat.st_size}\0{stat.st_mtime_ns}\0{model}"
    digest = hashlib.sha256(signature.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    target = folder / f"{safe_file_name(name, default='image')}-{digest}.png"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with Image.open(source) as opened:
            image: Any = ImageOps.exif_transpose(opened)
            image.load()
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageProbeError(name, f"cannot be decoded for normalizing: {exc}") from None
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    scale = _scale_for(image.width, image.height, model=model, field=name)
    if scale != 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS)
    # Only the pixels go out: a fresh image has no EXIF, XMP, ICC or text chunks to carry over.
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        clean.save(partial, format="PNG")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    written = probe_image(target, field=name)
    assert written.format in FILES_API_FORMATS
    return target
