"""Images for the eye: the display range, the bands shown, area reduction and 8-bit values.

One path for the palette, the figures (``plot``), the web page's previews, the HTML report and the
notebook's thumbnail (``_notebook``). Nothing here touches what is saved or downloaded at full
size, except ``to_u8``, which also gives the 8-bit values of the web page's PNGs and of the
cut-outs ``Segmentation.save`` writes for images that are not 8- or 16-bit.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["display_range", "opaque_value", "range_of", "shown", "shrink", "shown_bands", "to_dtype", "to_u8"]

_BLOCK = 1 << 20  # values converted at a time by ``to_u8``
#: The dtypes OpenCV's ``resize`` reduces by area itself; ``shrink`` takes others through float64.
_AREA_DTYPES = frozenset({"uint8", "uint16", "int16", "float32", "float64"})


def opaque_value(dtype: np.dtype) -> int | float:
    """The alpha value of a fully opaque pixel: an integer dtype's maximum (255, 65535, 32767...),
    1.0 for floats."""
    return int(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0


def display_range(arr: np.ndarray, has_alpha: bool = False) -> tuple[float, float]:
    """The values shown as black and as white: kmseg's one display rule.

    - uint8 and uint16 images map their dtype's full range, 0-255 and 0-65535 (bool: 0-1).
    - Float images whose values all lie in [0, 1] map 0-1, as scikit-image takes them.
    - Every other image (signed integers, uint32 and wider, floats outside [0, 1]) maps its own
      minimum to its maximum, as matplotlib's ``imshow`` autoscales.

    The palette's colours, the figures, the web page's previews and the HTML report all map an
    image's values to 0-255 linearly through this range (``to_u8``), computed once from the
    input image, so the recoloured image, the masked image and the cut-outs are shown on the
    scale of the input. Only the colour bands count: with ``has_alpha`` the last band is alpha,
    and pixels whose alpha is 0 are left out (unless every pixel is). A constant image has
    ``lo == hi`` and is shown black, as ``imshow`` shows it.

    Parameters
    ----------
    arr : (M, N[, C]) ndarray
    has_alpha : bool
        The last band is alpha.

    Returns
    -------
    lo, hi : float
        The values shown as 0 and as 255.

    Examples
    --------
    >>> display_range(np.array([[0, 200]], np.uint8))
    (0.0, 255.0)
    >>> display_range(np.array([[0.25, 0.5]], np.float32))
    (0.0, 1.0)
    >>> display_range(np.array([[-1169, 977]], np.int16))
    (-1169.0, 977.0)
    """
    if arr.dtype == np.bool_ or arr.dtype == np.uint8 or arr.dtype == np.uint16:
        return range_of(arr.dtype, None)  # the dtype's range: no pass over the values
    colour = arr[..., :-1] if has_alpha and arr.ndim == 3 else arr
    if colour.size == 0:
        return range_of(arr.dtype, None)
    where: np.ndarray | bool = True
    if colour is not arr:
        opaque = arr[..., -1:] > 0
        if opaque.any():
            where = opaque  # (M, N, 1): broadcast over the colour bands, without a copy of them
    if arr.dtype.kind == "f":
        bounds: tuple[Any, Any] = (np.inf, -np.inf)
    else:
        bounds = (np.iinfo(arr.dtype).max, np.iinfo(arr.dtype).min)
    return range_of(arr.dtype, (float(np.min(colour, where=where, initial=bounds[0])),
                                float(np.max(colour, where=where, initial=bounds[1]))))


def range_of(dtype: np.dtype, extent: tuple[float, float] | None) -> tuple[float, float]:
    """The display range (:func:`display_range`) of an image of ``dtype`` whose colour values
    run from ``extent[0]`` to ``extent[1]`` (None: it has none): the rule on its own, for an
    image whose least and greatest values were found elsewhere, such as region by region.

    Examples
    --------
    >>> range_of(np.dtype(np.float32), (0.25, 0.5)), range_of(np.dtype(np.int16), (-1169.0, 977.0))
    ((0.0, 1.0), (-1169.0, 977.0))
    """
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return 0.0, 1.0
    if dtype == np.uint8 or dtype == np.uint16:
        return 0.0, float(np.iinfo(dtype).max)
    if extent is None:
        return 0.0, 1.0
    lo, hi = float(extent[0]), float(extent[1])
    if dtype.kind == "f" and 0.0 <= lo and hi <= 1.0:
        return 0.0, 1.0
    return lo, hi


def to_u8(arr: np.ndarray, vrange: tuple[float, float] | None = None, has_alpha: bool = False) -> np.ndarray:
    """The nearest 8-bit values of an image on the display range ``vrange`` (``lo`` shows as 0,
    ``hi`` as 255, linearly, clipped outside). Bool is 0/255.

    ``vrange`` defaults to :func:`display_range` of ``arr`` itself; pass the input image's range
    for an image made from it (the recoloured image, a cut-out), so that both are shown alike.
    With ``has_alpha`` the last band is alpha and is scaled from its own dtype's range
    (:func:`opaque_value` shows as 255), not from ``vrange``, and pixels whose alpha becomes 0
    are transparent black (every band 0, as in a uint8 cut-out). uint8 and uint16 on their full
    range take a fast integer path instead, which converts every value as it is: there a
    transparent pixel keeps its colour bands (it looks the same; only the PNG's bytes differ).

    Examples
    --------
    >>> to_u8(np.array([0, 128, 129, 65535], np.uint16)).tolist()
    [0, 0, 1, 255]
    >>> to_u8(np.array([-0.5, 0.5, 2.0]), (0.0, 1.0)).tolist()
    [0, 128, 255]
    >>> to_u8(np.array([-1000, 0, 1000], np.int16)).tolist()
    [0, 128, 255]
    """
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    lo, hi = display_range(arr, has_alpha) if vrange is None else (float(vrange[0]), float(vrange[1]))
    full = arr.dtype in (np.uint8, np.uint16) and lo == 0 and hi == np.iinfo(arr.dtype).max
    if full and arr.dtype == np.uint8:
        return arr
    if full:
        # x * 255 / 65535 is x / 257, which never falls half-way between two integers: this is
        # the nearest value, in integers (alpha, in the same range, alike).
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    span = hi - lo  # 0 for a constant image, shown black
    alpha = has_alpha and arr.ndim == 3
    top = float(opaque_value(arr.dtype))
    # In float64, a block at a time: no temporary larger than 8 MB, whatever the image.
    flat = arr.reshape(-1, arr.shape[2]) if alpha else arr.reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    step = max(1, _BLOCK // (flat.shape[1] if alpha else 1))
    for i in range(0, flat.shape[0], step):
        block = flat[i : i + step].astype(np.float64)
        colour = block[:, :-1] if alpha else block
        colour -= lo
        colour *= 255.0
        if span > 0:
            colour /= span
        else:
            colour[...] = 0.0
        if alpha:
            block[:, -1] *= 255.0
            block[:, -1] /= top
            colour[block[:, -1] < 0.5] = 0.0  # transparent: black, as a uint8 cut-out is
        out[i : i + step] = np.clip(np.rint(block), 0, 255)
    return out.reshape(arr.shape)


def shown_bands(arr: np.ndarray, has_alpha: bool) -> np.ndarray:
    """The bands an image is shown with: grey, grey+alpha, RGB or RGBA.

    Of three colour bands or more the first three are shown, else the first as grey; alpha
    (the last band, with ``has_alpha``) is kept. A view when it can be.
    """
    if arr.ndim == 2:
        return arr
    n_colour = arr.shape[2] - (1 if has_alpha else 0)
    colour = [0, 1, 2] if n_colour >= 3 else [0]
    bands = colour + ([arr.shape[2] - 1] if has_alpha else [])
    if len(bands) == 1:
        return arr[..., 0]
    if bands == list(range(len(bands))):
        return arr[..., : len(bands)]
    return arr[..., bands]


def _opaque_or_clear(arr: np.ndarray) -> bool:
    """Whether every pixel of an 8-bit image with alpha (last) is opaque or all zeros.

    Read a pixel at a time as one integer (alpha is its most significant byte on a
    little-endian machine): a single comparison each for "all zero" and "alpha 255".
    """
    nb = arr.shape[2]
    if nb not in (2, 4) or sys.byteorder != "little":
        return False
    px = np.ascontiguousarray(arr).view(np.uint16 if nb == 2 else np.uint32)
    opaque = 0xFF00 if nb == 2 else 0xFF000000
    return bool(((px == 0) | (px >= opaque)).all())


def shrink(arr: np.ndarray, factor: float, has_alpha: bool = False) -> np.ndarray:
    """Reduce an image of at most 4 bands ``factor`` times (> 1; else it is returned as it is),
    by area interpolation.

    A bool mask stays True where any of its pixels was. With ``has_alpha`` (the last band), the
    colours are averaged weighted by their opacity, as browsers and Pillow do, so transparent
    pixels lend their colour to no visible one. The dtype is kept (float16 is reduced as float32;
    int8, int32 and wider integers, which OpenCV does not reduce, as float64).
    """
    h, w = arr.shape[:2]
    if factor <= 1:
        return arr
    import cv2

    size = (max(1, round(w / factor)), max(1, round(h / factor)))

    def area(a: np.ndarray) -> np.ndarray:
        if a.dtype.name not in _AREA_DTYPES:
            return to_dtype(area(a.astype(np.float64)), a.dtype)
        out = cv2.resize(np.ascontiguousarray(a), size, interpolation=cv2.INTER_AREA)
        return out.reshape(size[1], size[0], *a.shape[2:])

    if arr.dtype == np.bool_:
        return area(arr.astype(np.float32)) > 0
    if arr.dtype == np.float16:
        return area(arr.astype(np.float32)).astype(np.float16)
    if not (has_alpha and arr.ndim == 3 and arr.shape[2] >= 2):
        return area(arr)
    if arr.dtype == np.uint8:
        if _opaque_or_clear(arr):
            # Every pixel is opaque or transparent black (a cut-out): its colours are their
            # own products with opacity already. Only partly covered pixels need dividing.
            out = area(arr)
            a = out[..., -1]
            part = np.flatnonzero((a > 0) & (a < 255))
            flat = out.reshape(-1, out.shape[2])
            c = flat[part, :-1] * (np.float32(255.0) / flat[part, -1:].astype(np.float32))
            flat[part, :-1] = np.minimum(np.rint(c), 255.0)
            return out
        # Colour times opacity fits 16 bits: 255 * 255 = 65025. Alpha is scaled to match.
        weighted = arr.astype(np.uint16)
        weighted[..., :-1] *= weighted[..., -1:]
        weighted[..., -1] *= np.uint16(255)
        weighted = area(weighted).astype(np.float32)
        w_sum = weighted[..., -1:]
        a_out = np.rint(w_sum / np.float32(255.0))
        c_out = np.rint(weighted[..., :-1] * np.float32(255.0) / np.maximum(w_sum, np.float32(1.0)))
        return np.concatenate([np.minimum(c_out, 255.0), a_out], axis=2).astype(np.uint8)
    top = opaque_value(arr.dtype)
    weighted = arr.astype(np.float32)
    weighted[..., -1] /= np.float32(top)
    weighted[..., :-1] *= weighted[..., -1:]
    weighted = area(weighted)
    w_sum = weighted[..., -1:]
    c_out = np.where(w_sum > 0, weighted[..., :-1] / np.where(w_sum > 0, w_sum, 1), 0)
    return to_dtype(np.concatenate([c_out, w_sum * np.float32(top)], axis=2), arr.dtype)


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values as ``dtype``: rounded and clipped to its range for integers (a reduced
    image, centre colours in the input's units)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    return values.astype(dtype)


def shown(arr: np.ndarray, has_alpha: bool, factor: float, vrange: tuple[float, float] | None = None) -> np.ndarray:
    """The 8-bit image to show: its shown bands (``shown_bands``), reduced ``factor`` times
    (``shrink``), then ``to_u8`` on ``vrange`` (default: ``display_range`` of ``arr``, before it is
    reduced). Reducing first keeps the work to the shown size."""
    if vrange is None:
        vrange = display_range(arr, has_alpha)
    return np.ascontiguousarray(to_u8(shrink(shown_bands(arr, has_alpha), factor, has_alpha), vrange, has_alpha))
