"""The histogram engine gives exactly Lloyd's result on all pixels, and it is a fixed point."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import kmseg
from kmseg import _engine, _kernels
from kmseg.color import from_features, to_features
from helpers import numpy_lloyd


def _start(img: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k distinct colours of the image, as a deterministic starting point."""
    colors = np.unique(img.reshape(-1, img.shape[-1]), axis=0)
    rng = np.random.default_rng(seed)
    return colors[rng.choice(len(colors), k, replace=False)].astype(np.float64)


@pytest.mark.parametrize("name", kmseg.data.NAMES)
def test_histogram_engine_equals_all_pixel_lloyd(photos, name):
    img = photos[name]
    C0 = _start(img, 5, seed=1)
    seg = kmseg.segment(img, k=5, init=C0)
    C_ref, labels_ref = numpy_lloyd(img.reshape(-1, 3), C0)
    np.testing.assert_array_equal(seg.labels.ravel(), labels_ref)
    np.testing.assert_allclose(seg.centers, C_ref, rtol=1e-10, atol=1e-9)
    assert seg.converged


def test_lab_histogram_equals_lab_pixels(photos):
    img = photos["chelsea.png"]
    C0 = _start(img, 4, seed=2)
    seg = kmseg.segment(img, k=4, init=C0, color_space="lab")
    X = to_features(img.reshape(-1, 3), "lab", 255.0)
    C_ref, labels_ref = numpy_lloyd(X, to_features(C0, "lab", 255.0))
    np.testing.assert_array_equal(seg.labels.ravel(), labels_ref)
    np.testing.assert_allclose(seg.centers, from_features(C_ref, "lab", 255.0), atol=1e-6)


@pytest.mark.parametrize("name", ["coffee.png", "rocket.jpg"])
@pytest.mark.parametrize("k", [3, 8])
def test_default_run_is_a_fixed_point(photos, name, k):
    """Every returned centre is the mean of its pixels; every pixel's label is its nearest centre."""
    img = photos[name]
    seg = kmseg.segment(img, k=k, seed=0)
    X = img.reshape(-1, 3).astype(np.float64)
    labels = seg.labels.ravel()
    d = ((X[:, None, :] - seg.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels, d.argmin(axis=1))
    means = np.array([X[labels == j].mean(axis=0) for j in range(k)])
    np.testing.assert_allclose(seg.centers, means, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(seg.counts, np.bincount(labels, minlength=k))
    assert seg.inertia == pytest.approx(d.min(axis=1).sum(), rel=1e-12)
    assert seg.converged


def test_uint16_pixels_path_equals_reference():
    rng = np.random.default_rng(3)
    img = rng.integers(0, 65536, size=(30, 40, 3)).astype(np.uint16)
    C0 = img.reshape(-1, 3)[[0, 100, 500, 900]].astype(np.float64)
    seg = kmseg.segment(img, k=4, init=C0)
    C_ref, labels_ref = numpy_lloyd(img.reshape(-1, 3), C0)
    np.testing.assert_array_equal(seg.labels.ravel(), labels_ref)
    np.testing.assert_allclose(seg.centers, C_ref, rtol=1e-12)


def _grey16(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A 16-bit grey image of about 30 000 distinct values, in smooth regions plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    base = 9000 + 30000 * (np.sin(x / 23.0) * np.cos(y / 31.0) > 0.2) + 90 * x
    return np.clip(base + rng.normal(0, 2500, shape), 0, 65535).astype(np.uint16)


@pytest.mark.parametrize("alpha", [False, True])
def test_uint16_grey_runs_on_its_histogram_to_the_all_pixel_lloyd_result(alpha):
    """16-bit grey has at most 65,536 values: it is clustered on its exact histogram, coarse to
    fine through summaries of 12 bits or fewer (each kept one at most half the next finer), and
    ends where plain Lloyd on every pixel ends from the same start. Labels and the recoloured
    image map back through the value table."""
    grey = _grey16((300, 400), seed=4)
    img, opaque = grey, np.ones(grey.shape, bool)
    if alpha:  # every 7th column transparent
        opaque = np.broadcast_to(np.arange(400) % 7 != 0, grey.shape)
        img = np.dstack([grey, np.where(opaque, 65535, 0).astype(np.uint16)])
    prep = kmseg.prepare(img)
    values = grey[opaque]
    red = prep.reduced
    assert red.kind == "histogram" and red.value_bits == 16
    np.testing.assert_array_equal(red.points[:, 0], np.unique(values))
    assert red.weights.sum() == values.size and red.points.shape[0] > 20_000
    sizes = [X.shape[0] for X, _ in red.levels] + [red.points.shape[0]]
    assert len(sizes) >= 3 and sizes[-2] <= 4096 and all(2 * a <= b for a, b in zip(sizes, sizes[1:]))
    res = prep.fit(6, seed=0)[0]
    C_ref, labels_ref = numpy_lloyd(values[:, None], res.start)
    np.testing.assert_allclose(res.centers, C_ref, rtol=1e-12)
    seg = prep.segment(6, seed=0)
    np.testing.assert_array_equal(seg.labels[opaque], labels_ref)
    np.testing.assert_allclose(seg.centers, C_ref, rtol=1e-12)
    assert (seg.labels[~opaque] == -1).all()
    shown = seg.image()
    assert shown.dtype == np.uint16 and shown.shape == img.shape
    painted = shown if not alpha else shown[..., 0]
    np.testing.assert_array_equal(painted[opaque], np.rint(seg.centers[labels_ref, 0]).astype(np.uint16))


# --------------------------------------------------------------------------- speed paths stay exact


@pytest.mark.parametrize("k", [2, 8, 20])
@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_bounded_path_equals_plain_lloyd(photos, k, space):
    prep = kmseg.prepare(photos["astronaut.png"], color_space=space)
    X, w = prep.reduced.points, prep.reduced.weights
    rng = np.random.default_rng(k)
    C0 = _engine.kmeans_plusplus(X, w, k, rng)
    a = _engine.lloyd(X, w, C0, max_iter=500, method="hamerly")
    b = _engine.lloyd(X, w, C0, max_iter=500, method="lloyd")
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.n_iter == b.n_iter and a.converged and b.converged


def _visits(monkeypatch) -> list[int]:
    """Record how many points each active-set iteration of the bounded Lloyd visits."""
    sizes: list[int] = []
    real = _engine._ActiveSet.points

    def points(self, drift):
        out = real(self, drift)
        sizes.append(out[5].shape[0] if out[6] else out[0].shape[0])
        return out

    monkeypatch.setattr(_engine._ActiveSet, "points", points)
    return sizes


@pytest.mark.parametrize("copies", [False, True])  # visits by index; to copies written back
@pytest.mark.parametrize("k", [3, 8, 24])
def test_active_set_path_equals_plain_lloyd(photos, monkeypatch, k, copies):
    """Visiting only the points whose bounds may fail gives plain Lloyd's labels and centres, bit for bit."""
    prep = kmseg.prepare(photos["astronaut.png"])
    X, w = prep.reduced.points, prep.reduced.weights
    monkeypatch.setattr(_engine, "ACTIVE_SET_MIN_POINTS", 1000)
    monkeypatch.setattr(_engine, "ACTIVE_COPY_MIN_POINTS", 1000 if copies else 10**9)
    monkeypatch.setattr(_engine, "TREE_MIN_K", 10**9)  # per-point bounds at every k here
    sizes = _visits(monkeypatch)
    C0 = _engine.kmeans_plusplus(X, w, k, np.random.default_rng(k))
    C0 = _engine.lloyd(X, w, C0, max_iter=4, method="lloyd").centers  # a start near the end, as in fit
    a = _engine.lloyd(X, w, C0, max_iter=500, method="hamerly")
    b = _engine.lloyd(X, w, C0, max_iter=500, method="lloyd")
    assert min(sizes) < X.shape[0] // 2  # some iterations ran on a part of the points
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.n_iter == b.n_iter and a.converged


def test_active_set_on_uint16_pixels_equals_reference(monkeypatch):
    # Smooth gradients plus noise: clusters with long, slowly moving borders, as in a photo.
    rng = np.random.default_rng(5)
    y, x = np.mgrid[0:200, 0:250]
    img = np.stack([x * 260, y * 320, (x + y) * 140], axis=-1) + rng.integers(0, 2000, size=(200, 250, 3))
    img = img.astype(np.uint16)
    sizes = _visits(monkeypatch)
    C0 = img.reshape(-1, 3)[[0, 7, 70, 700, 7000]].astype(np.float64)
    C0 = numpy_lloyd(img.reshape(-1, 3), C0, max_iter=3)[0]  # a start near the end, as in fit
    seg = kmseg.segment(img, k=5, init=C0)
    C_ref, labels_ref = numpy_lloyd(img.reshape(-1, 3), C0)
    assert sizes and min(sizes) < img.shape[0] * img.shape[1] // 2
    np.testing.assert_array_equal(seg.labels.ravel(), labels_ref)
    np.testing.assert_allclose(seg.centers, C_ref, rtol=1e-12)


def test_coarse_to_fine_reaches_the_plain_lloyd_fixed_point(photos):
    img = photos["astronaut.png"]
    prep = kmseg.prepare(img)
    assert prep.reduced.levels  # the photo is big enough for the coarse stages
    res = _engine.fit(prep.reduced.points, prep.reduced.weights, 6, rng=np.random.default_rng(0), coarse=prep.reduced.levels)
    # The refinement started from the best coarse centres; plain all-pixel Lloyd from there
    # lands on exactly the same centres and labels.
    C_ref, labels_ref = numpy_lloyd(img.reshape(-1, 3), res.start)
    seg = prep.segment(6, init=res.start)
    np.testing.assert_array_equal(seg.labels.ravel(), labels_ref)
    np.testing.assert_allclose(res.centers, C_ref, rtol=1e-10)
    np.testing.assert_allclose(seg.centers, C_ref, rtol=1e-10)


@pytest.mark.parametrize("name, k", [("coffee.png", 6), ("astronaut.png", 20)])  # bounds; kd-tree
def test_one_and_two_threads_give_identical_results(photos, name, k):
    img = photos[name]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        a = kmseg.segment(img, k=k, seed=4)
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        b = kmseg.segment(img, k=k, seed=4)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.inertia == b.inertia


def test_seed_makes_runs_reproducible(photos):
    img = photos["rocket.jpg"]
    a = kmseg.segment(img, k=5, seed=11)
    b = kmseg.segment(img, k=5, seed=11)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)


@pytest.mark.parametrize("threads", [1, 2])
def test_histogram_on_a_large_image(photos, threads):
    """Colours are counted over many row blocks, exactly, with and without a mask, whether one
    thread reads every row or two threads each read their own: RGB by a radix partition (each
    thread marks its colours' bits), codes of up to 16 bits (grey, two channels, 16-bit grey)
    straight into a table per thread."""
    before = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        _check_histogram(photos)
    finally:
        numba.set_num_threads(before)


def _check_histogram(photos):
    from kmseg._reduce import color_histogram, reduce_image

    big = np.tile(photos["astronaut.png"], (4, 4, 1))  # 4 MP: 16 row blocks
    big[::7, ::5] += 1  # a few more distinct colours
    packed = (big[..., 0].astype(np.int64) << 16) | (big[..., 1].astype(np.int64) << 8) | big[..., 2]
    codes, counts = color_histogram(big)
    ref_codes, ref_counts = np.unique(packed, return_counts=True)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(counts, ref_counts)
    # Counts written as float64 weights at once, and points decoded straight to float32, are the
    # same values as the int64 counts and the decoded colours.
    red = reduce_image(big, None, "rgb", 255.0)
    assert red.weights.dtype == np.float64 and red.points.dtype == np.float32
    np.testing.assert_array_equal(red.codes, ref_codes)
    np.testing.assert_array_equal(red.weights, ref_counts)
    np.testing.assert_array_equal(red.points, np.stack([ref_codes >> 16, (ref_codes >> 8) & 255, ref_codes & 255], 1))
    assert red.n_pixels == big.shape[0] * big.shape[1]
    mask = np.ones(big.shape[:2], bool)
    mask[: big.shape[0] // 3] = False
    codes, counts = color_histogram(big, mask)
    ref_codes, ref_counts = np.unique(packed[mask], return_counts=True)
    np.testing.assert_array_equal(codes, ref_codes)
    np.testing.assert_array_equal(counts, ref_counts)
    for nc in (1, 2):  # fewer channels: fewer code bits, one or a few buckets
        part = np.ascontiguousarray(big[..., :nc])
        packed_nc = part[..., 0].astype(np.int64) if nc == 1 else (part[..., 0].astype(np.int64) << 8) | part[..., 1]
        codes, counts = color_histogram(part, mask)
        ref_codes, ref_counts = np.unique(packed_nc[mask], return_counts=True)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(counts, ref_counts)
    # 16-bit grey: the value is the code; both ends, 0 and 65535, sit in row 0, which the mask drops.
    grey16 = (big[..., :1].astype(np.uint16) * 257) ^ (np.arange(big.shape[1], dtype=np.uint16) % 251)[None, :, None]
    grey16[0, :2, 0] = (0, 65535)
    for m in (None, mask):
        codes, counts = color_histogram(grey16, m)
        ref_codes, ref_counts = np.unique(grey16[..., 0] if m is None else grey16[..., 0][m], return_counts=True)
        np.testing.assert_array_equal(codes, ref_codes)
        np.testing.assert_array_equal(counts, ref_counts)
        assert codes.dtype == counts.dtype == np.int64
        red = reduce_image(grey16, m, "rgb", 65535.0)
        np.testing.assert_array_equal(red.weights, ref_counts)
        np.testing.assert_array_equal(red.points[:, 0], ref_codes)
    # And the fused painting pass labels every pixel with its nearest centre.
    seg = kmseg.segment(big, 5, seed=0)
    sample = big.reshape(-1, 3)[::101].astype(np.float64)
    d = ((sample[:, None] - seg.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(seg.labels.reshape(-1)[::101], d.argmin(1))


@pytest.mark.parametrize("k", [2, 9, 40])
def test_coarse_label_table_paints_the_same_labels(photos, monkeypatch, k):
    """Painting through the coarse cell table first (images of very many colours) changes nothing."""
    from kmseg import _kernels, _reduce

    rgba = np.dstack([photos["rocket.jpg"], np.full(photos["rocket.jpg"].shape[:2], 255, np.uint8)])
    rgba[::4, :, 3] = 0  # transparent rows: label -1, painted as they are
    plain = kmseg.segment(rgba, k, seed=0)
    monkeypatch.setattr(_reduce, "COARSE_MIN_COLORS", 0)
    prep = kmseg.prepare(rgba)
    _, coarse = _reduce.label_tables(prep.reduced.codes, np.arange(prep.reduced.codes.shape[0]) % k, 3, k)
    assert coarse.shape[0] == 1 << 18 and (coarse == _kernels.MIXED).any() and (coarse < k).any()
    seg = prep.segment(k, seed=0)
    np.testing.assert_array_equal(seg.labels, plain.labels)
    np.testing.assert_array_equal(seg.image(), plain.image())
    X = rgba[..., :3].reshape(-1, 3).astype(np.float64)
    d = ((X[:, None, :] - plain.centers[None]) ** 2).sum(axis=2)
    opaque = rgba[..., 3].ravel() > 0
    np.testing.assert_array_equal(seg.labels.ravel()[opaque], d.argmin(axis=1)[opaque])
    assert (seg.labels.ravel()[~opaque] == -1).all()


def test_side_by_side_small_runs_equal_lloyd(photos):
    """The restarts' one-thread-per-run Lloyd reaches the same fixed points as the general path."""
    prep = kmseg.prepare(photos["chelsea.png"])
    X, w = prep.reduced.levels[0]  # a coarse summary: weighted means, not whole numbers
    assert X.shape[0] < _engine.PARALLEL_MIN_POINTS
    rng = np.random.default_rng(0)
    for k in (2, 7, 30):
        starts = [_engine.kmeans_plusplus(X, w, k, rng) for _ in range(4)]
        many = _engine.lloyd_many(X, w, starts, max_iter=300)
        for c0, got in zip(starts, many):
            ref = _engine.lloyd(X, w, c0, max_iter=300)
            np.testing.assert_array_equal(got.labels, ref.labels)
            np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-12, atol=1e-9)
            assert got.n_iter == ref.n_iter and got.converged and ref.converged
            assert got.inertia == pytest.approx(ref.inertia, rel=1e-12)


def test_side_by_side_runs_hand_an_emptied_cluster_to_lloyd():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(10, 1, (300, 2))])
    starts = [np.array([[0.0, 0.0], [10.0, 10.0], [500.0, 500.0]]), np.array([[0.0, 0.0], [10.0, 10.0], [5.0, 5.0]])]
    many = _engine.lloyd_many(X, None, starts, max_iter=100)
    for c0, got in zip(starts, many):
        ref = _engine.lloyd(X, None, c0, max_iter=100)
        np.testing.assert_array_equal(got.labels, ref.labels)
        np.testing.assert_allclose(got.centers, ref.centers, rtol=1e-12)
    assert np.bincount(many[0].labels, minlength=3).min() > 0  # the far centre was moved to a point


def test_side_by_side_runs_stopped_early_label_by_nearest_centre(photos):
    X, w = kmseg.prepare(photos["coffee.png"]).reduced.levels[0]
    got = _engine.lloyd_many(X, w, [X[:6].astype(np.float64)], max_iter=2)[0]
    d = ((X[:, None, :].astype(np.float64) - got.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(got.labels, d.argmin(1))
    assert got.n_iter == 3 and not got.converged


@pytest.mark.parametrize("nc", [1, 2, 3])
def test_histogram_levels_made_run_by_run_equal_the_full_table(photos, nc):
    """The coarse summaries of a histogram, summed in small per-run tables, equal one table over every cell."""
    from kmseg import _kernels, _reduce

    img = np.ascontiguousarray(photos["astronaut.png"][..., :nc])
    codes, counts = _reduce.color_histogram(img)
    red = _reduce.reduce_histogram(codes, counts, nc, "rgb")
    cells = np.empty(codes.shape[0], dtype=np.int64)
    _kernels.code_cells(codes, nc, 7, cells)
    fast = _reduce._nested_levels(red.points, red.weights, cells, 128, nc, 3, ordered=True)
    full = _reduce._nested_levels(red.points, red.weights, cells, 128, nc, 3, ordered=False)
    assert len(fast) == len(full) >= 1
    for (xa, wa), (xb, wb) in zip(fast, full):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(wa, wb)


def test_summaries_of_the_occupied_cells_only_equal_one_table_over_every_cell(monkeypatch):
    """Grids too fine for a table of every cell are summed through a hash of the occupied
    cells (grown from 1024 slots as they fill); the cells, sums and weights are the table's."""
    from kmseg import _reduce

    rng = np.random.default_rng(0)
    n = 50_000
    cells = rng.integers(0, 1 << 16, n)  # about 28 000 distinct cells: the hash doubles 6 times
    cells[1::2] = np.where(rng.random(n // 2) < 0.5, cells[0::2], cells[1::2])  # runs, as of neighbouring pixels
    X = rng.normal(size=(n, 8))
    w = rng.integers(1, 9, n).astype(np.float64)
    w[::101] = 0.0  # a weight of 0 alone leaves its cell empty
    want = _reduce._summarise(X, w, cells, 1 << 16)
    monkeypatch.setattr(_reduce, "DENSE_MAX_CELLS", 0)
    means, counts, ids = _reduce._summarise(X, w, cells, 1 << 16)
    order = np.argsort(ids)
    for a, b in zip((means[order], counts[order], ids[order]), want):
        np.testing.assert_array_equal(a, b)
    index = np.empty(n, dtype=np.int64)
    first = _kernels.cell_index(cells, index)
    np.testing.assert_array_equal(first[index], cells)  # every point's number names its own cell
    _, at = np.unique(cells, return_index=True)
    np.testing.assert_array_equal(first, cells[np.sort(at)])  # numbered in order of first appearance


def test_a_many_band_image_runs_coarse_to_fine_to_the_plain_lloyd_fixed_point():
    """8 bands or more are too many for a table of every grid cell; the summaries are made over
    the occupied cells, and the run from them ends where plain Lloyd does from its start."""
    from kmseg import _reduce

    rng = np.random.default_rng(1)
    base = rng.integers(0, 4, (150, 120))  # four materials, mixed into 9 correlated bands
    spectra = rng.integers(2000, 60000, (4, 9))
    img = np.clip(spectra[base] + rng.normal(0, 900, (150, 120, 9)), 0, 65535).astype(np.uint16)
    prep = kmseg.prepare(img)
    X = prep.reduced.points
    levels = prep.reduced.levels
    sizes = [Xl.shape[0] for Xl, _ in levels] + [X.shape[0]]
    assert len(sizes) >= 3 and all(2 * a <= b for a, b in zip(sizes, sizes[1:]))  # coarsest first
    for Xl, wl in levels:  # each summary keeps every pixel's weight and the mean of all of them
        assert wl.sum() == X.shape[0]
        np.testing.assert_allclose((Xl * wl[:, None]).sum(axis=0) / wl.sum(), X.astype(np.float64).mean(axis=0), rtol=1e-9)
    res = _engine.fit(X, None, 4, rng=np.random.default_rng(0), coarse=levels)
    C_ref, labels_ref = numpy_lloyd(X, res.start)
    np.testing.assert_array_equal(res.labels, labels_ref)
    np.testing.assert_allclose(res.centers, C_ref, rtol=1e-10)
    assert _reduce.grid_levels(rng.random((20_000, 31)), None) == []  # too many features for three nested grids


@pytest.mark.parametrize("tops", [1, 3, 200])
def test_a_sorted_summary_cut_into_parts_equals_one_table(tops):
    """Many points are summed in parts side by side, cut between runs; the cells are those of
    one table over every cell, also when one run holds most points and some parts are empty."""
    from kmseg import _kernels, _reduce

    rng = np.random.default_rng(tops)
    n = 3 * _kernels.SORTED_PARTS_MIN_POINTS
    low = 10
    top = np.sort(rng.integers(0, tops, n) if tops < 3 else np.minimum(rng.geometric(0.02, n), tops - 1))
    cells = (top << low) | rng.integers(0, 1 << low, n)
    X = rng.integers(0, 256, (n, 3)).astype(np.float32)
    w = rng.integers(1, 50, n).astype(np.float64)
    w[::97] = 0.0  # a weight of 0 leaves its cell empty
    got = _reduce._summarise_sorted(X, w, cells, low)
    want = _reduce._summarise(X, w, cells, tops << low)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("k", [1, 5, 40])
def test_compiled_kmeans_plusplus_equals_the_general_one(photos, monkeypatch, k):
    """Small point sets seed in one compiled loop; it draws the same numbers and picks the same centres."""
    X, w = kmseg.prepare(photos["astronaut.png"]).reduced.levels[0]
    assert X.shape[0] < _engine.PARALLEL_MIN_POINTS
    few = np.repeat(X[:3], 5, axis=0)  # 3 distinct points: seeding stops at 3 centres
    small = [_engine.kmeans_plusplus(Y, wt, k, np.random.default_rng(k)) for Y, wt in ((X, w), (X, None), (few, None))]
    monkeypatch.setattr(_engine, "PARALLEL_MIN_POINTS", 0)
    general = [_engine.kmeans_plusplus(Y, wt, k, np.random.default_rng(k)) for Y, wt in ((X, w), (X, None), (few, None))]
    for a, b in zip(small, general):
        np.testing.assert_array_equal(a, b)
    assert small[2].shape[0] == min(k, 3)


def _numpy_kmeans_plusplus(X, w, k, rng):
    """Greedy weighted k-means++ written plainly in numpy: the reference for the compiled one."""
    n = X.shape[0]
    wt = np.ones(n) if w is None else w
    trials = 2 + int(np.log(k))
    first = rng.choice(n) if w is None else rng.choice(n, p=wt / wt.sum())
    centers = [X[int(first)].astype(np.float64)]
    d2 = ((X - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        cum = np.cumsum(wt * d2)
        picks = np.minimum(np.searchsorted(cum, rng.random(trials) * cum[-1], side="right"), n - 1)
        near = np.minimum(d2[None, :], ((X[None, :, :] - X[picks][:, None, :]) ** 2).sum(axis=2))
        best = picks[int(np.argmin((wt * near).sum(axis=1)))]
        centers.append(X[best].astype(np.float64))
        d2 = np.minimum(d2, ((X - X[best]) ** 2).sum(axis=1))
    return np.array(centers)


@pytest.mark.parametrize("nf", [2, 3, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_kmeans_plusplus_equals_plain_numpy(nf, weighted):
    """The compiled seeding skips blocks of points that no candidate can reach; it still picks
    the centres a plain loop over every point picks."""
    rng = np.random.default_rng(nf)
    X = rng.integers(0, 40, size=(3000, nf)).astype(np.float64)  # many repeated points
    w = rng.integers(1, 50, size=3000).astype(np.float64) if weighted else None
    assert X.shape[0] < _engine.PARALLEL_MIN_POINTS
    got = _engine.kmeans_plusplus_many(X, w, 24, np.random.default_rng(7), 1)[0]
    np.testing.assert_array_equal(got, _numpy_kmeans_plusplus(X, w, 24, np.random.default_rng(7)))


@pytest.mark.parametrize("nf", [1, 3, 4])
def test_seeding_potential_skips_only_blocks_no_candidate_reaches(nf):
    """A candidate's potential, made block by block with far blocks taken whole, equals the sum
    over every point."""
    rng = np.random.default_rng(nf)
    X = rng.integers(0, 60, size=(2000, nf)).astype(np.float32)
    w = rng.integers(1, 9, size=2000).astype(np.float64)
    perm = _engine.morton_order(X)
    Xt, wt = X[perm], w[perm]
    nb = -(-2000 // _kernels.KPP_BLOCK)
    lo, hi = np.empty((nb, nf)), np.empty((nb, nf))
    _kernels.kpp_boxes(Xt, lo, hi)
    C = X[rng.choice(2000, 12)].astype(np.float64)
    d2 = ((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(axis=2).min(axis=1)
    bmax, bsum = np.empty(nb), np.empty(nb)
    _kernels.kpp_block_sums(wt, perm, d2, bmax, bsum)
    skipped = 0
    for p in rng.choice(2000, 40, replace=False):
        got = _kernels.kpp_potential(Xt, wt, perm, d2, lo, hi, bmax, bsum, X, p)
        near = ((X.astype(np.float64) - X[p].astype(np.float64)) ** 2).sum(axis=1)
        assert got == pytest.approx(float((w * np.minimum(d2, near)).sum()), rel=1e-12)
        gaps = np.maximum(np.maximum(lo - X[p], X[p] - hi), 0.0)
        skipped += int(((gaps**2).sum(axis=1) >= bmax).sum())
    assert skipped > 0  # the test reaches the blocks taken whole


def test_side_by_side_seedings_equal_one_after_another(photos):
    X, w = kmseg.prepare(photos["astronaut.png"]).reduced.levels[0]
    many = _engine.kmeans_plusplus_many(X, w, 12, np.random.default_rng(3), 5)
    rng = np.random.default_rng(3)
    for got in many:
        np.testing.assert_array_equal(got, _engine.kmeans_plusplus(X, w, 12, rng))


# --------------------------------------------------------------------------- kd-tree filtering


def _tree_runs(monkeypatch) -> list[int]:
    """Record the number of points of every Lloyd run that goes through the kd-tree."""
    runs: list[int] = []
    real = _engine._lloyd_tree

    def spy(X, *args, **kwargs):
        runs.append(X.shape[0])
        return real(X, *args, **kwargs)

    monkeypatch.setattr(_engine, "_lloyd_tree", spy)
    return runs


@pytest.mark.parametrize("k", [16, 40])
def test_tree_path_equals_plain_lloyd(photos, monkeypatch, k):
    """Many centres: Lloyd by kd-tree filtering gives plain Lloyd's labels, centres and iterations, bit for bit."""
    prep = kmseg.prepare(photos["astronaut.png"])
    X, w = prep.reduced.points, prep.reduced.weights
    runs = _tree_runs(monkeypatch)
    C0 = _engine.kmeans_plusplus(X, w, k, np.random.default_rng(k))
    a = _engine.lloyd(X, w, C0, max_iter=500)
    b = _engine.lloyd(X, w, C0, max_iter=500, method="lloyd")
    assert runs == [X.shape[0]]
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.n_iter == b.n_iter and a.converged and b.converged
    assert a.inertia == b.inertia
    # Stopped early, by max_iter or by tol: the same again.
    for opts in ({"max_iter": 3}, {"max_iter": 500, "tol_abs": 1.0}):
        a = _engine.lloyd(X, w, C0, **opts)
        b = _engine.lloyd(X, w, C0, method="lloyd", **opts)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.centers, b.centers)
        assert a.n_iter == b.n_iter and not a.converged


@pytest.mark.parametrize("nf", [2, 4])
def test_tree_path_in_other_dimensions_equals_plain_lloyd(monkeypatch, nf):
    """The general filter (colours have their own, written out for 3 features) is exact too."""
    rng = np.random.default_rng(nf)
    X = np.rint(rng.normal(0, 40, (6000, nf)) + rng.integers(0, 4, (6000, 1)) * 90).astype(np.float32)
    w = rng.integers(1, 9, X.shape[0]).astype(np.float64)
    monkeypatch.setattr(_engine, "TREE_MIN_POINTS", 1000)
    runs = _tree_runs(monkeypatch)
    C0 = _engine.kmeans_plusplus(X, w, 20, rng)
    a = _engine.lloyd(X, w, C0, max_iter=300)
    b = _engine.lloyd(X, w, C0, max_iter=300, method="lloyd")
    assert runs == [X.shape[0]]
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.n_iter == b.n_iter and a.converged


def test_tree_path_from_a_fixed_point_and_with_an_emptied_cluster(monkeypatch):
    rng = np.random.default_rng(2)
    X = np.rint(np.concatenate([rng.normal(c, 3, (3000, 3)) for c in (20, 60, 100, 140, 180, 220)])).astype(np.float32)
    k = 16
    C0 = X[rng.choice(X.shape[0], k, replace=False)].astype(np.float64)
    C0[5] = C0[3]  # a duplicate loses every point to the lower index: its cluster empties at once
    C0[9] = 1000.0  # and one far from every point
    monkeypatch.setattr(_engine, "TREE_MIN_POINTS", 1000)
    runs = _tree_runs(monkeypatch)
    a = _engine.lloyd(X, None, C0, max_iter=300)
    b = _engine.lloyd(X, None, C0, max_iter=300, method="lloyd")
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.n_iter == b.n_iter and a.converged
    assert np.bincount(a.labels, minlength=k).min() > 0
    # Started at its own fixed point, it stops where Lloyd does: at the second assignment.
    again = _engine.lloyd(X, None, a.centers, max_iter=300)
    assert again.n_iter == 2 and again.converged
    np.testing.assert_array_equal(again.centers, a.centers)
    assert len(runs) == 2


def test_tree_path_on_fractional_points_only_when_inexact_is_allowed(photos, monkeypatch):
    """Weighted means round differently when summed node by node: there the tree only seeds finer levels."""
    X, w = kmseg.prepare(photos["astronaut.png"]).reduced.levels[-1]
    monkeypatch.setattr(_engine, "TREE_MIN_POINTS", 1000)
    runs = _tree_runs(monkeypatch)
    C0 = _engine.kmeans_plusplus(X, w, 20, np.random.default_rng(0))
    _engine.lloyd(X, w, C0, max_iter=300)
    assert runs == []
    got = _engine.lloyd(X, w, C0, max_iter=300, exact=False)
    assert runs == [X.shape[0]] and got.converged
    # Still a Lloyd fixed point: nearest-centre labels whose weighted means are the centres.
    Xd = X.astype(np.float64)
    d = ((Xd[:, None, :] - got.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(got.labels, d.argmin(1))
    means = np.array([np.average(Xd[got.labels == j], axis=0, weights=w[got.labels == j]) for j in range(20)])
    np.testing.assert_allclose(got.centers, means, rtol=1e-12)


def test_kdtree_holds_every_point_once_in_boxes_that_contain_them(photos):
    X, w = kmseg.prepare(photos["coffee.png"]).reduced.levels[-1]
    tree = _engine.kdtree(X, w)
    Xt, wt, lo, hi, start, end, child, nsum, nw, depth = tree.parts
    np.testing.assert_array_equal(np.sort(tree.perm), np.arange(X.shape[0]))
    np.testing.assert_array_equal(Xt, X[tree.perm])
    inner = child >= 0
    np.testing.assert_array_equal(start[child[inner]], start[inner])
    np.testing.assert_array_equal(end[child[inner] + 1], end[inner])
    np.testing.assert_array_equal(end[child[inner]], start[child[inner] + 1])
    assert (end[child[inner]] > start[inner]).all() and (end[inner] > start[child[inner] + 1]).all()
    for p in range(start.shape[0]):
        pts = Xt[start[p]:end[p]]
        np.testing.assert_array_equal(pts.min(0), lo[p])
        np.testing.assert_array_equal(pts.max(0), hi[p])
    assert nw[0] == w.sum()
    np.testing.assert_allclose(nsum[0], (w[:, None] * X).sum(0), rtol=1e-12)
    leaves = ~inner
    assert ((end - start)[leaves] <= _engine.TREE_LEAF_SIZE).all()
    assert np.array_equal(np.sort(np.concatenate([np.arange(start[t], end[t]) for t in tree.tasks])), np.arange(X.shape[0]))


def test_side_by_side_tree_runs_equal_lloyd(photos, monkeypatch):
    """The restarts' one-thread-per-run filtering reaches plain Lloyd's fixed points, bit for bit on whole numbers."""
    prep = kmseg.prepare(photos["chelsea.png"])
    X, w = prep.reduced.points, prep.reduced.weights  # whole numbers: the sums are exact in any order
    assert X.shape[0] < _engine.PARALLEL_MIN_POINTS
    monkeypatch.setattr(_engine, "TREE_MIN_POINTS", 1000)
    calls = []
    real = _kernels.filter_runs

    def spy(*args):
        calls.append(args[0].shape[0])
        return real(*args)

    monkeypatch.setattr(_kernels, "filter_runs", spy)
    rng = np.random.default_rng(0)
    starts = [_engine.kmeans_plusplus(X, w, 20, rng) for _ in range(3)]
    starts.append(starts[0].copy())
    starts[-1][7] = starts[-1][2]  # a duplicate centre: its cluster empties, and lloyd takes the run over
    many = _engine.lloyd_many(X, w, starts, max_iter=300)
    assert calls == [4]
    for c0, got in zip(starts, many):
        ref = _engine.lloyd(X, w, c0, max_iter=300, method="lloyd")
        np.testing.assert_array_equal(got.labels, ref.labels)
        np.testing.assert_array_equal(got.centers, ref.centers)
        assert got.n_iter == ref.n_iter and got.converged
        assert got.inertia == pytest.approx(ref.inertia, rel=1e-12)
    stopped = _engine.lloyd_many(X, w, starts[:1], max_iter=2)[0]
    ref = _engine.lloyd(X, w, starts[0], max_iter=2, method="lloyd")
    np.testing.assert_array_equal(stopped.labels, ref.labels)
    np.testing.assert_array_equal(stopped.centers, ref.centers)
    assert stopped.n_iter == ref.n_iter == 3 and not stopped.converged


def test_histograms_merge_exactly_in_any_order():
    """Per-region histograms (the Dask path, the shared palette) sum to the histogram of all the pixels."""
    from kmseg._reduce import color_histogram, merge_histograms

    rng = np.random.default_rng(7)
    img = rng.integers(0, 40, size=(300, 200, 3)).astype(np.uint8)  # many colours repeat across regions
    regions = [img[:100], img[100:101], img[101:250], img[250:]]
    parts = [color_histogram(np.ascontiguousarray(r)) for r in regions]
    parts.append((np.empty(0, np.int64), np.empty(0, np.int64)))  # a region with nothing in it
    whole = color_histogram(img)
    for order in (range(5), [4, 2, 0, 3, 1]):
        codes, counts = merge_histograms([parts[i] for i in order])
        np.testing.assert_array_equal(codes, whole[0])
        np.testing.assert_array_equal(counts, whole[1])
    assert merge_histograms([])[0].shape == (0,)


# --------------------------------------------------------------------------- first assignment, warm runs, k = 1


def test_centre_order_resorted_from_the_last_equals_a_fresh_sort():
    """``centre_geometry`` re-sorts the previous iteration's order by insertion: the same order as
    sorting afresh, ties by index, whatever order it starts from."""
    rng = np.random.default_rng(0)
    k = 40
    C = rng.uniform(0, 255, (k, 3))
    C[7] = C[2]  # ties: equal distances from every other centre
    cc, half, order = np.empty((k, k)), np.empty(k), np.empty((k, k - 1), dtype=np.int64)
    _kernels.centre_geometry(C, cc, half, order)
    moved = C + rng.normal(0, 3, C.shape)
    moved[7] = moved[2]
    fresh = np.empty_like(order)
    cc2, half2 = np.empty((k, k)), np.empty(k)
    _kernels.centre_geometry(moved, cc2, half2, fresh)
    assert (np.diff(cc2[np.arange(k)[:, None], fresh], axis=1) >= 0).all()
    for start in (order.copy(), np.array([rng.permutation(row) for row in order])):
        cc3, half3 = np.empty((k, k)), np.empty(k)
        _kernels.centre_geometry(moved, cc3, half3, start, True)
        np.testing.assert_array_equal(start, fresh)
        np.testing.assert_array_equal(cc3, cc2)
        np.testing.assert_array_equal(half3, half2)


@pytest.mark.parametrize("k", [5, 40])  # every centre compared; the ordered scan with its early stop
def test_first_assignment_equals_an_exhaustive_search(k):
    """Scanning from the previous point's centre finds the nearest and second-nearest centre exactly."""
    rng = np.random.default_rng(k)
    X = np.sort(rng.integers(0, 256, (20_000, 3)), axis=0).astype(np.float32)  # runs of similar points
    C = rng.uniform(0, 255, (k, 3))
    C[3] = C[1]  # a tie: the lower index wins
    w = rng.integers(1, 50, X.shape[0]).astype(np.float64)
    n, nch = X.shape[0], _kernels.n_chunks(X.shape[0])
    cc, half, order = np.empty((k, k)), np.empty(k), np.empty((k, k - 1), dtype=np.int64)
    _kernels.centre_geometry(C, cc, half, order)
    labels, ub, lb = np.empty(n, dtype=np.int32), np.empty(n), np.empty(n)
    sums, counts, changed = np.empty((nch, k, 3)), np.empty((nch, k)), np.empty(nch, dtype=np.int64)
    _kernels.hamerly_first(X, w, C, cc, order, 1e-9, labels, ub, lb, sums, counts, changed)
    d2 = ((X[:, None, :].astype(np.float64) - C[None]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    np.testing.assert_array_equal(labels, nearest)
    assert not (labels == 3).any()
    np.testing.assert_array_equal(ub, np.sqrt(d2.min(1)))
    d2[np.arange(n), nearest] = np.inf
    np.testing.assert_array_equal(lb, np.sqrt(d2.min(1)))
    np.testing.assert_array_equal(counts.sum(0), np.bincount(labels, weights=w, minlength=k))
    assert changed.sum() == n


def test_ordered_scan_tells_apart_distances_whose_square_roots_are_equal():
    """The nearest centre is the one with the smaller squared distance, as in plain Lloyd, even when
    the two square roots round to the same number."""
    k = _kernels.SCAN_ALL_MAX_K + 4
    C = np.array([[100.0 + 10 * j, 100.0, 100.0] for j in range(k)])
    C[0] = (1.0, 0.0, 1.2e-8)  # squared distance to the origin: 1 + 2**-52 ...
    C[1] = (1.0, 0.0, 0.0)  # ... and 1: the same square root, 1.0
    X = np.concatenate([C[:1], np.zeros((1, 3))])  # the origin after a point labelled 0, so its scan starts there
    assert (X[1] - C[0]) @ (X[1] - C[0]) > 1.0 and np.sqrt((X[1] - C[0]) @ (X[1] - C[0])) == 1.0
    n, nch = X.shape[0], _kernels.n_chunks(X.shape[0])
    cc, half, order = np.empty((k, k)), np.empty(k), np.empty((k, k - 1), dtype=np.int64)
    _kernels.centre_geometry(C, cc, half, order)
    labels, ub, lb = np.empty(n, dtype=np.int32), np.empty(n), np.empty(n)
    sums, counts, changed = np.empty((nch, k, 3)), np.empty((nch, k)), np.empty(nch, dtype=np.int64)
    _kernels.hamerly_first(X, _engine._EMPTY, C, cc, order, 1e-9, labels, ub, lb, sums, counts, changed)
    np.testing.assert_array_equal(labels, [0, 1])
    # The bounded steps scan the same way: from these centres, every path labels alike.
    plain = _engine.lloyd(X, None, C, max_iter=1, method="lloyd")
    bounded = _engine.lloyd(X, None, C, max_iter=1, method="hamerly")
    np.testing.assert_array_equal(bounded.centers, plain.centers)


@pytest.mark.parametrize("nf", [1, 2, 3, 8])
@pytest.mark.parametrize("m", [1, 100, _kernels.BLOCK])
def test_block_scan_equals_the_point_by_point_scan(m, nf):
    """Scanning a block of points centre by centre gives each point's nearest-two search to the
    bit, in 3 features (written out) and in any other number."""
    rng = np.random.default_rng(m)
    X = rng.integers(0, 8, (m, nf)).astype(np.float32)  # few values: many equal distances
    C = rng.integers(0, 8, (9, nf)).astype(np.float64) + rng.choice([0.0, 0.1], (9, nf))
    C[4] = C[2]  # a tie: the lower index wins
    xb = np.ascontiguousarray(X.T, dtype=np.float64)
    b1, b2, bj = np.empty(m), np.empty(m), np.empty(m, dtype=np.int64)
    _kernels._scan_block(C, xb, m, np.empty(m), b1, b2, bj)
    for i in range(m):
        assert (b1[i], b2[i], bj[i]) == _kernels._nearest_two(X, i, C)


@pytest.mark.parametrize("nf", [1, 3, 5])
def test_point_facts_give_the_range_and_whether_all_are_whole_numbers(nf):
    """The range of every feature, and integrality of coordinates and weights, over several chunks,
    with the one fractional value or weight in the last, partial chunk."""
    rng = np.random.default_rng(nf)
    n = 2 * _kernels.CHUNK + 5
    X = rng.integers(-300, 300, (n, nf)).astype(np.float32)
    X[_kernels.CHUNK + 3] = 1000.0  # the maximum and the minimum sit in different chunks
    X[7] = -1000.0
    w = rng.integers(1, 9, n).astype(np.float64)
    lo, hi = np.empty(nf), np.empty(nf)
    assert _engine.point_facts(X, w, lo, hi) == (1000.0, True)
    np.testing.assert_array_equal(lo, X.min(axis=0))
    np.testing.assert_array_equal(hi, X.max(axis=0))
    assert _engine.point_facts(X, None) == (1000.0, True)
    Y = X.copy()
    Y[-1, nf - 1] = 0.5
    assert _engine.point_facts(Y, w) == (1000.0, False)
    v = w.copy()
    v[-1] = 2.5
    assert _engine.point_facts(X, v) == (1000.0, False)
    v[-1] = 2.0**32  # whole, but too large for exact sums
    assert _engine.point_facts(X, v)[1] is False


@pytest.mark.parametrize("n", [1, _kernels.CHUNK, 3 * _kernels.CHUNK + 17])
@pytest.mark.parametrize("batch", [64, 2])
def test_select_due_lists_exactly_the_points_whose_bounds_may_fail(n, batch, monkeypatch):
    """The active set's one-pass selection equals a plain filter, in order, whole chunks or not,
    in one batch of chunks or several, with scratch rows reused from an earlier selection."""
    monkeypatch.setattr(_kernels, "DUE_BATCH_CHUNKS", batch)
    rng = np.random.default_rng(n)
    k = 5
    labels = rng.integers(0, k, n).astype(np.int32)
    ub = rng.uniform(0, 10, n)
    lb = ub + rng.uniform(0, 4, n)
    lists = _kernels.due_lists(n)
    assert lists.shape[0] == min(_kernels.n_chunks(n), batch)  # the scratch is bounded
    for limit in (np.full(k, 5.0), rng.uniform(0, 4, k), np.zeros(k)):
        expected = np.flatnonzero(lb - ub < limit[labels])
        got = _kernels.select_due(ub, lb, labels, limit, lists)
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, expected)
    assert _kernels.select_due(ub, lb, labels, np.full(k, 5.0)).shape[0] == n


@pytest.mark.parametrize("incremental", [False, True])
def test_bounded_step_scanning_in_blocks_finds_every_nearest_centre(incremental):
    """With every bound failing, a step scans every listed point (in blocks, the last one partial)
    and labels it, bounds it and moves its weight exactly."""
    rng = np.random.default_rng(3)
    X = np.sort(rng.integers(0, 256, (20_000, 3)), axis=0).astype(np.float32)
    w = rng.integers(1, 50, X.shape[0]).astype(np.float64)
    k = 6
    C = rng.uniform(0, 255, (k, 3))
    C[5] = C[1]
    idx = np.flatnonzero(rng.random(X.shape[0]) < 0.7)  # a subset, visited by index
    n, nch = idx.shape[0], _kernels.n_chunks(idx.shape[0])
    cc, half, order = np.empty((k, k)), np.empty(k), np.empty((k, k - 1), dtype=np.int64)
    _kernels.centre_geometry(C, cc, half, order)
    labels = np.zeros(X.shape[0], dtype=np.int32)
    ub, lb = np.full(X.shape[0], np.inf), np.full(X.shape[0], -np.inf)
    D, G = np.full(k, 0.5), 0.25
    sums, counts, changed = np.empty((nch, k, 3)), np.empty((nch, k)), np.empty(nch, dtype=np.int64)
    _kernels.hamerly_step(X, w, C, cc, order, half, D, G, 1e-9, incremental, labels, ub, lb, idx, True,
                          sums, counts, changed)
    d2 = ((X[idx, None, :].astype(np.float64) - C[None]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    np.testing.assert_array_equal(labels[idx], nearest)
    assert not (labels == 5).any()
    np.testing.assert_array_equal(ub[idx], np.sqrt(d2.min(1)) - D[nearest])
    d2[np.arange(n), nearest] = np.inf
    np.testing.assert_array_equal(lb[idx], np.sqrt(d2.min(1)) + G)
    rest = np.setdiff1d(np.arange(X.shape[0]), idx)
    assert (labels[rest] == 0).all() and np.isinf(ub[rest]).all()
    assert changed.sum() == np.count_nonzero(nearest)
    if incremental:  # the weight of every point that moved, out of cluster 0 and into its own
        moved = np.bincount(nearest, weights=w[idx], minlength=k)
        moved[0] = -moved[1:].sum()
        np.testing.assert_allclose(counts.sum(0), moved, rtol=0, atol=0)


def test_coarse_to_fine_ends_on_point_bounds_bit_for_bit(photos, monkeypatch):
    """The last run starts near its end: per-point bounds, not the kd-tree, and plain Lloyd's result."""
    prep = kmseg.prepare(photos["astronaut.png"])
    X, w = prep.reduced.points, prep.reduced.weights
    monkeypatch.setattr(_engine, "TREE_MIN_POINTS", 1000)
    runs = _tree_runs(monkeypatch)
    res = _engine.fit(X, w, 20, rng=np.random.default_rng(1), coarse=prep.reduced.levels)
    assert runs and X.shape[0] not in runs  # the summaries' runs took the tree, the last did not
    ref = _engine.lloyd(X, w, res.start, max_iter=300, method="lloyd")
    np.testing.assert_array_equal(res.labels, ref.labels)
    np.testing.assert_array_equal(res.centers, ref.centers)
    assert res.n_iter == ref.n_iter and res.converged


def test_the_chosen_start_skips_a_finer_summary_unless_much_smaller_than_the_points(photos, monkeypatch):
    """Past the candidates' summary, the chosen start is refined on a finer one only when the
    points outnumber it ``SUMMARY_MIN_SHRINK`` times; the result is a Lloyd fixed point either way."""
    red = kmseg.prepare(photos["astronaut.png"]).reduced
    X, w = red.points, red.weights
    finest = red.levels[-1][0].shape[0]
    assert len(red.levels) == 3 and 256 * 3 <= red.levels[0][0].shape[0]  # k=3: restarts on the coarsest
    sizes: list[int] = []
    real = _engine.lloyd
    monkeypatch.setattr(_engine, "lloyd", lambda Y, *a, **kw: sizes.append(Y.shape[0]) or real(Y, *a, **kw))
    default = _engine.SUMMARY_MIN_SHRINK
    assert default * finest > X.shape[0]  # so by default the chosen start goes straight to X
    results = []
    for shrink in (default, 1):
        monkeypatch.setattr(_engine, "SUMMARY_MIN_SHRINK", shrink)
        sizes.clear()
        results.append(_engine.fit(X, w, 3, rng=np.random.default_rng(0), coarse=red.levels))
        assert sizes[-1] == X.shape[0]
        assert (finest in sizes) == (shrink * finest <= X.shape[0])
    for res in results:
        ref = _engine.lloyd(X, w, res.start, max_iter=300, method="lloyd")
        np.testing.assert_array_equal(res.labels, ref.labels)
        np.testing.assert_array_equal(res.centers, ref.centers)


def test_inexact_runs_on_fractional_points_update_sums_by_the_moves(photos, monkeypatch):
    """A run that only seeds a finer one updates fractional sums incrementally, on an active set:
    it still ends at a fixed point, its centres the means of their points to rounding."""
    X, w = kmseg.prepare(photos["astronaut.png"]).reduced.levels[-1]
    assert not _engine.point_facts(X, w)[1]  # weighted means: not whole numbers
    monkeypatch.setattr(_engine, "ACTIVE_SET_MIN_POINTS", 1000)
    sizes = _visits(monkeypatch)
    C0 = _engine.kmeans_plusplus(X, w, 8, np.random.default_rng(0))
    C0 = _engine.lloyd(X, w, C0, max_iter=4, method="lloyd").centers  # a start near the end, as in fit
    got = _engine.lloyd(X, w, C0, max_iter=300, exact=False)
    assert got.converged and sizes and min(sizes) < X.shape[0] // 2
    Xd = X.astype(np.float64)
    d = ((Xd[:, None, :] - got.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(got.labels, d.argmin(1))
    means = np.array([np.average(Xd[got.labels == j], axis=0, weights=w[got.labels == j]) for j in range(8)])
    np.testing.assert_allclose(got.centers, means, rtol=1e-12)
    # The exact run does not touch the active set on such points: its sums are remade in Lloyd's order.
    sizes.clear()
    exact = _engine.lloyd(X, w, C0, max_iter=300)
    ref = _engine.lloyd(X, w, C0, max_iter=300, method="lloyd")
    assert sizes == []
    np.testing.assert_array_equal(exact.centers, ref.centers)


def test_one_cluster_is_the_weighted_mean_after_one_update(photos):
    img = photos["coffee.png"]
    prep = kmseg.prepare(img)
    seg = prep.segment(1, seed=3)
    X = img.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(seg.centers[0], X.mean(0), rtol=1e-12)
    assert (seg.labels == 0).all() and seg.n_iter == 2 and seg.converged
    assert seg.inertia == pytest.approx(((X - X.mean(0)) ** 2).sum(), rel=1e-12)
    # Any start gives the same fixed point, bit for bit, as plain Lloyd.
    red = prep.reduced
    ref = _engine.lloyd(red.points, red.weights, red.points[-1:].astype(np.float64), max_iter=300, method="lloyd")
    np.testing.assert_array_equal(to_features(seg.centers, "rgb", 255.0), ref.centers)


@pytest.mark.parametrize("max_iter, tol", [(300, 0.0), (1, 0.0), (300, 1e-4)])
def test_one_cluster_fit_equals_lloyd_from_any_start(photos, max_iter, tol):
    """k = 1 draws no start; its centres, labels, iterations and convergence are Lloyd's from any start."""
    red = kmseg.prepare(photos["rocket.jpg"]).reduced
    got = _engine.fit(red.points, red.weights, 1, max_iter=max_iter, tol=tol, rng=np.random.default_rng(0),
                      coarse=red.levels, facts=red.facts)
    tol_abs = _engine.tol_to_abs(red.points, red.weights, tol)
    for start in (0, red.points.shape[0] // 2, -1):
        ref = _engine.lloyd(red.points, red.weights, red.points[start][None].astype(np.float64),
                            max_iter=max_iter, tol_abs=tol_abs, method="lloyd")
        np.testing.assert_array_equal(got.centers, ref.centers)
        np.testing.assert_array_equal(got.labels, ref.labels)
        assert (got.n_iter, got.converged, got.inertia) == (ref.n_iter, ref.converged, ref.inertia)


@pytest.mark.parametrize(
    "env, expected",
    [({}, "10000"), ({"GOMP_SPINCOUNT": "300000"}, "300000"), ({"OMP_WAIT_POLICY": "PASSIVE"}, None)],
    ids=["unset", "the-users-count", "the-users-wait-policy"],
)
def test_openmp_threads_spin_briefly_unless_the_user_says_otherwise(env, expected):
    """A parallel loop's idle threads spin 10,000 rounds, not libgomp's 300,000, before they
    sleep (see ``_kernels``): set before the first parallel loop loads libgomp, in the process and
    so in the subprocesses it starts; a user's own GOMP_SPINCOUNT or OMP_WAIT_POLICY stays."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = ("import os, numpy as np, kmseg; kmseg.segment(np.zeros((300, 300, 3), np.uint8), 2, seed=0);"
            "maps = open('/proc/self/maps').read() if os.path.exists('/proc/self/maps') else '';"
            "import numba; print(os.environ.get('GOMP_SPINCOUNT'), 'libgomp' in maps, numba.threading_layer())")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    spin, loaded, layer = out.stdout.split()
    assert spin == str(expected)
    if layer == "omp":
        assert loaded == "True"  # the loop above did load libgomp, after the setting
