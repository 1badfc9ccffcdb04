"""Choose the number of clusters: the inertia curve over k, its knee, and silhouette scores.

The image is loaded and reduced to its weighted unique colours once (:func:`kmseg.prepare`);
every k of the sweep then fits on those points, so a sweep costs about as much as the fits
themselves.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any, Callable, Iterable

import numpy as np

from .color import to_features
from .errors import ConvergenceWarning, ParameterError, ParameterTypeError, user_stacklevel
from .segment import (
    Prepared,
    _check_inferred_alpha,
    _is_pil_image,
    check_fit_options,
    READ_OPTIONS,
    check_int,
    fewer_colours,
    make_rng,
    prepare,
)

__all__ = ["Elbow", "elbow", "find_knee"]

#: Options of :func:`kmseg.segment` that shape the reduction (given to :func:`kmseg.prepare`).
PREPARE_OPTIONS = ("color_space", "scale", "alpha", "max_pixels", "channel_axis", "plane")
#: Options of :func:`kmseg.segment` that shape each fit (given to :meth:`Prepared.fit`).
FIT_OPTIONS = ("n_init", "init", "max_iter", "tol", "seed")

_SILHOUETTE_BLOCK = 512  # rows of the sample's distance matrix held at once


# --------------------------------------------------------------------------- helpers shared by plot and report


def split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split keyword options of :func:`kmseg.segment` into (prepare options, fit options).

    Raises
    ------
    ParameterTypeError
        An option is not one of :func:`kmseg.segment`'s.

    Examples
    --------
    >>> split_options({"seed": 0, "color_space": "lab"})
    ({'color_space': 'lab'}, {'seed': 0})
    """
    prep = {}
    fit = {}
    for name, value in options.items():
        if name in PREPARE_OPTIONS:
            prep[name] = value
        elif name in FIT_OPTIONS:
            fit[name] = value
        else:
            known = ", ".join(sorted(PREPARE_OPTIONS + FIT_OPTIONS))
            raise ParameterTypeError(f"{name}={value!r} is not an option of segment(); use one of {known}")
    return prep, fit


def as_prepared(image: Any, prepare_options: dict[str, Any]) -> Prepared:
    """``image`` itself if it is a :class:`Prepared`, else ``prepare(image, **prepare_options)``.

    Options that shape the reduction cannot be applied to an image that is already prepared.

    Raises
    ------
    ParameterError
        ``image`` is prepared and a prepare option was given too.
    """
    if isinstance(image, Prepared):
        given = {k: v for k, v in prepare_options.items() if v is not None}
        if given:
            name, value = next(iter(given.items()))
            raise ParameterError(
                f"{name}={value!r} cannot be applied to an image that is already prepared; "
                f"pass it to prepare() instead, or pass the image itself"
            )
        return image
    return prepare(image, **{k: v for k, v in prepare_options.items() if v is not None})


def prepare_read(image: Any, arr: np.ndarray, has_alpha: bool, prepare_options: dict[str, Any]) -> Prepared:
    """:func:`kmseg.prepare` of ``arr``, which ``read_image(image)`` gave with ``has_alpha``:
    the image ``prepare(image, **prepare_options)`` makes, without reading it again.

    Unless ``alpha`` is given, it is what ``read_image`` found; and an alpha taken from an
    array's channel count alone is checked as :func:`kmseg.prepare` checks it (a warning when
    no pixel is fully opaque), which passing ``alpha=has_alpha`` would skip. The options
    ``read_image`` took (``max_pixels``, ``channel_axis``, ``plane``: :data:`READ_OPTIONS`) are
    not applied again.
    """
    opts = {k: v for k, v in prepare_options.items() if k not in READ_OPTIONS}
    if opts.get("alpha") is None:
        opts["alpha"] = has_alpha
        if has_alpha and not isinstance(image, (str, os.PathLike)) and not _is_pil_image(image):
            _check_inferred_alpha(arr)
    if arr.ndim == 3:  # read already, channels last: not to be taken for channels first (a file 8 rows high)
        opts["channel_axis"] = -1
    return as_prepared(arr, opts)


# --------------------------------------------------------------------------- the knee


def find_knee(ks: Iterable[int], inertias: Iterable[float], *, log: bool = True) -> int:
    """The knee of a decreasing inertia curve, by Kneedle's difference curve.

    The method, exactly:

    1. With ``log=True`` (the default) the curve is ``y = log(inertia + eps)`` with
       ``eps = 1e-12 * max(inertia)``; with ``log=False`` it is the inertia itself.
    2. ``x`` (the ks) and ``y`` are each scaled to [0, 1] by their minimum and maximum
       (Satopää et al., "Finding a 'Kneedle' in a Haystack", 2011).
    3. The difference curve is the height of the chord from the first to the last point
       minus the curve: ``d = chord(x) - y``. For a decreasing convex curve the chord runs
       from (0, 1) to (1, 0) and ``d = 1 - x - y``, Kneedle's difference curve.
    4. The knee is the k at the global maximum of ``d`` (the smallest such k on ties), i.e.
       the point farthest below the chord. Kneedle's online detection with a sensitivity
       threshold is not used; the global maximum needs no tuning.
    5. If no point lies strictly below the chord (a straight or concave curve, or a flat one
       such as a single-colour image), the knee is the first k: no k earns more than its
       share.

    Why the logarithm: the elbow is where adding a cluster stops paying off *relative to
    the inertia left*. On a linear scale the first drops dwarf everything after them, so
    plain Kneedle picks too small a k whenever the true k is large compared with the range
    swept (8 well-separated colours swept over k = 1..12 gives 7); on a log scale a drop to
    the noise floor stands out wherever it happens. On curves without a sharp elbow
    (photographs, where inertia falls like a power of k) both scales give similar knees.

    Parameters
    ----------
    ks : sequence of int, length n >= 3
        Strictly increasing.
    inertias : sequence of float, length n
        Inertia at each k, finite and non-negative.
    log : bool
        Find the knee of the log-inertia curve (default) or of the inertia itself.

    Returns
    -------
    knee : int
        One of ``ks``.

    Raises
    ------
    ParameterError
        Fewer than 3 points, lengths differ, ks not strictly increasing, or inertias negative
        or not finite.

    Examples
    --------
    >>> find_knee([1, 2, 3, 4, 5], [1000.0, 100.0, 8.0, 7.0, 6.5])
    3
    >>> find_knee([1, 2, 3, 4, 5], [1000.0, 100.0, 8.0, 7.0, 6.5], log=False)
    2
    """
    x = np.asarray(list(ks), dtype=np.float64)
    y = np.asarray(list(inertias), dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ParameterError(
            f"ks has {x.size} values and inertias {y.size}; pass one inertia for every k"
        )
    if x.size < 3:
        raise ParameterError(
            f"ks={x.astype(np.int64).tolist()} has {x.size} value(s); the knee needs at least 3 ks, "
            "for example range(1, 11)"
        )
    if not np.all(np.diff(x) > 0):
        raise ParameterError(f"ks={x.astype(np.int64).tolist()} is not strictly increasing; sort them and drop repeats")
    if not np.all(np.isfinite(y)) or np.any(y < 0):
        raise ParameterError(f"inertias={y.tolist()} must be finite and non-negative")
    top = float(y.max())
    if top <= 0.0:
        return int(x[0])
    if log:
        y = np.log(y + 1e-12 * top)
    span = float(y.max() - y.min())
    if span <= 0.0:
        return int(x[0])
    xn = (x - x[0]) / (x[-1] - x[0])
    yn = (y - y.min()) / span
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    d = chord - yn
    best = int(np.argmax(d))
    if not d[best] > 1e-12:
        return int(x[0])
    return int(x[best])


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True, eq=False)
class Elbow:
    """The result of :func:`elbow`.

    Attributes
    ----------
    ks : (n,) ndarray of int64
        The numbers of clusters tried, increasing.
    inertias : (n,) ndarray of float64
        Inertia at each k (sum of squared distances to the centres, in the clustering space).
        Never rises with k (see :func:`elbow`).
    knee : int
        The suggested k (see :func:`find_knee`).
    silhouettes : (n,) ndarray of float64 or None
        Mean silhouette on a pixel sample, NaN where undefined (k = 1); None unless asked for.
    repaired : tuple of int
        The ks whose first fit had a higher inertia than the k before and were refit from
        that k's centres plus the most costly points.
    centers : tuple of (k, C) ndarray
        Centres at each k, in the input's units (fewer than k rows if the image has fewer
        distinct colours).
    seconds : (n,) ndarray of float64
        Wall time of each k's fit (repair included).
    prepare_seconds : float
        Wall time of loading and reducing the image (0 if it came prepared).
    n_pixels : int
        Pixels clustered.
    options : dict
        The segmentation options used (``color_space``, ``n_init``, ``init``, ``max_iter``,
        ``tol``, ``seed``, ``scale``, ``alpha``, ``max_pixels``) and ``sample_size``.
    """

    ks: np.ndarray
    inertias: np.ndarray
    knee: int
    silhouettes: np.ndarray | None = None
    repaired: tuple[int, ...] = ()
    centers: tuple[np.ndarray, ...] = ()
    seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    prepare_seconds: float = 0.0
    n_pixels: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def best_silhouette(self) -> int | None:
        """The k with the highest silhouette, or None without silhouettes."""
        if self.silhouettes is None or np.all(np.isnan(self.silhouettes)):
            return None
        return int(self.ks[int(np.nanargmax(self.silhouettes))])

    def inertia(self, k: int) -> float:
        """Inertia at ``k``, one of :attr:`ks`."""
        hits = np.flatnonzero(self.ks == k)
        if hits.size == 0:
            raise ParameterError(f"k={k!r} was not swept; pick one of {self.ks.tolist()}")
        return float(self.inertias[hits[0]])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no centres)."""
        sil = None
        if self.silhouettes is not None:
            sil = [None if math.isnan(v) else float(v) for v in self.silhouettes]
        opts = {k: (v if v is None or isinstance(v, (str, int, float, bool)) else repr(v)) for k, v in self.options.items()}
        return {
            "ks": [int(k) for k in self.ks],
            "inertias": [float(v) for v in self.inertias],
            "knee": int(self.knee),
            "silhouettes": sil,
            "best_silhouette": self.best_silhouette,
            "repaired": [int(k) for k in self.repaired],
            "seconds": [round(float(s), 6) for s in self.seconds],
            "prepare_seconds": round(self.prepare_seconds, 6),
            "n_pixels": int(self.n_pixels),
            "options": opts,
        }

    def __repr__(self) -> str:
        return f"Elbow(ks={self.ks.tolist()}, knee={self.knee}, repaired={list(self.repaired)})"

    def _repr_html_(self) -> str:
        """How Jupyter shows a sweep: the summary, the inertia curve drawn as an inline SVG with
        the knee ringed, and a table of k and inertia (and silhouette) with the knee marked
        (see :func:`kmseg._notebook.elbow_html`)."""
        from ._notebook import elbow_html

        return elbow_html(self)


# --------------------------------------------------------------------------- validation


def check_ks(ks: Any) -> np.ndarray:
    """Sorted, de-duplicated ks as an int64 array; at least 3 of them, each >= 1.

    Raises
    ------
    ParameterTypeError
        ``ks`` is not a sequence of integers.
    ParameterError
        A k is below 1, or fewer than 3 distinct ks.
    """
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ParameterTypeError(f"ks={ks!r} is not a sequence of integers; pass for example range(1, 11)")
    values = list(ks)
    for k in values:
        if isinstance(k, (bool, np.bool_)) or not isinstance(k, Integral):
            raise ParameterTypeError(f"ks contains {k!r}, which is not an integer; pass whole numbers such as range(1, 11)")
        if k < 1:
            raise ParameterError(f"ks contains {k}, which is out of range; every k must be at least 1")
    out = np.unique(np.asarray(values, dtype=np.int64))
    if out.size < 3:
        raise ParameterError(
            f"ks={values!r} has {out.size} distinct value(s); the knee needs at least 3, for example range(1, 11)"
        )
    return out


# --------------------------------------------------------------------------- the sweep


def _extra_centres(points: np.ndarray, weights: np.ndarray | None, centres: np.ndarray, m: int) -> np.ndarray:
    """``centres`` plus ``m`` points picked greedily where they cost most (weight * squared distance)."""
    X = points.astype(np.float64, copy=False)
    d2 = np.full(X.shape[0], np.inf)
    for c in centres:
        np.minimum(d2, ((X - c) ** 2).sum(axis=1), out=d2)
    w = np.ones(X.shape[0]) if weights is None else weights
    picked = [np.asarray(c, dtype=np.float64) for c in centres]
    for _ in range(m):
        cost = w * d2
        i = int(np.argmax(cost))
        if not cost[i] > 0.0:
            break
        picked.append(X[i].copy())
        np.minimum(d2, ((X - X[i]) ** 2).sum(axis=1), out=d2)
    return np.array(picked)


def _sample_features(prep: Prepared, size: int, rng: np.random.Generator) -> np.ndarray:
    """Features of ``size`` opaque pixels drawn without replacement (all if fewer)."""
    flat = prep.pixels.reshape(-1, prep.n_channels)
    if prep.mask is None:
        n = flat.shape[0]
        idx = rng.choice(n, size=min(size, n), replace=False) if size < n else np.arange(n)
    else:
        opaque = np.flatnonzero(prep.mask.reshape(-1))
        idx = opaque[rng.choice(opaque.size, size=size, replace=False)] if size < opaque.size else opaque
    return to_features(flat[np.sort(idx)], prep.color_space, prep.vmax).astype(np.float64)


def _nearest(X: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d2 = ((X[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d2, axis=1)


def _squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """(a, b) squared distances between the rows of ``A`` (a, D) and of ``B`` (b, D).

    Below 8 features the squares are summed feature by feature, in feature order, as numpy sums
    so few terms: the very values of ``((A[:, None] - B[None]) ** 2).sum(axis=2)``, without its
    (a, b, D) temporaries (a quarter of the time at D = 3). From 8 on numpy sums pairwise, and
    that expression is kept, so the values never depend on which way they were computed.
    """
    if A.shape[1] >= 8:
        return ((A[:, None, :] - B[None, :, :]) ** 2).sum(axis=2)
    out = np.subtract.outer(A[:, 0], B[:, 0])
    out *= out
    for f in range(1, A.shape[1]):
        diff = np.subtract.outer(A[:, f], B[:, f])
        diff *= diff
        out += diff
    return out


def silhouettes(X: np.ndarray, labelings: list[np.ndarray]) -> np.ndarray:
    """Mean silhouette (Rousseeuw 1987) of each labelling of the same points.

    ``s(i) = (b - a) / max(a, b)``, with ``a`` the mean distance from point i to the other
    points of its cluster and ``b`` the smallest mean distance to the points of another
    cluster; ``s(i) = 0`` for a point alone in its cluster (as in scikit-learn). The score
    is NaN when the labelling has fewer than 2 clusters or as many clusters as points.
    The distance matrix is built in row blocks, once for all labellings.

    Parameters
    ----------
    X : (m, D) ndarray
        The points.
    labelings : list of (m,) ndarray of int
        Labels in [0, k) for each labelling.

    Returns
    -------
    scores : (len(labelings),) ndarray of float64

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [5.0], [5.1]])
    >>> np.round(silhouettes(X, [np.array([0, 0, 1, 1])]), 3).tolist()
    [0.98]
    """
    m = X.shape[0]
    compact = [np.unique(lab, return_inverse=True)[1].reshape(-1) for lab in labelings]
    ncl = [int(c.max()) + 1 if c.size else 0 for c in compact]
    sums = [np.zeros((m, n)) for n in ncl]
    onehots = [np.eye(n)[c] for c, n in zip(compact, ncl)]
    for start in range(0, m, _SILHOUETTE_BLOCK):
        stop = min(start + _SILHOUETTE_BLOCK, m)
        D = np.sqrt(_squared_distances(X[start:stop], X))
        for S, H in zip(sums, onehots):
            S[start:stop] = D @ H
    out = np.full(len(labelings), np.nan)
    for j, (lab, n, S) in enumerate(zip(compact, ncl, sums)):
        if n < 2 or n >= m:
            continue
        sizes = np.bincount(lab, minlength=n).astype(np.float64)
        own = sizes[lab]
        a = np.where(own > 1, S[np.arange(m), lab] / np.maximum(own - 1, 1), 0.0)
        mean_other = S / sizes[None, :]
        mean_other[np.arange(m), lab] = np.inf
        b = mean_other.min(axis=1)
        top = np.maximum(a, b)
        s = np.where((own > 1) & (top > 0), (b - a) / np.where(top > 0, top, 1.0), 0.0)
        out[j] = float(s.mean())
    return out


def elbow(
    image: Any,
    ks: Iterable[int] = range(1, 11),
    *,
    silhouette: bool = False,
    sample_size: int = 2000,
    color_space: str | None = None,
    n_init: int = 10,
    init: str = "k-means++",
    max_iter: int = 300,
    tol: float = 0.0,
    seed: int | np.random.Generator | None = None,
    scale: float | None = None,
    alpha: bool | None = None,
    max_pixels: int | None = None,
    channel_axis: int | None = None,
    plane: int | None = None,
    progress: Callable[[int], None] | None = None,
    warn: bool = True,
) -> Elbow:
    """Segment an image for every k in ``ks``: the inertia curve, its knee, and silhouettes.

    The image is loaded and reduced once (:func:`kmseg.prepare`); each k fits on the same
    weighted unique colours. With an integer ``seed`` every k uses that seed afresh, so the
    inertia at k equals ``segment(image, k, seed=seed).inertia`` (unless k was repaired,
    see below) and does not depend on the other ks.

    **Inertia never rises with k.** The best inertia with k + 1 centres is never worse than
    with k, but restarts from k-means++ can land in a worse local optimum at the larger k.
    When the inertia at a k exceeds the one at the k before it in ``ks``, that k is fit
    once more from the earlier k's centres plus one centre at each of the most costly
    points (weight times squared distance, picked greedily), and the better of the two
    fits is kept. The repaired start already costs less than the earlier k, and Lloyd's
    iterations never raise the cost, so the repaired inertia is at most the earlier one.
    The ks repaired are listed in :attr:`Elbow.repaired`. (With ``scale``, the fits run on
    the reduced copy and the inertias are measured on the full image; the guarantee holds
    on the copy, and almost always on the full image.)

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
        As in :func:`kmseg.segment`; a :class:`~kmseg.Prepared` image is used as it is.
    ks : iterable of int
        The numbers of clusters to try, each at least 1; sorted and de-duplicated. At least
        3 distinct values (the knee needs them). Default 1 to 10.
    silhouette : bool
        Also compute the mean silhouette score at each k (Rousseeuw 1987), in the clustering
        space, on ``sample_size`` opaque pixels drawn without replacement (the same sample for
        every k, drawn from ``seed``). Costs O(sample_size^2) distances, once.
    sample_size : int
        Pixels in the silhouette sample, at least 2 (all pixels if the image has fewer).
    color_space, n_init, init, max_iter, tol, seed, scale, alpha, max_pixels, channel_axis, plane
        As in :func:`kmseg.segment`; ``init`` is ``"k-means++"`` or ``"random"``. The
        prepare options (``color_space``, ``scale``, ``alpha``, ``max_pixels``,
        ``channel_axis``, ``plane``) must be left unset when ``image`` is a
        :class:`~kmseg.Prepared`.
    progress : callable, optional
        Called as ``progress(k)`` after each k is done (for a progress bar).

    Returns
    -------
    Elbow
        ``ks``, ``inertias``, ``knee`` (see :func:`find_knee`: Kneedle on the log-inertia
        curve), ``silhouettes``, ``repaired``, ``centers``, timings and the options used.

    Raises
    ------
    ParameterError, ParameterTypeError
        ``ks`` is empty, holds a non-integer or a k below 1, has fewer than 3 distinct values;
        or another parameter is out of range.
    ImageError
        The image cannot be read.

    Warns
    -----
    ConvergenceWarning
        Once, if the image has fewer distinct colours than the largest k (inertia is 0 from
        there on).

    Examples
    --------
    >>> img = np.zeros((8, 8, 3), np.uint8); img[:4] = (250, 0, 0); img[:, :4, 2] = 200
    >>> img[::2, ::2] += 3   # a little texture, so that k > 4 still has colours to split
    >>> result = elbow(img, ks=range(1, 7), seed=0)
    >>> result.knee, bool(np.all(np.diff(result.inertias) <= 0))
    (4, True)
    """
    k_values = check_ks(ks)
    if not isinstance(silhouette, (bool, np.bool_)):
        raise ParameterTypeError(f"silhouette={silhouette!r} is not a bool; pass True or False")
    sample_size = check_int("sample_size", sample_size, 2)
    if not isinstance(init, str):
        raise ParameterTypeError(
            f"init={init!r} is not supported by elbow(); use 'k-means++' or 'random' (one array cannot start every k)"
        )
    check_fit_options(n_init, max_iter, tol, init)
    if progress is not None and not callable(progress):
        raise ParameterTypeError(f"progress={progress!r} is not callable; pass a function of k, or None")
    rng = make_rng(seed)  # validates seed
    fit_seed: int | np.random.Generator = seed if isinstance(seed, Integral) else rng

    t0 = time.perf_counter()
    prepared = isinstance(image, Prepared)
    prep = as_prepared(image, {"color_space": color_space, "scale": scale, "alpha": alpha, "max_pixels": max_pixels,
                               "channel_axis": channel_axis, "plane": plane})
    prepare_seconds = 0.0 if prepared else time.perf_counter() - t0
    fit_options = {"n_init": n_init, "init": init, "max_iter": max_iter, "tol": tol}

    inertias = np.empty(k_values.size)
    seconds = np.empty(k_values.size)
    centres_out: list[np.ndarray] = []
    feature_centres: list[np.ndarray] = []
    repaired: list[int] = []
    few_at: int | None = None
    red = prep.fit_reduced
    for j, k in enumerate(k_values.tolist()):
        t = time.perf_counter()
        res, _, inertia, few = prep.fit(k, seed=fit_seed, warn=False, **fit_options)
        if j > 0 and inertia > inertias[j - 1] and not few:
            start = _extra_centres(red.points, red.weights, feature_centres[-1], k - feature_centres[-1].shape[0])
            if start.shape[0] == k:
                res2, _, inertia2, _ = prep.fit(k, init=start, init_space="features", max_iter=max_iter, tol=tol,
                                                seed=fit_seed, warn=False)
                repaired.append(k)
                if inertia2 < inertia:
                    res, inertia = res2, inertia2
        if few and few_at is None:
            few_at = k
        inertias[j] = inertia
        feature_centres.append(res.centers)
        centres_out.append(prep.centres_of(res.centers))
        seconds[j] = time.perf_counter() - t
        if progress is not None:
            progress(k)
    if few_at is not None and warn:
        n_colours = centres_out[-1].shape[0]
        warnings.warn(
            f"{fewer_colours(n_colours, int(k_values[-1]))}; the inertia is 0 from k={n_colours} on",
            ConvergenceWarning,
            stacklevel=user_stacklevel(),
        )

    sil = None
    if silhouette:
        X = _sample_features(prep, sample_size, make_rng(seed) if isinstance(seed, Integral) else rng)
        sil = silhouettes(X, [_nearest(X, c) for c in feature_centres])

    return Elbow(
        ks=k_values,
        inertias=inertias,
        knee=find_knee(k_values, inertias),
        silhouettes=sil,
        repaired=tuple(repaired),
        centers=tuple(centres_out),
        seconds=seconds,
        prepare_seconds=prepare_seconds,
        n_pixels=prep.n_pixels,
        options={
            "color_space": prep.color_space,
            "n_init": n_init,
            "init": init,
            "max_iter": max_iter,
            "tol": tol,
            "seed": seed,
            "scale": prep.scale,
            "alpha": alpha,
            "max_pixels": max_pixels,
            "channel_axis": channel_axis,
            "plane": plane,
            "sample_size": sample_size,
        },
    )
