"""kmseg.distributed on a real LocalCluster: the chunked path gives exactly the in-memory result,
and batches fail file by file."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kmseg
from kmseg import cli, data
from helpers import needs_sysfs

pytest.importorskip("distributed")
tifffile = pytest.importorskip("tifffile")

from kmseg import distributed as kd  # noqa: E402

pytestmark = pytest.mark.dask


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: 2 worker processes, 1 thread each, no dashboard (kd.local_cluster)."""
    from distributed import Client

    with kd.local_cluster(2) as lc, Client(lc, set_as_default=False) as client:
        assert set(client.run(lambda: __import__("numba").get_num_threads()).values()) == {1}
        yield client


def _photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A crop of a bundled photo plus seeded noise: many distinct colours, like a real photo."""
    rng = np.random.default_rng(seed)
    img = np.asarray(Image.open(data.path("coffee.png")).convert("RGB"))[50 : 50 + h, 100 : 100 + w]
    return np.clip(img.astype(np.int16) + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)


def _same_labels(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


@pytest.mark.parametrize("alpha", [False, True], ids=["rgb", "rgba"])
def test_large_8bit_equals_in_memory(cluster, tmp_path, alpha):
    img = _photo(200, 300)
    if alpha:
        a = np.full(img.shape[:2], 255, np.uint8)
        a[20:90, 40:170] = 0
        img = np.dstack([img, a])
        tifffile.imwrite(tmp_path / "big.tif", img, tile=(64, 64), photometric="rgb", extrasamples=("unassalpha",))
    else:
        tifffile.imwrite(tmp_path / "big.tif", img, tile=(64, 64), photometric="rgb")
    ref = kmseg.segment(tmp_path / "big.tif", k=5, seed=0)
    res = kd.segment_large(tmp_path / "big.tif", k=5, out_dir=tmp_path / "out", seed=0, chunks=128, client=cluster)
    assert res.n_chunks == 6  # several regions, smaller than the image
    np.testing.assert_allclose(res.centers, ref.centers, rtol=0, atol=1e-9)
    labels = res.read_labels()
    assert _same_labels(labels, ref.labels)
    assert (labels == -1).any() == alpha
    np.testing.assert_array_equal(res.counts, ref.counts)
    assert res.inertia == pytest.approx(ref.inertia, rel=1e-12)
    assert (res.n_iter, res.converged) == (ref.n_iter, ref.converged)
    np.testing.assert_array_equal(res.read_image(), ref.image())
    assert res.paths["labels"].name == "big-labels.tif"
    summary = json.loads(res.paths["palette"].read_text())
    assert summary == json.loads(json.dumps(ref.summary(), default=str)) | {"source": str(tmp_path / "big.tif")}
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".")]  # no temporary files left
    # A window across tiles reads as the same window of the whole; one past the edge is refused.
    np.testing.assert_array_equal(res.read_labels(region=(50, 170, 30, 250)), ref.labels[50:170, 30:250])
    np.testing.assert_array_equal(res.read_image(region=(0, 200, 299, 300)), ref.image()[:, 299:])
    with pytest.raises(kmseg.ParameterError, match=r"^region=\(0, 1024, 0, 1024\) is empty or reaches outside the "
                       r"image, which is 200 x 300 pixels \(height x width\); pass 0 <= y0 < y1 <= 200 and "
                       r"0 <= x0 < x1 <= 300$"):
        res.read_labels(region=(0, 1024, 0, 1024))
    with pytest.raises(kmseg.ParameterError, match=r"is empty"):
        res.read_image(region=(10, 10, 0, 5))
    with pytest.raises(kmseg.ParameterError, match=r"^region\[2\]=-1 is out of range"):
        res.read_labels(region=(0, 5, -1, 5))
    with pytest.raises(kmseg.ParameterTypeError, match=r"is not \(y0, y1, x0, x1\)"):
        res.read_labels(region=(0, 5))


def test_large_16bit_lloyd_over_regions_equals_in_memory_lloyd(cluster, tmp_path):
    rng = np.random.default_rng(1)
    img = (_photo(128, 192).astype(np.uint16) * 257 + rng.integers(0, 257, (128, 192, 3))).astype(np.uint16)
    tifffile.imwrite(tmp_path / "b16.tif", img, tile=(32, 32), photometric="rgb")
    init = img.reshape(-1, 3)[rng.choice(img.shape[0] * img.shape[1], 5, replace=False)].astype(np.float64)
    ref = kmseg.segment(tmp_path / "b16.tif", k=5, init=init)
    res = kd.segment_large(tmp_path / "b16.tif", k=5, out_dir=tmp_path, init=init, chunks=64, client=cluster)
    assert res.n_chunks == 6
    assert res.dtype == np.uint16
    np.testing.assert_allclose(res.centers, ref.centers, rtol=0, atol=1e-9)
    assert _same_labels(res.read_labels(), ref.labels)
    np.testing.assert_array_equal(res.counts, ref.counts)
    assert (res.n_iter, res.converged) == (ref.n_iter, ref.converged)
    np.testing.assert_array_equal(res.read_image(), ref.image())


def test_large_16bit_seeded(cluster, tmp_path):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 65536, (96, 128, 3)).astype(np.uint16)
    img[:48] //= 4
    tifffile.imwrite(tmp_path / "s16.tif", img, tile=(32, 32), photometric="rgb")
    # Small enough to gather: the in-memory fit itself.
    ref = kmseg.segment(tmp_path / "s16.tif", k=4, seed=7)
    res = kd.segment_large(tmp_path / "s16.tif", k=4, out_dir=tmp_path / "a", seed=7, chunks=64, client=cluster)
    np.testing.assert_allclose(res.centers, ref.centers, rtol=0, atol=1e-9)
    assert _same_labels(res.read_labels(), ref.labels)
    # Fitted on a sample, then Lloyd over every pixel: a fixed point of Lloyd on all the pixels.
    res = kd.segment_large(tmp_path / "s16.tif", k=4, out_dir=tmp_path / "b", seed=7, chunks=64, sample=2000,
                           client=cluster)
    labels = res.read_labels()
    X = img.reshape(-1, 3).astype(np.float64)
    d2 = ((X[:, None, :] - res.centers[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels.reshape(-1), d2.argmin(axis=1))
    means = np.array([X[labels.reshape(-1) == j].mean(axis=0) for j in range(4)])
    np.testing.assert_allclose(res.centers, means, rtol=1e-12)
    assert res.converged


@pytest.mark.parametrize(
    "kind", ["float32-5-bands", "grey-uint8-strips", "rgba-uint16", "grey-uint16", "grey-int16", "rgb-int8",
             "rgba-int16", "grey-int32", "rgb-uint64", "grey-int16-miniswhite"],
)
def test_large_other_layouts_equal_in_memory(cluster, tmp_path, kind):
    """Every layout and dtype the chunked path reads gives the in-memory result: centres,
    labels, the recoloured image in the input's dtype, and the palette. The signed and wide
    integers were refused ("the chunked path reads uint8, uint16 and float TIFFs"); they are
    clustered as in memory, int8 and int16 shifted to uint8 and uint16 (grey int16 on its
    histogram, as a CT scan), the others as float64."""
    rng = np.random.default_rng(3)
    if kind == "float32-5-bands":
        img = rng.random((80, 100, 5)).astype(np.float32)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="minisblack", planarconfig="contig", tile=(32, 32))
    elif kind == "grey-uint8-strips":
        img = _photo(300, 100)[..., 1]  # bands of whole strips, 256 rows (the output's tiles)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="minisblack", rowsperstrip=16, compression="zlib")
    elif kind == "grey-uint16":  # counted region by region into one histogram, as 8-bit images are
        img = (_photo(100, 150)[..., 0].astype(np.uint16) * 257 + rng.integers(0, 257, (100, 150))).astype(np.uint16)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="minisblack", tile=(32, 32))
    elif kind == "grey-int16":  # Hounsfield-like values on both sides of 0
        img = (_photo(100, 150)[..., 0].astype(np.int16) * 9 - 1024 + rng.integers(0, 9, (100, 150))).astype(np.int16)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="minisblack", tile=(32, 32))
    elif kind == "grey-int16-miniswhite":  # inverted as load_image inverts it (was: refused here, a crash there)
        img = (rng.integers(-3000, 3000, (100, 150))).astype(np.int16)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="miniswhite", tile=(32, 32))
    elif kind == "rgb-int8":
        img = (_photo(80, 100).astype(np.int16) - 128).astype(np.int8)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="rgb", tile=(32, 32))
    elif kind == "rgba-int16":
        img = np.dstack([rng.integers(-32768, 32768, (80, 100, 3)), np.where(rng.random((80, 100)) < 0.2, 0, 32767)])
        img = img.astype(np.int16)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="rgb", extrasamples=("unassalpha",), tile=(32, 32))
    elif kind == "grey-int32":
        img = (rng.integers(-2**31, 2**31, (80, 100)) // (1 + 7 * (np.arange(100) > 50))).astype(np.int32)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="minisblack", tile=(32, 32))
    elif kind == "rgb-uint64":  # exact in float64 up to 2**53
        img = rng.integers(0, 2**53, (80, 100, 3), dtype=np.uint64)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="rgb", tile=(32, 32))
    else:
        img = np.dstack([rng.integers(0, 65536, (80, 100, 3)), np.where(rng.random((80, 100)) < 0.2, 0, 65535)])
        img = img.astype(np.uint16)
        tifffile.imwrite(tmp_path / "o.tif", img, photometric="rgb", extrasamples=("unassalpha",), tile=(32, 32))
    ref = kmseg.segment(tmp_path / "o.tif", k=4, seed=1)
    res = kd.segment_large(tmp_path / "o.tif", k=4, out_dir=tmp_path, seed=1, chunks=32, client=cluster)
    assert res.n_chunks > 1
    assert (res.n_colors is not None) == (kind in ("grey-uint8-strips", "grey-uint16", "grey-int16", "rgb-int8",
                                                   "grey-int16-miniswhite"))
    np.testing.assert_allclose(res.centers, ref.centers, rtol=0, atol=1e-9)
    assert _same_labels(res.read_labels(), ref.labels)
    assert res.dtype == img.dtype
    np.testing.assert_array_equal(res.read_image(), ref.image())
    assert res.palette() == ref.palette()
    assert res.summary() == ref.summary() | {"source": str(tmp_path / "o.tif")}


def test_large_sample_with_fewer_colours_than_k_takes_the_rest_from_the_image(cluster, tmp_path):
    """Fitted on a sample that misses two rare values: the image's own distinct values make up
    the k clusters, as in memory. Was: 3 clusters, and a warning that the image has only 3
    distinct colours (those of the sample). An image with fewer colours than k still warns, of
    its own count."""
    img = np.zeros((160, 160), np.float32)
    img[:, 80:] = 1.0
    img[:80] = 2.0
    img[5, 5], img[150, 150] = 7.0, 9.0
    tifffile.imwrite(tmp_path / "rare.tif", img, photometric="minisblack", tile=(32, 32))
    ref = kmseg.segment(tmp_path / "rare.tif", k=5, seed=0)
    res = kd.segment_large(tmp_path / "rare.tif", k=5, out_dir=tmp_path / "a", seed=0, chunks=32, sample=500,
                           client=cluster)
    assert sorted(res.centers.ravel().tolist()) == sorted(ref.centers.ravel().tolist()) == [0.0, 1.0, 2.0, 7.0, 9.0]
    assert sorted(res.counts.tolist()) == sorted(ref.counts.tolist()) and res.converged
    assert _same_labels(res.centers[res.read_labels()], ref.centers[ref.labels])
    with pytest.warns(kmseg.ConvergenceWarning) as caught:
        res = kd.segment_large(tmp_path / "rare.tif", k=7, out_dir=tmp_path / "b", seed=0, chunks=32, sample=500,
                               client=cluster)
    assert [str(w.message) for w in caught] == [
        "the image has only 5 distinct colours, fewer than k=7; returning 5 clusters, one per colour"
    ]
    assert caught[0].filename == __file__
    assert res.k == 5 and sorted(res.counts.tolist()) == [1, 1, 6399, 6400, 12799]


def test_large_int16_from_given_centres_and_beyond_float64(cluster, tmp_path):
    """Centres given in the input's units start from there (the shift to uint16 applied to them
    too), and 64-bit values that float64 cannot hold exactly are refused in one line, as in memory."""
    img = (_photo(64, 96)[..., 1].astype(np.int16) * 4 - 500).astype(np.int16)
    tifffile.imwrite(tmp_path / "ct.tif", img, photometric="minisblack", tile=(32, 32))
    init = np.array([[-500.0], [0.0], [400.0]])
    ref = kmseg.segment(tmp_path / "ct.tif", k=3, init=init)
    res = kd.segment_large(tmp_path / "ct.tif", k=3, out_dir=tmp_path, init=init, chunks=32, client=cluster)
    np.testing.assert_array_equal(res.centers, ref.centers)
    assert res.centers.min() < 0 and (res.n_iter, res.counts.tolist()) == (ref.n_iter, ref.counts.tolist())
    big = np.full((40, 40), 2**60, dtype=np.int64)
    big[:20] = 5
    tifffile.imwrite(tmp_path / "big.tif", big, photometric="minisblack", tile=(16, 16))
    with pytest.raises(kmseg.InvalidImageDataError, match=r"big\.tif: image values reach 1152921504606846976, too "
                       r"large to cluster exactly .*; rescale them first, for example image // 2\*\*8$"):
        kd.segment_large(tmp_path / "big.tif", k=2, out_dir=tmp_path / "out", chunks=16, client=cluster)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dtype", [np.float32, np.uint16], ids=["pixels", "histogram"])
def test_large_refuses_bad_parameters_before_reading_the_image(cluster, tmp_path, dtype):
    """Parameters are checked before any pass over the image: here its pixel data is cut short,
    so reading any region fails. Was: init's shape checked only after a whole pass (a histogram,
    or a sample), and a path or out_dir that is not a path a bare TypeError."""
    tifffile.imwrite(tmp_path / "cut.tif", np.zeros((64, 64), dtype), photometric="minisblack", tile=(32, 32))
    size = os.path.getsize(tmp_path / "cut.tif")
    with open(tmp_path / "cut.tif", "r+b") as f:
        f.truncate(size - 2000)
    with pytest.raises(kmseg.ParameterError, match=r"^init has shape \(3, 1\); an array of centres must have shape "
                       r"\(k, C\) = \(2, 1\)$"):
        kd.segment_large(tmp_path / "cut.tif", k=2, out_dir=tmp_path / "out", init=np.zeros((3, 1)), client=cluster)
    with pytest.raises(kmseg.ParameterError, match=r"^init contains NaN"):
        kd.segment_large(tmp_path / "cut.tif", k=2, out_dir=tmp_path / "out", init=np.array([[0.0], [np.nan]]),
                         client=cluster)
    with pytest.raises(kmseg.ParameterTypeError, match=r"^path=None is not a path; pass the path of a TIFF file$"):
        kd.segment_large(None, k=2, out_dir=tmp_path / "out", client=cluster)
    with pytest.raises(kmseg.ParameterTypeError, match=r"^out_dir=None is not a path; pass a folder such as 'out'$"):
        kd.segment_large(tmp_path / "cut.tif", k=2, out_dir=None, client=cluster)
    with pytest.raises(kmseg.CorruptImageError, match="truncated"):  # good parameters: the image is read
        kd.segment_large(tmp_path / "cut.tif", k=2, out_dir=tmp_path / "out", client=cluster)
    assert not (tmp_path / "out").exists()


def test_large_palette_shows_the_images_own_range(cluster, tmp_path):
    """Floats outside [0, 1]: the palette maps the image's least to greatest value (transparent
    pixels left out) to black to white, as in memory, whether the fit ran on every pixel or on
    a sample. Was: the range of an image of zeros, so every colour black or white."""
    rng = np.random.default_rng(4)
    opaque = rng.random((96, 128)) > 0.1
    img = np.dstack([rng.random((96, 128, 3)) * 60 - 20, opaque]).astype(np.float32)
    img[~opaque, :3] = 1000.0  # transparent: outside the range
    tifffile.imwrite(tmp_path / "f.tif", img, photometric="rgb", extrasamples=("unassalpha",), tile=(32, 32))
    ref = kmseg.segment(tmp_path / "f.tif", k=4, seed=0)
    colour = img[..., :3][opaque]
    assert ref.display_range == (float(colour.min()), float(colour.max()))
    whole = kd.segment_large(tmp_path / "f.tif", k=4, out_dir=tmp_path / "a", seed=0, chunks=32, client=cluster)
    assert whole.palette() == ref.palette()
    assert whole.display_range == ref.display_range
    assert json.loads(whole.paths["palette"].read_text())["palette"] == ref.palette()
    sampled = kd.segment_large(tmp_path / "f.tif", k=4, out_dir=tmp_path / "b", seed=0, chunks=32, sample=2000,
                               client=cluster)
    assert sampled.display_range == ref.display_range
    shown = kmseg._display.to_u8(sampled.centers, ref.display_range)
    assert [p["rgb"] for p in sampled.palette()] == [shown[p["index"]].tolist() for p in sampled.palette()]
    assert len({p["hex"] for p in sampled.palette()}) == 4


def test_large_refuses_to_overwrite(cluster, tmp_path):
    tifffile.imwrite(tmp_path / "x.tif", _photo(64, 64), tile=(32, 32), photometric="rgb")
    (tmp_path / "x-labels.tif").write_bytes(b"keep")
    with pytest.raises(kmseg.OutputExistsError, match="x-labels.tif exists already"):
        kd.segment_large(tmp_path / "x.tif", k=2, out_dir=tmp_path, client=cluster)
    assert (tmp_path / "x-labels.tif").read_bytes() == b"keep"
    with pytest.raises(kmseg.NotAnImageError, match="not a TIFF file"):
        kd.segment_large(data.path("coffee.png"), k=2, out_dir=tmp_path, client=cluster)
    with pytest.raises(kmseg.ParameterError, match=r"'.*x.tif' looks like a file name"):
        kd.segment_large(tmp_path / "x.tif", k=2, out_dir=tmp_path / "x.tif", client=cluster)
    with pytest.raises(kmseg.ParameterError, match=r"'.*y.tiff' looks like a file name"):
        kd.segment_large(tmp_path / "x.tif", k=2, out_dir=tmp_path / "y.tiff", client=cluster)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-labels.tif", "x.tif"]  # nothing made


def test_large_leaves_no_output_when_one_cannot_be_written(cluster, tmp_path):
    """A directory where the palette must go, with force: refused before any work. Was: the
    two TIFFs written, then the palette failing (a half set)."""
    tifffile.imwrite(tmp_path / "x.tif", _photo(64, 64), tile=(32, 32), photometric="rgb")
    (tmp_path / "x-palette.json").mkdir()
    with pytest.raises(kmseg.ParameterError, match=r"x-palette\.json: is a directory"):
        kd.segment_large(tmp_path / "x.tif", k=2, out_dir=tmp_path, client=cluster, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x-palette.json", "x.tif"]


@needs_sysfs
def test_large_into_a_folder_without_permission_raises_permission_error(cluster, tmp_path):
    """Was a bare ``PermissionError(13, 'Permission denied')`` from the TIFF writer's thread,
    naming no file and no fix, and not a KmsegError."""
    tifffile.imwrite(tmp_path / "x.tif", _photo(64, 64), tile=(32, 32), photometric="rgb")
    with pytest.raises(PermissionError, match=r"^/sys/x-\w+\.tif: cannot be written in '/sys' \(Permission denied\); "
                                              "pass a path in a folder you can write to$") as info:
        kd.segment_large(tmp_path / "x.tif", k=2, out_dir="/sys", client=cluster, chunks=32)
    assert isinstance(info.value, kmseg.OutputPermissionError) and info.value.errno == errno.EACCES


def _strips(tmp_path, dtype: str, rowsperstrip: int) -> tuple[Path, np.ndarray]:
    """A 1500 x 1344 (2 MP) photo-like TIFF in deflate-compressed strips, with the horizontal
    predictor (each strip must be decoded whole)."""
    rng = np.random.default_rng(4)
    img = np.tile(_photo(300, 224), (5, 6, 1))
    img = np.clip(img.astype(np.int16) + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    if dtype == "uint16":
        img = (img.astype(np.uint16) * 257 + rng.integers(0, 257, img.shape)).astype(np.uint16)
    path = tmp_path / f"strips-{rowsperstrip}.tif"
    tifffile.imwrite(path, img, photometric="rgb", compression="zlib", predictor=True, rowsperstrip=rowsperstrip)
    return path, img


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("rowsperstrip", [27, 1500], ids=["27-rows", "one-strip"])
def test_large_compressed_strips_equal_in_memory_in_regions_near_the_size_asked(cluster, tmp_path, dtype,
                                                                              rowsperstrip):
    """Strips of 27 rows: regions were made whole strips and whole output tiles (256 rows)
    at once, every lcm(27, 256) = 6912 rows, so this image was one region however small the
    chunks asked (and a 30000-pixel-wide one, regions of 207 MP for 4 asked). Now they are
    256-row bands, and a strip cut by a band's edge is decoded by both bands. One strip for
    the whole image is one region. Either way the result is the in-memory one."""
    path, img = _strips(tmp_path, dtype, rowsperstrip)
    ref = kmseg.segment(img, k=4, seed=0)
    res = kd.segment_large(path, k=4, out_dir=tmp_path / "out", seed=0, chunks=256, client=cluster)
    assert res.n_chunks == (6 if rowsperstrip == 27 else 1)  # 1500 rows in bands of 256 rows
    np.testing.assert_allclose(res.centers, ref.centers, rtol=0, atol=1e-9)
    assert _same_labels(res.read_labels(), ref.labels)
    np.testing.assert_array_equal(res.counts, ref.counts)
    assert res.inertia == pytest.approx(ref.inertia, rel=1e-12)
    np.testing.assert_array_equal(res.read_image(), ref.image())


@pytest.fixture(scope="module")
def small_workers():
    """A real LocalCluster whose one worker (a thread of this process) has a 32 MiB memory
    limit, which it does not enforce (no pausing or spilling: this process holds far more).
    Its scheduler's HTTP routes take a free port, as ``kd.local_cluster``'s do: on Dask's 8787
    they clashed with any other cluster on the machine ("port in use", an error here)."""
    import dask
    from distributed import Client, LocalCluster

    off = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause", "terminate")}
    with dask.config.set(off):
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, memory_limit="32MiB",
                          dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                          silence_logs=logging.CRITICAL) as lc, Client(lc, set_as_default=False) as client:
            yield client


def test_large_refuses_one_strip_a_worker_cannot_hold_before_any_work(small_workers, tmp_path, capsys):
    """An image stored as one compressed strip is read whole by one task: when that needs more
    than a worker's memory limit, it is refused at once with how to re-save it tiled. Was: the
    task ran anyway, however little memory the worker had (a worker that goes over its limit is
    paused, then killed). The same pixels in tiles go through the same worker."""
    path, img = _strips(tmp_path, "uint8", 1500)
    message = (rf"^{re.escape(str(path))}: its pixels are stored as one compressed strip of 1500 x 1344 pixels, "
               r"which a task must decode whole: about \d+\.\d+ MiB in one worker, which has 32\.00 MiB; re-save "
               rf"it tiled \(e\.g\. vips tiffsave {re.escape(str(path))} tiled\.tif --tile --compression deflate\), "
               r"give the workers more memory, or segment it in memory with kmseg\.segment$")
    with pytest.raises(kmseg.NotAnImageError, match=message):
        kd.segment_large(path, k=4, out_dir=tmp_path / "out", seed=0, client=small_workers)
    assert not (tmp_path / "out").exists()
    address = small_workers.scheduler.address
    argv = ["segment", str(path), "-k", "4", "-o", str(tmp_path / "cli"), "--dask", "--scheduler", address,
            "--max-pixels", "1000000"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[1] == f"kmseg: 1 of 1 file failed: {path}", err
    assert re.match(message.replace("^", "^kmseg: error: ").replace(
        r"segment it in memory with kmseg\.segment$",
        r"segment it in memory with a --max-pixels of at least its pixel count$"), err[0]), err[0]
    tifffile.imwrite(tmp_path / "tiled.tif", img, photometric="rgb", compression="zlib", tile=(256, 256))
    res = kd.segment_large(tmp_path / "tiled.tif", k=4, out_dir=tmp_path / "out", seed=0, chunks=256,
                           client=small_workers)
    assert _same_labels(res.read_labels(), kmseg.segment(img, k=4, seed=0).labels)


@pytest.fixture
def batch_files(tmp_path):
    """Five small photos with a bad file (text named .png) in the middle."""
    paths = []
    for i, name in enumerate(data.NAMES):
        p = tmp_path / "in" / f"p{i}.png"
        p.parent.mkdir(exist_ok=True)
        Image.open(data.path(name)).convert("RGB").crop((0, 0, 160, 120)).save(p)
        paths.append(str(p))
    bad = tmp_path / "in" / "p1b.png"
    bad.write_text("this is not an image")
    paths.insert(2, str(bad))
    return paths


def test_batch_cli_bad_file_fails_alone(cluster, tmp_path, batch_files, capsys):
    out = tmp_path / "out"
    address = cluster.scheduler.address
    rc = cli.main(["segment", *batch_files, "-k", "3", "-o", str(out), "--seed", "0", "--dask", "--scheduler", address])
    assert rc == 1
    err = capsys.readouterr().err
    assert "1 of 5 files failed" in err and "p1b.png" in err.splitlines()[-1]
    for p in batch_files:
        stem = os.path.splitext(os.path.basename(p))[0]
        assert (out / f"{stem}-labels.png").exists() == (stem != "p1b")
    # Each file is the normal in-memory result.
    ref = kmseg.segment(batch_files[0], k=3, seed=0)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "p0-labels.png")), ref.label_image())


def test_relative_paths_are_the_callers_where_the_workers_run_elsewhere(cluster, tmp_path, batch_files, capsys,
                                                                        monkeypatch):
    """Relative inputs and output folder mean the caller's working folder, also on workers whose
    own is another (a cluster started from another folder, as 'dask worker' often is); here the
    caller moves away from the workers' folder. Was: every file 'no such file' (and an absolute
    input's outputs went to a folder under the worker's)."""
    monkeypatch.chdir(tmp_path)
    assert set(cluster.run(os.getcwd).values()) != {str(tmp_path)}
    names = [os.path.relpath(p) for p in batch_files[:2]]  # in/p0.png, in/p1.png
    res = kd.segment_batch(names, k=3, out_dir="out", seed=0, client=cluster)
    assert [(r["input"], r["ok"]) for r in res.results] == [(n, True) for n in names], res.results
    ref = kmseg.segment(batch_files[0], k=3, seed=0)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "p0-labels.png")), ref.label_image())
    assert all(os.path.isfile(p) for r in res.results for p in r["outputs"].values())
    shared = kd.segment_batch(names, k=3, out_dir="shared", seed=0, shared_palette=True, client=cluster)
    assert [r["ok"] for r in shared.results] == [True, True], shared.results
    assert sorted(os.listdir(tmp_path / "shared")) == [f"p{i}-{kind}" for i in (0, 1)
                                                        for kind in ("labels.png", "palette.json", "segmented.png")]
    assert cli.main(["segment", *names, "-k", "3", "-o", "cli", "--dask", "--scheduler", cluster.scheduler.address]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert (tmp_path / "cli" / "p1-segmented.png").is_file()


def test_local_clusters_do_not_compete_for_a_port():
    """Dask's scheduler serves HTTP on port 8787 unless told otherwise, and warns when that
    is taken (another kmseg, a notebook's cluster); kmseg's local cluster takes a free port."""
    with socket.socket() as taken:
        try:
            taken.bind(("0.0.0.0", 8787))
            taken.listen()
        except OSError:
            pass  # something holds it already: the same case
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with kd.local_cluster(1) as lc:
                port = lc.scheduler.http_server.port
    assert port != 8787
    assert [str(w.message) for w in caught if "in use" in str(w.message)] == []


def _two_colours(path) -> str:
    img = np.zeros((16, 16, 3), np.uint8)
    img[:, 8:] = 255
    Image.fromarray(img).save(path)
    return str(path)


TWO_COLOURS = "the image has only 2 distinct colours, fewer than k=3; returning 2 clusters, one per colour"


def test_batch_cli_shows_a_workers_warning_as_its_own_line(tmp_path):
    """The real command, with its own LocalCluster: the warning a worker raises reaches the
    user as the in-memory batch prints it, not as a Python warning in the worker's output."""
    two = _two_colours(tmp_path / "two.png")
    cmd = [sys.executable, "-m", "kmseg", "segment", two, "-k", "3", "-o", str(tmp_path / "out"), "--dask"]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "DASK_SCHEDULER_ADDRESS": ""})
    assert run.returncode == 0, run.stderr
    assert f"kmseg: warning: {two}: {TWO_COLOURS}" in run.stderr.splitlines()
    assert run.stderr.count(TWO_COLOURS) == 1  # once, and not also as "...: ConvergenceWarning: ..."
    assert "ConvergenceWarning" not in run.stderr and "Traceback" not in run.stderr
    assert (tmp_path / "out" / "two-labels.png").exists()


def test_batch_api_raises_a_workers_warning_again_naming_the_file(cluster, tmp_path, batch_files):
    two = _two_colours(tmp_path / "two.png")
    with pytest.warns(kmseg.ConvergenceWarning) as caught:
        res = kd.segment_batch([batch_files[0], two], k=3, out_dir=tmp_path / "out", seed=0, client=cluster)
    assert [str(w.message) for w in caught] == [f"{two}: {TWO_COLOURS}"]
    assert caught[0].filename == __file__  # pointing at the call of segment_batch
    assert [r["ok"] for r in res.results] == [True, True]
    assert not any("warnings" in r for r in res.results)


def test_a_shared_palette_with_too_few_colours_warns_of_all_the_images(cluster, tmp_path):
    """One fit on the images together: the warning counts their colours together, and names
    no one image (it said "the image has only ...")."""
    two = _two_colours(tmp_path / "two.png")
    other = tmp_path / "other.png"
    Image.fromarray(np.full((8, 8, 3), (0, 0, 255), np.uint8)).save(other)
    with pytest.warns(kmseg.ConvergenceWarning) as caught:
        res = kd.segment_batch([two, str(other)], k=5, out_dir=tmp_path / "out", shared_palette=True, seed=0,
                               client=cluster)
    assert [str(w.message) for w in caught] == [
        "the images have only 3 distinct colours together, fewer than k=5; the shared palette has 3 colours, "
        "one per colour"
    ]
    assert caught[0].filename == __file__
    assert res.centers is not None and res.centers.shape == (3, 3)
    assert [r["ok"] for r in res.results] == [True, True]


def test_a_workers_read_warning_reaches_the_client_naming_the_file_once(cluster, tmp_path, capsys, monkeypatch):
    """A TIFF of several images read on a worker: its ReadWarning is raised again in Python and
    printed as one line by kmseg segment --dask, as without Dask (it was the worker's two lines)."""
    from kmseg.errors import ReadWarning

    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(_photo(20, 30), photometric="rgb")
        tif.write(_photo(12, 10), photometric="rgb")
    line = (f"{path}: holds 2 images (TIFF series 0 to 1); kmseg reads the first (20x30x3): to segment another, save "
            "it as a file of its own")
    with pytest.warns(ReadWarning) as caught:
        res = kd.segment_batch([str(path)], k=3, out_dir=tmp_path / "py", seed=0, client=cluster)
    assert [str(w.message) for w in caught] == [line] and caught[0].filename == __file__
    assert [r["ok"] for r in res.results] == [True]
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)
    assert cli.main(["segment", str(path), "-k", "3", "-o", str(tmp_path / "cli"), "--dask"]) == 0
    err = capsys.readouterr().err
    assert [x for x in err.splitlines() if "warning" in x] == [f"kmseg: warning: {line}"]


def test_cli_routes_tiffs_over_the_pixel_limit_to_the_chunked_path(cluster, tmp_path, capsys, monkeypatch):
    img = _photo(96, 128)
    tifffile.imwrite(tmp_path / "t.tif", img, tile=(32, 32), photometric="rgb")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)  # no --scheduler: the variable
    args = ["segment", str(tmp_path / "t.tif"), "-k", "3", "-o", str(tmp_path / "out"), "--json", "--dask"]
    assert cli.main([*args, "--max-pixels", "1000"]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    assert result["ok"] and result["outputs"]["labels"].endswith("t-labels.tif")
    ref = kmseg.segment(img, k=3, seed=0)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "out" / "t-labels.tif"), ref.label_image())
    assert cli.main([*args, "--max-pixels", "1000"]) == 1  # outputs exist: the file fails alone
    err = capsys.readouterr().err
    assert "exists already" in err and "; pass --force to overwrite it\n" in err and "force=True" not in err


def test_cli_segments_an_int16_tiff_over_the_pixel_limit_in_its_own_units(cluster, tmp_path, capsys, monkeypatch):
    """A CT-like int16 TIFF over --max-pixels takes the chunked path, as a uint16 one does: the
    in-memory result, NAME-segmented.tif in int16. Was: refused, int16 not being uint8, uint16
    or float. Lab, which needs a known scale, is refused for it as in memory, before any work."""
    img = (_photo(96, 128)[..., 0].astype(np.int16) * 8 - 1000).astype(np.int16)
    tifffile.imwrite(tmp_path / "ct.tif", img, photometric="minisblack", tile=(32, 32))
    rgb = np.dstack([img, img, img])
    tifffile.imwrite(tmp_path / "rgb16s.tif", rgb, photometric="rgb", tile=(32, 32))
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)
    out = tmp_path / "out"
    assert cli.main(["segment", str(tmp_path / "ct.tif"), "-k", "3", "-o", str(out), "--json", "--dask",
                     "--max-pixels", "1000"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    ref = kmseg.segment(img, k=3, seed=0)
    assert result["outputs"]["segmented"] == str(out / "ct-segmented.tif") and result["palette"] == ref.palette()
    saved = tifffile.imread(out / "ct-segmented.tif")
    assert saved.dtype == np.int16
    np.testing.assert_array_equal(saved, ref.image())
    np.testing.assert_array_equal(tifffile.imread(out / "ct-labels.tif"), ref.label_image())
    assert cli.main(["segment", str(tmp_path / "rgb16s.tif"), "-k", "3", "-o", str(out), "--dask", "--max-pixels",
                     "1000", "--color-space", "lab"]) == 1
    assert (f"kmseg: error: {tmp_path / 'rgb16s.tif'}: --color-space lab needs colours on a known scale (uint8, "
            "uint16, or float in [0, 1]); this image is int16") in capsys.readouterr().err
    assert not (out / "rgb16s-palette.json").exists()


def test_cli_chunked_path_warns_naming_the_file_before_its_line(cluster, tmp_path, capsys, monkeypatch):
    """A TIFF over --max-pixels with fewer colours than k: the warning names the file and comes
    before the file's line, as for any other file. Was: without the name, after the summary."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, 32:] = (200, 10, 10)
    tifffile.imwrite(tmp_path / "two.tif", img, photometric="rgb", tile=(32, 32))
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)
    args = ["segment", str(tmp_path / "two.tif"), str(bad), "-k", "3", "-o", str(tmp_path / "out"), "--dask"]
    assert cli.main([*args, "--max-pixels", "1000"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-2:] == [f"kmseg: warning: {tmp_path / 'two.tif'}: {TWO_COLOURS}",
                        f"kmseg: 1 of 2 files failed: {bad}"]
    assert sum(TWO_COLOURS in line for line in err) == 1


def test_shared_palette_independent_of_order(cluster, tmp_path, batch_files):
    a = kd.segment_batch(batch_files, k=4, out_dir=tmp_path / "a", shared_palette=True, seed=0, client=cluster)
    rng = np.random.default_rng(0)
    shuffled = [batch_files[i] for i in rng.permutation(len(batch_files))]
    b = kd.segment_batch(shuffled, k=4, out_dir=tmp_path / "b", shared_palette=True, seed=0, client=cluster)
    assert a.centers is not None and a.centers.shape == (4, 3)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert [r["input"] for r in a.failed] == [batch_files[2]] and len(b.failed) == 1
    assert [r["input"] for r in a.results] == batch_files  # input order
    for p in batch_files[:2]:
        stem = os.path.splitext(os.path.basename(p))[0]
        la = np.asarray(Image.open(tmp_path / "a" / f"{stem}-labels.png"))
        lb = np.asarray(Image.open(tmp_path / "b" / f"{stem}-labels.png"))
        np.testing.assert_array_equal(la, lb)
        palette = json.loads((tmp_path / "a" / f"{stem}-palette.json").read_text())
        np.testing.assert_allclose(palette["centers"], a.centers)


def test_batch_with_a_palette_labels_every_file_as_palette_apply_does(cluster, tmp_path, batch_files):
    """segment_batch(palette=...): each file labelled in its task with the palette given, a
    kmseg.Palette or a palette file; the outputs are those Palette.apply gives in memory."""
    ref = kmseg.segment(batch_files[0], 4, seed=0)
    written = ref.save(tmp_path / "fit", stem="ref")
    for given in (kmseg.io.read_palette(written["palette"]), written["palette"]):
        out = tmp_path / f"out{type(given).__name__}"
        res = kd.segment_batch(batch_files, out_dir=out, palette=given, client=cluster)
        assert [r["input"] for r in res.failed] == [batch_files[2]]
        for p in batch_files[:2] + batch_files[3:]:
            stem = os.path.splitext(os.path.basename(p))[0]
            want = kmseg.io.read_palette(written["palette"]).apply(p)
            entry = res.results[batch_files.index(p)]
            assert entry["k"] == 4 and entry["n_iter"] == 0 and entry["palette"] == want.palette()
            np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}-labels.png")), want.labels)
            np.testing.assert_array_equal(np.asarray(Image.open(out / f"{stem}-segmented.png")), want.image())


def test_batch_palette_refuses_what_does_not_go_with_it_before_any_work(tmp_path, batch_files):
    ref = kmseg.segment(batch_files[0], 3, seed=0)
    pal = kmseg.io.read_palette(ref.save(tmp_path / "fit", stem="ref")["palette"])
    out = tmp_path / "out"
    cases = [
        ({"k": 5}, kmseg.ParameterError, r"^k=5 does not match .*ref-palette\.json, which has 3 colours; leave k out"),
        ({"color_space": "lab"}, kmseg.ParameterError, r"clustered in color_space='rgb'; color_space='lab' would"),
        ({"seed": 1}, kmseg.ParameterError, r"^seed=1 has no effect with palette, which fits nothing; drop seed$"),
        ({"n_init": 3}, kmseg.ParameterError, r"^n_init=3 has no effect"),
        ({"scale": 0.5}, kmseg.ParameterError, r"^scale=0.5 has no effect"),
        ({"shared_palette": True}, kmseg.ParameterError, r"^palette and shared_palette=True cannot go together"),
    ]
    for extra, error, message in cases:
        with pytest.raises(error, match=message):
            kd.segment_batch(batch_files, out_dir=out, palette=pal, **extra)
    with pytest.raises(kmseg.ParameterTypeError, match=r"^palette of type ndarray is not supported; pass a "
                                                      r"kmseg\.Palette \(for an array of centres: kmseg\.Palette"):
        kd.segment_batch(batch_files, out_dir=out, palette=pal.centers)
    with pytest.raises(kmseg.PaletteNotFoundError):
        kd.segment_batch(batch_files, out_dir=out, palette=tmp_path / "missing-palette.json")
    assert not out.exists()


def test_a_shared_palette_of_grey_files_is_grey_as_without_dask(cluster, tmp_path):
    """Grey 8-bit files (a microscopy stack): the Dask batch wrote RGB images and
    a 3-channel palette, where kmseg segment --shared-palette without Dask writes grey ones.
    Now byte for byte the same outputs. An RGB file among grey ones makes them all RGB, with
    and without Dask alike."""
    rng = np.random.default_rng(3)
    grey = np.asarray(Image.open(data.path("coffee.png")).convert("L"))[:90, :120]
    folder = tmp_path / "in"
    folder.mkdir()
    names = []
    for i in range(3):
        img = np.clip(grey.astype(int) + rng.integers(-5, 6, grey.shape) + 20 * i, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"g{i}.png")
        names.append(str(folder / f"g{i}.png"))
    assert cli.main(["segment", "--shared-palette", *names, "-k", "4", "-o", str(tmp_path / "mem")]) == 0
    res = kd.segment_batch(names, k=4, out_dir=tmp_path / "dask", seed=0, shared_palette=True, client=cluster)
    assert [r["ok"] for r in res.results] == [True] * 3, res.results
    assert res.centers.shape == (4, 1)
    for i in range(3):
        for kind in ("labels.png", "segmented.png"):
            mem, dsk = tmp_path / "mem" / f"g{i}-{kind}", tmp_path / "dask" / f"g{i}-{kind}"
            assert np.asarray(Image.open(dsk)).shape == np.asarray(Image.open(mem)).shape
            np.testing.assert_array_equal(np.asarray(Image.open(dsk)), np.asarray(Image.open(mem)))
        a, b = (json.loads((tmp_path / d / f"g{i}-palette.json").read_text()) for d in ("mem", "dask"))
        assert a["centers"] == b["centers"] and a["palette"] == b["palette"] and a["inertia"] == b["inertia"]
    assert np.asarray(Image.open(tmp_path / "dask" / "g2-segmented.png")).shape == (90, 120)
    # Mixed with an RGB file: all clustered as RGB, grey replicated, as before.
    Image.open(data.path("coffee.png")).convert("RGB").crop((0, 0, 120, 90)).save(folder / "c.png")
    mixed = kd.segment_batch([*names, str(folder / "c.png")], k=4, out_dir=tmp_path / "mixed", seed=0,
                             shared_palette=True, client=cluster)
    assert [r["ok"] for r in mixed.results] == [True] * 4 and mixed.centers.shape == (4, 3)
    assert np.asarray(Image.open(tmp_path / "mixed" / "g0-segmented.png")).shape == (90, 120, 3)
    # ... and so they are without Dask (where such a grey file was refused), byte for byte.
    assert cli.main(["segment", "--shared-palette", *names, str(folder / "c.png"), "-k", "4", "-o",
                     str(tmp_path / "mixed-mem")]) == 0
    for stem in ("g0", "g1", "g2", "c"):
        for kind in ("labels.png", "segmented.png"):
            mem, dsk = (tmp_path / d / f"{stem}-{kind}" for d in ("mixed-mem", "mixed"))
            np.testing.assert_array_equal(np.asarray(Image.open(dsk)), np.asarray(Image.open(mem)))
        a, b = (json.loads((tmp_path / d / f"{stem}-palette.json").read_text()) for d in ("mixed-mem", "mixed"))
        assert a["centers"] == b["centers"] and a["palette"] == b["palette"] and a["inertia"] == b["inertia"]


def test_a_plane_of_each_stack_on_the_cluster_is_the_in_memory_one(cluster, tmp_path):
    """--plane with --dask (it was refused): each file's plane is read in its task, and the
    outputs, named NAME-planeN-..., are byte for byte those without --dask, also with a shared
    palette; segment_batch(plane=...) in Python too."""
    import tifffile

    rng = np.random.default_rng(5)
    grey = np.asarray(Image.open(data.path("coffee.png")).convert("L"))[:60, :80]
    names = []
    for i in range(2):
        stack = np.stack([np.clip(grey.astype(int) + rng.integers(-9, 10, grey.shape) + 30 * z, 0, 255)
                          for z in range(3)]).astype(np.uint8)
        names.append(str(tmp_path / f"s{i}.tif"))
        tifffile.imwrite(names[-1], stack, imagej=True, metadata={"axes": "ZYX"})
    addr = ["--dask", "--scheduler", cluster.scheduler.address]
    for extra in ([], ["--shared-palette"]):
        mem, dsk = tmp_path / f"mem{len(extra)}", tmp_path / f"dask{len(extra)}"
        assert cli.main(["segment", *names, "-k", "3", "--plane", "2", "-o", str(mem), *extra]) == 0
        assert cli.main(["segment", *names, "-k", "3", "--plane", "2", "-o", str(dsk), *extra, *addr]) == 0
        want = sorted(p.name for p in mem.iterdir())
        assert want == [f"s{i}-plane2-{kind}" for i in (0, 1) for kind in ("labels.png", "palette.json",
                                                                           "segmented.png")]
        assert sorted(p.name for p in dsk.iterdir()) == want
        for name in want:
            assert (dsk / name).read_bytes() == (mem / name).read_bytes(), name
    res = kd.segment_batch(names, k=3, out_dir=tmp_path / "py", seed=0, plane=1, client=cluster)
    assert [r["ok"] for r in res.results] == [True, True]
    ref = kmseg.segment(names[0], 3, seed=0, plane=1)
    assert json.loads((tmp_path / "py" / "s0-plane1-palette.json").read_text()) == json.loads(
        json.dumps(ref.summary()))
    without = kd.segment_batch(names, k=3, out_dir=tmp_path / "none", client=cluster)
    assert [r["error"] for r in without.results][0].endswith("pass plane=N (CLI: --plane N) with N from 0 to 2")


def test_batch_refuses_an_out_dir_named_like_a_file_before_any_work(tmp_path, batch_files):
    with pytest.raises(kmseg.ParameterError, match=r"'.*out.png' looks like a file name, .* such as '.*out'$"):
        kd.segment_batch(batch_files, k=2, out_dir=tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()


def test_batch_with_force_refuses_to_overwrite_its_own_inputs(tmp_path, batch_files):
    """Outputs written beside the inputs, then the folder's files given again with force=True:
    refused before any work (no cluster is started), nothing changed."""
    folder = Path(batch_files[0]).parent
    clash = folder / (Path(batch_files[0]).stem + "-palette.json")
    clash.write_text("{}")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(kmseg.ParameterError, match=r"-palette\.json is an input, and also where the palette of .* goes, "
                                                   r"and force=True would overwrite it"):
        kd.segment_batch([*batch_files, str(clash)], k=2, out_dir=folder, force=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


@pytest.mark.parametrize(("given", "error", "message"), [
    ({"paths": "in/*.png"}, kmseg.ParameterTypeError,
     r"^paths='in/\*\.png' is one path, not a list of them; pass a list such as \['in/\*\.png'\], or for a "
     r"pattern sorted\(glob\.glob\('in/\*\.png'\)\)$"),
    ({"paths": None}, kmseg.ParameterTypeError, r"^paths=None is not a list of paths; pass a list of image file paths$"),
    ({"paths": ["a.png", 3]}, kmseg.ParameterTypeError, r"^paths\[1\]=3 is not a path; pass a str or a pathlib\.Path$"),
    ({"scale": 2}, kmseg.ParameterError, r"^scale=2 is out of range; pass a factor in \(0, 1\]"),
    ({"max_pixels": -1}, kmseg.ParameterError, r"^max_pixels=-1 is out of range; pass a positive int"),
    ({"disable": ["x"]}, kmseg.ParameterTypeError, r"^disable\[0\]='x' is not an integer"),
    ({"disable": [0, -1]}, kmseg.ParameterError, r"^disable\[1\]=-1 is out of range"),
    ({"disable": "0"}, kmseg.ParameterTypeError, r"^disable='0' is not a list of cluster indices; pass integers"),
], ids=["one-path", "none", "not-a-path", "scale", "max-pixels", "disable-type", "disable-negative", "disable-str"])
def test_batch_refuses_bad_parameters_before_any_work(cluster, tmp_path, batch_files, given, error, message):
    """A bad parameter raises at once, as the docstring says. Was: a path given alone was read
    as a list of its characters, each 'no such file'; the others failed every file, one by one
    (disable=['x'] as "TypeError: '>=' not supported...")."""
    with pytest.raises(error, match=message):
        kd.segment_batch(**{"paths": batch_files[:2], "k": 2, "out_dir": tmp_path / "out", "client": cluster, **given})
    assert not (tmp_path / "out").exists()


def test_batch_disable_beyond_a_files_clusters_is_worded_for_its_caller(cluster, tmp_path, batch_files, capsys):
    """An index beyond a file's clusters (known only once it is segmented) fails that file, in
    Python's words for segment_batch; on the command line it is still the usage error."""
    res = kd.segment_batch(batch_files[:1], k=3, out_dir=tmp_path / "out", seed=0, disable=[5], client=cluster)
    assert res.results == [{"input": batch_files[0], "ok": False,
                            "error": "disable=5 is out of range; cluster indices run from 0 to 2"}]
    argv = ["segment", batch_files[0], "-k", "3", "-o", str(tmp_path / "cli"), "--disable", "5", "--dask",
            "--scheduler", cluster.scheduler.address]
    assert cli.main(argv) == 2
    assert "kmseg: error: --disable 5 is out of range; clusters run from 0 to 2" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cli").exists()


def test_import_kmseg_does_not_import_dask():
    code = "import sys, kmseg, kmseg.cli; print(any(m in sys.modules for m in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_missing_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(kd.DaskNotInstalledError, match=r'pip install "kmseg\[dask\]"'):
        kd.segment_batch([], k=2)


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["nothing-listens", "unknown-scheme"])
def test_cli_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path, batch_files, kind):
    """An address where no scheduler answers: exit 1 with one line naming the address and the
    fix in the command line's words (it said "scheduler=, CLI: --scheduler"), no traceback, no
    output directory, and no wait at exit on a half-made client (that wait was a minute, with a
    traceback, for an unknown scheme)."""
    address = f"tcp://127.0.0.1:{_closed_port()}" if kind == "nothing-listens" else "foo://localhost:8786"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kmseg", "segment", batch_files[0], "-k", "3", "-o", str(out), "--dask",
           "--scheduler", address]
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s", "DASK_SCHEDULER_ADDRESS": ""}
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=40, env=env)
    assert run.returncode == 1
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"kmseg: error: cannot reach a Dask scheduler at '{address}' (")
    assert lines[0].endswith("; check the address given to --scheduler, or start a scheduler there with "
                             "'dask scheduler'")
    assert not out.exists()


def _no_timeout_env() -> dict[str, str]:
    """This process's environment without a Dask connect timeout or scheduler address of its own."""
    env = {k: v for k, v in os.environ.items() if k != "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT"}
    return {**env, "DASK_SCHEDULER_ADDRESS": ""}


def test_cli_address_where_nothing_listens_fails_in_seconds_not_after_dasks_30_s(tmp_path, batch_files):
    """With Dask's default connect timeout (30 s), a refused address was retried for all of it
    before the line came; kmseg now gives up after a few seconds (still retrying, in case the
    scheduler is starting), and says what it found. The bound checks the wiring, not a speed."""
    address = f"tcp://127.0.0.1:{_closed_port()}"
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kmseg", "segment", batch_files[0], "-k", "3", "-o", str(out), "--dask",
           "--scheduler", address]
    t0 = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=_no_timeout_env())
    elapsed = time.monotonic() - t0
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"kmseg: error: cannot reach a Dask scheduler at '{address}' (connection refused: nothing listens there; "
        f"tried for 5 s); check the address given to --scheduler, or start a scheduler there "
        "with 'dask scheduler'"]
    assert elapsed < 20, elapsed
    assert not out.exists()


def test_api_address_where_nothing_listens_fails_in_seconds_and_honours_dasks_connect_timeout(tmp_path):
    """segment_large(scheduler=) as the command line: a few seconds by default, and Dask's
    ``distributed.comm.timeouts.connect`` when the user set it (named in the message)."""
    import dask

    tifffile.imwrite(tmp_path / "a.tif", _photo(64, 64), tile=(32, 32))
    address = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(kd.SchedulerUnreachableError) as caught:
        kd.segment_large(tmp_path / "a.tif", k=2, out_dir=tmp_path / "out", scheduler=address)
    assert time.monotonic() - t0 < 20
    assert str(caught.value) == (
        f"cannot reach a Dask scheduler at '{address}' (connection refused: nothing listens there; tried for "
        f"5 s); check the address (scheduler=, CLI: --scheduler), or start a scheduler there "
        "with 'dask scheduler'")
    with dask.config.set({"distributed.comm.timeouts.connect": "1.5s"}):
        with pytest.raises(kd.SchedulerUnreachableError, match=r"nothing listens there; tried for 1\.5 s\)"):
            kd.segment_large(tmp_path / "a.tif", k=2, out_dir=tmp_path / "out", scheduler=address)
    assert not (tmp_path / "out").exists()


def test_cli_address_where_something_listens_but_not_a_scheduler_fails_too(tmp_path, batch_files):
    """A port that accepts the connection and then says nothing (another service, a scheduler
    that hangs): the probe waited for Dask's handshake for ever."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)  # the kernel accepts; nobody answers
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        cmd = [sys.executable, "-m", "kmseg", "segment", batch_files[0], "-k", "3", "-o", str(tmp_path / "out"),
               "--dask", "--scheduler", address]
        env = {**_no_timeout_env(), "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        f"kmseg: error: cannot reach a Dask scheduler at '{address}' (something listens there but does not answer as "
        "a Dask scheduler within 1 s); check the address given to --scheduler, or start a scheduler there with "
        "'dask scheduler'"]
    assert not (tmp_path / "out").exists()


def test_an_empty_scheduler_address_is_refused_not_taken_for_none(tmp_path, batch_files, capsys):
    """scheduler='' (--scheduler "$UNSET_VARIABLE") started a local cluster as if no address had
    been given; an address that is not a str was reported as unreachable."""
    with pytest.raises(kmseg.ParameterError, match=r"^scheduler='' is empty; pass an address such as "
                       r"'tcp://10\.0\.0\.5:8786', or None for DASK_SCHEDULER_ADDRESS or a local cluster$"):
        kd.segment_batch(batch_files[:1], k=2, out_dir=tmp_path / "out", scheduler="")
    with pytest.raises(kmseg.ParameterTypeError, match=r"^scheduler=8786 is not an address; pass a str"):
        kd.segment_batch(batch_files[:1], k=2, out_dir=tmp_path / "out", scheduler=8786)
    assert cli.main(["segment", batch_files[0], "-o", str(tmp_path / "out"), "--dask", "--scheduler", " "]) == 2
    assert capsys.readouterr().err.startswith("kmseg: error: --scheduler ' ' is empty; pass an address such as "
                                              "tcp://10.0.0.5:8786, or leave --scheduler out for a local cluster")
    assert not (tmp_path / "out").exists()


def test_cli_offers_the_in_memory_path_for_a_tiff_the_chunked_path_cannot_read(cluster, tmp_path, capsys,
                                                                              monkeypatch):
    """A TIFF over --max-pixels in a layout the chunked path does not read (rotated by its EXIF
    orientation): the line says how the command line segments it in memory. Was: "with
    kmseg.segment", a function, not an option."""
    tifffile.imwrite(tmp_path / "rot.tif", _photo(64, 64), photometric="rgb", tile=(32, 32),
                     extratags=[(274, "H", 1, 6, True)])
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)
    argv = ["segment", str(tmp_path / "rot.tif"), "-k", "2", "-o", str(tmp_path / "out"), "--dask"]
    assert cli.main([*argv, "--max-pixels", "1000"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"kmseg: error: {tmp_path / 'rot.tif'}: this TIFF has an EXIF orientation other than 1 (top-left); the "
        "chunked path reads integer and float TIFFs with grey or RGB samples, so convert it, or segment it in memory "
        "with a --max-pixels of at least its pixel count")
    assert cli.main([*argv, "--max-pixels", "4096"]) == 0  # in memory
    with pytest.raises(kmseg.NotAnImageError, match=r"or segment it in memory with kmseg\.segment$"):
        kd.segment_large(tmp_path / "rot.tif", k=2, out_dir=tmp_path / "api", client=cluster)


def test_api_unreachable_scheduler_from_the_environment_names_the_variable(tmp_path, batch_files, monkeypatch):
    import dask

    address = f"tcp://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(kd.SchedulerUnreachableError) as caught:
            kd.segment_batch(batch_files[:2], k=3, out_dir=tmp_path / "out")
    assert isinstance(caught.value, ConnectionError) and isinstance(caught.value, kmseg.KmsegError)
    assert str(caught.value).startswith(f"cannot reach a Dask scheduler at '{address}' (")
    assert "fix or unset DASK_SCHEDULER_ADDRESS, which gave it" in str(caught.value)
    assert not (tmp_path / "out").exists()


_SLOW = (600, 600, 3)  # noise: with k=200 each file takes tens of seconds, time enough to interrupt the batch


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize("as_json", [False, True])
def test_an_interrupted_dask_batch_keeps_what_it_finished(tmp_path, as_json):
    """Ctrl-C (SIGINT to the command's process group, as a terminal sends it, its LocalCluster's
    workers included) once two files have finished, one of them failed, while others are being
    written: the finished files are reported as without --dask (each file's line as it
    finishes; with --json, their summary), the last line says how far the batch got, and the
    exit code is 130. With --dask the lines were printed only at the end, so an interrupt lost
    them all; and every worker printed a traceback. The writes under way stop there, leaving
    no temporary file."""
    few = _two_colours(tmp_path / "few.png")  # finishes at once, with a warning line (also with --json)
    bad = tmp_path / "bad.png"
    bad.write_text("this is not an image")
    rng = np.random.default_rng(0)
    noise = []
    for i in range(4):
        noise.append(str(tmp_path / f"noise{i}.png"))
        Image.fromarray(rng.integers(0, 256, _SLOW, dtype=np.uint8)).save(noise[-1])
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "kmseg", "segment", few, str(bad), *noise, "-k", "200", "-o", str(out), "--masks", "--dask"]
    proc = subprocess.Popen(cmd + (["--json"] if as_json else []), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, env={**os.environ, "DASK_SCHEDULER_ADDRESS": ""})
    lines: dict[str, list[str]] = {"out": [], "err": []}
    readers = [threading.Thread(target=lambda s=stream, k=key: lines[k].extend(s), daemon=True)
               for key, stream in (("out", proc.stdout), ("err", proc.stderr))]
    for t in readers:
        t.start()
    warned = f"kmseg: warning: {few}: {TWO_COLOURS.replace('k=3', 'k=200')}\n"
    failed = f"kmseg: error: {bad}: not an image"
    done = f"{few}: k=2, "
    deadline = time.monotonic() + 300
    def writing() -> bool:  # a noise file's outputs are being written: a temporary file is there
        if not out.is_dir():
            return False
        with os.scandir(out) as entries:
            return any(e.name.startswith(".noise") and e.name.endswith(".tmp") for e in entries)

    try:
        # Both quick files reported (the warning and the error on stderr, and without --json the
        # line on stdout), and a slow one's 200 cut-outs being written.
        while not (warned in lines["err"] and any(line.startswith(failed) for line in lines["err"])
                   and (as_json or any(line.startswith(done) for line in lines["out"])) and writing()):
            assert proc.poll() is None and time.monotonic() < deadline, lines
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for t in readers:
        t.join(30)
    proc.stdout.close()
    proc.stderr.close()
    err = "".join(lines["err"])
    assert proc.returncode == 130, err
    assert lines["err"][-1] == f"kmseg: interrupted after 2 of 6 files (1 failed); the outputs of the 1 finished file are in {out}\n"
    assert "Traceback" not in err and len(lines["err"]) == 3, err
    if as_json:
        summary = json.loads("".join(lines["out"]))
        assert summary["interrupted"] and summary["failed"] == 1
        assert [(r["input"], r["ok"]) for r in summary["results"]] == [(few, True), (str(bad), False)]
        assert f"kmseg: error: {summary['results'][1]['error']}\n" in lines["err"]
    else:
        (line,) = lines["out"]
        assert line.startswith(done) and line.endswith(f" s -> {out / 'few-segmented.png'}\n")
    names = {p.name for p in out.iterdir()}
    few_outputs = {f"few-{kind}.png" for kind in ("segmented", "labels", "cluster0", "cluster1")} | {"few-palette.json"}
    assert few_outputs <= names and not {n for n in names if n.startswith(".")}
    assert not {n for n in names if n.startswith("noise")} >= {f"noise{i}-cluster199.png" for i in (0, 1)}  # stopped



_KILLED_PUBLISH = """\
import os, signal, sys
from pathlib import Path
from kmseg import io

out = Path(sys.argv[1])
moves = []

def kill_at_the_third_move(frame, event, arg):  # SIGKILL, as a worker stopped at Ctrl-C dies: no clean-up
    if event == "call" and frame.f_code is io.publish.__code__:
        moves.append(frame.f_locals["target"].name)
        if len(moves) == 3:
            print(*moves, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

sys.setprofile(kill_at_the_third_move)
io.write_files({kind: (out / f"a-{kind}", lambda kind=kind: b"new " + kind.encode())
                for kind in ("labels.png", "cluster0.png", "segmented.png", "palette.json")}, force=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_backups_left_by_a_killed_forced_write_are_settled_never_deleted_as_only_copies(tmp_path):
    """A write with force=True keeps each file it replaces as a hidden hard link
    (``.NAME.xxxxxxxx.old``) until its whole set is in place. A process killed in the middle (a
    worker stopped at Ctrl-C) leaves them; the clean-up after the interrupt removed only the
    ``.tmp`` files, so the backups stayed, hidden, for ever, and the outputs were half old, half
    new. Now a backup that is a second name of its output's very file is removed; one that is
    the only copy of a file is put back where the stopped write had replaced that file or left
    nothing, and kept, untouched, when its output was written again after it."""
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a-labels.png", "a-segmented.png", "a-palette.json"):
        (out / name).write_bytes(b"old " + name.encode())
    run = subprocess.run([sys.executable, "-c", _KILLED_PUBLISH, str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == -signal.SIGKILL and run.stdout == "a-labels.png a-cluster0.png a-segmented.png\n", run
    # Stopped there: labels and cluster0 replaced or made, segmented kept but not yet replaced.
    assert sorted(re.sub(r"\.[0-9a-f]{8}\.", ".X.", p.name) for p in out.glob(".*")) == [
        ".a-labels.png.X.old", ".a-palette.json.X.tmp", ".a-segmented.png.X.old", ".a-segmented.png.X.tmp"]
    (labels_backup,) = out.glob(".a-labels.png.*.old")
    assert labels_backup.read_bytes() == b"old a-labels.png" and labels_backup.stat().st_nlink == 1  # the only copy
    assert (out / "a-labels.png").read_bytes() == b"new labels.png"
    # Left by earlier runs: a backup whose output was written again after it (by hand, a later
    # run), one whose output is missing, and one of another file's output.
    stale = out / ".a-palette.json.0123abcd.old"
    stale.write_bytes(b"older palette")
    later = stale.stat().st_ctime_ns + 10**9
    os.utime(out / "a-palette.json", ns=(later, later))
    (out / ".a-masked.png.89abcdef.old").write_bytes(b"old masked")
    (out / ".b-labels.png.01234567.old").write_bytes(b"not ours")

    kd._remove_temporaries(out, ["a"])

    contents = {p.name: p.read_bytes() for p in out.iterdir()}
    assert contents == {
        "a-labels.png": b"old a-labels.png",  # put back: the stopped write had replaced it
        "a-segmented.png": b"old a-segmented.png",  # its backup, a second name of it, removed
        "a-palette.json": b"old a-palette.json",  # not reached by the stopped write
        "a-cluster0.png": b"new cluster0.png",  # made by the stopped write, replacing nothing: stays
        "a-masked.png": b"old masked",  # put back: nothing was in its place
        ".a-palette.json.0123abcd.old": b"older palette",  # the only copy of an earlier version: kept
        ".b-labels.png.01234567.old": b"not ours",
    }


# --------------------------------------------------------------------------- scripts without the __main__ guard


def _run_script(tmp_path: Path, body: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python script.py`` in ``tmp_path``, its own local cluster (no scheduler address), its
    temporary folder ``tmp_path / "tmp"``."""
    tifffile.imwrite(tmp_path / "img.tif", _photo(40, 60), tile=(16, 16), photometric="rgb")
    _two_colours(tmp_path / "two.png")
    (tmp_path / "tmp").mkdir()
    script = tmp_path / "script.py"
    script.write_text("import multiprocessing\n\nfrom kmseg.distributed import segment_batch, segment_large\n\n" + body)
    env = {**os.environ, "DASK_SCHEDULER_ADDRESS": "", "TMPDIR": str(tmp_path / "tmp")}
    return subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env=env)


UNGUARDED = ('{} {} again, and it starts a Dask cluster when imported; put its kmseg calls '
             'under `if __name__ == "__main__":`')


@pytest.mark.parametrize("call", ['segment_batch(["two.png"], k=2, out_dir="out")',
                                  'segment_large("img.tif", k=2, out_dir="out", chunks=16)'])
def test_a_script_without_the_main_guard_fails_in_one_line(tmp_path, call):
    """A script calling kmseg.distributed at its top level, not under
    ``if __name__ == "__main__":``. Each worker of the local cluster (started with ``spawn``)
    imports the script again and so called it again while starting: about 300 lines of
    multiprocessing traceback came out, a page per worker ("An attempt has been made to start
    a new process before the current process has finished its bootstrapping phase") and the
    parent's "Nanny failed to start". Now the workers stop without a word and the script ends
    on UnguardedScriptError, its message one line naming the script and the fix; the traceback
    above it is only the script's call down to kmseg's local_cluster."""
    run = _run_script(tmp_path, f"print('before')\n{call}\nprint('after')\n")
    script = tmp_path / "script.py"
    lines = run.stderr.splitlines()
    assert run.returncode == 1, run.stderr
    assert lines[-1] == "kmseg.distributed.UnguardedScriptError: " + UNGUARDED.format(
        "the Dask workers could not start: each one imports", script), run.stderr
    assert run.stderr.count("Traceback") == 1 and len(lines) < 25, run.stderr
    assert "Nanny" not in run.stderr and "bootstrapping" not in run.stderr and "kmseg: error" not in run.stderr
    assert lines[1] == f'  File "{script}", line 6, in <module>', run.stderr  # the line to move under the guard
    assert "after" not in run.stdout  # no worker went on past the call
    assert not [n for n in os.listdir(tmp_path / "tmp") if "kmseg" in n]  # the workers' mark, removed
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_a_script_with_the_main_guard_runs(tmp_path):
    """The same calls under ``if __name__ == "__main__":`` run on the local cluster as usual."""
    run = _run_script(tmp_path, 'if __name__ == "__main__":\n'
                                '    batch = segment_batch(["two.png"], k=2, out_dir="out")\n'
                                '    large = segment_large("img.tif", k=2, out_dir="out", chunks=16, seed=0)\n'
                                '    print(len(batch.failed), large.n_chunks, int(large.counts.sum()))\n')
    assert run.returncode == 0, run.stderr
    assert run.stdout == "0 12 2400\n" and run.stderr == ""
    assert {"two-segmented.png", "img-labels.tif", "img-segmented.tif"} <= set(os.listdir(tmp_path / "out"))
    assert not [n for n in os.listdir(tmp_path / "tmp") if "kmseg" in n]


def test_a_process_of_the_scripts_own_that_imports_it_again_says_it_in_one_line(tmp_path):
    """A process the script starts itself (``spawn``), not a worker of kmseg's cluster, imports
    the script again and reaches a kmseg call that would start a cluster: it says so itself, in
    one line on stderr, and ends there (exit code 1), without running the script further."""
    run = _run_script(tmp_path, 'if __name__ == "__main__":\n'
                                '    p = multiprocessing.get_context("spawn").Process(target=print, args=("child",))\n'
                                '    p.start()\n'
                                '    p.join()\n'
                                '    print("exit code", p.exitcode)\n'
                                'else:  # the new process, importing this script again\n'
                                '    segment_batch(["two.png"], k=2, out_dir="out")\n'
                                '    print("after")\n')
    assert run.returncode == 0, run.stderr
    assert run.stdout == "exit code 1\n"
    assert run.stderr == "kmseg: error: " + UNGUARDED.format("a new process could not start: it imports",
                                                             tmp_path / "script.py") + "\n"


def test_cli_palette_with_dask_labels_every_file_as_in_memory(cluster, tmp_path, batch_files, monkeypatch, capsys):
    """--palette --dask: each task labels its file with the palette read, through the in-memory core."""
    first = kmseg.segment(batch_files[0], k=3, seed=0, color_space="lab")
    pal = first.save(tmp_path / "fit")["palette"]
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler.address)
    out = tmp_path / "out"
    assert cli.main(["segment", "--palette", str(pal), *batch_files, "-o", str(out), "--dask"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"kmseg: 1 of 5 files failed: {batch_files[2]}"
    for p in batch_files[:2] + batch_files[3:]:
        stem = os.path.splitext(os.path.basename(p))[0]
        raw = np.asarray(Image.open(out / f"{stem}-labels.png"))
        np.testing.assert_array_equal(raw, kmseg.io.read_palette(pal).apply(p).labels)
        summary = json.loads((out / f"{stem}-palette.json").read_text())
        assert summary["n_iter"] == 0 and summary["space_centers"] == first.space_centers.tolist()


def test_a_lab_shared_palette_json_keeps_the_fits_centres(cluster, tmp_path, batch_files):
    """The Dask shared palette's JSON holds its centres in Lab, and labels each file again as the batch did."""
    good = batch_files[:2]
    res = kd.segment_batch(good, k=3, out_dir=tmp_path / "s", seed=0, color_space="lab", shared_palette=True,
                           client=cluster)
    assert [r["ok"] for r in res.results] == [True, True]
    for p in good:
        stem = os.path.splitext(os.path.basename(p))[0]
        pal = kmseg.io.read_palette(tmp_path / "s" / f"{stem}-palette.json")
        assert pal.color_space == "lab" and pal.space_centers is not None
        np.testing.assert_array_equal(pal.apply(p).labels, np.asarray(Image.open(tmp_path / "s" / f"{stem}-labels.png")))
