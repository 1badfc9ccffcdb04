"""The kmseg web app: the page at ``/`` and a JSON API under ``/api``.

:func:`create_app` builds a FastAPI application. The API is documented in the OpenAPI
schema it serves at ``/openapi.json``. Everything heavy (decoding, reducing, clustering,
PNG encoding) runs in worker threads, never on the event loop.

Work is not repeated. An upload is decoded and reduced once: the :class:`~kmseg.Prepared`
is kept in a thread-safe LRU cache bounded by memory, keyed by the SHA-256 of the file's
bytes, the plane read (of a TIFF stack, or an animation's frame; None for the file's own
image) and the colour space (the SHA-256 is the ``upload_id`` the client sends back to
segment the same image again with another K). The cache keeps decoded planes, not files: a
plane not decoded yet needs the file sent again. Results are kept in a second bounded cache
and their images are rendered on request, by id.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import weakref
import zipfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar

import numpy as np
from anyio import CapacityLimiter, to_thread
from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__, _display, data
from ..errors import ImageTooLargeError, KmsegError, NotAnImageError
from ..io import (
    PLANE_FIX, _check_plane, _encode, count_planes, encode_image, palette_bytes, read_notes, stack_refused,
)
from ..segment import Prepared, Segmentation, fewer_colours, output_suffix, prepare

__all__ = ["LRUCache", "WebState", "create_app"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

K_MAX = 64  # largest k the API accepts
ELBOW_K_MAX = 32
#: The form fields each POST endpoint takes (any other is refused with 422), in its signature's order.
SEGMENT_FIELDS = ("file", "upload_id", "plane", "k", "color_space", "seed", "n_init", "disable")
ELBOW_FIELDS = ("file", "upload_id", "plane", "k_max", "color_space", "seed", "n_init")
_MB = 1024 * 1024
_UPLOAD_ID = re.compile(r"[0-9a-f]{64}")
_ColorSpace = Literal["rgb", "lab", "hsv"]
#: The palette files of a result besides palette.json (kmseg.io.palette_bytes), and their media types.
PALETTE_MEDIA = {
    "gpl": "text/plain; charset=utf-8",  # GIMP palette: text, shown inline unless ?download=1
    "ase": "application/octet-stream",  # Adobe Swatch Exchange: binary
    "css": "text/css; charset=utf-8",
    "png": "image/png",
}
_PaletteSuffix = Literal[tuple(PALETTE_MEDIA)]  # type: ignore[valid-type]
_SampleName = Literal[data.NAMES]  # type: ignore[valid-type]


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


# --------------------------------------------------------------------------- caches


class LRUCache(Generic[K, V]):
    """A thread-safe least-recently-used cache bounded by total size and entry count.

    :meth:`get_or_create` runs the factory once per key even when several threads ask for
    the same missing key at once: the others wait for the first and share its value (or
    its exception). A value larger than ``max_bytes`` is returned but not kept.
    """

    def __init__(
        self,
        *,
        max_bytes: int | None = None,
        max_entries: int | None = None,
        sizeof: Callable[[V], int] = lambda value: 0,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._sizeof = sizeof
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._inflight: dict[K, Future[V]] = {}
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.joins = 0
        self.evictions = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def find(self, predicate: Callable[[K], bool]) -> V | None:
        """The most recently used value whose key satisfies ``predicate``; counts nothing."""
        with self._lock:
            for key in reversed(self._data):
                if predicate(key):
                    return self._data[key][0]
        return None

    def values(self, predicate: Callable[[K], bool]) -> list[V]:
        """Every value whose key satisfies ``predicate``; counts nothing."""
        with self._lock:
            return [value for key, (value, _) in self._data.items() if predicate(key)]

    def put(self, key: K, value: V) -> None:
        size = self._sizeof(value)
        with self._lock:
            self._put_locked(key, value, size)

    def _put_locked(self, key: K, value: V, size: int) -> None:
        if self.max_bytes is not None and size > self.max_bytes:
            return
        old = self._data.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        self._data[key] = (value, size)
        self.bytes += size
        while self._data and (
            (self.max_bytes is not None and self.bytes > self.max_bytes)
            or (self.max_entries is not None and len(self._data) > self.max_entries)
        ):
            _, (_, dropped) = self._data.popitem(last=False)
            self.bytes -= dropped
            self.evictions += 1

    def get_or_create(self, key: K, factory: Callable[[], V]) -> tuple[V, bool]:
        """The value for ``key``, made by ``factory()`` if missing; also whether it was made here."""
        with self._lock:
            item = self._data.get(key)
            if item is not None:
                self._data.move_to_end(key)
                self.hits += 1
                return item[0], False
            future = self._inflight.get(key)
            owner = future is None
            if owner:
                future = self._inflight[key] = Future()
                self.misses += 1
            else:
                self.joins += 1
        assert future is not None
        if not owner:
            return future.result(), False
        try:
            value = factory()
        except BaseException as exc:
            with self._lock:
                del self._inflight[key]
            future.set_exception(exc)
            raise
        size = self._sizeof(value)
        with self._lock:
            self._put_locked(key, value, size)
            del self._inflight[key]
        future.set_result(value)
        return value, True

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0

    def stats(self) -> dict[str, int | None]:
        with self._lock:
            return {
                "entries": len(self._data),
                "bytes": self.bytes,
                "max_bytes": self.max_bytes,
                "max_entries": self.max_entries,
                "hits": self.hits,
                "misses": self.misses,
                "joins": self.joins,
                "evictions": self.evictions,
            }


def _numba_thread_safe() -> bool:
    """Whether numba's threading layer takes calls from several threads at once (False if unknown)."""
    try:
        import numba

        return numba.threading_layer() != "workqueue"
    except Exception:  # not initialised yet (no parallel kernel has run), or no numba
        return False


class ComputeGate:
    """Bounds how many decodes and fits run at once.

    One at a time until numba reports its threading layer: its ``workqueue`` layer aborts
    the process when two threads call parallel kernels concurrently. ``tbb`` and ``omp``
    are thread-safe, and then up to ``slots`` run at once.
    """

    def __init__(self, slots: int) -> None:
        self.slots = max(1, int(slots))
        self._limit = 1
        self._busy = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._cond:
            while self._busy >= self._limit:
                self._cond.wait()
            self._busy += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy -= 1
                if self._limit < self.slots and _numba_thread_safe():
                    self._limit = self.slots
                self._cond.notify_all()


# --------------------------------------------------------------------------- state


@dataclass
class Upload:
    """A decoded, reduced upload (one plane of it) in one colour space."""

    upload_id: str
    name: str
    prepared: Prepared
    planes: int = 1  # the planes or frames of the file (kmseg.io.count_planes)
    plane_kind: Literal["plane", "frame"] = "frame"
    notes: list[str] = field(default_factory=list)  # what reading it said (kmseg.io.read_notes)

    @property
    def nbytes(self) -> int:
        return self.prepared.nbytes

    @property
    def plane(self) -> int | None:
        """The plane read (``plane=``), or None for the file's own image."""
        return self.prepared.plane

    @property
    def facts(self) -> dict[str, Any]:
        """The file's planes, as an answer gives them."""
        return {"planes": self.planes, "plane_kind": self.plane_kind}


@dataclass
class Result:
    """One segmentation, kept so that its images can be fetched by id."""

    result_id: str
    upload_id: str
    name: str
    seg: Segmentation
    seed: int
    has_alpha: bool  # the image's last channel is alpha

    @property
    def nbytes(self) -> int:
        s = self.seg  # the label map, the painted image and the original it keeps alive
        return s.nbytes

    @property
    def stem(self) -> str:
        """The downloads' names, without their kind: ``NAME-kK``, ``NAME-planeN-kK`` for a plane
        picked, as ``kmseg segment --plane N`` names its outputs ``NAME-planeN-...``."""
        plane = "" if self.seg.plane is None else f"-plane{self.seg.plane}"
        return f"{Path(self.name).stem or 'image'}{plane}-k{self.seg.k}"


@dataclass
class Curve:
    ks: list[int]
    inertias: list[float]
    knee: int | None


def _display_name(filename: str | None) -> str:
    """A harmless label for an uploaded file: its base name, in safe characters."""
    base = re.split(r"[\\/]", filename or "")[-1].strip()
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80]
    return base or "image"


class Refusal(HTTPException):
    """An HTTP error whose JSON carries facts for a client beside its ``detail``: the planes of a
    file (``{"detail": "...", "planes": 12, "plane_kind": "plane"}``), so that a page can offer them."""

    def __init__(self, status_code: int, detail: str, facts: dict[str, Any] | None = None) -> None:
        super().__init__(status_code, detail)
        self.facts = dict(facts or {})


def _plane_facts(path: str, plane: int | None) -> dict[str, Any]:
    """The planes of the file at ``path`` for an error about it: when it has more than one, or a
    plane was asked for; none when they cannot be counted (not an image, corrupt)."""
    try:
        n, kind = count_planes(path)
    except KmsegError:
        return {}
    return {"planes": n, "plane_kind": kind} if n > 1 or plane is not None else {}


def _status_for(exc: KmsegError) -> int:
    if isinstance(exc, ImageTooLargeError):
        return 413
    if isinstance(exc, NotAnImageError):
        return 415
    return 422


def _web_wording(exc: KmsegError) -> str:
    """A library error as the page shows it: a web user cannot pass ``max_pixels=``, so an
    image over the limit is told to choose a smaller one or restart the server with a larger
    ``--max-pixels``; nor has a path to check, so a file that is not an image is told to
    choose an image file; and a stack's planes are picked with the form field ``plane``."""
    if isinstance(exc, ImageTooLargeError) and exc.pixels:
        return (f"{exc.problem}; choose a smaller image, or restart the server with a larger limit: "
                f"kmseg serve --max-pixels {exc.pixels}")
    if isinstance(exc, NotAnImageError):  # a web user has no path to check
        return str(exc).replace("so check the path or convert the file to PNG",
                                "so choose an image file, or convert this one to PNG")
    if PLANE_FIX in str(exc):  # a stack without a plane, or a plane out of range: the form field plane
        return str(exc).replace(PLANE_FIX, "pass plane=N")
    return str(exc)


def _mb(n: int) -> str:
    return f"{n / _MB:g} MB"


class WebState:
    """Caches, limits and counters of one app; the app keeps it as ``app.state.kmseg``."""

    def __init__(
        self,
        *,
        max_upload_bytes: int = 50 * _MB,
        max_pixels: int | None = None,
        cache_bytes: int = 1024 * _MB,
        result_bytes: int = 512 * _MB,
        max_results: int = 64,
        compute_slots: int | None = None,
    ) -> None:
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_pixels = max_pixels
        # keyed by (upload_id, plane, colour space)
        self.uploads: LRUCache[tuple[str, int | None, str], Upload] = LRUCache(max_bytes=cache_bytes,
                                                                               sizeof=lambda u: u.nbytes)
        self.results: LRUCache[str, Result] = LRUCache(
            max_bytes=result_bytes, max_entries=max_results, sizeof=lambda r: r.nbytes
        )
        self.curves: LRUCache[tuple[Any, ...], Curve] = LRUCache(max_entries=128)
        slots = compute_slots if compute_slots is not None else min(4, os.cpu_count() or 1)
        self.gate = ComputeGate(slots)
        # Requests wait for a compute slot on the event loop, not in a worker thread, so
        # that queued work never holds the threads that render PNGs and answer quick calls.
        self.compute_limiter = CapacityLimiter(self.gate.slots)
        self._counts = {"decodes": 0, "prepares": 0, "segmentations": 0, "elbows": 0}
        self._count_lock = threading.Lock()
        self.tmpdir = tempfile.mkdtemp(prefix="kmseg-web-")  # private (0700); uploads are written here
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.tmpdir, True)

    # ----------------------------------------------------------------- bookkeeping

    def _count(self, name: str) -> None:
        with self._count_lock:
            self._counts[name] += 1

    @property
    def counts(self) -> dict[str, int]:
        """How many times each piece of work ran: decodes, prepares, segmentations, elbows."""
        with self._count_lock:
            return dict(self._counts)

    def stats(self) -> dict[str, Any]:
        return {"uploads": self.uploads.stats(), "results": self.results.stats(), **self.counts}

    def close(self) -> None:
        self.uploads.clear()
        self.results.clear()
        self.curves.clear()
        self._finalizer()

    def warm_up(self) -> None:
        """Load the compiled kernels with a tiny segmentation, so the first request is quick."""
        try:
            rng = np.random.default_rng(0)
            img = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
            with self.gate.hold():
                prepare(img).segment(3, seed=0, n_init=1)
        except Exception:  # only an optimisation: a real request will report any problem
            pass

    # ----------------------------------------------------------------- uploads

    def _too_big(self) -> HTTPException:
        return HTTPException(
            413,
            f"the upload is larger than the limit of {_mb(self.max_upload_bytes)}; choose a smaller "
            "image, or start the server with a larger --max-upload-mb",
        )

    def _prepare(self, other: Upload, color_space: str) -> Upload:
        """An upload decoded earlier (the same plane), reduced in another colour space; its alpha as the file said."""
        image, name = other.prepared.image, other.name
        try:
            # (decoded already, channels last: never taken for channels first)
            prep = prepare(image, color_space=color_space, alpha=other.prepared.has_alpha,
                           channel_axis=-1 if image.ndim == 3 else None)
        except KmsegError as exc:
            raise Refusal(_status_for(exc), f"{name}: {exc}", other.facts if other.planes > 1 else None) from None
        prep.source, prep.plane = name, other.plane  # the file's, as a file read with plane= records them
        self._count("prepares")
        return Upload(other.upload_id, name, prep, other.planes, other.plane_kind, other.notes)

    def _upload(self, upload_id: str, plane: int | None, color_space: str,
                decode: Callable[[], Upload] | None) -> tuple[Upload, bool]:
        """The cached upload of this plane in this colour space; else re-reduce a cached one of
        this plane in another space (no decoding); else ``decode()``; else 404 (422 for a plane
        the file does not have)."""

        def create() -> Upload:
            with self.gate.hold():
                other = self.uploads.find(lambda key: key[0] == upload_id and key[1] == plane)
                if other is not None:
                    return self._prepare(other, color_space)
                if decode is None:
                    self._not_decoded(upload_id, plane)
                return decode()

        upload, created = self.uploads.get_or_create((upload_id, plane, color_space), create)
        return upload, not created

    def _not_decoded(self, upload_id: str, plane: int | None) -> None:
        """Refuse an upload_id whose plane is not decoded here: 404, send the file again (the
        server keeps decoded planes, not files); 422 for a plane the file does not have, known
        from another plane of it decoded here."""
        known = self.uploads.find(lambda key: key[0] == upload_id)
        if known is None:
            raise HTTPException(
                404,
                f"upload_id {upload_id} is not known to this server (uploads are kept in memory "
                "for a while only); send the file again",
            )
        facts = known.facts
        if plane is None and known.plane_kind == "plane" and known.planes > 1:
            raise Refusal(422, _web_wording(stack_refused(known.name, known.planes)), facts)
        if plane is not None:
            try:
                _check_plane(known.name, plane, known.planes, known.plane_kind)
            except KmsegError as exc:
                raise Refusal(_status_for(exc), _web_wording(exc), facts) from None
        which = f"plane {plane} of {known.name}" if plane is not None else f"{known.name} without a plane"
        again = f"send the file again with plane={plane}" if plane is not None else "send the file again"
        raise Refusal(
            404,
            f"upload_id {upload_id}: {which} is not decoded on this server, which keeps the planes it decoded "
            f"but not the file; {again}",
            facts,
        )

    def ingest(self, upload: UploadFile, plane: int | None, color_space: str) -> tuple[Upload, bool]:
        """Hash an uploaded file; decode it through a private temporary file unless cached.

        Returns the upload and whether it came from the cache. Blocking: run it in a thread.
        """
        name = _display_name(upload.filename)
        f = upload.file
        f.seek(0)
        digest = hashlib.sha256()
        size = 0
        while chunk := f.read(_MB):
            size += len(chunk)
            if size > self.max_upload_bytes:
                raise self._too_big()
            digest.update(chunk)
        if size == 0:
            raise HTTPException(422, f"{name}: the uploaded file is empty; choose an image file")
        upload_id = digest.hexdigest()

        def decode() -> Upload:
            # prepare() of the file, as `kmseg segment` does: the file says whether it has alpha
            # (a 4-band TIFF without alpha is clustered on its 4 bands), so the result, and its
            # palette.json, are the command line's (with --plane N for plane=N).
            f.seek(0)
            with tempfile.NamedTemporaryFile(dir=self.tmpdir, prefix="upload-", suffix=".bin") as tmp:
                shutil.copyfileobj(f, tmp, _MB)
                tmp.flush()
                try:
                    with read_notes() as notes:  # a TIFF of several images: said on the page, not in the log
                        prep = prepare(tmp.name, color_space=color_space, max_pixels=self.max_pixels, plane=plane)
                    planes, kind = count_planes(tmp.name)  # read from its structure, not its pixels
                except KmsegError as exc:  # name the upload, not the temporary file
                    raise Refusal(_status_for(exc), _web_wording(exc).replace(tmp.name, name),
                                  _plane_facts(tmp.name, plane)) from None
            prep.source = name  # what the summary's "source" gives: the upload's name, not the temporary file
            self._count("decodes")
            self._count("prepares")
            return Upload(upload_id, name, prep, planes, kind, [n.replace(tmp.name, name) for n in notes])

        upload, cached = self._upload(upload_id, plane, color_space, decode)
        if cached and upload.name != name:
            # The same bytes under another name: the results made from now on, and their
            # downloads and palette.json, are named after the file as it was last sent.
            for same in self.uploads.values(lambda key: key[0] == upload_id):
                same.name = name
        return upload, cached

    def lookup(self, upload_id: str, plane: int | None, color_space: str) -> tuple[Upload, bool]:
        """An earlier upload by id; 404 if it (this plane of it) is no longer cached. Blocking."""
        upload_id = upload_id.strip().lower()
        if not _UPLOAD_ID.fullmatch(upload_id):
            raise HTTPException(
                422, f"upload_id={upload_id[:80]!r} is not valid; pass the upload_id returned by an earlier request"
            )
        return self._upload(upload_id, plane, color_space, None)

    # ----------------------------------------------------------------- work

    def segment(self, upload: Upload, k: int, seed: int, n_init: int) -> tuple[Result, list[str]]:
        """Segment a cached upload and keep the result. Blocking."""
        prep = upload.prepared
        notes = list(upload.notes)
        try:
            with self.gate.hold():
                seg = prep.segment(k, seed=seed, n_init=n_init, warn=False)
            if seg.k < k:
                notes.append(f"{fewer_colours(seg.k, k)}; one cluster per colour")
        except KmsegError as exc:
            raise HTTPException(_status_for(exc), f"{upload.name}: {exc}") from None
        seg.source = upload.name  # its palette.json's "source": the upload's name, as a file's path on the command line
        self._count("segmentations")
        result = Result(secrets.token_urlsafe(16), upload.upload_id, upload.name, seg, seed, prep.has_alpha)
        self.results.put(result.result_id, result)
        return result, notes

    def elbow(self, upload: Upload, k_max: int, seed: int, n_init: int) -> tuple[Curve, bool]:
        """Inertia for k = 1..k_max and the knee, cached per upload and options. Blocking."""
        key = (upload.upload_id, upload.plane, upload.prepared.color_space, k_max, seed, n_init)

        def create() -> Curve:
            try:
                from .._elbow import elbow
            except ImportError:
                raise HTTPException(501, "the elbow sweep is not available in this kmseg install") from None
            try:
                with self.gate.hold():
                    res = elbow(upload.prepared, ks=range(1, k_max + 1), seed=seed, n_init=n_init, warn=False)
            except KmsegError as exc:
                raise HTTPException(_status_for(exc), f"{upload.name}: {exc}") from None
            self._count("elbows")
            knee = None if res.knee is None else int(res.knee)
            return Curve([int(k) for k in res.ks], [float(v) for v in res.inertias], knee)

        curve, created = self.curves.get_or_create(key, create)
        return curve, not created

    def result(self, result_id: str) -> Result:
        res = self.results.get(result_id)
        if res is None:
            raise HTTPException(
                404, f"result {result_id[:80]!r} is not known to this server (results are kept for a while only); segment again"
            )
        return res


# --------------------------------------------------------------------------- encoding


def _png(arr: np.ndarray, has_alpha: bool, strategy: str = "default", width: int | None = None,
         vrange: tuple[float, float] | None = None) -> bytes:
    """An 8-bit PNG at zlib level 3 of the bands shown (grey, grey+alpha, RGB or RGBA), encoded
    as ``save_image`` encodes; reduced to ``width`` pixels wide when it is wider (a preview).
    ``vrange``: the values shown as black and white, the input's display range for an image made
    from it (default: ``arr``'s own). ``strategy="rle"`` for a photo's own pixels (the masked
    image, the cut-outs) and the label map: as small as the default, in a half to a third of the time."""
    factor = arr.shape[1] / width if width else 1.0
    return _encode("response", _display.shown(arr, has_alpha, factor, vrange), "PNG", 3, strategy)


def _palette(seg: Segmentation) -> list[dict[str, Any]]:
    """``seg.palette()``, each entry with its centre's ``values``: one per colour band (alpha
    left out), in the input's dtype, as the segmented TIFF holds them (rounded for an integer
    dtype). The display colour (``rgb``, ``hex``) shows some bands only: the first of two, or
    the first three of more; the values show them all, as palette.json's ``centers`` do."""
    values = _display.to_dtype(seg.centers, seg.original.dtype).tolist()
    return [{**entry, "values": values[entry["index"]]} for entry in seg.palette()]


def _parse_disable(text: str | None, k: int | None = None) -> list[int]:
    """``"1,3"`` -> [1, 3]; empty -> []; 422 on anything else or an index >= k."""
    if text is None or not text.strip():
        return []
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not re.fullmatch(r"[0-9]{1,4}", part):
            raise HTTPException(
                422, f"disable={text[:80]!r} is not valid; pass cluster indices separated by commas, such as 0,2"
            )
        out.append(int(part))
    if k is not None:
        bad = [i for i in out if i >= k]
        if bad:
            raise HTTPException(422, f"disable={text!r} is out of range; this result has clusters 0 to {k - 1}")
    return sorted(set(out))


def _takes(names: Sequence[str]) -> str:
    """``names`` as a message lists them: ``a, b and c``."""
    return " and ".join(", ".join(names).rsplit(", ", 1))


def _shown(key: str, value: Any) -> str:
    """A parameter as a message shows it: ``seeed='3'``, or ``fil (a file)`` for an upload."""
    if isinstance(value, str):
        return f"{key[:40]}={value[:80]!r}"
    return f"{key[:40]} (a file)"


def _refuse_unknown(endpoint: str, names: Sequence[str], items: Sequence[tuple[str, Any]]) -> None:
    """422 for the first of ``items`` (name, value) not in ``names``: a parameter the endpoint
    does not take is refused, not ignored."""
    for key, value in items:
        if key not in names:
            raise HTTPException(
                422, f"{_shown(key, value)} is not a parameter of {endpoint}; leave it out "
                f"({endpoint} takes only {_takes(names)})"
            )


def _only_query(endpoint: str, *names: str) -> Any:
    """A dependency that refuses (422) any query parameter but ``names``, rather than ignore it
    (``?width=`` on the label map would otherwise be dropped without a word)."""

    def check(request: Request) -> None:
        _refuse_unknown(endpoint, names, request.query_params.multi_items())

    return Depends(check)


def _only_form(endpoint: str, *names: str) -> Any:
    """A dependency that refuses (422) any form field but ``names``, and any query parameter
    (the endpoint takes form fields only), rather than ignore them: a misspelt ``seeed=3``
    would otherwise give the default seed without a word. An empty number or colour space
    (``k=``) is refused too, not taken as its default. Runs before the endpoint, so
    nothing is decoded for a request that is refused."""

    async def check(request: Request) -> None:
        for key, value in request.query_params.multi_items():
            raise HTTPException(
                422, f"{_shown(key, value)} is in the URL's query, but {endpoint} takes form fields only; "
                f"send it in the form body ({endpoint} takes {_takes(names)})"
            )
        form = await request.form()  # parsed once: FastAPI parsed it already for the endpoint's fields
        _refuse_unknown(endpoint, names, form.multi_items())
        for key, value in form.multi_items():  # FastAPI would take an empty field as absent
            if value == "" and key in _NOT_EMPTY:
                raise HTTPException(422, f"{key}='' is empty; {_HINTS[key]}, or leave {key} out for its default")

    return Depends(check)


# --------------------------------------------------------------------------- API models


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong and how to fix it, in one sentence.")
    planes: int | None = Field(
        None, description="Only in an error about a file of several planes or frames (a TIFF stack sent without "
        "`plane`, a `plane` out of range): how many it has, numbered from 0."
    )
    plane_kind: Literal["plane", "frame"] | None = Field(
        None, description="With `planes`: `plane` for a TIFF's planes (a stack needs `plane`), `frame` for an "
        "animation's frames (the first is read without `plane`)."
    )


class HealthResponse(BaseModel):
    status: Literal["ok"]
    version: str = Field(description="kmseg's version.")
    max_upload_bytes: int = Field(description="Largest upload accepted, in bytes.")
    max_pixels: int | None = Field(description="Largest image accepted, in pixels (null: Pillow's default).")
    k_max: int = Field(description="Largest k /api/segment accepts.")


class PaletteEntry(BaseModel):
    index: int = Field(description="Cluster index: its value in the label map, and the number `disable` takes.")
    rgb: list[int] = Field(description="Centre colour, 0-255 per channel.")
    hex: str = Field(description="Centre colour as #rrggbb.")
    fraction: float = Field(description="Share of the (opaque) pixels in this cluster.")
    count: int = Field(description="Pixels in this cluster.")
    values: list[int | float] = Field(
        description="The centre in the input's units, one value per colour band (alpha left out), as the "
        "segmented TIFF holds it (rounded for an integer dtype); `rgb` and `hex` show only some bands of "
        "an image that is not grey or RGB (the first of two, the first three of more)."
    )


class ResultUrls(BaseModel):
    segmented: str = Field(description="PNG: every pixel painted in its cluster's colour (8-bit, on the display range).")
    segmented_tif: str = Field(
        description="TIFF: the same in the input's dtype (int16, float32, ...), its values kept; offered for every image."
    )
    labels: str = Field(description="PNG: 8-bit label map, value = cluster index, 255 = transparent pixel.")
    palette: str = Field(description="JSON: the run's summary and palette, the NAME-palette.json `kmseg segment` writes.")
    palette_gpl: str = Field(description="GIMP palette (GIMP, Inkscape, Krita), largest share first.")
    palette_ase: str = Field(description="Adobe Swatch Exchange: the palette as global RGB colours.")
    palette_css: str = Field(description="CSS custom properties --kmseg-0, --kmseg-1..., largest share first.")
    palette_png: str = Field(description="PNG: a swatch strip, one equal band per colour, largest share first.")
    masked: str = Field(
        description="PNG: the original with the `disable` clusters painted black; change the query "
        "`?disable=0,2` to hide others (no query: the original image)."
    )
    masked_tif: str = Field(description="TIFF: the masked image in the input's dtype, hidden pixels set to 0; same query.")
    clusters: list[str] = Field(
        description="PNG: RGBA cut-out of each cluster (transparent elsewhere), by index: `clusters[i]` is cluster i's."
    )
    clusters_zip: str = Field(description="ZIP of every cut-out.")


class SegmentResponse(BaseModel):
    upload_id: str = Field(description="Send it back instead of the file to segment the same image again.")
    result_id: str = Field(description="Id of this result; its files are under /api/result/{result_id}/.")
    name: str = Field(description="The upload's file name, made safe.")
    plane: int | None = Field(description="The plane (or frame) segmented, as sent; null when none was sent.")
    planes: int = Field(description="How many planes (a TIFF stack's) or frames (an animation's) the file has; 1 for "
                        "a single image.")
    plane_kind: Literal["plane", "frame"] = Field(
        description="`plane` for a TIFF (more than one: a stack, which needs `plane`), `frame` for other files "
        "(an animation's first frame is read without `plane`)."
    )
    width: int
    height: int
    k: int = Field(description="Clusters found (fewer than asked when the image has fewer colours).")
    k_requested: int
    color_space: str
    seed: int
    n_init: int
    inertia: float = Field(description="Sum of squared distances to the centres, in the clustering space.")
    n_iter: int
    converged: bool
    disable: list[int] = Field(description="Clusters hidden in the `masked` image.")
    palette: list[PaletteEntry] = Field(description="One entry per cluster, largest share first (ties by index).")
    bands: int = Field(description="Colour bands of the image, alpha left out: 1 grey, 3 RGB, or a TIFF's band count.")
    dtype: str = Field(description="The input's dtype (uint8, uint16, int16, float32, ...), which the TIFFs keep.")
    output_suffix: Literal[".png", ".tif"] = Field(
        description="`.tif` when a PNG cannot hold the image's values (not uint8 or uint16; 2 bands, 4 "
        "bands without alpha, or more bands): then `segmented_tif` and `masked_tif` are the downloads that keep them, as `kmseg segment` writes."
    )
    urls: ResultUrls
    cached: bool = Field(description="True when the decoded image came from the cache (no upload decoded).")
    seconds: float = Field(description="Server time spent on this request.")
    warnings: list[str] = Field(description="Notes, such as fewer distinct colours than k, or a TIFF holding more images than the one read.")


class ElbowResponse(BaseModel):
    upload_id: str
    plane: int | None = Field(description="The plane (or frame) swept, as sent; null when none was sent.")
    color_space: str
    seed: int
    ks: list[int] = Field(description="The values of k tried: 1..k_max.")
    inertias: list[float] = Field(description="Inertia of the best run for each k.")
    knee: int | None = Field(description="The k at the knee of the curve, or null if there is none.")
    cached: bool = Field(description="True when the curve came from the cache.")
    seconds: float


class CacheStats(BaseModel):
    entries: int
    bytes: int
    max_bytes: int | None
    max_entries: int | None
    hits: int
    misses: int
    joins: int = Field(description="Requests that waited for the same item being made by another request.")
    evictions: int


class StatsResponse(BaseModel):
    uploads: CacheStats = Field(description="Decoded, reduced uploads (one per upload_id, plane and colour space).")
    results: CacheStats
    decodes: int = Field(description="Uploads decoded from their bytes.")
    prepares: int = Field(description="Images reduced to their colour histogram (a decode, or a new colour space).")
    segmentations: int
    elbows: int


_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown upload_id (send the file again)."},
    413: {"model": ErrorResponse, "description": "Upload or image too large."},
    415: {"model": ErrorResponse, "description": "Not an image kmseg can read."},
    422: {"model": ErrorResponse, "description": "A bad or unknown parameter, or a corrupt image."},
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "Unknown result or cluster."}}
_BAD_QUERY: dict[int | str, dict[str, Any]] = {422: {"model": ErrorResponse, "description": "A bad or unknown parameter."}}
_PNG = {"content": {"image/png": {}}, "description": "A PNG image."}
_TIFF = {"content": {"image/tiff": {}}, "description": "A TIFF image (zlib) in the input's dtype."}

# Parameter types, at module level: FastAPI resolves the string annotations in this module's globals.
FileField = Annotated[
    UploadFile | None, File(description="The image (PNG, JPEG, GIF, BMP, WebP or TIFF). Or send upload_id.")
]
UploadIdField = Annotated[
    str | None, Form(max_length=200, description="upload_id from an earlier response, instead of the file.")
]
PlaneField = Annotated[
    int | None,
    Form(ge=0, description="Which plane of a TIFF stack (Z, T...), or frame of an animated GIF, WebP or PNG, to read, "
         "from 0. Needed for a stack; an animation's first frame is read without it."),
]
ColorField = Annotated[_ColorSpace, Form(description="Space to cluster in.")]
SeedField = Annotated[int, Form(ge=0, le=2**32 - 1, description="Random seed; the same seed gives the same result.")]
NInitField = Annotated[int, Form(ge=1, le=50, description="Restarts; the best is kept.")]
ResultId = Annotated[str, PathParam(max_length=64, description="result_id from /api/segment.")]
Download = Annotated[bool, Query(description="Send as an attachment (a download) rather than inline.")]
Width = Annotated[
    int | None,
    Query(
        ge=1,
        le=1 << 16,
        description="A preview at most this many pixels wide, reduced by area averaging (never enlarged). "
        "Leave it out for the full-size image.",
    ),
]


_HINTS = {
    "k": f"pass a whole number from 1 to {K_MAX}",
    "k_max": f"pass a whole number from 2 to {ELBOW_K_MAX}",
    "seed": "pass a whole number from 0 to 4294967295",
    "n_init": "pass a whole number from 1 to 50",
    "color_space": "use rgb, lab or hsv",
    "file": "send the image as a multipart file field named 'file'",
    "index": "pass a cluster index, a whole number",
    "upload_id": "pass the upload_id returned by an earlier request",
    "plane": "pass a plane's number, a whole number from 0",
    "result_id": "use the URLs returned by /api/segment",
    "disable": "pass cluster indices separated by commas, such as 0,2",
    "suffix": "ask for palette.gpl, palette.ase, palette.css or palette.png (or palette.json)",
    "width": "pass a width in pixels from 1 to 65536, or leave width out for the full-size image",
    "download": "pass download=1 for a download, or leave download out to show the file",
}


#: Form fields that may be left out but not sent empty (an empty ``disable`` hides nothing).
_NOT_EMPTY = ("k", "k_max", "seed", "n_init", "color_space", "plane")


def _validation_detail(exc: RequestValidationError) -> str:
    """FastAPI's list of validation errors -> one sentence per parameter."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x not in ("body", "query", "path", "form", "header")]
        name = loc[0] if loc else "request"
        hint = _HINTS.get(name, "check the request")
        if err.get("type") == "missing":
            parts.append(f"{name} is missing; {hint}")
            continue
        value = err.get("input")
        shown = repr(value) if isinstance(value, (str, int, float)) else type(value).__name__
        msg = str(err.get("msg", "is not valid"))
        parts.append(f"{name}={shown[:80]} is not valid ({msg[:1].lower()}{msg[1:]}); {hint}")
    return "; ".join(parts) or "the request is not valid"


# --------------------------------------------------------------------------- ASGI middleware


class _Guard:
    """Refuses oversized bodies (413) and unexpected Host headers (400), and adds security headers.

    The body limit is checked on Content-Length before anything is read, and again on the
    bytes as they arrive (for chunked uploads).
    """

    CSP = (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )

    def __init__(self, app: ASGIApp, *, max_body: int, too_big: str, allowed_hosts: Sequence[str] | None) -> None:
        self.app = app
        self.max_body = max_body
        self.too_big = too_big
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            hostname = host[: host.find("]") + 1] if host.startswith("[") else host.split(":")[0]
            if hostname.lower() not in self.allowed_hosts:
                await self._error(send, 400, f"Host {host[:80]!r} is not allowed; open the page at 127.0.0.1 or localhost")
                return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await self._error(send, 413, self.too_big)
            return
        received = 0
        limit = self.max_body
        too_big = self.too_big

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, too_big)
            return message

        async def secured_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                    (b"content-security-policy", self.CSP.encode()),
                ]
                message = {**message, "headers": list(message.get("headers", [])) + extra}
            await send(message)

        await self.app(scope, limited_receive, secured_send)

    @staticmethod
    async def _error(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        (b"connection", b"close")],
        })
        await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- the app


def create_app(
    *,
    max_upload_bytes: int = 50 * _MB,
    max_pixels: int | None = None,
    cache_bytes: int = 1024 * _MB,
    result_bytes: int = 512 * _MB,
    max_results: int = 64,
    compute_slots: int | None = None,
    allowed_hosts: Sequence[str] | None = None,
    warm_up: bool = True,
) -> FastAPI:
    """Build the kmseg web app.

    Parameters
    ----------
    max_upload_bytes : int
        Largest upload accepted (413 above it).
    max_pixels : int, optional
        Largest image accepted, in pixels, checked on the header before decoding (413 above
        it). Default: Pillow's limit.
    cache_bytes : int
        Memory for decoded, reduced uploads (the LRU cache of :class:`~kmseg.Prepared`).
    result_bytes, max_results : int
        Memory and count bound of the results kept for download.
    compute_slots : int, optional
        Decodes and fits that may run at once (default: CPU count, at most 4).
    allowed_hosts : sequence of str, optional
        Host names the ``Host`` header may carry (a guard against DNS rebinding when the
        server listens on loopback). None accepts any.
    warm_up : bool
        Load the compiled kernels in the background at startup.

    Returns
    -------
    FastAPI
        The app; its state is ``app.state.kmseg`` (a :class:`WebState`).
    """
    state = WebState(
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        cache_bytes=cache_bytes,
        result_bytes=result_bytes,
        max_results=max_results,
        compute_slots=compute_slots,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if warm_up:
            threading.Thread(target=state.warm_up, name="kmseg-warm-up", daemon=True).start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(
        title="kmseg",
        version=__version__,
        summary="Segment images by clustering their colours with exact K-means.",
        description="The JSON API behind kmseg's local web page (`kmseg serve`). Every error is "
        '`{"detail": "..."}` with a one-sentence message. Images are sent as multipart uploads; '
        "results are fetched by id.",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load scripts from a CDN; the schema is at /openapi.json
        redoc_url=None,
    )
    app.state.kmseg = state
    too_big = (
        f"the upload is larger than the limit of {_mb(max_upload_bytes)}; choose a smaller image, "
        "or start the server with a larger --max-upload-mb"
    )
    app.add_middleware(_Guard, max_body=max_upload_bytes + _MB, too_big=too_big, allowed_hosts=allowed_hosts)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        body = {"detail": detail, **getattr(exc, "facts", {})}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_detail(exc)}, status_code=422)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}; the server is still running, please report it"},
            status_code=500,
        )

    # ----------------------------------------------------------------- page

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # ----------------------------------------------------------------- API

    @app.get("/api/health", response_model=HealthResponse, summary="Is the server up?", tags=["server"])
    async def health() -> HealthResponse:
        """Answers at once, even while segmentations run. Also gives the server's limits."""
        return HealthResponse(
            status="ok",
            version=__version__,
            max_upload_bytes=state.max_upload_bytes,
            max_pixels=state.max_pixels,
            k_max=K_MAX,
        )

    @app.get("/api/stats", response_model=StatsResponse, summary="Cache and work counters", tags=["server"])
    async def stats() -> dict[str, Any]:
        """How often uploads were decoded and reduced, and the caches' sizes, hits and misses."""
        return state.stats()

    async def _get_upload(file: UploadFile | None, upload_id: str | None, plane: int | None,
                          color_space: str) -> tuple[Upload, bool]:
        if file is not None and upload_id:
            raise HTTPException(422, "pass either file or upload_id, not both")
        if file is not None:
            return await to_thread.run_sync(state.ingest, file, plane, color_space, limiter=state.compute_limiter)
        if upload_id:
            return await to_thread.run_sync(state.lookup, upload_id, plane, color_space, limiter=state.compute_limiter)
        raise HTTPException(
            422, "no image: send the image as a multipart file field named 'file', or the upload_id of an earlier upload"
        )

    @app.post(
        "/api/segment",
        response_model=SegmentResponse,
        responses=_ERRORS,
        summary="Segment an image into k colour clusters",
        tags=["segment"],
        dependencies=[_only_form("/api/segment", *SEGMENT_FIELDS)],
    )
    async def api_segment(
        file: FileField = None,
        upload_id: UploadIdField = None,
        plane: PlaneField = None,
        k: Annotated[int, Form(ge=1, le=K_MAX, description="Number of clusters.")] = 5,
        color_space: ColorField = "rgb",
        seed: SeedField = 0,
        n_init: NInitField = 10,
        disable: Annotated[
            str | None, Form(max_length=1000, description="Clusters to hide in the masked image: indices such as 0,2.")
        ] = None,
    ) -> dict[str, Any]:
        """Send the image as `file` (multipart), or the `upload_id` of an earlier upload to
        segment it again without sending or decoding it again. The images of the result are
        fetched from the URLs in `urls`.

        A TIFF stack (Z, T... page axes) needs `plane`; sent without it, the 422 error carries
        `planes` (how many) and `plane_kind` beside its `detail`. `plane` also picks a frame of an
        animated GIF, WebP or PNG (the first without it); the answer's `planes` says how many the
        file has. The server keeps the planes it decoded, not the file: with `upload_id`, a plane
        not decoded yet is a 404 that says to send the file again with that plane."""
        t0 = time.perf_counter()
        hidden = _parse_disable(disable)
        upload, cached = await _get_upload(file, upload_id, plane, color_space)
        result, notes = await to_thread.run_sync(state.segment, upload, k, seed, n_init, limiter=state.compute_limiter)
        seg = result.seg
        if any(i >= seg.k for i in hidden):
            hidden = _parse_disable(disable, seg.k)
        base = f"/api/result/{result.result_id}"
        query = f"?disable={','.join(map(str, hidden))}" if hidden else ""
        h, w = seg.labels.shape
        return {
            "upload_id": upload.upload_id,
            "result_id": result.result_id,
            "name": upload.name,
            "plane": seg.plane,
            **upload.facts,
            "width": w,
            "height": h,
            "k": seg.k,
            "k_requested": k,
            "color_space": upload.prepared.color_space,
            "seed": seed,
            "n_init": n_init,
            "inertia": seg.inertia,
            "n_iter": seg.n_iter,
            "converged": seg.converged,
            "disable": hidden,
            "palette": _palette(seg),
            "bands": int(seg.centers.shape[1]),
            "dtype": seg.original.dtype.name,
            "output_suffix": output_suffix(seg.original, seg._has_alpha),
            "urls": {
                "segmented": f"{base}/segmented.png",
                "segmented_tif": f"{base}/segmented.tif",
                "labels": f"{base}/labels.png",
                "palette": f"{base}/palette.json",
                **{f"palette_{suffix}": f"{base}/palette.{suffix}" for suffix in PALETTE_MEDIA},
                "masked": f"{base}/masked.png{query}",
                "masked_tif": f"{base}/masked.tif{query}",
                "clusters": [f"{base}/cluster/{i}.png" for i in range(seg.k)],
                "clusters_zip": f"{base}/clusters.zip",
            },
            "cached": cached,
            "seconds": round(time.perf_counter() - t0, 4),
            "warnings": notes,
        }

    @app.post(
        "/api/elbow",
        response_model=ElbowResponse,
        responses={**_ERRORS, 501: {"model": ErrorResponse, "description": "No elbow sweep in this install."}},
        summary="Inertia against k, and the knee",
        tags=["segment"],
        dependencies=[_only_form("/api/elbow", *ELBOW_FIELDS)],
    )
    async def api_elbow(
        file: FileField = None,
        upload_id: UploadIdField = None,
        plane: PlaneField = None,
        k_max: Annotated[int, Form(ge=2, le=ELBOW_K_MAX, description="Try k = 1..k_max.")] = 10,
        color_space: ColorField = "rgb",
        seed: SeedField = 0,
        n_init: NInitField = 10,
    ) -> dict[str, Any]:
        """Segments the image for every k from 1 to `k_max` and returns the inertias and the
        knee of the curve (a good k). Uses the cached upload like /api/segment, and `plane` as it does."""
        t0 = time.perf_counter()
        upload, _ = await _get_upload(file, upload_id, plane, color_space)
        curve, cached = await to_thread.run_sync(state.elbow, upload, k_max, seed, n_init, limiter=state.compute_limiter)
        return {
            "upload_id": upload.upload_id,
            "plane": upload.plane,
            "color_space": upload.prepared.color_space,
            "seed": seed,
            "ks": curve.ks,
            "inertias": curve.inertias,
            "knee": curve.knee,
            "cached": cached,
            "seconds": round(time.perf_counter() - t0, 4),
        }

    def _send(content: bytes, media_type: str, filename: str, download: bool) -> Response:
        disposition = "attachment" if download else "inline"
        return Response(
            content,
            media_type=media_type,
            headers={
                "Content-Disposition": f'{disposition}; filename="{filename}"',
                "Cache-Control": "private, max-age=3600",
            },
        )

    def _masked_stem(stem: str, hidden: list[int]) -> str:
        """The download name of a masked image, without its suffix: ``photo-masked-0-2``."""
        return f"{stem}-masked" + ("-" + "-".join(map(str, hidden)) if hidden else "")

    async def _render(result_id: str, render: Callable[[Result], bytes]) -> tuple[Result, bytes]:
        res = state.result(result_id)
        return res, await to_thread.run_sync(render, res)

    @app.get(
        "/api/result/{result_id}/segmented.png",
        response_class=Response,
        responses={200: _PNG, **_NOT_FOUND, **_BAD_QUERY},
        summary="The recoloured image",
        tags=["result"],
        dependencies=[_only_query("segmented.png", "width", "download")],
    )
    async def segmented_png(result_id: ResultId, width: Width = None, download: Download = False) -> Response:
        """Every pixel painted in its cluster's centre colour (8-bit PNG; alpha kept)."""
        res, png = await _render(result_id,
                                 lambda r: _png(r.seg.image(), r.has_alpha, width=width, vrange=r.seg.display_range))
        return _send(png, "image/png", f"{res.stem}-segmented.png", download)

    @app.get(
        "/api/result/{result_id}/segmented.tif",
        response_class=Response,
        responses={200: _TIFF, **_NOT_FOUND, **_BAD_QUERY},
        summary="The recoloured image, in the input's dtype",
        tags=["result"],
        dependencies=[_only_query("segmented.tif", "download")],
    )
    async def segmented_tif(result_id: ResultId, download: Download = False) -> Response:
        """Every pixel painted in its cluster's centre, in the input's dtype and bands (int16,
        float32, ...; alpha kept): the values `kmseg segment` writes, which the 8-bit PNG cannot hold."""
        res, tif = await _render(result_id, lambda r: encode_image(f"{r.stem}-segmented.tif", r.seg.image(), alpha=r.seg._has_alpha))
        return _send(tif, "image/tiff", f"{res.stem}-segmented.tif", download)

    @app.get(
        "/api/result/{result_id}/labels.png",
        response_class=Response,
        responses={200: _PNG, **_NOT_FOUND, **_BAD_QUERY},
        summary="The label map",
        tags=["result"],
        dependencies=[_only_query("labels.png", "download")],
    )
    async def labels_png(result_id: ResultId, download: Download = False) -> Response:
        """8-bit grey PNG: each pixel's value is its cluster index; 255 marks transparent pixels."""
        res, png = await _render(result_id, lambda r: _png(r.seg.label_image(), False, "rle"))
        return _send(png, "image/png", f"{res.stem}-labels.png", download)

    @app.get(
        "/api/result/{result_id}/palette.json",
        responses={200: {"content": {"application/json": {}}, "description": "The summary."}, **_NOT_FOUND, **_BAD_QUERY},
        response_class=Response,
        summary="The palette and run summary",
        tags=["result"],
        dependencies=[_only_query("palette.json", "download")],
    )
    async def palette_json(result_id: ResultId, download: Download = False) -> Response:
        """The JSON `kmseg segment` writes as NAME-palette.json for the same file and options, byte
        for byte (`kmseg.io.palette_bytes`): source, size, k, colour space, inertia, iterations,
        centres, palette. Its `source` is the upload's file name (the command line's is the path
        it was given). The seed and n_init it was made with are in /api/segment's answer."""
        res = state.result(result_id)
        content = await to_thread.run_sync(lambda: palette_bytes(res.seg, "json"))
        return _send(content, "application/json", f"{res.stem}-palette.json", download)

    @app.get(
        "/api/result/{result_id}/palette.{suffix}",
        response_class=Response,
        responses={
            200: {"content": {media.split(";")[0]: {} for media in PALETTE_MEDIA.values()},
                  "description": "The palette file."},
            **_NOT_FOUND, **_BAD_QUERY,
        },
        summary="The palette as a file for designers' tools",
        tags=["result"],
        dependencies=[_only_query("palette.{suffix}", "download")],
    )
    async def palette_file(
        result_id: ResultId,
        suffix: Annotated[_PaletteSuffix, PathParam(description="gpl, ase, css or png.")],
        download: Download = False,
    ) -> Response:
        """The palette, largest share first, in its 8-bit display colours, as `kmseg palette -o`
        writes it (`kmseg.io.palette_bytes`): `gpl` a GIMP palette (GIMP, Inkscape, Krita), `ase`
        Adobe Swatch Exchange, `css` custom properties `--kmseg-0`..., `png` a swatch strip of equal
        bands. The palette's title (the .gpl's `Name:`) is the download's stem, `NAME-kK`."""
        res = state.result(result_id)
        content = await to_thread.run_sync(lambda: palette_bytes(res.seg, suffix, name=res.stem))
        return _send(content, PALETTE_MEDIA[suffix], f"{res.stem}-palette.{suffix}", download)

    @app.get(
        "/api/result/{result_id}/masked.png",
        response_class=Response,
        responses={200: _PNG, **_NOT_FOUND, **_BAD_QUERY},
        summary="The original with some clusters hidden",
        tags=["result"],
        dependencies=[_only_query("masked.png", "disable", "width", "download")],
    )
    async def masked_png(
        result_id: ResultId,
        disable: Annotated[str | None, Query(max_length=1000, description="Clusters to paint black: 0,2.")] = None,
        width: Width = None,
        download: Download = False,
    ) -> Response:
        """The original image with the pixels of the `disable` clusters painted black (the
        tutorials' "disable a cluster"), on any display range: an int16 CT's hidden pixels are
        its minimum here, and 0 in `masked.tif`. Without `disable`, the original image."""
        res = state.result(result_id)
        hidden = _parse_disable(disable, res.seg.k)
        vrange = res.seg.display_range
        png = await to_thread.run_sync(
            lambda: _png(res.seg._masked_for_display(hidden), res.has_alpha, "rle", width, vrange)
        )
        return _send(png, "image/png", f"{_masked_stem(res.stem, hidden)}.png", download)

    @app.get(
        "/api/result/{result_id}/masked.tif",
        response_class=Response,
        responses={200: _TIFF, **_NOT_FOUND, **_BAD_QUERY},
        summary="The original with some clusters hidden, in the input's dtype",
        tags=["result"],
        dependencies=[_only_query("masked.tif", "disable", "download")],
    )
    async def masked_tif(
        result_id: ResultId,
        disable: Annotated[str | None, Query(max_length=1000, description="Clusters to set to 0: 0,2.")] = None,
        download: Download = False,
    ) -> Response:
        """The original image, in its dtype, with the pixels of the `disable` clusters set to 0
        (as `Segmentation.masked` and `kmseg segment --disable` do). Without `disable`, the original."""
        res = state.result(result_id)
        hidden = _parse_disable(disable, res.seg.k)
        name = f"{_masked_stem(res.stem, hidden)}.tif"
        tif = await to_thread.run_sync(lambda: encode_image(name, res.seg.masked(hidden), alpha=res.seg._has_alpha))
        return _send(tif, "image/tiff", name, download)

    @app.get(
        "/api/result/{result_id}/cluster/{index}.png",
        response_class=Response,
        responses={200: _PNG, **_NOT_FOUND, **_BAD_QUERY},
        summary="A cut-out of one cluster",
        tags=["result"],
        dependencies=[_only_query("cluster/{index}.png", "width", "download")],
    )
    async def cluster_png(
        result_id: ResultId,
        index: Annotated[int, PathParam(ge=0, description="Cluster index.")],
        width: Width = None,
        download: Download = False,
    ) -> Response:
        """RGBA PNG: the original colours inside cluster `index`, transparent elsewhere."""
        res = state.result(result_id)
        if index >= res.seg.k:
            raise HTTPException(404, f"cluster {index} does not exist; this result has clusters 0 to {res.seg.k - 1}")
        png = await to_thread.run_sync(lambda: _png(res.seg.extract(index), True, "rle", width, res.seg.display_range))
        return _send(png, "image/png", f"{res.stem}-cluster{index}.png", download)

    @app.get(
        "/api/result/{result_id}/clusters.zip",
        response_class=Response,
        responses={200: {"content": {"application/zip": {}}, "description": "A ZIP archive."}, **_NOT_FOUND, **_BAD_QUERY},
        summary="Every cut-out, zipped",
        tags=["result"],
        dependencies=[_only_query("clusters.zip", "download")],
    )
    async def clusters_zip(result_id: ResultId, download: Download = True) -> Response:
        """A ZIP with one RGBA cut-out PNG per cluster (`NAME-kK-cluster{i}.png`)."""
        res = state.result(result_id)

        def build() -> bytes:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
                for i in range(res.seg.k):
                    cut = _png(res.seg.extract(i), True, "rle", vrange=res.seg.display_range)
                    zf.writestr(f"{res.stem}-cluster{i}.png", cut)
            return buf.getvalue()

        content = await to_thread.run_sync(build)
        return _send(content, "application/zip", f"{res.stem}-clusters.zip", download)

    @app.get(
        "/api/sample/{name}",
        response_class=FileResponse,
        responses={200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The photo."}},
        summary="A bundled sample photo",
        tags=["server"],
    )
    async def sample(name: Annotated[_SampleName, PathParam(description="One of kmseg.data.NAMES.")]) -> FileResponse:
        """One of the photos bundled with kmseg, for trying the page without an image of your own."""
        media = "image/jpeg" if name.endswith(".jpg") else "image/png"
        return FileResponse(data.path(name), media_type=media)

    return app
