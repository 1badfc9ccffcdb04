"""The web API of `kmseg serve`, through FastAPI's TestClient: every endpoint, every error path,
the caches, and the `kmseg serve` command line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("python_multipart")
with warnings.catch_warnings():
    # Starlette >= 1.x warns when its TestClient runs on httpx rather than httpx2.
    warnings.filterwarnings("ignore", message=r"Using `httpx` with `starlette\.testclient`")
    from fastapi.testclient import TestClient

import kmseg
from kmseg import data
from kmseg.cli import main
from kmseg.io import palette_bytes
from kmseg.web.app import ELBOW_FIELDS, K_MAX, PALETTE_MEDIA, SEGMENT_FIELDS, create_app
from helpers import ct_slice, same_partition

COFFEE = data.path("coffee.png").read_bytes()


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def blocks(colors: list[tuple[int, int, int]], size: int = 24, seed: int = 0) -> np.ndarray:
    """Vertical bands of the given colours plus a little seeded noise (distinct images per seed)."""
    rng = np.random.default_rng(seed)
    bands = np.repeat(np.asarray(colors, np.float64), size // len(colors) + 1, axis=0)[:size]
    img = np.broadcast_to(bands[None, :, :], (size, size, 3)) + rng.normal(0, 4, (size, size, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


SMALL = png_bytes(blocks([(200, 30, 30), (30, 200, 30), (30, 30, 200), (230, 230, 40)]))


def decode_png(content: bytes) -> Image.Image:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(content))
    im.load()
    return im


def decode_tiff(content: bytes) -> np.ndarray:
    import tifffile

    assert content[:4] in (b"II*\x00", b"MM\x00*")
    return tifffile.imread(io.BytesIO(content))


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(warm_up=False)) as c:
        yield c


@pytest.fixture
def fresh() -> Iterator[TestClient]:
    """A client on a new app, for counting decodes and cache entries from zero."""
    with TestClient(create_app(warm_up=False)) as c:
        yield c


def upload(c: TestClient, content: bytes = SMALL, name: str = "img.png", **fields: object):
    return c.post("/api/segment", files={"file": (name, content, "image/png")},
                  data={k: str(v) for k, v in fields.items()})


def assert_error(resp, status: int, pattern: str, **facts: object) -> str:
    """The error's status, its detail matching ``pattern``, and no other field but ``facts`` (the
    planes of a file: ``planes=3, plane_kind="plane"``)."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) == {"detail", *facts} and isinstance(body["detail"], str), body
    assert {key: body[key] for key in facts} == facts, body
    assert re.search(pattern, body["detail"]), body["detail"]
    return body["detail"]


# --------------------------------------------------------------------------- page and health


def test_health(client: TestClient) -> None:
    resp = client.get("/api/health")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "ok" and body["version"] == kmseg.__version__
    assert body["max_upload_bytes"] == 50 * 1024 * 1024
    # the page's K slider reaches the largest k /api/segment takes (it reads k_max from here;
    # its HTML says the same before this answers)
    assert body["k_max"] == K_MAX == 64
    slider = re.search(r'<input type="range" id="k"[^>]*>', client.get("/").text).group(0)
    assert f'max="{K_MAX}"' in slider
    assert_error(upload(client, SMALL, k=K_MAX + 1), 422, rf"k='{K_MAX + 1}' is not valid .*from 1 to {K_MAX}")


def test_page_and_assets_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ('id="k"', 'id="palette"', 'role="alert"', "/static/app.js", "/static/style.css"):
        assert needle in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    texts = [page.text]
    for asset, kind in (("/static/app.js", "javascript"), ("/static/style.css", "text/css")):
        resp = client.get(asset)
        assert resp.status_code == 200 and kind in resp.headers["content-type"]
        texts.append(resp.text)
    for text in texts:  # no CDN: the only absolute URL is the SVG namespace
        urls = set(re.findall(r"https?://[^\s\"'`)]+", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls


def test_openapi_documents_every_endpoint(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {
        ("get", "/api/health"), ("get", "/api/stats"), ("post", "/api/segment"), ("post", "/api/elbow"),
        ("get", "/api/result/{result_id}/segmented.png"), ("get", "/api/result/{result_id}/labels.png"),
        ("get", "/api/result/{result_id}/palette.json"), ("get", "/api/result/{result_id}/masked.png"),
        ("get", "/api/result/{result_id}/segmented.tif"), ("get", "/api/result/{result_id}/masked.tif"),
        ("get", "/api/result/{result_id}/cluster/{index}.png"), ("get", "/api/result/{result_id}/clusters.zip"),
        ("get", "/api/result/{result_id}/palette.{suffix}"), ("get", "/api/sample/{name}"),
    }
    assert {(m, p) for p, ops in paths.items() for m in ops} == expected
    for method, path in expected:
        op = paths[path][method]
        assert op.get("summary") and op.get("description"), (method, path)
    seg = paths["/api/segment"]["post"]
    assert seg["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("SegmentResponse")
    assert {"404", "413", "415", "422"} <= set(seg["responses"])
    fields = schema["components"]["schemas"]["SegmentResponse"]["properties"]
    assert {"upload_id", "palette", "width", "height", "k", "inertia", "urls"} <= set(fields)


# --------------------------------------------------------------------------- segment and results


def test_segment_upload(client: TestClient) -> None:
    resp = upload(client, COFFEE, "coffee.png", k=4, seed=0)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["upload_id"] == hashlib.sha256(COFFEE).hexdigest()
    assert (body["width"], body["height"], body["k"], body["k_requested"]) == (600, 400, 4, 4)
    assert body["name"] == "coffee.png" and body["color_space"] == "rgb" and body["warnings"] == []
    assert sorted(p["index"] for p in body["palette"]) == [0, 1, 2, 3]
    counts = [p["count"] for p in body["palette"]]
    assert counts == sorted(counts, reverse=True)  # largest share first, as every palette
    labels = np.asarray(decode_png(client.get(body["urls"]["labels"]).content))
    assert [int((labels == p["index"]).sum()) for p in body["palette"]] == counts
    assert sum(p["fraction"] for p in body["palette"]) == pytest.approx(1.0)
    assert all(re.fullmatch(r"#[0-9a-f]{6}", p["hex"]) for p in body["palette"])
    assert len(body["urls"]["clusters"]) == 4
    expected = kmseg.segment(kmseg.load_image(data.path("coffee.png")), 4, seed=0)
    assert body["inertia"] == pytest.approx(expected.inertia, rel=1e-9)
    assert [p["hex"] for p in body["palette"]] == [p["hex"] for p in expected.palette()]


def test_result_files(client: TestClient) -> None:
    body = upload(client, COFFEE, "coffee.png", k=3, seed=0, disable="1").json()
    urls = body["urls"]
    assert urls["masked"].endswith("/masked.png?disable=1") and body["disable"] == [1]
    palette = {tuple(p["rgb"]) for p in body["palette"]}

    seg = client.get(urls["segmented"])
    assert seg.status_code == 200 and seg.headers["content-type"] == "image/png"
    assert 'filename="coffee-k3-segmented.png"' in seg.headers["content-disposition"]
    im = decode_png(seg.content)
    assert im.size == (600, 400) and im.mode == "RGB"
    painted = np.asarray(im)
    assert {tuple(c) for c in np.unique(painted.reshape(-1, 3), axis=0)} == palette

    labels = np.asarray(decode_png(client.get(urls["labels"]).content))
    assert labels.shape == (400, 600) and labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}

    summary = json.loads(client.get(urls["palette"]).content)
    assert summary["k"] == 3 and summary["source"] == "coffee.png" and len(summary["palette"]) == 3

    original = np.asarray(decode_png(client.get(urls["masked"].split("?")[0]).content))
    assert np.array_equal(original, kmseg.load_image(data.path("coffee.png")))
    masked = np.asarray(decode_png(client.get(urls["masked"]).content))
    assert (masked[labels == 1] == 0).all() and np.array_equal(masked[labels != 1], original[labels != 1])

    cut = np.asarray(decode_png(client.get(urls["clusters"][2]).content))
    assert cut.shape == (400, 600, 4)
    assert np.array_equal(cut[..., 3] == 255, labels == 2) and not cut[..., 3][labels != 2].any()

    archive = client.get(urls["clusters_zip"])
    assert archive.headers["content-disposition"].startswith("attachment")
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zf:
        assert zf.namelist() == [f"coffee-k3-cluster{i}.png" for i in range(3)]
        assert np.array_equal(np.asarray(decode_png(zf.read("coffee-k3-cluster2.png"))), cut)

    attached = client.get(urls["segmented"] + "?download=1")
    assert attached.headers["content-disposition"].startswith("attachment") and attached.content == seg.content


def test_palette_files(client: TestClient) -> None:
    """palette.gpl, .ase, .css and .png are what the library (and `kmseg palette -o`) makes of the
    same segmentation, titled with the download's stem."""
    body = upload(client, COFFEE, "coffee.png", k=3, seed=0).json()
    urls = body["urls"]
    seg = kmseg.segment(kmseg.load_image(data.path("coffee.png")), 3, seed=0)
    assert set(PALETTE_MEDIA) == {"gpl", "ase", "css", "png"}
    for suffix, media in PALETTE_MEDIA.items():
        url = urls[f"palette_{suffix}"]
        assert url == f"/api/result/{body['result_id']}/palette.{suffix}"
        resp = client.get(url)
        assert resp.status_code == 200 and resp.headers["content-type"] == media
        assert resp.headers["content-disposition"] == f'inline; filename="coffee-k3-palette.{suffix}"'
        assert resp.content == palette_bytes(seg, suffix, name="coffee-k3")
        attached = client.get(url + "?download=1")
        assert attached.headers["content-disposition"] == f'attachment; filename="coffee-k3-palette.{suffix}"'
        assert attached.content == resp.content
    gpl = client.get(urls["palette_gpl"]).text.splitlines()
    assert gpl[:2] == ["GIMP Palette", "Name: coffee-k3"]
    assert [line.split("\t")[0].split() for line in gpl[4:]] == [[str(v) for v in p["rgb"]] for p in body["palette"]]
    css = client.get(urls["palette_css"]).text
    assert re.findall(r"--kmseg-\d+: (#[0-9a-f]{6});", css) == [p["hex"] for p in body["palette"]]


def _rgba_png(path: Path) -> None:
    img = np.dstack([blocks([(200, 30, 30), (30, 200, 30), (30, 30, 200)], size=30, seed=1),
                     np.full((30, 30), 255, np.uint8)])
    img[:8, :, 3] = 0  # transparent rows (label -1, left out of counts and fractions)
    img[8:12, :, 3] = 128
    Image.fromarray(img, "RGBA").save(path)


def _png16(path: Path) -> None:
    rgb = blocks([(200, 30, 30), (30, 200, 30), (30, 30, 200), (230, 230, 40)], size=30, seed=2)
    deep = rgb.astype(np.uint16) * 257 + np.arange(30, dtype=np.uint16)[None, :, None]
    assert cv2.imwrite(str(path), np.ascontiguousarray(deep[..., ::-1]))  # OpenCV writes 16-bit colour PNG, BGR


def _four_band_tiff(path: Path) -> None:
    """RGB + near infrared: a 4-band TIFF without alpha, which kmseg clusters on its 4 bands."""
    import tifffile

    rng = np.random.default_rng(3)
    img = np.dstack([blocks([(200, 30, 30), (30, 200, 30), (30, 30, 200)], size=30, seed=3),
                     rng.integers(0, 256, (30, 30), dtype=np.uint8)])
    tifffile.imwrite(path, img, photometric="minisblack", planarconfig="contig")


@pytest.mark.parametrize(("name", "make", "options"), [
    ("coffee.png", None, {"k": 4}),
    ("coffee.png", None, {"k": 3, "color_space": "lab", "seed": 7, "n_init": 3}),
    ("rocket.jpg", None, {"k": 5, "color_space": "hsv", "seed": 1}),
    ("rgba.png", _rgba_png, {"k": 3}),
    ("deep.png", _png16, {"k": 4, "seed": 2}),
    ("nir.tif", _four_band_tiff, {"k": 3}),
    ("cells.tif", lambda path: zstack(path), {"k": 3, "plane": 2}),
    ("cells.ome.tif", lambda path: zstack(path, "ome"), {"k": 4, "plane": 1, "seed": 3}),
])
def test_palette_json_is_what_kmseg_segment_writes(client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   name: str, make, options: dict[str, object]) -> None:
    """palette.json is the NAME-palette.json of `kmseg segment` on the same file with the same
    options, byte for byte: one producer (kmseg.io.palette_bytes, the summary Segmentation.save
    writes). Its "source" is the upload's file name, where the command line's is the path it was
    given; here the command runs in the file's folder on its bare name, so even that is the same."""
    path = tmp_path / name
    if make is None:
        path.write_bytes(data.path(name).read_bytes())
    else:
        make(path)
    resp = upload(client, path.read_bytes(), name, **options)
    assert resp.status_code == 200, resp.text
    web = client.get(resp.json()["urls"]["palette"])
    assert web.status_code == 200 and web.headers["content-type"] == "application/json"

    monkeypatch.chdir(tmp_path)
    argv = ["segment", name, "-o", "out"]
    for key, value in options.items():
        argv += ["-k" if key == "k" else "--" + key.replace("_", "-"), str(value)]
    assert main(argv) == 0
    stem = path.stem + (f"-plane{options['plane']}" if "plane" in options else "")
    cli = (tmp_path / "out" / f"{stem}-palette.json").read_bytes()
    assert json.loads(web.content) == json.loads(cli)
    assert json.loads(web.content)["source"] == name
    assert web.content == cli  # the same bytes, too: the same function wrote both


def test_palette_file_errors(client: TestClient) -> None:
    base = f"/api/result/{upload(client, SMALL, k=2).json()['result_id']}"
    for bad in ("txt", "GPL", "json5"):
        assert_error(client.get(f"{base}/palette.{bad}"), 422,
                     rf"^suffix='{bad}' is not valid \(.*\); ask for palette\.gpl, palette\.ase, palette\.css or "
                     r"palette\.png \(or palette\.json\)$")
    assert client.get(f"{base}/palette.json").headers["content-type"] == "application/json"  # not taken by palette.{suffix}
    assert_error(client.get("/api/result/nope/palette.ase"), 404, "is not known")


def test_previews_are_the_full_images_reduced_to_the_width_asked(client: TestClient) -> None:
    body = upload(client, COFFEE, "coffee.png", k=3, seed=0).json()
    urls = body["urls"]
    seg = kmseg.segment(kmseg.load_image(data.path("coffee.png")), 3, seed=0)
    full = {name: np.asarray(decode_png(client.get(urls[name]).content)) for name in ("segmented", "masked")}
    for name, query in (("segmented", "?width=240"), ("masked", "?disable=1&width=240")):
        image = full[name] if name == "segmented" else seg.masked([1])
        preview = np.asarray(decode_png(client.get(urls[name].split("?")[0] + query).content))
        assert preview.shape == (160, 240, 3)
        # 600 -> 240 is 2.5 pixels a pixel: each value is an area-weighted mean of the full image's
        blocks = cv2.resize(image, (240, 160), interpolation=cv2.INTER_AREA)
        assert np.abs(preview.astype(int) - blocks).max() <= 1
    # never enlarged: as wide as the image or wider gives the full image, byte for byte
    assert client.get(urls["segmented"] + "?width=600").content == client.get(urls["segmented"]).content
    assert client.get(urls["masked"] + "?width=4000").content == client.get(urls["masked"]).content
    # a cut-out's preview weights colours by opacity: the transparent black around the cluster
    # darkens none of its edge pixels, which only grow transparent
    cut = seg.extract(2)
    small = np.asarray(decode_png(client.get(urls["clusters"][2] + "?width=200").content)).astype(int)
    assert small.shape == (133, 200, 4)
    ref = cv2.resize(cut[..., :3].astype(np.float64) * cut[..., 3:] / 255, (200, 133), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize(cut[..., 3].astype(np.float64), (200, 133), interpolation=cv2.INTER_AREA)
    assert np.abs(small[..., 3] - alpha).max() <= 1
    # in 8-bit sums: each colour within 255 / a + 1 of the exact mean, a being its opacity;
    # a mean blind to opacity is off by about the colour times the share of transparent black
    seen = small[..., 3] >= 32
    assert 0 < seen.sum() < seen.size and ((small[..., 3] > 0) & ~seen).any()
    expected = ref[seen] * 255 / alpha[seen][:, None]
    err = np.abs(small[..., :3][seen] - expected)
    assert (err <= 255 / small[..., 3][seen][:, None] + 1).all()
    for bad in ("0", "-3", "x"):
        assert_error(client.get(urls["segmented"] + f"?width={bad}"), 422, "width")


def test_upload_id_reuses_the_decoded_image(fresh: TestClient) -> None:
    state = fresh.app.state.kmseg
    first = upload(fresh, SMALL, k=4).json()
    assert first["cached"] is False
    assert (state.counts["decodes"], state.counts["prepares"]) == (1, 1)

    for k in (2, 3, 5):  # the slider: same upload, other k
        again = fresh.post("/api/segment", data={"upload_id": first["upload_id"], "k": str(k)})
        assert again.status_code == 200 and again.json()["cached"] is True and again.json()["k"] == k
    assert (state.counts["decodes"], state.counts["prepares"], state.counts["segmentations"]) == (1, 1, 4)

    assert upload(fresh, SMALL, k=4).json()["cached"] is True  # same bytes again: hashed, not decoded
    assert state.counts["decodes"] == 1

    lab = fresh.post("/api/segment", data={"upload_id": first["upload_id"], "k": "4", "color_space": "lab"})
    assert lab.status_code == 200 and lab.json()["color_space"] == "lab" and lab.json()["cached"] is False
    assert (state.counts["decodes"], state.counts["prepares"]) == (1, 2)  # re-reduced, not re-decoded

    stats = fresh.get("/api/stats").json()
    assert stats["decodes"] == 1 and stats["uploads"]["entries"] == 2 and stats["uploads"]["hits"] == 4
    assert stats["results"]["entries"] == 6


def test_the_same_bytes_under_another_name_are_named_as_sent_last(fresh: TestClient) -> None:
    """A file sent again under another name (a copy, a renamed file) is not decoded again, but
    its results, their downloads and palette.json take the name it was sent under, also when it
    is segmented again by upload_id (the page's K slider)."""
    state = fresh.app.state.kmseg
    first = upload(fresh, SMALL, "holiday.png", k=3).json()
    assert first["name"] == "holiday.png"
    lab = fresh.post("/api/segment", data={"upload_id": first["upload_id"], "k": "3", "color_space": "lab"})
    assert lab.status_code == 200
    again = upload(fresh, SMALL, "my-copy.png", k=3).json()
    assert again["cached"] is True and state.counts["decodes"] == 1
    by_id = [fresh.post("/api/segment", data={"upload_id": first["upload_id"], "k": "4", "color_space": space}).json()
             for space in ("rgb", "lab")]
    for body in (again, *by_id):
        assert body["name"] == "my-copy.png"
        k = body["k"]
        resp = fresh.get(body["urls"]["palette"])
        assert json.loads(resp.content)["source"] == "my-copy.png"
        assert resp.headers["content-disposition"] == f'inline; filename="my-copy-k{k}-palette.json"'
        seg = fresh.get(body["urls"]["segmented"])
        assert seg.headers["content-disposition"] == f'inline; filename="my-copy-k{k}-segmented.png"'
    # a result made before keeps the name it was made under
    assert json.loads(fresh.get(first["urls"]["palette"]).content)["source"] == "holiday.png"


def test_same_new_upload_at_once_is_decoded_once(fresh: TestClient) -> None:
    content = png_bytes(blocks([(10, 20, 30), (200, 100, 50), (90, 220, 140)], size=64, seed=7))
    statuses: list[int] = []

    def post() -> None:
        statuses.append(upload(fresh, content, k=3).status_code)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 4
    assert fresh.app.state.kmseg.counts["decodes"] == 1


def test_upload_cache_is_bounded_by_memory() -> None:
    one = kmseg.prepare(blocks([(200, 30, 30), (30, 30, 200)], size=48)).nbytes
    app = create_app(cache_bytes=int(one * 2.5), warm_up=False)
    with TestClient(app) as c:
        ids = [upload(c, png_bytes(blocks([(200, 30, 30), (30, 30, 200)], size=48, seed=s)), k=2).json()["upload_id"]
               for s in range(4)]
        stats = c.get("/api/stats").json()["uploads"]
        assert stats["entries"] == 2 and stats["evictions"] == 2 and stats["bytes"] <= stats["max_bytes"]
        assert_error(c.post("/api/segment", data={"upload_id": ids[0]}), 404, "send the file again")
        assert c.post("/api/segment", data={"upload_id": ids[3]}).status_code == 200


def test_results_are_bounded_and_unknown_results_are_404() -> None:
    with TestClient(create_app(max_results=2, warm_up=False)) as c:
        first = upload(c, k=2).json()
        for k in (3, 4):
            upload(c, k=k)
        assert_error(c.get(first["urls"]["segmented"]), 404, "segment again")
    assert c.app.state.kmseg.results.stats()["evictions"] == 1


def test_fewer_colours_than_k_is_a_note_not_an_error(client: TestClient) -> None:
    flat = np.zeros((10, 12, 3), np.uint8)
    flat[:, 4:] = (250, 0, 0)
    flat[:, 8:] = (0, 0, 250)
    resp = upload(client, png_bytes(flat), k=6)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["k"] == 3 and body["k_requested"] == 6 and len(body["palette"]) == 3
    assert body["warnings"] == ["the image has only 3 distinct colours, fewer than k=6; one cluster per colour"]
    one = upload(client, png_bytes(np.full((10, 12, 3), 9, np.uint8)), k=2).json()
    assert one["warnings"] == ["the image has only 1 distinct colour, fewer than k=2; one cluster per colour"]


def test_a_tiff_of_several_images_is_noted_on_every_answer(client: TestClient, tmp_path) -> None:
    """An OME-TIFF of two images: the first is segmented and the answer says so, naming the
    upload (a warning on the server's log before, with the temporary file's name), also for
    the upload_id sent back and in another colour space."""
    import tifffile

    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(a, photometric="rgb")
        tif.write(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8), photometric="rgb")
    note = ("cells.ome.tif: holds 2 images (TIFF series 0 to 1); kmseg reads the first (20x30x3): to segment "
            "another, save it as a file of its own")
    first = upload(client, path.read_bytes(), name="cells.ome.tif", k=3)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["warnings"] == [note] and (body["width"], body["height"]) == (30, 20)
    again = client.post("/api/segment", data={"upload_id": body["upload_id"], "k": "4", "color_space": "lab"}).json()
    assert again["warnings"] == [note] and again["cached"] is False
    assert upload(client, SMALL, k=3).json()["warnings"] == []


def test_grey_and_rgba_uploads(client: TestClient) -> None:
    grey = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (16, 1))
    body = upload(client, png_bytes(grey), k=3).json()
    assert len(body["palette"]) == 3 and all(len(set(p["rgb"])) == 1 for p in body["palette"])
    assert decode_png(client.get(body["urls"]["segmented"]).content).mode == "L"

    rgba = np.dstack([blocks([(200, 30, 30), (30, 30, 200)], size=16), np.full((16, 16), 255, np.uint8)])
    rgba[:4, :, 3] = 0  # transparent rows: not clustered
    body = upload(client, png_bytes(rgba), k=2).json()
    assert sum(p["count"] for p in body["palette"]) == 12 * 16
    labels = np.asarray(decode_png(client.get(body["urls"]["labels"]).content))
    assert (labels[:4] == 255).all() and (labels[4:] < 2).all()


def test_an_int16_tiff_upload_is_shown_on_its_min_to_max(client: TestClient) -> None:
    """The palette and every preview of a CT-like int16 TIFF map its minimum to black and its
    maximum to white (the palette was [0, 0, 0] below 0, the previews black)."""
    import tifffile

    ct = np.zeros((16, 24), np.int16)
    ct[:, 8:16] = 40
    ct[:, 16:] = 1000
    ct[0, 0] = -1000  # the minimum, alone in cluster 0's corner
    buf = io.BytesIO()
    tifffile.imwrite(buf, ct)
    body = upload(client, buf.getvalue(), "ct.tif", k=3, seed=0).json()
    seg = kmseg.segment(ct, 3, seed=0)
    assert [p["hex"] for p in body["palette"]] == [p["hex"] for p in seg.palette()]

    def grey(values):  # -1000..1000 -> 0..255, by hand
        return np.rint((np.asarray(values, np.float64) + 1000) * 255 / 2000).astype(np.uint8)

    assert sorted(p["rgb"][0] for p in body["palette"]) == sorted(grey(seg.centers[:, 0]).tolist())
    painted = np.asarray(decode_png(client.get(body["urls"]["segmented"]).content))
    np.testing.assert_array_equal(painted, grey(seg.image()))
    original = np.asarray(decode_png(client.get(body["urls"]["masked"].split("?")[0]).content))
    np.testing.assert_array_equal(original, grey(ct))
    labels = np.asarray(decode_png(client.get(body["urls"]["labels"]).content))
    cut = np.asarray(decode_png(client.get(body["urls"]["clusters"][int(labels[0, 20])]).content))
    inside = labels == labels[0, 20]
    assert (cut[inside, :3] == 255).all() and (cut[inside, 3] == 255).all() and (cut[~inside] == 0).all()


def test_the_masked_preview_of_an_int16_tiff_shows_hidden_pixels_black(client: TestClient) -> None:
    """Was: hidden pixels set to 0 and shown on the CT's range (-1024..3000) as dark grey (65).
    The preview paints them black; the masked TIFF keeps its documented 0."""
    import tifffile

    ct = ct_slice()
    buf = io.BytesIO()
    tifffile.imwrite(buf, ct)
    seg = kmseg.segment(ct, 3, seed=0)
    bone = int(seg.labels[0, -1])
    body = upload(client, buf.getvalue(), "ct.tif", k=3, seed=0, disable=str(bone)).json()
    hidden = seg.labels == bone
    grey = np.rint((ct.astype(np.float64) + 1024) * 255 / 4024).astype(np.uint8)
    for query in ("", "&width=24"):  # full size, and a preview as wide as the image
        shown = np.asarray(decode_png(client.get(body["urls"]["masked"] + query).content))
        assert hidden.any() and (shown[hidden] == 0).all()
        np.testing.assert_array_equal(shown[~hidden], grey[~hidden])
    full = decode_tiff(client.get(body["urls"]["masked_tif"]).content)
    assert full.dtype == np.int16 and (full[hidden] == 0).all() and np.array_equal(full[~hidden], ct[~hidden])


def _ct() -> np.ndarray:
    """A CT-like int16 slice: air, soft tissue and bone bands with seeded noise."""
    rng = np.random.default_rng(1)
    img = np.repeat(np.array([-1000, 40, 1000], np.int64), 8)[None, :] + rng.integers(-20, 21, (16, 24))
    return img.astype(np.int16)


def _float_rgb() -> np.ndarray:
    """A float32 RGB image with values outside 0-1 and fractions no 8-bit PNG keeps."""
    rng = np.random.default_rng(2)
    bands = np.repeat(np.array([[-2.5, 0.125, 7.3], [0.3, 0.3, 0.3], [5.0, -1.0, 0.001]]), 8, axis=0)
    return (bands[None] + rng.normal(0, 0.01, (16, 24, 3))).astype(np.float32)


@pytest.mark.parametrize("name, make", [("ct.tif", _ct), ("float.tif", _float_rgb)])
def test_a_tiff_upload_downloads_its_values_as_tiff(client: TestClient, tmp_path: Path, name: str, make) -> None:
    """The segmented and masked TIFFs hold the input's dtype and the values the library gives
    for the same file: the PNGs are 8-bit previews on the display range."""
    import tifffile

    image = make()
    path = tmp_path / name
    tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 else "minisblack")
    expected = kmseg.segment(path, 3, seed=0)
    hide = int(expected.labels[0, 20])  # the band of the largest values, none of them 0
    body = upload(client, path.read_bytes(), name, k=3, seed=0, disable=str(hide)).json()
    assert body["dtype"] == image.dtype.name and body["output_suffix"] == ".tif"
    urls = body["urls"]
    assert urls["segmented_tif"].endswith("/segmented.tif") and urls["masked_tif"].endswith(f"/masked.tif?disable={hide}")

    seg = client.get(urls["segmented_tif"])
    assert seg.status_code == 200 and seg.headers["content-type"] == "image/tiff"
    stem = name.removesuffix(".tif") + "-k3"
    assert seg.headers["content-disposition"] == f'inline; filename="{stem}-segmented.tif"'
    painted = decode_tiff(seg.content)
    assert painted.dtype == image.dtype and len(np.unique(painted.reshape(16 * 24, -1), axis=0)) == 3
    np.testing.assert_array_equal(painted, expected.image())
    assert not np.array_equal(painted, np.asarray(decode_png(client.get(urls["segmented"]).content)))

    masked = client.get(urls["masked_tif"])
    assert masked.headers["content-type"] == "image/tiff"
    assert masked.headers["content-disposition"] == f'inline; filename="{stem}-masked-{hide}.tif"'
    got = decode_tiff(masked.content)
    inside = expected.labels == hide
    assert got.dtype == image.dtype and inside.any() and image[inside].all()
    assert (got[inside] == 0).all() and np.array_equal(got[~inside], image[~inside])  # 0 in the input's dtype
    np.testing.assert_array_equal(got, expected.masked([hide]))
    np.testing.assert_array_equal(decode_tiff(client.get(urls["masked_tif"].split("?")[0]).content), image)

    attached = client.get(urls["segmented_tif"] + "?download=1")
    assert attached.headers["content-disposition"].startswith("attachment") and attached.content == seg.content


def _two_band(dtype: type = np.uint8) -> np.ndarray:
    """A 2-band image (grey and another band, no alpha): three vertical stripes, seeded noise."""
    rng = np.random.default_rng(3)
    stripes = np.repeat(np.array([[30, 200], [120, 40], [220, 120]]), 8, axis=0)
    return np.clip(stripes[None] + rng.integers(-3, 4, (16, 24, 2)), 0, 255).astype(dtype)


def test_the_palette_gives_every_band_of_each_centre(client: TestClient, tmp_path: Path) -> None:
    """`rgb` and `hex` show a 2-band image's first band in grey; `values` hold both bands of each
    centre as the segmented TIFF does, and as palette.json's `centers` say them (rounded)."""
    import tifffile

    image = _two_band()
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, image, photometric="minisblack", planarconfig="contig")
    assert kmseg.load_image(path, return_alpha=True)[1] is None  # two bands, neither of them alpha
    body = upload(client, path.read_bytes(), "two.tif", k=3, seed=0).json()
    assert body["bands"] == 2 and body["dtype"] == "uint8"
    centers = np.asarray(json.loads(client.get(body["urls"]["palette"]).content)["centers"])
    assert centers.shape == (3, 2)
    painted = decode_tiff(client.get(body["urls"]["segmented_tif"]).content)
    labels = np.asarray(decode_png(client.get(body["urls"]["labels"]).content))
    for p in body["palette"]:
        assert p["values"] == np.rint(centers[p["index"]]).astype(int).tolist()
        assert all(isinstance(v, int) for v in p["values"])
        assert (painted[labels == p["index"]] == p["values"]).all()
        assert p["rgb"] == [p["values"][0]] * 3
    assert sorted(tuple(p["values"]) for p in body["palette"]) == [(30, 200), (120, 40), (220, 120)]

    # an RGB photo: the values are its colours; a float image's are floats, in its units
    photo = upload(client, SMALL, k=3, seed=0).json()
    assert photo["bands"] == 3 and all(p["values"] == p["rgb"] for p in photo["palette"])
    buf = io.BytesIO()
    tifffile.imwrite(buf, _float_rgb(), photometric="rgb")
    floats = upload(client, buf.getvalue(), "float.tif", k=3, seed=0).json()
    expected = kmseg.segment(_float_rgb(), 3, seed=0)
    for p in floats["palette"]:
        np.testing.assert_allclose(p["values"], expected.centers[p["index"]], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_tiff_of_an_8_or_16_bit_png_holds_its_pixels(client: TestClient, dtype: type) -> None:
    """Offered for every image: lossless for uint8 and uint16 too; their downloads stay PNG."""
    scale = 1 if dtype == np.uint8 else 257
    image = (blocks([(200, 30, 30), (30, 200, 30), (30, 30, 200)]).astype(np.int64) * scale).astype(dtype)
    ok, content = cv2.imencode(".png", image[..., ::-1])
    assert ok
    body = upload(client, content.tobytes(), "rgb.png", k=3, seed=0, disable="0").json()
    assert body["dtype"] == np.dtype(dtype).name and body["output_suffix"] == ".png"
    expected = kmseg.segment(image, 3, seed=0)
    painted = decode_tiff(client.get(body["urls"]["segmented_tif"]).content)
    assert painted.dtype == dtype
    np.testing.assert_array_equal(painted, expected.image())
    if dtype == np.uint8:  # the PNG holds the same pixels
        np.testing.assert_array_equal(painted, np.asarray(decode_png(client.get(body["urls"]["segmented"]).content)))
    masked = decode_tiff(client.get(body["urls"]["masked_tif"]).content)
    np.testing.assert_array_equal(masked, expected.masked([0]))


def test_the_tiffs_refuse_parameters_they_do_not_take_and_unknown_ids(client: TestClient) -> None:
    urls = upload(client, SMALL, k=2, disable="1").json()["urls"]
    detail = assert_error(client.get(urls["segmented_tif"] + "?width=64"), 422, "")
    assert detail == "width='64' is not a parameter of segmented.tif; leave it out (segmented.tif takes only download)"
    detail = assert_error(client.get(urls["masked_tif"] + "&width=64"), 422, "")
    assert detail == ("width='64' is not a parameter of masked.tif; leave it out "
                      "(masked.tif takes only disable and download)")
    assert_error(client.get(urls["masked_tif"].split("?")[0] + "?disable=2"), 422, "out of range")
    for tail in ("segmented.tif", "masked.tif", "masked.tif?disable=1"):
        assert_error(client.get(f"/api/result/nope/{tail}"), 404, "is not known")


# --------------------------------------------------------------------------- elbow


def test_elbow(fresh: TestClient) -> None:
    seg = upload(fresh, COFFEE, "coffee.png", k=4, seed=0).json()
    resp = fresh.post("/api/elbow", data={"upload_id": seg["upload_id"], "k_max": "6", "seed": "0"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ks"] == [1, 2, 3, 4, 5, 6] and body["knee"] in body["ks"]
    assert all(a >= b for a, b in zip(body["inertias"], body["inertias"][1:]))
    assert body["inertias"][3] == pytest.approx(seg["inertia"], rel=1e-9)  # the same fit as /api/segment
    assert body["cached"] is False
    again = fresh.post("/api/elbow", data={"upload_id": seg["upload_id"], "k_max": "6", "seed": "0"}).json()
    assert again["cached"] is True and again["inertias"] == body["inertias"]
    assert fresh.app.state.kmseg.counts == {"decodes": 1, "prepares": 1, "segmentations": 1, "elbows": 1}


def test_elbow_takes_a_file_and_few_colours(client: TestClient) -> None:
    flat = np.zeros((8, 8, 3), np.uint8)
    flat[4:] = 255
    resp = client.post("/api/elbow", files={"file": ("two.png", png_bytes(flat), "image/png")}, data={"k_max": "5"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["inertias"][1:] == [0.0] * 4


# --------------------------------------------------------------------------- limits and errors


def test_upload_larger_than_the_limit_is_413() -> None:
    with TestClient(create_app(max_upload_bytes=100_000, warm_up=False)) as c:
        big = os.urandom(150_000)  # under the body limit (file limit + 1 MB of form), over the file limit
        assert_error(upload(c, big), 413, r"larger than the limit of 0\.095\d* MB")
        huge = os.urandom(1_300_000)  # over the body limit: refused on Content-Length, before reading
        assert_error(upload(c, huge), 413, "larger than the limit")
        assert c.app.state.kmseg.counts["decodes"] == 0
        assert c.get("/api/health").status_code == 200


def test_chunked_upload_larger_than_the_limit_is_413() -> None:
    boundary = "kmsegboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            "Content-Type: image/png\r\n\r\n").encode()

    def body() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the bytes arrive
        yield head
        for _ in range(40):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    with TestClient(create_app(max_upload_bytes=100_000, warm_up=False)) as c:
        resp = c.post("/api/segment", content=body(), headers={"content-type": f"multipart/form-data; boundary={boundary}"})
        assert_error(resp, 413, "larger than the limit")
        assert c.get("/api/health").status_code == 200


def test_too_many_pixels_is_413() -> None:
    with TestClient(create_app(max_pixels=10_000, warm_up=False)) as c:
        detail = assert_error(upload(c, COFFEE, "coffee.png"), 413, r"240000 pixels .* exceeds the limit of 10000")
        assert detail.startswith("coffee.png:")
        assert c.app.state.kmseg.counts["decodes"] == 0


def test_too_many_pixels_says_what_a_web_user_can_do(tmp_path: Path) -> None:
    # The library's fix (max_pixels=, --max-pixels of a kmseg command) is not the web user's.
    path = tmp_path / "coffee.png"
    path.write_bytes(COFFEE)
    with pytest.raises(kmseg.ImageTooLargeError, match=r"; pass max_pixels=240000 or more \(CLI: --max-pixels\)"):
        kmseg.load_image(path, max_pixels=100_000)
    with TestClient(create_app(max_pixels=100_000, warm_up=False)) as c:
        for resp in (upload(c, COFFEE, "coffee.png"),
                     c.post("/api/elbow", files={"file": ("coffee.png", COFFEE, "image/png")})):
            detail = assert_error(resp, 413, "")
            assert detail == (
                "coffee.png: 240000 pixels (600 x 400) exceeds the limit of 100000; choose a smaller image, "
                "or restart the server with a larger limit: kmseg serve --max-pixels 240000"
            )


def test_not_an_image_names_the_upload_not_a_temp_file(client: TestClient) -> None:
    detail = assert_error(upload(client, b"just some text\n", "notes.txt"), 415, "^notes.txt: not an image")
    assert client.app.state.kmseg.tmpdir not in detail and "upload-" not in detail
    # a web user has no path to check: the fix is to choose an image file (also for an empty
    # file, and a text file named .png)
    assert detail.endswith("so choose an image file, or convert this one to PNG"), detail
    assert "path" not in detail
    renamed = assert_error(upload(client, b"hello, not an image\n", "notes.png"), 415, "^notes.png: not an image")
    assert renamed.endswith("so choose an image file, or convert this one to PNG") and "path" not in renamed


# --------------------------------------------------------------------------- planes and frames


def zstack(path: Path, kind: str = "imagej") -> np.ndarray:
    """A real TIFF stack of 3 planes, each cut into bands of its own (so that every plane has a
    partition of its own), written by tifffile: ImageJ ``ZYX``, or OME ``ZCYX`` with 2 channels."""
    import tifffile

    rng = np.random.default_rng(5)
    h, w = 24, 30
    planes = []
    for z in range(3):
        levels = np.array([20, 120, 230])[(np.arange(w) * (z + 2) // w) % 3]
        plane = np.broadcast_to(levels[None, :], (h, w)).copy()
        plane[: h // (z + 2)] = 255 - plane[: h // (z + 2)]
        planes.append(np.clip(plane + rng.integers(-6, 7, (h, w)), 0, 255).astype(np.uint8))
    stack = np.stack(planes)
    if kind == "ome":
        stack = np.stack([stack, 255 - stack], axis=1)  # Z, C, Y, X
        tifffile.imwrite(path, stack, ome=True, metadata={"axes": "ZCYX"})
    else:
        tifffile.imwrite(path, stack, imagej=True, metadata={"axes": "ZYX"})
    return stack


def animated_gif(path: Path) -> None:
    """A real animated GIF of 3 frames, written by Pillow: a red, green and blue square moving
    over grey, so that every frame has a partition of its own."""
    frames = []
    for i, colour in enumerate([(220, 30, 30), (30, 200, 30), (30, 30, 220)]):
        img = np.full((20, 30, 3), 128, np.uint8)
        img[2 + 4 * i: 10 + 4 * i, 3 + 8 * i: 13 + 8 * i] = colour
        img[-3:, : 10 * (i + 1)] = (250, 250, 250)
        frames.append(Image.fromarray(img))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)


def labels_of(c: TestClient, body: dict) -> np.ndarray:
    return np.asarray(decode_png(c.get(body["urls"]["labels"]).content))


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_a_stack_sent_without_plane_is_refused_with_its_planes(client: TestClient, tmp_path: Path, kind: str) -> None:
    """A Z-stack TIFF sent without a plane: one line naming the range and the form field, and the
    count as facts a page reads (it said to save the plane as a file, or use the command line)."""
    path = tmp_path / "cells.tif"
    zstack(path, kind)
    content = path.read_bytes()
    per = " of 2 channels each" if kind == "ome" else ""
    for resp in (upload(client, content, "cells.tif"),
                 client.post("/api/elbow", files={"file": ("cells.tif", content, "image/tiff")})):
        detail = assert_error(resp, 422, rf"^cells.tif: is a stack of 3 planes{per} \(TIFF axes Z", planes=3,
                              plane_kind="plane")
        assert detail.endswith("; kmseg segments one 2-D image at a time: pass plane=N with N from 0 to 2"), detail
        assert "CLI" not in detail and "\n" not in detail


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_plane_n_of_a_stack_is_kmseg_segment_with_plane_n(client: TestClient, tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cells.tif"
    zstack(path, kind)
    content = path.read_bytes()
    shown = []
    for plane in (0, 2):
        resp = upload(client, content, "cells.tif", k=3, plane=plane)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert (body["plane"], body["planes"], body["plane_kind"]) == (plane, 3, "plane")
        seg = kmseg.segment(path, 3, plane=plane, seed=0)
        labels = labels_of(client, body)
        assert np.array_equal(labels, seg.labels)  # the same labels, not only the same partition
        assert body["inertia"] == pytest.approx(seg.inertia, rel=1e-12)
        summary = json.loads(client.get(body["urls"]["palette"]).content)
        assert summary["plane"] == plane and summary["source"] == "cells.tif"
        # the downloads are named with the plane, as `kmseg segment --plane N` names its outputs
        stem = f"cells-plane{plane}-k3"
        for key, suffix in (("segmented", "segmented.png"), ("labels", "labels.png"), ("palette", "palette.json"),
                            ("palette_gpl", "palette.gpl"), ("segmented_tif", "segmented.tif")):
            got = client.get(body["urls"][key]).headers["content-disposition"]
            assert got == f'inline; filename="{stem}-{suffix}"', got
        with zipfile.ZipFile(io.BytesIO(client.get(body["urls"]["clusters_zip"]).content)) as zf:
            assert zf.namelist() == [f"{stem}-cluster{i}.png" for i in range(3)]
        shown.append(labels)
    assert not same_partition(shown[0], shown[1])  # two planes, two segmentations


def test_the_upload_cache_is_keyed_by_plane(fresh: TestClient, tmp_path: Path) -> None:
    """Plane 2 of an upload is never served from plane 0's entry. The server keeps decoded planes,
    not files: a plane not decoded yet is a 404 that says to send the file again with it."""
    state = fresh.app.state.kmseg
    path = tmp_path / "cells.tif"
    zstack(path)
    content = path.read_bytes()
    first = upload(fresh, content, "cells.tif", k=3, plane=0).json()
    uid = first["upload_id"]
    assert first["cached"] is False and state.counts["decodes"] == 1
    plane0 = labels_of(fresh, first)

    by_id = fresh.post("/api/segment", data={"upload_id": uid, "k": "3", "plane": "2"})
    assert_error(by_id, 404, rf"^upload_id {uid}: plane 2 of cells.tif is not decoded on this server, which keeps "
                 r"the planes it decoded but not the file; send the file again with plane=2$", planes=3,
                 plane_kind="plane")
    assert state.counts["decodes"] == 1

    second = upload(fresh, content, "cells.tif", k=3, plane=2).json()
    assert second["cached"] is False and second["upload_id"] == uid and state.counts["decodes"] == 2
    assert np.array_equal(labels_of(fresh, second), kmseg.segment(path, 3, plane=2, seed=0).labels)

    # both planes are cached now, each under its own key; upload_id gives each its own
    for plane, labels in ((0, plane0), (2, labels_of(fresh, second))):
        again = fresh.post("/api/segment", data={"upload_id": uid, "k": "3", "plane": str(plane)}).json()
        assert again["cached"] is True and again["plane"] == plane
        assert np.array_equal(labels_of(fresh, again), labels)
    assert state.counts["decodes"] == 2
    assert fresh.get("/api/stats").json()["uploads"]["entries"] == 2

    # another K, another colour space of plane 2: neither sent nor decoded again
    four = fresh.post("/api/segment", data={"upload_id": uid, "k": "4", "plane": "2"}).json()
    assert four["cached"] is True and four["k"] == 4
    assert np.array_equal(labels_of(fresh, four), kmseg.segment(path, 4, plane=2, seed=0).labels)

    # the elbow sweeps the plane asked for, and caches it apart
    curves = {}
    for plane in (0, 2):
        resp = fresh.post("/api/elbow", data={"upload_id": uid, "plane": str(plane), "k_max": "4"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["plane"] == plane
        curves[plane] = resp.json()["inertias"]
        assert curves[plane][2] == pytest.approx(kmseg.segment(path, 3, plane=plane, seed=0).inertia, rel=1e-9)
    assert curves[0] != curves[2]
    assert (state.counts["decodes"], state.counts["elbows"]) == (2, 2)


def test_a_plane_out_of_range_says_the_range(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "cells.tif"
    zstack(path)
    content = path.read_bytes()
    message = r"^cells.tif: plane=3 is out of range; the file has 3 planes: pass plane=N with N from 0 to 2$"
    assert_error(upload(client, content, "cells.tif", plane=3), 422, message, planes=3, plane_kind="plane")
    uid = upload(client, content, "cells.tif", k=2, plane=1).json()["upload_id"]
    # by upload_id, the range is known from the plane decoded: said at once, not "send the file again"
    assert_error(client.post("/api/segment", data={"upload_id": uid, "plane": "3"}), 422, message, planes=3,
                 plane_kind="plane")
    assert_error(client.post("/api/elbow", data={"upload_id": uid, "plane": "3"}), 422, message, planes=3,
                 plane_kind="plane")
    assert_error(client.post("/api/segment", data={"upload_id": uid}), 422,
                 r"^cells.tif: is a stack of 3 planes; .*: pass plane=N with N from 0 to 2$", planes=3,
                 plane_kind="plane")
    # a single image has plane 0 only; an animation numbers its frames
    assert_error(upload(client, SMALL, "img.png", plane=1), 422,
                 r"^img.png: plane=1 is out of range; the file has 1 frame: pass plane=0 or leave plane out$",
                 planes=1, plane_kind="frame")
    gif = tmp_path / "anim.gif"
    animated_gif(gif)
    assert_error(upload(client, gif.read_bytes(), "anim.gif", plane=5), 422,
                 r"^anim.gif: plane=5 is out of range; the file has 3 frames: pass plane=N with N from 0 to 2$",
                 planes=3, plane_kind="frame")


def test_an_animated_gif_offers_its_frames(client: TestClient, tmp_path: Path) -> None:
    """An animation is segmented on its first frame without a plane, and its answer says how many
    frames it has, so that a page can offer them; plane=N segments frame N."""
    path = tmp_path / "anim.gif"
    animated_gif(path)
    content = path.read_bytes()
    body = upload(client, content, "anim.gif", k=3).json()
    assert (body["plane"], body["planes"], body["plane_kind"]) == (None, 3, "frame")
    assert np.array_equal(labels_of(client, body), kmseg.segment(path, 3, seed=0).labels)
    assert "plane" not in json.loads(client.get(body["urls"]["palette"]).content)
    assert client.get(body["urls"]["segmented"]).headers["content-disposition"] == \
        'inline; filename="anim-k3-segmented.png"'
    frames = []
    for plane in (1, 2):
        body = upload(client, content, "anim.gif", k=3, plane=plane).json()
        assert (body["plane"], body["planes"], body["plane_kind"]) == (plane, 3, "frame")
        labels = labels_of(client, body)
        assert np.array_equal(labels, kmseg.segment(path, 3, plane=plane, seed=0).labels)
        assert client.get(body["urls"]["segmented"]).headers["content-disposition"] == \
            f'inline; filename="anim-plane{plane}-k3-segmented.png"'
        frames.append(labels)
    assert not same_partition(*frames)
    # a still image says it has one
    still = upload(client, SMALL, "img.png", k=2).json()
    assert (still["plane"], still["planes"], still["plane_kind"]) == (None, 1, "frame")


@pytest.mark.parametrize(
    ("content", "status", "pattern"),
    [
        (b"", 422, "empty"),
        (COFFEE[:4000], 422, "looks like a PNG file but cannot be decoded"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * 100, 422, "cannot be decoded"),
        (b"GIF89a" + b"\xff" * 30, 422, "cannot be decoded"),
    ],
    ids=["empty", "truncated-png", "garbage-png", "garbage-gif"],
)
def test_bad_files(client: TestClient, content: bytes, status: int, pattern: str) -> None:
    assert_error(upload(client, content, "bad.png"), status, pattern)


@pytest.mark.parametrize(
    ("fields", "pattern"),
    [
        ({"k": "0"}, r"k='0' is not valid .*from 1 to 64"),
        ({"k": "65"}, r"k='65' is not valid"),
        ({"k": "five"}, r"k='five' is not valid .*integer"),
        ({"color_space": "cmyk"}, r"color_space='cmyk' is not valid .*; use rgb, lab or hsv"),
        ({"seed": "-1"}, r"seed='-1' is not valid"),
        ({"n_init": "0"}, r"n_init='0' is not valid"),
        ({"disable": "1;2"}, r"disable='1;2' is not valid; pass cluster indices"),
        ({"disable": "9"}, r"disable='9' is out of range; this result has clusters 0 to 3"),
        # an empty field is refused, not taken as the default (a script's unset variable: k=$K)
        ({"k": ""}, rf"^k='' is empty; pass a whole number from 1 to {K_MAX}, or leave k out for its default$"),
        ({"seed": ""}, r"^seed='' is empty; pass a whole number from 0 to 4294967295, or leave seed out"),
        ({"n_init": ""}, r"^n_init='' is empty; pass a whole number from 1 to 50"),
        ({"color_space": ""}, r"^color_space='' is empty; use rgb, lab or hsv, or leave color_space out"),
        ({"plane": "-1"}, r"^plane='-1' is not valid \(.*greater than or equal to 0\); pass a plane's number, a whole "
                          r"number from 0$"),
        ({"plane": "abc"}, r"^plane='abc' is not valid \(.*integer.*\); pass a plane's number, a whole number from 0$"),
        ({"plane": "1.5"}, r"^plane='1.5' is not valid \(.*integer.*\); pass a plane's number"),
        ({"plane": ""}, r"^plane='' is empty; pass a plane's number, a whole number from 0, or leave plane out"),
    ],
)
def test_bad_parameters_are_422(client: TestClient, fields: dict[str, str], pattern: str) -> None:
    assert_error(upload(client, SMALL, **{"k": "4", **fields}), 422, pattern)


def test_empty_fields_are_refused_by_the_elbow_too_but_an_empty_disable_hides_nothing(client: TestClient) -> None:
    for key in ("k_max", "seed", "n_init", "color_space"):
        resp = client.post("/api/elbow", files={"file": ("img.png", SMALL, "image/png")}, data={key: ""})
        assert_error(resp, 422, rf"^{key}='' is empty; .*, or leave {key} out for its default$")
    body = upload(client, SMALL, k=2, disable="").json()
    assert body["disable"] == [] and body["k"] == 2


def test_colour_space_that_does_not_fit_the_image_is_422(client: TestClient) -> None:
    grey = np.tile(np.arange(0, 256, 8, dtype=np.uint8), (8, 1))
    assert_error(upload(client, png_bytes(grey), "grey.png", color_space="lab"), 422, r"^grey.png: .*needs an RGB image")


def test_upload_id_errors(client: TestClient) -> None:
    assert_error(client.post("/api/segment", data={"upload_id": "0" * 64}), 404, "is not known .* send the file again")
    assert_error(client.post("/api/segment", data={"upload_id": "../etc/passwd"}), 422, "upload_id=.* is not valid")
    assert_error(client.post("/api/segment", data={"k": "3"}), 422, "no image")
    assert_error(client.post("/api/segment"), 422, "no image")
    both = client.post("/api/segment", files={"file": ("a.png", SMALL, "image/png")}, data={"upload_id": "0" * 64})
    assert_error(both, 422, "either file or upload_id")
    assert_error(client.post("/api/elbow", data={"upload_id": "f" * 64}), 404, "not known")
    assert_error(client.post("/api/elbow", data={"upload_id": "f" * 64, "k_max": "1"}), 422, "k_max='1' is not valid")


def test_result_errors(client: TestClient) -> None:
    body = upload(client, SMALL, k=2).json()
    base = f"/api/result/{body['result_id']}"
    assert_error(client.get("/api/result/nope/segmented.png"), 404, "is not known")
    assert_error(client.get(f"{base}/cluster/2.png"), 404, "clusters 0 to 1")
    assert_error(client.get(f"{base}/cluster/x.png"), 422, "index='x' is not valid")
    assert_error(client.get(f"{base}/masked.png?disable=5"), 422, "out of range")
    assert_error(client.get(f"{base}/masked.png?disable=a"), 422, "not valid")
    assert_error(client.get("/api/nothing"), 404, "Not Found")
    assert_error(client.delete("/api/segment"), 405, "Method Not Allowed")


def test_bad_width_and_download_say_what_to_pass(client: TestClient) -> None:
    base = f"/api/result/{upload(client, SMALL, k=2).json()['result_id']}"
    for query in ("width=0", "width=", "width=100000", "width=wide"):
        assert_error(client.get(f"{base}/segmented.png?{query}"), 422,
                     r"^width=.* is not valid \(.*\); pass a width in pixels from 1 to 65536, or leave width out "
                     r"for the full-size image$")
    for query in ("download=2", "download="):
        assert_error(client.get(f"{base}/labels.png?{query}"), 422,
                     r"^download=.* is not valid \(.*\); pass download=1 for a download, or leave download out")


def test_result_files_refuse_parameters_they_do_not_take(client: TestClient) -> None:
    urls = upload(client, SMALL, k=2, disable="1").json()["urls"]
    # the label map and the ZIP are always full size: width is refused, not ignored
    for url, name in ((urls["labels"], "labels.png"), (urls["clusters_zip"], "clusters.zip")):
        detail = assert_error(client.get(url + "?width=64"), 422, "")
        assert detail == f"width='64' is not a parameter of {name}; leave it out ({name} takes only download)"
        assert client.get(url + "?download=1").headers["content-disposition"].startswith("attachment")
    takes = {
        "segmented": ("segmented.png", "width and download"),
        "palette": ("palette.json", "download"),
        "palette_gpl": ("palette.{suffix}", "download"),
        "palette_png": ("palette.{suffix}", "download"),
        "masked": ("masked.png", "disable, width and download"),
    }
    for key, (name, accepted) in takes.items():
        url = urls[key] + ("&" if "?" in urls[key] else "?")
        detail = assert_error(client.get(url + "size=64"), 422, "")
        assert detail == f"size='64' is not a parameter of {name}; leave it out ({name} takes only {accepted})"
    assert_error(client.get(urls["clusters"][1] + "?width=64&Width=64"), 422,
                 r"^Width='64' is not a parameter of cluster/\{index\}\.png; .*takes only width and download\)$")
    assert client.get(urls["clusters"][1] + "?width=64&download=1").status_code == 200


def test_post_endpoints_refuse_fields_they_do_not_take(fresh: TestClient) -> None:
    """A misspelt field (seeed=3, kk=4) was ignored: the user got the defaults without a word."""
    segment_takes = "file, upload_id, plane, k, color_space, seed, n_init and disable"
    for fields, shown in (({"kk": "4"}, "kk='4'"), ({"k": "4", "seeed": "3"}, "seeed='3'")):
        detail = assert_error(upload(fresh, SMALL, **fields), 422, "")
        assert detail == f"{shown} is not a parameter of /api/segment; leave it out (/api/segment takes only {segment_takes})"
    misnamed = fresh.post("/api/segment", files={"image": ("a.png", SMALL, "image/png")})
    assert_error(misnamed, 422, r"^image \(a file\) is not a parameter of /api/segment; leave it out ")
    in_query = fresh.post("/api/segment?k=4", files={"file": ("a.png", SMALL, "image/png")})
    assert_error(in_query, 422, r"^k='4' is in the URL's query, but /api/segment takes form fields only; send it in the "
                 rf"form body \(/api/segment takes {segment_takes}\)$")
    elbow = fresh.post("/api/elbow", files={"file": ("a.png", SMALL, "image/png")}, data={"kmax": "4"})
    assert_error(elbow, 422, r"^kmax='4' is not a parameter of /api/elbow; leave it out \(/api/elbow takes only "
                 r"file, upload_id, plane, k_max, color_space, seed and n_init\)$")
    assert fresh.app.state.kmseg.counts["decodes"] == 0  # refused before any work
    # every field each endpoint takes is accepted
    body = upload(fresh, SMALL, k=3, color_space="lab", seed=2, n_init=2, disable="1")
    assert body.status_code == 200, body.text
    curve = fresh.post("/api/elbow", data={"upload_id": body.json()["upload_id"], "k_max": "4", "color_space": "lab",
                                           "seed": "2", "n_init": "2"})
    assert curve.status_code == 200 and curve.json()["ks"] == [1, 2, 3, 4]


def test_the_lists_of_form_fields_are_the_endpoints_parameters(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, fields in (("/api/segment", SEGMENT_FIELDS), ("/api/elbow", ELBOW_FIELDS)):
        ref = schema["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
        assert tuple(schema["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]) == fields


def test_samples(client: TestClient) -> None:
    resp = client.get("/api/sample/coffee.png")
    assert resp.status_code == 200 and resp.content == COFFEE
    assert_error(client.get("/api/sample/secret.png"), 422, "name='secret.png' is not valid")
    assert client.get("/api/sample/..%2F..%2Fpyproject.toml").status_code in (404, 422)


def test_server_stays_up_after_bad_requests(client: TestClient) -> None:
    bad = [
        lambda: upload(client, b"\0" * 10),
        lambda: upload(client, COFFEE[:100]),
        lambda: upload(client, SMALL, k="-3"),
        lambda: client.post("/api/segment", content=b"{not json", headers={"content-type": "application/json"}),
        lambda: client.post("/api/segment", content=b"--x\r\ngarbage", headers={"content-type": "multipart/form-data; boundary=x"}),
        lambda: client.post("/api/elbow", data={"upload_id": "z"}),
        lambda: client.get("/api/result/%00/labels.png"),
    ]
    for send in bad:
        resp = send()
        assert 400 <= resp.status_code < 500, resp.text
        assert isinstance(resp.json()["detail"], str)
    assert client.get("/api/health").json()["status"] == "ok"
    assert upload(client, SMALL, k=3).status_code == 200


def test_health_answers_while_a_segmentation_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fit runs in a worker thread: hold it inside the fit, and ask for /api/health meanwhile."""
    entered, release = threading.Event(), threading.Event()
    real = kmseg.Prepared.segment

    def held(self, *args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(kmseg.Prepared, "segment", held)
    with TestClient(create_app(warm_up=False)) as c:
        out: list[int] = []
        worker = threading.Thread(target=lambda: out.append(upload(c, SMALL, k=3).status_code))
        worker.start()
        try:
            assert entered.wait(30), "the segmentation never started"
            health = c.get("/api/health")
            assert health.status_code == 200 and worker.is_alive() and out == []
        finally:
            release.set()
            worker.join(30)
        assert out == [200]


def test_host_guard() -> None:
    app = create_app(allowed_hosts=["127.0.0.1", "localhost", "[::1]"], warm_up=False)
    with TestClient(app, base_url="http://evil.example:8000") as c:
        assert_error(c.get("/api/health"), 400, "is not allowed")
    for host in ("127.0.0.1:8000", "localhost", "[::1]:8000"):
        with TestClient(app, base_url=f"http://{host}") as c:
            assert c.get("/api/health").status_code == 200


# --------------------------------------------------------------------------- kmseg serve


def test_serve_without_the_web_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "kmseg[web]"' in err and "fastapi" in err


def test_serve_on_a_busy_port_is_one_line(capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err and "--port" in err


def test_serve_usage_errors(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "70000"])
    assert exc.value.code == 2 and "out of range" in capsys.readouterr().err


def test_kmseg_serve_runs_and_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kmseg", "serve", "--port", "0", "--max-upload-mb", "1"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stderr.readline()
        match = re.search(r"serving (http://127\.0\.0\.1:\d+/)", line)
        assert match, line
        import httpx

        health = httpx.get(match.group(1) + "api/health", timeout=10).json()
        assert health["status"] == "ok" and health["max_upload_bytes"] == 1024 * 1024
        refused = httpx.get(match.group(1) + "api/health", headers={"host": "attacker.example"}, timeout=10)
        assert refused.status_code == 400
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        proc.stderr.close()
    assert code == 0
