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


def jpeg(size: tuple[int, int], orientation: int = 1) -> bytes:
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", size, (10, 200, 30)).save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def rendered(data: bytes, size: Size) -> Image.Image:
    result = thumbnails.thumbnail(data, "image/jpeg", size)
    assert result is not None and result[1] == "image/jpeg"
    return Image.open(io.BytesIO(result[0]))


def test_exif_orientation_is_applied_to_the_thumbnail() -> None:
    # Stored 400x200, shown upright (rotated a quarter turn) as 200x400.
    with rendered(jpeg((400, 200), 6), Size(320, 240, "scale")) as img:
        assert img.size == (120, 240)
    with rendered(jpeg((400, 200), 1), Size(320, 240, "scale")) as img:
        assert img.size == (320, 160)


def test_large_jpeg_is_decoded_at_reduced_scale_with_exact_output() -> None:
    with rendered(jpeg((4000, 3000)), Size(96, 96, "crop")) as img:
        assert img.size == (96, 96)
        pixel = img.getpixel((48, 48))
        assert isinstance(pixel, tuple) and pixel[1] > 150  # the content survived the decode


def test_the_pixel_budget_is_a_parameter_and_webp_counts_three_times() -> None:
    with pytest.raises(thumbnails.TooLarge):
        thumbnails.thumbnail(png((200, 200)), "image/png", Size(32, 32, "crop"), max_pixels=39_999)
    assert thumbnails.thumbnail(png((200, 200)), "image/png", Size(32, 32, "crop"), 40_000)
    out = io.BytesIO()
    Image.new("RGB", (200, 200)).save(out, "WEBP")
    assert thumbnails.webp_size(out.getvalue()[:32]) == (200, 200)
    with pytest.raises(thumbnails.TooLarge):
        thumbnails.thumbnail(out.getvalue(), "image/webp", Size(32, 32, "crop"), 119_999)
    assert thumbnails.thumbnail(out.getvalue(), "image/webp", Size(32, 32, "crop"), 120_000)


def test_decoder_errors_never_reach_the_message() -> None:
    with pytest.raises(thumbnails.CannotThumbnail) as info:
        thumbnails.thumbnail(png((300, 300))[:300], "image/png", Size(32, 32, "crop"))
    assert str(info.value) == "cannot decode the image"
