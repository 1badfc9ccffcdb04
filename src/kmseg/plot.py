"""Figures of an image and its segmentation, drawn with matplotlib's Agg backend.

Every function returns a :class:`matplotlib.figure.Figure`. They build figures directly
(never through ``pyplot``), so they keep no global state, need no display and are safe in
threads and servers. With ``save="name.png"`` (or ``.svg``) the figure is also rendered in
memory and written atomically (:func:`kmseg.io.write_bytes`); an existing file is kept
unless ``force=True``, and that is checked before any work is done.

Images can be arrays or paths. A ``seg`` argument takes a :class:`~kmseg.Segmentation` of the
same image, or an int k to segment it here with ``**segment_options``.

Every image of a figure is shown on the display range of the input image
(:func:`kmseg._display.display_range`): uint8 and uint16 on their full range, floats in [0, 1]
on 0-1, any other image from its minimum (black) to its maximum (white), as ``imshow``
autoscales; its recoloured image, masked image and cut-outs on that same range.

Functions: :func:`compare`, :func:`grid`, :func:`elbow`, :func:`scatter3d`,
:func:`histogram`, :func:`palette`, :func:`masks`, :func:`edges`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io as _io
import math
import os
import warnings
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from . import _display
from ._edges import boundaries as _boundaries
from ._edges import edges as _canny
from ._elbow import Elbow, as_prepared, prepare_read, split_options
from ._elbow import elbow as _elbow
from .errors import (
    ConvergenceWarning,
    ParameterError,
    ParameterTypeError,
    cannot_write,
    counted,
    exists_already,
    user_stacklevel,
)
from .segment import READ_OPTIONS, Prepared, Segmentation, check_int, fewer_colours, make_rng, palette_order, read_image

__all__ = [
    "compare",
    "edges",
    "elbow",
    "figure_bytes",
    "grid",
    "histogram",
    "masks",
    "palette",
    "scatter3d",
]

#: Longest side, in pixels, of an image drawn in a figure; larger ones are reduced first
#: (area interpolation), which changes nothing visible at screen resolution.
DISPLAY_MAX_SIDE = 1200
#: An image is also reduced to at most this many times the pixels its panel spans (the
#: figure's size times its dpi, shared among the panels), so that matplotlib, which resamples
#: the array it holds at every draw, resamples little. 12 MP photo, figures at their default
#: size and 100 dpi: grid of 4 panels 0.36 -> 0.23 s, masks (5 panels) 0.55 -> 0.34 s,
#: compare 0.26 -> 0.19 s (measured, PNG included); edges, whose 8-inch panel holds 1200
#: pixels, is unchanged. 1.0 instead of 1.5 was no faster.
PANEL_OVERSAMPLE = 1.5

_FORMATS = {".png": "png", ".svg": "svg"}
_EDGE_RGB = (255, 214, 0)  # Canny edges: yellow
_BOUNDARY_RGB = (0, 200, 255)  # segment boundaries: cyan
_BOTH_RGB = (255, 255, 255)  # both: white


# --------------------------------------------------------------------------- figure plumbing


def _new_figure(figsize: tuple[float, float], dpi: float, *, layout: str | None = "constrained") -> Figure:
    fig = Figure(figsize=figsize, dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", *, compress_level: int = 6, png_strategy: str = "default") -> bytes:
    """Render a figure in memory, at the figure's own size and dpi.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    fmt : {"png", "svg"}
    compress_level : int, default 6
        PNG only: zlib's level, 0 (none) to 9 (smallest), as in :func:`kmseg.save_image`.
    png_strategy : {"default", "filtered", "huffman", "rle", "fixed"}
        PNG only: zlib's strategy, as in :func:`kmseg.save_image`.

        The pixels are the same with every setting. On the figures of a 12 MP colour photo
        (``compare``, ``grid``, ``masks``, ``edges``) ``"rle"`` encodes 2.5 to 6 times faster
        than the default, for 1-7% more bytes; on those of a grey image (drawn in RGB) it
        writes 50-60% more bytes, and ``compress_level=3`` is the one that is both faster (3
        times) and smaller (10-15%). On line plots neither saves much.

    Returns
    -------
    data : bytes
        A PNG of exactly ``figsize * dpi`` pixels, or an SVG document (text as paths, no
        date, so the same figure gives the same bytes).

    Raises
    ------
    ParameterError
        ``fmt`` is not "png" or "svg", ``compress_level`` is not in 0-9, or ``png_strategy`` is
        not a zlib strategy.

    Examples
    --------
    >>> fig = _new_figure((2, 1), 50)
    >>> figure_bytes(fig)[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    """
    from .io import PNG_STRATEGIES, _check_encoding

    if fmt not in ("png", "svg"):
        raise ParameterError(f"fmt={fmt!r} is not supported; use 'png' or 'svg'")
    _check_encoding(compress_level, png_strategy)
    buf = _io.BytesIO()
    if fmt == "svg":
        # Fixed ids and no date, so that the same figure gives the same bytes.
        with matplotlib.rc_context({"svg.hashsalt": "kmseg"}):
            fig.savefig(buf, format="svg", dpi=fig.dpi, metadata={"Date": None})
    else:
        # Pillow's own defaults unless asked otherwise: the default bytes stay as they were.
        zlib = {} if compress_level == 6 else {"compress_level": compress_level}
        if png_strategy != "default":
            zlib["compress_type"] = PNG_STRATEGIES[png_strategy]
        with _laid_out(fig):
            fig.savefig(buf, format="png", dpi=fig.dpi, pil_kwargs=zlib)
    return buf.getvalue()


@contextlib.contextmanager
def _laid_out(fig: Figure) -> Iterator[None]:
    """The figure laid out by its layout engine, which stays off inside (and is put back after).

    ``savefig`` does the same itself for a figure with a layout engine: a draw that renders
    nothing runs the layout, then the figure is rendered with the layout off. But that first
    draw resamples every image too (``make_image``), for nothing. Here the images are hidden
    during it: they lie inside their axes, so no position changes and no pixel (tested), and
    the figures of a 12 MP photo render a fifth to a third faster (edges 206 -> 146 ms,
    compare 139 -> 102 ms). For PNG only: an SVG is laid out with the SVG renderer's metrics.
    """
    engine = fig.get_layout_engine()
    if engine is None:
        yield
        return
    images = [im for ax in fig.axes for im in ax.images if im.get_visible()]
    for im in images:
        im.set_visible(False)
    try:
        fig.draw_without_rendering()
    finally:
        for im in images:
            im.set_visible(True)
    with matplotlib.rc_context({"figure.autolayout": False, "figure.constrained_layout.use": False}):
        fig.set_layout_engine(None)  # None itself: with these set, None means "tight" or "constrained"
    try:
        yield
    finally:
        fig.set_layout_engine(engine)


def _check_save(save: Any, force: Any) -> str | None:
    """The format to save in (None: do not save); refuse an existing file early."""
    if not isinstance(force, (bool, np.bool_)):
        raise ParameterTypeError(f"force={force!r} is not a bool; pass True or False")
    if save is None:
        return None
    if not isinstance(save, (str, os.PathLike)):
        raise ParameterTypeError(f"save={save!r} is not a path; pass a file name ending in .png or .svg, or None")
    path = Path(save)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ParameterError(f"save={os.fspath(save)!r} has suffix {path.suffix!r}; figures are saved as .png or .svg")
    if path.is_dir():
        raise cannot_write(f"save={os.fspath(save)!r} is a directory; pass a file path inside it", errno.EISDIR)
    if path.exists() and not force:
        raise exists_already(path)
    return fmt


def _finish(fig: Figure, save: Any, fmt: str | None, force: bool) -> Figure:
    if fmt is not None:
        from .io import write_bytes

        write_bytes(save, figure_bytes(fig, fmt), force=force)
    return fig


def _check_size(figsize: Any, dpi: Any) -> None:
    if figsize is not None:
        ok = isinstance(figsize, (tuple, list)) and len(figsize) == 2 and all(
            isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in figsize
        )
        if not ok:
            raise ParameterError(f"figsize={figsize!r} is not valid; pass (width, height) in inches, both > 0")
    if isinstance(dpi, bool) or not isinstance(dpi, Real) or not math.isfinite(dpi) or dpi <= 0:
        raise ParameterError(f"dpi={dpi!r} is out of range; pass a number of dots per inch > 0, such as 100")


# --------------------------------------------------------------------------- images for display


def display_rgb(arr: np.ndarray, has_alpha: bool, vrange: tuple[float, float] | None = None) -> np.ndarray:
    """(M, N, 3) or (M, N, 4) uint8 for ``imshow``: grey replicated, extra bands dropped, alpha kept.

    ``vrange``: the values shown as black and white (default: ``display_range`` of ``arr``).

    Examples
    --------
    >>> display_rgb(np.array([[0.0, 1.0]]), False).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    >>> display_rgb(np.array([[-50, 50]], np.int16), False).tolist()
    [[[0, 0, 0], [255, 255, 255]]]
    """
    if vrange is None:
        vrange = _display.display_range(arr, has_alpha)
    a = _display.to_u8(_display.shown_bands(arr, has_alpha), vrange, has_alpha)
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] < 3:  # grey, or grey and alpha
        a = a[..., [0, 0, 0, 1] if has_alpha else [0, 0, 0]]
    return np.ascontiguousarray(a)


def _panel_factor(fig: Figure, image: np.ndarray, nrows: int = 1, ncols: int = 1) -> float:
    """How many times an image is reduced to be drawn in one of ``nrows`` x ``ncols`` panels
    of ``fig``: to ``PANEL_OVERSAMPLE`` times the pixels of a panel, and to
    ``DISPLAY_MAX_SIDE`` at most."""
    w_in, h_in = fig.get_size_inches()
    h, w = image.shape[:2]
    scale = fig.dpi * PANEL_OVERSAMPLE
    return max(max(h, w) / DISPLAY_MAX_SIDE, w * ncols / (w_in * scale), h * nrows / (h_in * scale))


def _for_display(image: np.ndarray, has_alpha: bool, factor: float, vrange: tuple[float, float]) -> np.ndarray:
    """``display_rgb`` of an image (any dtype and bands) reduced ``factor`` times first, on ``vrange``."""
    return display_rgb(_display.shown(image, has_alpha, factor, vrange), has_alpha)


def _show(ax: Any, image: np.ndarray, has_alpha: bool, title: str, factor: float, vrange: tuple[float, float]) -> None:
    """Draw an image (any dtype and bands, see ``display_rgb``) on the input's display range
    ``vrange``, reduced ``factor`` times first (``_panel_factor``). ``image`` is only read
    (``imshow`` keeps a copy of what it is given), so it may be a segmentation's own array."""
    ax.imshow(_for_display(image, has_alpha, factor, vrange), interpolation="antialiased")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def _transparent_as_grey(ax: Any) -> None:
    """Show a panel's transparent pixels as light grey, inside a frame without ticks."""
    ax.set_facecolor("0.85")
    ax.set_axis_on()
    ax.set_xticks([])
    ax.set_yticks([])


def _auto_size(h: int, w: int, ncols: int, nrows: int, width: float = 10.0) -> tuple[float, float]:
    """Figure size for a grid of image panels: ``width`` inches wide, height from the aspect."""
    panel_w = width / ncols
    return (width, round(nrows * (panel_w * h / w + 0.35) + 0.1, 2))


def _resolve(
    image: Any, seg: Any, options: dict[str, Any], *, required: bool = True
) -> tuple[np.ndarray, bool, Segmentation | None]:
    """The image as an array, whether it has alpha, and its segmentation (made here for an int k)."""
    prep_opts, fit_opts = split_options(options)
    if isinstance(image, Prepared):
        arr, has_alpha = image.image, image.has_alpha
    else:
        arr, has_alpha = read_image(image, **{k: prep_opts.get(k) for k in READ_OPTIONS})
    if seg is None and not required:
        return arr, has_alpha, None
    if isinstance(seg, Segmentation):
        if seg.labels.shape != arr.shape[:2]:
            raise ParameterError(
                f"seg has labels of shape {seg.labels.shape} but the image is {arr.shape[:2]}; "
                "pass the segmentation of this image"
            )
        changes = [k for k in options if k not in READ_OPTIONS or isinstance(image, Prepared)]
        if changes:  # (how to read the image is not a change)
            name = changes[0]
            raise ParameterError(f"{name}= cannot change a finished segmentation; pass seg=k (an int) to segment here")
        return arr, has_alpha, seg
    if isinstance(seg, Integral) and not isinstance(seg, bool):
        if isinstance(image, Prepared):
            prep = as_prepared(image, prep_opts)
        else:
            prep = prepare_read(image, arr, has_alpha, prep_opts)
        return arr, has_alpha, prep.segment(int(seg), **fit_opts)
    raise ParameterTypeError(
        f"seg={seg!r} is not a Segmentation; pass the result of kmseg.segment() or an int k to segment here"
    )


def _display_range(image: Any, arr: np.ndarray, has_alpha: bool, seg: Segmentation | None = None) -> tuple[float, float]:
    """The display range of the input image ``arr``: kept by its Prepared, or by a segmentation
    made from this very array; else computed. (The panels made from a segmentation use the
    segmentation's own, the range of the image it was made from.)"""
    if isinstance(image, Prepared):
        return image.display_range
    if seg is not None and seg._original is arr:
        return seg.display_range
    return _display.display_range(arr, has_alpha)


def _legend_colour(rgb: Sequence[int]) -> tuple[float, float, float]:
    return (rgb[0] / 255.0, rgb[1] / 255.0, rgb[2] / 255.0)


# --------------------------------------------------------------------------- the figures


def compare(
    image: Any,
    seg: Segmentation | int,
    *,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **segment_options: Any,
) -> Figure:
    """The original and the segmented image, side by side.

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    seg : Segmentation or int
        The segmentation of ``image``, or k to segment it here with ``segment_options``.
    save : str or path, optional
        Also write the figure there, as PNG or SVG by the suffix.
    force : bool
        Overwrite ``save`` if it exists.
    figsize : (float, float), optional
        Inches; default 10 wide, high enough for the image's aspect.
    dpi : float
        Dots per inch; a PNG is ``figsize * dpi`` pixels.
    **segment_options
        Options of :func:`kmseg.segment`, when ``seg`` is an int. Those that say how to read
        the image (``max_pixels``, ``channel_axis``, ``plane``) are taken with a segmentation too.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad ``seg``, ``save``, ``figsize`` or ``dpi``, or ``seg`` is of another image.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> img = np.zeros((20, 30, 3), np.uint8); img[:, 15:] = (200, 40, 40)
    >>> fig = compare(img, 2, seed=0, dpi=20)
    >>> len(fig.axes)
    2
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    arr, has_alpha, s = _resolve(image, seg, segment_options)
    assert s is not None
    h, w = arr.shape[:2]
    fig = _new_figure(figsize or _auto_size(h, w, 2, 1), dpi)
    ax1, ax2 = fig.subplots(1, 2)
    factor = _panel_factor(fig, arr, 1, 2)
    _show(ax1, arr, has_alpha, "original", factor, _display_range(image, arr, has_alpha, s))
    _show(ax2, s._painted, has_alpha, f"segmented, k={s.k}", factor, s.display_range)  # read only: no copy
    return _finish(fig, save, fmt, force)


def grid(
    image: Any,
    ks: Iterable[int | Segmentation] = (3, 5, 7),
    *,
    ncols: int | None = None,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **segment_options: Any,
) -> Figure:
    """The original and its segmentation for each k in ``ks``, in a grid.

    The image is loaded and reduced once (:func:`kmseg.prepare`) for all the ks. Each panel
    is drawn as soon as its segmentation is made, which is then let go: the grid holds one
    segmentation at a time (about 7 bytes a pixel), not one per panel.

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    ks : iterable of int or Segmentation
        Numbers of clusters, each at least 1, in the order shown; an item may also be a
        finished :class:`~kmseg.Segmentation` of the image, shown as it is.
    ncols : int, optional
        Panels per row; default all in one row up to 4.
    save, force, figsize, dpi
        As in :func:`compare`.
    **segment_options
        Options of :func:`kmseg.segment` (with an int ``seed`` each k uses it afresh, so each
        panel equals ``segment(image, k, seed=seed)``).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        ``ks`` is empty or holds something other than ints >= 1 and segmentations of the
        image; other bad parameters.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> img = np.zeros((20, 30, 3), np.uint8); img[:, 15:] = (200, 40, 40); img[::3] += 9
    >>> len(grid(img, ks=(2, 3), seed=0, dpi=20).axes)
    3
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ParameterTypeError(f"ks={ks!r} is not a sequence of integers; pass for example (3, 5, 7)")
    items = list(ks)
    if not items:
        raise ParameterError("ks=[] is empty; pass at least one k, for example (3, 5, 7)")
    for k in items:
        if isinstance(k, Segmentation):
            continue
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise ParameterTypeError(f"ks contains {k!r}, which is not an integer; pass whole numbers such as (3, 5, 7)")
        if k < 1:
            raise ParameterError(f"ks contains {k}, which is out of range; every k must be at least 1")
    if ncols is not None and (isinstance(ncols, bool) or not isinstance(ncols, Integral) or ncols < 1):
        raise ParameterError(f"ncols={ncols!r} is out of range; pass a whole number of panels per row >= 1")
    prep_opts, fit_opts = split_options(segment_options)
    if isinstance(image, Prepared):
        prep: Prepared | None = as_prepared(image, prep_opts)
        arr = image.image
        has_alpha = image.has_alpha
    else:
        arr, has_alpha = read_image(image, **{k: prep_opts.pop(k, None) for k in READ_OPTIONS})
        prep = None
    makers: list[Callable[[], Segmentation]] = []
    asked: list[int | None] = []  # the k of each panel segmented here
    for item in items:
        if isinstance(item, Segmentation):
            if item.labels.shape != arr.shape[:2]:
                raise ParameterError(
                    f"ks holds a segmentation of shape {item.labels.shape} but the image is {arr.shape[:2]}; "
                    "pass segmentations of this image"
                )
            makers.append(functools.partial(_given, item))
            asked.append(None)
            continue
        if prep is None:
            prep = prepare_read(image, arr, has_alpha, prep_opts)
        # warn=False: one warning for the panels with fewer colours than their k, not one each
        makers.append(functools.partial(prep.segment, int(item), warn=False, **fit_opts))
        asked.append(int(item))
    fig, clusters = _grid(image, arr, has_alpha, makers, ncols=ncols, figsize=figsize, dpi=dpi)
    for n, (ks_above, panels) in _fewer_panels(asked, clusters).items():
        warnings.warn(f"{fewer_colours(n, min(ks_above))}: {panels}", ConvergenceWarning, stacklevel=user_stacklevel())
    return _finish(fig, save, fmt, force)


def _and(items: Iterable[Any]) -> str:
    """``"3, 5 and 7"``."""
    words = [str(i) for i in items]
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _fewer_panels(asked: Sequence[int | None], clusters: Sequence[int]) -> dict[int, tuple[list[int], str]]:
    """The grid's panels with fewer clusters than the k asked for (None: a segmentation given
    as it is), by the clusters they have: ``{n: (their ks, what to tell)}``.

    Examples
    --------
    >>> _fewer_panels([2, 3, 5, 7], [2, 2, 2, 2])
    {2: ([3, 5, 7], "the grid's panels for k=3, 5 and 7 have 2 clusters each")}
    >>> _fewer_panels([None, 7], [4, 1])
    {1: ([7], "the grid's panel for k=7 has 1 cluster")}
    """
    short: dict[int, list[int]] = {}
    for k, got in zip(asked, clusters):
        if k is not None and got < k:
            short.setdefault(got, []).append(k)
    return {
        n: (ks, f"the grid's panels for k={_and(ks)} have {counted(n, 'cluster')} each" if len(ks) > 1
            else f"the grid's panel for k={ks[0]} has {counted(n, 'cluster')}")
        for n, ks in short.items()
    }


def _given(seg: Segmentation) -> Segmentation:
    return seg


def _grid(
    image: Any,
    arr: np.ndarray,
    has_alpha: bool,
    makers: Sequence[Callable[[], Segmentation]],
    *,
    ncols: int | None = None,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> tuple[Figure, list[int]]:
    """The figure of :func:`grid` (checked parameters), and the clusters of each panel.

    ``makers`` make the segmentations of ``image`` (its array ``arr``), one per panel. Each is
    called when its panel is drawn, and its segmentation (about 7 bytes a pixel: labels and
    painted image) is let go once drawn, as the panel keeps its display-sized copy alone: the
    grid holds one segmentation at a time, not one per panel (a 12 MP photo, 3 panels: 250 MB
    less at the peak).
    """
    n = len(makers) + 1
    if ncols is None:
        ncols = n if n <= 4 else 4
    nrows = math.ceil(n / ncols)
    h, w = arr.shape[:2]
    fig = _new_figure(figsize or _auto_size(h, w, ncols, nrows), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    factor = _panel_factor(fig, arr, nrows, ncols)
    clusters: list[int] = []
    for i, (ax, make) in enumerate(zip(axes[1:], makers)):
        s = make()
        if i == 0:  # the original on its display range, which the first segmentation may know already
            _show(axes[0], arr, has_alpha, "original", factor, _display_range(image, arr, has_alpha, s))
        _show(ax, s._painted, has_alpha, f"k={s.k}", factor, s.display_range)  # read only: no copy
        clusters.append(s.k)
        del s  # before the next one is made
    for ax in axes[n:]:
        ax.set_axis_off()
    return fig, clusters


#: An elbow plot labels every k up to this many; beyond, about this many whole-number ticks.
_ELBOW_MAX_TICKS = 20


def elbow(
    result: Elbow | Any,
    *,
    yscale: str = "linear",
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **elbow_options: Any,
) -> Figure:
    """The inertia curve over k with its knee marked (and silhouettes, if computed).

    Parameters
    ----------
    result : Elbow, or an image
        The result of :func:`kmseg.elbow`; anything else is taken as an image and swept
        here with ``elbow_options`` (``ks``, ``silhouette``, segmentation options...).
    yscale : {"linear", "log"}
        Scale of the inertia axis. With "log", an inertia of 0 (an image with fewer distinct
        colours than k) is drawn on an axis linear from 0 to the smallest inertia above 0
        (matplotlib's "symlog"), where a log axis would leave its point out.
    save, force, figsize, dpi
        As in :func:`compare` (default size 7 x 4.5 inches).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad ``yscale``, ``save``, ``figsize``, ``dpi``, or elbow options.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).

    Examples
    --------
    >>> from kmseg._elbow import Elbow
    >>> r = Elbow(ks=np.arange(1, 5), inertias=np.array([9.0, 2.0, 1.0, 0.5]), knee=2)
    >>> elbow(r, dpi=20).axes[0].get_xlabel()
    'k (number of clusters)'
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    if yscale not in ("linear", "log"):
        raise ParameterError(f"yscale={yscale!r} is not supported; use 'linear' or 'log'")
    if not isinstance(result, Elbow):
        result = _elbow(result, **elbow_options)
    elif elbow_options:
        raise ParameterError(f"{next(iter(elbow_options))}= cannot change a finished sweep; pass the image to sweep it here")
    ks = result.ks
    y = result.inertias
    fig = _new_figure(figsize or (7.0, 4.5), dpi)
    ax = fig.add_subplot()
    ax.plot(ks, y, "o-", color="C0", label="inertia")
    knee_y = float(y[int(np.flatnonzero(ks == result.knee)[0])])
    ax.axvline(result.knee, color="C3", ls="--", lw=1)
    ax.plot([result.knee], [knee_y], "o", ms=12, mfc="none", mec="C3", mew=2, label=f"knee: k={result.knee}")
    ax.set_xlabel("k (number of clusters)")
    ax.set_ylabel("inertia (sum of squared distances)")
    positive = y[y > 0]
    if yscale == "log" and positive.size < y.size:
        # An inertia of 0 (fewer distinct colours than k) has no place on a log axis, and its
        # point, the knee's often, would be dropped: linear from 0 up to the smallest other.
        ax.set_yscale("symlog", linthresh=float(positive.min()) if positive.size else 1.0)
    else:
        ax.set_yscale(yscale)
    if ks.size <= _ELBOW_MAX_TICKS:
        ax.set_xticks(ks)
    else:  # one tick per k would run the labels together
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(nbins=_ELBOW_MAX_TICKS, integer=True))
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if result.silhouettes is not None and not np.all(np.isnan(result.silhouettes)):
        ax2 = ax.twinx()
        ax2.plot(ks, result.silhouettes, "s--", color="C1", label="silhouette")
        best = result.best_silhouette
        if best is not None:
            ax2.plot([best], [float(np.nanmax(result.silhouettes))], "s", ms=11, mfc="none", mec="C1", mew=2,
                     label=f"best silhouette: k={best}")
        ax2.set_ylabel("mean silhouette")
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="upper right", fontsize=9)
    ax.set_title(f"Elbow: inertia against k, knee at k={result.knee}", fontsize=11)
    return _finish(fig, save, fmt, force)


def scatter3d(
    image: Any,
    seg: Segmentation | int,
    sample: int = 5000,
    seed: int | None = 0,
    *,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **segment_options: Any,
) -> Figure:
    """A 3-D scatter of sampled pixel colours, each drawn in its cluster's colour.

    Axes are R, G and B on the 8-bit scale of the image's display range (whatever space was
    clustered in); grey images sit on the diagonal. The centres are drawn large, with a black rim.

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    seg : Segmentation or int
        As in :func:`compare`.
    sample : int
        Pixels drawn at random without replacement (all if fewer), transparent ones excluded.
    seed : int or None
        Seed of the sample; when ``seg`` is an int, also of the segmentation.
    save, force, figsize, dpi
        As in :func:`compare` (default size 7 x 6 inches).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad ``sample``, ``seed``, ``seg``, ``save``, ``figsize`` or ``dpi``.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> img = np.zeros((20, 30, 3), np.uint8); img[:, 15:] = (200, 40, 40)
    >>> fig = scatter3d(img, 2, sample=100, dpi=20)
    >>> fig.axes[0].name
    '3d'
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    sample = check_int("sample", sample, 1)
    rng = make_rng(seed)
    if isinstance(seg, Integral) and not isinstance(seg, bool):
        segment_options.setdefault("seed", seed)
    arr, has_alpha, s = _resolve(image, seg, segment_options)
    assert s is not None
    labels = s.labels.reshape(-1)
    if labels.size and labels.min() >= 0:
        # No transparent pixel: draw the positions themselves (the same draw as from a list of
        # every position, without making one).
        idx = rng.choice(labels.size, size=sample, replace=False) if labels.size > sample else np.arange(labels.size)
    else:
        idx = np.flatnonzero(labels >= 0)
        if idx.size > sample:
            idx = rng.choice(idx, size=sample, replace=False)
    idx = np.sort(idx)
    flat = arr.reshape(labels.size, -1)
    rgb = display_rgb(flat[idx][None], has_alpha, _display_range(image, arr, has_alpha, s))[0, :, :3]
    cluster_rgb = np.zeros((s.k, 3))  # row i: the colour of label i
    for p in s.palette():
        cluster_rgb[p["index"]] = np.array(p["rgb"]) / 255.0
    fig = _new_figure(figsize or (7.0, 6.0), dpi)
    ax = fig.add_subplot(projection="3d")
    pts = rgb.astype(np.float64)
    ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], c=cluster_rgb[labels[idx]], s=4, alpha=0.6, depthshade=False,
               linewidths=0)
    ax.scatter(cluster_rgb[:, 0] * 255, cluster_rgb[:, 1] * 255, cluster_rgb[:, 2] * 255, c=cluster_rgb, s=160,
               edgecolors="black", linewidths=1.5, depthshade=False)
    ax.set_xlim(0, 255)
    ax.set_ylim(0, 255)
    ax.set_zlim(0, 255)
    ax.set_xlabel("R")
    ax.set_ylabel("G")
    ax.set_zlabel("B")
    ax.set_title(f"{idx.size} pixels by cluster (k={s.k}); centres ringed", fontsize=10)
    return _finish(fig, save, fmt, force)


def histogram(
    image: Any,
    *,
    log: bool = False,
    max_pixels: int | None = None,
    channel_axis: int | None = None,
    plane: int | None = None,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """The colour distribution: a histogram of each channel on the 8-bit scale (256 bins).

    Every image is taken to 0-255 on its display range first (16-bit on its full range, floats
    in [0, 1] from 0-1, others from their minimum to their maximum); transparent pixels are
    left out; grey images have one curve.

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    log : bool
        Logarithmic count axis.
    max_pixels : int, optional
        For paths: the decompression-bomb limit.
    channel_axis, plane : int, optional
        The array's channel axis, and the plane of a file's stack, as in :func:`kmseg.segment`.
    save, force, figsize, dpi
        As in :func:`compare` (default size 7 x 4 inches).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad ``save``, ``figsize`` or ``dpi``.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> fig = histogram(np.zeros((4, 4, 3), np.uint8), dpi=20)
    >>> len(fig.axes[0].lines)
    3
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    if isinstance(image, Prepared):
        arr, has_alpha = image.image, image.has_alpha
    else:
        arr, has_alpha = read_image(image, max_pixels=max_pixels, channel_axis=channel_axis, plane=plane)
    rgba = display_rgb(arr, has_alpha, _display_range(image, arr, has_alpha))
    grey = arr.ndim == 2 or (arr.shape[2] - (1 if has_alpha else 0)) == 1
    flat = rgba.reshape(-1, rgba.shape[2])
    if has_alpha:
        flat = flat[flat[:, 3] > 0]
    fig = _new_figure(figsize or (7.0, 4.0), dpi)
    ax = fig.add_subplot()
    x = np.arange(256)
    channels = [("grey", "0.2", 0)] if grey else [("red", "tab:red", 0), ("green", "tab:green", 1), ("blue", "tab:blue", 2)]
    counts_of = _channel_counts(flat, [c for _, _, c in channels])
    for (name, colour, _), counts in zip(channels, counts_of):
        ax.plot(x, counts, color=colour, lw=1.2, label=name)
        ax.fill_between(x, counts, color=colour, alpha=0.15, lw=0)
    ax.set_xlim(0, 255)
    if log:
        ax.set_yscale("symlog", linthresh=1)
    ax.set_xlabel("value (8-bit scale)")
    ax.set_ylabel("pixels")
    ax.set_title(f"Colour distribution of {flat.shape[0]} pixels", fontsize=11)
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3)
    return _finish(fig, save, fmt, force)


#: Pixels counted at a time by ``_channel_counts``.
_COUNT_BLOCK = 1 << 20


def _channel_counts(values: np.ndarray, channels: list[int]) -> list[np.ndarray]:
    """(256,) int64 counts of each of ``channels`` of (n, C) uint8 ``values``, a block of pixels at
    a time: ``np.bincount`` converts its input to intp first, which on a whole column of a 12 MP
    image costs more than the counting (160 -> 60 ms for three channels)."""
    out = [np.zeros(256, np.int64) for _ in channels]
    for start in range(0, values.shape[0], _COUNT_BLOCK):
        block = values[start : start + _COUNT_BLOCK]
        for counts, c in zip(out, channels):
            counts += np.bincount(block[:, c], minlength=256)
    return out


def palette(
    seg: Segmentation,
    *,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
) -> Figure:
    """The cluster colours as swatches, each as tall as its share of the pixels, in the
    palette's order (largest share first, see :meth:`kmseg.Segmentation.palette`), each
    labelled with its cluster index and hex colour.

    Parameters
    ----------
    seg : Segmentation
    save, force, figsize, dpi
        As in :func:`compare` (default size 7 x 3.5 inches).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterTypeError
        ``seg`` is not a Segmentation.
    ParameterError
        Bad ``save``, ``figsize`` or ``dpi``.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).

    Examples
    --------
    >>> from kmseg.segment import segment
    >>> img = np.zeros((4, 4, 3), np.uint8); img[:1] = (255, 0, 0)
    >>> len(palette(segment(img, 2, seed=0), dpi=20).axes[0].patches)
    2
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    if not isinstance(seg, Segmentation):
        raise ParameterTypeError(f"seg of type {type(seg).__name__} is not a Segmentation; pass the result of kmseg.segment()")
    pal = seg.palette()
    fig = _new_figure(figsize or (7.0, 3.5), dpi)
    ax = fig.add_subplot()
    x = np.arange(len(pal))
    fr = np.array([p["fraction"] for p in pal])
    ax.bar(x, fr * 100, color=[_legend_colour(p["rgb"]) for p in pal], edgecolor="0.3", linewidth=0.8, width=0.85)
    for xi, p in zip(x, pal):
        ax.text(xi, p["fraction"] * 100, f"{100 * p['fraction']:.1f}%", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [f"{p['index']}\n{p['hex']}" for p in pal], fontsize=8)
    ax.set_ylabel("share of pixels (%)")
    ax.set_ylim(0, max(float(fr.max()) * 100 * 1.15, 1.0))
    ax.set_title(f"Palette: {seg.k} colours, largest first", fontsize=11)
    ax.spines[["top", "right"]].set_visible(False)
    return _finish(fig, save, fmt, force)


def masks(
    image: Any,
    seg: Segmentation | int,
    disable: Sequence[int] | int | None = None,
    *,
    ncols: int = 4,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **segment_options: Any,
) -> Figure:
    """The image with some clusters blacked out, and a cut-out of every cluster, in the
    palette's order (largest share first, see :meth:`kmseg.Segmentation.palette`).

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    seg : Segmentation or int
        As in :func:`compare`.
    disable : int or sequence of int, optional
        Clusters to black out in the first panel; default the largest cluster (often the
        background).
    ncols : int
        Panels per row.
    save, force, figsize, dpi
        As in :func:`compare`.

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        A cluster index is out of range; other bad parameters.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> img = np.zeros((20, 30, 3), np.uint8); img[:, 20:] = (200, 40, 40)
    >>> fig = masks(img, 2, seed=0, dpi=20)
    >>> [ax.get_title() for ax in fig.axes][:2]
    ['cluster 0 blacked out', 'cluster 0 (66.7%)']
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    if isinstance(ncols, bool) or not isinstance(ncols, Integral) or ncols < 1:
        raise ParameterError(f"ncols={ncols!r} is out of range; pass a whole number of panels per row >= 1")
    arr, has_alpha, s = _resolve(image, seg, segment_options)
    assert s is not None
    if disable is None:
        disable = [int(np.argmax(s.counts))]
    off = [disable] if isinstance(disable, Integral) else list(disable)
    masked = s._masked_for_display(off)  # hidden pixels black on any display range
    n = s.k + 1
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    h, w = arr.shape[:2]
    fig = _new_figure(figsize or _auto_size(h, w, ncols, nrows), dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False).reshape(-1)
    word = "cluster" if len(off) == 1 else "clusters"
    factor = _panel_factor(fig, arr, nrows, ncols)
    vrange = s.display_range  # the panels are made from the segmentation
    _show(axes[0], masked, has_alpha, f"{word} {', '.join(str(i) for i in off)} blacked out", factor, vrange)
    if has_alpha:
        _transparent_as_grey(axes[0])  # as in the cut-outs, so every panel shows the whole frame
    total = max(int(s.counts.sum()), 1)
    for ax, i in zip(axes[1:], palette_order(s.counts)):
        _show(ax, s.extract(i), True, f"cluster {i} ({100 * s.counts[i] / total:.1f}%)", factor, vrange)
        _transparent_as_grey(ax)
    for ax in axes[n:]:
        ax.set_axis_off()
    return _finish(fig, save, fmt, force)


def edge_agreement(canny: np.ndarray, bounds: np.ndarray, tolerance: int = 1) -> float:
    """Share of Canny edge pixels within ``tolerance`` pixels (chessboard) of a segment boundary.

    NaN when there are no Canny edges.

    Examples
    --------
    >>> e = np.zeros((5, 5), bool); e[2, :] = True
    >>> b = np.zeros((5, 5), bool); b[3, :3] = True
    >>> edge_agreement(e, b)
    0.8
    """
    import cv2

    n = int(canny.sum())
    if n == 0:
        return float("nan")
    kernel = np.ones((2 * tolerance + 1, 2 * tolerance + 1), np.uint8)
    near = cv2.dilate(bounds.astype(np.uint8), kernel) > 0
    return float((canny & near).sum()) / n


def edges(
    image: Any,
    seg: Segmentation | int | None = None,
    low: float = 100,
    high: float = 200,
    *,
    save: str | os.PathLike[str] | None = None,
    force: bool = False,
    figsize: tuple[float, float] | None = None,
    dpi: float = 100,
    **segment_options: Any,
) -> Figure:
    """Canny edges and segment boundaries drawn over the photo.

    The photo is dimmed; Canny edges (:func:`kmseg.edges`) are yellow, segment
    boundaries (:meth:`kmseg.Segmentation.boundaries`) cyan, and pixels on both white. The title
    gives the share of Canny edge pixels within one pixel of a boundary.

    Parameters
    ----------
    image : str, path, (M, N[, C]) ndarray or Prepared
    seg : Segmentation, int or None
        As in :func:`compare`; None draws the Canny edges alone.
    low, high : float
        Canny thresholds, ``0 <= low <= high``.
    save, force, figsize, dpi
        As in :func:`compare` (default 8 inches wide).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ParameterError, ParameterTypeError
        Bad thresholds, ``seg``, ``save``, ``figsize`` or ``dpi``.
    OutputExistsError
        ``save`` exists and ``force`` is False.
    OutputError
        ``save`` cannot be written there (a directory, no permission, a full disk...).
    ImageError
        The image cannot be read.

    Examples
    --------
    >>> img = np.zeros((20, 30, 3), np.uint8); img[:, 15:] = (250, 250, 250)
    >>> fig = edges(img, 2, seed=0, dpi=20)
    >>> fig.axes[0].get_title()
    'Canny edges (100, 200) and k=2 boundaries: 100% of edge pixels near a boundary'
    """
    fmt = _check_save(save, force)
    _check_size(figsize, dpi)
    arr, has_alpha, s = _resolve(image, seg, segment_options, required=False)
    canny = _canny(arr, low, high)
    bounds = _boundaries(s.labels) if s is not None else np.zeros(canny.shape, bool)
    # The dimmed photo is made at display size; the lines are found on every pixel, and a
    # reduced block takes a line's colour if any of its pixels is on the line, so that thin
    # lines survive the reduction.
    h, w = arr.shape[:2]
    fig = _new_figure(figsize or _auto_size(h, w, 1, 1, width=8.0), dpi)
    factor = _panel_factor(fig, arr)
    vrange = _display_range(image, arr, has_alpha, s)
    shown = (_for_display(arr, has_alpha, factor, vrange)[..., :3] * np.float32(0.55)).astype(np.uint8)
    for mask, colour in ((bounds, _BOUNDARY_RGB), (canny, _EDGE_RGB), (canny & bounds, _BOTH_RGB)):
        shown[_display.shrink(mask, factor)] = colour
    ax = fig.add_subplot()
    ax.imshow(shown, interpolation="nearest")
    ax.set_axis_off()
    lo, hi = (f"{v:g}" for v in (float(low), float(high)))
    if s is None:
        title = f"Canny edges ({lo}, {hi}): {100 * canny.mean():.1f}% of pixels"
        handles = [Patch(color=_legend_colour(_EDGE_RGB), label="Canny edge")]
    else:
        agree = edge_agreement(canny, bounds)
        share = "no Canny edges" if math.isnan(agree) else f"{100 * agree:.0f}% of edge pixels near a boundary"
        title = f"Canny edges ({lo}, {hi}) and k={s.k} boundaries: {share}"
        handles = [
            Patch(color=_legend_colour(_EDGE_RGB), label="Canny edge"),
            Patch(color=_legend_colour(_BOUNDARY_RGB), label="segment boundary"),
            Patch(facecolor=_legend_colour(_BOTH_RGB), edgecolor="0.4", label="both"),
        ]
    ax.set_title(title, fontsize=9)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=8, frameon=False)
    return _finish(fig, save, fmt, force)
