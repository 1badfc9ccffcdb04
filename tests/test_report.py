"""kmseg.report: one self-contained HTML page with every section, image and timing."""

from __future__ import annotations

import base64
import io
import re
import warnings
import weakref
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kmseg.errors import ConvergenceWarning, ImageNotFoundError, OutputExistsError, ParameterError, ParameterTypeError
from kmseg.io import save_image
from kmseg.report import SECTIONS, n_steps, write_report
from helpers import quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
PNG_PREFIX = "data:image/png;base64,"


class Page(HTMLParser):
    """Collects what the tests check: ids, image sources, links, tags and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.palette_rows = 0
        self._in_palette_table = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        for key in ("href", "src", "action", "data"):
            if key in a and tag != "img":
                self.links.append(a[key])
        if tag == "section" and a.get("id") == "palette":
            self._in_palette_table = True
        elif tag == "section":
            self._in_palette_table = False
        if tag == "span" and "swatch" in (a.get("class") or "") and self._in_palette_table:
            self.palette_rows += 1

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.close()
    return page


@pytest.fixture(scope="module")
def img() -> np.ndarray:
    return quadrants(COLORS, size=(40, 60), noise=4.0)[0]


@pytest.fixture(scope="module")
def report(img, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "r.html"
    return write_report(img, out, seed=0)


def test_every_section_is_there(report):
    page = parse(report)
    for sid in SECTIONS:
        assert sid in page.ids, sid
    assert "timings" in page.ids
    assert page.tags[0] == "html"


def test_every_image_is_an_embedded_png(report):
    page = parse(report)
    assert len(page.imgs) == 8
    for src in page.imgs:
        assert src.startswith(PNG_PREFIX)
        data = base64.b64decode(src[len(PNG_PREFIX):], validate=True)
        with Image.open(io.BytesIO(data)) as im:
            assert im.format == "PNG"
            im.verify()


def test_self_contained(report):
    page = parse(report)
    text = report.read_text(encoding="utf-8")
    assert all(not link.lower().startswith(("http://", "https://", "//")) for link in page.links)
    assert all(link.startswith("#") for link in page.links)  # only the table of contents
    for tag in ("script", "link", "iframe", "object", "embed"):
        assert tag not in page.tags
    assert "@import" not in text and "url(" not in text


def test_knee_palette_and_timings(report):
    page = parse(report)
    text = " ".join(page.text)
    assert "k = 4 (the elbow's knee)" in text
    assert page.palette_rows == 4
    for step in ("load", "elbow sweep", "segmentation (k=4)", "figure: scatter", "total"):
        assert step in text
    assert "color_space" in text and "version: kmseg" in text


def test_given_k_demo_signature_and_escaping(img, tmp_path):
    path = save_image(tmp_path / "<b>&pic.png", img)
    out = write_report(path, tmp_path / "out" / "pic-report.html", k=3, seed=0, force=False)
    assert out == tmp_path / "out" / "pic-report.html"
    page = parse(out)
    text = " ".join(page.text)
    assert "k = 3 (given)" in text and "<b>&pic.png" in text
    assert page.palette_rows == 3
    raw = out.read_text(encoding="utf-8")
    assert "<b>" not in raw and "&lt;b&gt;&amp;pic.png" in raw


def test_captions_say_what_the_figures_show(img, tmp_path):
    """The elbow's caption names the silhouette axis only when it is drawn; the grid's caption
    says when the image has fewer colours than a panel's k (here 2 colours against 3, 5, 7)."""
    text = " ".join(parse(write_report(img, tmp_path / "a.html", seed=0, ks=range(1, 4))).text)
    assert "silhouette (on a pixel sample) is on the right axis" in text
    assert "segmentation for k = 3, 5, 7." in text and "fewer distinct colours" not in text
    two = np.zeros((20, 30, 3), np.uint8)
    two[:, 15:] = (200, 40, 40)
    with pytest.warns(ConvergenceWarning, match="only 2 distinct colours"):
        out = write_report(two, tmp_path / "b.html", seed=0, ks=range(1, 4), silhouette=False, k=2)
    text = " ".join(parse(out).text)
    assert "right axis" not in text
    assert "The image has fewer distinct colours than some of these k, so the panels have 2, 2, 2 clusters." in text


def test_k_outside_the_sweep(img, tmp_path):
    out = write_report(img, tmp_path / "r.html", k=6, ks=range(1, 4), seed=0)
    assert parse(out).palette_rows == 6


def test_progress_is_reported(img, tmp_path):
    calls = []
    write_report(img, tmp_path / "r.html", seed=0, ks=range(1, 4), progress=lambda d, t, n: calls.append((d, t, n)))
    total = n_steps(range(1, 4))
    assert [c[0] for c in calls] == list(range(1, total + 1))
    assert {c[1] for c in calls} == {total}
    assert "elbow k=3" in [c[2] for c in calls]


def test_no_overwrite_without_force_checked_first(img, tmp_path):
    out = tmp_path / "r.html"
    out.write_text("keep")
    # The image is missing too: the output check must come first, before any work.
    with pytest.raises(OutputExistsError, match="exists already; pass force=True"):
        write_report(tmp_path / "missing.png", out)
    assert out.read_text() == "keep"
    write_report(img, out, seed=0, ks=range(1, 4), force=True)
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]  # no temporary file left


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"k": 0}, ParameterError, "k=0 is out of range"),
        ({"ks": [1, 2]}, ParameterError, "at least 3"),
        ({"canny": (200, 100)}, ParameterError, "low above high"),
        ({"canny": 5}, ParameterError, "canny=5 is not valid"),
        ({"grid_ks": ()}, ParameterError, r"grid_ks=\(\) is not valid"),
        ({"silhouette": 1}, ParameterTypeError, "silhouette=1 is not a bool"),
        ({"colour": "red"}, ParameterTypeError, "colour='red' is not an option of segment"),
        ({"force": "no"}, ParameterTypeError, "force='no' is not a bool"),
    ],
)
def test_errors(img, tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        write_report(img, tmp_path / "r.html", **kwargs)
    assert not (tmp_path / "r.html").exists()


def test_missing_image(tmp_path):
    with pytest.raises(ImageNotFoundError):
        write_report(tmp_path / "missing.png", tmp_path / "r.html")
    with pytest.raises(ParameterError, match="is a directory"):
        write_report(np.zeros((4, 4, 3), np.uint8), tmp_path)


#: Two colours: fewer than most ks of a report.
TWO = np.zeros((20, 30, 3), np.uint8)
TWO[:, 15:] = (200, 40, 40)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "the image has only 2 distinct colours, fewer than k=3: in the report, the elbow is flat from k=2 on "
             "and the grid's panels for k=3, 5 and 7 have 2 clusters each"),
        ({"k": 5, "grid_ks": (2, 5)}, "the image has only 2 distinct colours, fewer than k=3: in the report, the elbow "
         "is flat from k=2 on, the segmentation for k=5 has 2 clusters and the grid's panel for k=5 has 2 clusters"),
        ({"ks": range(1, 3 + 1), "k": 4, "grid_ks": (2,)}, "the image has only 2 distinct colours, fewer than k=3: in "
         "the report, the elbow is flat from k=2 on and the segmentation for k=4 has 2 clusters"),
        ({"ks": (1, 2, 3), "k": 2, "grid_ks": (1, 7)}, "the image has only 2 distinct colours, fewer than k=3: in the "
         "report, the elbow is flat from k=2 on and the grid's panel for k=7 has 2 clusters"),
    ],
)
def test_fewer_colours_than_k_warns_once_saying_what_it_means(tmp_path, kwargs, message):
    """Each fit below its k warned on its own: the sweep once, then the chosen segmentation and
    every panel of the grid again, the same problem up to 4 times in one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = write_report(TWO, tmp_path / "r.html", seed=0, silhouette=False, **kwargs)
    assert [(w.category, str(w.message)) for w in caught] == [(ConvergenceWarning, message)]
    assert caught[0].filename == __file__
    assert f"Note: {message[0].upper()}{message[1:]}." in "".join(parse(out).text)  # the page says it too


def test_no_note_without_a_warning(report):
    assert "Note:" not in " ".join(parse(report).text)



def _images(path: Path) -> dict[str, bytes]:
    """The page's figures by alt text, decoded."""
    text = path.read_text(encoding="utf-8")
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', text)
    return {alt: base64.b64decode(src) for src, alt in found}


def test_the_grid_is_drawn_one_segmentation_at_a_time(photos, tmp_path, monkeypatch):
    """The grid's segmentations were all made, then drawn (with the chosen one, 4 held at once,
    about 7 bytes a pixel each); each is now let go once its panel is drawn. The figure is the
    very one drawn from all of them at once, on a photo."""
    from kmseg import plot
    from kmseg._elbow import elbow
    from kmseg.report import _segment_at
    from kmseg.segment import Prepared, prepare

    photo = photos["chelsea.png"]
    made: list[weakref.ref] = []
    alive: list[int] = []
    segment_k, show = Prepared.segment, plot._show

    def tracked(self, *args, **kwargs):
        s = segment_k(self, *args, **kwargs)
        made.append(weakref.ref(s))
        return s

    def counting(ax, image, has_alpha, title, *args):
        if len(ax.figure.axes) == 4 and (title == "original" or title.startswith("k=")):  # the grid's panels
            alive.append(sum(r() is not None for r in made))
        return show(ax, image, has_alpha, title, *args)

    monkeypatch.setattr(Prepared, "segment", tracked)
    monkeypatch.setattr(plot, "_show", counting)
    out = write_report(photo, tmp_path / "r.html", seed=0, ks=range(1, 6), k=4, grid_ks=(2, 4, 5), silhouette=False)
    monkeypatch.undo()
    assert alive == [2, 2, 1, 2]  # the chosen one (k=4), and the panel's own: the original, k=2, k=4 (chosen), k=5

    prep = prepare(photo)
    result = elbow(prep, range(1, 6), seed=0, warn=False)
    eager = plot.grid(prep, [_segment_at(prep, result, g, {"seed": 0}) for g in (2, 4, 5)])
    assert _images(out)["segmentations for several k"] == plot.figure_bytes(eager, png_strategy="rle")


def test_a_different_warning_is_kept(tmp_path):
    """A 4-channel array whose last band, read as alpha, is nowhere opaque warns of that (once),
    as segment() does, besides the one warning for fewer colours than k. The report gave neither
    warning its own: it passed the alpha it had read on, which skipped the check."""
    faint = np.zeros((20, 30, 4), np.uint8)
    faint[..., 3] = 100
    faint[:10, :, 0] = 200
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        write_report(faint, tmp_path / "r.html", seed=0, ks=range(1, 5), grid_ks=(2, 3), silhouette=False)
    assert [w.category for w in caught] == [UserWarning, ConvergenceWarning]
    assert "taken as alpha" in str(caught[0].message)
    assert str(caught[1].message).startswith("the image has only 2 distinct colours, fewer than k=3: in the report,")


def _text(path: Path) -> str:
    return re.sub(r"\s+", " ", "".join(parse(path).text))


def test_the_segmentation_says_how_it_was_made(img, tmp_path):
    """The caption said 'k = 5 ... (from the sweep's centres when k was swept)' for a 2-colour
    image, whose 2 clusters were fit from scratch, and the parameters 'k: 5 (given)'."""
    text = _text(write_report(img, tmp_path / "a.html", seed=0, ks=range(1, 6), k=3))
    assert "in its cluster's mean colour, k = 3. Inertia" in text and "iterations from the sweep's centres at k." in text
    text = _text(write_report(img, tmp_path / "b.html", seed=0, ks=range(1, 4), k=5))  # not swept: from scratch
    assert "in its cluster's mean colour, k = 5. Inertia" in text and "sweep's centres" not in text
    with pytest.warns(ConvergenceWarning):
        text = _text(write_report(TWO, tmp_path / "c.html", seed=0, k=5, silhouette=False))
    assert ("in its cluster's mean colour, k = 5 (2 clusters, as the image has only 2 distinct colours). "
            "Inertia 0; 0 iterations. ") in text
    assert "k5 (given); 2 clusters, as the image has only 2 distinct colours" in text  # the parameters table


def test_an_image_clustered_as_its_pixels_is_not_said_to_be_its_distinct_colours(tmp_path):
    """16-bit colour is clustered on its pixels, not a colour histogram: the page said 'distinct
    colours (points clustered)' (of the pixel count), 'reduce (colour histogram)' and 'weighted
    unique colours'."""
    img16 = quadrants(COLORS, size=(20, 30), noise=4.0)[0].astype(np.uint16) * 257
    text = _text(write_report(img16, tmp_path / "r.html", seed=0, ks=range(1, 4), grid_ks=(2,)))
    assert "points clustered (every pixel)600" in text and "reduce (pixels)" in text
    assert "Exact K-means on the pixels of the image." in text
    assert "distinct colours" not in text and "histogram)" not in text and "unique colours" not in text
    text = _text(write_report(quadrants(COLORS, size=(20, 30), noise=0.0)[0], tmp_path / "8.html", seed=0,
                              ks=range(1, 4), grid_ks=(2,)))
    assert "distinct colours (points clustered)4" in text and "reduce (colour histogram)" in text
    assert "Exact K-means on the weighted distinct colours of the image." in text


def test_thresholds_are_written_as_the_figure_writes_them(img, tmp_path):
    """The command line passes floats: the caption and the parameters said '100.0, 200.0' under a
    figure titled '(100, 200)'."""
    text = _text(write_report(img, tmp_path / "r.html", seed=0, ks=range(1, 4), grid_ks=(2,), canny=(100.0, 200.5)))
    assert "Canny edges (thresholds 100, 200.5) in yellow" in text and "canny (low, high)(100, 200.5)" in text


def test_the_colour_space_of_a_grey_or_multiband_image_is_not_called_rgb(tmp_path):
    """A grey image's page said 'colour space rgb' in its header and parameters."""
    grey = quadrants(COLORS, size=(20, 30), noise=0.0)[0][..., 0]
    text = _text(write_report(grey, tmp_path / "g.html", seed=0, ks=range(1, 4), grid_ks=(2,)))
    assert "colour space grey (the grey levels as they are)." in text
    assert "color_spacegrey (the grey levels as they are)" in text and "colour space rgb" not in text
    bands = np.dstack([quadrants(COLORS, size=(20, 30), noise=0.0)[0]] * 2)  # 6 bands
    text = _text(write_report(bands, tmp_path / "b.html", seed=0, ks=range(1, 4), grid_ks=(2,)))
    assert "colour space the 6 bands' values as they are." in text
    rgb = quadrants(COLORS, size=(20, 30), noise=0.0)[0]
    assert "colour space rgb." in _text(write_report(rgb, tmp_path / "c.html", seed=0, ks=range(1, 4), grid_ks=(2,)))
    assert "colour space lab." in _text(write_report(rgb, tmp_path / "d.html", seed=0, ks=range(1, 4), grid_ks=(2,),
                                                     color_space="lab"))


def test_with_scale_the_page_counts_what_was_clustered(tmp_path):
    """With scale, 'pixels clustered' gave the whole image's count and the distinct colours its."""
    img = quadrants(COLORS, size=(40, 60), noise=6.0)[0]  # 2400 pixels
    text = _text(write_report(img, tmp_path / "r.html", seed=0, ks=range(1, 4), grid_ks=(2,), scale=0.5))
    copy = img[::2, ::2]  # the count of the half-size copy; its colours are cv2's INTER_AREA averages
    assert f"pixels clustered{copy.shape[0] * copy.shape[1]} (of a copy at scale 0.5; the image has 2400)" in text
    from kmseg import prepare

    n = prepare(img, scale=0.5).fit_reduced.points.shape[0]
    assert n < len(np.unique(img.reshape(-1, 3), axis=0)) and f"distinct colours (points clustered){n}" in text
    assert "weighted distinct colours of the image, scaled by 0.5." in text
