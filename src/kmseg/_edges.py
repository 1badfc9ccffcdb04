"""Edges: Canny edges of the photo (:func:`edges`) and the boundaries of a segmentation (:func:`boundaries`)."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np

from ._display import display_range, to_u8
from .errors import ParameterError, ParameterTypeError
from .segment import read_image

__all__ = ["boundaries", "edges", "to_gray8"]



def to_gray8(image: np.ndarray, *, has_alpha: bool | None = None) -> np.ndarray:
    """An (M, N) uint8 grey version of a checked image, for OpenCV.

    The values are first taken to 8 bits on the image's display range, as every picture
    kmseg draws (:func:`kmseg._display.display_range`): uint16 scaled by 255/65535, floats in
    [0, 1] by 255, any other image from its minimum (0) to its maximum (255), rounded. RGB is
    converted with OpenCV's ``COLOR_RGB2GRAY`` (ITU-R BT.601 luma). Alpha is dropped. Other
    band counts use the mean of their bands.

    Parameters
    ----------
    image : (M, N[, C]) ndarray of an integer or float dtype
    has_alpha : bool, optional
        Whether the last channel is alpha; default: True for 2 and 4 channels.

    Returns
    -------
    gray : (M, N) ndarray of uint8

    Examples
    --------
    >>> to_gray8(np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])).tolist()
    [[0, 255]]
    """
    import cv2

    if has_alpha is None:
        has_alpha = image.ndim == 3 and image.shape[2] in (2, 4)
    has_alpha = has_alpha and image.ndim == 3
    arr = image[..., :-1] if has_alpha else image
    if arr.dtype != np.uint8:
        arr = to_u8(arr, display_range(image, has_alpha))
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    c = arr.shape[2]
    if c == 1:
        return np.ascontiguousarray(arr[..., 0])
    if c == 3:
        return cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)
    return np.clip(np.rint(arr.astype(np.float32).mean(axis=2)), 0, 255).astype(np.uint8)


def _check_threshold(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ParameterTypeError(f"{name}={value!r} is not a number; pass a gradient threshold such as 100")
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ParameterError(f"{name}={value!r} is out of range; {name} must be a finite number >= 0")
    return v


def edges(image: Any, low: float = 100, high: float = 200, *, max_pixels: int | None = None,
          channel_axis: int | None = None, plane: int | None = None) -> np.ndarray:
    """Canny edges of an image, through OpenCV (``cv2.Canny``) on its grey version.

    The image is turned into 8-bit grey first (see :func:`to_gray8`: every dtype is taken to
    0-255 on its display range, as in the figures; colour becomes BT.601 luma), so the thresholds are always on the 8-bit
    scale, as in the tutorials' ``cv2.Canny(gray, 100, 200)``. The Sobel aperture is 3 and
    the gradient magnitude is the L1 norm, OpenCV's defaults. Pixels whose alpha is 0 are
    never edges: the colours stored under them are not part of the picture (a file has alpha
    if its format says so; an array if it has 2 or 4 channels and no ``channel_axis``, as in
    :func:`kmseg.segment`).

    Parameters
    ----------
    image : str, path, (M, N[, C]) array-like or PIL.Image.Image
        A file (read with :func:`kmseg.load_image`) or an array of any integer or float
        dtype (see :func:`kmseg.read_image`).
    low, high : float
        Hysteresis thresholds on the gradient magnitude, ``0 <= low <= high``. Pixels above
        ``high`` are edges; pixels above ``low`` are edges if connected to one.
    max_pixels : int, optional
        For paths: the decompression-bomb limit.
    channel_axis, plane : int, optional
        The array's channel axis, and the plane of a file's stack, as in :func:`kmseg.segment`.

    Returns
    -------
    edges : (M, N) ndarray of bool
        True on edge pixels.

    Raises
    ------
    ParameterError
        ``low`` or ``high`` is negative or not finite, or ``low > high``; a bad
        ``channel_axis`` or ``plane``.
    ParameterTypeError
        ``low`` or ``high`` is not a number; ``image`` is neither a path nor an array.
    ImageError
        The file cannot be read, or the array has a bad shape, dtype or NaN.

    Examples
    --------
    >>> img = np.zeros((8, 8), np.uint8); img[:, 4:] = 255
    >>> e = edges(img)
    >>> e.shape, e.dtype, np.flatnonzero(e.any(axis=0)).tolist()
    ((8, 8), dtype('bool'), [3])
    """
    import cv2

    lo = _check_threshold("low", low)
    hi = _check_threshold("high", high)
    if lo > hi:
        raise ParameterError(f"low={low!r} is above high={high!r}; pass low <= high, such as low=100, high=200")
    arr, has_alpha = read_image(image, max_pixels=max_pixels, channel_axis=channel_axis, plane=plane)
    out = cv2.Canny(to_gray8(arr, has_alpha=has_alpha), lo, hi) > 0
    if has_alpha:
        out &= arr[..., -1] > 0  # what lies under a transparent pixel is not part of the picture
    return out


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Boundaries between segments: pixels whose label differs from a right or lower neighbour.

    Pixel (i, j) is a boundary pixel if ``labels[i, j] != labels[i, j + 1]`` or
    ``labels[i, j] != labels[i + 1, j]`` (neighbours outside the image do not count). So
    every boundary is one pixel thick and lies on the upper/left side of the change. Label
    -1 (transparent pixels) is a label like any other: the rim of a transparent area is a
    boundary.

    Parameters
    ----------
    labels : (M, N) ndarray of int
        A label map, such as :attr:`Segmentation.labels`.

    Returns
    -------
    boundaries : (M, N) ndarray of bool

    Raises
    ------
    ParameterTypeError
        ``labels`` is not an integer ndarray.
    ParameterError
        ``labels`` is not 2-D.

    Examples
    --------
    >>> lab = np.array([[0, 0, 1], [0, 0, 1], [2, 2, 2]])
    >>> boundaries(lab).astype(int).tolist()
    [[0, 1, 0], [1, 1, 1], [0, 0, 0]]
    """
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        what = f"an ndarray of dtype {labels.dtype}" if isinstance(labels, np.ndarray) else type(labels).__name__
        raise ParameterTypeError(f"labels is {what}; pass an (M, N) integer label map such as seg.labels")
    if labels.ndim != 2:
        raise ParameterError(f"labels has shape {labels.shape}; pass an (M, N) label map such as seg.labels")
    out = np.zeros(labels.shape, dtype=bool)
    out[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    out[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return out
