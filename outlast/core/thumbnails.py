"""Thumbnail geometry and rendering: which size to make, and the scaled image bytes.

Pure: bytes (or a file) in, bytes out; no log, no view, no HTTP. The media
service decides where sources come from and where results are cached.

Only a fixed set of sizes is ever produced (``media.thumbnail_sizes``, by
default the spec's recommended 32x32 crop, 96x96 crop, 320x240, 640x480 and
800x600 scale): a request is answered with the smallest configured size of
its method that is at least as large as asked, so a client cannot make the
server render and cache an unbounded number of variants.

- ``scale`` keeps the aspect ratio and fits the image inside the box.
- ``crop`` fills the box exactly (scale to cover, then cut the centre).
- Never upscale: a source no larger than the box is served as it is.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

METHODS = ("crop", "scale")
# Formats the thumbnailer reads, and what it writes for each (static images only).
THUMBNAIL_TYPES = {
    "image/png": ("PNG", "image/png"),
    "image/jpeg": ("JPEG", "image/jpeg"),
    "image/jpg": ("JPEG", "image/jpeg"),
    "image/gif": ("PNG", "image/png"),
    "image/webp": ("WEBP", "image/webp"),
}
PIL_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
# Decompression-bomb guard: refuse sources with more pixels than this (the
# default of ``media.max_thumbnail_pixels``; Synapse uses the same 32 MP).
MAX_PIXELS = 32_000_000
# A WebP counts this many times against the budget: Pillow decodes it through
# libwebp's canvas, a copy of it and the image itself (bench/thumbnails.py).
WEBP_COST = 3


class CannotThumbnail(Exception):
    """The content is not an image this server can thumbnail (spec: 400)."""


class TooLarge(Exception):
    """The image is too large to thumbnail (spec: 413 M_TOO_LARGE)."""


@dataclass(frozen=True)
class Size:
    width: int
    height: int
    method: str

    @property
    def key(self) -> str:
        return f"{self.width}x{self.height}-{self.method}"


def parse_sizes(specs: list[str]) -> list[Size]:
    """Parse ``"WxH-method"`` strings; ValueError names the first bad one."""
    sizes = []
    for spec in specs:
        dims, _, method = spec.partition("-")
        width, _, height = dims.partition("x")
        if method not in METHODS or not width.isdigit() or not height.isdigit():
            raise ValueError(f"{spec!r} is not WIDTHxHEIGHT-crop or WIDTHxHEIGHT-scale")
        if not (0 < int(width) <= 4096 and 0 < int(height) <= 4096):
            raise ValueError(f"{spec!r}: dimensions must be between 1 and 4096")
        sizes.append(Size(int(width), int(height), method))
    return sizes


def choose(sizes: list[Size], width: int, height: int, method: str) -> Size | None:
    """The smallest configured size of ``method`` covering the request, else the largest."""
    same = sorted((s for s in sizes if s.method == method), key=lambda s: s.width * s.height)
    if not same:
        same = sorted(sizes, key=lambda s: s.width * s.height)
    if not same:
        return None
    for size in same:
        if size.width >= width and size.height >= height:
            return size
    return same[-1]


def target_dimensions(source: tuple[int, int], size: Size) -> tuple[int, int] | None:
    """Output dimensions for a source, or None when the source is already small enough."""
    w, h = source
    if w <= size.width and h <= size.height:
        return None
    if size.method == "scale":
        factor = min(size.width / w, size.height / h)
        return max(1, round(w * factor)), max(1, round(h * factor))
    # crop: the box exactly, unless one side of the source is already smaller
    # than the box's (no upscaling); then that side is kept.
    return min(w, size.width), min(h, size.height)


# EXIF orientation -> the transposition that shows the image upright (ImageOps'
# table); 5-8 swap width and height.
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112


def thumbnail(
    source: IO[bytes] | bytes, content_type: str, size: Size, max_pixels: int = MAX_PIXELS
) -> tuple[bytes, str] | None:
    """Render ``source`` at ``size``: (bytes, content type), or None to serve the original.

    Memory is bounded by the pixel budget: the header is checked before any
    pixel is decoded; JPEG is decoded at 1/2, 1/4 or 1/8 scale straight from
    its DCT coefficients (``draft``); other formats are shrunk by a whole
    factor first (``reducing_gap``) and only the small copy is rotated and
    filtered. Raises CannotThumbnail for non-images and undecodable data,
    TooLarge for images with more than ``max_pixels`` pixels.
    """
    base = content_type.split(";")[0].strip().lower()
    if base not in THUMBNAIL_TYPES:
        raise CannotThumbnail(f"cannot thumbnail {base or 'unknown'} content")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    head = stream.read(32)
    stream.seek(0)
    webp = webp_size(head)
    if webp is not None and webp[0] * webp[1] * WEBP_COST > max_pixels:
        # Checked before Pillow opens it: its WebP decoder allocates the whole
        # canvas as soon as the file is opened.
        raise TooLarge("image has too many pixels to thumbnail")
    try:
        # Only the formats we thumbnail are even identified: no other decoder runs.
        with Image.open(stream, formats=list(PIL_FORMATS)) as image:
            if image.format not in PIL_FORMATS:
                raise CannotThumbnail("not a supported image format")
            cost = WEBP_COST if image.format == "WEBP" else 1
            if image.width * image.height * cost > max_pixels:
                raise TooLarge("image has too many pixels to thumbnail")
            transpose = _ORIENTATIONS.get(image.getexif().get(_EXIF_ORIENTATION, 1))
            turned = transpose in _SWAPS
            upright = (image.height, image.width) if turned else image.size
            dims = target_dimensions(upright, size)
            if dims is None:
                return None
            out_format, out_type = THUMBNAIL_TYPES[PIL_FORMATS[image.format]]
            scaled = _scaled(upright, dims, size.method)
            want = (scaled[1], scaled[0]) if turned else scaled  # in the file's orientation
            if image.format == "JPEG":
                image.draft(image.mode, want)
            small = _rgb(image).resize(want, Image.Resampling.LANCZOS, reducing_gap=3.0)
            if transpose is not None:
                small = small.transpose(transpose)
            if size.method == "crop":
                small = _crop_centre(small, dims)
            return _encode(small, out_format), out_type
    except Image.DecompressionBombError:
        raise TooLarge("image has too many pixels to thumbnail") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        # Never the decoder's message: it can name internal objects.
        raise CannotThumbnail("cannot decode the image") from None


def webp_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP file's first 30 bytes (None: not a WebP).

    The three bitstream headers of the WebP container spec: VP8X (extended:
    24-bit canvas size minus one), VP8L (lossless: 14-bit sizes minus one
    after a 0x2f signature) and VP8 (lossy: 14-bit sizes after the key-frame
    start code)."""
    if len(head) < 30 or head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8L" and head[20] == 0x2F:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    return None


_SWAPS = (
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
)


def _scaled(source: tuple[int, int], dims: tuple[int, int], method: str) -> tuple[int, int]:
    """The size to resample to: ``dims`` for scale; for crop, the cover of the box."""
    if method == "scale":
        return dims
    w, h = source
    box_w, box_h = dims
    factor = max(box_w / w, box_h / h)
    if factor >= 1:
        return source
    return max(box_w, math.ceil(w * factor)), max(box_h, math.ceil(h * factor))


def _rgb(image: Image.Image) -> Image.Image:
    """A mode the filters work in (palette and exotic modes lose nothing as RGB/RGBA)."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    alpha = "transparency" in image.info or image.mode in ("P", "PA", "RGBa", "LA")
    return image.convert("RGBA" if alpha else "RGB")


def _crop_centre(image: Image.Image, dims: tuple[int, int]) -> Image.Image:
    w, h = image.size
    box_w, box_h = dims
    left, top = (w - box_w) // 2, (h - box_h) // 2
    return image.crop((left, top, left + box_w, top + box_h))


def _encode(image: Image.Image, out_format: str) -> bytes:
    out = io.BytesIO()
    if out_format == "JPEG":
        if image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(out, "JPEG", quality=85, optimize=True)
    elif out_format == "WEBP":
        image.save(out, "WEBP", quality=85)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()
