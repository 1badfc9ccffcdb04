"""segment() semantics: known answers, colour spaces, alpha, scale, outputs, and every error."""

from __future__ import annotations

import json
import tracemalloc

import warnings

import numpy as np
import pytest

import kmseg
from kmseg import _engine
from kmseg.io import save_image
from helpers import quadrants, same_partition, needs_sysfs

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def test_quadrants_known_answer():
    img, truth = quadrants(COLORS)
    seg = kmseg.segment(img, k=4, seed=0)
    assert same_partition(seg.labels, truth)
    got = sorted(map(tuple, np.rint(seg.centers).astype(int)))
    assert got == sorted(COLORS) or np.allclose(sorted(map(tuple, seg.centers)), sorted(COLORS), atol=2)


@pytest.mark.parametrize("space", ["rgb", "lab", "hsv"])
def test_every_color_space_finds_the_quadrants(space):
    img, truth = quadrants(COLORS, noise=2.0, seed=1)
    seg = kmseg.segment(img, k=4, seed=0, color_space=space)
    assert same_partition(seg.labels, truth)
    # Centres come back in the input's units (0-255 RGB), whatever the clustering space.
    for c in seg.centers:
        assert min(np.abs(np.asarray(COLORS) - c).max(axis=1)) < 6


def _hsv_image(hues_deg, s=1.0, v=1.0, reps=50):
    import cv2

    hsv = np.array([[h, s, v] for h in hues_deg for _ in range(reps)], np.float32).reshape(1, -1, 3)
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def test_hsv_hue_is_circular():
    """Hue 358 and hue 2 are neighbours: they share a cluster, apart from hue 180."""
    img = _hsv_image([2, 358, 180])
    seg = kmseg.segment(img, k=2, color_space="hsv", seed=0)
    lab = seg.labels[0]
    assert lab[0] == lab[50] != lab[100]
    # A linear hue axis would put 2 and 358 at opposite ends: their features here are close.
    from kmseg.color import to_features

    f = to_features(img[0, [0, 50, 100]], "hsv", 255.0)
    assert np.linalg.norm(f[0] - f[1]) < 0.1 < np.linalg.norm(f[0] - f[2])


def test_centres_in_input_units_for_uint16_and_float():
    img8, truth = quadrants(COLORS, noise=0.0)
    for img, scale in [(img8.astype(np.uint16) * 257, 257.0), (img8.astype(np.float32) / 255, 1 / 255)]:
        seg = kmseg.segment(img, k=4, seed=0)
        assert same_partition(seg.labels, truth)
        assert np.allclose(sorted(map(tuple, seg.centers / scale)), sorted(COLORS), atol=1e-3)
        out = seg.image()
        assert out.shape == img.shape and out.dtype == img.dtype


def test_grey_image():
    img = np.zeros((20, 20), np.uint8)
    img[:, 10:] = 200
    seg = kmseg.segment(img, k=2, seed=0)
    assert seg.centers.shape == (2, 1)
    assert seg.image().shape == (20, 20)
    assert sorted(seg.centers.ravel().tolist()) == [0.0, 200.0]


def test_alpha_zero_pixels_are_left_out():
    img, truth = quadrants(COLORS[:2] * 2, noise=0.0)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:5, :5, 3] = 0
    rgba[:5, :5, :3] = (0, 0, 0)  # would be its own cluster if it were counted
    seg = kmseg.segment(rgba, k=2, seed=0)
    assert (seg.labels[:5, :5] == -1).all()
    assert (seg.labels[5:] >= 0).all()
    assert seg.counts.sum() == img.shape[0] * img.shape[1] - 25
    out = seg.image()
    assert out.shape == rgba.shape
    np.testing.assert_array_equal(out[..., 3], rgba[..., 3])
    np.testing.assert_array_equal(out[:5, :5], rgba[:5, :5])


def test_four_band_array_without_alpha():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (10, 10, 4)).astype(np.uint8)
    img[..., 3] = 0
    seg = kmseg.segment(img, k=2, alpha=False, seed=0)
    assert (seg.labels >= 0).all() and seg.centers.shape == (2, 4)


@pytest.mark.parametrize("dtype, top", [(np.uint16, 4095), (np.uint8, 200), (np.float32, 0.5)])
@pytest.mark.parametrize("n", [2, 4])
def test_an_array_band_taken_as_alpha_but_never_opaque_warns(dtype, top, n):
    """RGB + near infrared (12-bit in uint16), or two stains: the last band is data, not alpha.
    Taken as alpha, it would leave the band out and hide its zero pixels, so that is said."""
    rng = np.random.default_rng(0)
    img = (rng.random((12, 12, n)) * top).astype(dtype)
    img[:2, :2, -1] = 0
    with pytest.warns(UserWarning, match=rf"the last of {n} channels is taken as alpha .* pass alpha=False"):
        seg = kmseg.segment(img, k=2, seed=0)
    assert (seg.labels[:2, :2] == -1).all() and seg.centers.shape[1] == n - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        every = kmseg.segment(img, k=2, seed=0, alpha=False)  # all bands, every pixel
        kept = kmseg.segment(img, k=2, seed=0, alpha=True)  # alpha, as asked
        img[0, 0, -1] = np.iinfo(dtype).max if img.dtype.kind == "u" else 1.0
        kmseg.segment(img, k=2, seed=0)  # some pixel is opaque: an alpha channel as usual
    assert (every.labels >= 0).all() and every.centers.shape[1] == n
    assert (kept.labels[:2, :2] == -1).all()


def test_fewer_colours_than_k_warns_and_returns_the_colours():
    img = np.zeros((6, 6, 3), np.uint8)
    img[:3] = (10, 20, 30)
    with pytest.warns(kmseg.ConvergenceWarning, match="only 2 distinct colours, fewer than k=5"):
        seg = kmseg.segment(img, k=5, seed=0)
    assert seg.k == 2
    assert sorted(map(tuple, seg.centers)) == [(0, 0, 0), (10, 20, 30)]
    assert same_partition(seg.labels, img[..., 0] > 0)


def test_a_one_colour_image_is_counted_in_the_singular():
    img = np.full((4, 4, 3), 7, np.uint8)
    with pytest.warns(kmseg.ConvergenceWarning) as caught:
        seg = kmseg.segment(img, k=2, seed=0)
    assert [str(w.message) for w in caught] == [
        "the image has only 1 distinct colour, fewer than k=2; returning 1 cluster, one per colour"
    ]
    assert seg.k == 1 and (seg.labels == 0).all()
    with pytest.warns(kmseg.ConvergenceWarning, match=r"^the image has only 1 distinct colour, fewer than k=3; "):
        kmseg.elbow(img, ks=[1, 2, 3])
    with pytest.warns(kmseg.ConvergenceWarning, match=r"^X has only 1 distinct point, fewer than n_clusters=2; "
                                                      r"cluster_centers_ has 1 row$"):
        kmseg.KMeans(n_clusters=2, random_state=0).fit(np.ones((5, 2)))


def test_fewer_distinct_pixels_than_k_on_the_pixel_path():
    img = np.zeros((6, 6, 3), np.uint16)
    img[:3] = 1000
    with pytest.warns(kmseg.ConvergenceWarning, match="fewer than k=4"):
        seg = kmseg.segment(img, k=4, seed=0)
    assert seg.k == 2


def test_scale_fits_small_and_labels_everything(photos):
    img = photos["coffee.png"]
    seg = kmseg.segment(img, k=4, seed=0, scale=0.25)
    assert seg.labels.shape == img.shape[:2]
    X = img.reshape(-1, 3).astype(np.float64)
    d = ((X[:, None] - seg.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(seg.labels.ravel(), d.argmin(1))
    assert seg.inertia == pytest.approx(d.min(1).sum(), rel=1e-9)
    assert seg.counts.sum() == X.shape[0]


def test_prepare_reuses_one_reduction(photos):
    prep = kmseg.prepare(photos["chelsea.png"])
    a = prep.segment(3, seed=1)
    b = kmseg.segment(photos["chelsea.png"], 3, seed=1)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert prep.nbytes > photos["chelsea.png"].nbytes


def test_init_array_in_input_units():
    img, truth = quadrants(COLORS)
    seg = kmseg.segment(img, k=4, init=np.array(COLORS, float))
    np.testing.assert_array_equal(seg.labels, truth)


def test_max_iter_and_tol_stop_early_with_consistent_labels(photos):
    img = photos["astronaut.png"]
    full = kmseg.segment(img, 8, seed=0, n_init=1)
    short = kmseg.segment(img, 8, seed=0, n_init=1, max_iter=2)
    assert short.n_iter == 3 and not short.converged  # 2 iterations plus the final assignment
    loose = kmseg.segment(img, 8, seed=0, n_init=1, tol=1e-2)
    assert loose.n_iter < full.n_iter
    for s in (short, loose):
        X = img.reshape(-1, 3).astype(np.float64)
        d = ((X[:, None] - s.centers[None]) ** 2).sum(-1)
        np.testing.assert_array_equal(s.labels.ravel(), d.argmin(1))


def test_tol_is_scaled_by_the_pixels_variance_without_copying_them(photos):
    """``tol`` is relative to the mean per-channel variance of the pixels (as in scikit-learn):
    the histogram's weighted colours give the pixels' value, and working it out makes no copy
    of the points (it once made several, 672 MB for 12 M 16-bit pixels)."""
    img = photos["astronaut.png"]
    X = img.reshape(-1, 3).astype(np.float64)
    red = kmseg.prepare(img).reduced
    assert red.variance == pytest.approx(X.var(axis=0).mean(), rel=1e-12)
    many = np.random.default_rng(0).integers(0, 65536, (1 << 20, 3)).astype(np.float32)  # 12 MB
    tracemalloc.start()
    try:
        got = _engine.tol_to_abs(many, None, 1e-4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == pytest.approx(1e-4 * many.astype(np.float64).var(axis=0).mean(), rel=1e-12)
    assert peak < (1 << 20)  # scratch for the chunks' sums only


# --------------------------------------------------------------------------- outputs


def test_mask_masked_extract_palette():
    img, truth = quadrants(COLORS, noise=0.0)
    seg = kmseg.segment(img, k=4, init=np.array(COLORS, float))
    np.testing.assert_array_equal(seg.mask(2), truth == 2)
    m = seg.masked(disable=[1, 3], fill=(1, 2, 3))
    assert (m[truth == 1] == (1, 2, 3)).all() and (m[truth == 3] == (1, 2, 3)).all()
    np.testing.assert_array_equal(m[truth == 0], img[truth == 0])
    cut = seg.extract(0)
    assert cut.shape == img.shape[:2] + (4,) and cut.dtype == np.uint8
    np.testing.assert_array_equal(cut[..., 3] == 255, truth == 0)
    np.testing.assert_array_equal(cut[truth == 0, :3], img[truth == 0])
    assert (cut[truth != 0] == 0).all()  # the rest of the image is not carried under the transparency
    pal = seg.palette()
    assert [p["hex"] for p in pal] == ["#c81e1e", "#1ec81e", "#1e1ec8", "#dcdc28"]
    assert sum(p["fraction"] for p in pal) == pytest.approx(1.0)
    assert all(p["fraction"] == pytest.approx(0.25) for p in pal)


def test_the_palette_lists_the_largest_share_first_and_keeps_each_label(tmp_path):
    """It listed the clusters by label index: here a 2-pixel red before the two 7-pixel colours."""
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = (0, 200, 0)
    img[2:] = (0, 0, 200)
    img[0, 0] = img[3, 3] = (200, 0, 0)  # 2 red, 7 green, 7 blue
    # Starting at the colours themselves fixes the labels: red 0, blue 1, green 2.
    seg = kmseg.segment(img, k=3, init=np.array([(200, 0, 0), (0, 0, 200), (0, 200, 0)], float))
    pal = seg.palette()
    assert [(p["index"], p["hex"], p["count"]) for p in pal] == [(1, "#0000c8", 7), (2, "#00c800", 7), (0, "#c80000", 2)]
    assert all(p["count"] == (seg.labels == p["index"]).sum() for p in pal)
    assert seg.counts.tolist() == [2, 7, 7] and seg.centers[0].tolist() == [200, 0, 0]  # still by label
    summary = seg.summary()
    assert summary["palette"] == pal and summary["centers"] == seg.centers.tolist()
    assert json.loads(seg.save(tmp_path / "out")["palette"].read_text())["palette"] == pal


@pytest.mark.parametrize("kind", ["grey", "grey_alpha", "rgba", "uint16", "float32", "five_bands"])
def test_masked_and_extract_follow_their_definition_on_every_kind_of_image(kind):
    img, _ = quadrants(COLORS, noise=4.0)
    alpha = np.full(img.shape[:2], 255, np.uint8)
    alpha[:5] = 0  # transparent pixels are label -1: never blanked, never cut out
    arr = {
        "grey": img[..., 0],
        "grey_alpha": np.dstack([img[..., 0], alpha]),
        "rgba": np.dstack([img, alpha]),
        "uint16": img.astype(np.uint16) * 257,
        "float32": img.astype(np.float32) / 255,
        "five_bands": np.dstack([img, img[..., :2]]),
    }[kind]
    before = arr.copy()
    seg = kmseg.segment(arr, 3, seed=0)
    bands = arr if arr.ndim == 3 else arr[..., None]
    n_colour = bands.shape[2] - (1 if kind in ("grey_alpha", "rgba") else 0)
    top = np.iinfo(arr.dtype).max if arr.dtype.kind == "u" else 1
    for i in range(3):
        inside = seg.labels == i
        cut = seg.extract(i)
        assert cut.shape == arr.shape[:2] + (4,) and cut.dtype == arr.dtype
        colour = bands[..., [0, 0, 0]] if n_colour == 1 else bands[..., :3]
        np.testing.assert_array_equal(cut[inside, :3], colour[inside])
        assert (cut[inside, 3] == top).all() and (cut[~inside] == 0).all()
    fill = 0.5 if arr.dtype.kind == "f" else 7
    hidden = np.isin(seg.labels, [0, 2])
    got = seg.masked([0, 2], fill=fill)
    want = bands.copy()
    want[hidden, :n_colour] = fill
    np.testing.assert_array_equal(got, want.reshape(arr.shape))
    np.testing.assert_array_equal(arr, before)


def test_inputs_are_never_modified(photos):
    img = photos["coffee.png"]
    before = img.copy()
    seg = kmseg.segment(img, 3, seed=0)
    seg.masked([0])
    seg.extract(1)
    np.testing.assert_array_equal(img, before)


def test_save_writes_every_output_atomically_and_refuses_to_overwrite(tmp_path, photos):
    seg = kmseg.segment(photos["chelsea.png"], 4, seed=0)
    paths = seg.save(tmp_path, stem="cat", disable=[0], masks=True)
    assert set(paths) == {"segmented", "labels", "palette", "masked"} | {f"cluster{i}" for i in range(4)}
    lab = kmseg.load_image(paths["labels"])
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, seg.labels)
    np.testing.assert_array_equal(kmseg.load_image(paths["segmented"]), seg.image())
    # The masked image and the cut-outs, written side by side at a faster zlib level, read back exactly.
    np.testing.assert_array_equal(kmseg.load_image(paths["masked"]), seg.masked([0]))
    for i in range(4):
        np.testing.assert_array_equal(kmseg.load_image(paths[f"cluster{i}"]), seg.extract(i))
    meta = json.loads(paths["palette"].read_text())
    assert meta["k"] == 4 and len(meta["palette"]) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    stamp = paths["segmented"].stat().st_mtime_ns
    with pytest.raises(kmseg.OutputExistsError, match=r"cat-segmented.png exists already .*force=True"):
        seg.save(tmp_path, stem="cat")
    assert paths["segmented"].stat().st_mtime_ns == stamp
    seg.save(tmp_path, stem="cat", force=True)


def test_save_never_overwrites_the_image_it_was_made_from(tmp_path):
    img, _ = quadrants([(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)])
    src = save_image(tmp_path / "x-segmented.png", img)
    before = src.read_bytes()
    seg = kmseg.segment(src, 2, seed=0)
    for force in (True, False):  # without force too: the message does not offer force=True
        with pytest.raises(kmseg.ParameterError, match="x-segmented.png is the image this segmentation was made from"):
            seg.save(tmp_path, stem="x", force=force)
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x-segmented.png"]
    assert set(seg.save(tmp_path, force=True)) == {"segmented", "labels", "palette"}  # its own stem: other names


def test_save_refuses_a_bad_disable_before_writing_anything(tmp_path):
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    with pytest.raises(kmseg.ParameterError, match=r"disable"):
        seg.save(tmp_path, disable=[7], masks=True)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["out.png", "result.JPG", "seg.json"])
def test_save_refuses_a_directory_named_like_a_file(tmp_path, name):
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    stem = name.rsplit(".", 1)[0]
    with pytest.raises(kmseg.ParameterError, match=rf"looks like a file name, but the outputs .* such as '.*{stem}'$"):
        seg.save(tmp_path / name)
    assert list(tmp_path.iterdir()) == []  # nothing made
    (tmp_path / name).mkdir()  # a directory that exists is used, whatever its name
    assert set(seg.save(tmp_path / name)) == {"segmented", "labels", "palette"}


def test_save_refuses_a_file_or_a_path_through_one(tmp_path):
    """Was a raw FileExistsError / NotADirectoryError from mkdir, after the images were made."""
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    afile = tmp_path / "afile"
    afile.write_bytes(b"keep")
    with pytest.raises(kmseg.ParameterError, match=rf"^'{afile}' is a file, not a folder; pass a folder for the outputs"):
        seg.save(afile)
    with pytest.raises(kmseg.ParameterError, match=rf"^cannot create the folder '{afile}/x': '{afile}' is a file, not a folder; "
                                                  "pass a folder whose path does not go through a file$"):
        seg.save(afile / "x")
    assert afile.read_bytes() == b"keep" and [p.name for p in tmp_path.iterdir()] == ["afile"]


def test_save_where_it_cannot_write_raises_an_oserror(tmp_path):
    """Was a ParameterError alone, which ``except OSError`` let through."""
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    afile = tmp_path / "afile"
    afile.write_bytes(b"keep")
    for where in (afile, afile / "x"):
        with pytest.raises(OSError, match="is a file, not a folder") as info:
            seg.save(where)
        assert isinstance(info.value, kmseg.OutputError) and isinstance(info.value, kmseg.ParameterError)
    (tmp_path / "q-labels.png").mkdir()
    with pytest.raises(OSError, match=r"q-labels\.png: is a directory"):
        seg.save(tmp_path, stem="q", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "q-labels.png"]


@needs_sysfs
def test_save_into_a_folder_without_permission_raises_permission_error():
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    with pytest.raises(PermissionError, match=r"^/sys/image-\w+\.\w+: cannot be written in '/sys' \(Permission "
                                              r"denied\); pass a path in a folder you can write to$") as info:
        seg.save("/sys")
    assert isinstance(info.value, kmseg.OutputPermissionError) and isinstance(info.value, kmseg.KmsegError)


def test_palette_of_an_int16_image_maps_its_min_to_max():
    """Was [0, 0, 0] for every cluster below 0: ints were scaled as if uint, then clipped."""
    rgb = np.zeros((4, 6, 3), np.int16)
    rgb[:, :3] = (-1169, 0, 977)
    rgb[:, 3:] = (977, -1169, 0)
    seg = kmseg.segment(rgb, 2, seed=0)
    assert seg.display_range == (-1169.0, 977.0)
    # (v + 1169) * 255 / 2146: -1169 -> 0, 977 -> 255, 0 -> 138.9 -> 139 (0x8b)
    assert sorted(p["hex"] for p in seg.palette()) == ["#008bff", "#ff008b"]
    # Transparent pixels take no part in the range (alpha 0, here holding 5000).
    rgba = np.dstack([rgb, np.full((4, 6), 32767, np.int16)])
    rgba[0, 0] = (5000, 5000, 5000, 0)
    seg = kmseg.segment(rgba, 2, seed=0)
    assert seg.display_range == (-1169.0, 977.0)
    assert sorted(p["hex"] for p in seg.palette()) == ["#008bff", "#ff008b"]


def test_palette_of_grey_int16_and_a_constant_image():
    grey = np.array([[-1169, -1169, -500, 977]], np.int16)
    seg = kmseg.segment(grey, 3, seed=0)
    # -500: 669 * 255 / 2146 = 79.49 -> 79 (0x4f)
    assert sorted(p["hex"] for p in seg.palette()) == ["#000000", "#4f4f4f", "#ffffff"]
    flat = kmseg.segment(np.full((3, 3), 7.5), 1)  # a constant image: no division by zero, shown black
    assert flat.display_range == (7.5, 7.5) and flat.palette()[0]["hex"] == "#000000"


def test_a_palette_colour_is_the_colour_its_pixels_are_shown_in():
    """An int16 cluster of 7, 7, 8, 8, 8 has its centre at 7.6 and is painted 8. On -1000..1000,
    7.6 shows as 127.97 -> 128 and 8 as 128.52 -> 129: the swatch was one level off the pixels."""
    ct = np.array([[-1000, 7, 7, 8, 8, 8, 1000]], np.int16)
    seg = kmseg.segment(ct, 3, seed=0)
    (mid,) = [p for p in seg.palette() if p["count"] == 5]
    assert seg.centers[mid["index"], 0] == pytest.approx(7.6)
    assert seg.image()[0, 1] == 8
    assert mid["hex"] == "#818181"  # 129
    shown = kmseg._display.shown(seg.image(), False, 1.0, seg.display_range)
    assert mid["rgb"] == [int(shown[0, 1])] * 3


def test_palette_of_float_data_beyond_one_is_not_all_white():
    """Was '#ffffff' for every cluster: floats were taken to be in [0, 1] and clipped."""
    img, _ = quadrants(COLORS)
    f = img.astype(np.float32) * 4  # 0-1000-like data
    seg = kmseg.segment(f, 4, seed=0)
    lo, hi = float(f.min()), float(f.max())
    assert seg.display_range == (lo, hi)
    want = sorted("#{:02x}{:02x}{:02x}".format(*np.rint((c - lo) * 255 / (hi - lo)).astype(int)) for c in seg.centers)
    got = sorted(p["hex"] for p in seg.palette())
    assert got == want and len(set(got)) == 4 and "#ffffff" not in got
    unit = kmseg.segment(img.astype(np.float32) / 255, 4, seed=0)  # floats in [0, 1] keep 0-1
    assert unit.display_range == (0.0, 1.0)
    assert sorted(p["hex"] for p in unit.palette()) == sorted(p["hex"] for p in kmseg.segment(img, 4, seed=0).palette())


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.float64])
def test_save_writes_the_recoloured_image_as_tiff_in_the_inputs_dtype(tmp_path, dtype):
    img, _ = quadrants(COLORS)
    arr = (img.astype(np.float64) * 4 - 500).astype(dtype)
    seg = kmseg.segment(arr, 4, seed=0)
    paths = seg.save(tmp_path, stem="x", disable=[1], masks=True)
    assert paths["segmented"].name == "x-segmented.tif" and paths["masked"].name == "x-masked.tif"
    back = kmseg.load_image(paths["segmented"])
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, seg.image())
    np.testing.assert_array_equal(kmseg.load_image(paths["masked"]), seg.masked([1]))
    np.testing.assert_array_equal(kmseg.load_image(paths["labels"]), seg.labels)
    cut = kmseg.load_image(paths["cluster0"])  # cut-outs stay 8-bit PNGs, on the input's display range
    assert paths["cluster0"].suffix == ".png" and cut.dtype == np.uint8
    inside = seg.labels == 0
    lo, hi = seg.display_range
    want = np.rint((arr[inside].astype(np.float64) - lo) * 255 / (hi - lo)).astype(np.uint8)
    np.testing.assert_array_equal(cut[inside, :3], want)
    assert (cut[inside, 3] == 255).all() and (cut[~inside] == 0).all()
    assert json.loads(paths["palette"].read_text())["palette"] == seg.palette()


def test_save_leaves_no_output_when_one_cannot_be_written(tmp_path):
    """Was: the other outputs written, the one in the way failing (a half set)."""
    seg = kmseg.segment(quadrants(COLORS)[0], 4, seed=0)
    (tmp_path / "q-labels.png").mkdir()  # a directory where an output must go
    with pytest.raises(kmseg.ParameterError, match=r"q-labels\.png: is a directory"):
        seg.save(tmp_path, stem="q", masks=True, force=True)
    assert [p.name for p in tmp_path.iterdir()] == ["q-labels.png"]
    assert list((tmp_path / "q-labels.png").iterdir()) == []


def test_label_map_png_is_uint16_for_many_clusters(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
    seg = kmseg.segment(img, 300, seed=0, n_init=1)
    paths = seg.save(tmp_path)
    lab = kmseg.load_image(paths["labels"])
    assert lab.dtype == np.uint16
    np.testing.assert_array_equal(lab, seg.labels)


# --------------------------------------------------------------------------- array-likes and dtypes


class _HasArray:
    """An object that numpy turns into an array through ``__array__``, as xarray and dask arrays do."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a if dtype is None else self.a.astype(dtype)


def _same_result(a, b):
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.image(), b.image())
    assert a.inertia == b.inertia and a.palette() == b.palette()


def test_lists_tuples_pil_images_and_array_likes_give_the_arrays_result():
    from PIL import Image

    img, truth = quadrants(COLORS)
    as_array = kmseg.segment(np.array(img.tolist()), 4, seed=0)  # Python ints: int64
    assert as_array.image().dtype == np.int64 and same_partition(as_array.labels, truth)
    _same_result(kmseg.segment(img.tolist(), 4, seed=0), as_array)
    _same_result(kmseg.segment(tuple(map(tuple, img.tolist())), 4, seed=0), as_array)
    # The int64 values are clustered exactly: the same fixed point as the uint8 image from the same start.
    start = np.array(COLORS, float)
    np.testing.assert_array_equal(kmseg.segment(img.tolist(), 4, init=start).labels, kmseg.segment(img, 4, init=start).labels)
    _same_result(kmseg.segment(Image.fromarray(img), 4, seed=0), kmseg.segment(img, 4, seed=0))
    _same_result(kmseg.segment(_HasArray(img), 4, seed=0), kmseg.segment(img, 4, seed=0))
    grey = img[..., 0]
    _same_result(kmseg.segment(Image.fromarray(grey), 3, seed=0), kmseg.segment(grey, 3, seed=0))


def test_a_pil_image_is_read_as_its_file_would_be():
    """Its mode says whether it has alpha (no warning guessed from the channel count), and a
    palette image is its colours, not its indices."""
    from PIL import Image

    img, truth = quadrants(COLORS, noise=0.0)
    rgba = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])  # nowhere fully opaque
    rgba[:, :3, 3] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seg = kmseg.segment(Image.fromarray(rgba, "RGBA"), 4, seed=0)
    assert (seg.labels[:, :3] == -1).all() and same_partition(seg.labels[:, 3:], truth[:, 3:])
    pal = Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    seg = kmseg.segment(pal, 4, seed=0)
    assert sorted(map(tuple, np.rint(seg.centers).astype(int))) == sorted(COLORS)


def test_a_bool_image_is_read_as_uint8_0_and_255():
    mask = np.zeros((4, 6), bool)
    mask[:, 4:] = True
    seg = kmseg.segment(mask, 2, seed=0)
    assert sorted(seg.centers[:, 0].tolist()) == [0.0, 255.0] and seg.image().dtype == np.uint8
    _same_result(seg, kmseg.segment(mask.astype(np.uint8) * 255, 2, seed=0))


def _ct(shape=(64, 64), seed=0):
    """A CT-like int16 image: Hounsfield-like values well below and above 0."""
    return np.random.default_rng(seed).normal(0, 300, shape).astype(np.int16)


@pytest.mark.parametrize("k", [2, 5, 8])
def test_int16_is_clustered_exactly_as_its_values(k):
    """int16 runs as uint16 shifted by 32768 (the 16-bit histogram): the labels are those of the
    same values as float64 (on every pixel) and of the shifted uint16 image, from the same start."""
    ct = _ct()
    init = np.linspace(-600, 600, k)[:, None]
    seg = kmseg.segment(ct, k, init=init)
    as_float = kmseg.segment(ct.astype(np.float64), k, init=init)
    shifted = kmseg.segment((ct.astype(np.int32) + 32768).astype(np.uint16), k, init=init + 32768)
    np.testing.assert_array_equal(seg.labels, as_float.labels)
    np.testing.assert_array_equal(seg.labels, shifted.labels)
    np.testing.assert_allclose(seg.centers, as_float.centers, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(seg.centers, shifted.centers - 32768)
    assert seg.inertia == shifted.inertia and seg.inertia == pytest.approx(as_float.inertia, rel=1e-12)
    out = seg.image()
    assert out.dtype == np.int16
    np.testing.assert_array_equal(out, np.rint(seg.centers[seg.labels, 0]).astype(np.int16))
    np.testing.assert_array_equal(ct, _ct())  # the input is not changed


def test_int8_colour_is_clustered_exactly_as_its_values():
    img, truth = quadrants(COLORS)
    signed = (img.astype(np.int16) - 128).astype(np.int8)
    start = np.array(COLORS, float)
    seg = kmseg.segment(signed, 4, init=start - 128)
    ref = kmseg.segment(img, 4, init=start)
    np.testing.assert_array_equal(seg.labels, ref.labels)
    np.testing.assert_array_equal(seg.centers, ref.centers - 128)
    np.testing.assert_array_equal(seg.image().astype(np.int16) + 128, ref.image())
    assert seg.image().dtype == np.int8 and same_partition(seg.labels, truth)


@pytest.mark.parametrize("dtype", [np.int32, np.uint32, np.int64, np.uint64])
def test_wide_integers_are_clustered_as_their_float64_values(dtype):
    img, truth = quadrants(COLORS)
    big = img.astype(np.int64) * 1000 + (0 if np.dtype(dtype).kind == "u" else -100_000)
    arr = big.astype(dtype)
    seg = kmseg.segment(arr, 4, seed=0)
    ref = kmseg.segment(big.astype(np.float64), 4, seed=0)
    np.testing.assert_array_equal(seg.labels, ref.labels)
    np.testing.assert_array_equal(seg.centers, ref.centers)
    assert same_partition(seg.labels, truth)
    out = seg.image()
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.rint(seg.centers[seg.labels]).astype(dtype))
    fill = seg.masked([0], fill=-5 if np.dtype(dtype).kind == "i" else 5)
    assert fill.dtype == dtype and (fill[seg.labels == 0] == (-5 if np.dtype(dtype).kind == "i" else 5)).all()


def test_int16_with_alpha_keeps_its_transparent_pixels():
    ct = _ct((20, 30))
    alpha = np.full(ct.shape, 32767, np.int16)
    alpha[:4] = 0
    rgba = np.dstack([ct, ct, ct, alpha])
    seg = kmseg.segment(rgba, 3, seed=0)
    out = seg.image()
    assert out.dtype == np.int16 and (seg.labels[:4] == -1).all() and (seg.labels[4:] >= 0).all()
    np.testing.assert_array_equal(out[:4], rgba[:4])  # transparent pixels keep their own values, alpha too
    np.testing.assert_array_equal(out[4:, :, 3], alpha[4:])
    np.testing.assert_array_equal(out[4:, :, :3], np.rint(seg.centers[seg.labels[4:]]).astype(np.int16))
    cut = seg.extract(0)
    assert cut.dtype == np.int16 and set(np.unique(cut[..., 3]).tolist()) <= {0, 32767}


def test_segment_a_path(tmp_path):
    img, truth = quadrants(COLORS)
    p = save_image(tmp_path / "q.png", img)
    seg = kmseg.segment(p, k=4, seed=0)
    assert same_partition(seg.labels, truth) and seg.source == str(p)


def test_rgba_file_alpha_is_honoured(tmp_path):
    img, _ = quadrants(COLORS, noise=0.0)
    rgba = np.dstack([img, np.full(img.shape[:2], 255, np.uint8)])
    rgba[:, :3, 3] = 0
    p = save_image(tmp_path / "a.png", rgba)
    seg = kmseg.segment(p, 2, seed=0)
    assert (seg.labels[:, :3] == -1).all() and seg.image().shape == rgba.shape


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"k": 0}, kmseg.ParameterError, r"k=0 is out of range; k must be at least 1"),
        ({"k": 2.5}, kmseg.ParameterTypeError, r"k=2.5 is not an integer"),
        ({"k": True}, kmseg.ParameterTypeError, r"k=True is not an integer"),
        ({"color_space": "xyz"}, kmseg.ParameterError, r"color_space='xyz' is not supported; use 'rgb', 'lab' or 'hsv'"),
        ({"n_init": 0}, kmseg.ParameterError, r"n_init=0 is out of range"),
        ({"max_iter": -1}, kmseg.ParameterError, r"max_iter=-1 is out of range"),
        ({"tol": -1.0}, kmseg.ParameterError, r"tol=-1.0 is out of range"),
        ({"tol": float("nan")}, kmseg.ParameterError, r"tol=nan is out of range"),
        ({"init": "kmeans"}, kmseg.ParameterError, r"init='kmeans' is not supported"),
        ({"init": [1, 2]}, kmseg.ParameterTypeError, r"init of type list is not supported"),
        ({"init": np.zeros((2, 3))}, kmseg.ParameterError, r"init has shape \(2, 3\); .* \(3, 3\)"),
        ({"seed": -1}, kmseg.ParameterError, r"seed=-1 is not valid"),
        ({"seed": "a"}, kmseg.ParameterError, r"seed='a' is not valid"),
        ({"scale": 0}, kmseg.ParameterError, r"scale=0 is out of range"),
        ({"scale": 2.0}, kmseg.ParameterError, r"scale=2.0 is out of range"),
        ({"alpha": True}, kmseg.ParameterError, r"alpha=True needs a grey\+alpha or RGBA image"),
    ],
)
def test_parameter_errors(kwargs, exc, match):
    img, _ = quadrants(COLORS)
    kwargs = {"k": 3, **kwargs}
    with pytest.raises(exc, match=match):
        kmseg.segment(img, **kwargs)


@pytest.mark.parametrize(
    ("image", "exc", "match"),
    [
        ([["a", "b"]], kmseg.ParameterTypeError,
         r"^image of type list is not supported: numpy makes an array of dtype <U1 of it, not of numbers; pass a file path"),
        ([[1, 2], [3]], kmseg.ParameterTypeError, r"^image of type list is not supported: numpy cannot make an array of it \("),
        (None, kmseg.ParameterTypeError, r"^image of type NoneType is not supported: .* dtype object"),
        (np.zeros((2, 2, 3), complex), kmseg.InvalidImageDataError,
         r"^image dtype complex128 is not supported; convert it to an integer or float dtype \(.*np\.abs\(image\)"),
        (np.zeros((2, 2), object), kmseg.InvalidImageDataError, r"^image dtype object is not supported"),
        (np.full((2, 2), 2**53 + 1, np.int64), kmseg.InvalidImageDataError,
         r"^image values reach 9007199254740993, too large to cluster exactly .*2\*\*53.*; rescale them first, "
         r"for example image // 2\*\*1$"),
        (np.full((2, 2), -(2**63), np.int64), kmseg.InvalidImageDataError, r"image // 2\*\*11$"),
        (np.zeros((2,), np.uint8), kmseg.InvalidImageDataError, r"image has shape \(2,\)"),
        (np.zeros((0, 4, 3), np.uint8), kmseg.InvalidImageDataError, r"image has shape \(0, 4, 3\)"),
        (np.full((2, 2, 3), np.nan), kmseg.InvalidImageDataError, r"NaN or infinite values; replace them"),
        (np.zeros((2, 2), np.uint8), kmseg.ParameterError, r"color_space='lab' needs an RGB image .* has 1"),
        (np.zeros((2, 2, 3), np.int16), kmseg.ParameterError,
         r"^color_space='lab' needs colours on a known scale \(uint8, uint16, or float in \[0, 1\]\); this image is "
         r"int16, whose values have none: use color_space='rgb', or convert it$"),
    ],
)
def test_image_errors(image, exc, match):
    with pytest.raises(exc, match=match):
        kmseg.segment(image, 2, color_space="lab" if exc is kmseg.ParameterError else "rgb")


def test_a_file_gets_the_checks_an_array_gets(tmp_path):
    """A path used to skip read_image's checks; the messages name the file."""
    import tifffile

    path = tmp_path / "big.tif"
    tifffile.imwrite(path, np.full((2, 2), 2**60, np.int64))
    with pytest.raises(kmseg.InvalidImageDataError, match=rf"^{path}: image values reach {2**60}, too large .*// 2\*\*8$"):
        kmseg.segment(path, 1)
    tifffile.imwrite(path, np.full((2, 2), 2**53, np.int64))  # the largest exact value is accepted
    assert kmseg.segment(path, 1).centers.tolist() == [[2.0**53]]


def test_fully_transparent_image_errors():
    rgba = np.zeros((4, 4, 4), np.uint8)
    with pytest.raises(kmseg.InvalidImageDataError, match="no opaque pixels"):
        kmseg.segment(rgba, 2)


def test_missing_file_error(tmp_path):
    with pytest.raises(kmseg.ImageNotFoundError, match="nope.png"):
        kmseg.segment(tmp_path / "nope.png", 2)


def test_result_method_errors():
    img, _ = quadrants(COLORS)
    seg = kmseg.segment(img, 4, seed=0)
    with pytest.raises(kmseg.ParameterError, match=r"i=4 is out of range; cluster indices run from 0 to 3"):
        seg.mask(4)
    with pytest.raises(kmseg.ParameterTypeError, match=r"i='a' is not a cluster index"):
        seg.extract("a")
    with pytest.raises(kmseg.ParameterError, match=r"disable=9 is out of range"):
        seg.masked([9])
    with pytest.raises(kmseg.ParameterError, match=r"fill has 2 values; pass one number or 3"):
        seg.masked([0], fill=(1, 2))


def test_errors_are_builtin_subclasses():
    assert issubclass(kmseg.ParameterError, ValueError)
    assert issubclass(kmseg.ParameterTypeError, TypeError)
    assert issubclass(kmseg.ImageNotFoundError, FileNotFoundError)
    assert issubclass(kmseg.OutputExistsError, FileExistsError)
