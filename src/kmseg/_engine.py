"""Weighted K-means: the one engine behind every front end.

Lloyd's algorithm on points with weights. A point of weight ``w`` behaves exactly like ``w``
copies of it, so running on the unique colours of an image weighted by their counts follows the
same trajectory as running on all of its pixels (Celebi's weighted sort-means).

Nothing here validates: the public functions (``segment``, ``KMeans``, ``elbow``) do that once.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np

from . import _kernels as K

__all__ = ["FitResult", "cluster_weights", "farthest_distinct", "fit", "inertia_of", "kmeans_plusplus", "kmeans_plusplus_many", "label_with", "lloyd", "mean_variance", "random_init", "tol_to_abs"]

_EMPTY = np.empty(0, dtype=np.float64)


@dataclass
class FitResult:
    centers: np.ndarray  # (k, d) float64
    labels: np.ndarray  # (n,) int32, the nearest centre of every point
    inertia: float  # sum of w * squared distance to the assigned centre
    n_iter: int  # assignment steps run, the final one included
    converged: bool  # True when the last iteration changed no label
    start: np.ndarray | None = None  # (k, d) the centres the final run started from


#: The restarts run on the coarsest summary with at least this many points per cluster.
RESTART_POINTS_PER_CLUSTER = 256

#: How many of the best restarts are refined one level finer before one is chosen.
REFINE_CANDIDATES = 3

#: The chosen start is refined on a finer summary before ``X`` only if ``X`` has at least this
#: many times its points. Else going straight to ``X`` costs less: its run needs a few more
#: iterations, but the summary's run is spared (2 MP photo, the 79 k-colour summary of 321 k
#: colours: the elbow's fits 5-7% faster; 12 M distinct colours, K=8: 155 -> 131 ms). 16-bit
#: pixels keep theirs (123 k points for 12 M: 166 against 172-190 ms without). Inertias on
#: the 105 reference fits: 15 moved, by 1.2e-6 at most, 9 of them down (measured).
SUMMARY_MIN_SHRINK = 16

#: Below this many points a parallel region costs more than it saves: run on one thread.
PARALLEL_MIN_POINTS = 50_000


@contextmanager
def threads_for(n: int) -> Iterator[None]:
    """Run the kernels inside on one thread when ``n`` is small (results never depend on it)."""
    before = numba.get_num_threads()
    if n >= PARALLEL_MIN_POINTS or before == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _w(weights: np.ndarray | None) -> np.ndarray:
    return _EMPTY if weights is None else weights


def mean_variance(X: np.ndarray, weights: np.ndarray | None) -> float:
    """The mean over the features of the points' weighted variance: the unit of ``tol``.

    Two compiled passes over fixed chunks (the mean, then the squared deviations from it): no
    copy of the points, and a value that does not depend on the threads. 0 with no weight.
    """
    n, nf = X.shape
    w = _w(weights)
    parts = np.empty((K.n_chunks(n), nf + 1))
    K.chunk_moments(X, w, np.zeros(nf), 1, parts)
    total = parts.sum(axis=0)
    if not total[nf] > 0.0:
        return 0.0
    K.chunk_moments(X, w, total[:nf] / total[nf], 2, parts)
    return float((parts[:, :nf].sum(axis=0) / total[nf]).mean())


def tol_to_abs(X: np.ndarray, weights: np.ndarray | None, tol: float, variance: float | None = None) -> float:
    """Scale ``tol`` as scikit-learn does: by the mean of the (weighted) per-feature variances.

    ``variance``: ``mean_variance(X, weights)``, when the caller knows it already.
    """
    if tol == 0.0:
        return 0.0
    return float(tol * (mean_variance(X, weights) if variance is None else variance))


def point_facts(X: np.ndarray, weights: np.ndarray | None, lo: np.ndarray | None = None,
                hi: np.ndarray | None = None) -> tuple[float, bool]:
    """(largest absolute coordinate, whether all coordinates and weights are whole numbers).

    ``lo``, ``hi``, when given, receive the per-feature minimum and maximum.
    """
    lo = np.empty(X.shape[1]) if lo is None else lo
    hi = np.empty(X.shape[1]) if hi is None else hi
    integral = bool(K.point_facts(X, _w(weights), lo, hi))
    return (float(max(np.abs(lo).max(), np.abs(hi).max())) if X.shape[0] else 0.0), integral


def bound_slack(scale: float) -> float:
    """Margin added to every bound test for rounding, given the largest absolute coordinate.

    It can only make a point be checked when it need not be, never the reverse.
    """
    return 1e-9 * (1.0 + scale)


def inertia_of(X: np.ndarray, weights: np.ndarray | None, centers: np.ndarray, labels: np.ndarray) -> float:
    out = np.empty(K.n_chunks(X.shape[0]))
    K.chunk_inertia(X, _w(weights), centers, labels, out)
    return float(out.sum())


def cluster_weights(labels: np.ndarray, weights: np.ndarray | None, k: int) -> np.ndarray:
    """Total weight (pixels) of each of ``k`` clusters, as int64."""
    out = np.empty((K.n_chunks(labels.shape[0]), k))
    K.chunk_counts(labels, _w(weights), out)
    return out.sum(axis=0).astype(np.int64)


# --------------------------------------------------------------------------- initialisation


def _n_trials(k: int) -> int:
    """Candidates tried per greedy k-means++ step, as in scikit-learn."""
    return 2 + int(math.log(k))


def kmeans_plusplus(X: np.ndarray, weights: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy weighted k-means++; see ``_kmeans_plusplus``."""
    with threads_for(X.shape[0]):
        return _kmeans_plusplus(X, weights, k, rng)


def _kmeans_plusplus(X: np.ndarray, weights: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy weighted k-means++ (Arthur & Vassilvitskii; greedy trials as in scikit-learn).

    Returns fewer than ``k`` centres when the points have fewer than ``k`` distinct values
    (the potential reaches zero first).
    """
    n, nf = X.shape
    w = _w(weights)
    if n < PARALLEL_MIN_POINTS:
        # Too few points for threads to pay: the whole loop runs compiled, with the same draws.
        return kmeans_plusplus_many(X, weights, k, rng, 1)[0]
    n_trials = _n_trials(k)
    p = None if weights is None else weights / weights.sum()
    first = int(rng.choice(n, p=p))
    centers = [X[first].astype(np.float64)]
    d2 = np.full(n, np.inf)
    K.min_dist2_update(X, centers[0][None], 0, d2)
    wd2 = np.empty(n)
    pot_parts = np.empty((K.n_chunks(n), n_trials))
    for _ in range(1, k):
        K.weighted_d2(w, d2, wd2)
        cum = np.cumsum(wd2)
        total = cum[-1]
        if not total > 0.0:
            break  # every point sits on a centre already
        picks = np.searchsorted(cum, rng.random(n_trials) * total, side="right")
        picks = np.minimum(picks, n - 1)
        cands = X[picks].astype(np.float64)
        K.trial_potentials(X, w, d2, cands, pot_parts)
        best = int(np.argmin(pot_parts.sum(axis=0)))
        centers.append(cands[best])
        K.min_dist2_update(X, cands, best, d2)
    return np.array(centers)


def kmeans_plusplus_many(X: np.ndarray, weights: np.ndarray | None, k: int, rng: np.random.Generator,
                         runs: int) -> list[np.ndarray]:
    """``runs`` calls of ``kmeans_plusplus``, drawing the same numbers in the same order.

    On small point sets each seeding runs whole in compiled code, side by side, one per thread.
    """
    n, nf = X.shape
    if n >= PARALLEL_MIN_POINTS:
        return [kmeans_plusplus(X, weights, k, rng) for _ in range(runs)]
    n_trials = _n_trials(k)
    firsts = np.empty(runs, dtype=np.int64)
    U = np.empty((runs, k - 1, n_trials))
    if weights is not None:
        # rng.choice(n, p=p) draws one number and looks it up in p's normalised cumulative
        # sum; doing so here gives the same indices without remaking the sum for every run.
        cdf = (weights / weights.sum()).cumsum()
        cdf /= cdf[-1]
    for r in range(runs):
        firsts[r] = int(rng.choice(n)) if weights is None else int(cdf.searchsorted(rng.random(), side="right"))
        U[r] = rng.random((k - 1, n_trials))
    out = np.empty((runs, k, nf))
    m = np.empty(runs, dtype=np.int64)
    K.kmeanspp_runs(X, _w(weights), firsts, U, morton_order(X), out, m)
    return [out[r, : m[r]] for r in range(runs)]


def morton_grid(X: np.ndarray, weights: np.ndarray | None, bits: int) -> tuple[np.ndarray, float, int, float]:
    """(lo, step, bits, scale): a grid of 2**bits cells a side over the points' box, for Morton
    codes; fewer bits when the codes would not fit in 62. ``scale``: as ``point_facts``."""
    n, nf = X.shape
    lo = np.empty(nf)
    hi = np.empty(nf)
    scale, _ = point_facts(X, weights, lo, hi)
    bits = min(bits, 62 // max(nf, 1))  # none above 62 features: every code is 0
    span = float((hi - lo).max()) if n else 0.0
    step = span / (2**bits - 0.5) if span > 0 else 1.0
    return lo, step, bits, scale


def morton_order(X: np.ndarray) -> np.ndarray:
    """An order of the points that keeps near ones together: by their Morton code on a grid
    of 64 cells a side."""
    lo, step, bits, _ = morton_grid(X, None, 6)
    keys = np.empty(X.shape[0], dtype=np.int64)
    K._morton_keys(X, lo, step, bits, keys)
    return K._radix_argsort(keys, bits * X.shape[1])[0]


def random_init(X: np.ndarray, weights: np.ndarray | None, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct points drawn with probability proportional to their weight."""
    n = X.shape[0]
    p = None if weights is None else weights / weights.sum()
    idx = rng.choice(n, size=min(k, n), replace=False, p=p)
    return X[np.sort(idx)].astype(np.float64)


# --------------------------------------------------------------------------- Lloyd


def farthest_distinct(X: np.ndarray, d2: np.ndarray, m: int) -> list[int]:
    """Indices of the ``m`` costliest distinct points: by decreasing ``d2``, then by coordinates.

    Ties are broken by the point's value and never by where it sits, so all pixels, their
    histogram, and any split of them into regions (the Dask path) choose alike.
    """
    n, nf = X.shape
    if n == 0 or m == 0:
        return []
    top = min(n, 64 * m)
    while True:
        cand = np.argpartition(-d2, top - 1)[:top] if top < n else np.arange(n)
        keys = [X[cand, f] for f in range(nf - 1, -1, -1)] + [-d2[cand]]
        cand = cand[np.lexsort(keys)]
        chosen: list[int] = []
        for i in cand:
            if not any(np.array_equal(X[i], X[c]) for c in chosen):
                chosen.append(int(i))
                if len(chosen) == m:
                    break
        if len(chosen) == m or top == n:
            return chosen
        top = min(n, top * 8)


def _relocate_empty(X, centers_new, counts, C_old, labels):
    """Move every empty cluster to the point that currently costs the most (farthest from its centre)."""
    empty = np.flatnonzero(counts == 0)
    d2 = np.empty(X.shape[0])
    K.assigned_dist2(X, C_old, labels, d2)
    for j, i in zip(empty, farthest_distinct(X, d2, len(empty))):
        centers_new[j] = X[i]


#: From this many points on, the bounded Lloyd visits only the points that may be due (``_ActiveSet``).
ACTIVE_SET_MIN_POINTS = 1 << 15


#: From this many points on, the active set copies its points out instead of visiting them by
#: index: the arrays no longer stay in cache, and scattered visits cost more than a copy
#: (12 MP of 16-bit pixels: 0.45 s copied, 0.75 s by index; 321 k colours: the reverse).
ACTIVE_COPY_MIN_POINTS = 1 << 21


class _ActiveSet:
    """The points a bounded Lloyd iteration must visit.

    A point needs a visit only once its bound gap ``lb - ub`` falls below ``D[a] + G`` (see
    ``_kernels.hamerly_step``), and both of those only grow. ``points`` lists the points whose
    gap is below that plus a horizon; ``hamerly_step`` then visits those alone until some
    ``D[a] + G`` has grown by more than the horizon, when a new list is made. The visits go
    by index, or, on many points (``ACTIVE_COPY_MIN_POINTS``), to copies of the listed
    points' coordinates, weights, labels and bounds, written back by ``flush``.
    The horizon is a quantile of the gaps on a sample. Its level doubles when a list lasts one
    iteration and halves when it lasts eight or more, trading the cost of a selection (one pass
    over the bounds) against the length of the list.

    Only the visits change: every point left out provably keeps its label, so the labels, and
    with them the centres, are those of every-point Lloyd. It needs sums updated by the points
    that move: integral data (exact so), or a run that is not ``exact``.
    """

    def __init__(self, X, w, labels, ub, lb, slack: float) -> None:
        self.full = (X, w, labels, ub, lb)
        self.n = X.shape[0]
        self.copies = self.n >= ACTIVE_COPY_MIN_POINTS
        self.slack = slack
        self.level = 1 / 16
        self.idx: np.ndarray | None = None
        self.part: tuple | None = None  # what ``points`` returns until the list is remade
        self.valid_until = np.empty(0)
        self.age = 0
        self.sample = slice(None, None, max(1, self.n // 4096))
        self.lists = K.due_lists(self.n)  # scratch for every selection of this run

    def points(self, drift: np.ndarray) -> tuple:
        """(X, w, labels, ub, lb, idx, subset) for ``hamerly_step`` this iteration: the full
        arrays with the listed indices (``subset``) or with every point, or the copies."""
        if self.part is not None and not (drift > self.valid_until).any():
            self.age += 1
            return self.part
        if self.part is not None:
            self.flush()
            if self.age <= 1:
                self.level = min(0.5, 2 * self.level)
            elif self.age >= 8:
                self.level = max(1 / 1024, self.level / 2)
        X, w, labels, ub, lb = self.full
        s = self.sample
        gaps = lb[s] - ub[s] - drift[labels[s]]
        gaps[~np.isfinite(gaps)] = np.finfo(np.float64).max  # k = 1: no second centre
        horizon = max(0.0, float(np.quantile(gaps, self.level)))
        idx = K.select_due(ub, lb, labels, drift + (horizon + 3 * self.slack), self.lists)
        self.valid_until = drift + horizon
        self.age = 1
        if 2 * idx.shape[0] >= self.n:
            self.part = (*self.full, _NO_INDEX, False)  # most points are due: visit them where they are
        elif self.copies:
            self.idx = idx
            self.part = (X[idx], w[idx] if w.shape[0] else w, labels[idx], ub[idx], lb[idx], _NO_INDEX, False)
        else:
            self.part = (*self.full, idx, True)
        return self.part

    def flush(self) -> None:
        """Write the copies' labels and bounds back into the full arrays (when there are copies)."""
        if self.idx is not None:
            _, _, labels, ub, lb = self.full
            labels[self.idx], ub[self.idx], lb[self.idx] = self.part[2:5]
        self.idx = self.part = None


_NO_INDEX = np.empty(0, dtype=np.int64)


#: From this many clusters on, Lloyd runs on a kd-tree of the points (``_lloyd_tree``) once they
#: number at least ``TREE_MIN_POINTS`` (``TREE_MIN_POINTS_MANY_K`` with more clusters than
#: ``_kernels.SCAN_ALL_MAX_K``), unless it starts close to its end (see ``use_tree``).
TREE_MIN_K = 16
TREE_MIN_POINTS = 1 << 14
#: With more centres than ``_kernels.SCAN_ALL_MAX_K``, per-point bounds scan the centres of a
#: point one by one, and the tree pays from this many points on. The sample photos' summaries
#: of 5,663 to 11,045 colours, where the restarts run from k = 20 on: k = 20 to 64 took 2.0 to
#: 7.9 times less (chelsea k=20 98 -> 40 ms, rocket k=24 221 -> 39 ms, coffee k=24 203 -> 57
#: ms); a 16-bit grey photo's 3,258-value summary at k = 20: 107 -> 9 ms; the same inertias
#: everywhere. At k = 16 the block scan is as fast or faster (chelsea 17 -> 21 ms with the
#: tree), so there the threshold stays ``TREE_MIN_POINTS`` (measured).
TREE_MIN_POINTS_MANY_K = 1 << 10
TREE_MAX_FEATURES = 6
#: Above this many points the tree's copies (about 45 bytes a point) cost more memory than its
#: speed is worth: on 4 M 16-bit pixels at k=32 it ran as fast as per-point bounds (measured).
TREE_MAX_POINTS = 1 << 21
#: Points per kd-tree leaf at most (unless they are all equal). Since the leaf scans sum runs
#: of one label in locals (``_kernels._filter3``), 32 beats 16 by 10-14% an iteration on the
#: 2 MP photo's 17 k and 79 k-colour summaries at k = 16 and 64; 48 is no better (measured).
TREE_LEAF_SIZE = 32
#: Subtrees an iteration is split into, so that threads share it: a fixed number, so that the
#: order in which their sums are added never depends on the threads.
TREE_TASKS = 32


@dataclass
class KDTree:
    """A kd-tree over weighted points, from ``_kernels.kdtree_build``, for ``_kernels.filter_step``."""

    perm: np.ndarray  # tree order -> point index
    parts: tuple  # (Xt, wt, lo, hi, start, end, child, nsum, nw, depth), as filter_step takes them
    tasks: np.ndarray  # the subtrees one iteration is split into, in point order
    eps: float  # rounding margin of the pruning test, in squared units


def kdtree(X: np.ndarray, weights: np.ndarray | None) -> KDTree:
    """The kd-tree of ``X``, split on a grid of 2**10 cells a side (coarser above 6 dimensions)."""
    lo, step, bits, scale = morton_grid(X, weights, 10)
    perm, Xt, wt, blo, bhi, start, end, child, nsum, nw, depth = K.kdtree_build(X, _w(weights), lo, step, bits, TREE_LEAF_SIZE)
    # Split the biggest subtree until there are enough to share, then keep them in point order.
    tasks = [0]
    while len(tasks) < TREE_TASKS:
        inner = [p for p in tasks if child[p] >= 0]
        if not inner:
            break
        p = max(inner, key=lambda q: end[q] - start[q])
        tasks.remove(p)
        tasks += [int(child[p]), int(child[p]) + 1]
    tasks.sort(key=lambda q: start[q])
    eps = bound_slack(scale) * (1.0 + scale)
    return KDTree(perm, (Xt, wt, blo, bhi, start, end, child, nsum, nw, depth), np.array(tasks, dtype=np.int64), eps)


def _tree_labels(tree: KDTree, C: np.ndarray, p_sums: np.ndarray, p_counts: np.ndarray) -> np.ndarray:
    """The nearest centre of every point (ties to the lowest index), by one filtering pass."""
    labels_t = np.empty(tree.perm.shape[0], dtype=np.int32)
    K.filter_step(C, *tree.parts, tree.tasks, tree.eps, p_sums, p_counts, labels_t, True)
    labels = np.empty_like(labels_t)
    labels[tree.perm] = labels_t
    return labels


def _lloyd_tree(X, weights, init, tree: KDTree, *, max_iter: int, tol_abs: float,
                trace: list[np.ndarray] | None) -> FitResult:
    """Lloyd's iterations by Kanungo et al.'s filtering algorithm on ``tree``; see ``_lloyd``.

    Each iteration walks the tree with the centres that may still be nearest to some point of
    a node, so most nodes join their cluster whole, by their precomputed sums. The labels are
    Lloyd's; the sums are added node by node rather than point by point, so the centres are
    Lloyd's to the bit when the data are whole numbers (their sums are exact) and may differ
    in the last bits otherwise. The run stops when an update leaves every centre as it was:
    then the labels cannot change again.
    """
    nf = X.shape[1]
    k = init.shape[0]
    C = np.ascontiguousarray(init, dtype=np.float64).copy()
    m = tree.tasks.shape[0]
    p_sums = np.empty((m, k, nf))
    p_counts = np.empty((m, k))
    no_labels = np.empty(0, dtype=np.int32)
    sums = np.zeros((k, nf))
    counts = np.zeros(k)
    C_new = np.empty_like(C)
    shift2 = np.empty(k)
    converged = False
    n_iter = 0
    for it in range(max_iter):
        K.filter_step(C, *tree.parts, tree.tasks, tree.eps, p_sums, p_counts, no_labels, False)
        n_iter += 1
        if K.update_centres(p_sums, p_counts, m, False, sums, counts, C, C_new, shift2):
            _relocate_empty(X, C_new, counts, C, _tree_labels(tree, C, p_sums, p_counts))
            shift2 = ((C_new - C) ** 2).sum(axis=1)
        elif np.array_equal(C_new, C):
            # The labels give back the centres they came from, so Lloyd finds them unchanged at
            # its next assignment: here when that is the first, else at this one.
            converged = True
            n_iter = max(n_iter, 2)
            break
        C, C_new = C_new, C
        if trace is not None:
            trace.append(C.copy())
        if tol_abs > 0.0 and shift2.sum() <= tol_abs:
            break
    labels = _tree_labels(tree, C, p_sums, p_counts)
    if not converged:
        n_iter += 1  # the labels of the last centres: one more assignment, as in _lloyd
    return FitResult(C, labels, inertia_of(X, weights, C, labels), n_iter, converged, init.astype(np.float64))


def use_tree(X: np.ndarray, k: int, method: str, facts: tuple[float, bool], exact: bool, warm: bool = False) -> bool:
    """Whether bounded Lloyd on the points ``X`` and ``k`` centres goes through a kd-tree.

    The tree pays when many labels change: with many centres, per-point bounds weaken as
    more centres move, while the tree settles whole boxes of points at once. A ``warm`` run
    (one that starts from a finer summary's fixed point, close to its own) changes few labels,
    and the active set of per-point bounds skips the rest; it is faster there (measured on the
    exact colours: 2 MP at k = 16 to 64, 1.1 to 1.9 times; 12 MP at k = 64, 1.05 to 1.25
    times), so a warm run never takes the tree.

    Only in few dimensions (``TREE_MAX_FEATURES``): a box's corners stop telling centres apart
    as dimensions grow. And not on very many points (``TREE_MAX_POINTS``). On data that are not
    whole numbers (``facts``, from ``point_facts``) the tree's sums round differently from
    Lloyd's, so there only when ``exact`` is False.
    """
    n, nf = X.shape
    least = min(TREE_MIN_POINTS, TREE_MIN_POINTS_MANY_K) if k > K.SCAN_ALL_MAX_K else TREE_MIN_POINTS
    return (method == "hamerly" and not warm and k >= TREE_MIN_K and least <= n <= TREE_MAX_POINTS
            and nf <= TREE_MAX_FEATURES and (facts[1] or not exact))


def lloyd(X: np.ndarray, weights: np.ndarray | None, init: np.ndarray, **options) -> FitResult:
    """Weighted Lloyd from ``init``; see ``_lloyd`` for the options."""
    with threads_for(X.shape[0]):
        return _lloyd(X, weights, init, **options)


def _lloyd(
    X: np.ndarray,
    weights: np.ndarray | None,
    init: np.ndarray,
    *,
    max_iter: int,
    tol_abs: float = 0.0,
    method: str = "hamerly",
    trace: list[np.ndarray] | None = None,
    facts: tuple[float, bool] | None = None,
    exact: bool = True,
    tree: KDTree | None = None,
    warm: bool = False,
) -> FitResult:
    """Weighted Lloyd iterations from ``init`` until no label changes (or ``max_iter``/``tol``).

    ``method="hamerly"`` skips the points whose label provably cannot change and prunes the
    scans of the others (see ``_kernels.hamerly_step``); ``"lloyd"`` computes every distance
    every time. Both give the same labels. When every coordinate and weight is a whole number
    (8- and 16-bit colours and their counts), the cluster sums are updated only by the points
    that move; such sums are exact in float64, so the centres are bit for bit those of plain
    Lloyd. Otherwise the sums are remade in full each iteration, in plain Lloyd's order.
    The labels returned are always the nearest-centre labels of the centres returned.
    ``trace``, when given, receives a copy of the centres after every update. ``facts`` is
    ``point_facts(X, weights)`` when the caller knows it already.

    With many centres (``use_tree``) the bounded method walks a kd-tree instead
    (``_lloyd_tree``; ``tree``, when the caller built it): for whole-number data it gives
    exactly the same result; for other data its sums round differently, so there it is used
    only when ``exact`` is False (a run that only seeds a finer one). Nor when ``warm``: the
    start is close to its end (see ``use_tree``).
    A run that is not ``exact`` also updates fractional sums by the points that move (they
    round differently from Lloyd's fresh sums, which only matters to a result returned).
    """
    n, nf = X.shape
    k = init.shape[0]
    bounded = method == "hamerly"
    if bounded and facts is None:
        facts = point_facts(X, weights)
    if bounded and use_tree(X, k, method, facts, exact, warm):
        tree = kdtree(X, weights) if tree is None else tree
        return _lloyd_tree(X, weights, init, tree, max_iter=max_iter, tol_abs=tol_abs, trace=trace)
    w = _w(weights)
    C = np.ascontiguousarray(init, dtype=np.float64).copy()
    labels = np.full(n, -1, dtype=np.int32)
    nch = K.n_chunks(n)
    p_sums = np.empty((nch, k, nf))
    p_counts = np.empty((nch, k))
    p_changed = np.empty(nch, dtype=np.int64)
    active = None
    if bounded:
        ub = np.empty(n)
        lb = np.empty(n)
        D = np.zeros(k)  # how far each centre has moved in all
        G = 0.0  # the sum of the largest move of every iteration
        scale, incremental = facts[0], facts[1] or not exact
        slack = bound_slack(scale)
        active = _ActiveSet(X, w, labels, ub, lb, slack) if incremental and n >= ACTIVE_SET_MIN_POINTS else None
    converged = False
    n_iter = 0
    labels_stale = False  # True when C moved after the last assignment
    sums = np.zeros((k, nf))
    counts = np.zeros(k)
    cc = np.empty((k, k))
    half_sep = np.empty(k)
    order = np.empty((k, max(k - 1, 0)), dtype=np.int64)
    C_new = np.empty_like(C)
    shift2 = np.empty(k)
    for it in range(max_iter):
        if bounded:
            K.centre_geometry(C, cc, half_sep, order, it > 0)
            if it == 0:
                m = nch
                K.hamerly_first(X, w, C, cc, order, slack, labels, ub, lb, p_sums, p_counts, p_changed)
            else:
                Xv, wv, lv, uv, bv, idx, subset = (X, w, labels, ub, lb, _NO_INDEX, False) if active is None \
                    else active.points(D + G)
                m = K.n_chunks(idx.shape[0] if subset else Xv.shape[0])
                K.hamerly_step(Xv, wv, C, cc, order, half_sep, D, G, slack, incremental, lv, uv, bv,
                               idx, subset, p_sums[:m], p_counts[:m], p_changed[:m])
        else:
            m = nch
            K.lloyd_step(X, w, C, labels, p_sums, p_counts, p_changed)
        n_iter += 1
        labels_stale = False
        if it > 0 and int(p_changed[:m].sum()) == 0:
            converged = True  # C is the mean of these very labels: a fixed point
            break
        # Incremental sums take the changes of the points that moved; else the sums are remade.
        empty = K.update_centres(p_sums, p_counts, m, bounded and incremental and it > 0, sums, counts, C, C_new, shift2)
        if empty:
            if active is not None:
                active.flush()
            _relocate_empty(X, C_new, counts, C, labels)
            shift2 = ((C_new - C) ** 2).sum(axis=1)
        if bounded:
            move = np.sqrt(shift2)
            D += move
            G += float(move.max())
        C, C_new = C_new, C
        if trace is not None:
            trace.append(C.copy())
        labels_stale = True
        if tol_abs > 0.0 and shift2.sum() <= tol_abs:
            break
    if active is not None:
        active.flush()
    if labels_stale:
        # One more assignment, so the labels returned match the centres returned.
        d2 = np.empty(n)
        K.assign(X, C, labels, d2)
        n_iter += 1
    return FitResult(C, labels, inertia_of(X, weights, C, labels), n_iter, converged, init.astype(np.float64))


# --------------------------------------------------------------------------- restarts


def lloyd_many(X: np.ndarray, weights: np.ndarray | None, inits: list[np.ndarray], *, max_iter: int,
               method: str = "hamerly", exact: bool = True, facts: tuple[float, bool] | None = None) -> list[FitResult]:
    """``lloyd`` from each of ``inits``; on a small ``X`` the runs go side by side, one per thread.

    Below ``PARALLEL_MIN_POINTS`` points a run is too short to split over threads, and the
    per-iteration cost of Python dominates: the runs then go whole into ``_kernels.lloyd_runs``
    (per-point bounds) or, with many centres (``use_tree``), ``_kernels.filter_runs`` (one
    kd-tree shared by all). The fixed points are Lloyd's either way. A run whose cluster
    empties is redone by ``lloyd``, which relocates it. ``facts``: ``point_facts(X, weights)``,
    when known.
    """
    n = X.shape[0]
    if not inits:
        return []
    k = inits[0].shape[0]
    facts = point_facts(X, weights) if facts is None else facts
    tree = kdtree(X, weights) if use_tree(X, k, method, facts, exact) else None
    if n >= PARALLEL_MIN_POINTS or method != "hamerly":
        return [lloyd(X, weights, c, max_iter=max_iter, method=method, facts=facts, exact=exact, tree=tree)
                for c in inits]
    C = np.ascontiguousarray(np.stack(inits), dtype=np.float64)
    starts = C.copy()
    R = C.shape[0]
    labels = np.empty((R, n), dtype=np.int32)
    n_iter = np.empty(R, dtype=np.int64)
    status = np.empty(R, dtype=np.int64)
    inertia = np.empty(R)
    if tree is not None:
        K.filter_runs(C, *tree.parts, tree.eps, max_iter, tree.perm, labels, n_iter, status, inertia)
    else:
        K.lloyd_runs(X, _w(weights), C, labels, max_iter, bound_slack(facts[0]), n_iter, status, inertia)
    out = []
    for r in range(R):
        if status[r] < 0:
            out.append(lloyd(X, weights, starts[r], max_iter=max_iter, method=method, facts=facts, exact=exact, tree=tree))
        else:
            out.append(FitResult(C[r], labels[r], float(inertia[r]), int(n_iter[r]), bool(status[r] == 1), starts[r]))
    return out


def _one_cluster(X: np.ndarray, weights: np.ndarray | None, max_iter: int) -> FitResult:
    """Lloyd's result for k = 1 from any start (with ``max_iter`` >= 2 and no ``tol``), computed
    as ``_lloyd`` computes it.

    The first assignment gives every point label 0; the update makes the centre the weighted
    mean, summed as every path sums (per chunk, then chunk by chunk); the second assignment
    changes nothing, so Lloyd stops there: 2 assignments, converged.
    """
    n, nf = X.shape
    nch = K.n_chunks(n)
    labels = np.zeros(n, dtype=np.int32)
    p_sums = np.empty((nch, 1, nf))
    p_counts = np.empty((nch, 1))
    C = np.zeros((1, nf))
    with threads_for(n):
        K.lloyd_step(X, _w(weights), C, labels, p_sums, p_counts, np.empty(nch, dtype=np.int64))
    sums = np.zeros((1, nf))
    counts = np.zeros(1)
    C_new = np.empty((1, nf))
    if K.update_centres(p_sums, p_counts, nch, False, sums, counts, C, C_new, np.empty(1)):
        return lloyd(X, weights, X[:1].astype(np.float64), max_iter=max_iter)  # no weight at all: as Lloyd does
    return FitResult(C_new, labels, inertia_of(X, weights, C_new, labels), 2, True, C_new.copy())


def label_with(X: np.ndarray, weights: np.ndarray | None, centers: np.ndarray, fixed_point: bool = True) -> FitResult:
    """Every point labelled with the nearest of ``centers``, which are kept as they are (no fit).

    The labels are those every Lloyd assignment gives (ties to the lowest index), so a
    cluster no point is nearest to stays, empty, at its index. ``n_iter`` is 0. ``converged``
    says whether the centres are a Lloyd fixed point of the points, as a fit's ``converged``
    does: moving each centre of a cluster that has points to their weighted mean (an empty
    cluster's stays) changes no label, so Lloyd started from them would stop at once with these
    labels. It costs one more assignment, which ``fixed_point=False`` spares (``converged`` is
    then False). With no points, it is True.
    """
    n, nf = X.shape
    k = centers.shape[0]
    C = np.ascontiguousarray(centers, dtype=np.float64)
    w = _w(weights)
    labels = np.full(n, -1, dtype=np.int32)
    nch = K.n_chunks(n)
    p_sums = np.empty((nch, k, nf))
    p_counts = np.empty((nch, k))
    p_changed = np.empty(nch, dtype=np.int64)
    with threads_for(n):
        K.lloyd_step(X, w, C, labels, p_sums, p_counts, p_changed)
        inertia = inertia_of(X, weights, C, labels)
        if not fixed_point:
            return FitResult(C, labels, inertia, 0, False)
        means = np.empty_like(C)
        K.update_centres(p_sums, p_counts, nch, False, np.zeros((k, nf)), np.zeros(k), C, means, np.empty(k))
        K.lloyd_step(X, w, means, labels.copy(), p_sums, p_counts, p_changed)
    return FitResult(C, labels, inertia, 0, int(p_changed.sum()) == 0)


def _make_init(X, weights, k, init, rng):
    if isinstance(init, np.ndarray):
        return init.astype(np.float64)
    if init == "random":
        return random_init(X, weights, k, rng)
    return kmeans_plusplus(X, weights, k, rng)


def fit(
    X: np.ndarray,
    weights: np.ndarray | None,
    k: int,
    *,
    init: str | np.ndarray = "k-means++",
    n_init: int = 10,
    max_iter: int = 300,
    tol: float = 0.0,
    rng: np.random.Generator,
    coarse: list[tuple[np.ndarray, np.ndarray]] | None = None,
    method: str = "hamerly",
    facts: tuple[float, bool] | None = None,
    coarse_facts: list[tuple[float, bool]] | None = None,
    variance: float | None = None,
) -> FitResult:
    """Best of ``n_init`` restarts, optionally run coarse-to-fine.

    ``coarse`` is a list of weighted summaries of ``X``, coarsest first (for an image: its
    histogram at 5, 6 and 7 bits per channel, each point at the weighted mean of its cell).
    The ``n_init`` restarts run to convergence on the coarsest summary that has at least 256
    points per cluster; the best few go one summary finer, and the best of those is refined on
    each finer summary much smaller than ``X`` (``SUMMARY_MIN_SHRINK``) and last on ``X`` itself.
    That last run is plain Lloyd on ``X``, so the result is a Lloyd fixed point of ``X``; the
    finer levels only give it a start close to its end, so it needs few iterations. An
    explicit ``init`` array runs once, on ``X``; so does ``k = 1``, where every start gives
    the same result.
    ``facts``: ``point_facts(X, weights)``, when known; ``coarse_facts``: the same for each
    summary in ``coarse``, when known; ``variance``: ``mean_variance(X, weights)``, when known
    (it scales ``tol``).

    Returns fewer than ``k`` centres only if ``X`` has fewer than ``k`` distinct points.
    """
    tol_abs = tol_to_abs(X, weights, tol, variance)
    if isinstance(init, np.ndarray):
        return lloyd(X, weights, init, max_iter=max_iter, tol_abs=tol_abs, method=method, facts=facts)
    if k == 1:
        # Every start reaches the same fixed point after one update (the weighted mean of all
        # the points): no restarts or summaries, and no start is drawn unless a stopping rule
        # may end the run before it is confirmed.
        if max_iter >= 2 and tol_abs == 0.0:
            return _one_cluster(X, weights, max_iter)
        return lloyd(X, weights, _make_init(X, weights, k, init, rng), max_iter=max_iter, tol_abs=tol_abs,
                     method=method, facts=facts)
    if coarse:
        # Restarts need enough points to tell a good start from a bad one: the coarsest
        # summary with at least RESTART_POINTS_PER_CLUSTER points per cluster (else the finest).
        first = next((i for i, (Xl, _) in enumerate(coarse) if Xl.shape[0] >= RESTART_POINTS_PER_CLUSTER * k),
                     len(coarse) - 1)
        coarse = coarse[first:]
        known = [None] * len(coarse) if coarse_facts is None else coarse_facts[first:]
        Xc, wc = coarse[0]
        if init == "k-means++":
            starts = kmeans_plusplus_many(Xc, wc, k, rng, n_init)
        else:
            starts = [_make_init(Xc, wc, k, init, rng) for _ in range(n_init)]
        if any(c0.shape[0] < k for c0 in starts):
            starts = []  # the summary is too small to hold k clusters: work on X itself
        runs = lloyd_many(Xc, wc, starts, max_iter=max_iter, method=method, exact=False, facts=known[0])
        if runs:
            # Close inertias on a coarse summary do not rank reliably: the best few go one
            # level finer, and the best of them there goes on.
            runs.sort(key=lambda r: r.inertia)
            centers = runs[0].centers
            levels = list(zip(coarse[1:], known[1:]))
            if levels:
                (Xl, wl), fl = levels[0]
                finer = lloyd_many(Xl, wl, [r.centers for r in runs[:REFINE_CANDIDATES]], max_iter=max_iter,
                                   method=method, exact=False, facts=fl)
                centers = min(finer, key=lambda r: r.inertia).centers
                levels = levels[1:]
            for (Xl, wl), fl in levels:
                if SUMMARY_MIN_SHRINK * Xl.shape[0] <= X.shape[0]:
                    centers = lloyd(Xl, wl, centers, max_iter=max_iter, method=method, exact=False, facts=fl).centers
            return lloyd(X, weights, centers, max_iter=max_iter, tol_abs=tol_abs, method=method, facts=facts,
                         warm=True)
    best = None
    for _ in range(n_init):
        c0 = _make_init(X, weights, k, init, rng)
        if c0.shape[0] < k:
            # k-means++ ran out of potential: c0 holds every distinct point. Lloyd keeps them.
            return lloyd(X, weights, c0, max_iter=max_iter, method=method, facts=facts)
        r = lloyd(X, weights, c0, max_iter=max_iter, tol_abs=tol_abs, method=method, facts=facts)
        if best is None or r.inertia < best.inertia:
            best = r
    assert best is not None
    return best
