"""Colour spaces that kmseg clusters in, and the way back to the input's own units.

- ``"rgb"``: the input's channels as they are (any number of channels, any dtype). Integer
  values are stored as float32, which holds every 8- and 16-bit value exactly.
- ``"lab"``: CIELAB (D65), converted by OpenCV from RGB scaled to [0, 1]. L is in [0, 100].
- ``"hsv"``: hue is an angle, so it is embedded on a circle: the features are
  ``(S cos H, S sin H, V)`` with S and V in [0, 1]. Hue 359 deg and hue 1 deg are neighbours, and
  greys (S = 0) have no hue at all, as they should.

Integer images are scaled by their dtype's maximum (255 or 65535) for Lab and HSV; float
images are taken to be in [0, 1], as in scikit-image. Other integer dtypes have no such scale
and are clustered in ``"rgb"`` only (:func:`kmseg.prepare` refuses the others).
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOR_SPACES", "from_features", "to_features"]

COLOR_SPACES = ("rgb", "lab", "hsv")


def _unit_rgb(values: np.ndarray, vmax: float | None) -> np.ndarray:
    rgb = values.astype(np.float32, copy=True)
    if vmax is not None:
        rgb /= np.float32(vmax)
    return rgb


def to_features(values: np.ndarray, space: str, vmax: float | None) -> np.ndarray:
    """Clustering features of colours.

    Parameters
    ----------
    values : (N, C) ndarray
        Colours in the input's units (uint8, uint16 or float).
    space : {"rgb", "lab", "hsv"}
        The clustering space; ``"lab"`` and ``"hsv"`` need C == 3.
    vmax : float or None
        The dtype's maximum for integer inputs, None for floats in [0, 1].

    Returns
    -------
    features : (N, C) or (N, 3) ndarray of float32 (float64 for float64 input in rgb)

    Examples
    --------
    >>> f = to_features(np.array([[255, 0, 0], [255, 0, 4]], np.uint8), "hsv", 255)
    >>> f.shape
    (2, 3)
    """
    if space == "rgb":
        dtype = np.float64 if values.dtype == np.float64 else np.float32
        return np.ascontiguousarray(values, dtype=dtype)
    import cv2

    rgb = _unit_rgb(values, vmax).reshape(-1, 1, 3)
    if space == "lab":
        return np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab).reshape(-1, 3))
    hsv = cv2.cvtColor(np.clip(rgb, 0.0, 1.0), cv2.COLOR_RGB2HSV).reshape(-1, 3)
    h = np.deg2rad(hsv[:, 0].astype(np.float64))
    s = hsv[:, 1].astype(np.float64)
    out = np.empty((hsv.shape[0], 3), dtype=np.float32)
    out[:, 0] = s * np.cos(h)
    out[:, 1] = s * np.sin(h)
    out[:, 2] = hsv[:, 2]
    return out


def from_features(features: np.ndarray, space: str, vmax: float | None) -> np.ndarray:
    """Colours, in the input's units, of points given in a clustering space.

    The inverse of :func:`to_features`. Lab colours outside the RGB gamut are clipped.

    Parameters
    ----------
    features : (K, D) ndarray
    space : {"rgb", "lab", "hsv"}
    vmax : float or None

    Returns
    -------
    colours : (K, C) ndarray of float64

    Examples
    --------
    >>> c = from_features(to_features(np.array([[10, 200, 30]], np.uint8), "lab", 255), "lab", 255)
    >>> np.allclose(c, [[10, 200, 30]], atol=0.5)
    True
    """
    f = np.asarray(features, dtype=np.float64)
    if space == "rgb":
        return f.copy()
    import cv2

    if space == "lab":
        rgb = cv2.cvtColor(f.astype(np.float32).reshape(-1, 1, 3), cv2.COLOR_Lab2RGB).reshape(-1, 3)
    else:
        h = np.rad2deg(np.arctan2(f[:, 1], f[:, 0])) % 360.0
        s = np.clip(np.hypot(f[:, 0], f[:, 1]), 0.0, 1.0)
        v = np.clip(f[:, 2], 0.0, 1.0)
        hsv = np.stack([h, s, v], axis=1).astype(np.float32).reshape(-1, 1, 3)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(-1, 3)
    rgb = np.clip(rgb.astype(np.float64), 0.0, 1.0)
    return rgb * vmax if vmax is not None else rgb
