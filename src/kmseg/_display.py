"""Images for the eye: the bands shown, area reduction and 8-bit values.

One path for the figures (``plot``) and the web page's previews. Nothing here touches what is
saved or downloaded at full size, except ``to_u8``, which also gives the 8-bit values of the web
page's PNGs and of float images written by ``Segmentation.save``.
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["shown", "shrink", "shown_bands", "to_u8"]

_BLOCK = 1 << 20  # values converted at a time by ``to_u8``


def to_u8(arr: np.ndarray) -> np.ndarray:
    """The nearest 8-bit values: unsigned integers scaled from their full range, bool as
    0/255, floats from 0-1 (clipped).

    Examples
    --------
    >>> to_u8(np.array([0, 128, 129, 65535], np.uint16)).tolist()
    [0, 0, 1, 255]
    >>> to_u8(np.array([-0.5, 0.5, 2.0])).tolist()
    [0, 128, 255]
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        # x * 255 / 65535 is x / 257, which never falls half-way between two integers: this is
        # the nearest value, in integers.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    scale = 255.0 / np.iinfo(arr.dtype).max if arr.dtype.kind == "u" else 255.0
    # In float64, a block at a time: no temporary larger than 8 MB, whatever the image.
    flat = arr.reshape(-1)
    out = np.empty(flat.shape, np.uint8)
    for i in range(0, flat.size, _BLOCK):
        block = np.rint(flat[i : i + _BLOCK].astype(np.float64) * scale)
        out[i : i + _BLOCK] = np.clip(block, 0, 255)
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
    pixels lend their colour to no visible one. The dtype is kept (float16 is reduced as float32).
    """
    h, w = arr.shape[:2]
    if factor <= 1:
        return arr
    import cv2

    size = (max(1, round(w / factor)), max(1, round(h / factor)))

    def area(a: np.ndarray) -> np.ndarray:
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
    top = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
    weighted = arr.astype(np.float32)
    weighted[..., -1] /= np.float32(top)
    weighted[..., :-1] *= weighted[..., -1:]
    weighted = area(weighted)
    w_sum = weighted[..., -1:]
    c_out = np.where(w_sum > 0, weighted[..., :-1] / np.where(w_sum > 0, w_sum, 1), 0)
    out = np.concatenate([c_out, w_sum * np.float32(top)], axis=2)
    if arr.dtype.kind in "ui":
        out = np.clip(np.rint(out), 0, top)
    return out.astype(arr.dtype)


def shown(arr: np.ndarray, has_alpha: bool, factor: float) -> np.ndarray:
    """The 8-bit image to show: its shown bands (``shown_bands``), reduced ``factor`` times
    (``shrink``), then ``to_u8``. Reducing first keeps the work to the shown size."""
    return np.ascontiguousarray(to_u8(shrink(shown_bands(arr, has_alpha), factor, has_alpha)))
