"""Hypothesis strategies shared by the test modules."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

__all__ = ["images_u8", "ks", "points_and_weights"]

ks = st.integers(min_value=1, max_value=6)


@st.composite
def images_u8(draw, max_side: int = 12, channels: tuple[int, ...] = (3,), levels: int = 256):
    """Small uint8 images; ``levels`` limits the distinct values per channel (to force duplicates)."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    c = draw(st.sampled_from(channels))
    step = 256 // levels
    vals = draw(arrays(np.uint8, (h, w, c), elements=st.integers(0, levels - 1)))
    return (vals.astype(np.int64) * step).astype(np.uint8)


@st.composite
def points_and_weights(draw, max_n: int = 40, max_d: int = 3, min_weight: int = 1, span: int = 50):
    """Whole-number points in [-span, span] (small spans repeat points) and whole weights from
    ``min_weight`` to 4; with ``min_weight`` 0 at least one weight is positive."""
    n = draw(st.integers(2, max_n))
    d = draw(st.integers(1, max_d))
    X = draw(arrays(np.float64, (n, d), elements=st.integers(-span, span).map(float)))
    w = draw(arrays(np.int64, (n,), elements=st.integers(min_weight, 4)).filter(lambda w: w.any()))
    return X, w
