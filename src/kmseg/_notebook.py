"""How results show themselves in Jupyter: the HTML of ``Segmentation._repr_html_`` and ``Elbow._repr_html_``.

Each snippet is self-contained: inline styles only (no ``<style>`` block that would leak into
the notebook's page), images as ``data:`` URIs, no script, font or link. Every value that goes
into the HTML, numbers included, is escaped.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _display

if TYPE_CHECKING:
    from ._elbow import Elbow
    from .segment import Segmentation

__all__ = ["THUMBNAIL_MAX", "elbow_html", "segmentation_html", "thumbnail"]

#: The longest side of a segmentation's thumbnail, in pixels.
THUMBNAIL_MAX = 480
#: Thumbnails smaller than this on their longest side are shown enlarged by a whole factor.
_SHOWN_MIN = 240

_BOX = "display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start;font-size:13px"
_TABLE = '<table style="border-collapse:collapse;text-align:right;font-variant-numeric:tabular-nums">'


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _row(cells: list[str], tag: str = "td", attrs: str = "") -> str:
    """A table row of cells escaped already."""
    return f"<tr{attrs}>" + "".join(f'<{tag} style="padding:1px 8px">{c}</{tag}>' for c in cells) + "</tr>"


def thumbnail(seg: Segmentation) -> np.ndarray:
    """The segmented image as the notebook shows it: 8-bit, its long side at most
    :data:`THUMBNAIL_MAX`, on the input's display range, alpha kept.

    Reduced by taking every ``step``-th row and column (``step`` the smallest whole number that
    brings the long side within bounds), not by area: the image is flat colours, and a pixel of
    the thumbnail is a pixel of the image, in its cluster's colour, never a blend of two. Only
    the rows and columns kept are read and converted, whatever the image's size.

    Returns
    -------
    (m, n[, C]) ndarray of uint8
        Grey, grey+alpha, RGB or RGBA (:func:`kmseg._display.shown`), with
        ``m = ceil(M / step)``, ``n = ceil(N / step)``.

    Examples
    --------
    >>> from kmseg import segment
    >>> img = np.zeros((1000, 30), np.uint16); img[:, 15:] = 65535
    >>> thumb = thumbnail(segment(img, 2, seed=0))   # every 3rd row and column
    >>> thumb.shape, thumb.dtype, np.unique(thumb).tolist()
    ((334, 10), dtype('uint8'), [0, 255])
    """
    painted = seg._painted
    step = -(-max(painted.shape[:2]) // THUMBNAIL_MAX)
    return _display.shown(painted[::step, ::step], seg._has_alpha, 1.0, seg.display_range)


def _png_uri(arr: np.ndarray) -> str:
    from .io import _encode

    return "data:image/png;base64," + base64.b64encode(_encode("thumbnail", arr, "PNG")).decode("ascii")


def _percent(fraction: float) -> str:
    """A share in per cent to 0.1, with ``<0.1%`` rather than ``0.0%`` for a cluster that has pixels."""
    if 0 < fraction < 0.0005:
        return "<0.1%"
    return f"{100 * fraction:.1f}%"


def segmentation_html(seg: Segmentation) -> str:
    """The HTML of :meth:`Segmentation._repr_html_`: the one-line summary (its ``repr``, and the
    source file when there is one), a thumbnail (:func:`thumbnail`) as an inline PNG, and the
    palette in :meth:`Segmentation.palette`'s order (largest share first): colour chip, hex,
    share and cluster index.

    Examples
    --------
    >>> from kmseg import segment
    >>> img = np.zeros((4, 4, 3), np.uint8); img[:, 2:] = (250, 10, 10)
    >>> snippet = segment(img, 2, seed=0)._repr_html_()
    >>> '<img src="data:image/png;base64,' in snippet, "<code>#fa0a0a</code>" in snippet
    (True, True)
    """
    thumb = thumbnail(seg)
    h, w = thumb.shape[:2]
    zoom = max(1, _SHOWN_MIN // max(h, w))
    summary = f"<code>{_e(repr(seg))}</code>"
    if seg.source:
        summary += f" from <code>{_e(seg.source)}</code>"
    chip = ('<span style="display:inline-block;width:2em;height:1.1em;vertical-align:middle;border:1px solid #888;'
            'background:{}"></span>')
    rows = "".join(
        _row([chip.format(_e(p["hex"])), f"<code>{_e(p['hex'])}</code>", _e(_percent(p["fraction"])), _e(p["index"])])
        for p in seg.palette()
    )
    return (
        f'<div class="kmseg-segmentation" style="{_BOX}">'
        f'<div style="flex-basis:100%">{summary}</div>'
        f'<img src="{_png_uri(thumb)}" width="{w * zoom}" height="{h * zoom}" '
        f'alt="{_e(f"the segmented image, k={seg.k}")}" '
        'style="image-rendering:pixelated;max-width:100%;height:auto">'
        f'<div style="max-height:{THUMBNAIL_MAX}px;overflow-y:auto">'
        f'{_TABLE}<thead>{_row(["colour", "hex", "share", "cluster"], "th")}</thead><tbody>{rows}</tbody></table>'
        "</div></div>"
    )


#: The elbow curve's drawing: its size and the margins around the plotted area, in pixels.
_SVG_W, _SVG_H = 320, 180
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 10, 30
#: At most this many ks are labelled on the curve's axis (else the first and last only).
_MAX_TICKS = 15


def _curve_points(ks: np.ndarray, inertias: np.ndarray) -> list[tuple[float, float]]:
    """Where each (k, inertia) is drawn in the SVG: k across, inertia up, each scaled linearly to
    the plotted area (a flat curve is drawn half-way up)."""
    x = ks.astype(np.float64)
    y = inertias.astype(np.float64)
    width = _SVG_W - _LEFT - _RIGHT
    height = _SVG_H - _TOP - _BOTTOM
    xs = _LEFT + (x - x[0]) / (x[-1] - x[0]) * width if x[-1] > x[0] else np.full(x.shape, _LEFT + width / 2)
    span = float(y.max() - y.min())
    ys = _TOP + (1 - (y - y.min()) / span) * height if span > 0 else np.full(y.shape, _TOP + height / 2)
    return [(round(float(a), 1), round(float(b), 1)) for a, b in zip(xs, ys)]


def elbow_html(result: Elbow) -> str:
    """The HTML of :meth:`Elbow._repr_html_`: the one-line summary (its ``repr``), the inertia
    curve as an inline SVG with the knee ringed, and a table of k, inertia (and silhouette,
    when computed) with the knee's row marked. (An Elbow made by hand with no ks shows its
    summary alone; one whose knee is not among its ks, no knee.)

    Examples
    --------
    >>> from kmseg._elbow import Elbow
    >>> snippet = Elbow(ks=np.arange(1, 4), inertias=np.array([9.0, 2.0, 1.0]), knee=2)._repr_html_()
    >>> snippet.count("<polyline"), snippet.count('<tr class="knee"')
    (1, 1)
    """
    ks = result.ks
    summary = f'<div style="flex-basis:100%"><code>{_e(repr(result))}</code></div>'
    if ks.size == 0:
        return f'<div class="kmseg-elbow" style="{_BOX}">{summary}</div>'
    points = _curve_points(ks, result.inertias)
    hits = np.flatnonzero(ks == result.knee)
    knee = int(hits[0]) if hits.size else -1
    bottom = _SVG_H - _BOTTOM
    ticks = range(len(ks)) if len(ks) <= _MAX_TICKS else (0, len(ks) - 1)
    text = 'font-size="10" fill="currentColor"'
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_SVG_W}" height="{_SVG_H}" viewBox="0 0 {_SVG_W} {_SVG_H}" '
        f'role="img" aria-label="{_e(f"inertia against k; the knee is at k={result.knee}")}">',
        f'<path d="M{_LEFT} {_TOP}V{bottom}H{_SVG_W - _RIGHT}" fill="none" stroke="#888"/>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 4}" text-anchor="end" {text}>{_e(f"{result.inertias.max():.3g}")}</text>',
        f'<text x="{_LEFT - 4}" y="{bottom}" text-anchor="end" {text}>{_e(f"{result.inertias.min():.3g}")}</text>',
        *(f'<text x="{points[i][0]}" y="{bottom + 13}" text-anchor="middle" {text}>{_e(ks[i])}</text>' for i in ticks),
        f'<text x="{(_LEFT + _SVG_W - _RIGHT) / 2}" y="{_SVG_H - 3}" text-anchor="middle" {text}>k</text>',
        '<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="'
        + " ".join(f"{x},{y}" for x, y in points) + '"/>',
        *(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#1f77b4"><title>{_e(f"k={k}: inertia {v:.6g}")}</title></circle>'
          for (x, y), k, v in zip(points, ks.tolist(), result.inertias.tolist())),
        *([f'<circle class="knee" cx="{points[knee][0]}" cy="{points[knee][1]}" r="6" fill="none" stroke="#d62728" '
           'stroke-width="2"/>'] if knee >= 0 else []),
        "</svg>",
    ]
    sil = result.silhouettes
    names = ["k", "inertia"] + ([] if sil is None else ["silhouette"]) + [""]
    rows = []
    for i, k in enumerate(ks.tolist()):
        cells = [_e(k), _e(f"{result.inertias[i]:.6g}")]
        if sil is not None:
            cells.append("" if np.isnan(sil[i]) else _e(f"{sil[i]:.4f}"))
        cells.append("knee" if i == knee else "")
        rows.append(_row(cells, attrs=' class="knee" style="font-weight:bold"' if i == knee else ""))
    return (
        f'<div class="kmseg-elbow" style="{_BOX}">{summary}'
        + "".join(svg)
        + f'<div style="max-height:{_SVG_H * 2}px;overflow-y:auto">{_TABLE}'
        f"<thead>{_row(names, 'th')}</thead><tbody>{''.join(rows)}</tbody></table></div></div>"
    )
