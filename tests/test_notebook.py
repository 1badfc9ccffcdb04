"""How results show themselves in Jupyter: ``Segmentation._repr_html_`` and ``Elbow._repr_html_``,
parsed with the standard library's HTML parser, their thumbnail PNG decoded."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

import kmseg
from kmseg._elbow import Elbow
from kmseg._notebook import THUMBNAIL_MAX
from kmseg.io import save_image
from helpers import quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
PNG_PREFIX = "data:image/png;base64,"


class Snippet(HTMLParser):
    """Every start tag with its attributes, the text, and the cells of the body's table rows."""

    def __init__(self, markup: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.rows: list[list[str]] = []
        self.row_attrs: list[dict[str, str | None]] = []
        self._in_body = False
        self._cell: list[str] | None = None
        self.feed(markup)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.rows.append([])
            self.row_attrs.append(a)
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "tbody":
            self._in_body = False
        elif tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def thumbnail_of(snippet: Snippet) -> np.ndarray:
    (img,) = snippet.all("img")
    assert img["src"].startswith(PNG_PREFIX)
    with Image.open(io.BytesIO(base64.b64decode(img["src"][len(PNG_PREFIX):]))) as im:
        assert im.format == "PNG"
        return np.asarray(im)


def expected_thumbnail(seg: kmseg.Segmentation, step: int, has_alpha: bool) -> np.ndarray:
    """Every ``step``-th pixel of the painted image on 0-255, written out: linear on the display
    range, alpha on its dtype's range, grey or the first 3 bands. The colour of transparent
    pixels is not shown, and left 0 here (see :func:`same_picture`)."""
    painted = seg.image()[::step, ::step].astype(np.float64)
    if painted.ndim == 2:
        painted = painted[..., None]
    colour = painted[..., :-1] if has_alpha else painted
    colour = colour[..., :3] if colour.shape[2] >= 3 else colour[..., :1]
    lo, hi = seg.display_range
    out = np.clip(np.rint((colour - lo) * 255.0 / (hi - lo)), 0, 255)
    if has_alpha:
        dtype = seg.original.dtype
        top = np.iinfo(dtype).max if dtype.kind in "iu" else 1.0
        alpha = np.clip(np.rint(painted[..., -1:] * 255.0 / top), 0, 255)
        out[alpha[..., 0] == 0] = 0
        out = np.concatenate([out, alpha], axis=2)
    return out.astype(np.uint8).squeeze(axis=2) if out.shape[2] == 1 else out.astype(np.uint8)


def same_picture(actual: np.ndarray, expected: np.ndarray, has_alpha: bool) -> None:
    """The two thumbnails look the same: equal alpha, and equal colours wherever alpha is not 0."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if has_alpha:
        actual = np.where(actual[..., -1:] == 0, 0, actual)
    np.testing.assert_array_equal(actual, expected)


def shown_colours(thumb: np.ndarray, has_alpha: bool) -> np.ndarray:
    """The distinct colours of a thumbnail's visible pixels, as (n, 3) RGB."""
    px = thumb.reshape(thumb.shape[0], thumb.shape[1], -1)
    if has_alpha:
        px = px[px[..., -1] > 0][:, :-1]
    else:
        px = px.reshape(-1, px.shape[2])
    if px.shape[1] == 1:
        px = np.repeat(px, 3, axis=1)
    return np.unique(px, axis=0)


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    """Four known colours with a little noise, 200 x 1000: its thumbnail is every 3rd pixel."""
    return quadrants(COLORS, size=(200, 1000))[0]


def _rgba(img: np.ndarray) -> np.ndarray:
    alpha = np.full(img.shape[:2] + (1,), 255, np.uint8)
    alpha[:40, :300] = 0  # transparent, its colour values left as they were
    alpha[150:, 600:] = 128
    return np.concatenate([img, alpha], axis=2)


# name -> (image made from the quadrants, has alpha, display range expected)
CASES = {
    "uint8": (lambda q: q, False, lambda a: (0.0, 255.0)),
    "uint16": (lambda q: q.astype(np.uint16) * 257, False, lambda a: (0.0, 65535.0)),
    "float32": (lambda q: q.astype(np.float32) / 255, False, lambda a: (0.0, 1.0)),
    "float64 beyond 0-1": (lambda q: q * 2.5 - 100.0, False, lambda a: (float(a.min()), float(a.max()))),
    "int16 grey": (lambda q: q[..., 0].astype(np.int16) * 8 - 1000, False, lambda a: (float(a.min()), float(a.max()))),
    "rgba uint8": (_rgba, True, lambda a: (0.0, 255.0)),
    "grey+alpha uint16": (lambda q: _rgba(q)[..., [1, 3]].astype(np.uint16) * 257, True, lambda a: (0.0, 65535.0)),
}


@pytest.mark.parametrize("case", CASES)
def test_the_thumbnail_is_every_third_pixel_of_the_painted_image_on_its_display_range(wide, case):
    make, has_alpha, vrange = CASES[case]
    img = make(wide)
    seg = kmseg.segment(img, 4, seed=0, n_init=2)
    assert seg.display_range == vrange(img)
    thumb = thumbnail_of(Snippet(seg._repr_html_()))
    step = 3  # ceil(1000 / 480)
    assert thumb.shape[:2] == (67, 334)
    same_picture(thumb, expected_thumbnail(seg, step, has_alpha), has_alpha)
    # Strided, not blended: every visible pixel is shown in a palette colour, exactly.
    palette = np.array([p["rgb"] for p in seg.palette()])
    gap = np.abs(shown_colours(thumb, has_alpha)[:, None, :].astype(int) - palette[None]).max(axis=2).min(axis=1)
    assert gap.max() == 0
    if has_alpha:
        np.testing.assert_array_equal(thumb[..., -1] > 0, img[::step, ::step, -1] > 0)


def test_alpha_is_kept(wide):
    img = _rgba(wide)
    seg = kmseg.segment(img, 4, seed=0, n_init=2)
    thumb = thumbnail_of(Snippet(seg._repr_html_()))
    assert thumb.shape == (67, 334, 4)
    np.testing.assert_array_equal(thumb[..., 3], img[::3, ::3, 3])
    assert set(np.unique(thumb[..., 3]).tolist()) == {0, 128, 255}


def test_the_swatches_are_the_palette_in_its_order(wide):
    seg = kmseg.segment(wide[:, :500], 4, seed=0)
    page = Snippet(seg._repr_html_())
    palette = seg.palette()
    assert [p["index"] for p in palette] == [int(i) for i in np.argsort(-seg.counts, kind="stable")]
    assert len(page.rows) == len(palette) == 4
    for (chip, hex_, share, index), p, span in zip(page.rows, palette, page.all("span")):
        assert chip == ""
        assert hex_ == p["hex"]
        assert re.search(r"background:(#[0-9a-f]{6})", span["style"]).group(1) == p["hex"]
        assert share == f"{100 * p['fraction']:.1f}%"
        assert int(index) == p["index"]


def test_the_summary_is_the_repr_and_repr_is_unchanged(wide):
    seg = kmseg.segment(wide, 3, seed=0, n_init=1)
    h, w = wide.shape[:2]
    assert repr(seg) == f"Segmentation(k=3, shape=({h}, {w}), color_space='rgb', inertia={seg.inertia:.6g})"
    assert repr(seg) in "".join(Snippet(seg._repr_html_()).text)


def test_a_tiny_share_is_not_shown_as_zero():
    img = np.zeros((100, 100), np.uint8)
    img[0, 0] = 255
    page = Snippet(kmseg.segment(img, 2, seed=0)._repr_html_())
    assert [row[2] for row in page.rows] == ["100.0%", "<0.1%"]


def test_a_huge_image_gives_a_bounded_thumbnail_and_snippet():
    img = np.zeros((3000, 4000), np.uint8)
    img[:, 1000:] = 90
    img[1500:, :] += 120
    seg = kmseg.segment(img, 4, seed=0, n_init=1)
    markup = seg._repr_html_()
    page = Snippet(markup)
    thumb = thumbnail_of(page)
    step = 9  # ceil(4000 / 480)
    assert thumb.shape == (334, 445) and max(thumb.shape) <= THUMBNAIL_MAX
    grey = {p["index"]: p["rgb"][0] for p in seg.palette()}
    np.testing.assert_array_equal(thumb, np.array([grey[i] for i in range(seg.k)], np.uint8)[seg.labels[::step, ::step]])
    (img_tag,) = page.all("img")
    assert (img_tag["width"], img_tag["height"]) == ("445", "334")
    assert len(markup) < 20_000  # four flat rectangles: the PNG is small


def test_a_long_thin_image_keeps_at_least_one_pixel_across():
    img = np.zeros((5000, 2, 3), np.uint8)
    img[2500:] = 200
    thumb = thumbnail_of(Snippet(kmseg.segment(img, 2, seed=0)._repr_html_()))
    assert thumb.shape == (455, 1, 3)  # every 11th row, ceil(5000 / 11) = 455


def test_a_tiny_image_is_shown_enlarged_by_a_whole_factor():
    img = np.zeros((3, 4, 3), np.uint8)
    img[:, 2:] = (250, 10, 10)
    page = Snippet(kmseg.segment(img, 2, seed=0)._repr_html_())
    (img_tag,) = page.all("img")
    assert thumbnail_of(page).shape == (3, 4, 3)
    assert (img_tag["width"], img_tag["height"]) == ("240", "180")  # 60 times, pixelated
    assert "image-rendering:pixelated" in img_tag["style"]


def test_html_special_characters_are_escaped(tmp_path):
    name = """<b onmouseover="x">&amp;'quoted'.png"""
    path = tmp_path / name
    img = np.zeros((4, 4, 3), np.uint8)
    img[:, 2:] = 200
    save_image(path, img)
    seg = kmseg.segment(path, 2, seed=0)
    markup = seg._repr_html_()
    page = Snippet(markup)
    assert [t for t, _ in page.tags if t == "b"] == []
    assert str(path) in "".join(page.text)  # shown as written, its text unchanged
    assert name not in markup
    assert "&lt;b onmouseover=&quot;x&quot;&gt;&amp;amp;&#x27;quoted&#x27;.png" in markup


def test_the_snippet_is_self_contained(wide):
    seg = kmseg.segment(wide, 4, seed=0, n_init=1)
    result = kmseg.elbow(wide[:, :300], range(1, 6), seed=0, n_init=1)
    for markup in (seg._repr_html_(), result._repr_html_()):
        page = Snippet(markup)
        tags = {t for t, _ in page.tags}
        assert not tags & {"script", "style", "link", "iframe", "object", "embed"}
        for _, attrs in page.tags:
            for key, value in attrs.items():
                assert not key.startswith("on")
                if key in ("src", "href"):
                    assert value.startswith(PNG_PREFIX)
        assert "url(" not in markup


# --------------------------------------------------------------------------- Elbow


def test_elbow_table_and_curve(wide):
    result = kmseg.elbow(wide[:, :500], range(1, 8), seed=0, n_init=2, silhouette=True, sample_size=200)
    page = Snippet(result._repr_html_())
    assert [int(r[0]) for r in page.rows] == result.ks.tolist()
    assert [float(r[1]) for r in page.rows] == pytest.approx(result.inertias.tolist(), rel=1e-5)
    assert page.rows[0][2] == ""  # no silhouette at k = 1
    assert [float(r[2]) for r in page.rows[1:]] == pytest.approx(result.silhouettes[1:].tolist(), abs=1e-4)
    marked = [int(r[0]) for r, a in zip(page.rows, page.row_attrs) if a.get("class") == "knee"]
    assert marked == [result.knee] and page.rows[result.ks.tolist().index(result.knee)][-1] == "knee"

    (line,) = page.all("polyline")
    points = np.array([[float(v) for v in p.split(",")] for p in line["points"].split()])
    assert points.shape == (result.ks.size, 2)
    assert np.all(np.diff(points[:, 0]) > 0)  # k across
    assert np.all(np.diff(points[:, 1]) >= 0)  # inertia never rises: the curve only goes down the page
    np.testing.assert_allclose(np.diff(points[:, 0]), np.diff(points[:, 0])[0], atol=0.11)  # evenly spaced ks
    (ring,) = [a for a in page.all("circle") if a.get("class") == "knee"]
    knee_at = points[result.ks.tolist().index(result.knee)]
    assert (float(ring["cx"]), float(ring["cy"])) == tuple(knee_at)
    assert repr(result) in "".join(page.text)


def test_elbow_made_by_hand_never_fails_to_show():
    flat = Elbow(ks=np.arange(1, 4), inertias=np.zeros(3), knee=1)
    page = Snippet(flat._repr_html_())
    (line,) = page.all("polyline")
    assert {p.split(",")[1] for p in line["points"].split()} == {"80.0"}  # a flat curve, half-way up
    assert [len(r) for r in page.rows] == [3, 3, 3]  # k, inertia, mark: no silhouette column

    unknown = Elbow(ks=np.array([2, 4, 8]), inertias=np.array([9.0, 3.0, 1.0]), knee=5)
    page = Snippet(unknown._repr_html_())
    assert not [a for a in page.all("circle") if a.get("class") == "knee"]
    assert "knee" not in [r[-1] for r in page.rows]

    empty = Elbow(ks=np.zeros(0, np.int64), inertias=np.zeros(0), knee=1)
    assert Snippet(empty._repr_html_()).all("svg") == []


def test_showing_results_imports_no_plotting_library():
    code = (
        "import sys, numpy as np, kmseg\n"
        "img = np.zeros((8, 8, 3), np.uint8); img[4:] = 200; img[:, 4:, 1] = 90\n"
        "kmseg.segment(img, 2, seed=0)._repr_html_()\n"
        "kmseg.elbow(img, range(1, 4), seed=0)._repr_html_()\n"
        "print(sorted(m for m in ('matplotlib', 'IPython', 'fastapi') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- in a real browser


@pytest.mark.browser
def test_the_snippets_render_in_chromium(kmseg_browser, wide):
    img = wide.astype(np.uint16) * 257  # shown on 0-65535, as every preview of a 16-bit image
    seg = kmseg.segment(img, 4, seed=0, n_init=2)
    result = kmseg.elbow(wide[:, :300], range(1, 6), seed=0, n_init=1)
    context = kmseg_browser.new_context(viewport={"width": 1000, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    fetched: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda req: fetched.append(req.url) if not req.url.startswith("data:") else None)
    try:
        page.set_content(f"<!DOCTYPE html><html><body>{seg._repr_html_()}{result._repr_html_()}</body></html>")
        page.wait_for_function("() => { const i = document.querySelector('.kmseg-segmentation img');"
                               " return i.complete && i.naturalWidth > 0; }")
        size = page.eval_on_selector(".kmseg-segmentation img", "i => [i.naturalWidth, i.naturalHeight]")
        assert size == [334, 67]

        # The swatches are painted in the palette's colours, in its order.
        palette = seg.palette()
        backgrounds = page.eval_on_selector_all(".kmseg-segmentation tbody span",
                                                "spans => spans.map(s => getComputedStyle(s).backgroundColor)")
        assert backgrounds == ["rgb({}, {}, {})".format(*p["rgb"]) for p in palette]

        # The thumbnail as the browser decoded it: each pixel in its cluster's palette colour.
        pixels = np.array(page.eval_on_selector(".kmseg-segmentation img", """i => {
            const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
            const g = c.getContext('2d'); g.drawImage(i, 0, 0);
            return Array.from(g.getImageData(0, 0, c.width, c.height).data);
        }"""), np.uint8).reshape(67, 334, 4)
        rgb = {p["index"]: p["rgb"] + [255] for p in palette}
        np.testing.assert_array_equal(pixels, np.array([rgb[i] for i in range(seg.k)], np.uint8)[seg.labels[::3, ::3]])

        # The elbow's curve is drawn, and its knee ringed on it.
        length = page.eval_on_selector(".kmseg-elbow polyline", "p => p.getTotalLength()")
        assert length > 100
        assert page.locator(".kmseg-elbow circle.knee").count() == 1
        assert page.locator(".kmseg-elbow tr.knee td").first.inner_text() == str(result.knee)
    finally:
        context.close()
    assert errors == [] and fetched == []
