"""Tests for kmseg.io: reading every supported format and mode, the errors, and atomic writes.

Every input file is written inside the test by a real encoder (Pillow, tifffile, OpenCV),
or by the tiny PNG writer below where none of them writes the variant (16-bit grey+alpha).
"""

from __future__ import annotations

import errno
import hashlib
import os
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageFile, ImageOps

import kmseg.io as kio
from kmseg.errors import (
    CorruptImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageDataError,
    KmsegError,
    NotAnImageError,
    OutputError,
    OutputExistsError,
    OutputPermissionError,
    ParameterError,
    ParameterTypeError,
    ReadWarning,
)
from kmseg.io import load_image, save_image, write_bytes, write_files, write_json, write_text

from helpers import fill, small_disk, needs_sysfs

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# --------------------------------------------------------------------------- helpers


def rgb8(h: int = 4, w: int = 6) -> np.ndarray:
    """Small RGB image whose channels all differ: red != green != blue everywhere."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = 200 + np.arange(w, dtype=np.uint8)[None, :]
    a[..., 1] = 10 * np.arange(h, dtype=np.uint8)[:, None] + 50
    a[..., 2] = 7
    return a


def rgb16(h: int = 4, w: int = 6) -> np.ndarray:
    a = np.zeros((h, w, 3), np.uint16)
    a[..., 0] = 60000 + np.arange(w, dtype=np.uint16)[None, :]
    a[..., 1] = 300 * np.arange(h, dtype=np.uint16)[:, None] + 1
    a[..., 2] = 5
    return a


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(
    arr: np.ndarray, color_type: int, bit_depth: int, *, idat: bool = True, size: tuple[int, int] | None = None
) -> bytes:
    """A minimal PNG (filter 0 on every row) for variants no library here writes.

    *size* (width, height) overrides the size written in the header, for packed
    low-bit-depth rows and for headers that lie.
    """
    h, w = arr.shape[:2]
    if size is not None:
        w, h = size
    dtype = ">u2" if bit_depth == 16 else "u1"
    raw = b"".join(b"\x00" + row.astype(dtype).tobytes() for row in arr)
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, color_type, 0, 0, 0)
    body = png_chunk(b"IHDR", ihdr) + (png_chunk(b"IDAT", zlib.compress(raw)) if idat else b"")
    return b"\x89PNG\r\n\x1a\n" + body + png_chunk(b"IEND", b"")


def with_exif_orientation(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk carrying *orientation* right after IHDR."""
    exif = Image.Exif()
    exif[274] = orientation
    data = exif.tobytes()
    data = data[6:] if data.startswith(b"Exif\x00\x00") else data
    return png[:33] + png_chunk(b"eXIf", data) + png[33:]


def save_pil(path: Path, im: Image.Image, **options: object) -> Path:
    im.save(path, **options)
    return path


def cv2_png16(path: Path, rgb: np.ndarray) -> Path:
    bgr = rgb[..., ::-1] if rgb.shape[2] == 3 else rgb[..., [2, 1, 0, 3]]
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(bgr))
    assert ok
    path.write_bytes(buf.tobytes())
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(directory: Path, *keep: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def near(value: np.ndarray, colour: tuple[int, ...], tol: int = 12) -> bool:
    return bool(np.all(np.abs(value.astype(int) - np.array(colour)) <= tol))


# --------------------------------------------------------------------------- PNG modes


def test_rgb_png_is_rgb_order_uint8(tmp_path: Path) -> None:
    a = rgb8()
    out = load_image(save_pil(tmp_path / "a.png", Image.fromarray(a)))
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, a)
    assert out[0, 0, 0] == 200 and out[0, 0, 2] == 7  # index 0 is red, not blue


def test_rgba_png(tmp_path: Path) -> None:
    a = np.dstack([rgb8(), np.arange(24, dtype=np.uint8).reshape(4, 6) * 10])
    out = load_image(save_pil(tmp_path / "a.png", Image.fromarray(a)))
    assert out.shape == (4, 6, 4)
    np.testing.assert_array_equal(out, a)


def palette_image(transparent: bool) -> Image.Image:
    im = Image.new("P", (3, 2))
    im.putpalette([*RED, *GREEN, *BLUE])
    im.putdata([0, 1, 2, 2, 1, 0])
    if transparent:
        im.info["transparency"] = 1
    return im


def test_palette_png_becomes_rgb(tmp_path: Path) -> None:
    out = load_image(save_pil(tmp_path / "p.png", palette_image(False)))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0].tolist() == [list(RED), list(GREEN), list(BLUE)]
    assert out[1].tolist() == [list(BLUE), list(GREEN), list(RED)]


def test_palette_png_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    im = palette_image(True)
    out = load_image(save_pil(tmp_path / "p.png", im, transparency=1))
    assert out.shape == (2, 3, 4)
    assert out[..., 3].tolist() == [[255, 0, 255], [255, 0, 255]]
    assert out[0, 0].tolist() == [*RED, 255]


def test_grey_png_is_2d(tmp_path: Path) -> None:
    g = (np.arange(12, dtype=np.uint8) * 20).reshape(3, 4)
    out = load_image(save_pil(tmp_path / "g.png", Image.fromarray(g)))
    assert out.dtype == np.uint8 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, g)


def test_grey_alpha_png_becomes_rgba_with_grey_replicated(tmp_path: Path) -> None:
    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0] = (np.arange(12) * 20).reshape(3, 4)
    la[..., 1] = 255
    la[0, 0, 1] = 0
    im = Image.fromarray(la)
    assert im.mode == "LA"
    out = load_image(save_pil(tmp_path / "la.png", im))
    assert out.shape == (3, 4, 4) and out.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], la[..., 0])
    np.testing.assert_array_equal(out[..., 3], la[..., 1])


def test_16bit_grey_png_is_uint16(tmp_path: Path) -> None:
    g = (np.arange(12, dtype=np.uint16) * 5000 + 7).reshape(3, 4)
    im = Image.fromarray(g)
    assert im.mode == "I;16"
    out = load_image(save_pil(tmp_path / "g16.png", im))
    assert out.dtype == np.uint16 and out.shape == (3, 4)
    np.testing.assert_array_equal(out, g)


def test_16bit_rgb_png_keeps_16_bits_in_rgb_order(tmp_path: Path) -> None:
    a = rgb16()
    out = load_image(cv2_png16(tmp_path / "c16.png", a))
    assert out.dtype == np.uint16 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, a)
    assert out[0, 0, 0] == 60000 and out[0, 0, 2] == 5


def test_16bit_rgba_png(tmp_path: Path) -> None:
    a = np.dstack([rgb16(), np.full((4, 6), 1234, np.uint16)])
    out = load_image(cv2_png16(tmp_path / "c16a.png", a))
    assert out.dtype == np.uint16 and out.shape == (4, 6, 4)
    np.testing.assert_array_equal(out, a)


def test_16bit_grey_alpha_png_becomes_rgba_uint16(tmp_path: Path) -> None:
    la = np.zeros((3, 4, 2), np.uint16)
    la[..., 0] = 1000
    la[..., 1] = 65535
    la[0, 0] = (40000, 300)
    path = tmp_path / "la16.png"
    path.write_bytes(raw_png(la, color_type=4, bit_depth=16))
    out = load_image(path)
    assert out.dtype == np.uint16 and out.shape == (3, 4, 4)
    assert out[0, 0].tolist() == [40000, 40000, 40000, 300]
    assert out[1, 1].tolist() == [1000, 1000, 1000, 65535]


def test_bilevel_png_is_0_and_255(tmp_path: Path) -> None:
    bits = np.array([[True, False, True], [False, False, True]])
    im = Image.fromarray(bits)
    assert im.mode == "1"
    out = load_image(save_pil(tmp_path / "b.png", im))
    assert out.dtype == np.uint8 and out.shape == (2, 3)
    np.testing.assert_array_equal(out, bits.astype(np.uint8) * 255)


def test_low_bit_depth_grey_png_is_scaled_to_255(tmp_path: Path) -> None:
    g = np.array([[0, 1, 2, 3]], np.uint8)
    path = tmp_path / "g2.png"
    # 2-bit grey: pack the four 2-bit samples of the row into one byte
    packed = np.array([[0b00011011]], np.uint8)
    path.write_bytes(raw_png(packed, color_type=0, bit_depth=2, size=(4, 1)))
    out = load_image(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, g * 85)


# --------------------------------------------------------------------------- other formats


def blocks(h: int = 16, w: int = 32) -> np.ndarray:
    """Left half red, right half blue: flat blocks that survive JPEG."""
    a = np.zeros((h, w, 3), np.uint8)
    a[:, : w // 2] = RED
    a[:, w // 2 :] = BLUE
    return a


def test_jpeg_rgb(tmp_path: Path) -> None:
    out = load_image(save_pil(tmp_path / "a.jpg", Image.fromarray(blocks()), quality=95))
    assert out.dtype == np.uint8 and out.shape == (16, 32, 3)
    assert near(out[8, 4], RED) and near(out[8, 28], BLUE)


def test_grey_jpeg_is_2d(tmp_path: Path) -> None:
    out = load_image(save_pil(tmp_path / "g.jpg", Image.new("L", (8, 8), 90)))
    assert out.shape == (8, 8) and abs(int(out[4, 4]) - 90) <= 2


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(save_pil(tmp_path / "cmyk.jpg", im, quality=95))
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    assert near(out[8, 8], RED)


def test_multiframe_gif_gives_first_frame(tmp_path: Path) -> None:
    first = Image.fromarray(np.full((4, 5, 3), RED, np.uint8))
    second = Image.fromarray(np.full((4, 5, 3), BLUE, np.uint8))
    path = save_pil(tmp_path / "anim.gif", first, save_all=True, append_images=[second])
    with Image.open(path) as im:
        assert im.n_frames == 2
    out = load_image(path)
    assert out.shape == (4, 5, 3)
    assert (out == RED).all()


def test_gif_with_transparency_becomes_rgba(tmp_path: Path) -> None:
    out = load_image(save_pil(tmp_path / "t.gif", palette_image(True), transparency=1))
    assert out.shape == (2, 3, 4)
    assert out[..., 3].tolist() == [[255, 0, 255], [255, 0, 255]]
    assert out[0, 2].tolist() == [*BLUE, 255]


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_bmp(tmp_path: Path, mode: str) -> None:
    a = rgb8() if mode == "RGB" else rgb8()[..., 1]
    out = load_image(save_pil(tmp_path / "a.bmp", Image.fromarray(a)))
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("channels", [3, 4])
def test_lossless_webp_is_exact(tmp_path: Path, channels: int) -> None:
    a = rgb8()
    if channels == 4:
        a = np.dstack([a, np.full((4, 6), 128, np.uint8)])
    out = load_image(save_pil(tmp_path / "a.webp", Image.fromarray(a), lossless=True))
    assert out.dtype == np.uint8 and out.shape == a.shape
    np.testing.assert_array_equal(out, a)


# --------------------------------------------------------------------------- TIFF


def test_tiff_8bit_rgb(tmp_path: Path) -> None:
    a = rgb8()
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, a, photometric="rgb")
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, a)


def test_tiff_written_by_pillow(tmp_path: Path) -> None:
    a = rgb8()
    np.testing.assert_array_equal(load_image(save_pil(tmp_path / "p.tif", Image.fromarray(a))), a)


def test_lzw_tiff_falls_back_to_pillow(tmp_path: Path) -> None:
    # tifffile needs imagecodecs for LZW; Pillow (libtiff) reads it
    a = rgb8()
    path = save_pil(tmp_path / "lzw.tif", Image.fromarray(a), compression="tiff_lzw")
    np.testing.assert_array_equal(load_image(path), a)


def test_tiff_16bit_rgb(tmp_path: Path) -> None:
    a = rgb16()
    path = tmp_path / "a16.tif"
    tifffile.imwrite(path, a, photometric="rgb", compression="zlib", predictor=True)
    out = load_image(path)
    assert out.dtype == np.uint16 and out.shape == (4, 6, 3)
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_tiff_keeps_dtype_and_values(tmp_path: Path, dtype: type) -> None:
    a = np.linspace(-0.5, 2.5, 24, dtype=dtype).reshape(4, 6)  # not rescaled, not clipped
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, a)
    out = load_image(path)
    assert out.dtype == dtype and out.shape == (4, 6)
    np.testing.assert_array_equal(out, a)


def test_float16_tiff_is_widened_to_float32(tmp_path: Path) -> None:
    a = np.array([[0.25, 0.5], [1.0, 2.0]], np.float16)
    path = tmp_path / "h.tif"
    tifffile.imwrite(path, a)
    out = load_image(path)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, a.astype(np.float32))


def test_float_rgb_tiff(tmp_path: Path) -> None:
    a = rgb8().astype(np.float32) / 255
    path = tmp_path / "frgb.tif"
    tifffile.imwrite(path, a, photometric="rgb")
    np.testing.assert_array_equal(load_image(path), a)


@pytest.mark.parametrize("planar", [False, True])
def test_multiband_tiff_keeps_every_band(tmp_path: Path, planar: bool) -> None:
    bands = np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6) * 300
    path = tmp_path / "bands.tif"
    if planar:
        tifffile.imwrite(path, np.moveaxis(bands, -1, 0), photometric="minisblack", planarconfig="separate")
    else:
        tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="contig")
    out = load_image(path)
    assert out.dtype == np.uint16 and out.shape == (4, 5, 6)
    np.testing.assert_array_equal(out, bands)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_with_alpha_is_rgba(tmp_path: Path, dtype: type) -> None:
    a = np.dstack([rgb8(), np.full((4, 6), 99, np.uint8)]).astype(dtype)
    path = tmp_path / "rgba.tif"
    tifffile.imwrite(path, a, photometric="rgb", extrasamples=["unassalpha"])
    out = load_image(path)
    assert out.dtype == dtype and out.shape == (4, 6, 4)
    np.testing.assert_array_equal(out, a)
    pixels, alpha = load_image(path, return_alpha=True)
    np.testing.assert_array_equal(pixels, a[..., :3])
    np.testing.assert_array_equal(alpha, a[..., 3])


def test_grey_alpha_tiff_is_rgba(tmp_path: Path) -> None:
    ga = np.dstack([np.full((2, 3), 70, np.uint8), np.full((2, 3), 200, np.uint8)])
    path = tmp_path / "ga.tif"
    tifffile.imwrite(path, ga, photometric="minisblack", extrasamples=["unassalpha"])
    out = load_image(path)
    assert out.shape == (2, 3, 4)
    assert (out[..., :3] == 70).all() and (out[..., 3] == 200).all()


def test_rgb_tiff_with_unspecified_extra_sample_is_rgb(tmp_path: Path) -> None:
    a = np.dstack([rgb8(), np.full((4, 6), 5, np.uint8)])
    path = tmp_path / "rgbx.tif"
    tifffile.imwrite(path, a, photometric="rgb", extrasamples=["unspecified"])
    np.testing.assert_array_equal(load_image(path), a[..., :3])


def test_four_band_tiff_without_alpha_is_told_apart_by_return_alpha(tmp_path: Path) -> None:
    bands = np.arange(4 * 5 * 4, dtype=np.uint8).reshape(4, 5, 4)
    path = tmp_path / "four.tif"
    tifffile.imwrite(path, bands, photometric="minisblack", planarconfig="contig")
    pixels, alpha = load_image(path, return_alpha=True)
    assert alpha is None
    np.testing.assert_array_equal(pixels, bands)


def test_miniswhite_tiff_is_inverted(tmp_path: Path) -> None:
    g = np.array([[0, 10, 255]], np.uint8)
    path = tmp_path / "mw.tif"
    tifffile.imwrite(path, g, photometric="miniswhite")
    np.testing.assert_array_equal(load_image(path), 255 - g)


def test_signed_miniswhite_tiff_is_inverted_within_its_dtype(tmp_path: Path) -> None:
    """White-is-zero signed samples: the dtype's minimum and maximum trade places (-x - 1), as
    max - x for unsigned ones. Was: an OverflowError (65535 out of bounds for int16)."""
    g = np.array([[-32768, -1, 0, 1000, 32767]], np.int16)
    path = tmp_path / "mw.tif"
    tifffile.imwrite(path, g, photometric="miniswhite")
    out = load_image(path)
    assert out.dtype == np.int16
    assert out.tolist() == [[32767, 0, -1, -1001, -32768]]


def test_bilevel_tiff_is_0_and_255(tmp_path: Path) -> None:
    bits = np.array([[True, False, True, True], [False, False, True, False]])
    out = load_image(save_pil(tmp_path / "b.tif", Image.fromarray(bits)))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, bits.astype(np.uint8) * 255)


def test_cmyk_tiff_becomes_rgb(tmp_path: Path) -> None:
    im = Image.new("CMYK", (3, 2), (0, 255, 255, 0))
    out = load_image(save_pil(tmp_path / "cmyk.tif", im))
    assert out.shape == (2, 3, 3)
    assert (out == RED).all()


def test_palette_tiff_becomes_rgb(tmp_path: Path) -> None:
    out = load_image(save_pil(tmp_path / "p.tif", palette_image(False)))
    assert out.shape == (2, 3, 3)
    assert out[0].tolist() == [list(RED), list(GREEN), list(BLUE)]


def test_multipage_tiff_gives_first_page(tmp_path: Path) -> None:
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(np.full((3, 4), 11, np.uint16))
        tw.write(np.full((3, 4), 22, np.uint16))
    with pytest.warns(ReadWarning, match=r"pages.tif: holds 2 images \(TIFF series 0 to 1\); kmseg reads the first"):
        out = load_image(path)
    assert out.shape == (3, 4) and (out == 11).all()


# --------------------------------------------------------------------------- orientation


def test_jpeg_exif_orientation_6_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[274] = 6  # stored picture must be turned 90 deg clockwise to be upright
    path = save_pil(tmp_path / "o.jpg", Image.fromarray(blocks(16, 32)), exif=exif, quality=95)
    out = load_image(path)
    assert out.shape == (32, 16, 3)  # height and width swapped
    assert near(out[4, 8], RED) and near(out[27, 8], BLUE)  # the left (red) half is now on top


def test_png_exif_orientation_6_is_applied_exactly(tmp_path: Path) -> None:
    a = rgb8()
    exif = Image.Exif()
    exif[274] = 6
    out = load_image(save_pil(tmp_path / "o.png", Image.fromarray(a), exif=exif))
    np.testing.assert_array_equal(out, np.rot90(a, -1))
    assert out.flags.c_contiguous and out.flags.writeable


def upright_by_pillow(a: np.ndarray, orientation: int) -> np.ndarray:
    im = Image.fromarray(a)
    exif = Image.Exif()
    exif[274] = orientation
    im.info["exif"] = exif.tobytes()
    return np.array(ImageOps.exif_transpose(im))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    a = rgb8(3, 5)
    path = tmp_path / "o16.png"
    ok, buf = cv2.imencode(".png", (a.astype(np.uint16) * 257)[..., ::-1].copy())
    path.write_bytes(with_exif_orientation(buf.tobytes(), orientation))
    out = load_image(path)
    assert out.dtype == np.uint16 and out.flags.c_contiguous
    np.testing.assert_array_equal(out // 257, upright_by_pillow(a, orientation))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    a = rgb8(3, 5)
    path = tmp_path / "o.tif"
    tifffile.imwrite(path, a, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    np.testing.assert_array_equal(load_image(path), upright_by_pillow(a, orientation))


# --------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.png"
    with pytest.raises(ImageNotFoundError, match=r"nope\.png: no such file; check the path"):
        load_image(path)
    with pytest.raises(FileNotFoundError):  # also the built-in a Python user expects
        load_image(str(path))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageNotFoundError, match=r"is a directory, not an image file"):
        load_image(tmp_path)


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(
        NotAnImageError,
        match=r"^.*notes\.png: not an image kmseg can read \(PNG, JPEG, GIF, BMP, WebP, TIFF\)",
    ):
        load_image(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(NotAnImageError, match=r"empty\.jpg: not an image .*the file is empty"):
        load_image(path)


def noise(h: int = 64, w: int = 64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp", ".bmp"])
def test_truncated_file_is_corrupt(tmp_path: Path, suffix: str) -> None:
    path = truncate(save_pil(tmp_path / f"cut{suffix}", Image.fromarray(noise())))
    with pytest.raises(CorruptImageError, match=rf"cut\{suffix}: looks like a .* file but cannot be decoded"):
        load_image(path)


def test_truncated_is_corrupt_even_if_pillow_is_told_to_load_truncated_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = truncate(save_pil(tmp_path / "cut.jpg", Image.fromarray(noise())))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(CorruptImageError, match=r"cut\.jpg: looks like a JPEG file but cannot be decoded"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True


def test_truncated_16bit_png_is_corrupt(tmp_path: Path) -> None:
    path = truncate(cv2_png16(tmp_path / "cut16.png", noise().astype(np.uint16) * 257))
    with pytest.raises(CorruptImageError, match=r"cut16\.png: looks like a 16-bit PNG file"):
        load_image(path)


def test_truncated_tiff_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, noise().astype(np.uint16), photometric="rgb")
    truncate(path)
    with pytest.raises(CorruptImageError, match=r"cut\.tif: .*truncated"):
        load_image(path)


def test_jpeg_header_then_garbage_is_corrupt(tmp_path: Path) -> None:
    """A file that starts like a JPEG (its SOI and JFIF segment) and then is not one: where the
    next marker should be there is none, and Pillow cannot identify the file."""
    good = save_pil(tmp_path / "good.jpg", Image.fromarray(noise())).read_bytes()
    assert good[2:4] == b"\xff\xe0" and good[20] == 0xFF
    path = tmp_path / "garbage.jpg"
    path.write_bytes(good[:20] + bytes(range(1, 255)) * 20)
    with pytest.raises(CorruptImageError, match=r"garbage\.jpg: looks like a JPEG file but cannot be decoded"):
        load_image(path)


def test_png_with_broken_header_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(CorruptImageError, match=r"bad\.png: looks like a PNG file"):
        load_image(path)


SMALL_WRITERS = {
    "png": lambda p, a: save_pil(p, Image.fromarray(a)),
    "jpg": lambda p, a: save_pil(p, Image.fromarray(a)),
    "gif": lambda p, a: save_pil(p, Image.fromarray(a)),
    "bmp": lambda p, a: save_pil(p, Image.fromarray(a)),
    "webp": lambda p, a: save_pil(p, Image.fromarray(a), lossless=True),
    "tif": lambda p, a: tifffile.imwrite(p, a, photometric="rgb") or p,
    "lzw.tif": lambda p, a: save_pil(p, Image.fromarray(a), compression="tiff_lzw"),
    "16.png": lambda p, a: cv2_png16(p, a.astype(np.uint16)),
}


@pytest.mark.parametrize("kind", sorted(SMALL_WRITERS))
def test_too_large_for_max_pixels(tmp_path: Path, kind: str) -> None:
    path = SMALL_WRITERS[kind](tmp_path / f"img.{kind}", rgb8(10, 20))
    with pytest.raises(
        ImageTooLargeError,
        match=r"img\..*: 200 pixels \(20 x 10\) exceeds the limit of 199; pass max_pixels=200 or more "
        r"\(CLI: --max-pixels\) to allow it",
    ):
        load_image(path, max_pixels=199)
    assert load_image(path, max_pixels=200).shape[:2] == (10, 20)


@pytest.mark.parametrize("kind", sorted(SMALL_WRITERS))
def test_default_limit_is_pillows_and_raising_it_loads_without_pillow_complaining(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = SMALL_WRITERS[kind](tmp_path / f"img.{kind}", rgb8(20, 20))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # 400 > 2 * 150: Pillow itself would raise
    with pytest.raises(ImageTooLargeError, match=r"400 pixels \(20 x 20\) exceeds the limit of 150"):
        load_image(path)
    assert Image.MAX_IMAGE_PIXELS == 150
    # Pillow's DecompressionBombError/Warning must not fire (warnings are errors here)
    assert load_image(path, max_pixels=400).shape[:2] == (20, 20)
    assert Image.MAX_IMAGE_PIXELS == 150


def test_no_limit_when_pillows_limit_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_pil(tmp_path / "a.png", Image.fromarray(rgb8()))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    assert load_image(path).shape == (4, 6, 3)
    assert Image.MAX_IMAGE_PIXELS is None


def test_size_is_checked_before_decoding(tmp_path: Path) -> None:
    # headers claiming a huge image, with no pixel data at all: too large, not corrupt
    png = tmp_path / "huge.png"
    png.write_bytes(raw_png(np.zeros((1, 1), np.uint8), 0, 8, idat=False, size=(100_000, 100_000)))
    png16 = tmp_path / "huge16.png"
    png16.write_bytes(raw_png(np.zeros((1, 1, 3), np.uint16), 2, 16, idat=False, size=(100_000, 100_000)))
    tif = tmp_path / "huge.tif"
    tifffile.imwrite(tif, np.zeros((1, 1), np.uint8))
    with tifffile.TiffFile(tif) as t:
        tags = t.pages[0].tags
        patches = [(tags[name].valueoffset, tags[name].dtype) for name in ("ImageWidth", "ImageLength")]
    data = bytearray(tif.read_bytes())
    for offset, dtype in patches:
        fmt = "<H" if int(dtype) == 3 else "<I"
        data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, 60_000)
    tif.write_bytes(bytes(data))
    for path in (png, png16, tif):
        with pytest.raises(ImageTooLargeError, match=rf"{path.name}: \d+ pixels .* exceeds the limit"):
            load_image(path)


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite")])
def test_non_finite_float_tiff(tmp_path: Path, bad: float, word: str) -> None:
    a = np.zeros((3, 3), np.float32)
    a[1, 1] = bad
    path = tmp_path / "f.tif"
    tifffile.imwrite(path, a)
    with pytest.raises(InvalidImageDataError, match=rf"f\.tif: contains {word} values; .*nan_to_num"):
        load_image(path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_pixels": 0}, ParameterError, r"max_pixels=0 is out of range; pass a positive int"),
        ({"max_pixels": -5}, ParameterError, r"max_pixels=-5 is out of range"),
        ({"max_pixels": 1.5}, ParameterTypeError, r"max_pixels=1.5 is not an int"),
        ({"max_pixels": True}, ParameterTypeError, r"max_pixels=True is not an int"),
        ({"return_alpha": "yes"}, ParameterTypeError, r"return_alpha='yes' is not a bool"),
    ],
)
def test_bad_parameters(tmp_path: Path, kwargs: dict, error: type, message: str) -> None:
    path = save_pil(tmp_path / "a.png", Image.fromarray(rgb8()))
    with pytest.raises(error, match=message):
        load_image(path, **kwargs)


def test_path_of_wrong_type() -> None:
    with pytest.raises(ParameterTypeError, match=r"path must be a str or os.PathLike, not ndarray"):
        load_image(np.zeros((2, 2)))  # type: ignore[call-overload]


def test_every_error_is_a_kmseg_error(tmp_path: Path) -> None:
    with pytest.raises(KmsegError):
        load_image(tmp_path / "missing.png")


# --------------------------------------------------------------------------- contract


def all_kinds(tmp_path: Path) -> list[Path]:
    a = rgb8()
    paths = [SMALL_WRITERS[k](tmp_path / f"x.{k}", a) for k in sorted(SMALL_WRITERS)]
    f = tmp_path / "f.tif"
    tifffile.imwrite(f, a.astype(np.float32), photometric="rgb")
    exif = Image.Exif()
    exif[274] = 8
    paths.append(save_pil(tmp_path / "rot.jpg", Image.fromarray(a), exif=exif))
    return [*paths, f]


def test_inputs_are_never_modified(tmp_path: Path) -> None:
    for path in all_kinds(tmp_path):
        before, mtime = sha(path), path.stat().st_mtime_ns
        load_image(path)
        load_image(path, return_alpha=True)
        assert sha(path) == before and path.stat().st_mtime_ns == mtime, path.name


def test_result_is_c_contiguous_writeable_native(tmp_path: Path) -> None:
    path = tmp_path / "be.tif"
    tifffile.imwrite(path, rgb16(), photometric="rgb", byteorder=">", extratags=[(274, "H", 1, 5, True)])
    for p in [*all_kinds(tmp_path), path]:
        out = load_image(p)
        assert out.flags.c_contiguous and out.flags.writeable and out.dtype.isnative, p.name
        out[...] = 0  # writing does not touch any cache


def test_return_alpha(tmp_path: Path) -> None:
    a = np.dstack([rgb8(), np.arange(24, dtype=np.uint8).reshape(4, 6)])
    pixels, alpha = load_image(save_pil(tmp_path / "a.png", Image.fromarray(a)), return_alpha=True)
    np.testing.assert_array_equal(pixels, a[..., :3])
    np.testing.assert_array_equal(alpha, a[..., 3])
    assert pixels.flags.c_contiguous and alpha is not None and alpha.flags.c_contiguous
    pixels, alpha = load_image(save_pil(tmp_path / "b.png", Image.fromarray(a[..., 0])), return_alpha=True)
    assert alpha is None and pixels.shape == (4, 6)


def test_concurrent_loads_restore_pillows_limit(tmp_path: Path) -> None:
    path = save_pil(tmp_path / "a.png", Image.fromarray(noise(32, 32)))
    before = Image.MAX_IMAGE_PIXELS
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                load_image(path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert Image.MAX_IMAGE_PIXELS == before


def test_all_is_the_public_interface() -> None:
    assert kio.__all__ == [
        "count_planes", "encode_image", "json_bytes", "load_image", "palette_bytes", "publish", "publish_all",
        "read_palette", "save_image", "write_bytes", "write_files", "write_json", "write_palette", "write_text",
    ]
    assert all(callable(getattr(kio, name)) for name in kio.__all__)


# --------------------------------------------------------------------------- writing


def test_write_bytes_creates_parents_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deeper" / "x.bin"
    result = write_bytes(target, b"\x00hello")
    assert result == target and isinstance(result, Path)
    assert target.read_bytes() == b"\x00hello"
    assert leftovers(target.parent) == ["x.bin"]


def test_write_bytes_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "x.png"
    target.write_bytes(b"original")
    with pytest.raises(OutputExistsError, match=r"x\.png exists already; pass force=True \(CLI: --force\) to overwrite it"):
        write_bytes(target, b"new")
    assert target.read_bytes() == b"original"
    assert leftovers(tmp_path) == ["x.png"]


def test_write_bytes_force_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "x.bin"
    target.write_bytes(b"original")
    write_bytes(target, bytearray(b"new"), force=True)
    assert target.read_bytes() == b"new"
    assert leftovers(tmp_path) == ["x.bin"]


def test_float16_is_saved_as_tiff_and_read_back_as_float32(tmp_path: Path) -> None:
    a = np.array([[0.25, -3.5], [1000.0, 0.0]], np.float16)
    out = load_image(save_image(tmp_path / "h.tif", a))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, a.astype(np.float32))


def test_write_files_writes_every_file(tmp_path: Path) -> None:
    files = {"a": (tmp_path / "a.bin", lambda: b"1"), "b": (tmp_path / "sub" / "b.json", lambda: bytearray(b"2"))}
    for threads in (1, 2):
        paths = write_files(files, force=threads > 1, threads=threads)
        assert paths == {"a": tmp_path / "a.bin", "b": tmp_path / "sub" / "b.json"}
        assert [p.read_bytes() for p in paths.values()] == [b"1", b"2"]
    assert leftovers(tmp_path) == ["a.bin", "sub"] and leftovers(tmp_path / "sub") == ["b.json"]
    with pytest.raises(OutputExistsError, match=r"a\.bin exists already"):
        write_files({"c": (tmp_path / "c.bin", lambda: b"3"), "a": (tmp_path / "a.bin", lambda: b"4")})
    assert leftovers(tmp_path) == ["a.bin", "sub"] and (tmp_path / "a.bin").read_bytes() == b"1"


@pytest.mark.parametrize("threads", [1, 3])
def test_write_files_leaves_none_of_a_set_when_one_file_fails(tmp_path: Path, threads: int) -> None:
    """A file whose bytes cannot be made (an encoder's error) fails the set: the files made
    before and after it are not left behind, nor any temporary file."""

    def fails() -> bytes:
        raise ParameterTypeError("cannot encode this")

    files = {"a": (tmp_path / "a.png", lambda: b"1"), "b": (tmp_path / "b.png", fails), "c": (tmp_path / "c.json", lambda: b"3")}
    with pytest.raises(ParameterTypeError, match="cannot encode this"):
        write_files(files, threads=threads)
    assert leftovers(tmp_path) == []
    with pytest.raises(ParameterTypeError, match=r"b\.png: data must be bytes, bytearray or memoryview, not str"):
        write_files({"a": (tmp_path / "a.png", lambda: b"1"), "b": (tmp_path / "b.png", lambda: "text")}, threads=threads)
    assert leftovers(tmp_path) == []


def test_write_files_takes_back_what_it_moved_when_a_later_move_fails(tmp_path: Path) -> None:
    """A directory appearing where a target goes, after the checks (another process), makes its
    move fail: the targets moved before it are removed again, and the temporary files."""
    late = tmp_path / "b.png"

    def then_a_directory() -> bytes:
        late.mkdir()
        return b"2"

    files = {"a": (tmp_path / "a.png", lambda: b"1"), "b": (late, then_a_directory), "c": (tmp_path / "c.png", lambda: b"3")}
    with pytest.raises(OSError):
        write_files(files, force=True)
    assert leftovers(tmp_path) == ["b.png"] and list(late.iterdir()) == []


def test_a_forced_set_that_fails_puts_back_the_files_it_was_to_overwrite(tmp_path: Path) -> None:
    """Was: the targets moved into place before the failing one removed, and the old files they
    had replaced gone with them. A directory with a file in it appears where "b" goes after the
    checks (another process): the set fails on it, and the old "a", the symbolic link "l" and
    "c" are as they were, with no hidden file left."""
    real = tmp_path / "elsewhere" / "real.png"
    real.parent.mkdir()
    real.write_bytes(b"real")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        (out / name).write_bytes(b"old " + name.encode())
    (out / "l.png").symlink_to(real)
    b = out / "b.png"

    def then_a_directory() -> bytes:
        b.unlink()
        b.mkdir()
        (b / "inside").write_bytes(b"inside")
        return b"new b"

    files = {"a": (out / "a.png", lambda: b"new a"), "l": (out / "l.png", lambda: b"new l"),
             "b": (b, then_a_directory), "c": (out / "c.png", lambda: b"new c")}
    with pytest.raises(OutputError, match=rf"^{b}: is a directory; pass a file path inside it$"):
        write_files(files, force=True)
    assert leftovers(out) == ["a.png", "b.png", "c.png", "l.png"]
    assert (out / "a.png").read_bytes() == b"old a.png" and (out / "c.png").read_bytes() == b"old c.png"
    assert (out / "l.png").is_symlink() and os.readlink(out / "l.png") == str(real) and real.read_bytes() == b"real"
    assert (b / "inside").read_bytes() == b"inside"
    b.joinpath("inside").unlink()
    b.rmdir()
    paths = write_files({kind: (path, lambda kind=kind: f"new {kind}".encode()) for kind, (path, _) in files.items()},
                        force=True)
    assert [p.read_bytes() for p in paths.values()] == [b"new a", b"new l", b"new b", b"new c"]
    assert leftovers(out) == ["a.png", "b.png", "c.png", "l.png"] and not (out / "l.png").is_symlink()
    assert real.read_bytes() == b"real"


def test_write_bytes_failure_mid_write_leaves_nothing(tmp_path: Path) -> None:
    view = memoryview(b"data")
    view.release()  # writing a released view fails after the temporary file exists
    with pytest.raises(ValueError, match="released"):
        write_bytes(tmp_path / "x.bin", view)
    assert leftovers(tmp_path) == []
    existing = tmp_path / "y.bin"
    existing.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="released"):
        write_bytes(existing, view, force=True)
    assert existing.read_bytes() == b"keep me"
    assert leftovers(tmp_path) == ["y.bin"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_write_bytes_gives_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        mode = write_bytes(tmp_path / "x.bin", b"x").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644  # not mkstemp's 0o600


def test_write_bytes_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"is a directory; pass a file path inside it"):
        write_bytes(tmp_path, b"x", force=True)
    with pytest.raises(ParameterTypeError, match=r"data must be bytes, bytearray or memoryview, not str; use write_text"):
        write_bytes(tmp_path / "a.txt", "text")  # type: ignore[arg-type]
    with pytest.raises(ParameterTypeError, match=r"force='yes' is not a bool"):
        write_bytes(tmp_path / "a.bin", b"x", force="yes")  # type: ignore[arg-type]
    assert leftovers(tmp_path) == []


def test_writers_refuse_a_path_through_a_file(tmp_path: Path) -> None:
    """A path whose folder is a file (``photo.jpg/x.png``) is the caller's mistake: ParameterError,
    naming the file in the way, before anything is encoded; was a raw FileExistsError from mkdir."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a photo")
    grey = np.zeros((2, 3), np.uint8)
    message = rf"{photo}/x\.\w+: '{photo}' is a file, not a folder, so nothing can be written inside it; pass a path in a folder$"
    with pytest.raises(ParameterError, match=message):
        save_image(photo / "x.png", grey)
    with pytest.raises(ParameterError, match=message):
        write_json(photo / "x.json", {"a": 1}, force=True)
    with pytest.raises(ParameterError, match=rf"{photo}/deeper/x\.bin: '{photo}' is a file, not a folder"):
        write_bytes(photo / "deeper" / "x.bin", b"x")
    with pytest.raises(ParameterError, match=rf"^cannot create the folder '{photo}/a/b': '{photo}' is a file, not a folder; "
                                             "pass a folder whose path does not go through a file$"):
        kio.make_folder(photo / "a" / "b")
    assert photo.read_bytes() == b"a photo" and leftovers(tmp_path) == ["photo.jpg"]
    assert kio.file_in_the_way(photo / "a") == photo and kio.file_in_the_way(tmp_path / "new" / "a") is None


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no file can be made")
def test_writers_name_a_folder_that_cannot_be_written_in() -> None:
    with pytest.raises(OutputError, match=r"^/proc/nope/x\.bin: cannot create its folder '/proc/nope' \(No such file or "
                                          r"directory\); pass a path in a folder you can write to$"):
        write_bytes("/proc/nope/x.bin", b"x")
    with pytest.raises(OutputError, match=r"^/proc/x\.png: cannot be written in '/proc' \(No such file or directory\); "
                                          "pass a path in a folder you can write to$"):
        save_image("/proc/x.png", np.zeros((2, 3), np.uint8))


def test_an_output_that_cannot_be_written_is_an_oserror(tmp_path: Path) -> None:
    """Was a ParameterError alone (a ValueError), which ``except OSError`` let through: an output
    that cannot be written where it was asked for is an OSError, as Python's own writes raise,
    with the system's error number; and still a ParameterError and a KmsegError."""
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"a photo")
    cases = [
        (lambda: write_bytes(photo / "x.bin", b"x"), errno.ENOTDIR, r"/photo\.jpg' is a file, not a folder"),
        (lambda: save_image(photo / "a" / "x.png", np.zeros((2, 3), np.uint8)), errno.ENOTDIR, "is a file, not a folder"),
        (lambda: kio.make_folder(photo / "a"), errno.ENOTDIR, r"^cannot create the folder .*is a file, not a folder"),
        (lambda: write_json(tmp_path, {}, force=True), errno.EISDIR, r": is a directory; pass a file path inside it$"),
        (lambda: write_files({"a": (tmp_path / "a", lambda: b"1"), "b": (photo / "b", lambda: b"2")}), errno.ENOTDIR,
         r"/photo\.jpg/b: "),
    ]
    for write, code, message in cases:
        with pytest.raises(OSError, match=message) as info:
            write()
        assert isinstance(info.value, OutputError) and isinstance(info.value, ParameterError)
        assert isinstance(info.value, KmsegError) and info.value.errno == code
        assert not isinstance(info.value, PermissionError)
    assert leftovers(tmp_path) == ["photo.jpg"]


def test_output_errors_pickle_with_their_errno() -> None:
    import pickle

    for error in (OutputError("x: is a directory", errno.EISDIR), OutputPermissionError("y", errno.EACCES)):
        back = pickle.loads(pickle.dumps(error))
        assert type(back) is type(error) and str(back) == str(error) and back.errno == error.errno


@needs_sysfs
def test_a_folder_without_permission_raises_permission_error() -> None:
    """Real refusals that stop root too: sysfs lets no one make a file or a folder in it."""
    with pytest.raises(PermissionError, match=r"^/sys/x\.bin: cannot be written in '/sys' \(Permission denied\); "
                                              "pass a path in a folder you can write to$") as info:
        write_bytes("/sys/x.bin", b"x")
    assert isinstance(info.value, OutputPermissionError) and isinstance(info.value, ParameterError)
    assert info.value.errno == errno.EACCES
    with pytest.raises(OutputPermissionError, match=r"^cannot create the folder '/sys/kmseg-out' \((Operation not "
                                                    r"permitted|Permission denied)\); pass a folder you can write to$") as info:
        kio.make_folder("/sys/kmseg-out")
    assert info.value.errno in (errno.EPERM, errno.EACCES)  # root's mkdir is told EPERM, other users' EACCES
    with pytest.raises(PermissionError, match=r"^/sys/kmseg-out/x\.json: cannot create its folder '/sys/kmseg-out'"):
        write_json("/sys/kmseg-out/x.json", {})


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_a_read_only_folder_raises_permission_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        try:
            (locked / "probe").touch()
        except PermissionError:
            pass
        else:
            (locked / "probe").unlink()
            pytest.skip("folder permissions do not stop this user (root)")
        with pytest.raises(PermissionError, match=rf"^{locked}/x\.png: cannot be written in '{locked}' \(Permission "
                                                  r"denied\); pass a path in a folder you can write to$"):
            save_image(locked / "x.png", np.zeros((2, 3), np.uint8))
        with pytest.raises(PermissionError, match=rf"^{locked}/sub/x\.bin: cannot create its folder '{locked}/sub' "):
            write_bytes(locked / "sub" / "x.bin", b"x")
        with pytest.raises(OutputPermissionError, match=rf"{locked}/b\.bin: cannot be written"):
            write_files({"a": (tmp_path / "a.bin", lambda: b"1"), "b": (locked / "b.bin", lambda: b"2")})
    finally:
        locked.chmod(0o755)
    assert leftovers(locked) == [] and leftovers(tmp_path) == ["locked"]


def test_a_full_disk_is_an_output_error(tmp_path: Path) -> None:
    """Was the raw OSError of the write (``[Errno 28] No space left on device``), not a KmsegError,
    which the command line reported as an internal error."""
    with small_disk(tmp_path / "disk") as disk:
        message = (rf"^{disk}/x\.bin: cannot be written in '{disk}' \(No space left on device\); "
                   "free some space, or pass a path on another disk$")
        with pytest.raises(OutputError, match=message) as info:
            write_bytes(disk / "x.bin", bytes(1 << 17))
        assert info.value.errno == errno.ENOSPC and not isinstance(info.value, PermissionError)
        assert leftovers(disk) == []
        (disk / "y.bin").write_bytes(b"old")
        fill(disk)
        with pytest.raises(OutputError, match="No space left on device"):
            write_files({"a": (disk / "a.bin", lambda: b"1"), "y": (disk / "y.bin", lambda: bytes(8192))}, force=True)
        assert leftovers(disk) == ["ballast", "y.bin"] and (disk / "y.bin").read_bytes() == b"old"


def test_a_read_only_disk_is_an_output_error(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk", "ro") as disk:
        with pytest.raises(OutputError, match=rf"^{disk}/x\.bin: cannot be written in '{disk}' \(Read-only file system\); "
                                              "pass a path in a folder you can write to$") as info:
            write_bytes(disk / "x.bin", b"x")
        assert info.value.errno == errno.EROFS and not isinstance(info.value, PermissionError)
        with pytest.raises(OSError, match=rf"^cannot create the folder '{disk}/sub' \(Read-only file system\)"):
            kio.make_folder(disk / "sub")


def test_write_text(tmp_path: Path) -> None:
    target = write_text(tmp_path / "r.txt", "naïve ✓\n")
    assert target.read_bytes() == "naïve ✓\n".encode()
    with pytest.raises(OutputExistsError, match=r"r\.txt exists already"):
        write_text(target, "other")
    assert write_text(target, "other", force=True).read_text(encoding="utf-8") == "other"


def test_write_json(tmp_path: Path) -> None:
    obj = {"name": "café", "k": np.int64(3), "centres": np.array([[1.5, 2.0]]), "f": np.float32(0.25), "p": Path("a.png")}
    target = write_json(tmp_path / "r.json", obj)
    text = target.read_bytes().decode("utf-8")
    assert text.endswith("}\n") and '  "name": "café"' in text
    assert text == (
        '{\n  "name": "café",\n  "k": 3,\n  "centres": [\n    [\n      1.5,\n      2.0\n    ]\n  ],\n'
        '  "f": 0.25,\n  "p": "a.png"\n}\n'
    )
    with pytest.raises(OutputExistsError, match=r"r\.json exists already; pass force=True"):
        write_json(target, {})
    assert write_json(target, [], force=True).read_text() == "[]\n"


def test_write_json_errors(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match=r"bad\.json: cannot write obj as JSON .*replace NaN"):
        write_json(tmp_path / "bad.json", {"x": float("nan")})
    with pytest.raises(ParameterTypeError, match=r"bad\.json: cannot write obj as JSON .*object is not JSON serializable"):
        write_json(tmp_path / "bad.json", {"x": object()})
    assert leftovers(tmp_path) == []


ROUND_TRIPS = {
    "png-rgb8": (".png", rgb8()),
    "png-rgba8": (".png", np.dstack([rgb8(), np.arange(24, dtype=np.uint8).reshape(4, 6)])),
    "png-grey8": (".png", rgb8()[..., 0]),
    "png-grey16": (".png", rgb16()[..., 0]),
    "png-rgb16": (".png", rgb16()),
    "png-rgba16": (".png", np.dstack([rgb16(), np.full((4, 6), 777, np.uint16)])),
    "no-suffix-png": ("", rgb8()),
    "tif-rgb8": (".tif", rgb8()),
    "tiff-rgb16": (".tiff", rgb16()),
    "tif-rgba16": (".tif", np.dstack([rgb16(), np.full((4, 6), 777, np.uint16)])),
    "tif-float32": (".tif", np.linspace(-1, 3, 24, dtype=np.float32).reshape(4, 6)),
    "tif-float64-rgb": (".tif", rgb8().astype(np.float64) / 255),
    "tif-6band16": (".tif", np.arange(4 * 6 * 6, dtype=np.uint16).reshape(4, 6, 6) * 100),
    # Every integer dtype is TIFF data (CT in int16, counts in uint32...), read back as written.
    "tif-int8": (".tif", np.arange(-12, 12, dtype=np.int8).reshape(4, 6)),
    "tif-int16-grey": (".tif", np.linspace(-1169, 977, 24).astype(np.int16).reshape(4, 6)),
    "tif-int16-rgb": (".tif", rgb8().astype(np.int16) * 100 - 12000),
    "tif-int32": (".tif", np.linspace(-2**31, 2**31 - 1, 24).astype(np.int32).reshape(4, 6)),
    "tif-uint32": (".tif", np.linspace(0, 2**32 - 1, 24).astype(np.uint32).reshape(4, 6)),
    "tif-int64": (".tif", np.arange(24, dtype=np.int64).reshape(4, 6) * 2**40 - 2**50),
    "tif-uint64-rgba": (".tif", np.dstack([rgb8().astype(np.uint64) << 40, np.full((4, 6), 2**64 - 1, np.uint64)])),
    "webp-rgb": (".webp", rgb8()),
    "webp-rgba": (".webp", np.dstack([rgb8(), np.full((4, 6), 128, np.uint8)])),
    "bmp-rgb": (".bmp", rgb8()),
    "bmp-grey": (".bmp", rgb8()[..., 1]),
}


@pytest.mark.parametrize("case", sorted(ROUND_TRIPS))
def test_save_then_load_round_trips(tmp_path: Path, case: str) -> None:
    suffix, a = ROUND_TRIPS[case]
    target = save_image(tmp_path / f"out{suffix}", a)
    out = load_image(target)
    assert out.dtype == a.dtype and out.shape == a.shape
    np.testing.assert_array_equal(out, a)
    assert leftovers(tmp_path) == [target.name]


@pytest.mark.parametrize("array", [rgb8(), rgb16()], ids=["8-bit", "16-bit"])
def test_png_compress_level_trades_size_for_time_and_stays_lossless(tmp_path: Path, array: np.ndarray) -> None:
    noisy = np.random.default_rng(0).integers(0, np.iinfo(array.dtype).max, (64, 64, 3)).astype(array.dtype)
    smooth = np.repeat(np.repeat(noisy[:8, :8], 8, axis=0), 8, axis=1)
    for img in (noisy, smooth):
        sizes = {}
        for level in (0, 1, 6, 9):
            target = save_image(tmp_path / f"l{level}.png", img, compress_level=level, force=True)
            np.testing.assert_array_equal(load_image(target), img)
            sizes[level] = target.stat().st_size
    # The smooth image (the last): the level reaches the encoder.
    assert sizes[0] > 4 * sizes[1] and sizes[1] >= sizes[9]
    with pytest.raises(ParameterError, match=r"compress_level=10 is out of range; pass a whole number from 0 \(none\) to 9"):
        save_image(tmp_path / "bad.png", noisy, compress_level=10)
    assert not (tmp_path / "bad.png").exists()


@pytest.mark.parametrize("array", [rgb8(), rgb16()], ids=["8-bit", "16-bit"])
def test_png_strategy_reaches_the_encoder_and_stays_lossless(tmp_path: Path, array: np.ndarray) -> None:
    noisy = np.random.default_rng(0).integers(0, np.iinfo(array.dtype).max, (64, 64, 3)).astype(array.dtype)
    smooth = np.repeat(np.repeat(noisy[:8, :8], 8, axis=0), 8, axis=1)
    sizes = {}
    for strategy in ("default", "filtered", "huffman", "rle", "fixed"):
        target = save_image(tmp_path / f"{strategy}.png", smooth, png_strategy=strategy)
        np.testing.assert_array_equal(load_image(target), smooth)
        sizes[strategy] = target.stat().st_size
    # Huffman coding alone cannot find the repeated rows that the default's string matching finds.
    assert sizes["huffman"] > 2 * sizes["default"]
    with pytest.raises(ParameterError, match=r"png_strategy='zip' is not a zlib strategy; pass one of default, filtered"):
        save_image(tmp_path / "bad.png", smooth, png_strategy="zip")
    assert not (tmp_path / "bad.png").exists()


def test_save_png_default_format_is_png(tmp_path: Path) -> None:
    assert save_image(tmp_path / "plain", rgb8()).read_bytes().startswith(b"\x89PNG")


def test_save_bool_as_0_255(tmp_path: Path) -> None:
    mask = np.array([[True, False], [False, True]])
    out = load_image(save_image(tmp_path / "m.png", mask))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, mask.astype(np.uint8) * 255)


def test_save_jpeg(tmp_path: Path) -> None:
    out = load_image(save_image(tmp_path / "b.jpeg", blocks()))
    assert out.shape == (16, 32, 3) and near(out[8, 4], RED) and near(out[8, 28], BLUE)


def test_save_refuses_to_overwrite_and_force_overwrites(tmp_path: Path) -> None:
    target = save_image(tmp_path / "x.png", rgb8())
    before = sha(target)
    with pytest.raises(OutputExistsError, match=r"x\.png exists already; pass force=True \(CLI: --force\)"):
        save_image(target, np.zeros((2, 2), np.uint8))
    assert sha(target) == before
    save_image(target, np.zeros((2, 2), np.uint8), force=True)
    assert load_image(target).shape == (2, 2)
    assert leftovers(tmp_path) == ["x.png"]


@pytest.mark.parametrize(
    ("name", "array", "error", "message"),
    [
        ("x.png", np.zeros((2, 2), np.int64), ParameterTypeError, r"x\.png: cannot save an array of dtype int64 as PNG"),
        ("x.png", np.zeros((2, 2), np.float32), ParameterTypeError, r"float data: save as \.tif"),
        ("x.png", np.zeros((2, 2), np.int16), ParameterTypeError,
         r"^.*x\.png: cannot save an array of dtype int16 as PNG, which holds uint8 or uint16; .* \(int16 data: save as \.tif\)$"),
        ("x.tif", np.zeros((2, 2), complex), ParameterTypeError, r"dtype complex128 as TIFF, which holds uint8, uint16, .* or float64;"),
        ("x.jpg", np.zeros((2, 2), np.uint16), ParameterTypeError, r"x\.jpg: cannot save an array of dtype uint16 as JPEG"),
        ("x.png", np.zeros((2, 2, 5), np.uint8), ParameterError, r"cannot save an array of shape \(2, 2, 5\) as PNG"),
        ("x.jpg", np.zeros((2, 2, 4), np.uint8), ParameterError, r"JPEG keeps no alpha: save as \.png"),
        ("x.bmp", np.zeros((2, 2, 4), np.uint8), ParameterError, r"BMP keeps no alpha: save as \.png"),
        ("x.png", np.zeros((0, 3), np.uint8), ParameterError, r"pass a non-empty"),
        ("x.gif", np.zeros((2, 2), np.uint8), ParameterError, r"x\.gif: unknown image suffix '\.gif'; use \.png"),
    ],
)
def test_save_errors_write_nothing(tmp_path: Path, name: str, array: np.ndarray, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        save_image(tmp_path / "sub" / name, array)
    assert not (tmp_path / "sub" / name).exists()
    assert not (tmp_path / "sub").exists() or leftovers(tmp_path / "sub") == []
