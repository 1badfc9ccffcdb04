"""Given centres, no fitting: Prepared.apply, Segmentation.apply and kmseg.Palette label every
pixel with its nearest centre, keep every index (empty clusters too), and refuse what they cannot label."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import kmseg
from kmseg import data
from kmseg.io import save_image
from helpers import ct_slice, quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def brute_labels(img: np.ndarray, centers: np.ndarray, alpha: bool = False) -> np.ndarray:
    """The nearest centre of every pixel, by every distance in float64 (ties to the lower index);
    -1 where alpha is 0."""
    px = img[..., :-1] if alpha else (img[..., None] if img.ndim == 2 else img)
    X = px.reshape(-1, px.shape[-1]).astype(np.float64)
    d = ((X[:, None, :] - np.asarray(centers, np.float64)[None]) ** 2).sum(axis=2)
    labels = d.argmin(axis=1).astype(np.int32)
    if alpha:
        labels[img[..., -1].reshape(-1) == 0] = -1
    return labels.reshape(img.shape[:2])


def _images() -> dict[str, tuple[np.ndarray, bool]]:
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (24, 32, 4)).astype(np.uint8)
    rgba[..., 3] = np.where(rng.random((24, 32)) < 0.3, 0, 255)
    grey_alpha = rng.integers(0, 65536, (24, 32, 2)).astype(np.uint16)
    grey_alpha[..., 1] = np.where(rng.random((24, 32)) < 0.2, 0, 65535)
    return {
        "uint8 rgb": (rng.integers(0, 256, (24, 32, 3)).astype(np.uint8), False),
        "uint8 grey": (rng.integers(0, 256, (24, 32)).astype(np.uint8), False),
        "uint16 rgb": (rng.integers(0, 65536, (24, 32, 3)).astype(np.uint16), False),
        "uint16 grey": (rng.integers(0, 65536, (24, 32)).astype(np.uint16), False),
        "float32 rgb": (rng.random((24, 32, 3)).astype(np.float32), False),
        "float64 5 bands": (rng.normal(size=(24, 32, 5)), False),
        "int16 ct": (ct_slice((24, 32)), False),
        "int8": (rng.integers(-128, 128, (24, 32, 3)).astype(np.int8), False),
        "int32": (rng.integers(-(10**6), 10**6, (24, 32)).astype(np.int32), False),
        "uint8 rgba": (rgba, True),
        "uint16 grey+alpha": (grey_alpha, True),
    }


IMAGES = _images()


@pytest.mark.parametrize("name", list(IMAGES))
def test_every_pixel_gets_its_nearest_centre(name):
    img, alpha = IMAGES[name]
    prep = kmseg.prepare(img, alpha=alpha)
    rng = np.random.default_rng(3)
    colour = img[..., :-1] if alpha else img
    centers = rng.uniform(float(colour.min()), float(colour.max()), (7, prep.n_channels))
    seg = prep.apply(centers)
    np.testing.assert_array_equal(seg.labels, brute_labels(img, centers, alpha))
    np.testing.assert_array_equal(seg.centers, centers)  # kept as given, not refit
    assert seg.k == 7 and seg.n_iter == 0 and seg.labels.dtype == np.int32
    assert seg.counts.tolist() == [int((seg.labels == i).sum()) for i in range(7)]
    painted = seg.image()
    assert painted.shape == img.shape and painted.dtype == img.dtype
    # The same labels through a Palette of those centres, and through a segmentation's apply.
    pal = kmseg.Palette(centers, color_space="rgb", dtype=img.dtype)
    np.testing.assert_array_equal(pal.apply(img, alpha=alpha).labels, seg.labels)


@pytest.mark.parametrize("name", list(IMAGES))
def test_a_segmentation_applied_to_another_image_labels_it_by_its_centres(name):
    img, alpha = IMAGES[name]
    seg = kmseg.segment(img, k=4, seed=0, alpha=alpha)
    other = np.flip(img, axis=0).copy()
    other_seg = seg.apply(other, alpha=alpha)
    np.testing.assert_array_equal(other_seg.labels, brute_labels(other, seg.centers, alpha))
    np.testing.assert_array_equal(other_seg.centers, seg.centers)
    # On its own image, a converged fit gives back its labels, inertia and counts.
    again = seg.apply(img, alpha=alpha)
    np.testing.assert_array_equal(again.labels, seg.labels)
    assert again.inertia == seg.inertia and again.counts.tolist() == seg.counts.tolist()
    assert seg.converged and again.converged


@pytest.mark.parametrize("space", ["rgb", "lab", "hsv"])
def test_applied_to_its_own_photo_a_fit_gives_back_its_labels_in_every_space(space, photos):
    """In Lab the centres in RGB are clipped to the gamut and rounded through float32, which
    moves some 1,200 pixels of coffee.png to another cluster: apply measures to the centres in
    the clustering space (space_centers), so it gives back the fit's own labels."""
    img = photos["coffee.png"]
    seg = kmseg.segment(img, k=6, seed=0, color_space=space)
    again = seg.apply(img)
    np.testing.assert_array_equal(again.labels, seg.labels)
    np.testing.assert_array_equal(again.centers, seg.centers)
    np.testing.assert_array_equal(again.space_centers, seg.space_centers)
    assert again.converged and again.n_iter == 0 and again.color_space == space


def test_lab_centres_label_the_same_photo_at_16_bits_alike(photos):
    """Lab and HSV are on a fixed scale: a uint8 segmentation labels the uint16 copy of its
    photo (v * 257) with its own labels, and its centres come in 16-bit units."""
    img = photos["chelsea.png"]
    seg = kmseg.segment(img, k=5, seed=0, color_space="lab")
    deep = seg.apply(img.astype(np.uint16) * 257)
    np.testing.assert_array_equal(deep.labels, seg.labels)
    np.testing.assert_allclose(deep.centers, seg.centers * 257, rtol=1e-6)
    assert deep.image().dtype == np.uint16


def test_a_cluster_no_pixel_is_nearest_to_keeps_its_index_with_count_0(tmp_path):
    img, truth = quadrants(COLORS)
    centers = np.array([COLORS[0], (0, 0, 0), COLORS[1], COLORS[2], COLORS[3]], np.float64)  # 1: no pixel
    seg = kmseg.prepare(img).apply(centers)
    mapping = np.array([0, 2, 3, 4])
    np.testing.assert_array_equal(seg.labels, mapping[truth])
    assert seg.k == 5 and seg.counts[1] == 0 and seg.counts.sum() == img.shape[0] * img.shape[1]
    assert not seg.mask(1).any() and not seg.extract(1)[..., 3].any()
    assert [p["index"] for p in seg.palette()][-1] == 1 and seg.palette()[-1]["count"] == 0
    np.testing.assert_array_equal(seg.masked(disable=[0, 1])[truth == 0], 0)
    paths = seg.save(tmp_path, stem="q", masks=True, disable=[1])
    assert set(paths) == {"segmented", "labels", "palette", "masked", *(f"cluster{i}" for i in range(5))}
    np.testing.assert_array_equal(np.asarray(Image.open(paths["labels"])), mapping[truth])
    summary = json.loads(paths["palette"].read_text())
    assert summary["k"] == 5 and summary["centers"] == centers.tolist() and summary["n_iter"] == 0
    assert summary["dtype"] == "uint8" and summary["space_centers"] == centers.tolist()
    # Duplicate centres: the lower index takes the pixels, the other stays empty.
    dup = kmseg.prepare(img).apply(np.array([COLORS[0], COLORS[0], COLORS[1], COLORS[2], COLORS[3]]))
    assert dup.counts[1] == 0 and dup.counts[0] == (truth == 0).sum()


def test_converged_says_whether_the_centres_are_a_fixed_point_of_the_image():
    img, _ = quadrants(COLORS)
    fit = kmseg.segment(img, k=4, seed=0)
    assert fit.converged and kmseg.prepare(img).apply(fit.centers).converged
    # Off-centre by 20 levels: the same labels, but each centre's mean is elsewhere; still a
    # fixed point (moving to the means changes no label).
    shifted = kmseg.prepare(img).apply(fit.centers - 20)
    assert shifted.converged and shifted.inertia > fit.inertia
    # 55 is nearer 100 than 0, but once the centres move to their means (10, 127.5) it is
    # nearer the first: not a fixed point.
    grey = np.array([[10, 55, 200]], np.uint8)
    seg = kmseg.prepare(grey).apply([[0], [100]])
    assert seg.labels.tolist() == [[0, 1, 1]] and not seg.converged
    # From the means (10, 127.5), 55 goes to the first: (10, 55 | 200), whose means (32.5, 200)
    # keep it there: a fixed point, not yet the means themselves.
    assert kmseg.prepare(grey).apply([[10], [127.5]]).converged
    assert kmseg.prepare(grey).apply([[32.5], [200]]).converged


def test_an_image_with_no_opaque_pixel_is_all_minus_one():
    img = np.zeros((3, 4, 4), np.uint8)
    seg = kmseg.Palette([[0, 0, 0], [255, 255, 255]], dtype="uint8").apply(img)
    assert (seg.labels == -1).all() and seg.counts.tolist() == [0, 0] and seg.inertia == 0.0
    np.testing.assert_array_equal(seg.image(), img)


def test_a_palette_of_my_own_colours_maps_a_photo_onto_them(photos):
    """The designer's case: Pillow's quantize(palette=...), in any space, exactly."""
    img = photos["astronaut.png"]
    mine = [[0, 0, 0], [255, 255, 255], [200, 40, 40], [40, 40, 200], [240, 200, 60]]
    for space in ("rgb", "lab"):
        seg = kmseg.Palette(mine, dtype="uint8").apply(img, color_space=space)
        assert seg.color_space == space and seg.k == 5
        np.testing.assert_array_equal(seg.centers, mine)
        colours = {tuple(c) for c in seg.image().reshape(-1, 3)}
        assert colours <= {tuple(c) for c in mine}
    rgb = kmseg.Palette(mine, dtype="uint8").apply(img)
    np.testing.assert_array_equal(rgb.labels, brute_labels(img, np.array(mine)))


def test_apply_reads_files_and_names_them_in_its_errors(tmp_path):
    img, _ = quadrants(COLORS)
    path = save_image(tmp_path / "q.png", img)
    seg = kmseg.segment(img, k=4, seed=0)
    from_file = seg.apply(path)
    np.testing.assert_array_equal(from_file.labels, seg.labels)
    assert from_file.source == str(path)
    grey = save_image(tmp_path / "grey.png", img[..., 0])
    with pytest.raises(kmseg.ParameterError, match=r"^.*grey\.png: this segmentation's palette has centres of 3 "
                                                   r"channels, and the image is uint8 with 1 colour channel; "):
        seg.apply(grey)


@pytest.mark.parametrize(
    ("centers", "error", "message"),
    [
        ([[1, 2]], kmseg.ParameterError, r"^centers has centres of 2 channels, and the image is uint8 with 3 colour "
                                         r"channels; label it with a palette of an image like it$"),
        ([[1, 2, np.nan]], kmseg.ParameterError, r"^centers contains NaN or infinite values; pass finite centres$"),
        ([1, 2, 3], kmseg.ParameterError, r"^centers has shape \(3,\); pass a \(k, C\) array"),
        (np.zeros((0, 3)), kmseg.ParameterError, r"^centers has shape \(0, 3\); pass a \(k, C\) array"),
        ([[0, 0, 300]], kmseg.ParameterError, r"^centers reaches 300, outside uint8's range 0 to 255; pass centres "
                                              r"in the image's units$"),
        ([["a", "b", "c"]], kmseg.ParameterTypeError, r"^centers has dtype <U1, not numbers; pass a \(k, C\) array"),
        ([[1, 2], [3]], kmseg.ParameterTypeError, r"^centers is not an array of numbers"),
    ],
)
def test_prepared_apply_refuses_centres_it_cannot_use(centers, error, message):
    prep = kmseg.prepare(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(error, match=message):
        prep.apply(centers)


def test_a_segmentation_refuses_an_image_of_other_units_or_channels():
    img, _ = quadrants(COLORS)
    seg = kmseg.segment(img, k=4, seed=0)
    with pytest.raises(kmseg.ParameterError, match=r"^this segmentation's palette holds centres in uint8 units, and "
                                                   r"the image is uint16 with 3 colour channels; convert it to uint8, "
                                                   r"or label it with a palette of a uint16 image$"):
        seg.apply(img.astype(np.uint16))
    with pytest.raises(kmseg.ParameterError, match=r"centres of 3 channels, and the image is uint8 with 1 colour"):
        seg.apply(img[..., 0])
    # Floats are one unit whatever their width.
    fl = kmseg.segment(img.astype(np.float32) / 255, k=4, seed=0)
    np.testing.assert_array_equal(fl.apply(img.astype(np.float64) / 255).labels, fl.labels)


def test_a_palette_refuses_another_colour_space_and_bad_arguments():
    pal = kmseg.Palette([[0, 0, 0], [255, 255, 255]], color_space="lab", dtype="uint8")
    with pytest.raises(kmseg.ParameterError, match=r"^the palette was clustered in color_space='lab'; "
                                                   r"color_space='rgb' would measure other distances"):
        pal.apply(np.zeros((2, 2, 3), np.uint8), color_space="rgb")
    with pytest.raises(kmseg.ParameterError, match=r"^color_space='lab' needs RGB centres \(3 channels\); these have 1"):
        kmseg.Palette([[0.5]], color_space="lab")
    with pytest.raises(kmseg.ParameterError, match=r"^dtype='complex64' is not an image dtype"):
        kmseg.Palette([[0.5]], dtype="complex64")
    with pytest.raises(kmseg.ParameterError, match=r"^color_space='xyz' is not supported"):
        kmseg.Palette([[0.5]], color_space="xyz")
    with pytest.raises(kmseg.ParameterError, match=r"^space_centers has shape \(1, 3\); it must be \(2, 3\), as "
                                                   r"centers in color_space='lab'$"):
        kmseg.Palette([[0, 0, 0], [1, 1, 1]], color_space="lab", dtype="uint8", space_centers=[[0, 0, 0]])
    assert repr(pal) == "Palette(k=2, channels=3, color_space='lab', dtype='uint8', source=None)"


def test_a_prepared_image_is_labelled_whatever_scale_it_was_prepared_at():
    """apply labels the full image's points: scale only concerns fitting."""
    img = kmseg.load_image(data.path("coffee.png"))
    centers = np.array([[40, 30, 20], [200, 180, 160], [120, 60, 30]], np.float64)
    full = kmseg.prepare(img).apply(centers)
    scaled = kmseg.prepare(img, scale=0.25).apply(centers)
    np.testing.assert_array_equal(scaled.labels, full.labels)
    np.testing.assert_array_equal(full.labels, brute_labels(img, centers))
