"""Thumbnail size choice and rendering, without a server."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from outlast.core import thumbnails
from outlast.core.thumbnails import Size

DEFAULTS = thumbnails.parse_sizes(
    ["32x32-crop", "96x96-crop", "320x240-scale", "640x480-scale", "800x600-scale"]
)


def png(size: tuple[int, int], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size).save(out, "PNG")
    return out.getvalue()


def test_parse_sizes_rejects_nonsense() -> None:
    for bad in (["32x32"], ["32x32-stretch"], ["0x5-crop"], ["axb-scale"], ["5000x5-crop"]):
        with pytest.raises(ValueError):
            thumbnails.parse_sizes(bad)


def test_choose_covers_the_request_with_the_smallest_size_of_its_method() -> None:
    assert thumbnails.choose(DEFAULTS, 10, 10, "crop") == Size(32, 32, "crop")
    assert thumbnails.choose(DEFAULTS, 33, 20, "crop") == Size(96, 96, "crop")
    assert thumbnails.choose(DEFAULTS, 500, 500, "crop") == Size(96, 96, "crop")  # largest
    assert thumbnails.choose(DEFAULTS, 320, 241, "scale") == Size(640, 480, "scale")
    assert thumbnails.choose([], 1, 1, "scale") is None


def test_target_dimensions_never_upscale() -> None:
    assert thumbnails.target_dimensions((100, 50), Size(320, 240, "scale")) is None
    assert thumbnails.target_dimensions((1000, 500), Size(320, 240, "scale")) == (320, 160)
    assert thumbnails.target_dimensions((500, 1000), Size(320, 240, "scale")) == (120, 240)
    assert thumbnails.target_dimensions((1000, 500), Size(96, 96, "crop")) == (96, 96)
    assert thumbnails.target_dimensions((50, 500), Size(96, 96, "crop")) == (50, 96)


def test_render_png_with_alpha_and_palette() -> None:
    for mode in ("RGBA", "P", "L"):
        data, kind = thumbnails.thumbnail(
            png((400, 300), mode), "image/png", Size(96, 96, "crop")
        ) or (b"", "")
        assert kind == "image/png"
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (96, 96)


def test_small_image_is_served_as_it_is() -> None:
    assert thumbnails.thumbnail(png((20, 20)), "image/png", Size(32, 32, "crop")) is None


def test_refusals() -> None:
    with pytest.raises(thumbnails.CannotThumbnail):
        thumbnails.thumbnail(b"%PDF-1.4", "application/pdf", Size(32, 32, "crop"))
    with pytest.raises(thumbnails.CannotThumbnail):
        thumbnails.thumbnail(b"garbage", "image/png", Size(32, 32, "crop"))
    with pytest.raises(thumbnails.CannotThumbnail):  # declared JPEG, really a BMP
        out = io.BytesIO()
        Image.new("RGB", (64, 64)).save(out, "BMP")
        thumbnails.thumbnail(out.getvalue(), "image/jpeg", Size(32, 32, "crop"))
    huge = io.BytesIO()
    Image.new("1", (9000, 9000)).save(huge, "PNG")  # 81 Mpx, a few KB on disk
    with pytest.raises(thumbnails.TooLarge):
        thumbnails.thumbnail(huge.getvalue(), "image/png", Size(32, 32, "crop"))
