"""Read regions of a TIFF lazily, and write a tiled TIFF region by region, from any process.

Used by :mod:`kmseg.distributed`. Nothing here imports dask: a :class:`TiffSource` is a small
picklable description of a file, and every task opens the file by its path (tifffile's own file
objects do not pickle).

Reading follows :func:`kmseg.io.load_image`'s rules for the layouts it supports, so a region
holds exactly the pixels ``load_image`` would return there: MINISWHITE is inverted, grey+alpha
becomes RGBA, RGB plus an unspecified extra sample drops it, float16 is widened to float32.
Uncompressed contiguous files are memory-mapped; tiled and striped files are read segment by
segment (only the tiles or strips a region touches).

Writing: tasks compress the tiles of their region (deflate, as TIFF stores it) and return the
bytes, a small fraction of the pixels (a segmented image holds only k colours); the driver's
:class:`TileWriter` streams them, in tile order, into a tiled TIFF with tifffile.
"""

from __future__ import annotations

import math
import os
import threading
import zlib
from dataclasses import dataclass

import numpy as np
import tifffile

from .errors import IN_MEMORY, CorruptImageError, ImageNotFoundError, InvalidImageDataError, NotAnImageError

__all__ = ["TileWriter", "TiffSource", "chunk_grid", "encode_tiles", "open_source", "tile_indices"]

_DTYPES = ("uint8", "uint16", "int8", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64")
#: Output tile size for inputs that are not tiled.
OUT_TILE = 256


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TiffSource:
    """Where and how the pixels of a TIFF's first page are stored."""

    path: str
    height: int
    width: int
    samples: int  # stored samples per pixel
    dtype: str  # stored dtype, native byte order
    seg_shape: tuple[int, int]  # tile (or strip: rows, width) shape
    tiled: bool
    planar: bool  # PLANARCONFIG SEPARATE: one set of segments per sample
    memmap_offset: int  # offset of contiguous uncompressed data, -1 if not memory-mappable
    miniswhite: bool
    n_colour: int  # samples that are colour, not extra (alpha or unspecified)
    byteorder: str  # "<" or ">"
    has_alpha: bool  # the last channel (after ``channels``) is alpha, as load_image reports it
    channels: tuple[int, ...] | None  # samples to keep, in order (None: all)
    compressed: bool = False  # the segments are compressed (a reader decodes each one whole)

    @property
    def n_channels(self) -> int:
        """Channels of the image as :func:`kmseg.io.load_image` returns it."""
        return self.samples if self.channels is None else len(self.channels)

    @property
    def out_dtype(self) -> np.dtype:
        return np.dtype(np.float32) if self.dtype == "float16" else np.dtype(self.dtype)

    @property
    def segment_bytes(self) -> int:
        """Bytes of one decoded tile or strip, as a reader holds it while it copies the part it
        needs (0 when the file is memory-mapped)."""
        if self.memmap_offset >= 0:
            return 0
        per_pixel = (1 if self.planar else self.samples) * np.dtype(self.dtype).itemsize
        return self.seg_shape[0] * self.seg_shape[1] * per_pixel

    @property
    def unit(self) -> tuple[int, int]:
        """Chunk edges must be multiples of this (or reach the image's edge)."""
        if self.memmap_offset >= 0:
            return (16, 16)
        return self.seg_shape

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` as an (h, w, C) array, as ``load_image`` gives them."""
        if self.memmap_offset >= 0:
            raw = self._read_memmap(y0, y1, x0, x1)
        else:
            raw = self._read_segments(y0, y1, x0, x1)
        if self.miniswhite and raw.dtype.kind in "ui":
            colour = raw[..., : self.n_colour]
            if raw.dtype.kind == "u":
                np.subtract(np.iinfo(raw.dtype).max, colour, out=colour)
            else:  # signed, as load_image inverts it
                np.invert(colour, out=colour)
        if self.channels is not None:
            raw = raw[..., list(self.channels)]
        if raw.dtype == np.float16:
            raw = raw.astype(np.float32)
        return np.ascontiguousarray(raw)

    def _read_memmap(self, y0, y1, x0, x1) -> np.ndarray:
        dt = np.dtype(self.dtype).newbyteorder(self.byteorder)
        shape = (self.samples, self.height, self.width) if self.planar else (self.height, self.width, self.samples)
        mm = np.memmap(self.path, dtype=dt, mode="r", offset=self.memmap_offset, shape=shape)
        region = np.moveaxis(mm[:, y0:y1, x0:x1], 0, -1) if self.planar else mm[y0:y1, x0:x1]
        out = np.array(region, dtype=np.dtype(self.dtype))  # a copy in native byte order
        del mm
        return out

    def _read_segments(self, y0, y1, x0, x1) -> np.ndarray:
        # Opening costs about a millisecond: cheaper than keeping files open in every worker.
        with tifffile.TiffFile(self.path) as tif:
            fd = tif.filehandle.fileno()
            return self._decode_region(tif.pages[0], fd, y0, y1, x0, x1)

    def _decode_region(self, page, fd, y0, y1, x0, x1) -> np.ndarray:
        decode = page.decode
        offsets = page.dataoffsets
        counts = page.databytecounts
        kw = {}
        if page.compression in (6, 7, 34892, 33007):  # JPEG
            kw = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        sh, sw = self.seg_shape
        nsy = -(-self.height // sh)
        nsx = -(-self.width // sw)
        out = np.zeros((y1 - y0, x1 - x0, self.samples), dtype=np.dtype(self.dtype))
        for s in range(self.samples if self.planar else 1):
            for sy in range(y0 // sh, (y1 - 1) // sh + 1):
                for sx in range(x0 // sw, (x1 - 1) // sw + 1):
                    idx = (s * nsy + sy) * nsx + sx
                    if counts[idx] == 0:
                        continue  # an empty segment reads as zeros
                    data = os.pread(fd, counts[idx], offsets[idx])
                    if len(data) != counts[idx]:
                        raise CorruptImageError(
                            f"{self.path}: looks like a TIFF file but its pixel data runs past the end of the "
                            "file; it is truncated, so re-export or re-download it"
                        )
                    seg, _, shape = decode(data, idx, _fullsize=self.tiled, **kw)
                    seg = np.asarray(seg).reshape(shape[1], shape[2], shape[3])
                    ty, tx = sy * sh, sx * sw
                    ya, yb = max(y0, ty), min(y1, ty + shape[1])
                    xa, xb = max(x0, tx), min(x1, tx + shape[2])
                    block = seg[ya - ty : yb - ty, xa - tx : xb - tx]
                    if self.planar:
                        out[ya - y0 : yb - y0, xa - x0 : xb - x0, s] = block[..., 0]
                    else:
                        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = block
        return out


def open_source(path: str | os.PathLike[str]) -> TiffSource:
    """Check that ``path`` is a TIFF kmseg can read lazily, and describe its first page.

    Raises
    ------
    ImageNotFoundError, NotAnImageError, CorruptImageError, InvalidImageDataError
    """
    name = os.fspath(path)
    try:
        os.stat(name)
    except FileNotFoundError:
        raise ImageNotFoundError(f"{name}: no such file; check the path") from None
    if not os.path.isfile(name):
        raise ImageNotFoundError(f"{name}: is not a regular file; pass the path of a TIFF file")
    with open(name, "rb") as f:
        head = f.read(4)
    if head not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        raise NotAnImageError(
            f"{name}: not a TIFF file; the chunked path reads TIFF only, so convert the image to a "
            f"(tiled) TIFF or {IN_MEMORY}"
        )
    try:
        with tifffile.TiffFile(name) as tif:
            page = tif.pages[0]
            _refuse_stack(name, tif)
            return _describe(name, page, tif.byteorder)
    except (InvalidImageDataError, NotAnImageError):
        raise
    except Exception as exc:
        raise CorruptImageError(
            f"{name}: looks like a TIFF file but cannot be read ({type(exc).__name__}: {exc}); "
            "it is truncated or corrupt, so re-export or re-download it"
        ) from exc


def _refuse_stack(name: str, tif: tifffile.TiffFile) -> None:
    """Refuse a TIFF whose first image spans several pages (a stack of planes, or channels
    stored as pages), rather than read its first page as if it were the whole image."""
    from .io import _tiff_layout, _warn_other_series

    _, pages, axes, shape = _tiff_layout(tif)
    _warn_other_series(name, tif)
    if len(pages) <= 1:
        return
    if axes == "C":
        raise InvalidImageDataError(
            f"{name}: stores its {len(pages)} channels as pages (TIFF page axes {axes}); the chunked path reads "
            "single-page TIFFs, so segment it in memory (kmseg.segment(path); CLI: without --dask), or save it as "
            "one page of several samples"
        )
    raise InvalidImageDataError(
        f"{name}: is a stack of {len(pages)} pages (TIFF page axes {axes}, shape {shape}); the chunked path reads "
        "single-page TIFFs, so segment one plane in memory (kmseg.segment(path, plane=N); CLI: without --dask, "
        "--plane N), or save the plane as a TIFF of its own"
    )


def _describe(name: str, page: tifffile.TiffPage, byteorder: str) -> TiffSource:
    ph = tifffile.PHOTOMETRIC
    why = None
    if page.imagedepth != 1:
        why = "is a volume (ImageDepth > 1)"
    elif page.photometric not in (ph.MINISWHITE, ph.MINISBLACK, ph.RGB):
        why = f"has photometric {page.photometric.name}"
    elif page.compression not in tifffile.TIFF.DECOMPRESSORS:
        why = f"is compressed with {page.compression.name}, which needs the imagecodecs package"
    elif page.predictor != 1 and page.predictor not in tifffile.TIFF.UNPREDICTORS:
        why = f"uses predictor {page.predictor}"
    elif page.dtype is None or np.dtype(page.dtype).name not in _DTYPES:
        why = f"has samples of type {page.dtype} ({page.bitspersample}-bit)"
    elif int(page.tags.valueof(274, 1)) != 1:
        why = "has an EXIF orientation other than 1 (top-left)"
    if why is not None:
        raise NotAnImageError(
            f"{name}: this TIFF {why}; the chunked path reads integer and float TIFFs with "
            f"grey or RGB samples, so convert it, or {IN_MEMORY}"
        )
    samples = int(page.samplesperpixel)
    planar = samples > 1 and page.planarconfig == tifffile.PLANARCONFIG.SEPARATE
    if page.is_tiled:
        seg = (int(page.tilelength), int(page.tilewidth))
    else:
        seg = (int(min(page.rowsperstrip, page.imagelength)), int(page.imagewidth))
    extra = tuple(int(e) for e in page.extrasamples)
    n_colour = samples - len(extra)
    has_alpha = bool(extra) and extra[0] in (1, 2) and n_colour in (1, 3) and len(extra) == 1
    rgbx = page.photometric == ph.RGB and samples == 4
    channels: tuple[int, ...] | None = None
    if has_alpha and n_colour == 1:
        channels = (0, 0, 0, 1)  # grey + alpha -> RGBA, as load_image does
    elif rgbx and not has_alpha:
        channels = (0, 1, 2)
    memmap = int(page.dataoffsets[0]) if page.is_memmappable and len(page.dataoffsets) else -1
    if memmap >= 0 and not page.is_contiguous:
        memmap = -1
    return TiffSource(
        path=os.path.abspath(name),
        height=int(page.imagelength),
        width=int(page.imagewidth),
        samples=samples,
        dtype=np.dtype(page.dtype).name,
        seg_shape=seg,
        tiled=bool(page.is_tiled),
        planar=planar,
        memmap_offset=memmap,
        miniswhite=page.photometric == ph.MINISWHITE,
        n_colour=n_colour,
        byteorder=byteorder,
        has_alpha=has_alpha,
        channels=channels,
        compressed=int(page.compression) != 1,
    )


def chunk_grid(src: TiffSource, chunks: tuple[int, int], tile: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """Regions ``(y0, y1, x0, x1)`` in row-major order, about ``chunks`` in size.

    Chunk edges fall on multiples of the output ``tile`` (so every output tile is written whole
    by one task), and on multiples of the input's segments too (so no tile or strip is decoded
    twice in one pass) unless that would make the regions much larger than asked: with strips
    of 27 rows and tiles of 256, that is every 6912 rows. Then a segment cut by a region's edge
    is decoded by both regions. Striped inputs are cut into full-width bands. A region never
    holds less than a segment: an image stored as one strip is one region.
    """
    uy, ux = src.unit
    if src.memmap_offset < 0 and not src.tiled:
        # Full-width bands: keep the band about chunks[0] * chunks[1] pixels.
        cy = _edge(uy, tile[0], max(1, round(chunks[0] * chunks[1] / max(src.width, 1))))
        cx = src.width
    else:
        cy = _edge(uy, tile[0], chunks[0])
        cx = _edge(ux, tile[1], chunks[1])
    return [
        (y, min(y + cy, src.height), x, min(x + cx, src.width))
        for y in range(0, src.height, cy)
        for x in range(0, src.width, cx)
    ]


def _edge(unit: int, tile: int, asked: int) -> int:
    """A region's edge along one axis: a multiple of ``tile`` about ``asked`` pixels long, or
    about ``unit`` (a segment's edge) when segments are longer; a multiple of ``unit`` too when
    that makes it at most twice as long."""
    size = max(asked, unit)
    both = _lcm(unit, tile)
    if both <= 2 * size:
        return max(both, round(size / both) * both)
    if unit >= asked:  # large segments: each region covers one whole, and cuts at most one more
        return -(-unit // tile) * tile
    return max(tile, round(size / tile) * tile)


def _lcm(a: int, b: int) -> int:
    return a * b // math.gcd(a, b)


def out_tile(src: TiffSource) -> tuple[int, int]:
    """Tile size of the outputs: the input's own tiles when it is tiled."""
    if src.tiled and src.seg_shape[0] % 16 == 0 and src.seg_shape[1] % 16 == 0:
        return src.seg_shape
    return (OUT_TILE, OUT_TILE)


# --------------------------------------------------------------------------- writing


def encode_tiles(block: np.ndarray, tile: tuple[int, int], level: int = 1) -> list[bytes]:
    """The deflate-compressed tiles of ``block`` (h, w[, S]), row-major, edge tiles zero-padded.

    ``block`` starts on a tile corner. The bytes are what a deflate-compressed TIFF stores.
    """
    th, tw = tile
    if block.ndim == 2:
        block = block[..., None]
    out = []
    for ty in range(0, block.shape[0], th):
        for tx in range(0, block.shape[1], tw):
            part = block[ty : ty + th, tx : tx + tw]
            if part.shape[:2] != (th, tw):
                full = np.zeros((th, tw, block.shape[2]), dtype=block.dtype)
                full[: part.shape[0], : part.shape[1]] = part
                part = full
            out.append(zlib.compress(np.ascontiguousarray(part).data, level))
    return out


def tile_indices(region: tuple[int, int, int, int], shape: tuple[int, int], tile: tuple[int, int]) -> list[int]:
    """Indices, in the TIFF's row-major tile order, of the tiles of ``region``, in the order
    :func:`encode_tiles` gives them."""
    y0, y1, x0, x1 = region
    th, tw = tile
    ntx = -(-shape[1] // tw)
    return [(ty // th) * ntx + tx // tw for ty in range(y0, y1, th) for tx in range(x0, x1, tw)]


class TileWriter:
    """Writes a deflate-compressed tiled TIFF in a thread, from tiles handed over in any order.

    tifffile writes the tiles in index order from an iterator of encoded bytes; :meth:`put`
    hands tiles over as the tasks that made them finish, and only tiles that arrived ahead of
    their turn wait in memory (compressed).
    """

    def __init__(self, path: str | os.PathLike[str], shape: tuple[int, int, int], dtype: np.dtype,
                 tile: tuple[int, int], *, alpha: bool) -> None:
        H, W, S = shape
        th, tw = tile
        self.path = os.fspath(path)
        self.n = (-(-H // th)) * (-(-W // tw))
        self._tiles: dict[int, bytes] = {}
        self._cond = threading.Condition()
        self._aborted = False
        self.error: BaseException | None = None
        rgb = S == 3 or (S == 4 and alpha)
        self._kw = dict(
            shape=(H, W, S) if S > 1 else (H, W),
            dtype=np.dtype(dtype),
            tile=(th, tw),
            compression="zlib",
            photometric="rgb" if rgb else "minisblack",
            planarconfig="contig" if S > 1 else None,
            extrasamples=("unassalpha",) if alpha else None,
            bigtiff=H * W * S * np.dtype(dtype).itemsize > 2**32 - 2**25,
            metadata=None,
        )
        self._thread = threading.Thread(target=self._run, name=f"kmseg-write-{os.path.basename(self.path)}",
                                         daemon=True)
        self._thread.start()

    def put(self, index: int, data: bytes) -> None:
        if self.error is not None:
            raise self.error  # writing failed (disk full...): stop at once
        with self._cond:
            self._tiles[index] = data
            self._cond.notify_all()

    def _iter(self):
        for i in range(self.n):
            with self._cond:
                while i not in self._tiles and not self._aborted:
                    self._cond.wait()
                if self._aborted:
                    raise RuntimeError("writing was aborted")
                data = self._tiles.pop(i)
            yield data

    def _run(self) -> None:
        try:
            tifffile.imwrite(self.path, self._iter(), **self._kw)
            with open(self.path, "rb+") as f:
                os.fsync(f.fileno())
        except BaseException as exc:  # reported by close()
            self.error = exc

    def close(self) -> None:
        """Wait until every tile is written (and synced to disk); raise what went wrong."""
        self._thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        self._thread.join()
