"""The functions that :mod:`kmseg.distributed` runs as Dask tasks.

Plain functions of picklable arguments, run in worker processes. Nothing here imports dask. Each
task reads its own region of the input by path, calls the same reduce, engine and kernel code as
the in-memory path, and returns something small: a histogram, per-cluster sums, a sample, or
the compressed tiles of its part of the outputs.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np

from . import _kernels as K
from ._engine import farthest_distinct
from ._dask_tiff import TiffSource, encode_tiles
from ._reduce import COARSE_BITS, _mask_arg, color_histogram, decode, merge_histograms
from .color import to_features
from .errors import ConvergenceWarning, InvalidImageDataError, KmsegError, ReadWarning, naming
from .segment import _check_exact, from_working, grey_as_rgb, to_working

Region = tuple[int, int, int, int]

# --------------------------------------------------------------------------- pixels of a region


def read_split(src: TiffSource, region: Region, alpha: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The region's image, its colour channels and its mask (None: every pixel counts).

    As :class:`kmseg.Prepared` takes an image: pixels whose alpha is 0 are masked, and the
    colour channels are in their working dtype (:func:`kmseg.segment.to_working`), a view of
    the image for uint8, uint16 and floats; int8 and int16 shifted to uint8 and uint16, other
    integers as float64 (those of 64 bits checked to be exact there).
    """
    img = src.read(*region)
    if img.dtype.kind == "f" and not np.isfinite(img).all():
        raise InvalidImageDataError(
            f"{src.path}: contains NaN or infinite values; kmseg cannot cluster them, so replace them "
            "(for example with numpy.nan_to_num) and save the image again"
        )
    colour = img[..., :-1] if alpha else img
    _check_exact(colour, f"{src.path}: ")
    pixels = to_working(colour)
    if not alpha:
        return img, pixels, None
    mask = img[..., -1] > 0
    return img, pixels, None if mask.all() else mask


def painted(out: np.ndarray, img: np.ndarray, nc: int) -> np.ndarray:
    """A region whose ``nc`` colour bands were painted into ``out``, in the working dtype of
    :func:`read_split`'s pixels, as the input holds it: in its dtype (:func:`kmseg.segment.from_working`,
    exact, as the colours are whole numbers of it), with its own bands after the colour (alpha)."""
    if out.dtype != img.dtype:
        work = from_working(out, img.dtype)
        if img.shape[2] == nc:
            return work
        out = np.empty(img.shape, dtype=img.dtype)
        out[..., :nc] = work
    if out.shape[2] > nc:
        out[..., nc:] = img[..., nc:]
    return out


def _canvas(img: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """The array a region is painted into: the image's shape and dtype, or the colour bands in
    their working dtype when that differs (then :func:`painted` brings them back)."""
    if pixels.dtype == img.dtype:
        return np.empty(img.shape, dtype=img.dtype)
    return np.empty(pixels.shape, dtype=pixels.dtype)


def _features(pixels: np.ndarray, mask: np.ndarray | None, space: str, vmax: float | None) -> np.ndarray:
    flat = pixels.reshape(-1, pixels.shape[2])
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    return to_features(flat, space, vmax)


def _flat_index(region: Region, width: int, mask: np.ndarray | None) -> np.ndarray:
    """Row-major index in the whole image of every clustered pixel of the region, in order."""
    y0, y1, x0, x1 = region
    idx = (np.arange(y0, y1, dtype=np.int64)[:, None] * width + np.arange(x0, x1, dtype=np.int64)[None, :])
    return idx.reshape(-1) if mask is None else idx[mask]


def label_image(labels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Labels to save, as :meth:`kmseg.Segmentation.label_image`: -1 becomes the dtype's maximum."""
    out = labels.astype(dtype)
    out[labels < 0] = np.iinfo(dtype).max
    return out


# --------------------------------------------------------------------------- 8-bit: histograms


def merge(*parts: tuple[np.ndarray, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Sum histograms (``None`` entries are skipped): :func:`kmseg._reduce.merge_histograms`."""
    return merge_histograms([p for p in parts if p is not None])


def hist_group(src: TiffSource, regions: list[Region], alpha: bool) -> tuple[np.ndarray, np.ndarray]:
    """Exact colour histogram of several regions together: ``(codes, counts)``, codes sorted.

    Each region is counted by the same radix histogram as an in-memory image
    (:func:`kmseg._reduce.color_histogram`), and the sorted results are merged.
    """
    return merge_histograms([color_histogram(*read_split(src, region, alpha)[1:]) for region in regions])


def paint_hist_chunk(src: TiffSource, region: Region, alpha: bool, tables: tuple[np.ndarray, np.ndarray],
                     colors: np.ndarray, tile: tuple[int, int], label_dtype: str) -> tuple[list[bytes], list[bytes]]:
    """Label and paint one region through the code -> label tables (``_reduce.label_tables``).

    The same fused kernel as :func:`kmseg._reduce.paint`, with the tables built once per job
    rather than once per region. ``colors`` are in the pixels' working dtype. Returns the
    region's compressed tiles of the label image and of the painted image.
    """
    img, pixels, mask = read_split(src, region, alpha)
    labels = np.empty(img.shape[:2], dtype=np.int32)
    out = _canvas(img, pixels)
    K.paint_codes(pixels, _mask_arg(mask), tables[0], tables[1], COARSE_BITS, colors, labels, out)
    out = painted(out, img, pixels.shape[2])
    return encode_tiles(label_image(labels, np.dtype(label_dtype)), tile), encode_tiles(out, tile)


# --------------------------------------------------------------------------- other data: Lloyd on pixels


def each(fn, src: TiffSource, regions: list[Region], alpha: bool, *args):
    """``fn`` on several regions in turn, in one task: fewer, longer tasks for light passes."""
    return [fn(src, r, alpha, *args) for r in regions]


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _hash_unit(idx: np.ndarray, key: int) -> np.ndarray:
    """A uniform number in [0, 1) for every index (SplitMix64 of ``idx`` and ``key``)."""
    with np.errstate(over="ignore"):
        z = idx.astype(np.uint64) * _GOLDEN + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def sample_chunk(src: TiffSource, region: Region, alpha: bool, space: str, vmax: float | None, p: float, key: int):
    """Count, feature sums and sums of squares of the region's clustered pixels, a sample, and
    the least and greatest of their colour values.

    A pixel is in the sample when the hash of its index in the whole image (and ``key``) is
    below ``p``: the sample does not depend on how the image is cut into regions. Returns
    ``(n, sum, sumsq, index, values, extent)`` with the sampled pixels' colour values (in their
    working dtype, see :func:`read_split`), and
    ``extent``, ``(min, max)`` over every colour band of the clustered pixels (None when there
    are none), from which the driver finds the image's display range.
    """
    _, pixels, mask = read_split(src, region, alpha)
    X = _features(pixels, mask, space, vmax).astype(np.float64)
    idx = _flat_index(region, src.width, mask)
    flat = pixels.reshape(-1, pixels.shape[2])
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    pick = slice(None) if p >= 1.0 else _hash_unit(idx, key) < p
    extent = (float(flat.min()), float(flat.max())) if flat.size else None
    return X.shape[0], X.sum(axis=0), (X * X).sum(axis=0), idx[pick], np.array(flat[pick]), extent


def lloyd_chunk(src, region, alpha, space, vmax, C):
    """One Lloyd step on the region: per-cluster sums ``(k, nf)`` and counts ``(k,)``.

    Uses the engine's own kernel, so the sums are made in the same fixed blocks of points.
    """
    _, pixels, mask = read_split(src, region, alpha)
    X = _features(pixels, mask, space, vmax)
    n = X.shape[0]
    k, nf = C.shape
    nch = K.n_chunks(n)
    p_sums = np.empty((nch, k, nf))
    p_counts = np.empty((nch, k))
    p_changed = np.empty(nch, dtype=np.int64)
    if n:
        K.lloyd_step(X, np.empty(0), C, np.full(n, -1, dtype=np.int32), p_sums, p_counts, p_changed)
    else:
        p_sums[:] = 0.0
        p_counts[:] = 0.0
    return p_sums.sum(axis=0), p_counts.sum(axis=0)


def far_chunk(src, region, alpha, space, vmax, C, m):
    """The region's ``m`` costliest distinct points (see :func:`farthest_distinct`): ``(d2, points)``."""
    _, pixels, mask = read_split(src, region, alpha)
    X = _features(pixels, mask, space, vmax)
    labels = np.empty(X.shape[0], dtype=np.int32)
    d2 = np.empty(X.shape[0])
    if X.shape[0]:
        K.assign(X, C, labels, d2)
    chosen = farthest_distinct(X, d2, m)
    return d2[chosen], X[chosen]


def final_pixels_chunk(src, region, alpha, space, vmax, C, colors, tile, label_dtype):
    """Label the region with the final centres and paint it (``colors`` in the pixels' working dtype).

    Returns the compressed tiles of the label image and of the painted image, the region's
    per-cluster counts and its share of the inertia.
    """
    img, pixels, mask = read_split(src, region, alpha)
    X = _features(pixels, mask, space, vmax)
    k = C.shape[0]
    lab = np.empty(X.shape[0], dtype=np.int32)
    d2 = np.empty(X.shape[0])
    if X.shape[0]:
        K.assign(X, C, lab, d2)
    h, w = img.shape[:2]
    labels = np.full((h, w), -1, dtype=np.int32)
    if mask is None:
        labels.reshape(-1)[:] = lab
    else:
        labels[mask] = lab
    out = _canvas(img, pixels)
    K.paint_labels(labels, colors, pixels, out)
    out = painted(out, img, pixels.shape[2])
    tiles = (encode_tiles(label_image(labels, np.dtype(label_dtype)), tile), encode_tiles(out, tile))
    return tiles[0], tiles[1], np.bincount(lab, minlength=k).astype(np.int64), float(d2.sum())


# --------------------------------------------------------------------------- warnings of a task

_task = threading.local()  # .messages: the list the running task's warnings go to, or None
_hook_lock = threading.Lock()
_hooked = False


def _install_warning_hook() -> None:
    """Once per worker process: kmseg's warnings raised by a task running ``task_warnings``
    go to that task's list instead of the worker's stderr (or log); other warnings, and
    kmseg's outside such a task, are shown as before. Per thread, so tasks running side by
    side in one worker keep theirs apart (``warnings.catch_warnings`` is not thread-safe)."""
    global _hooked
    with _hook_lock:
        if _hooked:
            return
        shown = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):  # type: ignore[no-untyped-def]
            messages = getattr(_task, "messages", None)
            if messages is not None and issubclass(category, (ConvergenceWarning, ReadWarning)):
                messages.append((category.__name__, str(message)))
            else:
                shown(message, category, filename, lineno, file, line)

        warnings.showwarning = showwarning
        # Every occurrence, not once per code location: each file's warning is its own.
        warnings.filterwarnings("always", category=ConvergenceWarning)
        warnings.filterwarnings("always", category=ReadWarning)
        _hooked = True


def worker_warning(path: str, category: str, message: str) -> tuple[type[Warning], str]:
    """A warning of :func:`task_warnings` for the client: its class, and its message naming
    ``path`` (a message about a file names it already)."""
    cls = ReadWarning if category == ReadWarning.__name__ else ConvergenceWarning
    return cls, naming(f"{path}: ", message)


@contextmanager
def task_warnings() -> Iterator[list[tuple[str, str]]]:
    """The kmseg warnings raised in this thread while the block runs, as (category name, message).

    They travel back with the task's result, so that the client shows them as the in-memory
    path does (``kmseg: warning: FILE: message`` on the command line, a warning in Python)
    instead of leaving them in a worker's output, with a source line, or on another machine.
    """
    _install_warning_hook()
    messages: list[tuple[str, str]] = []
    _task.messages = messages
    try:
        yield messages
    finally:
        _task.messages = None


# --------------------------------------------------------------------------- batches


def client_path(path: str, cwd: str) -> str:
    """``path`` as the client meant it: a relative path is relative to the client's working
    folder ``cwd``, which a worker's need not be (workers started from another folder, as
    ``dask worker`` often is). Unchanged where the worker's folder is the client's (a local
    cluster), so that outputs and messages name the files as the caller did."""
    if os.path.isabs(path):
        return path
    try:
        here = os.getcwd()
    except OSError:  # the worker's folder is gone
        here = None
    return path if here == cwd else os.path.join(cwd, path)


def batch_one(path: str, stem: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Segment one file (or label it with ``opts["palette"]``) and write its outputs, as the
    CLI's own ``run_one`` does.

    ``path`` and ``opts["out"]`` are the client's (:func:`client_path`); ``opts["cli"]``: the
    command line's batch, whose errors are worded for it (``save_one``). A file that fails
    (unreadable, corrupt, outputs exist...) returns ``ok: False`` with the error's first line,
    so that it fails alone. kmseg's warnings come back under ``warnings``.
    """
    from .cli import UsageError, error_line, save_one, segment_file

    t0 = time.perf_counter()
    args = argparse.Namespace(**opts)
    with task_warnings() as messages:
        try:
            seg = segment_file(client_path(path, opts["cwd"]), args)
            entry = save_one(seg, path, stem, out=client_path(opts["out"], opts["cwd"]), disable=opts["disable"],
                             masks=opts["masks"], force=opts["force"], t0=t0, usage=opts["cli"])
        except UsageError as exc:
            entry = {"input": path, "ok": False, "error": str(exc), "usage_error": True}
        except (KmsegError, OSError) as exc:
            entry = {"input": path, "ok": False, "error": error_line(exc)}
    if messages:
        entry["warnings"] = messages
    return entry


def _as_rgb(prep, grey: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(original, pixels, codes, weights) of a prepared 8-bit image, grey replicated to RGB
    (unless ``grey``: the palette is grey, fitted on grey images only, as they are)."""
    red = prep.reduced
    if red.kind != "histogram" or red.value_bits != 8 or prep.dtype != np.uint8 or prep.n_channels not in (1, 3):
        raise InvalidImageDataError(
            f"{prep.source}: is {prep.dtype} with {prep.n_channels} colour channels; a shared palette "
            "needs 8-bit grey or RGB images, so convert it or segment it without --shared-palette"
        )
    if grey and prep.n_channels != 1:
        raise InvalidImageDataError(
            f"{prep.source}: is RGB, but the shared palette is grey (every other file is grey); segment it "
            "apart from them, or convert it to grey"
        )
    image, pixels, codes = prep.image, prep.pixels, red.codes
    if prep.n_channels == 1 and not grey:
        pixels = np.repeat(pixels, 3, axis=2)
        codes = codes * 0x010101
        image = grey_as_rgb(image)
    return image, pixels, codes, red.weights


def shared_hist(path: str, max_pixels: int | None, cwd: str,
                plane: int | None = None) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """The RGB colour histogram of one image, for a shared palette (grey replicated to RGB),
    and whether the image is grey.

    None when the file cannot be used: its labelling task reports why, so no error travels
    (or is logged) here. ``cwd``: see :func:`client_path`.
    """
    from .segment import prepare

    try:
        prep = prepare(client_path(path, cwd), color_space="rgb", max_pixels=max_pixels, plane=plane)
        _, _, codes, weights = _as_rgb(prep)
    except (KmsegError, OSError):
        return None
    return codes, weights.astype(np.int64), prep.n_channels == 1


def merge_shared(*parts: tuple[np.ndarray, np.ndarray, bool] | None) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """Sum the histograms of :func:`shared_hist` (or of this), and whether all their images are grey."""
    parts_ = [p for p in parts if p is not None]
    if not parts_:
        return None
    return (*merge_histograms([(c, n) for c, n, _ in parts_]), all(g for _, _, g in parts_))


def shared_label(
    path: str, stem: str, shared: dict[str, Any] | None, tables: tuple[np.ndarray, np.ndarray] | None,
    opts: dict[str, Any],
) -> dict[str, Any]:
    """Label one image with the shared palette, write its outputs; a summary dict as ``run_one``.

    ``shared`` is None when no file gave any pixel to fit on. ``path`` and ``opts["out"]`` are
    the client's (:func:`client_path`).
    """
    from .cli import UsageError, error_line, save_one
    from ._engine import cluster_weights, inertia_of
    from .segment import Segmentation, prepare

    t0 = time.perf_counter()
    try:
        where = client_path(path, opts["cwd"])
        prep = prepare(where, color_space="rgb", max_pixels=opts["max_pixels"], plane=opts["plane"])
        if shared is None or tables is None:
            _as_rgb(prep)  # a file that cannot take part says so first
            raise InvalidImageDataError(f"{path}: no file of the batch has opaque pixels; there is nothing to cluster")
        n_channels = shared["centers"].shape[1]
        image, pixels, codes, weights = _as_rgb(prep, grey=n_channels == 1)
        space = shared["color_space"]
        k = shared["centers"].shape[0]
        lut, coarse = tables
        point_labels = lut[codes].astype(np.int32)
        points = to_features(decode(codes, n_channels), space, 255.0)
        inertia = inertia_of(points, weights, shared["features"], point_labels)
        counts = cluster_weights(point_labels, weights, k)
        h, w = pixels.shape[:2]
        labels = np.empty((h, w), dtype=np.int32)
        grey_out = image.ndim == 2
        out = np.empty((h, w, 1 if grey_out else image.shape[2]), dtype=np.uint8)
        K.paint_codes(pixels, _mask_arg(prep.mask), lut, coarse, COARSE_BITS, shared["colors"], labels, out)
        if out.shape[2] > n_channels:
            out[..., n_channels:] = image[..., n_channels:]
        seg = Segmentation(
            labels=labels, centers=shared["centers"], inertia=inertia, n_iter=shared["n_iter"], counts=counts,
            converged=shared["converged"], color_space=space, original=image, painted=out[..., 0] if grey_out else out,
            n_channels=n_channels, source=where, space_centers=shared["features"], plane=opts["plane"],
        )
        return save_one(seg, path, stem, out=client_path(opts["out"], opts["cwd"]), disable=opts["disable"],
                        masks=opts["masks"], force=opts["force"], t0=t0, usage=opts["cli"])
    except UsageError as exc:
        return {"input": path, "ok": False, "error": str(exc), "usage_error": True}
    except (KmsegError, OSError) as exc:
        return {"input": path, "ok": False, "error": error_line(exc)}
