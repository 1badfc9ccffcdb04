"""kmseg: exact, fast K-means colour segmentation of images.

>>> import kmseg
>>> seg = kmseg.segment(kmseg.data.path("coffee.png"), k=5, seed=0)
>>> seg.labels.shape, seg.k, len(seg.palette())
((400, 600), 5, 5)
"""

from __future__ import annotations

from . import data
from .errors import (
    ConvergenceWarning,
    CorruptImageError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageDataError,
    KmsegError,
    NotAnImageError,
    NotFittedError,
    OutputError,
    OutputExistsError,
    OutputPermissionError,
    PaletteFileError,
    PaletteNotFoundError,
    ParameterError,
    ParameterTypeError,
)
from ._edges import edges
from ._elbow import Elbow, elbow, find_knee
from .estimator import KMeans
from .io import load_image
from .segment import Palette, Prepared, Segmentation, fit_palette, prepare, read_image, segment

__version__ = "0.1.0"

__all__ = [
    "ConvergenceWarning",
    "CorruptImageError",
    "Elbow",
    "ImageError",
    "ImageNotFoundError",
    "ImageTooLargeError",
    "InvalidImageDataError",
    "KMeans",
    "KmsegError",
    "NotAnImageError",
    "NotFittedError",
    "OutputError",
    "OutputExistsError",
    "OutputPermissionError",
    "Palette",
    "PaletteFileError",
    "PaletteNotFoundError",
    "ParameterError",
    "ParameterTypeError",
    "Prepared",
    "Segmentation",
    "data",
    "edges",
    "elbow",
    "find_knee",
    "fit_palette",
    "load_image",
    "prepare",
    "read_image",
    "segment",
]
