"""One self-contained HTML page about an image and its segmentation: :func:`write_report`.

The page holds every figure of :mod:`kmseg.plot` as an embedded PNG (``data:`` URI), the
palette table, the parameters and the time each step took. It links to nothing, loads no
script, font or style sheet, and opens anywhere, offline.
"""

from __future__ import annotations

import base64
import errno
import html
import os
import platform
import time
import warnings
from functools import partial
from numbers import Integral
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ._elbow import Elbow, check_ks, elbow, prepare_read, split_options
from .errors import (
    ConvergenceWarning,
    ParameterError,
    ParameterTypeError,
    cannot_write,
    counted,
    exists_already,
    user_stacklevel,
)
from .segment import READ_OPTIONS, Prepared, Segmentation, check_int, fewer_colours, read_image

__all__ = ["SECTIONS", "n_steps", "write_report"]

#: Section ids of the page, in order. Each is an ``<section id=...>``.
SECTIONS = ("segmentation", "elbow", "grid", "scatter", "histogram", "palette", "masks", "edges", "parameters")
_FIGURES = ("segmentation", "elbow", "grid", "scatter", "histogram", "palette", "masks", "edges")
#: The figures that show the image itself (the others are plots).
_PHOTO_FIGURES = ("segmentation", "grid", "masks", "edges")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1040px;
padding:0 16px 48px;color:#1d1d1f;line-height:1.45}
h1{font-size:1.6em;margin:24px 0 4px}h2{font-size:1.25em;margin:0 0 8px}h3{font-size:1.05em}
nav{margin:8px 0 16px;font-size:.92em}nav a{margin-right:12px;color:#0a58ca;text-decoration:none}
section{border-top:1px solid #ddd;padding:16px 0}
figure{margin:0}img{max-width:100%;height:auto;display:block}
figcaption,.note{color:#555;font-size:.9em}
table{border-collapse:collapse;font-size:.9em;margin:8px 0}
th,td{border-bottom:1px solid #e5e5e5;padding:3px 10px;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:2.6em;height:1.2em;border:1px solid #888;vertical-align:middle}
code{background:#f4f4f4;padding:0 3px}
"""


def n_steps(ks: Iterable[int] = range(1, 11)) -> int:
    """Steps :func:`write_report` reports to its ``progress`` callback for these ``ks``."""
    return 4 + len(check_ks(ks)) + len(_FIGURES)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _check_out(out_path: Any, force: Any) -> Path:
    if not isinstance(out_path, (str, os.PathLike)):
        raise ParameterTypeError(f"out_path={out_path!r} is not a path; pass a file name such as 'report.html'")
    if not isinstance(force, (bool, np.bool_)):
        raise ParameterTypeError(f"force={force!r} is not a bool; pass True or False")
    path = Path(out_path)
    if path.is_dir():
        raise cannot_write(f"out_path={os.fspath(out_path)!r} is a directory; pass a file path inside it", errno.EISDIR)
    if path.exists() and not force:
        raise exists_already(path)
    return path


def _segment_at(prep: Prepared, result: Elbow, k: int, fit_options: dict[str, Any]) -> Segmentation:
    """The segmentation at k, started from the sweep's centres when the sweep has them (a few iterations).

    Without the ConvergenceWarning for fewer distinct colours than k: the report gives one
    for all its fits (:func:`_fewer_colours_note`).
    """
    if _from_sweep(result, k):
        hits = np.flatnonzero(result.ks == k)
        opts = {name: fit_options[name] for name in ("max_iter", "tol") if name in fit_options}
        return prep.segment(k, init=result.centers[hits[0]], warn=False, **opts)
    return prep.segment(k, warn=False, **fit_options)


def _from_sweep(result: Elbow, k: int) -> bool:
    """Whether the segmentation at k starts from the sweep's centres (k was swept, and found k colours)."""
    hits = np.flatnonzero(result.ks == k)
    return bool(hits.size) and result.centers[hits[0]].shape[0] == k


def _space_words(prep: Any) -> str:
    """The space ``prep`` is clustered in, as the page says it: "rgb" is the values as they are,
    which for a grey or multi-band image are not red, green and blue."""
    if prep.color_space != "rgb" or prep.n_channels == 3:
        return prep.color_space
    if prep.n_channels == 1:
        return "grey (the grey levels as they are)"
    return f"the {prep.n_channels} bands' values as they are"


def _fewer_colours_note(
    result: Elbow, chosen: int, seg: Segmentation, grid_ks: list[int], grid_k: list[int]
) -> list[str]:
    """What an image with fewer distinct colours than some k of the report did to the report:
    one message for each number of colours found (one in practice, as every fit is of the same
    reduced image), where each fit below its k would have warned on its own.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> colours = [np.zeros((n, 3)) for n in (1, 2, 2, 2)]  # the sweep's centres at k = 1..4
    >>> r = Elbow(ks=np.arange(1, 5), inertias=np.array([1.0, 0, 0, 0]), knee=2, centers=tuple(colours))
    >>> for line in _fewer_colours_note(r, 5, SimpleNamespace(k=2), [3, 5, 7], [2, 2, 2]):
    ...     print(line)
    the image has only 2 distinct colours, fewer than k=3: in the report, the elbow is flat from k=2 on, the segmentation for k=5 has 2 clusters and the grid's panels for k=3, 5 and 7 have 2 clusters each
    """
    from .plot import _and, _fewer_panels

    # n (distinct colours) -> (the ks asked for above n, what each part of the report shows)
    found: dict[int, tuple[set[int], list[str]]] = {}

    def add(n: int, ks: list[int], what: str) -> None:
        asked, parts = found.setdefault(n, (set(), []))
        asked.update(ks)
        parts.append(what)

    flat: dict[int, list[int]] = {}
    for kk, c in zip(result.ks.tolist(), result.centers):
        if c.shape[0] < kk:
            flat.setdefault(c.shape[0], []).append(kk)
    for n, ks in flat.items():
        add(n, ks, f"the elbow is flat from k={n} on")
    if seg.k < chosen:
        add(seg.k, [chosen], f"the segmentation for k={chosen} has {counted(seg.k, 'cluster')}")
    for n, (ks, panels) in _fewer_panels(grid_ks, grid_k).items():
        add(n, ks, panels)
    return [f"{fewer_colours(n, min(asked))}: in the report, {_and(parts)}" for n, (asked, parts) in sorted(found.items())]


def _table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """An HTML table; cells must be escaped already."""
    th = "".join(f'<th{" class=num" if i in numeric else ""}>{h}</th>' for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=num" if i in numeric else ""}>{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _versions() -> dict[str, str]:
    import cv2
    import matplotlib
    import numba

    from . import __version__

    return {
        "kmseg": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "matplotlib": matplotlib.__version__,
        "opencv": cv2.__version__,
    }


def write_report(
    image: Any,
    out_path: str | os.PathLike[str],
    *,
    k: int | None = None,
    force: bool = False,
    ks: Iterable[int] = range(1, 11),
    grid_ks: Iterable[int] = (3, 5, 7),
    silhouette: bool = True,
    canny: tuple[float, float] = (100, 200),
    progress: Callable[[int, int, str], None] | None = None,
    **segment_options: Any,
) -> Path:
    """Write one self-contained HTML report of an image's segmentation.

    The image is read and reduced once. The report sweeps ``ks`` (:func:`kmseg.elbow`,
    with silhouettes), segments at ``k`` (the sweep's knee if not given), and shows: the
    original against the segmentation, the elbow curve, a grid over ``grid_ks``, a 3-D
    scatter of pixel colours, the colour histogram, the palette (figure and table: index,
    swatch, hex, rgb, fraction), the cluster masks and cut-outs (largest cluster blacked
    out), Canny edges against segment boundaries, the parameters and versions, and the
    time of every step. Every image is an embedded PNG; the page has no external link,
    script, font or style sheet. Sections have the ids in :data:`SECTIONS`.

    The segmentation at ``k`` starts from the sweep's centres at ``k`` (so it matches the
    elbow curve and costs a few iterations); a ``k`` outside ``ks`` is fit from scratch.

    Parameters
    ----------
    image : str, path or (M, N[, C]) ndarray
    out_path : str or path
        The HTML file to write (atomically).
    k : int, optional
        Number of clusters; default the knee of the sweep.
    force : bool
        Overwrite ``out_path`` if it exists. Checked before any work is done.
    ks : iterable of int
        The elbow sweep (at least 3 distinct ks >= 1).
    grid_ks : iterable of int
        The ks of the side-by-side grid.
    silhouette : bool
        Compute silhouette scores in the sweep (on 2000 pixels).
    canny : (float, float)
        Canny thresholds (low, high) for the edges section.
    progress : callable, optional
        Called as ``progress(done, total, note)`` after each step (for a progress bar);
        ``total`` is :func:`n_steps` of ``ks``.
    **segment_options
        Options of :func:`kmseg.segment` (``color_space``, ``n_init``, ``seed``...).

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    OutputExistsError
        ``out_path`` exists and ``force`` is False (before anything is computed).
    OutputError
        ``out_path`` cannot be written there (a directory, no permission, a full disk...).
    ParameterError, ParameterTypeError
        A parameter is out of range or of the wrong type.
    ImageError
        The image cannot be read.

    Warns
    -----
    ConvergenceWarning
        Once, when the image has fewer distinct colours than some k of the report (of ``ks``,
        ``k`` or ``grid_ks``), saying what that did to the report (the fits below their k do
        not warn each on their own); the page's header says it too.

    Examples
    --------
    >>> import tempfile, os
    >>> tmp = tempfile.TemporaryDirectory()
    >>> img = np.zeros((30, 40, 3), np.uint8); img[:, 20:] = (200, 40, 40)
    >>> img += np.random.default_rng(0).integers(0, 9, img.shape, dtype=np.uint8)
    >>> path = write_report(img, os.path.join(tmp.name, "r.html"), seed=0, ks=range(1, 5))
    >>> 'id="elbow"' in path.read_text()
    True
    >>> tmp.cleanup()
    """
    from . import plot

    t_start = time.perf_counter()
    path = _check_out(out_path, force)
    k_values = check_ks(ks)
    if k is not None:
        k = check_int("k", k, 1)
    if not isinstance(silhouette, (bool, np.bool_)):
        raise ParameterTypeError(f"silhouette={silhouette!r} is not a bool; pass True or False")
    if not isinstance(canny, (tuple, list)) or len(canny) != 2:
        raise ParameterError(f"canny={canny!r} is not valid; pass (low, high) thresholds such as (100, 200)")
    low, high = canny
    grid_list = list(grid_ks) if isinstance(grid_ks, Iterable) and not isinstance(grid_ks, (str, bytes)) else grid_ks
    if not isinstance(grid_list, list) or not grid_list or not all(
        isinstance(g, Integral) and not isinstance(g, bool) and g >= 1 for g in grid_list
    ):
        raise ParameterError(f"grid_ks={grid_ks!r} is not valid; pass one or more ints >= 1, such as (3, 5, 7)")
    if progress is not None and not callable(progress):
        raise ParameterTypeError(f"progress={progress!r} is not callable; pass a function (done, total, note), or None")
    prep_opts, fit_opts = split_options(segment_options)
    from ._edges import _check_threshold

    if _check_threshold("low", low) > _check_threshold("high", high):
        raise ParameterError(f"canny={canny!r} has low above high; pass (low, high) with low <= high")

    total = 4 + len(k_values) + len(_FIGURES)
    done = 0
    timings: list[tuple[str, float]] = []

    def step(name: str, t0: float, note: str | None = None) -> float:
        nonlocal done
        now = time.perf_counter()
        timings.append((name, now - t0))
        done += 1
        if progress is not None:
            progress(done, total, note or name)
        return now

    # -- load and reduce, once
    t = time.perf_counter()
    arr, has_alpha = read_image(image, **{k: prep_opts.pop(k, None) for k in READ_OPTIONS})
    t = step("load", t)
    prep = prepare_read(image, arr, has_alpha, prep_opts)
    # 8-bit colour and 16-bit grey are clustered as their distinct colours; others as their pixels
    histogram = prep.reduced.kind == "histogram"
    t = step("reduce (colour histogram)" if histogram else "reduce (pixels)", t)

    # -- the elbow sweep
    def on_k(kk: int) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, f"elbow k={kk}")

    # warn=False: one warning for the whole report (_fewer_colours_note), not one for each fit
    result = elbow(prep, k_values, silhouette=bool(silhouette), progress=on_k, warn=False, **fit_opts)
    timings.append((f"elbow sweep (k = {', '.join(str(x) for x in result.ks)})", time.perf_counter() - t))
    t = time.perf_counter()
    chosen = result.knee if k is None else k
    seg = _segment_at(prep, result, chosen, fit_opts)
    t = step(f"segmentation (k={chosen})", t)

    # -- figures
    figures: dict[str, str] = {}
    # The figures of the photo encode 3-6 times faster than with zlib's defaults, the same pixels
    # (see plot.figure_bytes): run-length for colour, level 3 for an image drawn grey (fewer than 3
    # colour bands, see _display.shown_bands), as R = G = B, which run-length codes badly. The
    # plots keep the defaults.
    photo_png: dict[str, Any] = {"compress_level": 3} if prep.n_channels < 3 else {"png_strategy": "rle"}

    def render(name: str, make: Callable[[], Any]) -> None:
        nonlocal t
        fig = make()
        figures[name] = _png_uri(plot.figure_bytes(fig, "png", **(photo_png if name in _PHOTO_FIGURES else {})))
        t = step(f"figure: {name}", t)

    largest = int(np.argmax(seg.counts))
    # The figures take ``prep``: the array as read, its display range computed once, no check again.
    render("segmentation", lambda: plot.compare(prep, seg))
    render("elbow", lambda: plot.elbow(result))
    # The grid's segmentations are made one at a time, each dropped once its panel is drawn (about
    # 7 bytes a pixel each; see plot._grid).
    grid_k: list[int] = []  # the clusters each panel got (fewer where the image has fewer colours)

    def grid_figure() -> Any:
        makers = [partial(plot._given, seg) if g == chosen else partial(_segment_at, prep, result, int(g), fit_opts)
                  for g in grid_list]
        fig, clusters = plot._grid(prep, prep.image, prep.has_alpha, makers)
        grid_k.extend(clusters)
        return fig

    render("grid", grid_figure)
    render("scatter", lambda: plot.scatter3d(prep, seg, seed=0))
    render("histogram", lambda: plot.histogram(prep))
    render("palette", lambda: plot.palette(seg))
    render("masks", lambda: plot.masks(prep, seg, disable=[largest]))
    render("edges", lambda: plot.edges(prep, seg, low, high))
    notes = _fewer_colours_note(result, chosen, seg, [int(g) for g in grid_list], grid_k)
    for note in notes:
        warnings.warn(note, ConvergenceWarning, stacklevel=user_stacklevel())

    # -- the page
    source = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
    name = Path(source).name if source else "array"
    h, w = arr.shape[:2]
    channels = 1 if arr.ndim == 2 else arr.shape[2]
    how = "the elbow's knee" if k is None else "given"
    few = f"as the image has only {counted(seg.k, 'distinct colour')}"
    pal = seg.palette()

    def fig_html(key: str, alt: str, caption: str) -> str:
        return (f'<figure><img src="{figures[key]}" alt="{_e(alt)}">'
                f"<figcaption>{_e(caption)}</figcaption></figure>")

    sil = result.silhouettes
    elbow_rows = []
    for i, kk in enumerate(result.ks.tolist()):
        mark = " (knee)" if kk == result.knee else ""
        s_txt = "" if sil is None or np.isnan(sil[i]) else f"{sil[i]:.4f}"
        elbow_rows.append([_e(f"{kk}{mark}"), _e(f"{result.inertias[i]:.6g}"), _e(s_txt), _e(f"{result.seconds[i]:.3f}")])
    pal_rows = [
        [
            _e(p["index"]),
            f'<span class="swatch" style="background:{_e(p["hex"])}"></span>',
            f"<code>{_e(p['hex'])}</code>",
            _e("({}, {}, {})".format(*p["rgb"])),
            _e(f"{p['fraction']:.4f} ({100 * p['fraction']:.1f}%)"),
        ]
        for p in pal
    ]
    fitted = prep.fit_reduced  # with scale, of the scaled copy
    scaled = f" (of a copy at scale {prep.scale:g}; the image has {prep.n_pixels})" if prep.scale else ""
    params = {
        "source": source or "in-memory array",
        "size": f"{w} x {h} pixels, {channels} channel(s), {arr.dtype}",
        "pixels clustered": f"{fitted.n_pixels}{scaled}",
        ("distinct colours (points clustered)" if histogram else
         "points clustered (every pixel)" if not prep.scale else "points clustered (every pixel of the copy)"):
            f"{fitted.points.shape[0]}",
        "k": f"{chosen} ({how})" + (f"; {counted(seg.k, 'cluster')}, {few}" if seg.k < chosen else ""),
        "elbow ks": ", ".join(str(x) for x in result.ks),
        "knee method": "Kneedle difference curve on log(inertia); see kmseg.find_knee",
        "repaired ks (non-monotone fits refit)": ", ".join(str(x) for x in result.repaired) or "none",
        "best silhouette": "n/a" if result.best_silhouette is None else f"k={result.best_silhouette}",
        "color_space": _space_words(prep),
        "n_init": fit_opts.get("n_init", 10),
        "init": fit_opts.get("init", "k-means++"),
        "max_iter": fit_opts.get("max_iter", 300),
        "tol": fit_opts.get("tol", 0.0),
        "seed": fit_opts.get("seed"),
        "scale": prep.scale,
        "alpha": prep.has_alpha,
        "canny (low, high)": f"({low:g}, {high:g})",
        "grid ks": ", ".join(str(g) for g in grid_list),
        "inertia at k": f"{seg.inertia:.6g}",
        "iterations (final run)": f"{seg.n_iter}",
        "converged": f"{seg.converged}",
    }
    params.update({f"version: {k_}": v for k_, v in _versions().items()})
    t_write = time.perf_counter()
    timings.append(("assemble the page", 0.0))  # filled in below
    total_s = t_write - t_start

    def timing_rows() -> list[list[str]]:
        rows = [[_e(n), _e(f"{s:.3f}")] for n, s in timings]
        return rows + [[_e("total"), _e(f"{total_s:.3f}")]]

    nav = "".join(f'<a href="#{s}">{s}</a>' for s in SECTIONS)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>kmseg report: {_e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<header><h1>kmseg report: {_e(name)}</h1>",
        f'<p class="note">{_e(f"{w} x {h} pixels, k = {chosen} ({how}), colour space {_space_words(prep)}.")}</p>',
        *(f'<p class="note"><strong>Note:</strong> {_e(n[0].upper() + n[1:])}.</p>' for n in notes),
        f"<nav>{nav}</nav></header>",
        '<section id="segmentation"><h2>Segmentation</h2>',
        fig_html("segmentation", "original and segmented image", f"Left: the original. Right: every pixel painted "
                 f"in its cluster's mean colour, k = {chosen}" + (f" ({counted(seg.k, 'cluster')}, {few})" if seg.k < chosen
                 else "") + f". Inertia {seg.inertia:.6g}; {counted(seg.n_iter, 'iteration')}" + (
                     " from the sweep's centres at k." if _from_sweep(result, chosen) else ".")),
        "</section>",
        '<section id="elbow"><h2>Choosing k: the elbow</h2>',
        fig_html("elbow", "inertia against k", f"Inertia against k. The knee (k = {result.knee}) is where Kneedle's "
                 "difference curve on the log-inertia peaks" + ("; the silhouette (on a pixel sample) is on the right "
                 "axis." if sil is not None and not np.all(np.isnan(sil)) else ".")),
        _table(["k", "inertia", "silhouette", "seconds"], elbow_rows, {1, 2, 3}),
        "</section>",
        '<section id="grid"><h2>Side by side</h2>',
        fig_html("grid", "segmentations for several k", "The original and its segmentation for k = "
                 + ", ".join(str(g) for g in grid_list) + "." + (
                     "" if grid_k == [int(g) for g in grid_list] else " The image has fewer distinct colours than "
                     f"some of these k, so the panels have {', '.join(str(g) for g in grid_k)} clusters.")),
        "</section>",
        '<section id="scatter"><h2>Pixel colours in 3-D</h2>',
        fig_html("scatter", "3-D scatter of pixel colours", "A random sample of pixels in RGB, each in its cluster's "
                 "colour; the centres are ringed."),
        "</section>",
        '<section id="histogram"><h2>Colour distribution</h2>',
        fig_html("histogram", "per-channel histogram", "Histogram of each channel on the 8-bit scale."),
        "</section>",
        '<section id="palette"><h2>Palette</h2>',
        fig_html("palette", "palette swatches", "The cluster colours, largest share first."),
        _table(["index", "swatch", "hex", "rgb", "fraction"], pal_rows, {4}),
        "</section>",
        '<section id="masks"><h2>Masks and cut-outs</h2>',
        fig_html("masks", "masked image and cut-outs", f"First: the image with the largest cluster ({largest}) "
                 "blacked out. Then each cluster alone (other pixels transparent, shown grey), largest share first."),
        "</section>",
        '<section id="edges"><h2>Edges</h2>',
        fig_html("edges", "Canny edges and segment boundaries", f"Canny edges (thresholds {low:g}, {high:g}) in yellow, "
                 "segment boundaries in cyan, both in white."),
        "</section>",
        '<section id="parameters"><h2>Parameters</h2>',
        _table(["parameter", "value"], [[_e(a), _e(b)] for a, b in params.items()]),
        '<h3 id="timings">Timings</h3>',
        None,  # the timings table, once the page is assembled
        "</section>",
        '<footer class="note">Made by kmseg. Exact K-means on the ' + ("weighted distinct colours" if histogram
                                                                       else "pixels") + " of the image"
        + (f", scaled by {prep.scale:g}" if prep.scale else "") + ".</footer>",
        "</body></html>",
    ]
    timings[-1] = ("assemble the page", time.perf_counter() - t_write)
    total_s = time.perf_counter() - t_start
    parts[parts.index(None)] = _table(["step", "seconds"], timing_rows(), {1})
    text = "\n".join(p for p in parts if p is not None) + "\n"
    from .io import write_text

    written = write_text(path, text, force=force)
    done += 1
    if progress is not None:
        progress(done, total, "write")
    return written
