"""How results show themselves in Jupyter: the HTML of ``Segmentation._repr_html_``.

The snippet is self-contained: inline styles only (no ``<style>`` block that would leak into
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
    from .segment import Segmentation

__all__ = ["THUMBNAIL_MAX", "segmentation_html", "thumbnail"]

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
