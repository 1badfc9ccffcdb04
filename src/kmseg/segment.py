"""Segment an image by clustering its colours: ``segment``, ``prepare`` and ``Segmentation``."""

from __future__ import annotations

import errno
import os
import sys
import warnings
from functools import cached_property
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np

from . import _display, _engine
from ._reduce import Reduced, blank_out, cut_out, merge_histograms, paint, reduce_histogram, reduce_image, reduce_points
from .color import COLOR_SPACES, from_features, to_features
from .errors import (
    ConvergenceWarning,
    InvalidImageDataError,
    ParameterError,
    ParameterTypeError,
    cannot_write,
    counted,
    exists_already,
    user_stacklevel,
)

if TYPE_CHECKING:  # pragma: no cover
    from numpy.typing import ArrayLike

__all__ = ["Palette", "Prepared", "Segmentation", "fit_palette", "prepare", "read_image", "segment"]

ImageLike = "str | os.PathLike[str] | ArrayLike"  # numpy.typing.ArrayLike, or a PIL.Image.Image
#: The dtypes an image may have (a bool image is read as uint8 0/255 first).
_DTYPES = frozenset(
    np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int16, np.int32, np.int64,
                          np.float16, np.float32, np.float64)
)
#: Integers are clustered exactly in float64 up to this magnitude (its 53-bit significand).
EXACT_MAX = 2**53
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


def check_output_dir(directory: str | os.PathLike[str], name: str = "directory") -> Path:
    """``directory`` as a path, or :class:`ParameterError` if it :func:`looks_like_file`, or
    :class:`OutputError` if a file is in the way (:func:`kmseg.io.folder_problem`);
    :class:`ParameterTypeError` if it is not a path (``name``: the parameter, for the message)."""
    from .io import folder_problem

    if not isinstance(directory, (str, os.PathLike)):
        raise ParameterTypeError(f"{name}={directory!r} is not a path; pass a folder such as 'out'")
    path = Path(directory)
    if looks_like_file(path):
        raise ParameterError(
            f"{os.fspath(directory)!r} looks like a file name, but the outputs are several files written into a "
            f"directory; pass a directory such as {os.fspath(path.with_suffix(''))!r}"
        )
    problem = folder_problem(path)
    if problem is not None:
        raise cannot_write(problem, errno.ENOTDIR)
    return path


def output_suffix(image: np.ndarray, has_alpha: bool) -> str:
    """The suffix of an output that keeps an image's values and dtype: ``.png`` for uint8 and
    uint16 grey, RGB, and RGBA (``has_alpha``: the last of 4 channels is alpha); ``.tif`` for
    every other image (float, other integers, 2 channels, 4 bands without alpha, more bands),
    which PNG cannot hold as it is (it would show a fourth band of data as transparency).

    Examples
    --------
    >>> rgba = np.zeros((2, 2, 4), np.uint8)
    >>> output_suffix(rgba, True), output_suffix(rgba, False), output_suffix(rgba[..., :2], True)
    ('.png', '.tif', '.tif')
    """
    n = 1 if image.ndim == 2 else image.shape[2]
    png = image.dtype in (np.uint8, np.uint16) and (n in (1, 3) or (n == 4 and bool(has_alpha)))
    return ".png" if png else ".tif"


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


def check_scale_known(color_space: str, dtype: np.dtype) -> None:
    """Refuse the Lab and HSV spaces for integers other than uint8 and uint16, whose values
    have no known scale to convert from (``color_space`` checked already)."""
    if color_space != "rgb" and dtype.kind in "iu" and dtype not in (np.uint8, np.uint16):
        raise ParameterError(
            f"color_space={color_space!r} needs colours on a known scale (uint8, uint16, or float in [0, 1]); this image "
            f"is {dtype}, whose values have none: use color_space='rgb', or convert it"
        )


def check_for_image(color_space: Any, n_channels: int, alpha: bool, dtype: np.dtype, source: str | None = None) -> str:
    """The colour space checked against an image of ``n_channels`` bands (``alpha``: the last is
    alpha) and ``dtype``; alpha checked against the band count. A message names ``source``,
    the image's file, when there is one, as its other errors do."""
    try:
        if alpha and n_channels not in (2, 4):
            raise ParameterError(f"alpha=True needs a grey+alpha or RGBA image (2 or 4 channels); this image has {n_channels}")
        space = check_color_space(color_space, n_channels - (1 if alpha else 0))
        check_scale_known(space, dtype)
    except ParameterError as exc:
        if source is None:
            raise
        raise ParameterError(f"{source}: {exc}") from None
    return space


def check_scale(scale: Any) -> float | None:
    """``scale`` checked: a factor in (0, 1] as a float, or None (also for 1: every pixel)."""
    if scale is None:
        return None
    if isinstance(scale, bool) or not isinstance(scale, Real) or not 0 < scale <= 1:
        raise ParameterError(f"scale={scale!r} is out of range; pass a factor in (0, 1], or None to cluster every pixel")
    return None if scale == 1 else float(scale)


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


def _is_pil_image(obj: Any) -> bool:
    """Whether ``obj`` is a Pillow image (without importing Pillow when nobody has)."""
    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(obj, pil.Image)


#: Options that say how an image is read (:func:`read_image`), which every front end passes on to it.
READ_OPTIONS = ("max_pixels", "channel_axis", "plane")
#: Channels-first arrays that :func:`read_image` refuses without ``channel_axis``: (A, B, C)
#: with A at most this, and B and C each at least ``_FIRST_MIN`` and 4 * A.
_FIRST_MAX, _FIRST_MIN = 16, 8


def read_image(image: Any, *, max_pixels: int | None = None, channel_axis: int | None = None,
               plane: int | None = None) -> tuple[np.ndarray, bool]:
    """An image path, array or array-like as a checked array, and whether its last channel is alpha.

    Paths are read with :func:`kmseg.load_image`, which knows whether the file has alpha. A
    Pillow image is taken as :func:`kmseg.load_image` takes the file it came from (palette
    images become RGB(A), its mode says whether it has alpha). Anything else that
    ``np.asarray`` makes a real numeric array of (an ndarray, nested lists, an object with
    ``__array__``) is taken to have alpha when it has 2 or 4 channels (grey+alpha, RGBA).
    Every route is checked alike, here. The array is never changed; it is returned as it is
    unless it must be converted: bool becomes uint8 0/255 (as a bilevel file is read), and a
    non-native byte order the native one.

    Arrays are (M, N) or (M, N, C), channels last, unless ``channel_axis`` says which axis
    holds the channels (scikit-image's parameter): it is moved last, as a view, and every
    band is data, none alpha (a (4, M, N) microscopy stack is 4 bands; pass ``alpha=True``
    to the functions that take it for RGBA). Without ``channel_axis``, an array that looks
    channels-first, (A, B, C) with A <= 16 and B and C each at least 8 and 4 * A, such as
    (3, 512, 512), is refused rather than read as a 3-row image of 512 channels.

    Parameters
    ----------
    image : str, path, (M, N[, C]) array-like or PIL.Image.Image
        Of any integer or float dtype, or bool.
    max_pixels : int, optional
        For paths: the decompression-bomb limit (default: Pillow's).
    channel_axis : int, optional
        For arrays: the axis (negative counts from the end) that holds the channels or bands
        of a 3-D array. Default None: channels last, or none (grey). Files say their own
        layout, so it is refused for paths and Pillow images.
    plane : int, optional
        For paths: which plane of a TIFF stack, or frame of a multi-frame file, to read (see
        :func:`kmseg.load_image`). For arrays, index the array instead (``image[z]``).

    Returns
    -------
    array : (M, N[, C]) ndarray of an integer or float dtype
    has_alpha : bool

    Raises
    ------
    ParameterTypeError
        ``image`` is neither a path nor something numpy makes an array of numbers of, or
        ``channel_axis`` or ``plane`` is not an int.
    ParameterError
        ``channel_axis`` is out of range, given for a 2-D array, a file or a Pillow image;
        ``plane`` is out of range or given for an array.
    ImageError
        The file cannot be read (or is a stack and ``plane`` is not given), or the array has a
        bad shape (channels first without ``channel_axis``) or dtype, or NaN.

    Examples
    --------
    >>> arr, has_alpha = read_image(np.zeros((2, 2, 4), np.uint8))
    >>> arr.shape, has_alpha
    ((2, 2, 4), True)
    >>> arr, _ = read_image([[0, 1], [2, 3]])
    >>> arr.dtype, arr.tolist()
    (dtype('int64'), [[0, 1], [2, 3]])
    >>> arr, has_alpha = read_image(np.zeros((4, 16, 16), np.uint16), channel_axis=0)
    >>> arr.shape, has_alpha
    ((16, 16, 4), False)
    """
    if isinstance(image, (str, os.PathLike)):
        from .io import load_image

        _no_channel_axis(channel_axis, "a file says its own layout (TIFF channels stored as pages are read as bands)")
        pixels, alpha = load_image(image, max_pixels=max_pixels, return_alpha=True, plane=plane)
        arr = pixels if alpha is None else np.dstack([pixels, alpha])
        return _checked(arr, f"{os.fspath(image)}: "), alpha is not None
    if plane is not None:
        from .io import check_plane

        check_plane(plane)
        raise ParameterError(f"plane={plane} picks a plane of a file; for an array, index it instead (image[{plane}])")
    if _is_pil_image(image):
        from .io import _pillow_pixels

        _no_channel_axis(channel_axis, "a Pillow image is channels-last")
        arr, has_alpha = _pillow_pixels(image, png16=False)
        return _checked(arr), has_alpha
    arr = _as_array(image)
    if channel_axis is not None:
        return _checked(_channels_last(arr, channel_axis)), False
    arr = _checked(arr)
    _refuse_channels_first(arr)
    return arr, arr.ndim == 3 and arr.shape[2] in (2, 4)


def _no_channel_axis(channel_axis: Any, why: str) -> None:
    if channel_axis is not None:
        raise ParameterError(f"channel_axis={channel_axis!r} applies to arrays only, and {why}; leave channel_axis out")


def _channels_last(arr: np.ndarray, channel_axis: Any) -> np.ndarray:
    """``arr`` with its ``channel_axis`` moved last (a view), the axis checked against its shape."""
    if isinstance(channel_axis, (bool, np.bool_)) or not isinstance(channel_axis, Integral):
        raise ParameterTypeError(
            f"channel_axis={channel_axis!r} is not an int; pass the axis that holds the channels (0 for a (C, H, W) "
            "array), or None for channels last"
        )
    axis = int(channel_axis)
    if arr.ndim == 2:
        raise ParameterError(
            f"channel_axis={axis} was given for an image of shape {arr.shape}, which has no channel axis (a 2-D grey "
            "image); leave channel_axis out"
        )
    if arr.ndim != 3:
        raise ParameterError(
            f"channel_axis={axis} was given for an image of shape {arr.shape}; kmseg reads 3-D arrays with one channel "
            "axis, so pick one plane of a stack first (image[0])"
        )
    if not -3 <= axis < 3:
        raise ParameterError(
            f"channel_axis={axis} is out of range for an image of shape {arr.shape}; pass an axis from -3 to 2 "
            "(0 for channels first)"
        )
    return np.moveaxis(arr, axis, -1)


def _refuse_channels_first(arr: np.ndarray) -> None:
    """Refuse an array that looks channels-first (see :func:`read_image`)."""
    if arr.ndim != 3:
        return
    a, b, c = arr.shape
    if a <= _FIRST_MAX and min(b, c) >= max(_FIRST_MIN, 4 * a):
        raise InvalidImageDataError(
            f"image has shape {arr.shape}, which looks channels-first ({a} channels of {b} x {c}); kmseg reads "
            f"(H, W, C): pass channel_axis=0 (or np.moveaxis(image, 0, -1)), or channel_axis=-1 if its last axis "
            f"really holds {c} channels"
        )


def _as_array(image: Any) -> np.ndarray:
    """``image`` itself if it is an ndarray, else ``np.asarray(image)`` when that is a real numeric array."""
    if isinstance(image, np.ndarray):
        return image
    fix = "pass a file path, or an (H, W[, C]) array of numbers (ndarray, nested lists, PIL image)"
    try:
        arr = np.asarray(image)
    except (ValueError, TypeError) as exc:  # ragged nested lists
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ParameterTypeError(
            f"image of type {type(image).__name__} is not supported: numpy cannot make an array of it ({why}); {fix}"
        ) from None
    if arr.dtype.kind not in "biuf":
        raise ParameterTypeError(
            f"image of type {type(image).__name__} is not supported: numpy makes an array of dtype {arr.dtype} of it, "
            f"not of numbers; {fix}"
        )
    return arr


def _checked(arr: np.ndarray, where: str = "") -> np.ndarray:
    """An image array checked once for every route into kmseg (``where``: the file's name, to
    begin the messages with)."""
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise InvalidImageDataError(
            f"{where}image has shape {arr.shape}; pass an (H, W) grey or (H, W, C) colour image with at least one pixel"
        )
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype.newbyteorder("=") not in _DTYPES:
        raise InvalidImageDataError(
            f"{where}image dtype {arr.dtype} is not supported; convert it to an integer or float dtype "
            "(for complex values, np.abs(image) or image.real)"
        )
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InvalidImageDataError(f"{where}image contains NaN or infinite values; replace them (np.nan_to_num) first")
    return arr


def _check_exact(colour: np.ndarray, where: str = "") -> None:
    """Refuse 64-bit integer colours beyond 2**53 in magnitude, which float64 cannot hold exactly
    (alpha is not clustered, and may be the dtype's maximum)."""
    if colour.dtype.itemsize == 8 and colour.dtype.kind in "iu":
        lo, hi = int(colour.min()), int(colour.max())
        if lo < -EXACT_MAX or hi > EXACT_MAX:
            far = lo if -lo > hi else hi
            bits = abs(far).bit_length() - 53
            raise InvalidImageDataError(
                f"{where}image values reach {far}, too large to cluster exactly (kmseg computes in float64, exact "
                f"up to 2**53 = {EXACT_MAX}); rescale them first, for example image // 2**{bits}"
            )


def _vmax(dtype: np.dtype) -> float | None:
    return float(np.iinfo(dtype).max) if dtype.kind == "u" else None


def _units(dtype: np.dtype) -> tuple[int, float | None]:
    """(offset, vmax) of an image of ``dtype``: what its values are shifted by to be clustered
    (:func:`working_dtype`), and the scale the Lab and HSV spaces divide them by (None: floats)."""
    work, offset = working_dtype(dtype)
    return offset, _vmax(work)


def _features_of(centers: np.ndarray, color_space: str, dtype: np.dtype) -> np.ndarray:
    """(k, D) float64 centres in the clustering space, of (k, C) centres in the units of an
    image of ``dtype`` (:meth:`Prepared.features_of`, without the image)."""
    offset, vmax = _units(dtype)
    return to_features(np.asarray(centers, dtype=np.float64) + offset, color_space, vmax).astype(np.float64)


#: Signed integers clustered as their unsigned twin: the value plus half the range (the sign bit
#: flipped), exact and undone exactly, so that int8 and int16 take the 8- and 16-bit paths.
_SHIFTED = {np.dtype(np.int8): (np.dtype(np.uint8), 128), np.dtype(np.int16): (np.dtype(np.uint16), 32768)}


def working_dtype(dtype: np.dtype) -> tuple[np.dtype, int]:
    """The dtype an image of ``dtype`` is clustered in, and what is added to its values to get there.

    uint8, uint16 and floats are clustered as they are; int8 and int16 shifted to uint8 and
    uint16 (+128, +32768); other integers (int32, uint32, int64, uint64, whose values
    :func:`prepare` has checked to be at most 2**53 in magnitude) as float64. Every one of
    these is exact, so the centres and labels are those of the values themselves.

    Examples
    --------
    >>> working_dtype(np.dtype(np.int16))
    (dtype('uint16'), 32768)
    >>> working_dtype(np.dtype(np.int32))
    (dtype('float64'), 0)
    """
    if dtype in _SHIFTED:
        return _SHIFTED[dtype]
    if dtype.kind in "iu" and dtype not in (np.uint8, np.uint16):
        return np.dtype(np.float64), 0
    return dtype, 0


def to_working(values: np.ndarray) -> np.ndarray:
    """``values`` in their :func:`working_dtype`: themselves when it is their own dtype, else a new array."""
    work, offset = working_dtype(values.dtype)
    if work == values.dtype:
        return values
    if offset:
        return np.bitwise_xor(values.view(work), work.type(offset))
    return values.astype(work)


def from_working(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The inverse of :func:`to_working` for values that came from ``dtype`` (``values`` may be reused)."""
    work, offset = working_dtype(dtype)
    if work == dtype:
        return values
    if offset:
        np.bitwise_xor(values, work.type(offset), out=values)
        return values.view(dtype)
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
        plane: int | None = None,
    ) -> None:
        self.image = image  # never modified
        self.source = source
        #: The plane of ``source`` (a stack's, an animation's frame) that ``image`` is, or None.
        self.plane = plane
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
        self.n_channels = pixels.shape[2]
        self.offset = working_dtype(image.dtype)[1]
        #: (H, W, C) colour channels in their working dtype: a view of ``image``, or a converted
        #: copy for the integers that are clustered as another dtype (``working_dtype``).
        self.pixels = to_working(pixels)
        self.vmax = _vmax(self.pixels.dtype)
        self.reduced = reduce_image(self.pixels, self.mask, color_space, self.vmax)
        self.scale = scale
        self.fit_reduced = self.reduced if scale is None else self._reduce_scaled(scale)

    @classmethod
    def from_reduced(cls, reduced: Reduced, *, color_space: str, n_channels: int, vmax: float | None,
                     offset: int = 0) -> Prepared:
        """A Prepared made from points reduced elsewhere (the Dask path sums histograms region
        by region), of values shifted by ``offset`` (``working_dtype``). It has no pixels:
        :meth:`fit` works, :meth:`segment` does not."""
        self = cls.__new__(cls)
        self.image = None
        self.source = None
        self.plane = None
        self.color_space = color_space
        self.shape = None
        self.dtype = None
        self.has_alpha = False
        self.mask = None
        self.pixels = None
        self.n_channels = n_channels
        self.offset = offset
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
        if self.pixels.dtype != self.dtype:
            extra += self.pixels.nbytes  # a converted copy (``working_dtype``)
        return self.image.nbytes + self.reduced.nbytes + extra

    @cached_property
    def display_range(self) -> tuple[float, float]:
        """The values of the image shown as black and as white (:func:`kmseg._display.display_range`),
        computed once; every segmentation of this image shows its colours on it."""
        return _display.display_range(self.image, self.has_alpha)

    def centres_of(self, features: np.ndarray) -> np.ndarray:
        """(k, C) float64 centres in the input's units, of centres given in the clustering space."""
        centres = from_features(features, self.color_space, self.vmax)
        if self.offset:
            centres -= self.offset
        return centres

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
                stacklevel=user_stacklevel(),
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
        return self.features_of(init)

    def features_of(self, centers: np.ndarray) -> np.ndarray:
        """(k, D) float64 centres in the clustering space, of (k, C) centres in the input's units
        (the inverse of :meth:`centres_of`)."""
        features = to_features(np.asarray(centers, dtype=np.float64) + self.offset, self.color_space, self.vmax)
        return features.astype(np.float64)

    def segment(self, k: int = 5, **options: Any) -> Segmentation:
        """Segment the prepared image into ``k`` clusters; options as in :func:`segment`."""
        res, point_labels, inertia, _ = self.fit(k, **options)
        return self._result(self.centres_of(res.centers), res.centers, point_labels, inertia, res.n_iter, res.converged)

    def apply(self, centers: ArrayLike) -> Segmentation:
        """Label the prepared image with given centres, without fitting: every pixel gets its
        nearest centre in the clustering space (:attr:`color_space`).

        scikit-learn's ``predict``, for a whole image: cluster ``i`` is the ``i``-th centre,
        whatever the image holds, so the labels of several images mean the same colours. The
        centres are kept as they are (not moved to the mean of their pixels), and a centre no
        pixel is nearest to stays, with a count of 0. Ties go to the lower index, as in every
        fit. The result is a normal :class:`Segmentation` (``labels``, ``image()``, ``save()``...)
        with ``centers`` the centres given, ``n_iter`` 0, and ``converged`` True when the centres
        are a Lloyd fixed point of this image: moving each to the mean of its pixels would change
        no label, so :func:`segment` started from them would stop at once with these labels (as
        a converged fit's centres are, on the image they were fitted on).

        Parameters
        ----------
        centers : (k, C) array-like
            In the input's units and channel order, as :attr:`Segmentation.centers` holds them
            (C colour channels, alpha not counted); for an integer image, within its dtype's
            range. For another image's centres with their colour space and units checked, use
            :meth:`Segmentation.apply` or :meth:`Palette.apply`.

        Returns
        -------
        Segmentation

        Raises
        ------
        ParameterError, ParameterTypeError
            ``centers`` is not a (k, C) array of finite numbers, has another number of channels
            than the image, or lies outside an integer image's range (another image's units).

        Examples
        --------
        >>> img = np.array([[[250, 0, 0], [240, 10, 0]], [[0, 0, 200], [0, 0, 210]]], np.uint8)
        >>> seg = prepare(img).apply([[255, 0, 0], [0, 255, 0], [0, 0, 255]])
        >>> seg.labels.tolist(), seg.counts.tolist(), seg.n_iter
        ([[0, 0], [2, 2]], [2, 0, 2], 0)
        >>> seg.image()[1, 1].tolist()   # painted with the centres given
        [0, 0, 255]
        """
        if self.image is None:
            raise ParameterError("this Prepared holds no pixels (it was made from points reduced elsewhere); "
                                 "prepare the image itself to apply centres to it")
        return Palette._named("centers", centers, color_space=self.color_space, dtype=self.dtype)._label(self)

    def _apply(self, features: np.ndarray, centers: np.ndarray, *, n_iter: int = 0,
               converged: bool | None = None) -> Segmentation:
        """The image labelled with ``features``, centres in the clustering space (``centers``:
        the same in the input's units), which are not refit (see :meth:`apply`). ``n_iter`` and
        ``converged``: a shared palette's fit's, to report them instead of 0 and the fixed-point test."""
        red = self.reduced
        res = _engine.label_with(red.points, red.weights, features, fixed_point=converged is None)
        return self._result(centers, features, res.labels, res.inertia, n_iter,
                            res.converged if converged is None else converged)

    def _result(self, centers: np.ndarray, features: np.ndarray, point_labels: np.ndarray, inertia: float,
                n_iter: int, converged: bool) -> Segmentation:
        """The Segmentation of centres (in the input's units, and ``features`` in the clustering
        space) and the labels of :attr:`reduced`'s points: every pixel labelled and painted."""
        k = centers.shape[0]
        red = self.reduced
        counts = _engine.cluster_weights(point_labels, red.weights, k)
        colors = _display.to_dtype(centers, self.dtype)
        n = self.n_channels
        bands = self.shape[2] if self.image.ndim == 3 else 1
        if self.pixels.dtype == self.dtype:
            out = np.empty(self.pixels.shape[:2] + (bands,), dtype=self.dtype)
            labels = paint(self.pixels, self.mask, red, point_labels, colors, out)
        else:
            # Painted in the working dtype, then brought back: exact, as the colours are whole
            # numbers of the input's dtype and transparent pixels keep their own values.
            work = np.empty(self.pixels.shape, dtype=self.pixels.dtype)
            labels = paint(self.pixels, self.mask, red, point_labels, to_working(colors), work)
            work = from_working(work, self.dtype)
            if bands == n:
                out = work
            else:
                out = np.empty(self.pixels.shape[:2] + (bands,), dtype=self.dtype)
                out[..., :n] = work
        if bands > n:
            out[..., n:] = self.image[..., n:]
        painted = out[..., 0] if self.image.ndim == 2 else out
        return Segmentation(
            labels=labels,
            centers=centers,
            inertia=inertia,
            n_iter=n_iter,
            counts=counts,
            converged=converged,
            color_space=self.color_space,
            original=self.image,
            painted=painted,
            n_channels=self.n_channels,
            source=self.source,
            display_range=self.display_range,
            space_centers=features,
            plane=self.plane,
        )


def _check_inferred_alpha(arr: np.ndarray) -> None:
    """Warn when an array's last band, taken as alpha for its channel count alone, is never
    fully opaque: it is more likely a band of data (RGB + near infrared, two stains), which
    would be dropped from the features and hide the pixels where it is 0."""
    n = arr.shape[2]
    opaque = _display.opaque_value(arr.dtype)  # floats: alpha in [0, 1]
    top = arr[..., -1].max()
    if 0 < top < opaque:  # (all 0: an image with nothing to cluster, which is an error of its own)
        kind = "grey+alpha" if n == 2 else "RGBA"
        warnings.warn(
            f"the last of {n} channels is taken as alpha (a {n}-channel array is read as {kind}), but no pixel is "
            f"fully opaque (its maximum is {top:g}, not {opaque:g}); pass alpha=False to cluster all {n} channels, "
            "or alpha=True to keep it as alpha",
            UserWarning,
            stacklevel=user_stacklevel(),
        )


def prepare(
    image: ImageLike,
    *,
    color_space: str = "rgb",
    scale: float | None = None,
    alpha: bool | None = None,
    max_pixels: int | None = None,
    channel_axis: int | None = None,
    plane: int | None = None,
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
    arr, space, alpha, source = _read_checked(image, color_space, alpha, max_pixels, channel_axis, plane)
    scale = check_scale(scale)
    return Prepared(arr, color_space=space, alpha=alpha, scale=scale, source=source, plane=_plane_of(source, plane))


def _plane_of(source: str | None, plane: int | None) -> int | None:
    """The plane to record of an image read from ``source`` with ``plane=`` (none for arrays)."""
    return None if source is None else plane


def _read_checked(image: ImageLike, color_space: Any, alpha: bool | None, max_pixels: int | None,
                  channel_axis: int | None = None, plane: int | None = None) -> tuple[np.ndarray, str, bool, str | None]:
    """What :func:`prepare` reads and checks before it reduces the image: the array, the colour
    space checked against it, whether its last channel is alpha, and its file (or None)."""
    arr, has_alpha = read_image(image, max_pixels=max_pixels, channel_axis=channel_axis, plane=plane)
    source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    n_channels = 1 if arr.ndim == 2 else arr.shape[2]
    if alpha is None:
        alpha = has_alpha
        if alpha and source is None and not _is_pil_image(image):  # taken from the channel count alone
            _check_inferred_alpha(arr)
    space = check_for_image(color_space, n_channels, bool(alpha), arr.dtype, source)
    _check_exact(arr[..., :-1] if alpha else arr, f"{source}: " if source else "")
    return arr, space, bool(alpha), source


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
    channel_axis: int | None = None,
    plane: int | None = None,
) -> Segmentation:
    """Segment an image into ``k`` clusters of colour with exact K-means.

    The result is the fixed point that Lloyd's algorithm on every pixel reaches: each centre is
    the mean of its pixels, and each pixel is labelled with its nearest centre. 8-bit images
    with up to 3 channels are clustered through their exact colour histogram (unique colours
    weighted by their counts), which gives the same centres and labels as all the pixels, much
    faster. Other images run on their pixels.

    Every integer and float dtype is clustered in its own units: int8 and int16 as uint8 and
    uint16 shifted by half their range (so int16 grey takes the 16-bit histogram path), wider
    integers as float64, which holds them exactly up to 2**53 (see :func:`working_dtype`). A
    bool image is read as uint8 0/255.

    Parameters
    ----------
    image : str, path, (M, N[, C]) array-like or PIL.Image.Image
        A file (see :func:`kmseg.load_image`), or an array of any integer or float dtype, or
        anything ``np.asarray`` makes one of (nested lists, a Pillow image; see
        :func:`read_image`). The Lab and HSV spaces need uint8, uint16 or float in [0, 1].
        A 2- or 4-channel array is grey+alpha or RGBA. Channels are taken as RGB: convert
        OpenCV's BGR with ``cv2.cvtColor(img, cv2.COLOR_BGR2RGB)``.
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
        array given a ``channel_axis``, False (every band is data); for any other
        array, True for 2 and 4 channels (grey+alpha, RGBA), with a ``UserWarning`` when
        that last channel is nowhere fully opaque (the dtype's maximum, or 1.0 for floats). Pass ``alpha=False``
        for a 2- or 4-band array that has no alpha. Pixels whose alpha is 0 get label -1 and are not
        clustered or counted.
    max_pixels : int, optional
        For paths: the decompression-bomb limit (default: Pillow's).
    channel_axis : int, optional
        For arrays: the axis that holds the channels (scikit-image's meaning; 0 for a
        (C, M, N) microscopy or satellite stack), moved last. Every band is then data, none
        alpha, unless ``alpha=True``. The result is channels last: ``image()`` is (M, N, C).
        Default None: channels last, and an array that looks channels-first is refused (see
        :func:`read_image`).
    plane : int, optional
        For paths: which plane of a TIFF stack (Z, T...) or frame of an animation to segment,
        from 0 (see :func:`kmseg.load_image`). A TIFF stack is refused without it.

    Returns
    -------
    Segmentation

    Raises
    ------
    ParameterError, ParameterTypeError
        A parameter is out of range or of the wrong type.
    ImageError
        The file is missing, not an image, corrupt, too large, a stack without ``plane``, or
        the array looks channels-first, or holds NaN or 64-bit integers beyond 2**53 in magnitude.

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
    >>> ct = np.array([[-1000, -990], [400, 410]], np.int16)   # any dtype, in its own units
    >>> seg = segment(ct, k=2, seed=0)
    >>> sorted(seg.centers[:, 0].tolist()), seg.image().dtype
    ([-995.0, 405.0], dtype('int16'))
    >>> bands = np.zeros((4, 8, 8), np.uint16); bands[:, :, 4:] = 900   # 4 bands, channels first
    >>> seg = segment(bands, k=2, seed=0, channel_axis=0)
    >>> seg.centers.shape, seg.image().shape
    ((2, 4), (8, 8, 4))
    """
    prep = prepare(image, color_space=color_space, scale=scale, alpha=alpha, max_pixels=max_pixels,
                   channel_axis=channel_axis, plane=plane)
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


def _to_rgb8(colors: np.ndarray, vrange: tuple[float, float]) -> np.ndarray:
    """(k, C) colours in input units -> (k, 3) uint8 for display on the image's display range
    (:func:`kmseg._display.display_range`); grey replicated, extra bands dropped."""
    c = _display.to_u8(np.asarray(colors, dtype=np.float64), vrange)
    if c.shape[1] < 3:
        c = np.repeat(c[:, :1], 3, axis=1)
    return np.ascontiguousarray(c[:, :3])


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
        True when the final run stopped because no label changed. For a segmentation made
        with given centres (:meth:`apply`, :meth:`Prepared.apply`, :meth:`Palette.apply`):
        True when they are a Lloyd fixed point of the image (moving each to the mean of its
        pixels would change no label).
    space_centers : (k, D) ndarray of float64
        The centres in the clustering space, which the pixels were labelled by (``centers``
        are converted from them): for ``"rgb"`` the channels as clustered, the same as
        ``centers`` but for int8 and int16, which are clustered shifted to uint8 and uint16
        (+128, +32768; see :func:`working_dtype`); CIELAB (L, a, b) for ``"lab"``, whose
        ``centers`` are clipped to the RGB gamut; (S cos H, S sin H, V) for ``"hsv"``.
    display_range : (float, float)
        The input values shown as black and as white in the palette and every picture of the
        result (see :func:`kmseg._display.display_range`).
    source : str or None
        The file the image was read from, or None for an array.
    plane : int or None
        The plane of ``source`` (of a TIFF stack, or an animation's frame) that was segmented,
        when ``plane=`` picked one; it is in :meth:`summary` and in :meth:`save`'s file names.
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
        display_range: tuple[float, float] | None = None,
        space_centers: np.ndarray | None = None,
        plane: int | None = None,
    ) -> None:
        self.labels = labels
        self.centers = centers
        self.inertia = float(inertia)
        self.n_iter = int(n_iter)
        self.counts = counts
        self.converged = bool(converged)
        self.color_space = color_space
        self.source = source
        self.plane = plane
        self._original = original
        self._painted = painted
        self._n_channels = n_channels
        self._display_range = display_range
        if space_centers is None:  # not known: converted from the centres
            space_centers = _features_of(centers, color_space, original.dtype)
        self.space_centers = space_centers

    @property
    def display_range(self) -> tuple[float, float]:
        """The input values shown as black and as white (computed from the input on first use,
        unless given)."""
        if self._display_range is None:
            self._display_range = _display.display_range(self._original, self._has_alpha)
        return self._display_range

    @property
    def _has_alpha(self) -> bool:
        """Whether the input's last band is alpha (it has more bands than were clustered)."""
        return self._original.ndim == 3 and self._original.shape[2] > self._n_channels

    @property
    def k(self) -> int:
        """Number of clusters (fewer than asked when the image has fewer distinct colours)."""
        return int(self.centers.shape[0])

    def __repr__(self) -> str:
        h, w = self.labels.shape
        return f"Segmentation(k={self.k}, shape=({h}, {w}), color_space={self.color_space!r}, inertia={self.inertia:.6g})"

    def _repr_html_(self) -> str:
        """How Jupyter shows a segmentation: the summary, a thumbnail of the segmented image (its
        long side at most 480 pixels, on the :attr:`display_range`, alpha kept) and the palette
        (:meth:`palette`: colour, hex, share and cluster index, largest share first), in one
        self-contained HTML snippet (see :func:`kmseg._notebook.segmentation_html`)."""
        from ._notebook import segmentation_html

        return segmentation_html(self)

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
            Colour to paint them with, in the input's units. Alpha is kept. The default, 0, is
            black for uint8, uint16 and floats in [0, 1]; on the :attr:`display_range` of other
            images (an int16 CT from -1024 to 3000) it may be any grey. The 8-bit pictures of a
            masked image (the web page's ``masked.png``, :func:`kmseg.plot.masks`, the report)
            show hidden pixels black whatever the dtype: they fill with the range's minimum.
        """
        idx = [disable] if isinstance(disable, Integral) else list(disable)
        idx = [self._check_index(i, "disable") for i in idx]
        fill_arr = np.asarray(fill, dtype=np.float64).reshape(-1)
        if fill_arr.size not in (1, self._n_channels):
            raise ParameterError(
                f"fill has {fill_arr.size} values; pass one number or {self._n_channels} (one per colour channel)"
            )
        out = self._original.copy()
        color = _display.to_dtype(np.broadcast_to(fill_arr, (self._n_channels,)), out.dtype)
        return blank_out(out, self.labels, idx, color, self.k)

    def _masked_for_display(self, disable: Sequence[int] | int) -> np.ndarray:
        """:meth:`masked` for an 8-bit picture on the :attr:`display_range`: hidden pixels set to
        the range's minimum, which shows black whatever the dtype (0 is dark grey on a CT's
        -1024..3000). The same image as ``masked(disable)`` when the range starts at 0 (uint8,
        uint16, floats in [0, 1])."""
        return self.masked(disable, fill=self.display_range[0])

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

        The colours are the centres as :meth:`image` paints them (rounded, for an integer
        dtype), on the input's :attr:`display_range`: uint8 and uint16 on
        their full range, floats in [0, 1] on 0-1, any other image from its minimum (black) to
        its maximum (white). Grey is replicated to RGB; of more bands the first three are used.

        Examples
        --------
        >>> img = np.zeros((2, 2, 3), np.uint8); img[0, 0] = (255, 0, 0)
        >>> [(p["hex"], p["count"]) for p in segment(img, k=2, seed=0).palette()]
        [('#000000', 3), ('#ff0000', 1)]
        >>> ct = np.array([[-1000, -1000], [1000, 0]], np.int16)  # min..max shown as black..white
        >>> sorted(p["hex"] for p in segment(ct, k=3, seed=0).palette())
        ['#000000', '#808080', '#ffffff']
        """
        # The colours the painted image holds (rounded to an integer dtype), shown as its
        # previews show them: a swatch and the pixels it stands for never differ by a level.
        rgb = _to_rgb8(_display.to_dtype(self.centers, self._original.dtype), self.display_range)
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
            **({"plane": self.plane} if self.plane is not None else {}),
            "width": w,
            "height": h,
            "k": self.k,
            "color_space": self.color_space,
            "dtype": self._original.dtype.name,
            "inertia": self.inertia,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "centers": self.centers.tolist(),
            "space_centers": self.space_centers.tolist(),
            "palette": self.palette(),
        }

    def apply(self, image: ImageLike, *, alpha: bool | None = None, max_pixels: int | None = None,
              channel_axis: int | None = None, plane: int | None = None) -> Segmentation:
        """These clusters on another image: every pixel labelled with its nearest centre, no fitting.

        scikit-learn's ``km.fit(img1); km.predict(img2)``: label ``i`` of the result is cluster
        ``i`` of this segmentation, whatever the other image holds, so a stack or a time series
        labelled so shares one meaning of its labels. The centres are not refit; a cluster no
        pixel of ``image`` is nearest to stays, with a count of 0. The distances are those of
        this segmentation's :attr:`color_space`, measured to :attr:`space_centers`, so applying a
        converged segmentation to its own image gives back its labels. ``image`` must have as
        many colour channels, and for ``"rgb"`` the same units: the same dtype (any float dtype
        for a float one). Lab and HSV are on a fixed scale, so there a uint8 palette labels a
        uint16 image too, its centres converted to that image's units. The result is a normal
        :class:`Segmentation`: ``n_iter`` is 0 and ``converged`` says whether the centres are a
        Lloyd fixed point of ``image`` (see :meth:`Prepared.apply`). The same labels come from
        this segmentation's ``NAME-palette.json`` (:func:`kmseg.io.read_palette`,
        ``kmseg segment --palette``).

        Parameters
        ----------
        image : str, path, (M, N[, C]) array-like or PIL.Image.Image
            As :func:`segment` takes it.
        alpha, max_pixels, channel_axis, plane
            As in :func:`segment`.

        Returns
        -------
        Segmentation

        Raises
        ------
        ParameterError
            ``image`` has another number of colour channels, or other units.
        ImageError
            As :func:`segment` raises it.

        Examples
        --------
        >>> day = np.zeros((2, 4, 3), np.uint8); day[:, 2:] = (200, 30, 30)   # black | red
        >>> seg = segment(day, k=2, seed=0)
        >>> night = np.array([[[20, 20, 20], [150, 40, 20]]], np.uint8)      # dark grey, dark red
        >>> later = seg.apply(night)
        >>> later.labels.tolist() == [[seg.labels[0, 0], seg.labels[0, 3]]], later.n_iter
        (True, 0)
        >>> np.array_equal(seg.apply(day).labels, seg.labels), seg.apply(day).converged
        (True, True)
        """
        return self._as_palette().apply(image, alpha=alpha, max_pixels=max_pixels, channel_axis=channel_axis,
                                        plane=plane)

    def _as_palette(self) -> Palette:
        return Palette._named("this segmentation's palette", self.centers, color_space=self.color_space,
                              dtype=self._original.dtype, space_centers=self.space_centers)

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

        ``stem`` defaults to the source file's stem (``{stem}-plane{N}`` for a plane picked
        with ``plane=N``), or ``image`` for an array.
        Files are ``{stem}-segmented.png``, ``{stem}-labels.png`` and ``{stem}-palette.json``;
        with ``disable``, also ``{stem}-masked.png``; with ``masks``, ``{stem}-cluster{i}.png``
        for every cluster (RGBA cut-outs). The recoloured and the masked image keep the input's
        values and dtype: they are PNG for uint8 and uint16 grey, RGB and RGBA images, and
        TIFF (``{stem}-segmented.tif``, ``{stem}-masked.tif``) for every other image (float,
        other integers, 2 channels, 4 bands without alpha, more bands), since PNG cannot hold
        those (see :func:`output_suffix`); a TIFF marks its last band as alpha only when the
        input's is. The cut-outs are
        always PNG: 8-bit, on the input's :attr:`display_range`, for images that are not
        uint8 or uint16.

        The outputs are written as one set (:func:`kmseg.io.write_files`): every target is
        checked first, each file goes to a temporary name, and they are renamed only when all
        are written; if any of them fails, none is left. If any target exists and ``force``
        is False, :class:`OutputExistsError` is raised before anything is written.
        The images are made and encoded a few at a time, side by side (encoding a PNG lets
        other threads run), so the cut-outs are never all in memory at once. The masked image,
        the cut-outs and the label map are compressed with zlib's run-length strategy, which
        on a photo's pixels writes as few bytes as the default in a quarter of the time; the
        segmented image, of a few flat colours, with the default (see
        :func:`kmseg.io.save_image`).
        A ``directory`` named like a file (``out.png``) that is not a directory already is
        refused with :class:`ParameterError` rather than made into one. A ``directory`` that is
        a file or goes through one, or that cannot be made or written in (no permission, a
        read-only or full disk), raises :class:`OutputError`: an ``OSError`` (a
        ``PermissionError`` when permission is denied) that is also a :class:`ParameterError`.

        Returns
        -------
        paths : dict
            Kind of output -> path written.
        """
        from .io import encode_image, json_bytes, same_file, write_files

        if stem is None:
            stem = Path(self.source).stem if self.source else "image"
            if self.plane is not None:  # the planes of a stack saved into one folder keep their own
                stem = f"{stem}-plane{self.plane}"
        d = check_output_dir(directory)
        ext = output_suffix(self._painted, self._has_alpha)

        def image(path: Path, make: Callable[[], np.ndarray], strategy: str,
                  alpha: bool | None = None) -> tuple[Path, Callable[[], bytes]]:
            return path, lambda: encode_image(path, make(), png_strategy=strategy, alpha=alpha)

        # kind -> (path, what makes its bytes)
        files: dict[str, tuple[Path, Callable[[], bytes]]] = {
            "segmented": image(d / f"{stem}-segmented{ext}", lambda: self._painted, "default", self._has_alpha),
            "labels": image(d / f"{stem}-labels.png", self.label_image, "rle"),
            "palette": (d / f"{stem}-palette.json", lambda: json_bytes(self.summary())),
        }
        if disable:
            masked = self.masked(disable)  # made now: a bad index is refused before any write
            files["masked"] = image(d / f"{stem}-masked{ext}", lambda: masked, "rle", self._has_alpha)
        if masks:
            def cut(i: int) -> Callable[[], np.ndarray]:
                return lambda: self._displayable(self.extract(i))

            for i in range(self.k):
                files[f"cluster{i}"] = image(d / f"{stem}-cluster{i}.png", cut(i), "rle")
        # The source first: with or without force, it is never overwritten (so the message must
        # not offer force=True, as refuse_existing's would).
        for p, _ in files.values():
            if same_file(p, self.source):
                raise ParameterError(f"{p} is the image this segmentation was made from; inputs are never "
                                     "overwritten: pass another stem or directory")
        refuse_existing((p for p, _ in files.values()), force)
        return write_files(files, force=force, threads=min(len(files), os.cpu_count() or 1, SAVE_THREADS))

    def _displayable(self, cut: np.ndarray) -> np.ndarray:
        """A cut-out as PNG holds it: as it is for uint8 and uint16, else 8-bit on the input's display range."""
        if cut.dtype in (np.uint8, np.uint16):
            return cut
        return _display.to_u8(cut, self.display_range, has_alpha=True)


# --------------------------------------------------------------------------- given centres


#: Most colours a palette may have: label maps are uint16 from 255 clusters on, and their
#: maximum, 65535, marks transparent pixels.
MAX_COLOURS = 65535


def _same_units(a: np.dtype, b: np.dtype) -> bool:
    """Whether values of dtypes ``a`` and ``b`` are in the same units: one dtype, or two floats."""
    return a == b or (a.kind == "f" and b.kind == "f")


def _dtype_of(dtype: Any) -> np.dtype | None:
    if dtype is None:
        return None
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in _DTYPES:
        raise ParameterError(f"dtype={dtype!r} is not an image dtype; pass the dtype of the images the centres "
                             "are in the units of, such as 'uint8', 'uint16' or 'float32', or None")
    return dt


def _centre_array(values: Any, name: str) -> np.ndarray:
    """``values`` as a (k, C) float64 array of finite numbers, or the error naming ``name``."""
    fix = "pass a (k, C) array: one row of C colour values per centre"
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        raise ParameterTypeError(f"{name} is not an array of numbers (numpy cannot make one of it); {fix}") from None
    if arr.dtype.kind not in "iuf":
        raise ParameterTypeError(f"{name} has dtype {arr.dtype}, not numbers; {fix}")
    if arr.ndim != 2 or 0 in arr.shape:
        raise ParameterError(f"{name} has shape {arr.shape}; {fix}")
    if arr.shape[0] > MAX_COLOURS:
        raise ParameterError(f"{name} has {arr.shape[0]} centres; a label map holds at most {MAX_COLOURS}: pass fewer")
    out = np.array(arr, dtype=np.float64)
    if not np.isfinite(out).all():
        raise ParameterError(f"{name} contains NaN or infinite values; pass finite centres")
    return out


class Palette:
    """Colour centres to label images with, as they are: nothing is fitted.

    Label ``i`` is the ``i``-th centre on every image, so the labels of a stack, a time series
    or a batch all mean the same colours: scikit-learn's ``km.predict(img2)``, Pillow's
    ``im.quantize(palette=...)``, GIMP's "use custom palette". :func:`kmseg.io.read_palette`
    reads one from a palette file (kmseg's ``NAME-palette.json``; a ``.gpl``, ``.ase`` or
    ``.css`` file, or a palette image); :meth:`Segmentation.apply` and :meth:`Prepared.apply` label with one. Or
    make one of your own colours: ``Palette([[255, 0, 0], [0, 0, 255]], dtype="uint8")``.

    Parameters
    ----------
    centers : (k, C) array-like
        The centres in label order, in the units of ``dtype``: C colour channels, no alpha.
    color_space : {"rgb", "lab", "hsv"}, optional
        The space the centres were clustered in, whose distances label the pixels. None: any,
        chosen when the palette is applied (default ``"rgb"``).
    dtype : numpy dtype or its name, optional
        The units of ``centers``: the dtype of the images they were fitted on. In ``"rgb"`` an
        image must have the same dtype (or any float dtype, for a float one); Lab and HSV are
        on a fixed scale, so there any dtype they take will do. None: not known, and then an
        integer image only checks that the centres lie in its range.
    space_centers : (k, D) array-like, optional
        The same centres in ``color_space``'s clustering space, exactly, as
        :attr:`Segmentation.space_centers` holds them (a palette JSON has them): Lab centres
        converted to RGB are clipped to its gamut, and int8 and int16 ones shifted back and
        rounded, so only these give back a fit's own labels. Default: converted from
        ``centers``. Used only with ``color_space`` and ``dtype`` given.
    display : bool
        The centres are 8-bit display colours (what a .gpl, .ase, .css or palette .png holds), which
        label 8-bit RGB and RGBA images only.
    source : str, optional
        The file the palette was read from, named in messages.

    Attributes
    ----------
    centers : (k, C) ndarray of float64
    space_centers : (k, D) ndarray of float64 or None
    color_space : str or None
    dtype : numpy dtype or None
    display : bool
    source : str or None
    k : int

    Raises
    ------
    ParameterError, ParameterTypeError
        ``centers`` is not a (k, C) array of finite numbers (or lies outside an integer
        ``dtype``'s range), or an argument is unknown or does not fit the others.

    Examples
    --------
    >>> pal = Palette([[255, 0, 0], [0, 0, 255], [0, 255, 0]], dtype="uint8")
    >>> img = np.array([[[200, 20, 20], [10, 10, 90]]], np.uint8)
    >>> seg = pal.apply(img)
    >>> seg.labels.tolist(), seg.counts.tolist(), seg.image().tolist()
    ([[0, 1]], [1, 1, 0], [[[255, 0, 0], [0, 0, 255]]])
    """

    def __init__(
        self,
        centers: ArrayLike,
        *,
        color_space: str | None = None,
        dtype: Any = None,
        space_centers: ArrayLike | None = None,
        display: bool = False,
        source: str | None = None,
    ) -> None:
        self.centers = _centre_array(centers, "centers")
        k, C = self.centers.shape
        if color_space is not None:
            if not isinstance(color_space, str) or color_space.lower() not in COLOR_SPACES:
                raise ParameterError(f"color_space={color_space!r} is not supported; use 'rgb', 'lab', 'hsv' or None")
            color_space = color_space.lower()
            if color_space != "rgb" and C != 3:
                raise ParameterError(f"color_space={color_space!r} needs RGB centres (3 channels); these have {C}: "
                                     "use color_space='rgb'")
        self.color_space = color_space
        self.dtype = _dtype_of(dtype)
        if self.dtype is not None and self.dtype.kind in "iu":
            _check_range(self.centers, self.dtype, "centers")
        self.space_centers = None
        if space_centers is not None and color_space is not None and self.dtype is not None:
            sc = _centre_array(space_centers, "space_centers")
            d = C if color_space == "rgb" else 3
            if sc.shape != (k, d):
                raise ParameterError(f"space_centers has shape {sc.shape}; it must be ({k}, {d}), as centers in "
                                     f"color_space={color_space!r}")
            self.space_centers = sc
        self.display = bool(display)
        if self.display and (self.dtype != np.uint8 or C != 3):
            raise ParameterError("display=True needs 8-bit RGB centres: dtype='uint8' and 3 channels")
        self.source = None if source is None else os.fspath(source)
        self._name = self.source or "the palette"

    @property
    def k(self) -> int:
        """Number of centres, and of clusters in every segmentation made with them."""
        return int(self.centers.shape[0])

    def __repr__(self) -> str:
        dtype = None if self.dtype is None else self.dtype.name
        return (f"Palette(k={self.k}, channels={self.centers.shape[1]}, color_space={self.color_space!r}, "
                f"dtype={dtype!r}, source={self.source!r})")

    @classmethod
    def _named(cls, name: str, centers: Any, **options: Any) -> Palette:
        """A palette that messages call ``name`` ("centers", "this segmentation's palette")."""
        pal = cls(centers, **options)
        pal._name = name
        return pal

    def apply(self, image: ImageLike, *, color_space: str | None = None, alpha: bool | None = None,
              max_pixels: int | None = None, channel_axis: int | None = None, plane: int | None = None) -> Segmentation:
        """Label ``image`` with these centres: every pixel gets its nearest, and nothing is fitted.

        Cluster ``i`` of the result is the ``i``-th centre, and a centre no pixel is nearest to
        stays, with a count of 0; ties go to the lower index. The result is a normal
        :class:`Segmentation` (``labels``, ``image()``, ``masks``, ``palette()``, ``save()``...)
        whose ``centers`` are these, in ``image``'s units; ``n_iter`` is 0, and ``converged``
        says whether they are a Lloyd fixed point of ``image`` (see :meth:`Prepared.apply`).

        Parameters
        ----------
        image : str, path, (M, N[, C]) array-like or PIL.Image.Image
            As :func:`segment` takes it; it must have C colour channels and, in ``"rgb"``, the
            palette's units (see :attr:`dtype`). A :attr:`display` palette labels 8-bit RGB and
            RGBA images only.
        color_space : {"rgb", "lab", "hsv"}, optional
            The space to measure distances in; default the palette's own, else ``"rgb"``.
            A palette that has a space of its own is refused any other.
        alpha, max_pixels, channel_axis, plane
            As in :func:`segment`.

        Returns
        -------
        Segmentation

        Raises
        ------
        ParameterError
            ``image`` does not fit the palette (channels, units), or ``color_space`` is not
            the palette's.
        ImageError
            As :func:`segment` raises it.
        """
        space = self._space(color_space)
        arr, space, has_alpha, source = _read_checked(image, space, alpha, max_pixels, channel_axis, plane)
        n_channels = (1 if arr.ndim == 2 else arr.shape[2]) - int(has_alpha)
        self._check_image(arr.dtype, n_channels, space, source)  # before the image is reduced
        return self._label(Prepared(arr, color_space=space, alpha=has_alpha, scale=None, source=source,
                                    plane=_plane_of(source, plane)))

    def _space(self, color_space: Any) -> str:
        """The colour space to label in: ``color_space`` checked against the palette's own."""
        if color_space is None:
            return self.color_space or "rgb"
        if not isinstance(color_space, str) or color_space.lower() not in COLOR_SPACES:
            raise ParameterError(f"color_space={color_space!r} is not supported; use 'rgb', 'lab' or 'hsv'")
        space = color_space.lower()
        if self.color_space is not None and space != self.color_space:
            raise ParameterError(
                f"{self._name} was clustered in color_space={self.color_space!r}; color_space={space!r} would "
                "measure other distances; leave color_space out to use its own"
            )
        return space

    def _check_image(self, dtype: np.dtype, n_channels: int, space: str, source: str | None) -> None:
        """Refuse an image of ``dtype`` with ``n_channels`` colour channels that these centres cannot label."""
        where = f"{source}: " if source else ""
        image = f"the image is {dtype} with {counted(n_channels, 'colour channel')}"
        if self.display and (dtype != np.uint8 or n_channels != 3):
            raise ParameterError(
                f"{where}{self._name} holds 8-bit RGB display colours, which label 8-bit RGB or RGBA images only, "
                f"and {image}; label it with the NAME-palette.json that kmseg segment wrote, which keeps the "
                "centres in the image's own units"
            )
        C = self.centers.shape[1]
        if n_channels != C:
            raise ParameterError(
                f"{where}{self._name} has centres of {counted(C, 'channel')}, and {image}; label it with a "
                "palette of an image like it"
            )
        if space != "rgb" and (self.space_centers is not None or self.dtype is not None):
            return  # Lab and HSV are on a fixed scale: any dtype they take will do
        if self.dtype is not None:
            if not _same_units(self.dtype, dtype):
                raise ParameterError(
                    f"{where}{self._name} holds centres in {self.dtype} units, and {image}; convert it to "
                    f"{self.dtype}, or label it with a palette of a {dtype} image"
                )
        elif dtype.kind in "iu":
            _check_range(self.centers, dtype, f"{where}{self._name}", " (a palette of an image of other units?)")

    def _label(self, prep: Prepared, *, n_iter: int = 0, converged: bool | None = None) -> Segmentation:
        """The prepared image labelled with these centres (``n_iter`` and ``converged``: see
        :meth:`Prepared._apply`)."""
        space = prep.color_space
        self._space(space)
        self._check_image(prep.dtype, prep.n_channels, space, prep.source)
        # The centres in the clustering space: exactly as given, when known (an image in the
        # palette's units has the same offset, if any: _check_image saw to it).
        if self.space_centers is not None:
            features = self.space_centers.copy()
        else:
            features = _features_of(self.centers, space, prep.dtype if self.dtype is None else self.dtype)
        # In the image's units: the same as given, but in Lab or HSV for an image of another dtype.
        same = space == "rgb" or self.dtype is None or self.dtype == prep.dtype
        centers = self.centers.copy() if same else prep.centres_of(features)
        return prep._apply(features, centers, n_iter=n_iter, converged=converged)


def _check_range(centers: np.ndarray, dtype: np.dtype, name: str, hint: str = "") -> None:
    """Refuse centres outside an integer ``dtype``'s range: they are in another image's units."""
    info = np.iinfo(dtype)
    lo, hi = float(centers.min()), float(centers.max())
    if lo < info.min or hi > info.max:
        far = lo if lo < info.min else hi
        raise ParameterError(
            f"{name} reaches {far:g}, outside {dtype}'s range {info.min} to {info.max}{hint}; pass centres in "
            f"the image's units"
        )


# --------------------------------------------------------------------------- one palette for several images


def grey_as_rgb(image: np.ndarray) -> np.ndarray:
    """A grey image, (H, W) or grey+alpha (H, W, 2), with its grey in all three colour
    channels: (H, W, 3) or (H, W, 4), alpha kept. How a grey image joins RGB ones under one
    shared palette (an 8-bit grey value v then has the colour code ``v * 0x010101``)."""
    img = image[..., None] if image.ndim == 2 else image
    return np.ascontiguousarray(img[..., [0, 0, 0] + list(range(1, img.shape[2]))])


class Pool:
    """The colours of several images together, for one palette fitted on all of them
    (:func:`fit_palette`, ``kmseg segment --shared-palette``).

    Images with an exact colour histogram (8-bit of up to 3 channels, 16-bit grey; int8 and
    int16 alike) are added histogram by histogram (:func:`kmseg._reduce.merge_histograms`), so
    only the sum is held; other images' points (4 or 8 bytes per channel and pixel) are held
    one after the other. Either way the fit sees exactly the points, weights and order of one
    image made of all their pixels, and gives its centres. Every image must have the dtype
    and the colour channels of the first; their alpha may differ. With ``grey_as_rgb``
    (``kmseg segment --shared-palette``, as with ``--dask``), 8-bit grey images may join 8-bit
    RGB ones: once the pool holds an RGB image, every grey one counts as RGB with its grey in
    all three channels (:meth:`fitting` makes it so before it is labelled).
    """

    def __init__(self, color_space: str, grey_as_rgb: bool = False) -> None:
        self.color_space = color_space
        self.grey_as_rgb = grey_as_rgb
        self.dtype: np.dtype | None = None
        self.n_channels = 0
        self.first: str | None = None  # the first image's file, for messages
        self.n_images = 0
        self._hist: tuple[np.ndarray, np.ndarray] | None = None
        self._bits = 0
        self._points: list[np.ndarray] = []

    def _mixes(self, prep: Prepared) -> bool:
        """Whether ``prep`` is 8-bit grey among RGB, or RGB among grey, and may join as RGB."""
        return (self.grey_as_rgb and prep.dtype == self.dtype == np.uint8
                and {prep.n_channels, self.n_channels} == {1, 3})

    def check(self, prep: Prepared) -> None:
        """Refuse an image of another dtype or number of colour channels than the first."""
        if self.dtype is None or (prep.dtype == self.dtype and prep.n_channels == self.n_channels) or self._mixes(prep):
            return
        where = f"{prep.source}: " if prep.source else ""
        first = f" ({self.first})" if self.first else ""
        raise ParameterError(
            f"{where}the image is {prep.dtype} with {counted(prep.n_channels, 'colour channel')}, but the shared "
            f"palette is fitted on {self.dtype} images with {counted(self.n_channels, 'colour channel')}{first}; "
            "segment it apart from them, or convert it"
        )

    def add(self, prep: Prepared) -> None:
        """Add a prepared image's colours (checked as :meth:`check` does)."""
        self.check(prep)
        if self.dtype is None:
            self.dtype, self.n_channels, self.first = prep.dtype, prep.n_channels, prep.source
        red = prep.reduced
        codes = red.codes
        if self._mixes(prep):
            if prep.n_channels == 1:  # grey among RGB: its grey in all three channels
                codes = codes * 0x010101
            else:  # the first RGB image among grey ones: those become RGB
                self._hist = (self._hist[0] * 0x010101, self._hist[1])  # type: ignore[index]
                self.n_channels = 3
        if red.kind == "histogram":
            part = (codes, red.weights.astype(np.int64))
            self._hist = part if self._hist is None else merge_histograms([self._hist, part])
            self._bits = red.value_bits
        else:
            self._points.append(red.points)
        self.n_images += 1

    def fitting(self, prep: Prepared) -> Prepared:
        """``prep`` checked (:meth:`check`) and made as the pool's images are: an 8-bit grey
        image, when the pool is RGB, with its grey in all three channels (alpha kept)."""
        self.check(prep)
        if not (prep.n_channels == 1 and self._mixes(prep)):
            return prep
        return Prepared(grey_as_rgb(prep.image), color_space=prep.color_space, alpha=prep.has_alpha, scale=None, source=prep.source,
                        plane=prep.plane)

    def fit(self, k: int, **options: Any) -> tuple[Palette, _engine.FitResult]:
        """The palette fitted on every pixel added (``options`` as :func:`segment` takes them),
        and the fit; the pooled colours are let go. A ``ConvergenceWarning`` if they are fewer
        than ``k``."""
        if self.dtype is None:
            raise ParameterError("no image was given to fit a palette on; pass at least one")
        if self._hist is not None:
            red = reduce_histogram(*self._hist, self.n_channels, self.color_space, self._bits)
        else:
            points, self._points = self._points, []
            red = reduce_points(points[0] if len(points) == 1 else np.concatenate(points), self.n_channels)
            del points
        self._hist = None
        offset, vmax = _units(self.dtype)
        if red.points.shape[0] == 0:
            raise InvalidImageDataError("no image has opaque pixels (every alpha is 0); there is nothing to cluster")
        prep = Prepared.from_reduced(red, color_space=self.color_space, n_channels=self.n_channels, vmax=vmax,
                                     offset=offset)
        res, _, _, few = prep.fit(k, warn=False, **options)
        if few:
            n = res.centers.shape[0]
            warnings.warn(
                f"{fewer_colours(n, k, together=self.n_images > 1)}; the palette has {counted(n, 'colour')}, one per colour",
                ConvergenceWarning,
                stacklevel=user_stacklevel(),
            )
        palette = Palette(prep.centres_of(res.centers), color_space=self.color_space, dtype=self.dtype,
                          space_centers=res.centers)
        return palette, res


def fit_palette(
    images: Iterable[ImageLike],
    k: int = 5,
    *,
    color_space: str = "rgb",
    n_init: int = 10,
    init: str | np.ndarray = "k-means++",
    max_iter: int = 300,
    tol: float = 0.0,
    seed: int | np.random.Generator | None = None,
    alpha: bool | None = None,
    max_pixels: int | None = None,
    channel_axis: int | None = None,
    plane: int | None = None,
) -> Palette:
    """Fit one palette on several images together, to label each of them with it.

    A stack or a time series of microscopy or satellite images labelled with one palette
    (``[pal.apply(im) for im in images]``) has the same classes in every image: label 2 is the
    same colour everywhere. The palette is exactly what :func:`segment` fits on one image
    made of all their pixels: the images are read one at a time and their colours pooled
    (exact colour histograms are summed, so 8-bit images of up to 3 channels and 16-bit grey
    ones hold only the sum; other images hold their pixels' colours, 4 bytes a channel, until
    the fit). Every image must have the dtype and the colour channels of the first.

    Parameters
    ----------
    images : iterable of str, path, array-like or PIL.Image.Image
        As :func:`segment` takes each.
    k, color_space, n_init, init, max_iter, tol, seed, alpha, max_pixels, channel_axis, plane
        As in :func:`segment` (``alpha``, ``max_pixels``, ``channel_axis`` and ``plane`` for
        every image).

    Returns
    -------
    Palette
        Its centres in the images' units, its colour space and dtype, and its centres in the
        clustering space, so that :meth:`Palette.apply` labels by the fit's own centres. The
        first image's file, if any, is its :attr:`~Palette.source`.

    Raises
    ------
    ParameterError
        As :func:`segment` raises it, or an image of another dtype or number of channels
        than the first, or no image at all.
    ImageError
        An image cannot be read (the message names its file), or none has an opaque pixel.

    Warns
    -----
    ConvergenceWarning
        The images have fewer distinct colours together than ``k``.

    Examples
    --------
    >>> a = np.zeros((2, 2, 3), np.uint8); a[0] = (200, 30, 30)
    >>> b = np.full((2, 2, 3), 240, np.uint8); b[1] = (200, 30, 30)
    >>> pal = fit_palette([a, b], k=3, seed=0)
    >>> la, lb = (pal.apply(im).labels for im in (a, b))
    >>> bool(la[0, 0] == lb[1, 0]), pal.k   # the red of both images: one label
    (True, 3)
    """
    k = check_int("k", k, 1)
    check_fit_options(n_init, max_iter, tol, init)
    pool = None
    for image in images:
        arr, space, has_alpha, source = _read_checked(image, color_space, alpha, max_pixels, channel_axis, plane)
        prep = Prepared(arr, color_space=space, alpha=has_alpha, scale=None, source=source,
                        plane=_plane_of(source, plane))
        pool = Pool(space) if pool is None else pool
        pool.add(prep)
        del arr, prep
    if pool is None:
        raise ParameterError("images is empty; pass the images to fit one palette on")
    palette, _ = pool.fit(k, n_init=n_init, init=init, max_iter=max_iter, tol=tol, seed=seed)
    palette.source = pool.first
    palette._name = pool.first or "the palette"
    return palette
