"""Property tests (hypothesis) of the engine and of segment()."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given, settings, strategies as st

import kmseg
from kmseg import _engine
from helpers import same_partition
from strategies import images_u8, ks, points_and_weights

SETTINGS = settings(max_examples=60, deadline=None)


def _quiet_segment(img, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmseg.ConvergenceWarning)
        return kmseg.segment(img, k, **kw)


@SETTINGS
@given(img=images_u8(levels=4), k=ks, seed=st.integers(0, 2**16))
def test_labels_in_range_and_counts_sum_to_pixels(img, k, seed):
    seg = _quiet_segment(img, k, seed=seed)
    assert seg.k <= k
    assert seg.labels.min() >= 0 and seg.labels.max() < seg.k
    assert seg.counts.sum() == img.shape[0] * img.shape[1]
    np.testing.assert_array_equal(seg.counts, np.bincount(seg.labels.ravel(), minlength=seg.k))
    assert seg.image().shape == img.shape and seg.image().dtype == img.dtype


@SETTINGS
@given(pw=points_and_weights(), k=ks, seed=st.integers(0, 2**16))
def test_inertia_never_rises_between_iterations(pw, k, seed):
    X, w = pw
    w = w.astype(np.float64)
    k = min(k, len(np.unique(X, axis=0)))
    rng = np.random.default_rng(seed)
    C0 = _engine.random_init(X, w, k, rng)
    trace: list[np.ndarray] = []
    _engine.lloyd(X, w, C0, max_iter=100, trace=trace)
    inertias = []
    for C in [C0, *trace]:
        d = ((X[:, None, :] - C[None]) ** 2).sum(axis=2)
        inertias.append(float((w * d.min(axis=1)).sum()))
    assert all(b <= a * (1 + 1e-12) + 1e-9 for a, b in zip(inertias, inertias[1:]))


@SETTINGS
@given(img=images_u8(levels=5), k=ks, seed=st.integers(0, 2**16), perm_seed=st.integers(0, 2**16))
def test_permuting_the_pixels_permutes_the_labels(img, k, seed, perm_seed):
    flat = img.reshape(1, -1, 3)
    perm = np.random.default_rng(perm_seed).permutation(flat.shape[1])
    a = _quiet_segment(flat, k, seed=seed)
    b = _quiet_segment(flat[:, perm], k, seed=seed)
    # Same colour multiset, same seed: the same centres, and the labels follow the pixels.
    np.testing.assert_array_equal(a.centers, b.centers)
    np.testing.assert_array_equal(a.labels[0, perm], b.labels[0])


@SETTINGS
@given(pw=points_and_weights(), k=ks, seed=st.integers(0, 2**16))
def test_integer_weight_equals_repeating_the_point(pw, k, seed):
    X, w = pw
    k = min(k, len(np.unique(X, axis=0)))
    C0 = _engine.random_init(X, None, k, np.random.default_rng(seed))
    a = kmseg.KMeans(k, init=C0).fit(X, sample_weight=w)
    b = kmseg.KMeans(k, init=C0).fit(np.repeat(X, w, axis=0))
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.repeat(a.labels_, w), b.labels_)
    assert np.isclose(a.inertia_, b.inertia_, rtol=1e-10, atol=1e-9)


@SETTINGS
@given(pw=points_and_weights(min_weight=0, span=3), k=ks, seed=st.integers(0, 2**16),
       init=st.sampled_from(["k-means++", "random"]), n_init=st.integers(1, 3), perm_seed=st.integers(0, 2**16))
def test_integer_weight_equals_repeating_the_row_in_any_order_with_random_starts(pw, k, seed, init, n_init, perm_seed):
    """KMeans sees each distinct row once, weighted, in an order set by the values: w copies of a
    row and one row of weight w (0: no row), shuffled, give the same fit to the bit."""
    X, w = pw
    perm = np.random.default_rng(perm_seed).permutation(len(X))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", kmseg.ConvergenceWarning)
        a = kmseg.KMeans(k, init=init, n_init=n_init, random_state=seed).fit(np.repeat(X, w, axis=0))
        b = kmseg.KMeans(k, init=init, n_init=n_init, random_state=seed).fit(X[perm], sample_weight=w[perm])
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_ and a.n_iter_ == b.n_iter_
    np.testing.assert_array_equal(np.repeat(b.labels_[np.argsort(perm)], w), a.labels_)
    np.testing.assert_array_equal(b.labels_, b.predict(X[perm]))  # zero-weight rows too


@SETTINGS
@given(img=images_u8(levels=6), k=ks, seed=st.integers(0, 2**16))
def test_histogram_result_equals_all_pixels_result(img, k, seed):
    """segment() (histogram of unique colours) equals KMeans on every pixel from the same start."""
    X = img.reshape(-1, 3).astype(np.float64)
    k = min(k, len(np.unique(X, axis=0)))
    C0 = _engine.random_init(X, None, k, np.random.default_rng(seed))
    seg = kmseg.segment(img, k, init=C0)
    km = kmseg.KMeans(k, init=C0).fit(X)
    np.testing.assert_allclose(seg.centers, km.cluster_centers_, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(seg.labels.ravel(), km.labels_)


@SETTINGS
@given(img=images_u8(levels=3), seed=st.integers(0, 2**16))
def test_k_one_is_the_mean(img, seed):
    seg = kmseg.segment(img, 1, seed=seed)
    assert same_partition(seg.labels, np.zeros(img.shape[:2]))
    np.testing.assert_allclose(seg.centers[0], img.reshape(-1, 3).mean(axis=0), rtol=1e-12)
