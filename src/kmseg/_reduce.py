"""From pixels to weighted points, and from labels of points back to pixels.

Two kinds of reduction:

- ``"histogram"``: an 8-bit image with up to 3 colour channels, or a 16-bit one with a single
  channel (grey, as microscopy and medical images are: 65,536 values at most). One pass packs
  every pixel's colour into a code of up to 24 bits and counts it. The points are the unique
  colours, the weights their counts. Labels return to the pixels through a code -> label table.
- ``"pixels"``: anything else (16-bit colour, float, more than 3 bands). The points are the
  pixels themselves, with weight 1.

Both also carry coarser summaries used to run the restarts cheaply and then refine: the
histogram at 5, 6 and 7 bits per channel (10, 11 and 12 for 16-bit grey) for the first kind,
regular grids over the features for the second. Each summary point sits at the weighted mean of
the points in its cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import _kernels as K
from ._display import opaque_value
from ._engine import mean_variance, point_facts
from .color import to_features

__all__ = ["Reduced", "color_histogram", "distinct_rows", "merge_histograms", "reduce_image", "reduce_points", "paint"]

_NO_MASK = np.zeros((0, 0), dtype=np.uint8)
#: Below this many points the restarts run on the points themselves.
COARSE_MIN_POINTS = 1 << 14


@dataclass
class Reduced:
    """Weighted points standing for the pixels of one image."""

    kind: str  # "histogram" or "pixels"
    points: np.ndarray  # (U, D) features, float32 or float64
    weights: np.ndarray | None  # (U,) float64 counts; None means weight 1 each
    n_pixels: int  # pixels clustered (alpha > 0)
    codes: np.ndarray | None = None  # (U,) packed colour codes, histogram kind only
    n_channels: int = 3
    #: Weighted summaries for coarse-to-fine fitting, coarsest first (may be empty).
    levels: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    #: ``_engine.point_facts(points, weights)`` when it was computed on the way (else None).
    facts: tuple[float, bool] | None = None
    #: ``_engine.point_facts`` of each of ``levels``, computed once for every fit to come.
    level_facts: list[tuple[float, bool]] = field(default_factory=list)
    #: Bits of each channel in ``codes`` (histogram kind): 8, or 16 for 16-bit grey.
    value_bits: int = 8

    def __post_init__(self) -> None:
        if len(self.level_facts) != len(self.levels):
            self.level_facts = [point_facts(X, w) for X, w in self.levels]

    @cached_property
    def variance(self) -> float:
        """The points' mean per-feature variance (it scales ``tol``), computed on first use and
        kept for every fit."""
        return mean_variance(self.points, self.weights)

    @property
    def nbytes(self) -> int:
        n = self.points.nbytes
        n += 0 if self.weights is None else self.weights.nbytes
        n += 0 if self.codes is None else self.codes.nbytes
        return n + sum(x.nbytes + w.nbytes for x, w in self.levels)


def _mask_arg(mask: np.ndarray | None) -> np.ndarray:
    return _NO_MASK if mask is None else mask.view(np.uint8)


def histogram_bits(dtype: np.dtype, n_channels: int) -> int:
    """Bits per channel of the codes of an image's exact colour histogram, or 0 when it has none
    small enough to count: 8 for 8-bit images of up to 3 channels, 16 for 16-bit grey."""
    if dtype == np.uint8 and n_channels <= 3:
        return 8
    if dtype == np.uint16 and n_channels == 1:
        return 16
    return 0


def color_histogram(img: np.ndarray, mask: np.ndarray | None = None,
                    counts_dtype: type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Unique colours of an 8-bit image, or values of a 16-bit grey one, and how many pixels have each.

    Parameters
    ----------
    img : (H, W, C) ndarray of uint8 with C <= 3, or of uint16 with C == 1
    mask : (H, W) bool ndarray, optional
        Only pixels where ``mask`` is True are counted.
    counts_dtype : np.int64 or np.float64
        float64 for counts that become weights: written so at once rather than copied.

    Returns
    -------
    codes : (U,) int64 ndarray
        Sorted packed colours, ``(c0 << 16) | (c1 << 8) | c2`` for three channels; the
        values themselves for one.
    counts : (U,) ndarray of ``counts_dtype``
    """
    return K.histogram_sorted(img, _mask_arg(mask), counts_dtype)


def merge_histograms(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sum several (codes, counts) histograms, each with sorted distinct codes, into one.

    Merged two at a time in a balanced tree, each merge one linear pass (``_kernels.merge_sorted``).
    The result does not depend on the order of ``parts``.
    """
    parts = [(np.asarray(c, dtype=np.int64), np.asarray(n, dtype=np.int64)) for c, n in parts]
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    while len(parts) > 1:
        merged = []
        for a, b in zip(parts[::2], parts[1::2]):
            codes = np.empty(a[0].shape[0] + b[0].shape[0], dtype=np.int64)
            counts = np.empty_like(codes)
            m = K.merge_sorted(a[0], a[1], b[0], b[1], codes, counts)
            merged.append((codes[:m].copy(), counts[:m].copy()))
        if len(parts) % 2:
            merged.append(parts[-1])
        parts = merged
    return parts[0]


def decode(codes: np.ndarray, n_channels: int, bits: int = 8, dtype: type | None = None) -> np.ndarray:
    """(U,) packed codes -> (U, C) colours: uint8, or uint16 for 16-bit grey (``bits``); or
    their values as ``dtype`` (a float type), written so at once."""
    if bits == 16:
        return codes.astype(np.uint16 if dtype is None else dtype).reshape(-1, 1)
    out = np.empty((codes.shape[0], n_channels), dtype=np.uint8 if dtype is None else dtype)
    K.decode_codes(codes, out)
    return out


#: Grids of more cells than this are summed over their occupied cells only (``_kernels.cell_index``).
DENSE_MAX_CELLS = 1 << 21


def _summarise(points, weights, cells, n_cells):
    """Weighted mean and total weight of the points in each occupied cell, and the cells' ids."""
    w = np.empty(0) if weights is None else weights
    if n_cells > DENSE_MAX_CELLS:
        index = np.empty(cells.shape[0], dtype=np.int64)
        ids = K.cell_index(cells, index)
        sums = np.empty((ids.shape[0], points.shape[1]))
        counts = np.empty(ids.shape[0])
        K.bin_means(points, w, index, ids.shape[0], sums, counts)
        keep = counts > 0
        return sums[keep] / counts[keep, None], counts[keep], ids[keep]
    sums = np.empty((n_cells, points.shape[1]))
    counts = np.empty(n_cells)
    K.bin_means(points, w, cells, n_cells, sums, counts)
    ids = np.flatnonzero(counts)
    return sums[ids] / counts[ids, None], counts[ids], ids


def _summarise_sorted(points, weights, cells, low_bits):
    """As ``_summarise``, for points ordered by ``cells >> low_bits``, without a table of every cell.

    The occupied cells are counted first, so the summary is written once into arrays of its
    own size: fresh memory costs a page fault per 4 KB touched, and a one-off call pays them all.
    """
    w = np.empty(0) if weights is None else weights
    bounds = K.sorted_parts(cells, low_bits)
    got = np.empty(bounds.shape[0] - 1, dtype=np.int64)
    K.sorted_cell_counts(w, cells, low_bits, bounds, got)
    rows = np.zeros(got.shape[0] + 1, dtype=np.int64)
    np.cumsum(got, out=rows[1:])
    m = int(rows[-1])
    means = np.empty((m, points.shape[1]))
    counts = np.empty(m)
    ids = np.empty(m, dtype=np.int64)
    K.sorted_bin_means(points, w, cells, low_bits, bounds, rows, means, counts, ids)
    return means, counts, ids


def _nested_levels(points, weights, cells, nbins, nf, n_levels, ordered=False):
    """Summaries on nested grids of ``nbins``, ``nbins/2``, ... cells per feature, coarsest first.

    Only the finest is made from the points; each coarser one is made from the one below it.
    A level is kept only if it has at most half as many points as the next finer one kept.
    ``ordered``: the points come sorted by their first feature's bin (a histogram's do), so
    the sums are made run by run in small tables.
    """
    kept = []
    size = points.shape[0]
    X, w = points, weights
    for level in range(n_levels):
        if level:
            parents = np.empty(cells.shape[0], dtype=np.int64)
            K.parent_cells(cells, nbins, nf, parents)
            cells, nbins = parents, nbins // 2
        if ordered:
            means, counts, ids = _summarise_sorted(X, w, cells, (nbins.bit_length() - 1) * (nf - 1))
        else:
            means, counts, ids = _summarise(X, w, cells, nbins**nf)
        if 2 * means.shape[0] <= size:
            kept.append((means, counts))
            size = means.shape[0]
        X, w, cells = means, counts, ids
    return kept[::-1]


def histogram_levels(points, weights, codes, n_channels, bits=8) -> list[tuple[np.ndarray, np.ndarray]]:
    """Summaries of a colour histogram at 7, 6 and 5 bits per channel (12, 11 and 10 for the
    values of 16-bit grey), returned coarsest first."""
    if bits == 16:
        return _nested_levels(points, weights, codes >> 4, 1 << 12, 1, 3, ordered=True)
    cells = np.empty(codes.shape[0], dtype=np.int64)
    K.code_cells(codes, n_channels, 7, cells)
    return _nested_levels(points, weights, cells, 1 << 7, n_channels, 3, ordered=True)


def grid_levels(points, weights, lo=None, hi=None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Summaries of arbitrary points on nested regular grids, coarsest first.

    The finest grid has as many cells per feature as keep the grid to ``DENSE_MAX_CELLS``
    cells, and at least 8. With too many features for that (8 or more), it has 32 cells per
    feature (fewer from 13 features on, so that a cell's id fits 62 bits), and only its
    occupied cells are summed: the points of a multi-band image lie in a small part of it.
    ``lo``, ``hi``: the points' per-feature range, when known (``_kernels.point_facts``).
    """
    nf = points.shape[1]
    nbins = 2
    while (2 * nbins) ** nf <= DENSE_MAX_CELLS:
        nbins *= 2
    if nbins < 8:
        nbins = 1 << min(5, 62 // nf)
        if nbins < 8:
            return []  # too many features for three nested grids
    if lo is None or hi is None:
        lo = np.empty(nf)
        hi = np.empty(nf)
        point_facts(points, weights, lo, hi)
    step = np.where(hi > lo, (hi - lo) / nbins, 1.0)
    cells = np.empty(points.shape[0], dtype=np.int64)
    K.grid_bins(points, lo, step, nbins, cells)
    return _nested_levels(points, weights, cells, nbins, nf, 3)


def distinct_rows(X: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(points, point_weights, index): the distinct rows of ``X`` with a positive total weight,
    and for every row the index of its point (-1 for a row whose point weighs 0 in all).

    The points come in an order set by their values alone (by a hash of their bits; by the
    bits too where distinct rows share a hash), so any order of the same weighted rows gives
    the same points and weights, and ``w`` copies of a row give what one row of weight ``w``
    gives. ``point_weights`` is None when every point weighs 1. Rows are told apart by their
    bits: -0.0 and 0.0 make two points (at the same place). ``X``: C-contiguous float64.
    """
    n, nf = X.shape
    bits = X.view(np.uint64)
    h = np.empty(n, dtype=np.uint64)
    K.row_hashes(bits, h)
    order = np.argsort(h)
    new = np.empty(n, dtype=bool)
    if K.mark_distinct(bits, order, h[order], new):
        # Distinct rows share a hash, and copies of one may lie apart: sort by the bits too.
        order = np.lexsort([bits[:, f] for f in range(nf - 1, -1, -1)] + [h])
        K.mark_distinct(bits, order, h[order], new)
    starts = np.flatnonzero(new)
    if weights is None:
        point_weights = np.diff(starts, append=n).astype(np.float64)
    else:
        point_weights = np.add.reduceat(weights[order], starts)
    index = np.empty(n, dtype=np.int64)
    index[order] = np.cumsum(new) - 1
    points = np.take(X, order[starts], axis=0)
    keep = point_weights > 0.0
    if not keep.all():
        renumber = np.where(keep, np.cumsum(keep) - 1, -1)
        index = renumber[index]
        points, point_weights = points[keep], point_weights[keep]
    return points, (None if (point_weights == 1.0).all() else point_weights), index


def reduce_image(pixels: np.ndarray, mask: np.ndarray | None, space: str, vmax: float | None) -> Reduced:
    """Reduce an (H, W, C) image to weighted points in the clustering space.

    ``mask`` (H, W) bool marks the pixels to cluster (None: all of them).
    """
    nc = pixels.shape[2]
    bits = histogram_bits(pixels.dtype, nc)
    if bits:
        codes, counts = color_histogram(pixels, mask, np.float64)
        return reduce_histogram(codes, counts, nc, space, bits)
    flat = pixels.reshape(-1, nc)
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    return reduce_points(to_features(flat, space, vmax), nc)


def reduce_points(points: np.ndarray, n_channels: int) -> Reduced:
    """The ``"pixels"`` reduction of pixels' features (``n_channels``: the pixels' colour channels),
    each point of weight 1, with the grid summaries of many."""
    lo = np.empty(points.shape[1])
    hi = np.empty(points.shape[1])
    facts = point_facts(points, None, lo, hi)
    levels = grid_levels(points, None, lo, hi) if points.shape[0] > COARSE_MIN_POINTS else []
    return Reduced("pixels", points, None, points.shape[0], None, n_channels, levels, facts)


def reduce_histogram(codes: np.ndarray, counts: np.ndarray, n_channels: int, space: str, bits: int = 8) -> Reduced:
    """Weighted points from an exact colour histogram (codes sorted, counts > 0, int64 or
    float64) of ``bits`` a channel (``histogram_bits``)."""
    if space == "rgb":
        points = decode(codes, n_channels, bits, np.float32)  # as to_features(decode(...)) gives them
    else:
        points = to_features(decode(codes, n_channels, bits), space, float((1 << bits) - 1))
    weights = counts.astype(np.float64, copy=False)
    levels = []
    if points.shape[0] > COARSE_MIN_POINTS:
        levels = histogram_levels(points, weights, codes, n_channels, bits)
    return Reduced("histogram", points, weights, int(weights.sum()), codes, n_channels, levels,
                   point_facts(points, weights), value_bits=bits)


#: Bits per channel of the coarse label table that ``paint`` tries first (2**18 cells for RGB).
COARSE_BITS = 6
#: From this many distinct colours on, ``paint`` looks labels up in the coarse table first.
COARSE_MIN_COLORS = 1 << 22


def label_tables(codes: np.ndarray, point_labels: np.ndarray, n_channels: int, k: int,
                 bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The code -> label table of every colour, and its coarse companion for ``paint_codes``.

    The full table is uint8 when the labels fit. The coarse one holds the label of each cell
    of ``COARSE_BITS`` bits per channel whose colours all share it. It is made only when the
    colours are so many (``COARSE_MIN_COLORS``) that lookups in the full table miss the cache;
    a photo's colours cluster, and its full table is looked up faster than both (measured).
    """
    small = k < K.MIXED
    lut = np.empty(1 << (bits * n_channels), dtype=np.uint8 if small else np.int32)
    K.scatter(lut, codes, point_labels.astype(lut.dtype, copy=False))
    coarse = np.empty(0, dtype=np.uint8)
    if small and n_channels == 3 and codes.shape[0] >= COARSE_MIN_COLORS:
        coarse = np.empty(1 << (COARSE_BITS * n_channels), dtype=np.uint8)
        K.coarse_labels(codes, point_labels, n_channels, COARSE_BITS, coarse)
    return lut, coarse


def paint(
    pixels: np.ndarray,
    mask: np.ndarray | None,
    red: Reduced,
    point_labels: np.ndarray,
    colors: np.ndarray,
    out: np.ndarray,
) -> np.ndarray:
    """Labels of every pixel, and ``out`` painted with ``colors[label]`` (one fused pass).

    Pixels outside ``mask`` get label -1 and keep their own values in ``out``.

    Returns
    -------
    labels : (H, W) int32 ndarray
    """
    H, W = pixels.shape[:2]
    labels = np.empty((H, W), dtype=np.int32)
    if red.kind == "histogram":
        lut, coarse = label_tables(red.codes, point_labels, red.n_channels, colors.shape[0], red.value_bits)
        K.paint_codes(pixels, _mask_arg(mask), lut, coarse, COARSE_BITS, colors, labels, out)
    else:
        if mask is None:
            labels.reshape(-1)[:] = point_labels
        else:
            labels.fill(-1)
            labels[mask] = point_labels
        K.paint_labels(labels, colors, pixels, out)
    return labels


def cut_out(pixels: np.ndarray, labels: np.ndarray, i: int, n_channels: int) -> np.ndarray:
    """(H, W, 4) cut-out of label ``i``: the first 3 colour bands (grey repeated) and opaque alpha
    (``_display.opaque_value``) there, 0 everywhere else; in the pixels' dtype. ``n_channels``: the
    colour bands of ``pixels``."""
    out = np.empty(pixels.shape[:2] + (4,), dtype=pixels.dtype)
    opaque = out.dtype.type(opaque_value(out.dtype))
    K.cut_out(labels, i, pixels.reshape(*pixels.shape[:2], -1), n_channels, opaque, out)
    return out


def blank_out(pixels: np.ndarray, labels: np.ndarray, hidden: list[int], fill: np.ndarray, k: int) -> np.ndarray:
    """``pixels`` (changed in place and returned) with the first ``len(fill)`` bands set to ``fill``
    where the label is one of ``hidden`` (labels run from 0 to k - 1)."""
    flags = np.zeros(k, dtype=np.bool_)
    flags[hidden] = True
    K.blank_out(labels, flags, np.ascontiguousarray(fill, dtype=pixels.dtype), pixels.reshape(*pixels.shape[:2], -1))
    return pixels
