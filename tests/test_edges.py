"""kmseg.edges: Canny edges of images of every kind, and segment boundaries."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kmseg._edges import boundaries, edges, read_image, to_gray8
from kmseg.errors import (
    ImageNotFoundError,
    InvalidImageDataError,
    NotAnImageError,
    ParameterError,
    ParameterTypeError,
)
from kmseg.io import save_image
from kmseg.segment import segment
from helpers import quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def step_image() -> np.ndarray:
    """Dark left half, bright right half, as RGB uint8."""
    img = np.full((16, 20, 3), 20, np.uint8)
    img[:, 10:] = 230
    return img


# --------------------------------------------------------------------------- Canny


def test_canny_finds_the_step():
    e = edges(step_image())
    assert e.shape == (16, 20) and e.dtype == np.bool_
    cols = np.flatnonzero(e.any(axis=0))
    assert set(cols.tolist()) <= {9, 10} and e[:, 9:11].any(axis=1).all()


def test_same_as_opencv_on_grey():
    img, _ = quadrants(COLORS, noise=6.0)
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    assert np.array_equal(edges(img, 50, 150), cv2.Canny(grey, 50, 150) > 0)


def test_dtypes_agree_with_8_bit():
    img, _ = quadrants(COLORS, noise=6.0)
    ref = edges(img)
    assert np.array_equal(edges(img.astype(np.uint16) * 257), ref)
    assert np.array_equal(edges(img / 255.0), ref)
    assert np.array_equal(edges((img / 255.0).astype(np.float32)), ref)


def test_other_dtypes_are_seen_on_their_min_to_max():
    """int16 and float data beyond [0, 1] are taken to 8 bits from their minimum to their maximum
    (the figures' display range). Was: a cv2 error for int16, and every pixel white for floats."""
    img, _ = quadrants(COLORS, noise=6.0)
    img[0, 0] = (0, 0, 0)
    img[-1, -1] = (255, 255, 255)  # 0 and 255 present: min..max is the uint8 scale
    ref = edges(img)
    assert ref.any()
    assert np.array_equal(edges(img.astype(np.int16) * 4 - 510), ref)  # -510..510
    assert np.array_equal(edges(img.astype(np.float32) * 4), ref)  # 0..1020
    assert np.array_equal(edges(img.astype(np.int64).tolist()), ref)


def test_grey_rgba_and_grey_alpha():
    img = step_image()
    ref = edges(img)
    assert np.array_equal(edges(img[..., 0]), ref)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    assert np.array_equal(edges(rgba), ref)
    ga = np.dstack([img[..., 0], np.full(img.shape[:2], 255, np.uint8)])
    assert np.array_equal(edges(ga), ref)


def test_transparent_pixels_are_never_edges(tmp_path):
    """The colours stored under alpha 0 are not part of the picture: an array or a PNG file
    with the left half transparent over busy noise has edges only where it is opaque."""
    img, _ = quadrants(COLORS, noise=10.0)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    half = img.shape[1] // 2
    rgba[:, :half, 3] = 0
    rgba[:, :half, :3] = np.random.default_rng(0).integers(0, 256, (img.shape[0], half, 3), dtype=np.uint8)
    ref = edges(rgba[..., :3], 10, 20)
    assert ref[:, :half].sum() > 100  # the noise has plenty of edges...
    path = save_image(tmp_path / "half.png", rgba)
    for source in (rgba, path):
        e = edges(source, 10, 20)
        assert not e[:, :half].any()  # ...that no longer count
        np.testing.assert_array_equal(e[:, half:], ref[:, half:])


def test_many_bands_use_their_mean():
    bands = np.repeat(step_image()[..., :1], 5, axis=2)
    assert np.array_equal(edges(bands), edges(step_image()))


def test_path_input(tmp_path):
    img, _ = quadrants(COLORS, noise=6.0)
    path = save_image(tmp_path / "q.png", img)
    assert np.array_equal(edges(path), edges(img))
    assert np.array_equal(edges(str(path)), edges(img))


def test_thresholds_matter():
    img, _ = quadrants(COLORS, noise=10.0)
    assert edges(img, 10, 20).sum() > edges(img, 100, 200).sum()
    assert not edges(img, 10_000, 10_000).any()
    assert edges(img, 0, 0).sum() >= edges(img, 10, 20).sum()


def test_caller_array_is_not_modified():
    img = (np.random.default_rng(0).random((8, 8, 3))).astype(np.float32)
    before = img.copy()
    edges(img)
    assert np.array_equal(img, before)


@pytest.mark.parametrize(
    ("low", "high", "error", "message"),
    [
        (200, 100, ParameterError, "low=200 is above high=100"),
        (-1, 100, ParameterError, "low=-1 is out of range"),
        (10, float("inf"), ParameterError, "high=inf is out of range"),
        (float("nan"), 10, ParameterError, "low=nan is out of range"),
        ("100", 200, ParameterTypeError, "low='100' is not a number"),
        (True, 200, ParameterTypeError, "low=True is not a number"),
    ],
)
def test_threshold_errors(low, high, error, message):
    with pytest.raises(error, match=message):
        edges(step_image(), low, high)


def test_bad_images(tmp_path):
    with pytest.raises(ImageNotFoundError, match="no such file"):
        edges(tmp_path / "missing.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(NotAnImageError, match="not an image"):
        edges(tmp_path / "text.png")
    with pytest.raises(InvalidImageDataError, match="shape"):
        edges(np.zeros(5, np.uint8))
    with pytest.raises(InvalidImageDataError, match="dtype complex128"):
        edges(np.zeros((4, 4), complex))
    with pytest.raises(InvalidImageDataError, match="NaN"):
        edges(np.full((4, 4), np.nan))
    with pytest.raises(ParameterTypeError, match="image of type list"):
        edges([["a", "b"], ["c", "d"]])


def test_read_image_alpha_flags(tmp_path):
    rgb = step_image()
    assert read_image(rgb)[1] is False
    path = save_image(tmp_path / "a.png", np.dstack([rgb, np.full(rgb.shape[:2], 9, np.uint8)]))
    arr, has_alpha = read_image(path)
    assert has_alpha and arr.shape == (16, 20, 4) and arr[0, 0, 3] == 9


def test_to_gray8_scales():
    assert to_gray8(np.array([[0, 65535]], np.uint16)).tolist() == [[0, 255]]
    assert to_gray8(np.array([[0.0, 0.5, 1.0]])).tolist() == [[0, 128, 255]]  # floats in [0, 1]
    assert to_gray8(np.array([[-0.5, 0.5, 2.0]])).tolist() == [[0, 102, 255]]  # others: min..max
    assert to_gray8(np.array([[-1169, 977]], np.int16)).tolist() == [[0, 255]]


# --------------------------------------------------------------------------- boundaries


def test_boundaries_convention():
    lab = np.array([[0, 0, 1], [0, 0, 1], [2, 2, 2]])
    assert boundaries(lab).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 0, 0]]


def test_boundaries_uniform_and_single_pixel():
    assert not boundaries(np.zeros((5, 7), np.int32)).any()
    assert not boundaries(np.zeros((1, 1), np.int64)).any()
    one = np.zeros((3, 3), np.int32)
    one[1, 1] = 1
    assert boundaries(one).astype(int).tolist() == [[0, 1, 0], [1, 1, 0], [0, 0, 0]]


def test_transparent_label_counts_as_a_label():
    lab = np.zeros((4, 4), np.int32)
    lab[:, 2:] = -1
    b = boundaries(lab)
    assert b[:, 1].all() and b.sum() == 4


def test_boundaries_of_a_segmentation_follow_the_quadrants():
    img, truth = quadrants(COLORS, size=(20, 30), noise=3.0)
    seg = segment(img, 4, seed=0)
    b = boundaries(seg.labels)
    assert np.array_equal(b, boundaries(truth))
    assert set(np.flatnonzero(b.any(axis=1)).tolist()) == set(range(20))  # the vertical split crosses every row
    assert b[9].all()  # the horizontal split is on row 9 (upper side of the change)


def test_boundaries_errors():
    with pytest.raises(ParameterTypeError, match="dtype float64"):
        boundaries(np.zeros((3, 3)))
    with pytest.raises(ParameterTypeError, match="labels is list"):
        boundaries([[0, 1]])
    with pytest.raises(ParameterError, match=r"labels has shape \(3, 3, 1\)"):
        boundaries(np.zeros((3, 3, 1), np.int32))
