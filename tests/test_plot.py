"""kmseg.plot: every figure renders, at the size asked, to PNG and SVG, and saves safely."""

from __future__ import annotations

import io
import subprocess
import sys
import tracemalloc
import warnings
import weakref
import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from kmseg import plot
from kmseg._elbow import elbow
from kmseg.errors import ConvergenceWarning, ImageNotFoundError, OutputExistsError, ParameterError, ParameterTypeError
from kmseg.io import save_image
from kmseg.segment import Prepared, prepare, segment
from helpers import ct_slice, quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return quadrants(COLORS, size=(30, 40), noise=4.0)[0]


@pytest.fixture(scope="module")
def seg(img):
    return segment(img, 4, seed=0)


@pytest.fixture(scope="module")
def sweep(img):
    return elbow(img, ks=range(1, 7), seed=0, silhouette=True, sample_size=300)


def _makers(img, seg, sweep):
    return {
        "compare": lambda **kw: plot.compare(img, seg, **kw),
        "grid": lambda **kw: plot.grid(img, (2, 4), seed=0, **kw),
        "elbow": lambda **kw: plot.elbow(sweep, **kw),
        "scatter3d": lambda **kw: plot.scatter3d(img, seg, sample=200, **kw),
        "histogram": lambda **kw: plot.histogram(img, **kw),
        "palette": lambda **kw: plot.palette(seg, **kw),
        "masks": lambda **kw: plot.masks(img, seg, **kw),
        "edges": lambda **kw: plot.edges(img, seg, 50, 150, **kw),
    }


NAMES = ["compare", "grid", "elbow", "scatter3d", "histogram", "palette", "masks", "edges"]


def _png_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG"
        im.load()
        return im.size


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("name", NAMES)
def test_png_has_the_size_asked(name, img, seg, sweep):
    fig = _makers(img, seg, sweep)[name](figsize=(6, 4), dpi=50)
    assert isinstance(fig, Figure)
    assert _png_size(plot.figure_bytes(fig)) == (300, 200)


@pytest.mark.parametrize("name", NAMES)
def test_default_size_and_saved_png(name, img, seg, sweep, tmp_path):
    path = tmp_path / f"{name}.png"
    fig = _makers(img, seg, sweep)[name](save=path, dpi=40)
    w, h = fig.get_size_inches() * fig.dpi
    assert _png_size(path.read_bytes()) == (round(w), round(h))


@pytest.mark.parametrize("name", NAMES)
def test_svg_is_valid_xml(name, img, seg, sweep, tmp_path):
    path = tmp_path / f"{name}.SVG"
    _makers(img, seg, sweep)[name](save=path, dpi=40)
    root = ET.fromstring(path.read_bytes())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


@pytest.mark.parametrize("autolayout", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_figure_bytes_renders_the_pixels_savefig_renders(name, autolayout, img, seg, sweep):
    """figure_bytes lays a figure out with its images hidden (savefig's own layout pass would
    resample them for nothing): the PNG must be savefig's to the pixel, whatever the rcParams,
    and the figure keep its layout engine."""
    make = _makers(img, seg, sweep)[name]
    with matplotlib.rc_context({"figure.autolayout": autolayout}):
        fig = make(dpi=40)
        engine = fig.get_layout_engine()
        ours = plot.figure_bytes(fig)
        assert fig.get_layout_engine() is engine
        buf = io.BytesIO()
        make(dpi=40).savefig(buf, format="png", dpi=40)
    with Image.open(io.BytesIO(ours)) as a, Image.open(buf) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_png_settings_change_the_bytes_not_the_pixels(img, seg):
    fig = plot.compare(img, seg, dpi=40)
    default = plot.figure_bytes(fig)
    for other in (plot.figure_bytes(fig, png_strategy="rle"), plot.figure_bytes(fig, compress_level=1)):
        assert other != default
        with Image.open(io.BytesIO(default)) as a, Image.open(io.BytesIO(other)) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ParameterError, match="png_strategy='zip' is not a zlib strategy; pass one of default"):
        plot.figure_bytes(fig, png_strategy="zip")
    with pytest.raises(ParameterError, match="compress_level=10 is out of range; pass a whole number from 0"):
        plot.figure_bytes(fig, compress_level=10)


def test_figures_never_share_the_segmentations_arrays(img):
    # compare and grid draw a segmentation's own painted array, uncopied; imshow must keep a copy,
    # so that changing a figure's image never changes the segmentation.
    seg = segment(img, 4, seed=0)
    before = seg.image()
    for fig in (plot.compare(img, seg, dpi=40), plot.grid(img, [seg], dpi=40)):
        shown = fig.axes[1].images[0].get_array()
        shown[...] = 7
    assert np.array_equal(seg.image(), before)


def test_svg_bytes_are_reproducible(seg):
    a = plot.figure_bytes(plot.palette(seg), "svg")
    b = plot.figure_bytes(plot.palette(seg), "svg")
    assert a == b


# --------------------------------------------------------------------------- saving


def test_no_overwrite_without_force(seg, tmp_path):
    path = tmp_path / "p.png"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputExistsError, match="exists already; pass force=True"):
        plot.palette(seg, save=path)
    assert path.read_bytes() == b"keep me"
    plot.palette(seg, save=path, force=True, dpi=30)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # no temporary file left


def test_existing_file_is_refused_before_any_work(tmp_path):
    path = tmp_path / "g.png"
    path.write_bytes(b"x")
    # The image does not exist either: the output check must come first.
    with pytest.raises(OutputExistsError):
        plot.grid(tmp_path / "missing.png", save=path)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"save": "fig.jpg"}, ParameterError, "suffix '.jpg'; figures are saved as .png or .svg"),
        ({"save": 3}, ParameterTypeError, "save=3 is not a path"),
        ({"force": "yes"}, ParameterTypeError, "force='yes' is not a bool"),
        ({"figsize": (0, 3)}, ParameterError, r"figsize=\(0, 3\) is not valid"),
        ({"figsize": 5}, ParameterError, "figsize=5 is not valid"),
        ({"dpi": 0}, ParameterError, "dpi=0 is out of range"),
    ],
)
def test_common_argument_errors(seg, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        plot.palette(seg, **kwargs)


def test_save_into_a_directory_is_refused(seg, tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(ParameterError, match="is a directory"):
        plot.palette(seg, save=tmp_path / "d.png")


# --------------------------------------------------------------------------- content


def test_seg_may_be_k(img):
    fig = plot.compare(img, 3, seed=0, dpi=30)
    assert fig.axes[1].get_title() == "segmented, k=3"


def test_seg_of_another_image_is_refused(img, seg):
    with pytest.raises(ParameterError, match="seg has labels of shape"):
        plot.compare(img[:10], seg)
    with pytest.raises(ParameterTypeError, match="seg='x' is not a Segmentation"):
        plot.compare(img, "x")
    with pytest.raises(ParameterError, match="cannot change a finished segmentation"):
        plot.compare(img, seg, seed=1)
    with pytest.raises(ParameterTypeError, match="seg of type int is not a Segmentation"):
        plot.palette(4)


def test_grid_panels_equal_segment(img):
    fig = plot.grid(img, (2, 3), seed=5, dpi=30)
    assert [ax.get_title() for ax in fig.axes] == ["original", "k=2", "k=3"]
    for ax, k in zip(fig.axes[1:], (2, 3)):
        assert np.array_equal(np.asarray(ax.images[0].get_array()), segment(img, k, seed=5).image())


def test_grid_accepts_prepared_images_and_segmentations(img, seg):
    fig = plot.grid(prepare(img), [seg, 2], seed=0, ncols=2, dpi=30)
    assert [ax.get_title() for ax in fig.axes[:3]] == ["original", "k=4", "k=2"]
    assert len(fig.axes) == 4 and not fig.axes[3].axison


@pytest.mark.parametrize(
    ("ks", "error", "message"),
    [
        ((), ParameterError, "is empty"),
        ((0, 2), ParameterError, "contains 0"),
        ((2.0,), ParameterTypeError, "contains 2.0"),
        (3, ParameterTypeError, "ks=3 is not a sequence"),
    ],
)
def test_grid_ks_errors(img, ks, error, message):
    with pytest.raises(error, match=message):
        plot.grid(img, ks)


def test_grid_rejects_unknown_options(img):
    with pytest.raises(ParameterTypeError, match="colour_space='lab' is not an option of segment"):
        plot.grid(img, (2,), colour_space="lab")


def test_elbow_marks_the_knee_and_sweeps_an_image(img, sweep):
    fig = plot.elbow(sweep, dpi=30)
    ax = fig.axes[0]
    assert f"knee at k={sweep.knee}" in ax.get_title()
    assert len(fig.axes) == 2  # silhouettes on a twin axis
    fig2 = plot.elbow(img, ks=range(1, 6), seed=0, yscale="log", dpi=30)
    assert fig2.axes[0].get_yscale() == "log"
    with pytest.raises(ParameterError, match="yscale='cubic'"):
        plot.elbow(sweep, yscale="cubic")
    with pytest.raises(ParameterError, match="cannot change a finished sweep"):
        plot.elbow(sweep, seed=3)


def test_a_log_elbow_keeps_the_points_at_zero():
    """An image with fewer colours than k has inertia 0 from there on, the knee's point too: on
    a log axis those points were left out, and the knee's ring with them."""
    from kmseg._elbow import Elbow

    r = Elbow(ks=np.arange(1, 6), inertias=np.array([6.48e6, 0, 0, 0, 0]), knee=2)
    ax = plot.elbow(r, yscale="log", dpi=30).axes[0]
    assert ax.get_yscale() == "symlog"
    low, high = ax.get_ylim()
    assert low <= 0 < 6.48e6 <= high
    r = Elbow(ks=np.arange(1, 4), inertias=np.array([9.0, 2.0, 1.0]), knee=2)
    assert plot.elbow(r, yscale="log", dpi=30).axes[0].get_yscale() == "log"  # no zero: a log axis
    r = Elbow(ks=np.arange(1, 4), inertias=np.zeros(3), knee=1)  # one colour: every inertia 0
    assert plot.elbow(r, yscale="log", dpi=30).axes[0].get_yscale() == "symlog"


def test_a_long_elbow_sweep_gets_readable_ticks():
    """Every k is a tick on a short sweep; on k = 1..64 the labels would run together, so
    there are about 20 whole-number ticks."""
    from kmseg._elbow import Elbow

    for n, most in ((10, 10), (64, 21)):
        ks = np.arange(1, n + 1)
        r = Elbow(ks=ks, inertias=1000.0 / ks, knee=4)
        ax = plot.elbow(r, dpi=30).axes[0]
        ticks = [t for t in ax.get_xticks() if 1 <= t <= n]
        assert len(ticks) <= most and all(float(t).is_integer() for t in ticks)
        if n == 10:
            assert ticks == ks.tolist()


def test_scatter_colours_points_by_cluster(img, seg):
    fig = plot.scatter3d(img, seg, sample=150, seed=1, dpi=30)
    plot.figure_bytes(fig)  # 3-D collections settle their colours when drawn
    points, centres = fig.axes[0].collections
    pal = np.array([p["rgb"] for p in seg.palette()]) / 255.0
    colours = np.unique(np.round(points.get_facecolors()[:, :3], 6), axis=0)
    assert len(points.get_facecolors()) == 150
    assert {tuple(c) for c in colours} <= {tuple(np.round(c, 6)) for c in pal}
    assert len(centres.get_facecolors()) == seg.k
    big = plot.scatter3d(img, seg, sample=10**6, dpi=30)
    plot.figure_bytes(big)
    assert len(big.axes[0].collections[0].get_facecolors()) == img.shape[0] * img.shape[1]


def test_histogram_counts_opaque_pixels_only(img):
    rgba = np.dstack([img, np.zeros(img.shape[:2], np.uint8)])
    rgba[:10, :, 3] = 255
    fig = plot.histogram(rgba, dpi=30)
    lines = fig.axes[0].lines
    assert len(lines) == 3 and all(line.get_ydata().sum() == 10 * img.shape[1] for line in lines)
    assert len(plot.histogram(img[..., 0], dpi=30).axes[0].lines) == 1


def test_palette_bars_are_shares(seg):
    fig = plot.palette(seg, dpi=30)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == seg.k and sum(heights) == pytest.approx(100.0)
    assert heights == sorted(heights, reverse=True)


def test_masks_blacks_out_the_largest_cluster_by_default(img, seg):
    fig = plot.masks(img, seg, dpi=30)
    largest = int(np.argmax(seg.counts))
    assert fig.axes[0].get_title() == f"cluster {largest} blacked out"
    assert len([ax for ax in fig.axes if ax.images]) == seg.k + 1
    fig = plot.masks(img, seg, disable=[0, 1], dpi=30)
    assert fig.axes[0].get_title() == "clusters 0, 1 blacked out"
    with pytest.raises(ParameterError, match="disable=9 is out of range"):
        plot.masks(img, seg, disable=9)


def test_masks_black_out_a_signed_image_in_black():
    """Was: the hidden pixels of an int16 CT set to 0, which its display range (-1024..3000)
    shows dark grey (65), not black; the panel now shows them at the range's minimum."""
    ct = ct_slice()
    s = segment(ct, 3, seed=0)
    bone = int(s.labels[0, -1])
    fig = plot.masks(ct, s, disable=bone, dpi=40)
    shown = np.asarray(fig.axes[0].images[0].get_array())
    assert shown.shape == ct.shape + (3,)  # drawn unreduced: one value per pixel
    hidden = s.labels == bone
    assert hidden.sum() > 100 and (shown[hidden] == 0).all()
    grey = np.rint((ct.astype(np.float64) + 1024) * 255 / 4024).astype(np.uint8)
    assert np.array_equal(shown[~hidden], np.repeat(grey[~hidden, None], 3, axis=1))


def test_figures_list_the_clusters_in_the_palette_order(img):
    """The cut-outs were shown by label index; now, like the palette figure's bars, largest share
    first. The scatter still colours each pixel by its own label."""
    part = np.ascontiguousarray(img[:, 5:])  # quadrants of 225, 300, 225 and 300 pixels
    s = segment(part, 4, init=np.array(COLORS, float))  # labelled as the quadrants: 0, 1, 2, 3
    pal = s.palette()
    assert [p["index"] for p in pal] == [1, 3, 0, 2]
    ticks = [t.get_text() for t in plot.palette(s, dpi=30).axes[0].get_xticklabels()]
    assert ticks == [f"{p['index']}\n{p['hex']}" for p in pal]
    titles = [ax.get_title() for ax in plot.masks(part, s, dpi=30).axes[1:s.k + 1]]
    assert titles == [f"cluster {p['index']} ({100 * p['fraction']:.1f}%)" for p in pal]
    fig = plot.scatter3d(part, s, sample=10**6, dpi=30)
    plot.figure_bytes(fig)
    drawn, n = np.unique(np.round(fig.axes[0].collections[0].get_facecolors()[:, :3] * 255), axis=0, return_counts=True)
    assert dict(zip(map(tuple, drawn.tolist()), n.tolist())) == {tuple(map(float, p["rgb"])): p["count"] for p in pal}


def test_masks_of_an_rgba_image_show_transparency_alike_in_every_panel(img):
    """The blacked-out image and the cut-outs all draw transparent pixels light grey in a frame,
    so no panel looks smaller than the others."""
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, : img.shape[1] // 2, 3] = 0
    fig = plot.masks(rgba, 2, seed=0, dpi=30)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 3
    for ax in panels:
        assert ax.get_facecolor()[:3] == pytest.approx((0.85, 0.85, 0.85))
        assert ax.axison and not ax.get_xticks().size


def test_edges_overlay(img, seg):
    fig = plot.edges(img, seg, 50, 150, dpi=30)
    assert "boundaries" in fig.axes[0].get_title()
    alone = plot.edges(img, None, 50, 150, dpi=30)
    assert alone.axes[0].get_title().startswith("Canny edges (50, 150):")
    with pytest.raises(ParameterError, match="low=150 is above high=50"):
        plot.edges(img, seg, 150, 50)


def test_edge_agreement():
    e = np.zeros((5, 5), bool)
    assert np.isnan(plot.edge_agreement(e, e))
    e[2] = True
    assert plot.edge_agreement(e, e) == 1.0


@pytest.mark.parametrize("kind", ["grey", "uint16", "float", "rgba", "grey_alpha"])
def test_every_image_kind_renders(kind, img):
    arr = {
        "grey": img[..., 0],
        "uint16": img.astype(np.uint16) * 257,
        "float": img.astype(np.float32) / 255,
        "rgba": np.dstack([img, np.full(img.shape[:2], 255, np.uint8)]),
        "grey_alpha": np.dstack([img[..., 0], np.full(img.shape[:2], 255, np.uint8)]),
    }[kind]
    # Plots need a segmentation of the same shape; segmenting 16-bit and float images is
    # tested elsewhere (and costs a compile of the all-pixels path).
    s = segment(arr if arr.dtype == np.uint8 else img, 3, seed=0)
    for fig in (plot.compare(arr, s, dpi=20), plot.masks(arr, s, dpi=20), plot.scatter3d(arr, s, dpi=20),
                plot.edges(arr, s, dpi=20), plot.histogram(arr, dpi=20)):
        assert _png_size(plot.figure_bytes(fig))[0] > 0


@pytest.mark.parametrize("kind", ["five_bands", "float16", "grey_alpha16", "int8_alpha", "int32"])
def test_large_images_of_every_kind_are_reduced_for_display(kind):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, plot.DISPLAY_MAX_SIDE + 100, 3), dtype=np.uint8)
    arr = {
        "five_bands": np.dstack([rgb, rgb[..., :2]]).astype(np.float64) / 255,
        "float16": (rgb / 255).astype(np.float16),
        "grey_alpha16": np.dstack([rgb[..., 0], np.full(rgb.shape[:2], 255, np.uint8)]).astype(np.uint16) * 257,
        # OpenCV reduces neither int8 nor int32 by area: they go through float64.
        "int8_alpha": np.dstack([rgb.astype(np.int16) - 128, np.full(rgb.shape[:2], 127)]).astype(np.int8),
        "int32": rgb.astype(np.int32) * 1000 - 100_000,
    }[kind]
    s = segment(rgb, 3, seed=0)  # plots take any segmentation of the same shape
    for fig in (plot.compare(arr, s, dpi=20), plot.masks(arr, s, dpi=20), plot.edges(arr, s, dpi=20)):
        assert _png_size(plot.figure_bytes(fig))[0] > 0
        panels = [ax for ax in fig.axes if ax.images]
        columns = len({round(ax.get_position().x0, 3) for ax in panels})
        panel_px = fig.get_size_inches()[0] * fig.dpi / columns
        for ax in panels:
            shown = ax.images[0].get_array()
            # Reduced to what its panel can show, and never below what it is drawn at.
            assert ax.get_window_extent().width <= shown.shape[1] <= plot.PANEL_OVERSAMPLE * panel_px + 1
    # Where the panels are large enough, DISPLAY_MAX_SIDE still bounds the image.
    big = plot.compare(arr, s, dpi=300)
    assert max(big.axes[0].images[0].get_array().shape[:2]) == plot.DISPLAY_MAX_SIDE


def _ct_quadrants() -> np.ndarray:
    """int16 quadrants around -1000, -200, 300 and 900 (Hounsfield-like), with noise."""
    img, truth = quadrants(COLORS, size=(30, 40), noise=0.0)
    base = np.array([-1000, -200, 300, 900])[truth]
    return (base + np.random.default_rng(0).integers(-60, 61, base.shape)).astype(np.int16)


def test_an_int16_image_and_its_segmentation_are_shown_on_the_inputs_min_to_max():
    ct = _ct_quadrants()
    s = segment(ct, 4, seed=0)
    lo, hi = float(ct.min()), float(ct.max())
    assert s.display_range == (lo, hi)

    def grey(values):  # min..max -> 0..255, by hand
        v = np.rint((values.astype(np.float64) - lo) * 255 / (hi - lo)).astype(np.uint8)
        return np.repeat(v[..., None], 3, axis=-1)

    fig = plot.compare(ct, s, dpi=20)
    original, painted = (np.asarray(ax.images[0].get_array()) for ax in fig.axes)
    np.testing.assert_array_equal(original, grey(ct))
    # The recoloured image on the input's range, not on its own (its centres span less).
    np.testing.assert_array_equal(painted, grey(s.image()))
    assert painted.min() > 0 and painted.max() < 255
    assert sorted({tuple(p["rgb"]) for p in s.palette()}) == sorted({tuple(v) for v in painted.reshape(-1, 3)})
    fig = plot.masks(ct, s, dpi=20)
    for i in range(4):
        cut = np.asarray(fig.axes[i + 1].images[0].get_array())
        inside = s.labels == i
        np.testing.assert_array_equal(cut[inside, :3], grey(ct)[inside])
        assert (cut[inside, 3] == 255).all() and (cut[~inside] == 0).all()
    counts = plot.histogram(ct, dpi=20).axes[0].lines[0].get_ydata()
    np.testing.assert_array_equal(counts, np.bincount(grey(ct)[..., 0].ravel(), minlength=256))


def test_display_range_rule():
    from kmseg._display import display_range, to_u8

    assert display_range(np.array([[3, 9]], np.uint8)) == (0.0, 255.0)
    assert display_range(np.array([[3, 9]], np.uint16)) == (0.0, 65535.0)
    assert display_range(np.array([[0.0, 1.0]], np.float32)) == (0.0, 1.0)
    assert display_range(np.array([[0.2, 1.5]])) == (0.2, 1.5)
    assert display_range(np.array([[5, 9]], np.uint32)) == (5.0, 9.0)
    rgba = np.array([[[10, 20, 30, 1], [-5, 0, 99, 0]]], np.int16)  # the second pixel is transparent
    assert display_range(rgba, has_alpha=True) == (10.0, 30.0)
    assert display_range(rgba, has_alpha=False) == (-5.0, 99.0)
    assert display_range(rgba * 0, has_alpha=True) == (0.0, 0.0)  # nothing opaque: every pixel counts
    assert to_u8(np.full((2, 2), 7.5)).tolist() == [[0, 0], [0, 0]]  # constant: black, no division by zero
    # Alpha on its dtype's scale (32767 opaque); a transparent pixel comes out all 0.
    two = np.array([[[-32768, 32767, 32767], [5, 5, 0]]], np.int16)
    assert to_u8(two, has_alpha=True).tolist() == [[[0, 255, 255], [0, 0, 0]]]


def test_transparent_pixels_lend_no_colour_to_a_reduced_image():
    # White stripes on transparent black, reduced 1300 -> 1200: a naive area mean would grey the
    # stripes' edges; weighting colours by opacity keeps every visible pixel white.
    rgba = np.zeros((30, plot.DISPLAY_MAX_SIDE + 100, 4), np.uint8)
    rgba[:, ::7] = 255
    s = segment(rgba, 1, seed=0)
    half = rgba.copy()
    half[..., 3] //= 2  # half-transparent stripes: opacity is weighed in 16-bit sums
    for arr in (rgba, half, rgba.astype(np.uint16) * 257, rgba.astype(np.float32) / 255):
        shown = np.asarray(plot.compare(arr, s, dpi=200).axes[0].images[0].get_array())
        assert shown.shape[2] == 4 and max(shown.shape[:2]) == plot.DISPLAY_MAX_SIDE
        visible = shown[..., 3] > 0
        assert 0 < visible.mean() < 1 and (shown[..., :3][visible] == 255).all()
        assert ((shown[..., 3] > 0) & (shown[..., 3] < 255)).any()  # partly covered: partly transparent


def test_large_images_are_reduced_for_display():
    big = np.zeros((1000, 3000, 3), np.uint8)
    big[:, 1500:] = 200
    for dpi, side in ((200, plot.DISPLAY_MAX_SIDE), (20, round(8 * 20 * plot.PANEL_OVERSAMPLE))):
        # 8 inches wide: at 200 dpi the panel holds more than DISPLAY_MAX_SIDE, at 20 less.
        shown = plot.edges(big, None, dpi=dpi).axes[0].images[0].get_array()
        assert max(shown.shape[:2]) == side
        on_edge = (np.asarray(shown) == plot._EDGE_RGB).all(axis=2)
        assert on_edge.any(axis=1).all()  # the one-pixel edge survives the reduction in every row


def test_figures_of_a_large_image_are_drawn_at_display_size():
    # The edges figure used to overlay the lines on two float32 copies of the whole photo (about
    # 14 times its bytes), and the scatter listed every pixel's position to draw 5000 of them.
    rng = np.random.default_rng(0)
    big = np.zeros((1500, 2400, 3), np.uint8)
    big[:, 1200:] = (200, 40, 40)
    big[750:, :, 2] = 220
    big += rng.integers(0, 6, big.shape, dtype=np.uint8)
    s = segment(big, 3, seed=0)
    for draw, most in ((lambda: plot.edges(big, s, dpi=20), 6), (lambda: plot.scatter3d(big, s, dpi=20), 0.5)):
        draw()  # first use: imports and caches
        tracemalloc.start()
        try:
            plot.figure_bytes(draw())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < most * big.nbytes


def test_the_grid_warns_once_for_its_panels_with_fewer_colours_than_k(tmp_path):
    """Each panel below its k warned on its own (3 warnings here); a segmentation given as it is
    does not warn again."""
    two = np.zeros((20, 30, 3), np.uint8)
    two[:, 15:] = (200, 40, 40)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = plot.grid(two, (1, 3, 5, 7), seed=0, dpi=20)
    assert [(w.category, str(w.message), w.filename) for w in caught] == [
        (ConvergenceWarning, "the image has only 2 distinct colours, fewer than k=3: the grid's panels for k=3, 5 "
         "and 7 have 2 clusters each", __file__)]
    assert [ax.get_title() for ax in fig.axes][:5] == ["original", "k=1", "k=2", "k=2", "k=2"]
    with pytest.warns(ConvergenceWarning):
        given = segment(two, 4, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot.grid(two, [given, 1, 6], seed=0, dpi=20)
    assert [str(w.message) for w in caught] == [
        "the image has only 2 distinct colours, fewer than k=6: the grid's panel for k=6 has 2 clusters"]


#: Four channels whose last, read as alpha from the channel count, is nowhere opaque.
FAINT = np.zeros((6, 8, 4), np.uint8)
FAINT[..., 3] = 100
FAINT[:3, :, 0] = 200


@pytest.mark.parametrize(
    "draw",
    [
        lambda: plot.compare(FAINT, 2, seed=0, dpi=20),
        lambda: plot.grid(FAINT, (1, 2), seed=0, dpi=20),
        lambda: plot.masks(FAINT, 2, seed=0, dpi=20),
        lambda: plot.scatter3d(FAINT, 2, dpi=20),
        lambda: plot.edges(FAINT, 2, seed=0, dpi=20),
    ],
    ids=["compare", "grid", "masks", "scatter3d", "edges"],
)
def test_an_alpha_taken_from_the_channel_count_is_checked_as_segment_checks_it(draw):
    """The figures that segment an array passed the alpha they had read on to prepare(), which
    skipped the check segment() makes: no warning that the last band is likely data."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        draw()
    assert [(w.category, w.filename) for w in caught] == [(UserWarning, __file__)]
    assert str(caught[0].message).startswith("the last of 4 channels is taken as alpha")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot.compare(FAINT, 2, seed=0, dpi=20, alpha=True)  # said: no warning
        plot.compare(prepare(FAINT, alpha=False), 2, seed=0, dpi=20)
    assert caught == []


def test_the_grid_holds_one_segmentation_at_a_time(img, monkeypatch):
    """Each panel is drawn as soon as its segmentation is made, which is then let go: the grid
    held every panel's segmentation (about 7 bytes a pixel each) until the figure was made."""
    made: list[weakref.ref] = []
    alive: list[int] = []
    segment_k = Prepared.segment

    def tracked(self, *args, **kwargs):
        s = segment_k(self, *args, **kwargs)
        made.append(weakref.ref(s))
        return s

    show = plot._show

    def counting(*args, **kwargs):
        alive.append(sum(r() is not None for r in made))
        return show(*args, **kwargs)

    monkeypatch.setattr(Prepared, "segment", tracked)
    monkeypatch.setattr(plot, "_show", counting)
    fig = plot.grid(img, (2, 3, 4), seed=0, dpi=30)
    assert len(made) == 3 and alive == [1, 1, 1, 1]  # the original, then each panel
    assert [ax.get_title() for ax in fig.axes] == ["original", "k=2", "k=3", "k=4"]


def test_the_grid_of_a_large_image_peaks_at_one_segmentation():
    """A 3.6 MP image, 3 panels: the peak was 8.6 times the image's bytes (3 segmentations of 7
    bytes a pixel, and the making of the last), it is the making of one (3.9 times: its 7 bytes a
    pixel and the painting's temporaries)."""
    rng = np.random.default_rng(0)
    big = np.zeros((1500, 2400, 3), np.uint8)
    big[:, 1200:] = (200, 40, 40)
    big[750:, :, 2] = 220
    big += rng.integers(0, 6, big.shape, dtype=np.uint8)
    prep = prepare(big)
    plot.grid(prep, (2, 3), seed=0, dpi=20)  # first use: imports and caches
    tracemalloc.start()
    try:
        plot.grid(prep, (2, 3, 4), seed=0, dpi=20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5.5 * big.nbytes


def test_the_grid_is_the_same_drawn_from_ks_or_from_segmentations(photos):
    """Drawn panel by panel from ks, the grid of a photo is the very figure drawn from its
    finished segmentations (and so the figure it was before it held one at a time)."""
    photo = photos["chelsea.png"]
    prep = prepare(photo)
    lazy = plot.figure_bytes(plot.grid(prep, (2, 5), seed=0))
    eager = plot.figure_bytes(plot.grid(prep, [prep.segment(2, seed=0), prep.segment(5, seed=0)]))
    assert lazy == eager


def test_paths_are_read(img, tmp_path):
    path = save_image(tmp_path / "q.png", img)
    assert len(plot.compare(path, 2, seed=0, dpi=20).axes) == 2
    with pytest.raises(ImageNotFoundError):
        plot.histogram(tmp_path / "missing.png")


def test_no_pyplot_and_segment_does_not_import_matplotlib():
    code = (
        "import sys, kmseg, kmseg.cli; kmseg.cli.build_parser(); "
        "assert 'matplotlib' not in sys.modules, 'segment path imports matplotlib'; "
        "import kmseg.plot, kmseg.report; assert 'matplotlib.pyplot' not in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
