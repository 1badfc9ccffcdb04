"""Scientific image layouts: ``channel_axis`` for arrays, TIFF channels stored as pages, stacks
and ``plane``/``--plane``, frames of animations, and outputs whose last band is not alpha.

Every file is written here by a real encoder (tifffile with ImageJ and OME metadata, Pillow).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import kmseg
from kmseg import plot
from kmseg.cli import main
from kmseg.errors import ImageTooLargeError, InvalidImageDataError, ParameterError, ParameterTypeError
from kmseg.io import load_image, save_image
from kmseg.report import write_report
from kmseg.segment import output_suffix, read_image

from helpers import same_partition


def bands_first(c: int = 4, h: int = 24, w: int = 32, dtype: type = np.uint16, seed: int = 0) -> np.ndarray:
    """(C, H, W) bands: two halves of different levels in every band, plus seeded noise; the
    last band is nowhere the dtype's maximum (it would warn if it were taken as alpha)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, (c, h, w)).astype(dtype)
    x[:, :, w // 2:] += np.arange(1, c + 1, dtype=dtype)[:, None, None] * 100
    x[:, h // 2:, :] += 50
    return x


def same_seg(a: kmseg.Segmentation, b: kmseg.Segmentation) -> None:
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.centers, b.centers) and a.inertia == b.inertia
    assert np.array_equal(a.image(), b.image())


# --------------------------------------------------------------------------- channel_axis


@pytest.mark.parametrize("c, dtype", [(3, np.uint8), (4, np.uint16), (2, np.float32)])
def test_channel_axis_0_equals_moving_the_axis_last(c, dtype):
    x = bands_first(c, dtype=dtype)
    if dtype == np.float32:
        x = x / 1000
    before = x.copy()
    moved = np.moveaxis(x, 0, -1)
    a = kmseg.segment(x, 3, seed=0, channel_axis=0)
    b = kmseg.segment(moved, 3, seed=0, alpha=False)
    same_seg(a, b)
    assert a.centers.shape == (3, c)  # every band clustered: none is taken as alpha
    assert np.array_equal(x, before)  # the input is never changed
    assert kmseg.prepare(x, channel_axis=0).segment(3, seed=0).inertia == a.inertia
    assert kmseg.segment(np.moveaxis(x, 0, 1), 3, seed=0, channel_axis=1).inertia == a.inertia
    assert kmseg.segment(moved, 3, seed=0, channel_axis=-1).inertia == a.inertia


def test_channel_axis_bands_are_not_alpha_unless_asked():
    x = bands_first(4, dtype=np.uint8)  # last band never 255: as an array it would warn as alpha
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arr, has_alpha = read_image(x, channel_axis=0)
        seg = kmseg.segment(x, 2, seed=0, channel_axis=0)
    assert arr.shape == (24, 32, 4) and not has_alpha and seg.centers.shape == (2, 4)
    x[3] = 255
    x[3, :4] = 0  # explicit alpha=True: the fourth band is alpha again, transparent pixels get -1
    rgba = kmseg.segment(x, 2, seed=0, channel_axis=0, alpha=True)
    assert rgba.centers.shape == (2, 3) and (rgba.labels[:4] == -1).all() and (rgba.labels[4:] >= 0).all()


def test_channels_first_array_is_refused_without_channel_axis():
    x = bands_first(3, h=40, w=50, dtype=np.uint8)
    with pytest.raises(InvalidImageDataError, match=r"shape \(3, 40, 50\).*channels-first.*channel_axis=0.*moveaxis"):
        kmseg.segment(x, 2)
    for front in (kmseg.prepare, kmseg.edges, read_image):
        with pytest.raises(InvalidImageDataError, match="channel_axis=0"):
            front(x)
    with pytest.raises(InvalidImageDataError, match="channel_axis=0"):
        kmseg.elbow(x, ks=range(1, 4))
    # small last axes stay as they are: channels last, as before
    for shape in [(40, 50, 3), (40, 50, 4), (8, 8, 3), (16, 64, 5), (2, 7, 40), (17, 80, 80)]:
        arr, _ = read_image(np.zeros(shape, np.uint8))
        assert arr.shape == shape
    # a last axis that really holds many channels: say so
    arr, has_alpha = read_image(x, channel_axis=-1)
    assert arr.shape == (3, 40, 50) and not has_alpha


@pytest.mark.parametrize("axis, error, match", [
    (3, ParameterError, r"channel_axis=3 is out of range for an image of shape \(4, 24, 32\); pass an axis from -3 to 2"),
    (-4, ParameterError, "channel_axis=-4 is out of range"),
    (1.0, ParameterTypeError, "channel_axis=1.0 is not an int; pass the axis"),
    (True, ParameterTypeError, "channel_axis=True is not an int"),
    ("0", ParameterTypeError, "channel_axis='0' is not an int"),
])
def test_bad_channel_axis(axis, error, match):
    with pytest.raises(error, match=match):
        kmseg.segment(bands_first(), 2, channel_axis=axis)


def test_channel_axis_on_a_2d_image_a_file_or_a_stack_is_refused(tmp_path):
    with pytest.raises(ParameterError, match=r"shape \(24, 32\), which has no channel axis.*leave channel_axis out"):
        kmseg.segment(bands_first()[0], 2, channel_axis=0)
    with pytest.raises(ParameterError, match=r"pick one plane of a stack first \(image\[0\]\)"):
        kmseg.segment(np.zeros((2, 3, 16, 16), np.uint8), 2, channel_axis=1)
    path = save_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ParameterError, match="channel_axis=0 applies to arrays only.*leave channel_axis out"):
        kmseg.segment(path, 2, channel_axis=0)
    with pytest.raises(ParameterError, match="applies to arrays only"):
        kmseg.segment(Image.new("RGB", (4, 4)), 2, channel_axis=-1)


def test_channel_axis_reaches_every_front_end(tmp_path):
    x = bands_first(3, dtype=np.uint8)
    moved = np.ascontiguousarray(np.moveaxis(x, 0, -1))
    a = kmseg.elbow(x, ks=range(1, 5), seed=0, channel_axis=0)
    b = kmseg.elbow(moved, ks=range(1, 5), seed=0)
    assert np.array_equal(a.inertias, b.inertias) and a.knee == b.knee
    assert np.array_equal(kmseg.edges(x, 10, 30, channel_axis=0), kmseg.edges(moved, 10, 30))
    seg = kmseg.segment(x, 3, seed=0, channel_axis=0)
    assert np.array_equal(seg.apply(x, channel_axis=0).labels, seg.labels)
    pal = kmseg.fit_palette([x, x[:, ::-1]], k=3, seed=0, channel_axis=0)
    assert pal.apply(x, channel_axis=0).labels.shape == (24, 32)
    assert len(plot.compare(x, 3, seed=0, channel_axis=0, dpi=20).axes) == 2
    assert len(plot.compare(x, seg, channel_axis=0, dpi=20).axes) == 2  # reading options go with a segmentation
    assert len(plot.grid(x, ks=(2, 3), seed=0, channel_axis=0, dpi=20).axes) == 3
    plot.histogram(x, channel_axis=0, dpi=20)
    plot.masks(x, 3, seed=0, channel_axis=0, dpi=20)
    plot.edges(x, 3, seed=0, channel_axis=0, dpi=20)
    plot.scatter3d(x, 3, seed=0, channel_axis=0, dpi=20)
    html = write_report(x, tmp_path / "r.html", seed=0, ks=range(1, 4), grid_ks=(2,), channel_axis=0).read_text()
    assert 'id="elbow"' in html
    with pytest.raises(InvalidImageDataError, match="channel_axis=0"):
        write_report(x, tmp_path / "r2.html", seed=0, ks=range(1, 4))


def test_a_file_few_rows_high_with_many_bands_is_not_taken_for_channels_first(tmp_path):
    x = np.moveaxis(bands_first(20, h=40, w=50, dtype=np.uint16), 0, -1)[18:22].copy()  # (4, 50, 20): 4 rows, 20 bands
    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, x, photometric="minisblack", planarconfig="contig")
    seg = kmseg.segment(path, 2, seed=0)
    assert seg.centers.shape == (2, 20)
    assert len(plot.compare(path, 2, seed=0, dpi=20).axes) == 2  # read, then prepared as an array
    with pytest.raises(InvalidImageDataError, match="channels-first"):
        kmseg.segment(x, 2)  # the same array from a caller: refused, it looks channels-first


# --------------------------------------------------------------------------- TIFF pages and planes


def test_channels_stored_as_pages_are_read_as_bands(tmp_path):
    x = bands_first(3, dtype=np.uint16)
    ij = tmp_path / "ij.tif"
    tifffile.imwrite(ij, x, imagej=True, metadata={"axes": "CYX"})
    ome = tmp_path / "ome.tif"
    tifffile.imwrite(ome, x, ome=True, metadata={"axes": "CYX"})
    for path in (ij, ome):
        arr, alpha = load_image(path, return_alpha=True)
        assert arr.shape == (24, 32, 3) and alpha is None
        assert np.array_equal(arr, np.moveaxis(x, 0, -1))
        same_seg(kmseg.segment(path, 3, seed=0), kmseg.segment(x, 3, seed=0, channel_axis=0))
    four = tmp_path / "four.tif"  # 4 channels as pages: 4 bands, no alpha
    tifffile.imwrite(four, bands_first(4, dtype=np.uint8), imagej=True, metadata={"axes": "CYX"})
    assert kmseg.segment(four, 2, seed=0).centers.shape == (2, 4)


@pytest.mark.parametrize("kind", ["imagej", "ome", "plain"])
def test_stack_is_refused_without_plane_and_read_with_it(tmp_path, kind):
    stack = bands_first(5, dtype=np.uint8)  # 5 planes of (24, 32)
    path = tmp_path / "z.tif"
    if kind == "plain":  # a plain series of pages of one shape, no metadata of its axes
        tifffile.imwrite(path, stack, photometric="minisblack")
    else:
        tifffile.imwrite(path, stack, **{kind: True}, metadata={"axes": "ZYX"})
    with pytest.raises(InvalidImageDataError, match=r"z.tif: is a stack of 5 planes .*pass plane=N \(CLI: --plane N\) "
                                                    r"with N from 0 to 4"):
        kmseg.segment(path, 2)
    for z in (0, 3):
        assert np.array_equal(load_image(path, plane=z), stack[z])
        same_seg(kmseg.segment(path, 3, seed=0, plane=z), kmseg.segment(stack[z], 3, seed=0))
    with pytest.raises(ParameterError, match="plane=5 is out of range; the file has 5 planes: .* from 0 to 4"):
        kmseg.segment(path, 2, plane=5)


def test_zcyx_plane_gives_that_planes_channels(tmp_path):
    rng = np.random.default_rng(1)
    stack = rng.integers(0, 4000, (3, 2, 20, 24)).astype(np.uint16)  # Z, C, Y, X
    path = tmp_path / "zc.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZCYX"})
    ome = tmp_path / "zc.ome.tif"
    tifffile.imwrite(ome, stack, ome=True, metadata={"axes": "ZCYX"})
    for p in (path, ome):
        with pytest.raises(InvalidImageDataError, match="stack of 3 planes of 2 channels each"):
            load_image(p)
        assert np.array_equal(load_image(p, plane=2), np.moveaxis(stack[2], 0, -1))
    same_seg(kmseg.segment(path, 3, seed=0, plane=1), kmseg.segment(stack[1], 3, seed=0, channel_axis=0))


def test_plane_of_a_single_image_and_of_an_array(tmp_path):
    path = save_image(tmp_path / "one.tif", np.zeros((4, 5, 3), np.uint8))
    assert load_image(path, plane=0).shape == (4, 5, 3)
    with pytest.raises(ParameterError, match="plane=1 is out of range; the file has 1 plane: pass plane=0 or leave"):
        load_image(path, plane=1)
    with pytest.raises(ParameterError, match=r"plane=1 picks a plane of a file; .*index it instead \(image\[1\]\)"):
        kmseg.segment(np.zeros((3, 40, 40), np.uint8), 2, plane=1)
    with pytest.raises(ParameterTypeError, match="plane=1.5 is not an int"):
        load_image(path, plane=1.5)
    with pytest.raises(ParameterError, match="plane=-1 is out of range; planes are numbered from 0"):
        kmseg.segment(path, 2, plane=-1)


def test_max_pixels_is_checked_before_a_plane_is_decoded(tmp_path):
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, bands_first(3, dtype=np.uint8), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(ImageTooLargeError, match="768 pixels"):
        load_image(path, plane=1, max_pixels=100)
    with pytest.raises(ImageTooLargeError):
        load_image(path, max_pixels=100)  # the size first, the stack after


def test_animated_gif_frame(tmp_path):
    red = Image.fromarray(np.full((4, 5, 3), (255, 0, 0), np.uint8))
    blue = Image.fromarray(np.full((4, 5, 3), (0, 0, 255), np.uint8))
    path = tmp_path / "anim.gif"
    red.save(path, save_all=True, append_images=[blue])
    assert (load_image(path) == (255, 0, 0)).all()  # frame 0 without plane, as before
    assert (load_image(path, plane=1) == (0, 0, 255)).all()
    with pytest.raises(ParameterError, match="plane=2 is out of range; the file has 2 frames: .*from 0 to 1"):
        load_image(path, plane=2)
    webp = tmp_path / "anim.webp"
    red.save(webp, save_all=True, append_images=[blue], lossless=True)
    assert (load_image(webp, plane=1) == (0, 0, 255)).all() and (load_image(webp) == (255, 0, 0)).all()


def _two_series(path: Path, ome: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
    with tifffile.TiffWriter(path, ome=ome) as tif:
        tif.write(a, photometric="rgb")
        tif.write(b, photometric="rgb")
    return a, b


@pytest.mark.parametrize("ome", [True, False])
def test_a_tiff_of_several_images_says_only_the_first_is_read(tmp_path, ome):
    """An OME-TIFF of several images (positions), or a TIFF of images of different shapes: the
    first is read, as tifffile does, and a ReadWarning names the file and the count (it was
    silent). A reduced-resolution page (a thumbnail) is no image of its own: no warning."""
    from kmseg.errors import ReadWarning

    path = tmp_path / ("two.ome.tif" if ome else "two.tif")
    a, _ = _two_series(path, ome)
    with pytest.warns(ReadWarning) as caught:
        got = load_image(path)
    np.testing.assert_array_equal(got, a)
    assert [str(w.message) for w in caught] == [
        f"{path}: holds 2 images (TIFF series 0 to 1); kmseg reads the first (20x30x3): to segment another, save it "
        "as a file of its own"
    ]
    assert caught[0].filename == __file__  # pointed at the caller's line
    thumb = tmp_path / "thumb.tif"
    with tifffile.TiffWriter(thumb) as tif:
        tif.write(a, photometric="rgb", subifds=1)
        tif.write(a[::2, ::2], photometric="rgb", subfiletype=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(load_image(thumb), a)


def test_a_tiff_of_several_images_warns_in_one_line_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "two.ome.tif"
    a, _ = _two_series(path, True)
    assert main(["segment", str(path), "-k", "3", "-o", str(tmp_path / "out"), "--seed", "0"]) == 0
    err = capsys.readouterr().err
    assert err == (f"kmseg: warning: {path}: holds 2 images (TIFF series 0 to 1); kmseg reads the first (20x30x3): "
                   "to segment another, save it as a file of its own\n")
    labels = np.asarray(Image.open(tmp_path / "out" / "two.ome-labels.png"))
    assert same_partition(labels, kmseg.segment(a, 3, seed=0).labels)


def test_count_planes_is_the_range_plane_is_checked_against(tmp_path):
    """count_planes reads how many planes (a TIFF's) or frames (an animation's) a file has from its
    structure: plane=n-1 reads, plane=n is out of range, and a TIFF with more than one is a stack."""
    from kmseg.errors import NotAnImageError
    from kmseg.io import count_planes

    files = {}
    stack = bands_first(5, dtype=np.uint8)
    tifffile.imwrite(files.setdefault("ij.tif", tmp_path / "ij.tif"), stack, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(files.setdefault("plain.tif", tmp_path / "plain.tif"), stack, photometric="minisblack")
    tzcyx = np.zeros((2, 3, 2, 8, 10), np.uint16)
    tifffile.imwrite(files.setdefault("tzc.ome.tif", tmp_path / "tzc.ome.tif"), tzcyx, ome=True,
                     metadata={"axes": "TZCYX"})
    tifffile.imwrite(files.setdefault("cyx.tif", tmp_path / "cyx.tif"), stack[:3], imagej=True, metadata={"axes": "CYX"})
    files["one.tif"] = save_image(tmp_path / "one.tif", np.zeros((4, 5, 3), np.uint8))
    frames = [Image.fromarray(np.full((4, 5, 3), (60 * i, 0, 0), np.uint8)) for i in range(3)]
    for suffix, extra in (("gif", {}), ("png", {}), ("webp", {"lossless": True})):
        files[f"anim.{suffix}"] = tmp_path / f"anim.{suffix}"
        frames[0].save(files[f"anim.{suffix}"], save_all=True, append_images=frames[1:], **extra)
    files["still.png"] = save_image(tmp_path / "still.png", np.zeros((4, 5, 3), np.uint8))
    expected = {"ij.tif": (5, "plane"), "plain.tif": (5, "plane"), "tzc.ome.tif": (6, "plane"), "cyx.tif": (1, "plane"),
                "one.tif": (1, "plane"), "anim.gif": (3, "frame"), "anim.png": (3, "frame"), "anim.webp": (3, "frame"),
                "still.png": (1, "frame")}
    for name, path in files.items():
        n, kind = count_planes(path)
        assert (n, kind) == expected[name], name
        load_image(path, plane=n - 1)
        with pytest.raises(ParameterError, match=f"plane={n} is out of range; the file has {n} {kind}"):
            load_image(path, plane=n)
        if kind == "plane" and n > 1:
            with pytest.raises(InvalidImageDataError, match=f"is a stack of {n} planes"):
                load_image(path)
        else:
            load_image(path)
    (tmp_path / "notes.txt").write_text("not an image\n")
    with pytest.raises(NotAnImageError, match="notes.txt: not an image kmseg can read"):
        count_planes(tmp_path / "notes.txt")


def test_dask_source_refuses_stacks(tmp_path):
    from kmseg._dask_tiff import open_source

    z = tmp_path / "z.tif"
    tifffile.imwrite(z, bands_first(3, dtype=np.uint8), imagej=True, metadata={"axes": "ZYX"})
    with pytest.raises(InvalidImageDataError, match=r"z.tif: is a stack of 3 pages .*single-page TIFFs.*plane=N"):
        open_source(z)
    c = tmp_path / "c.tif"
    tifffile.imwrite(c, bands_first(3, dtype=np.uint8), imagej=True, metadata={"axes": "CYX"})
    with pytest.raises(InvalidImageDataError, match="stores its 3 channels as pages"):
        open_source(c)
    one = save_image(tmp_path / "one.tif", np.zeros((8, 8, 3), np.uint8))
    assert open_source(one).n_channels == 3


# --------------------------------------------------------------------------- the command line


@pytest.fixture
def zstack(tmp_path: Path) -> tuple[Path, np.ndarray]:
    stack = bands_first(4, dtype=np.uint8)
    path = tmp_path / "z.tif"
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    return path, stack


def test_cli_segment_plane_equals_the_api(zstack, tmp_path, capsys):
    """Each plane's outputs are named after it, so that the planes of a stack segmented one by
    one into one folder keep their own (they were all z-segmented.png: the second refused)."""
    path, stack = zstack
    out = tmp_path / "out"
    for plane in (1, 2):
        assert main(["segment", str(path), "-k", "3", "-o", str(out), "--plane", str(plane)]) == 0
        seg = kmseg.segment(stack[plane], 3, seed=0)
        labels = load_image(out / f"z-plane{plane}-labels.png")
        assert same_partition(labels, seg.labels)
        assert np.array_equal(load_image(out / f"z-plane{plane}-segmented.png"), seg.image())
        assert json.loads((out / f"z-plane{plane}-palette.json").read_text())["inertia"] == pytest.approx(seg.inertia)
    assert sorted(p.name for p in out.iterdir()) == [f"z-plane{i}-{kind}" for i in (1, 2)
                                                     for kind in ("labels.png", "palette.json", "segmented.png")]
    assert json.loads((out / "z-plane2-palette.json").read_text())["plane"] == 2


def test_the_plane_is_recorded_and_names_the_outputs_in_python(zstack, tmp_path):
    """seg.plane, the summary's "plane" and save()'s default stem, through segment, Palette.apply
    and fit_palette; none for an array, or a file read without plane."""
    path, stack = zstack
    seg = kmseg.segment(path, 3, seed=0, plane=3)
    assert seg.plane == 3 and seg.summary()["plane"] == 3 and seg.source == str(path)
    written = seg.save(tmp_path / "py")
    assert sorted(p.name for p in written.values()) == ["z-plane3-labels.png", "z-plane3-palette.json",
                                                        "z-plane3-segmented.png"]
    again = seg.apply(path, plane=0)
    assert again.plane == 0 and again.save(tmp_path / "py")["segmented"].name == "z-plane0-segmented.png"
    assert kmseg.fit_palette([path], 2, seed=0, plane=1).k == 2
    flat = kmseg.segment(stack[3], 3, seed=0)
    assert flat.plane is None and "plane" not in flat.summary()
    single = save_image(tmp_path / "one.png", stack[0])
    assert kmseg.segment(single, 2, seed=0).plane is None
    assert "plane" not in kmseg.segment(single, 2, seed=0).summary()


def test_cli_stack_without_plane_is_one_line(zstack, tmp_path, capsys):
    path, _ = zstack
    assert main(["segment", str(path), "-k", "3", "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "is a stack of 4 planes" in err and "pass --plane N with N from 0 to 3" in err
    assert "plane=" not in err and "Traceback" not in err
    assert main(["elbow", str(path), "--plane", "9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("--plane 9 is out of range; the file has 4 planes: pass --plane N with N from 0 to 3")
    assert len(err.splitlines()) == 1


def test_every_verb_takes_plane(zstack, tmp_path, capsys):
    path, stack = zstack
    assert main(["elbow", str(path), "--plane", "2", "--k-max", "4", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["inertias"] == kmseg.elbow(stack[2], ks=range(1, 5), seed=0).inertias.tolist()
    assert main(["palette", str(path), "-k", "2", "--plane", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["palette"] == kmseg.segment(stack[2], 2, seed=0).palette()
    edges = tmp_path / "e.png"
    assert main(["edges", str(path), "--plane", "3", "--low", "10", "--high", "30", "-o", str(edges)]) == 0
    assert np.array_equal(load_image(edges) > 0, kmseg.edges(stack[3], 10, 30))
    assert main(["report", str(path), "--plane", "0", "--k-max", "3", "-o", str(tmp_path / "r.html")]) == 0
    assert main(["edges", str(path), "-o", str(tmp_path / "e2.png")]) == 1
    assert "pass --plane N" in capsys.readouterr().err


def test_cli_in_its_own_process_prints_no_traceback(zstack, tmp_path):
    path, _ = zstack
    run = subprocess.run([sys.executable, "-m", "kmseg", "segment", str(path), "-o", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [l for l in run.stderr.strip().splitlines() if l.startswith("kmseg")]
    assert "pass --plane N with N from 0 to 3" in run.stderr


# --------------------------------------------------------------------------- outputs: is the last band alpha?


def test_output_suffix_depends_on_alpha():
    for n, alpha, want in [(1, False, ".png"), (3, False, ".png"), (4, True, ".png"), (4, False, ".tif"),
                           (2, False, ".tif"), (2, True, ".tif"), (5, False, ".tif")]:
        assert output_suffix(np.zeros((2, 2, n), np.uint16), alpha) == want, (n, alpha)
    assert output_suffix(np.zeros((2, 2), np.uint8), False) == ".png"
    assert output_suffix(np.zeros((2, 2, 3), np.float32), False) == ".tif"


@pytest.mark.parametrize("n", [2, 4])
def test_bands_without_alpha_are_saved_as_tiff_with_every_band(tmp_path, n):
    x = np.moveaxis(bands_first(n, dtype=np.uint16), 0, -1).copy()
    src = tmp_path / f"b{n}.tif"
    tifffile.imwrite(src, x, photometric="minisblack", planarconfig="contig")  # no alpha extra sample
    assert load_image(src, return_alpha=True)[1] is None
    seg = kmseg.segment(src, 3, seed=0)
    written = seg.save(tmp_path / "api", disable=[0])
    assert written["segmented"].name == f"b{n}-segmented.tif" and written["masked"].suffix == ".tif"
    back, alpha = load_image(written["segmented"], return_alpha=True)
    assert alpha is None and np.array_equal(back, seg.image())  # every band back, none read as alpha
    assert np.array_equal(load_image(written["masked"]), seg.masked([0]))
    # the command line writes the same
    assert main(["segment", str(src), "-k", "3", "-o", str(tmp_path / "cli"), "--disable", "0"]) == 0
    assert np.array_equal(load_image(tmp_path / "cli" / f"b{n}-segmented.tif"), seg.image())
    assert not (tmp_path / "cli" / f"b{n}-segmented.png").exists()


def test_channel_axis_bands_are_saved_as_tiff_and_rgba_stays_png(tmp_path):
    x = bands_first(4, dtype=np.uint8)
    seg = kmseg.segment(x, 2, seed=0, channel_axis=0)
    path = seg.save(tmp_path / "a")["segmented"]
    assert path.suffix == ".tif" and np.array_equal(load_image(path), seg.image())
    rgba = np.moveaxis(x, 0, -1).copy()
    rgba[..., 3] = 255
    seg = kmseg.segment(rgba, 2, seed=0)  # 4 channels, last one alpha
    path = seg.save(tmp_path / "b")["segmented"]
    assert path.suffix == ".png" and load_image(path, return_alpha=True)[1] is not None
    with pytest.raises(ParameterError, match="cannot save 4 bands without alpha as PNG.*save as .tif"):
        save_image(tmp_path / "c.png", rgba, alpha=False)
