"""The page of `kmseg serve` in a real browser: a uvicorn server on loopback, driven through
Playwright's sync API with Debian's chromium (Playwright's own browser download is not used)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
sync_api = pytest.importorskip("playwright.sync_api")

import kmseg  # noqa: E402
from kmseg import data  # noqa: E402
from kmseg.io import palette_bytes  # noqa: E402
from kmseg.web.app import ELBOW_FIELDS, K_MAX, SEGMENT_FIELDS, create_app  # noqa: E402

pytestmark = pytest.mark.browser

TIMEOUT_MS = 20_000
expect = sync_api.expect
expect.set_options(timeout=TIMEOUT_MS)  # the elbow sweep takes a few seconds on a busy machine


@contextlib.contextmanager
def running(app: Any, port: int = 0) -> Iterator[str]:
    """``app`` served by a real uvicorn server on a loopback port (0: a free one), in a
    background thread, until the block ends; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the same port again, for a restart
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, name="kmseg-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        srv.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    """A real uvicorn server on a free loopback port, in a background thread; (url, app)."""
    app = create_app()
    with running(app) as url:
        yield url, app


@pytest.fixture
def web_page(kmseg_browser: Any) -> Iterator[Any]:
    context = kmseg_browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def wait_loaded(page: Any, selector: str, width: int) -> None:
    """Wait until the <img> is decoded at the given natural width, or at the preview width its
    URL asks for when that is narrower (the page asks for previews as wide as their frame)."""
    page.wait_for_function(
        """([sel, w]) => {
            const i = document.querySelector(sel);
            if (!i || !i.src || !i.complete) return false;
            const asked = Number(new URL(i.src).searchParams.get("width") || w);
            return i.naturalWidth === Math.min(w, asked);
        }""",
        arg=[selector, width],
    )


def preview_width(page: Any, selector: str) -> int:
    """The width the page should ask for: its frame's, in device pixels, up to a multiple of 256."""
    return page.evaluate(
        "(sel) => Math.max(256, Math.ceil(Math.ceil(document.querySelector(sel).parentElement.clientWidth"
        " * window.devicePixelRatio) / 256) * 256)",
        selector,
    )


def test_upload_move_k_toggle_and_download(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    page = web_page
    url, app = server
    state = app.state.kmseg
    page.goto(url)
    expect(page).to_have_title("kmseg: colour segmentation")
    alert = page.get_by_role("alert")
    expect(alert).to_be_hidden()
    # What the page posts, and the answers: the API refuses (422) any field it does not take.
    # (Chromium gives no body for a post with a file, so the fields are read where it gives one.)
    sent: dict[str, set[str]] = {"segment": set(), "elbow": set()}
    answers: list[tuple[str, int]] = []

    def record(request: Any) -> None:
        verb = request.url.rsplit("/api/", 1)[-1]
        if request.method == "POST" and verb in sent and request.post_data_buffer is not None:
            sent[verb] |= {m.decode() for m in re.findall(rb'form-data; name="([^"]+)"', request.post_data_buffer)}

    page.on("request", record)
    page.on("response", lambda r: answers.append((r.url.rsplit("/api/", 1)[-1], r.status))
            if r.request.method == "POST" else None)

    # upload: the palette has K = 5 swatches and the segmented image shows
    swatches = show_photo(page)
    wait_loaded(page, "#segmented", 600)
    expect(page.get_by_test_id("status")).to_contain_text("600 × 400")
    decodes = state.counts["decodes"]

    # the elbow curve arrives, with its knee marked
    knee = page.get_by_test_id("elbow-knee")
    expect(knee).to_have_count(1)
    assert 1 <= int(knee.get_attribute("data-k")) <= 10
    assert page.locator("#elbow .pt").count() == 10

    # move K with the keyboard: 5 -> 3; re-segmented by upload_id, not uploaded or decoded again
    slider = page.get_by_test_id("k-slider")
    slider.focus()
    slider.press("ArrowLeft")
    slider.press("ArrowLeft")
    expect(page.get_by_test_id("k-value")).to_have_text("3")
    expect(swatches).to_have_count(3)
    expect(page.get_by_test_id("status")).to_contain_text("K = 3")
    wait_loaded(page, "#segmented", 600)
    assert state.counts["decodes"] == decodes
    assert state.counts["segmentations"] >= 2

    # the palette lists the largest share first, as every palette does, and so do the cut-outs;
    # each swatch keeps its cluster's index (they were listed by index)
    shares = [float(t.rstrip("%")) for t in page.locator(".swatch .pct").all_inner_texts()]
    assert len(shares) == 3 and shares == sorted(shares, reverse=True) and len(set(shares)) == 3
    order = [swatches.nth(n).get_attribute("data-index") for n in range(3)]
    assert sorted(order) == ["0", "1", "2"]
    cutouts = page.locator('[data-testid="dl-cluster"]')
    assert [re.match(r"Cluster (\d+) ", t).group(1) for t in cutouts.all_text_contents()] == order
    assert [cutouts.nth(n).get_attribute("href").rsplit("/", 1)[1] for n in range(3)] == [f"{i}.png" for i in order]

    # hide the second swatch's cluster: the masked image changes to the original with it in black
    masked = page.get_by_test_id("masked-image")
    original_src = masked.get_attribute("src")
    assert "disable" not in original_src and original_src.endswith(f"?width={preview_width(page, '#masked')}")
    second = order[1]
    swatches.nth(1).click()
    expect(swatches.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(masked).to_have_attribute("src", original_src.replace("?", f"?disable={second}&"))
    expect(page.get_by_test_id("masked-caption")).to_have_text(f"Hidden: cluster {second}")
    wait_loaded(page, "#masked", 600)
    # the download link has the same pixels at full size
    full = page.get_by_test_id("dl-masked").get_attribute("href")
    assert full.endswith(f"masked.png?disable={second}")
    hidden = np.asarray(Image.open(io.BytesIO(page.request.get(url.rstrip("/") + full).body())))
    shown = np.asarray(Image.open(io.BytesIO(page.request.get(url.rstrip("/") + full.split("?")[0]).body())))
    changed = (hidden != shown).any(axis=2)
    assert hidden.shape == (400, 600, 3) and changed.any() and (hidden[changed] == 0).all()
    # exactly the pixels of that cluster, whose share the swatch shows
    labels = np.asarray(Image.open(io.BytesIO(page.request.get(
        url.rstrip("/") + page.get_by_test_id("dl-labels").get_attribute("href")).body())))
    assert (hidden[labels == int(second)] == 0).all() and 100 * (labels == int(second)).mean() == pytest.approx(shares[1], abs=0.05)
    swatches.nth(1).click()  # and show it again
    expect(masked).to_have_attribute("src", original_src)

    # download the recoloured PNG
    with page.expect_download() as info:
        page.get_by_test_id("dl-segmented").click()
    download = info.value
    assert download.suggested_filename == "coffee-k3-segmented.png"
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    im = Image.open(target)
    im.load()
    assert im.format == "PNG" and im.size == (600, 400)
    assert len(np.unique(np.asarray(im).reshape(-1, 3), axis=0)) == 3

    # the palette for designers' tools, next to its JSON: .gpl, .ase, .css and a swatch strip
    expect(page.get_by_test_id("dl-palette")).to_be_visible()
    for suffix in ("gpl", "ase", "css", "png"):
        a = page.get_by_test_id(f"dl-palette-{suffix}")
        expect(a).to_be_visible()
        assert a.get_attribute("download") == f"coffee-k3-palette.{suffix}"
        assert a.get_attribute("href").endswith(f"/palette.{suffix}")
    with page.expect_download() as info:
        page.get_by_test_id("dl-palette-ase").click()
    download = info.value
    assert download.suggested_filename == "coffee-k3-palette.ase"
    download.save_as(tmp_path / download.suggested_filename)
    expected = kmseg.segment(kmseg.load_image(data.path("coffee.png")), 3, seed=0)  # the page's settings
    assert (tmp_path / download.suggested_filename).read_bytes() == palette_bytes(expected, "ase")

    # the page sent only fields the API takes, and every post was answered
    assert sent["segment"] == {"upload_id", "k", "color_space", "seed"} and sent["segment"] <= set(SEGMENT_FIELDS)
    assert sent["elbow"] == {"upload_id", "k_max", "color_space", "seed"} and sent["elbow"] <= set(ELBOW_FIELDS)
    assert {verb for verb, _ in answers} == {"segment", "elbow"} and {status for _, status in answers} == {200}
    expect(alert).to_be_hidden()

    shot = os.environ.get("KMSEG_SCREENSHOT")
    if shot:
        page.screenshot(path=shot, full_page=True)


def show_photo(page: Any) -> Any:
    """Upload the bundled coffee.png and wait for its 5 swatches (K = 5, the page's default); returns them."""
    page.set_input_files("#file-input", str(data.path("coffee.png")))
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)
    return swatches


def show_wide_image(page: Any, tmp_path) -> Any:
    """Upload a 2400 x 1000 gradient (wider than any frame) and wait for its 5 swatches; returns them."""
    yy, xx = np.mgrid[0:1000, 0:2400]
    big = np.dstack([xx * 255 // 2399, yy * 255 // 999, (xx + yy) % 256]).astype(np.uint8)
    path = tmp_path / "wide.png"
    Image.fromarray(big).save(path)
    page.set_input_files("#file-input", str(path))
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)
    return swatches


def test_a_large_image_is_shown_as_previews_and_downloaded_full_size(server: tuple[str, Any], web_page: Any,
                                                                      tmp_path) -> None:
    page = web_page
    url, _ = server
    page.goto(url)
    swatches = show_wide_image(page, tmp_path)
    for sel in ("#segmented", "#masked"):
        width = preview_width(page, sel)
        assert width < 2400
        expect(page.locator(sel)).to_have_attribute("src", re.compile(rf"\?width={width}$"))
        wait_loaded(page, sel, 2400)
        assert page.evaluate("(sel) => document.querySelector(sel).naturalHeight", sel) == round(1000 * width / 2400)
    first = swatches.nth(0).get_attribute("data-index")
    swatches.nth(0).click()
    expect(page.locator("#masked")).to_have_attribute("src", re.compile(rf"\?disable={first}&width=\d+$"))
    wait_loaded(page, "#masked", 2400)
    for testid in ("dl-segmented", "dl-masked"):
        with page.expect_download() as info:
            page.get_by_test_id(testid).click()
        target = tmp_path / info.value.suggested_filename
        info.value.save_as(target)
        with Image.open(target) as im:
            assert im.size == (2400, 1000)


def test_previews_are_asked_again_when_their_frames_grow(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    page = web_page
    url, _ = server
    page.set_viewport_size({"width": 1100, "height": 900})  # two image frames side by side
    page.goto(url)
    second = show_wide_image(page, tmp_path).nth(1)
    hidden = second.get_attribute("data-index")
    second.click()
    narrow = {}
    for sel in ("#segmented", "#masked"):
        narrow[sel] = preview_width(page, sel)
        expect(page.locator(sel)).to_have_attribute("src", re.compile(rf"width={narrow[sel]}$"))
        wait_loaded(page, sel, 2400)
    page.set_viewport_size({"width": 1900, "height": 900})
    for sel in ("#segmented", "#masked"):
        wide = preview_width(page, sel)
        assert narrow[sel] < wide < 2400
        expect(page.locator(sel)).to_have_attribute("src", re.compile(rf"width={wide}$"))
        wait_loaded(page, sel, 2400)
        assert page.evaluate("(sel) => document.querySelector(sel).naturalWidth", sel) == wide
    # The masked image keeps its hidden cluster; a narrower frame keeps the sharper preview.
    expect(page.locator("#masked")).to_have_attribute("src", re.compile(rf"\?disable={hidden}&width=\d+$"))
    before = page.get_attribute("#segmented", "src")
    page.set_viewport_size({"width": 1100, "height": 900})
    page.wait_for_timeout(600)
    assert page.get_attribute("#segmented", "src") == before


def test_errors_are_shown_and_the_page_recovers(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    page = web_page
    url, _ = server
    page.goto(url)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image\n")
    page.set_input_files("#file-input", str(bad))
    alert = page.get_by_role("alert")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("notes.txt: not an image")

    page.get_by_test_id("sample").click()  # the bundled photo, fetched from the server
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)
    expect(alert).to_be_hidden()

    # a bad file after a good one: the error shows, the good image stays current
    page.set_input_files("#file-input", str(bad))
    expect(alert).to_contain_text("notes.txt: not an image")
    expect(page.get_by_test_id("file-name")).to_have_text("coffee.png")
    page.get_by_test_id("k-slider").fill("7")
    expect(swatches).to_have_count(7)
    expect(alert).to_be_hidden()


def test_a_colour_space_that_does_not_fit_a_new_image_is_said_in_the_pages_words(server: tuple[str, Any],
                                                                                web_page: Any, tmp_path) -> None:
    """A grey image chosen while the colour space is HSV: the page says to choose RGB, in its own
    words (not the API's color_space='rgb'), and choosing RGB then shows that image, not the
    one shown before it (which it re-segmented)."""
    page = web_page
    url, _ = server
    page.goto(url)
    swatches = show_photo(page)
    space, alert, name = page.get_by_label("Colour space"), page.get_by_role("alert"), page.get_by_test_id("file-name")
    space.select_option("hsv")
    expect(page.get_by_test_id("status")).to_contain_text("600 × 400 px")
    grey = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))
    path = tmp_path / "grey.png"
    Image.fromarray(grey).save(path)
    page.set_input_files("#file-input", str(path))
    refused = ("grey.png: the colour space HSV needs an RGB image (3 colour channels); this image has 1: "
               "choose RGB as the colour space")
    expect(alert).to_have_text(refused)
    expect(name).to_have_text("coffee.png")
    space.select_option("rgb")  # the fix the page gave: the grey image is shown
    expect(name).to_have_text("grey.png")
    expect(page.get_by_test_id("status")).to_contain_text("K = 5 · 64 × 32 px")
    expect(alert).to_be_hidden()
    hexes = page.locator(".swatch .hex").all_inner_texts()
    expected = kmseg.segment(grey, 5, seed=0).palette()
    assert hexes == [p["hex"] for p in expected] and all(h[1:3] == h[3:5] == h[5:7] for h in hexes)
    # the same refusal for the image shown; it stays shown, and RGB again clears the message
    space.select_option("lab")
    expect(alert).to_have_text(refused.replace("HSV", "CIE Lab"))
    expect(swatches).to_have_count(5)
    space.select_option("rgb")
    expect(alert).to_be_hidden()
    expect(name).to_have_text("grey.png")


def test_a_tiff_of_several_images_is_noted_under_the_status(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    """The page shows what the server notes of a file: an OME-TIFF of two images is shown on its
    first, and says so; the next single image clears the note."""
    import tifffile

    page = web_page
    url, _ = server
    page.goto(url)
    rng = np.random.default_rng(2)
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), photometric="rgb")
        tif.write(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), photometric="rgb")
    notes = page.get_by_test_id("notes")
    expect(notes).to_be_hidden()
    page.set_input_files("#file-input", str(path))
    expect(page.get_by_test_id("status")).to_contain_text("30 × 20 px")
    expect(notes).to_be_visible()
    expect(notes).to_have_text("two.ome.tif: holds 2 images (TIFF series 0 to 1); kmseg reads the first (20x30x3): "
                               "to segment another, save it as a file of its own")
    show_photo(page)
    expect(notes).to_be_hidden()


def test_status_counts_the_colours_of_an_image_with_fewer_than_k(server: tuple[str, Any], web_page: Any,
                                                                  tmp_path) -> None:
    page = web_page
    url, _ = server
    page.goto(url)
    status = page.get_by_test_id("status")
    for n, colours in ((1, [(40, 90, 200)]), (2, [(40, 90, 200), (230, 200, 20)])):
        flat = np.zeros((12, 12, 3), np.uint8)
        for i, c in enumerate(colours):
            flat[:, i * 12 // n:] = c
        path = tmp_path / f"flat{n}.png"
        Image.fromarray(flat).save(path)
        page.set_input_files("#file-input", str(path))
        expect(page.locator('[data-testid="swatch"]')).to_have_count(n)
        word = "colour" if n == 1 else "colours"
        expect(status).to_contain_text(f"K = {n} (the image has only {n} {word}) · 12 × 12 px")
        # enlarged pixel by pixel: the picture holds its clusters' colours only (smoothed, it had hundreds)
        wait_loaded(page, "#segmented", 12)
        expect(page.locator("#segmented")).to_have_class(re.compile(r"\benlarged\b"))
        shot = np.asarray(Image.open(io.BytesIO(page.locator("#segmented").screenshot())).convert("RGB"))
        inner = shot[2:-2, 2:-2].reshape(-1, 3)  # (its edges blend with the frame's)
        assert inner.shape[0] > 100 * 100
        assert {tuple(c) for c in np.unique(inner, axis=0).tolist()} == {tuple(c) for c in colours}
    # a photo larger than its frame is reduced smoothly, as before
    show_photo(page)
    wait_loaded(page, "#segmented", 600)
    expect(page.locator("#segmented")).not_to_have_class(re.compile(r"\benlarged\b"))


@pytest.mark.parametrize("width", [375, 1280])
def test_the_palette_hint_holds_in_either_layout(server: tuple[str, Any], web_page: Any, width: int) -> None:
    page = web_page
    url, _ = server
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    show_photo(page)
    expect(page.get_by_test_id("downloads")).to_be_visible()
    for sel in ("#segmented", "#masked"):  # measured once the pictures have their size (under load they came late)
        wait_loaded(page, sel, 600)
    seg, masked, palette, downloads, controls, results = (page.locator(sel).bounding_box() for sel in (
        "#segmented", "#masked", "#palette", "#downloads", ".controls", ".results"))
    beside = masked["x"] >= seg["x"] + seg["width"]
    assert beside == (width > 1000)  # the images stand side by side on a wide window, stacked on a narrow one
    bottom = lambda box: box["y"] + box["height"]  # noqa: E731
    if width < 800:
        # a phone reads one column: the images, then the palette, then the downloads (they came first)
        assert bottom(controls) <= seg["y"] and bottom(seg) <= masked["y"] <= bottom(masked) <= palette["y"]
        assert bottom(palette) <= downloads["y"] and bottom(results) <= downloads["y"]
    else:
        # a wide window: the downloads stand in the left column, right under the settings
        assert downloads["x"] + downloads["width"] <= results["x"]
        assert 0 <= downloads["y"] - bottom(controls) <= 20
    # the hint names the image by what it is, never by where it is
    hint = page.locator("p.hint:has(+ #palette)").inner_text()  # the line above the swatches
    assert not re.search(r"\b(right|left|above|below|beside|under)\b", hint), hint
    assert page.get_by_test_id("masked-caption").inner_text().lower() in hint.lower()
    # narrow or wide, nothing is wider than the window
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_the_masked_download_waits_for_a_hidden_cluster(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    page = web_page
    url, _ = server
    page.goto(url)
    swatches = show_photo(page)
    masked, hint = page.get_by_test_id("dl-masked"), page.get_by_test_id("dl-masked-hint")
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))

    # nothing hidden: the masked image would be the original, so there is no link, and a hint
    expect(masked).not_to_have_attribute("href", re.compile(".*"))
    expect(masked).to_have_attribute("aria-disabled", "true")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("click a colour in the palette to hide its cluster")
    masked.click()
    with page.expect_download():  # a download that does start, after the click on the masked link
        page.get_by_test_id("dl-segmented").click()
    assert [d.suggested_filename for d in downloads] == ["coffee-k5-segmented.png"]

    # a hidden cluster: the link gives the masked image, full size, with that cluster black
    third = int(swatches.nth(2).get_attribute("data-index"))
    swatches.nth(2).click()
    expect(masked).to_have_attribute("href", re.compile(rf"/masked\.png\?disable={third}$"))
    expect(masked).not_to_have_attribute("aria-disabled", "true")
    expect(hint).to_be_hidden()
    with page.expect_download() as info:
        masked.click()
    assert info.value.suggested_filename == f"coffee-k5-masked-{third}.png"
    target = tmp_path / info.value.suggested_filename
    info.value.save_as(target)
    labels = np.asarray(Image.open(io.BytesIO(page.request.get(
        url.rstrip("/") + page.get_by_test_id("dl-labels").get_attribute("href")).body())))
    with Image.open(target) as im:
        shown = np.asarray(im)
    assert shown.shape == (400, 600, 3) and (shown[labels == third] == 0).all() and shown[labels != third].any()

    swatches.nth(2).click()  # shown again: nothing hidden, no link
    expect(masked).not_to_have_attribute("href", re.compile(".*"))
    expect(hint).to_be_visible()


def test_an_int16_tiff_is_downloaded_as_a_tiff_and_a_photo_as_a_png(server: tuple[str, Any], web_page: Any,
                                                                      tmp_path) -> None:
    """The downloads of an image the page's 8-bit PNGs cannot hold (int16, uint16) keep its
    values: the links give TIFFs in its dtype, the 8-bit PNG a secondary preview link; an 8-bit
    photo keeps its PNGs."""
    import tifffile

    page = web_page
    url, _ = server
    page.goto(url)
    rng = np.random.default_rng(0)
    ct = (np.repeat(np.array([-1000, -300, 40, 400, 1000]), 10)[None, :] + rng.integers(-5, 6, (30, 50))).astype(np.int16)
    path = tmp_path / "ct.tif"
    tifffile.imwrite(path, ct)
    page.set_input_files("#file-input", str(path))
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)
    seg, seg_png = page.get_by_test_id("dl-segmented"), page.get_by_test_id("dl-segmented-png")
    masked, masked_png = page.get_by_test_id("dl-masked"), page.get_by_test_id("dl-masked-png")
    expect(seg).to_have_text("Segmented image (TIFF, int16)")
    expect(seg).to_have_attribute("href", re.compile(r"^/api/result/[^/]+/segmented\.tif$"))
    expect(seg).to_have_attribute("download", "ct-k5-segmented.tif")
    expect(seg_png).to_be_visible()
    expect(seg_png).to_have_attribute("href", re.compile(r"/segmented\.png$"))
    expect(seg_png).to_have_attribute("download", "ct-k5-segmented.png")
    expect(masked_png).to_be_hidden()  # nothing hidden yet: neither masked link
    with page.expect_download() as info:
        seg.click()
    assert info.value.suggested_filename == "ct-k5-segmented.tif"
    target = tmp_path / "downloaded.tif"
    info.value.save_as(target)
    painted = tifffile.imread(target)
    assert painted.dtype == np.int16 and painted.shape == ct.shape and painted.min() < 0

    # each swatch gives its centre's value, in the CT's units, as the TIFF holds it (with thousands separators)
    body = page.evaluate("() => fetch(document.getElementById('dl-palette').href).then((r) => r.json())")
    order = [int(swatches.nth(n).get_attribute("data-index")) for n in range(5)]
    centres = [int(np.rint(body["centers"][i][0])) for i in order]
    assert min(centres) < -900 and max(centres) > 900
    expect(page.get_by_test_id("swatch-values")).to_have_text([f"{v:,}" for v in centres])
    expect(page.get_by_test_id("palette-values-hint")).to_contain_text("its centre's value (int16)")
    expect(swatches.nth(0)).to_have_attribute("aria-label", re.compile(rf"^Hide cluster {order[0]} \(value {centres[0]:,}, shown as #"))
    assert {int(v) for v in np.unique(painted)} == set(centres)

    first = swatches.nth(0).get_attribute("data-index")
    swatches.nth(0).click()
    expect(masked).to_have_text("Masked image (TIFF, int16)")
    expect(masked).to_have_attribute("href", re.compile(rf"/masked\.tif\?disable={first}$"))
    expect(masked).to_have_attribute("download", f"ct-k5-masked-{first}.tif")
    expect(masked_png).to_be_visible()
    expect(masked_png).to_have_attribute("href", re.compile(rf"/masked\.png\?disable={first}$"))
    swatches.nth(0).click()
    expect(masked_png).to_be_hidden()

    # 16-bit: a PNG could hold it, but the page's PNGs are 8-bit, so the lossless link is the TIFF
    deep = (ct.astype(np.int32) + 2000).astype(np.uint16) * 16
    tifffile.imwrite(tmp_path / "deep.tif", deep)
    page.set_input_files("#file-input", str(tmp_path / "deep.tif"))
    expect(seg).to_have_text("Segmented image (TIFF, uint16)")
    expect(seg).to_have_attribute("download", "deep-k5-segmented.tif")
    expect(seg_png).to_be_visible()
    with page.expect_download() as info:
        seg.click()
    info.value.save_as(tmp_path / "deep-down.tif")
    painted = tifffile.imread(tmp_path / "deep-down.tif")
    assert painted.dtype == np.uint16 and painted.max() > 255

    # the bundled 8-bit photo: PNG links as before, and no second link; its hex colours are its values
    show_photo(page)
    expect(page.get_by_test_id("swatch-values")).to_have_count(0)
    expect(page.get_by_test_id("palette-values-hint")).to_be_hidden()
    expect(seg).to_have_text("Segmented image (PNG)")
    expect(seg).to_have_attribute("href", re.compile(r"/segmented\.png$"))
    expect(seg).to_have_attribute("download", "coffee-k5-segmented.png")
    expect(seg_png).to_be_hidden()
    page.locator('[data-testid="swatch"]').nth(0).click()
    expect(masked).to_have_text("Masked image (PNG)")
    expect(masked).to_have_attribute("href", re.compile(r"/masked\.png\?disable=\d+$"))
    expect(masked).to_have_attribute("download", re.compile(r"^coffee-k5-masked-\d+\.png$"))
    expect(masked_png).to_be_hidden()


def test_a_two_band_tiff_shows_and_downloads_both_bands(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    """A 2-sample TIFF (grey and another band, no alpha; kmseg reads it as 2 bands, not grey and
    alpha): its swatches are band 1 in grey, and they list both bands' values; the segmented
    download is a TIFF with both bands (the 8-bit PNG holds band 1 only)."""
    import tifffile

    page = web_page
    url, _ = server
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(url)
    rng = np.random.default_rng(3)
    stripes = np.repeat(np.array([[30, 200], [120, 40], [220, 120]]), 10, axis=0)
    image = np.clip(stripes[None] + rng.integers(-3, 4, (20, 30, 2)), 0, 255).astype(np.uint8)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig")
    assert kmseg.load_image(path, return_alpha=True)[1] is None
    page.get_by_test_id("k-slider").fill("3")
    page.set_input_files("#file-input", str(path))
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(3)
    expected = kmseg.segment(path, 3, seed=0)
    order = [int(swatches.nth(n).get_attribute("data-index")) for n in range(3)]
    assert order == [p["index"] for p in expected.palette()]
    values = [np.rint(expected.centers[i]).astype(int).tolist() for i in order]
    assert sorted(values) == [[30, 200], [120, 40], [220, 120]]
    expect(page.get_by_test_id("swatch-values")).to_have_text([f"{a} · {b}" for a, b in values])
    expect(page.get_by_test_id("palette-values-hint")).to_have_text(
        "Each colour lists its centre's values in the image's 2 bands (uint8): band 1 · band 2, as the segmented "
        "TIFF holds them; its swatch shows band 1 in grey.")
    for n, (a, b) in enumerate(values):
        expect(swatches.nth(n).locator(".hex")).to_have_text(f"#{a:02x}{a:02x}{a:02x}")
        expect(swatches.nth(n)).to_have_attribute(
            "aria-label", re.compile(rf"^Hide cluster {order[n]} \(band 1 {a}, band 2 {b}, shown as #"))
    for box in (swatches.nth(n).bounding_box() for n in range(3)):  # inside the phone's window
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375

    seg = page.get_by_test_id("dl-segmented")
    expect(seg).to_have_text("Segmented image (TIFF, uint8)")
    expect(page.get_by_test_id("dl-segmented-png")).to_be_visible()
    with page.expect_download() as info:
        seg.click()
    assert info.value.suggested_filename == "two-k3-segmented.tif"
    info.value.save_as(tmp_path / "down.tif")
    painted = tifffile.imread(tmp_path / "down.tif")
    assert painted.shape == (20, 30, 2)
    assert sorted({tuple(v) for v in painted.reshape(-1, 2).tolist()}) == sorted(tuple(v) for v in values)
    expect(page.get_by_role("alert")).to_be_hidden()


def test_a_seed_the_api_refuses_is_refused_on_the_page(server: tuple[str, Any], web_page: Any) -> None:
    page = web_page
    url, _ = server
    page.goto(url)
    swatches = show_photo(page)
    seed, alert = page.get_by_test_id("seed"), page.get_by_role("alert")
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/api/segment") else None)
    # the page's words for a bad seed are the API's
    api = page.request.post(url + "api/segment", multipart={"upload_id": "0" * 64, "seed": "-5"})
    assert api.status == 422
    fix = api.json()["detail"].split("; ")[-1]
    assert fix == "pass a whole number from 0 to 4294967295"

    for bad in ("-5", "1.5", "4294967296"):
        seed.fill(bad)
        seed.press("Tab")  # "change"
        expect(alert).to_have_text(f"Seed {bad} is not valid; {fix}.")
        assert seed.evaluate("(box) => box.validity.valid") is False
        expect(seed).to_have_value(bad)  # the box still shows what was typed, and that is not sent
    page.get_by_test_id("k-slider").fill("3")  # nor is any other K while the seed is bad
    page.wait_for_timeout(500)
    assert sent == [] and swatches.count() == 5

    # a good seed is sent as shown, with the K now chosen
    seed.fill("7")
    with page.expect_response(lambda r: r.url.endswith("/api/segment")) as info:
        seed.press("Tab")
    body = info.value.json()
    assert (body["seed"], body["k"]) == (7, 3)
    expect(swatches).to_have_count(3)
    expect(alert).to_be_hidden()
    assert len(sent) == 1 and 'name="seed"\r\n\r\n7\r\n' in sent[0]

    # an image chosen while the seed is bad waits for a good seed
    seed.fill("-1")
    seed.press("Tab")
    page.set_input_files("#file-input", str(data.path("astronaut.png")))
    expect(alert).to_have_text(f"Seed -1 is not valid; {fix}.")
    assert len(sent) == 1
    expect(page.get_by_test_id("file-name")).to_have_text("coffee.png")
    seed.fill("0")
    seed.press("Tab")
    expect(page.get_by_test_id("file-name")).to_have_text("astronaut.png")
    expect(alert).to_be_hidden()


@pytest.mark.parametrize("width", [390, 1280])
def test_k_reaches_the_api_limit_and_the_page_holds_k_max_clusters(server: tuple[str, Any], web_page: Any,
                                                                    tmp_path, width: int) -> None:
    page = web_page
    url, _ = server
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(url)
    # K_MAX colours far apart, in 4 x 4 blocks: K = K_MAX finds each of them
    levels = np.linspace(0, 255, 4).round().astype(np.uint8)
    colours = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    assert len(colours) == K_MAX
    side = int(np.sqrt(K_MAX))
    img = np.repeat(np.repeat(colours.reshape(side, side, 3), 4, axis=0), 4, axis=1)
    path = tmp_path / "cube.png"
    Image.fromarray(img).save(path)
    page.set_input_files("#file-input", str(path))
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)

    slider = page.get_by_test_id("k-slider")
    expect(slider).to_have_attribute("max", str(K_MAX))
    slider.focus()
    slider.press("End")
    expect(page.get_by_test_id("k-value")).to_have_text(str(K_MAX))
    expect(swatches).to_have_count(K_MAX)
    expect(page.get_by_test_id("status")).to_contain_text(f"K = {K_MAX} · 32 × 32 px")
    hexes = {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in colours}
    assert set(page.locator(".swatch .hex").all_inner_texts()) == hexes

    # K_MAX swatches and cut-out links stay inside their panels, and the page inside the window
    page.locator("#downloads summary").click()
    expect(page.locator('[data-testid="dl-cluster"]')).to_have_count(K_MAX)
    for items, panel in (('[data-testid="swatch"]', ".results"), ("#dl-clusters li", ".downloads")):
        box = page.locator(panel).bounding_box()
        for b in (page.locator(items).nth(i).bounding_box() for i in range(K_MAX)):
            assert box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"], (items, b, box)
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot = os.environ.get("KMSEG_SCREENSHOT_K_MAX")
    if shot:
        page.screenshot(path=shot.replace(".png", f"-{width}.png"), full_page=True)


def _tab(page: Any) -> str:
    """Press Tab; the id of the element that has the focus then (an elbow point: K=n). It must be
    one a person can see: nothing invisible takes the focus."""
    page.keyboard.press("Tab")
    info = page.evaluate("""() => {
        const a = document.activeElement, r = a.getBoundingClientRect();
        return {id: a.id || (a.dataset.k ? `K=${a.dataset.k}` : a.tagName), w: r.width, h: r.height,
                opacity: getComputedStyle(a).opacity};
    }""")
    assert info["w"] > 1 and info["h"] > 1 and info["opacity"] != "0", info
    return info["id"]


def test_the_page_works_from_the_keyboard(server: tuple[str, Any], web_page: Any) -> None:
    """Tab reaches each control once, in reading order, and never an invisible one; Enter opens
    the file chooser, hides a cluster and takes a K from the elbow curve; each swatch says what
    it does and for which cluster."""
    page = web_page
    url, _ = server
    page.goto(url)
    chosen: list[Any] = []
    page.on("filechooser", lambda fc: (chosen.append(fc), fc.set_files(str(data.path("chelsea.png")))))

    assert [_tab(page) for _ in range(7)] == ["dropzone", "sample-name", "sample", "k", "color-space", "seed",
                                              "A"]  # A: the footer's link
    page.locator("#dropzone").focus()
    page.keyboard.press("Enter")
    swatches = page.locator('[data-testid="swatch"]')
    expect(swatches).to_have_count(5)
    assert len(chosen) == 1
    expect(page.get_by_test_id("elbow-knee")).to_have_count(1)

    page.locator("#dropzone").focus()
    stops = [_tab(page) for _ in range(30)]
    downloads = ["dl-segmented", "dl-labels", "dl-palette", "dl-palette-gpl", "dl-palette-ase", "dl-palette-css",
                 "dl-palette-png", "dl-clusters-zip", "SUMMARY"]  # (the masked image's link waits for a hidden cluster)
    assert stops == ["sample-name", "sample", "k", "color-space", "seed", *["BUTTON"] * 5,  # the swatches
                     *[f"K={k}" for k in range(1, 11)], *downloads, "A"]  # as a phone shows them

    # each swatch is named by what it does, for its cluster; pressed means hidden
    body = page.evaluate("() => fetch(document.getElementById('dl-palette').href).then((r) => r.json())")
    for entry in body["palette"]:
        name = f"Hide cluster {entry['index']} ({entry['hex']}, {100 * entry['fraction']:.1f}% of the pixels)"
        expect(page.get_by_role("button", name=name, exact=True)).to_have_attribute("aria-pressed", "false")
    first = body["palette"][0]["index"]
    swatches.nth(0).focus()
    page.keyboard.press("Enter")
    expect(swatches.nth(0)).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_test_id("masked-caption")).to_have_text(f"Hidden: cluster {first}")

    page.locator("#elbow .pt[data-k='3']").focus()
    page.keyboard.press("Enter")
    expect(swatches).to_have_count(3)
    expect(page.get_by_test_id("k-value")).to_have_text("3")
    expect(page.get_by_role("alert")).to_be_hidden()


def test_every_bundled_sample_can_be_chosen_from_the_keyboard(server: tuple[str, Any], web_page: Any) -> None:
    """The sample picker offers every photo the server serves (kmseg.data.NAMES), coffee.png
    first chosen; one chosen with the keyboard is segmented as kmseg segments it."""
    page = web_page
    url, _ = server
    page.goto(url)
    picker = page.get_by_label("No image at hand? Try a sample photo:")
    expect(picker).to_have_value("coffee.png")
    names = picker.locator("option").evaluate_all("(options) => options.map((o) => o.value)")
    assert sorted(names) == sorted(data.NAMES) and names[0] == "coffee.png"
    for name in names:  # each one is a photo the server has, byte for byte
        assert page.request.get(f"{url}api/sample/{name}").body() == data.path(name).read_bytes()

    # keyboard only: Tab to the picker, an arrow to choose, Tab to the button, Enter
    assert [_tab(page) for _ in range(2)] == ["dropzone", "sample-name"]
    while picker.input_value() != "rocket.jpg":
        page.keyboard.press("ArrowDown")
    assert _tab(page) == "sample"
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("file-name")).to_have_text("rocket.jpg")
    expect(page.get_by_test_id("status")).to_contain_text("K = 5 · 640 × 427 px")
    expected = kmseg.segment(kmseg.load_image(data.path("rocket.jpg")), 5, seed=0).palette()
    expect(page.locator(".swatch .hex")).to_have_text([p["hex"] for p in expected])
    expect(page.get_by_role("alert")).to_be_hidden()


def test_a_stopped_or_restarted_server_is_said_so(web_page: Any) -> None:
    """When the server stops, every action says so and how to start it again (the masked image
    failed without a word); when it comes back without the result, the page says so, and moving
    K segments the image again (the file is sent again)."""
    page = web_page
    alert = page.get_by_role("alert")
    swatches = page.locator('[data-testid="swatch"]')
    with running(create_app(warm_up=False)) as url:
        page.goto(url)
        show_photo(page)
        expect(page.get_by_test_id("elbow-knee")).to_have_count(1)
    port = int(url.rsplit(":", 1)[1].strip("/"))

    stopped = re.compile(r"^Cannot reach the kmseg server.*; is it still running\? Start it with: kmseg serve$")
    swatches.nth(1).click()  # the masked image is asked for: no answer
    expect(alert).to_have_text(stopped)
    expect(swatches).to_have_count(5)
    page.get_by_test_id("sample").click()
    expect(alert).to_have_text(stopped)
    slider = page.get_by_test_id("k-slider")
    slider.focus()
    slider.press("ArrowLeft")
    expect(alert).to_have_text(stopped)

    with running(create_app(warm_up=False), port):  # back, on the same port, without the result
        swatches.nth(2).click()
        expect(alert).to_contain_text("The masked image could not be loaded: the server no longer has this result")
        expect(alert).to_contain_text("move K or choose the image again")
        slider.press("ArrowLeft")
        expect(swatches).to_have_count(3)
        expect(alert).to_be_hidden()
        wait_loaded(page, "#masked", 600)


def test_the_knee_label_stays_inside_the_curve(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    """Nine colours far apart: the knee is at K = 9, near the right edge, and its label is written
    to its left, inside the drawing (it ran past the edge), on a phone and on a wide window."""
    page = web_page
    url, _ = server
    rng = np.random.default_rng(0)
    colours = rng.integers(0, 256, (9, 3))
    img = np.repeat(colours, 8, axis=0)[None].repeat(16, axis=0) + rng.normal(0, 2, (16, 72, 3))
    path = tmp_path / "nine.png"
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path)
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(url)
    page.set_input_files("#file-input", str(path))
    expect(page.get_by_test_id("elbow-knee")).to_have_attribute("data-k", "9")
    label = page.get_by_test_id("elbow-knee-label")
    expect(label).to_have_text("knee: K = 9")
    for width in (375, 1280):
        page.set_viewport_size({"width": width, "height": 800})
        drawn = page.evaluate("document.getElementById('elbow').parentElement.clientWidth")
        expect(page.locator("#elbow")).to_have_attribute("viewBox", f"0 0 {drawn} 220")
        box, chart = label.bounding_box(), page.locator("#elbow").bounding_box()
        knee = page.get_by_test_id("elbow-knee").bounding_box()
        assert chart["x"] <= box["x"] and box["x"] + box["width"] <= chart["x"] + chart["width"], (width, box, chart)
        assert box["x"] + box["width"] <= knee["x"]  # beside the knee, not over it


def short(v: float) -> str:
    """An inertia as the page says it: 3 significant digits and an SI prefix (2.51 G, 350 M)."""
    for size, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        scaled = float(f"{abs(v) / size:.3g}")
        if scaled >= 1:
            return f"{'-' if v < 0 else ''}{scaled:g} {prefix}"
    return f"{v:.3g}"


def test_the_elbow_curve_is_readable_and_tappable_on_a_phone(server: tuple[str, Any], web_page: Any) -> None:
    """On a 375-pixel-wide window the curve keeps its text and its points' targets at their size
    (it was a 480-wide drawing scaled down: 7 px text, 7 px points), and is drawn again at the
    new width when the window changes."""
    page = web_page
    url, _ = server
    page.set_viewport_size({"width": 375, "height": 800})
    page.goto(url)
    with page.expect_response(lambda r: r.url.endswith("/api/elbow")) as answer:
        show_photo(page)
    inertias = answer.value.json()["inertias"]
    points = page.locator("#elbow .pt")
    expect(points).to_have_count(10)
    assert max(inertias) > 1e9  # a photo's inertias run to billions: the axis said 2.5e+9

    # the inertia axis: round ticks from 0 to just above the largest inertia, in short words
    labels = page.locator("#elbow .ytick").all_text_contents()
    assert all(re.fullmatch(r"0|[1-9]\d{0,2}(\.\d+)? [kMGT]", t) for t in labels), labels
    scale = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    values = [0.0 if t == "0" else float(t.split()[0]) * scale[t.split()[1]] for t in labels]
    step = values[1]
    assert values == pytest.approx([i * step for i in range(len(values))]) and 3 <= len(values) <= 6
    assert values[-1] - step < max(inertias) <= values[-1]
    # each point says its inertia the same way, to 3 digits
    for k, v in enumerate(inertias, start=1):
        point = page.locator(f"#elbow .pt[data-k='{k}']")
        expect(point).to_have_attribute("aria-label", f"Use K = {k} (inertia {short(v)})")
        expect(point.locator("title")).to_have_text(f"K = {k}: inertia {short(v)}. Click to use this K.")
    for n in range(10):
        box = points.nth(n).bounding_box()
        assert box["width"] >= 24 and box["height"] >= 24, (n, box)  # WCAG 2.5.8's smallest target
    for text in page.locator("#elbow text").all():
        assert text.bounding_box()["height"] >= 12, text.text_content()  # 11 px type
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    # a tap near a point, not on its dot, takes its K
    points.nth(6).scroll_into_view_if_needed()
    box = points.nth(6).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2 + 9, box["y"] + box["height"] / 2)
    expect(page.get_by_test_id("k-value")).to_have_text("7")
    expect(page.locator('[data-testid="swatch"]')).to_have_count(7)
    expect(page.locator("#elbow .pt.current")).to_have_attribute("data-k", "7")
    # a wider window: drawn again as wide as its box, the current K still marked
    page.set_viewport_size({"width": 1280, "height": 800})
    wide = page.evaluate("document.getElementById('elbow').parentElement.clientWidth")
    expect(page.locator("#elbow")).to_have_attribute("viewBox", f"0 0 {wide} 220")
    expect(page.locator("#elbow .pt.current")).to_have_attribute("data-k", "7")
    assert page.locator("#elbow .pt").nth(0).bounding_box()["width"] == pytest.approx(24, abs=0.5)


# --------------------------------------------------------------------------- planes and frames


def write_zstack(path: Any, n: int = 5) -> np.ndarray:
    """A real ImageJ Z-stack (``ZYX``, uint8) of ``n`` planes written by tifffile: each plane cut
    into bands of its own, plus seeded noise, so that every plane has a segmentation of its own."""
    import tifffile

    rng = np.random.default_rng(11)
    h, w = 40, 64
    planes = []
    for z in range(n):
        levels = np.array([15, 70, 130, 190, 245])[(np.arange(w) * (z + 2) // w + np.arange(h)[:, None] // (8 + 4 * z)) % 5]
        planes.append(np.clip(levels + rng.integers(-5, 6, (h, w)), 0, 255).astype(np.uint8))
    stack = np.stack(planes)
    tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    return stack


def fetch_png(page: Any, url: str, href: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(url.rstrip("/") + href).body())))


def test_a_stack_is_shown_on_its_first_plane_and_offers_the_others(server: tuple[str, Any], web_page: Any,
                                                                   tmp_path) -> None:
    """A scientist drops a Z-stack: the page shows plane 0 at once (no error), a Plane picker of the
    stack's planes beside the file with a one-line note; another plane is segmented when picked,
    and its downloads are named with it, as `kmseg segment --plane N` names its outputs."""
    page = web_page
    url, app = server
    state = app.state.kmseg
    path = tmp_path / "cells.tif"
    write_zstack(path, 5)
    page.goto(url)
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: answers.append((r.url.rsplit("/api/", 1)[-1], r.status))
            if r.request.method == "POST" else None)
    elbow_posts: list[str] = []
    page.on("request", lambda r: elbow_posts.append(r.post_data or "") if r.url.endswith("/api/elbow") else None)
    field, picker, note = page.get_by_test_id("plane-field"), page.get_by_test_id("plane"), page.get_by_test_id("plane-note")
    status, alert = page.get_by_test_id("status"), page.get_by_role("alert")
    expect(field).to_be_hidden()

    page.set_input_files("#file-input", str(path))
    expect(status).to_contain_text("K = 5 · plane 0 of 5 · 64 × 40 px")
    expect(field).to_be_visible()
    expect(page.get_by_test_id("plane-label")).to_have_text("Plane")
    expect(note).to_have_text("This file is a stack of 5 planes; pick one (0 to 4).")
    expect(picker).to_have_value("0")
    assert (picker.get_attribute("min"), picker.get_attribute("max")) == ("0", "4")
    expect(alert).to_be_hidden()  # the API's refusal of a stack without a plane is not shown: plane 0 is
    expect(page.get_by_test_id("file-name")).to_have_text("cells.tif")
    seg_link = page.get_by_test_id("dl-segmented")
    expect(seg_link).to_have_attribute("download", "cells-plane0-k5-segmented.png")
    expect(page.get_by_test_id("dl-labels")).to_have_attribute("download", "cells-plane0-k5-labels.png")
    expect(page.get_by_test_id("dl-palette")).to_have_attribute("download", "cells-plane0-k5-palette.json")
    plane0 = kmseg.segment(path, 5, plane=0, seed=0)
    labels0 = fetch_png(page, url, page.get_by_test_id("dl-labels").get_attribute("href"))
    assert np.array_equal(labels0, plane0.labels)
    expect(page.get_by_test_id("elbow-knee")).to_have_count(1)
    assert answers[:2] == [("segment", 422), ("segment", 200)]
    decodes = state.counts["decodes"]
    first_src = page.get_by_test_id("segmented-image").get_attribute("src")

    # pick plane 3: the page asks by upload_id, is told the server has not decoded it, sends the file with it
    picker.fill("3")
    picker.press("Enter")
    expect(status).to_contain_text("K = 5 · plane 3 of 5 · 64 × 40 px")
    expect(seg_link).to_have_attribute("download", "cells-plane3-k5-segmented.png")
    assert page.get_by_test_id("segmented-image").get_attribute("src") != first_src
    plane3 = kmseg.segment(path, 5, plane=3, seed=0)
    labels3 = fetch_png(page, url, page.get_by_test_id("dl-labels").get_attribute("href"))
    assert np.array_equal(labels3, plane3.labels) and not np.array_equal(labels3, labels0)
    assert state.counts["decodes"] == decodes + 1
    assert [status for verb, status in answers if verb == "segment"][2:] == [404, 200]
    with page.expect_download() as info:
        seg_link.click()
    assert info.value.suggested_filename == "cells-plane3-k5-segmented.png"
    info.value.save_as(tmp_path / "down.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "down.png")), plane3.image())
    palette = json.loads(page.request.get(url.rstrip("/") + page.get_by_test_id("dl-palette").get_attribute("href")).body())
    assert palette["plane"] == 3 and palette["source"] == "cells.tif"
    # the elbow curve is the plane's own
    expect(page.locator("#elbow .pt")).to_have_count(10)
    expect(page.get_by_test_id("elbow-note")).not_to_have_text("Computing the elbow curve…")
    assert any('name="plane"\r\n\r\n3\r\n' in body for body in elbow_posts)

    # another K keeps the plane, and the decoded plane is reused
    page.get_by_test_id("k-slider").fill("3")
    expect(status).to_contain_text("K = 3 · plane 3 of 5")
    expect(seg_link).to_have_attribute("download", "cells-plane3-k3-segmented.png")
    assert state.counts["decodes"] == decodes + 1
    page.locator('[data-testid="swatch"]').nth(0).click()
    expect(page.get_by_test_id("dl-masked")).to_have_attribute("download", re.compile(r"^cells-plane3-k3-masked-\d\.png$"))

    # a plane the stack does not have is refused on the page, in one line, and nothing is sent
    sent = len(answers)
    picker.fill("9")
    picker.press("Enter")
    expect(alert).to_have_text("Plane 9 is not valid; this file has 5 planes: pick a whole number from 0 to 4.")
    page.wait_for_timeout(500)
    assert len(answers) == sent
    picker.fill("0")  # plane 0 again: decoded already, not sent again
    picker.press("Enter")
    expect(status).to_contain_text("K = 3 · plane 0 of 5")
    expect(alert).to_be_hidden()
    assert state.counts["decodes"] == decodes + 1

    # a single image next: no picker, no plane in the names
    page.set_input_files("#file-input", str(data.path("coffee.png")))
    expect(status).to_contain_text("K = 3 · 600 × 400 px")
    expect(field).to_be_hidden()
    expect(seg_link).to_have_attribute("download", "coffee-k3-segmented.png")


def test_an_animation_offers_its_frames(server: tuple[str, Any], web_page: Any, tmp_path) -> None:
    """An animated GIF is shown on its first frame, as kmseg reads it without a plane; a Frame
    picker offers the others, and a frame picked names the downloads."""
    page = web_page
    url, _ = server
    frames = []
    for i in range(4):
        img = np.full((30, 40, 3), (120, 120, 120), np.uint8)
        img[3 + 5 * i: 13 + 5 * i, 2 + 8 * i: 14 + 8 * i] = (220, 40, 40)
        img[-6:, : 10 * (i + 1)] = (40, 40, 220)
        frames.append(Image.fromarray(img))
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    page.goto(url)
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/api/segment") else None)
    page.get_by_test_id("k-slider").fill("3")
    page.set_input_files("#file-input", str(path))
    status, picker = page.get_by_test_id("status"), page.get_by_test_id("plane")
    expect(status).to_contain_text("K = 3 · frame 0 of 4 · 40 × 30 px")
    expect(page.get_by_test_id("plane-label")).to_have_text("Frame")
    expect(page.get_by_test_id("plane-note")).to_have_text("This file is an animation of 4 frames; pick one (0 to 3).")
    expect(picker).to_have_value("0")
    seg_link = page.get_by_test_id("dl-segmented")
    expect(seg_link).to_have_attribute("download", "anim-k3-segmented.png")  # frame 0, read without a plane
    labels = fetch_png(page, url, page.get_by_test_id("dl-labels").get_attribute("href"))
    assert np.array_equal(labels, kmseg.segment(path, 3, seed=0).labels)

    picker.fill("2")
    picker.press("Enter")
    expect(status).to_contain_text("K = 3 · frame 2 of 4")
    expect(seg_link).to_have_attribute("download", "anim-plane2-k3-segmented.png")
    labels = fetch_png(page, url, page.get_by_test_id("dl-labels").get_attribute("href"))
    assert np.array_equal(labels, kmseg.segment(path, 3, plane=2, seed=0).labels)
    assert any('name="plane"\r\n\r\n2\r\n' in body for body in sent)
    expect(page.get_by_role("alert")).to_be_hidden()
