"""Segment an image by clustering its colours: ``segment``, ``prepare`` and ``Segmentation``."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from . import _display, _engine
from ._reduce import Reduced, blank_out, cut_out, paint, reduce_image
from .color import COLOR_SPACES, from_features, to_features
from .errors import ConvergenceWarning, InvalidImageDataError, ParameterError, ParameterTypeError, counted, exists_already

__all__ = ["Prepared", "Segmentation", "prepare", "read_image", "segment"]

ImageLike = "str | os.PathLike[str] | np.ndarray"
_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)
#: Outputs ``Segmentation.save`` makes and encodes at once, at most: each holds an image-sized
#: array while it is encoded (a 48 MP cut-out is 192 MB).
SAVE_THREADS = 4


# --------------------------------------------------------------------------- validation


#: Suffixes that make an output name look like a file rather than a directory.
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".gif", ".json", ".svg", ".html")


def looks_like_file(directory: str | os.PathLike[str]) -> bool:
    """Whether an output directory's name looks like a file's (``out.png``) and is not a
    directory already: writing several files into it would make a directory of that name."""
    path = Path(directory)
    return path.suffix.lower() in FILE_SUFFIXES and not path.is_dir()


def check_output_dir(directory: str | os.PathLike[str]) -> Path:
    """``directory`` as a path, or :class:`ParameterError` if it :func:`looks_like_file` or a file
    is in the way (:func:`kmseg.io.folder_problem`)."""
    from .io import folder_problem

    path = Path(directory)
    if looks_like_file(path):
        raise ParameterError(
            f"{os.fspath(directory)!r} looks like a file name, but the outputs are several files written into a "
            f"directory; pass a directory such as {os.fspath(path.with_suffix(''))!r}"
        )
    problem = folder_problem(path)
    if problem is not None:
        raise ParameterError(problem)
    return path


def refuse_existing(paths: Iterable[Path], force: bool) -> None:
    """Unless ``force``: :class:`OutputExistsError` naming the first of ``paths`` that exists
    (and how many more do), so that a set of outputs is refused before any of it is written."""
    if force:
        return
    existing = [str(p) for p in paths if p.exists()]
    if existing:
        raise exists_already(existing[0], len(existing) - 1)


def fewer_colours(n: int, k: int, together: bool = False) -> str:
    """How every message about an image with ``n`` distinct colours, fewer than ``k``, begins
    (``segment``, ``elbow``, the web page's note); ``together``: of a set of images sharing
    one palette (the Dask batch)."""
    if together:
        return f"the images have only {counted(n, 'distinct colour')} together, fewer than k={k}"
    return f"the image has only {counted(n, 'distinct colour')}, fewer than k={k}"


def check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ParameterTypeError(f"{name}={value!r} is not an integer; pass a whole number such as {max(minimum, 5)}")
    if value < minimum:
        raise ParameterError(f"{name}={value} is out of range; {name} must be at least {minimum}")
    return int(value)


def check_color_space(color_space: Any, n_channels: int) -> str:
    if not isinstance(color_space, str) or color_space.lower() not in COLOR_SPACES:
        raise ParameterError(f"color_space={color_space!r} is not supported; use 'rgb', 'lab' or 'hsv'")
    space = color_space.lower()
    if space != "rgb" and n_channels != 3:
        raise ParameterError(
            f"color_space={space!r} needs an RGB image (3 colour channels); this image has {n_channels}: use color_space='rgb'"
        )
    return space


def make_rng(seed: Any) -> np.random.Generator:
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ParameterError(f"seed={seed!r} is not valid; pass a non-negative integer, or None for a fresh random start")
    return np.random.default_rng(int(seed))


def check_fit_options(n_init: Any, max_iter: Any, tol: Any, init: Any) -> None:
    check_int("n_init", n_init, 1)
    check_int("max_iter", max_iter, 1)
    if isinstance(tol, bool) or not isinstance(tol, Real) or not np.isfinite(tol) or tol < 0:
        raise ParameterError(f"tol={tol!r} is out of range; tol must be a number >= 0 (0 runs until no label changes)")
    if isinstance(init, str):
        if init not in ("k-means++", "random"):
            raise ParameterError(f"init={init!r} is not supported; use 'k-means++', 'random' or an array of centres")
    elif not isinstance(init, np.ndarray):
        raise ParameterTypeError(
            f"init of type {type(init).__name__} is not supported; use 'k-means++', 'random' or a (k, C) ndarray"
        )


def read_image(image: Any, *, max_pixels: int | None = None) -> tuple[np.ndarray, bool]:
    """An image path or array as a checked array, and whether its last channel is alpha.

    Paths are read with :func:`kmseg.load_image`, which knows whether the file has alpha.
    Arrays are checked once here and taken to have alpha when they have 2 or 4 channels
    (grey+alpha, RGBA). The array is returned as it is, never copied or changed.

    Parameters
    ----------
    image : str, path or (M, N[, C]) ndarray
    max_pixels : int, optional
        For paths: the decompression-bomb limit (default: Pillow's).

    Returns
    -------
    array : (M, N[, C]) ndarray of uint8, uint16 or float
    has_alpha : bool

    Raises
    ------
    ParameterTypeError
        ``image`` is neither a path nor an ndarray.
    ImageError
        The file cannot be read, or the array has a bad shape or dtype, or NaN.

    Examples
    --------
    >>> arr, has_alpha = read_image(np.zeros((2, 2, 4), np.uint8))
    >>> arr.shape, has_alpha
    ((2, 2, 4), True)
    """
    if isinstance(image, (str, os.PathLike)):
        from .io import load_image

        pixels, alpha = load_image(image, max_pixels=max_pixels, return_alpha=True)
        if alpha is None:
            return pixels, False
        return np.dstack([pixels, alpha]), True
    if not isinstance(image, np.ndarray):
        raise ParameterTypeError(
            f"image of type {type(image).__name__} is not supported; pass a file path or an (H, W[, C]) ndarray"
        )
    if image.ndim not in (2, 3) or image.size == 0:
        raise InvalidImageDataError(
            f"image has shape {image.shape}; pass an (H, W) grey or (H, W, C) colour image with at least one pixel"
        )
    if image.dtype.type not in _DTYPES:
        raise InvalidImageDataError(
            f"image dtype {image.dtype} is not supported; convert it to uint8, uint16 or float (values in [0, 1])"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise InvalidImageDataError("image contains NaN or infinite values; replace them (np.nan_to_num) first")
    return image, image.ndim == 3 and image.shape[2] in (2, 4)


def _vmax(dtype: np.dtype) -> float | None:
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else None


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Centre colours in the input's units -> the input's dtype (rounded and clipped for integers)."""
    if dtype.kind == "u":
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


# --------------------------------------------------------------------------- prepare


class Prepared:
    """An image loaded, normalised and reduced once, ready to be segmented for any k.

    Made by :func:`prepare`. Keep one to segment the same image with several values of k
    (the elbow sweep, a slider on a web page) without decoding or re-histogramming it.
    """

    def __init__(
        self,
        image: np.ndarray,
        *,
        color_space: str,
        alpha: bool,
        scale: float | None,
        source: str | None,
    ) -> None:
        self.image = image  # never modified
        self.source = source
        self.color_space = color_space
        self.shape = image.shape
        self.dtype = image.dtype
        pixels = image[..., None] if image.ndim == 2 else image
        self.has_alpha = alpha  # the last channel of ``image`` is alpha
        if alpha:
            self.mask: np.ndarray | None = pixels[..., -1] > 0
            pixels = pixels[..., :-1]
            if self.mask.all():
                self.mask = None
        else:
            self.mask = None
        self.pixels = pixels  # (H, W, C) colour channels, a view
        self.n_channels = pixels.shape[2]
        self.vmax = _vmax(image.dtype)
        self.reduced = reduce_image(pixels, self.mask, color_space, self.vmax)
        self.scale = scale
        self.fit_reduced = self.reduced if scale is None else self._reduce_scaled(scale)

    @classmethod
    def from_reduced(cls, reduced: Reduced, *, color_space: str, n_channels: int, vmax: float | None) -> Prepared:
        """A Prepared made from points reduced elsewhere (the Dask path sums histograms region
        by region). It has no pixels: :meth:`fit` works, :meth:`segment` does not."""
        self = cls.__new__(cls)
        self.image = None
        self.source = None
        self.color_space = color_space
        self.shape = None
        self.dtype = None
        self.has_alpha = False
        self.mask = None
        self.pixels = None
        self.n_channels = n_channels
        self.vmax = vmax
        self.reduced = self.fit_reduced = reduced
        self.scale = None
        return self

    def _reduce_scaled(self, scale: float) -> Reduced:
        import cv2

        H, W = self.pixels.shape[:2]
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        src = self.pixels if self.pixels.dtype != np.float16 else self.pixels.astype(np.float32)
        small = cv2.resize(np.ascontiguousarray(src), size, interpolation=cv2.INTER_AREA)
        small = small.reshape(size[1], size[0], -1)
        mask = None
        if self.mask is not None:
            m = cv2.resize(self.mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA)
            mask = m > 0
        return reduce_image(small, mask, self.color_space, self.vmax)

    @property
    def n_pixels(self) -> int:
        return self.reduced.n_pixels

    @property
    def nbytes(self) -> int:
        extra = 0 if self.fit_reduced is self.reduced else self.fit_reduced.nbytes
        return self.image.nbytes + self.reduced.nbytes + extra

    def fit(
        self,
        k: int,
        *,
        n_init: int = 10,
        init: str | np.ndarray = "k-means++",
        max_iter: int = 300,
        tol: float = 0.0,
        seed: int | np.random.Generator | None = None,
        init_space: str = "input",
        warn: bool = True,
    ) -> tuple[_engine.FitResult, np.ndarray, float, bool]:
        """Fit centres on the (possibly scaled) points; label the full image's points.

        ``init_space="features"`` takes an ``init`` array already in the clustering space (as
        the engine returns centres), so that a fit can restart exactly where another ended.
        ``warn=False`` skips the ConvergenceWarning for fewer distinct colours than ``k``
        (threaded callers read it from the result instead of changing warning filters).
        Returns the fit, the labels of the full image's points, the inertia on the full image
        and whether fewer distinct colours than ``k`` were found.
        """
        k = check_int("k", k, 1)
        check_fit_options(n_init, max_iter, tol, init)
        rng = make_rng(seed)
        red = self.fit_reduced
        if red.points.shape[0] == 0:
            raise InvalidImageDataError("image has no opaque pixels (every alpha is 0); there is nothing to cluster")
        if isinstance(init, np.ndarray):
            if init_space == "features":
                d = red.points.shape[1]
                if init.shape != (k, d):
                    raise ParameterError(f"init has shape {init.shape}; centres in the clustering space must be ({k}, {d})")
                init = np.ascontiguousarray(init, dtype=np.float64)
            else:
                init = self.init_features(init, k)
        few = red.kind == "histogram" and red.points.shape[0] < k
        if few:
            pts = red.points.astype(np.float64)
            res = _engine.FitResult(pts, np.arange(pts.shape[0], dtype=np.int32), 0.0, 0, True)
        else:
            res = _engine.fit(
                red.points, red.weights, k, init=init, n_init=n_init, max_iter=max_iter, tol=tol, rng=rng,
                coarse=red.levels, facts=red.facts, coarse_facts=red.level_facts,
                variance=red.variance if tol > 0.0 else None,
            )
            few = res.centers.shape[0] < k
        if few and warn:
            n = res.centers.shape[0]
            warnings.warn(
                f"{fewer_colours(n, k)}; returning {counted(n, 'cluster')}, one per colour",
                ConvergenceWarning,
                stacklevel=3,
            )
        if red is self.reduced:
            return res, res.labels, res.inertia, few
        full = self.reduced
        labels = np.empty(full.points.shape[0], dtype=np.int32)
        _engine.K.assign(full.points, res.centers, labels, np.empty(full.points.shape[0]))
        return res, labels, _engine.inertia_of(full.points, full.weights, res.centers, labels), few

    def init_features(self, init: np.ndarray, k: int) -> np.ndarray:
        """Starting centres given in the input's units, checked and moved to the clustering space."""
        C = self.n_channels
        if init.shape != (k, C):
            raise ParameterError(f"init has shape {init.shape}; an array of centres must have shape (k, C) = ({k}, {C})")
        if not np.isfinite(init).all():
            raise ParameterError("init contains NaN or infinite values; pass finite centres")
        return to_features(np.asarray(init, dtype=np.float64), self.color_space, self.vmax).astype(np.float64)

    def segment(self, k: int = 5, **options: Any) -> Segmentation:
        """Segment the prepared image into ``k`` clusters; options as in :func:`segment`."""
        res, point_labels, inertia, _ = self.fit(k, **options)
        k_eff = res.centers.shape[0]
        centers = from_features(res.centers, self.color_space, self.vmax)
        red = self.reduced
        counts = _engine.cluster_weights(point_labels, red.weights, k_eff)
        colors = _to_dtype(centers, self.dtype)
        out = np.empty(self.pixels.shape[:2] + (self.shape[2] if self.image.ndim == 3 else 1,), dtype=self.dtype)
        labels = paint(self.pixels, self.mask, red, point_labels, colors, out)
        if out.shape[2] > self.n_channels:
            out[..., self.n_channels :] = self.image[..., self.n_channels :]
        painted = out[..., 0] if self.image.ndim == 2 else out
        return Segmentation(
            labels=labels,
            centers=centers,
            inertia=inertia,
            n_iter=res.n_iter,
            counts=counts,
            converged=res.converged,
            color_space=self.color_space,
            original=self.image,
            painted=painted,
            n_channels=self.n_channels,
            source=self.source,
        )


def _check_inferred_alpha(arr: np.ndarray) -> None:
    """Warn when an array's last band, taken as alpha for its channel count alone, is never
    fully opaque: it is more likely a band of data (RGB + near infrared, two stains), which
    would be dropped from the features and hide the pixels where it is 0."""
    n = arr.shape[2]
    opaque = _vmax(arr.dtype) or 1.0  # floats: alpha in [0, 1]
    top = arr[..., -1].max()
    if 0 < top < opaque:  # (all 0: an image with nothing to cluster, which is an error of its own)
        kind = "grey+alpha" if n == 2 else "RGBA"
        warnings.warn(
            f"the last of {n} channels is taken as alpha (a {n}-channel array is read as {kind}), but no pixel is "
            f"fully opaque (its maximum is {top:g}, not {opaque:g}); pass alpha=False to cluster all {n} channels, "
            "or alpha=True to keep it as alpha",
            UserWarning,
            stacklevel=4,
        )


def prepare(
    image: ImageLike,
    *,
    color_space: str = "rgb",
    scale: float | None = None,
    alpha: bool | None = None,
    max_pixels: int | None = None,
) -> Prepared:
    """Load, check and reduce an image once, for segmenting it with several values of k.

    Parameters are those of :func:`segment`. ``prepare(img).segment(k)`` equals
    ``segment(img, k)``.

    Examples
    --------
    >>> img = np.zeros((4, 4, 3), np.uint8); img[:2] = 200
    >>> p = prepare(img)
    >>> [p.segment(k, seed=0).counts.tolist() for k in (1, 2)]
    [[16], [8, 8]]
    """
    arr, has_alpha = read_image(image, max_pixels=max_pixels)
    source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    n_channels = 1 if arr.ndim == 2 else arr.shape[2]
    if alpha is None:
        alpha = has_alpha
        if alpha and source is None:
            _check_inferred_alpha(arr)
    elif alpha and n_channels not in (2, 4):
        raise ParameterError(f"alpha=True needs a grey+alpha or RGBA image (2 or 4 channels); this image has {n_channels}")
    space = check_color_space(color_space, n_channels - (1 if alpha else 0))
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, Real) or not 0 < scale <= 1:
            raise ParameterError(f"scale={scale!r} is out of range; pass a factor in (0, 1], or None to cluster every pixel")
        scale = None if scale == 1 else float(scale)
    return Prepared(arr, color_space=space, alpha=bool(alpha), scale=scale, source=source)


def segment(
    image: ImageLike,
    k: int = 5,
    *,
    color_space: str = "rgb",
    n_init: int = 10,
    init: str | np.ndarray = "k-means++",
    max_iter: int = 300,
    tol: float = 0.0,
    seed: int | np.random.Generator | None = None,
    scale: float | None = None,
    alpha: bool | None = None,
    max_pixels: int | None = None,
) -> Segmentation:
    """Segment an image into ``k`` clusters of colour with exact K-means.

    The result is the fixed point that Lloyd's algorithm on every pixel reaches: each centre is
    the mean of its pixels, and each pixel is labelled with its nearest centre. 8-bit images
    with up to 3 channels are clustered through their exact colour histogram (unique colours
    weighted by their counts), which gives the same centres and labels as all the pixels, much
    faster. Other images run on their pixels.

    Parameters
    ----------
    image : str, path or (M, N[, C]) ndarray
        A file (see :func:`kmseg.load_image`) or an array of uint8, uint16 or float (in [0, 1]
        for the Lab and HSV spaces). A 2- or 4-channel array is grey+alpha or RGBA. Channels
        are taken as RGB: convert OpenCV's BGR with ``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``.
    k : int
        Number of clusters, at least 1.
    color_space : {"rgb", "lab", "hsv"}
        Space to cluster in (see :mod:`kmseg.color`). ``"rgb"`` means the channels as they are.
    n_init : int
        Restarts; the one with the lowest inertia is kept. On images with many colours the
        restarts run on a coarse summary (5 to 7 bits per channel) and the best is refined
        through finer summaries to the exact points.
    init : {"k-means++", "random"} or (k, C) ndarray
        Greedy weighted k-means++, ``k`` random distinct colours, or starting centres in the
        input's units (then ``n_init`` is ignored).
    max_iter : int
        Most Lloyd iterations per run.
    tol : float
        Stop early once the sum of squared centre moves in one iteration is at most ``tol``
        times the mean per-channel variance of the data (scikit-learn's meaning). The default
        0 runs until no label changes, which is a true fixed point.
    seed : int, numpy Generator or None
        Makes the run reproducible. The result never depends on the number of threads.
    scale : float in (0, 1], optional
        Fit on a copy resized by this factor (area interpolation), then label every pixel of the
        full image with the nearest of those centres. Faster on huge images; no longer exact.
    alpha : bool, optional
        Treat the last channel as alpha. Default: for a file, whether it has alpha; for an
        array, True for 2 and 4 channels (grey+alpha, RGBA), with a ``UserWarning`` when
        that last channel is nowhere fully opaque (255, 65535 or 1.0). Pass ``alpha=False``
        for a 2- or 4-band array that has no alpha. Pixels whose alpha is 0 get label -1 and are not
        clustered or counted.
    max_pixels : int, optional
        For paths: the decompression-bomb limit (default: Pillow's).

    Returns
    -------
    Segmentation

    Raises
    ------
    ParameterError, ParameterTypeError
        A parameter is out of range or of the wrong type.
    ImageError
        The file is missing, not an image, corrupt, too large, or the array holds NaN.

    Warns
    -----
    ConvergenceWarning
        The image has fewer distinct colours than ``k``; one cluster per colour is returned.

    Examples
    --------
    >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 2:] = (250, 10, 10)
    >>> seg = segment(img, k=2, seed=0)
    >>> sorted(seg.counts.tolist()), seg.labels.shape
    ([8, 8], (4, 4))
    """
    prep = prepare(image, color_space=color_space, scale=scale, alpha=alpha, max_pixels=max_pixels)
    return prep.segment(k, n_init=n_init, init=init, max_iter=max_iter, tol=tol, seed=seed)


# --------------------------------------------------------------------------- the result


def palette_order(counts: np.ndarray) -> list[int]:
    """Cluster indices in the order every palette lists them: largest share first, ties by index.

    The one place that order is decided: :meth:`Segmentation.palette`, and through it every
    front end, lists its entries so.

    Examples
    --------
    >>> palette_order(np.array([5, 9, 5, 0]))
    [1, 0, 2, 3]
    """
    shares = np.asarray(counts).tolist()
    return sorted(range(len(shares)), key=lambda i: (-shares[i], i))


def _to_rgb8(colors: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """(k, C) colours in input units -> (k, 3) uint8 for display (grey replicated, extra bands dropped)."""
    c = np.asarray(colors, dtype=np.float64)
    if dtype.kind == "u":
        c = c * (255.0 / np.iinfo(dtype).max)
    else:
        c = c * 255.0
    if c.shape[1] < 3:
        c = np.repeat(c[:, :1], 3, axis=1)
    return np.clip(np.rint(c[:, :3]), 0, 255).astype(np.uint8)


class Segmentation:
    """The result of :func:`segment`.

    Attributes
    ----------
    labels : (M, N) ndarray of int32
        Cluster of every pixel, in [0, k); -1 for pixels whose alpha is 0.
    centers : (k, C) ndarray of float64
        Cluster centres in the input's own units and channel order.
    inertia : float
        Sum of squared distances of the pixels to their centres, in the clustering space.
    n_iter : int
        Lloyd iterations of the final run, the last assignment included.
    counts : (k,) ndarray of int64
        Pixels in each cluster.
    converged : bool
        True when the final run stopped because no label changed.
    """

    def __init__(
        self,
        *,
        labels: np.ndarray,
        centers: np.ndarray,
        inertia: float,
        n_iter: int,
        counts: np.ndarray,
        converged: bool,
        color_space: str,
        original: np.ndarray,
        painted: np.ndarray,
        n_channels: int,
        source: str | None = None,
    ) -> None:
        self.labels = labels
        self.centers = centers
        self.inertia = float(inertia)
        self.n_iter = int(n_iter)
        self.counts = counts
        self.converged = bool(converged)
        self.color_space = color_space
        self.source = source
        self._original = original
        self._painted = painted
        self._n_channels = n_channels

    @property
    def k(self) -> int:
        """Number of clusters (fewer than asked when the image has fewer distinct colours)."""
        return int(self.centers.shape[0])

    def __repr__(self) -> str:
        h, w = self.labels.shape
        return f"Segmentation(k={self.k}, shape=({h}, {w}), color_space={self.color_space!r}, inertia={self.inertia:.6g})"

    @property
    def nbytes(self) -> int:
        """Bytes held by this result (labels, painted image, and the input it refers to)."""
        return int(self.labels.nbytes + self._painted.nbytes + self._original.nbytes)

    @property
    def original(self) -> np.ndarray:
        """The input image (read-only view; never modified)."""
        view = self._original.view()
        view.flags.writeable = False
        return view

    def _check_index(self, i: Any, name: str = "i") -> int:
        if isinstance(i, bool) or not isinstance(i, Integral):
            raise ParameterTypeError(f"{name}={i!r} is not a cluster index; pass an integer in [0, {self.k})")
        if not 0 <= i < self.k:
            raise ParameterError(f"{name}={i} is out of range; cluster indices run from 0 to {self.k - 1}")
        return int(i)

    def image(self) -> np.ndarray:
        """The image with every pixel painted in its cluster's centre colour.

        Same shape and dtype as the input; alpha is kept, and pixels with alpha 0 keep their values.
        """
        return self._painted.copy()

    def boundaries(self) -> np.ndarray:
        """(M, N) bool: pixels whose label differs from their right or lower neighbour.

        See :func:`kmseg._edges.boundaries`; -1 (transparent) counts as a label.
        """
        from ._edges import boundaries

        return boundaries(self.labels)

    def mask(self, i: int) -> np.ndarray:
        """(M, N) bool: the pixels of cluster ``i``."""
        return self.labels == self._check_index(i)

    def masked(self, disable: Sequence[int] | int, fill: Sequence[float] | float = 0) -> np.ndarray:
        """The original image with the pixels of the ``disable`` clusters set to ``fill``.

        Parameters
        ----------
        disable : int or sequence of int
            Clusters to blank out.
        fill : number or sequence of C numbers
            Colour to paint them with, in the input's units (default black). Alpha is kept.
        """
        idx = [disable] if isinstance(disable, Integral) else list(disable)
        idx = [self._check_index(i, "disable") for i in idx]
        fill_arr = np.asarray(fill, dtype=np.float64).reshape(-1)
        if fill_arr.size not in (1, self._n_channels):
            raise ParameterError(
                f"fill has {fill_arr.size} values; pass one number or {self._n_channels} (one per colour channel)"
            )
        out = self._original.copy()
        color = _to_dtype(np.broadcast_to(fill_arr, (self._n_channels,)), out.dtype)
        return blank_out(out, self.labels, idx, color, self.k)

    def extract(self, i: int) -> np.ndarray:
        """RGBA cut-out of cluster ``i``: the original colours inside the cluster, opaque; every
        other pixel transparent black (all four values 0).

        So a cut-out carries nothing of the rest of the image, and its PNG holds little more
        than the cluster's pixels (on a 12 MP photo, a cluster of 15% of the pixels: 4.6 MB
        written in 0.7 s, where keeping the colours under the transparency took 21 MB and 7 s).
        Returns an (M, N, 4) array in the input's dtype (grey is replicated to RGB; for more than
        3 bands the first three are used).
        """
        return cut_out(self._original, self.labels, self._check_index(i), self._n_channels)

    def palette(self) -> list[dict[str, Any]]:
        """One entry per cluster, largest share first (ties by index, see :func:`palette_order`):
        ``index``, ``rgb`` (0-255), ``hex``, ``fraction`` and ``count``.

        ``index`` is the cluster's label: its value in :attr:`labels` and the label map, and
        the number that :meth:`mask`, :meth:`extract` and ``disable`` take. Every palette
        kmseg shows or writes (the palette JSON, the command line, the web page, the report,
        :func:`kmseg.plot.palette`) is this list, in this order.

        Examples
        --------
        >>> img = np.zeros((2, 2, 3), np.uint8); img[0, 0] = (255, 0, 0)
        >>> [(p["hex"], p["count"]) for p in segment(img, k=2, seed=0).palette()]
        [('#000000', 3), ('#ff0000', 1)]
        """
        rgb = _to_rgb8(self.centers, self._original.dtype)
        total = max(int(self.counts.sum()), 1)
        return [
            {
                "index": i,
                "rgb": [int(v) for v in rgb[i]],
                "hex": "#{:02x}{:02x}{:02x}".format(*(int(v) for v in rgb[i])),
                "fraction": float(self.counts[i]) / total,
                "count": int(self.counts[i]),
            }
            for i in palette_order(self.counts)
        ]

    def label_image(self) -> np.ndarray:
        """Labels as an image to save: uint8 when k < 255, else uint16; label -1 becomes the dtype's maximum."""
        dtype = np.uint8 if self.k < 255 else np.uint16
        out = self.labels.astype(dtype)
        out[self.labels < 0] = np.iinfo(dtype).max
        return out

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description of the run and its palette (as :meth:`palette` lists it,
        largest share first; ``centers`` stay in label order)."""
        h, w = self.labels.shape
        return {
            "source": self.source,
            "width": w,
            "height": h,
            "k": self.k,
            "color_space": self.color_space,
            "inertia": self.inertia,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "centers": self.centers.tolist(),
            "palette": self.palette(),
        }

    def save(
        self,
        directory: str | os.PathLike[str],
        *,
        stem: str | None = None,
        disable: Sequence[int] | None = None,
        masks: bool = False,
        force: bool = False,
    ) -> dict[str, Path]:
        """Write the recoloured image, the label map and the palette JSON into ``directory``.

        Files are ``{stem}-segmented.png``, ``{stem}-labels.png`` and ``{stem}-palette.json``;
        with ``disable``, also ``{stem}-masked.png``; with ``masks``, ``{stem}-cluster{i}.png``
        for every cluster (RGBA cut-outs). Images with more than 4 channels are written as TIFF.
        Every file is written to a temporary name and renamed. If any target exists and
        ``force`` is False, :class:`OutputExistsError` is raised before anything is written.
        The images are made and encoded a few at a time, side by side (encoding a PNG lets
        other threads run), so the cut-outs are never all in memory at once. The masked image,
        the cut-outs and the label map are compressed with zlib's run-length strategy, which
        on a photo's pixels writes as few bytes as the default in a quarter of the time; the
        segmented image, of a few flat colours, with the default (see
        :func:`kmseg.io.save_image`).
        A ``directory`` named like a file (``out.png``) that is not a directory already is
        refused with :class:`ParameterError` rather than made into one, and so is a
        ``directory`` that is a file or goes through one, or that cannot be made.

        Returns
        -------
        paths : dict
            Kind of output -> path written.
        """
        from .io import make_folder, save_image, write_json

        if stem is None:
            stem = Path(self.source).stem if self.source else "image"
        d = check_output_dir(directory)
        ext = ".png" if self._painted.ndim == 2 or self._painted.shape[2] <= 4 else ".tif"
        # kind -> (path, what makes the data, PNG strategy; None for the JSON)
        jobs: dict[str, tuple[Path, Callable[[], Any], str | None]] = {
            "segmented": (d / f"{stem}-segmented{ext}", lambda: self._displayable(self._painted), "default"),
            "labels": (d / f"{stem}-labels.png", self.label_image, "rle"),
            "palette": (d / f"{stem}-palette.json", self.summary, None),
        }
        if disable:
            masked = self._displayable(self.masked(disable))  # made now: a bad index is refused before any write
            jobs["masked"] = (d / f"{stem}-masked{ext}", lambda: masked, "rle")
        if masks:
            for i in range(self.k):
                jobs[f"cluster{i}"] = (d / f"{stem}-cluster{i}.png", lambda i=i: self._displayable(self.extract(i)), "rle")
        refuse_existing((p for p, _, _ in jobs.values()), force)
        make_folder(d)  # once, here: a folder that cannot be made is one error, not one per output

        def write(path: Path, make: Callable[[], Any], strategy: str | None) -> Path:
            if strategy is None:
                return write_json(path, make(), force=True)
            return save_image(path, make(), force=True, png_strategy=strategy)

        with ThreadPoolExecutor(max_workers=min(len(jobs), os.cpu_count() or 1, SAVE_THREADS)) as pool:
            futures = {kind: pool.submit(write, *job) for kind, job in jobs.items()}
            return {kind: future.result() for kind, future in futures.items()}

    @staticmethod
    def _displayable(arr: np.ndarray) -> np.ndarray:
        """Float images are written as 8-bit (values in [0, 1] scaled to 0-255)."""
        return _display.to_u8(arr) if arr.dtype.kind == "f" else arr
