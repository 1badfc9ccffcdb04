"""Read images into numpy arrays, and write output files atomically.

Reading: :func:`load_image` turns PNG, JPEG, GIF, BMP, WebP and TIFF files into
channels-last arrays in RGB(A) order and the file's own bit depth. Pillow reads the
everyday formats, OpenCV reads 16-bit colour PNG (which Pillow would cut to 8 bits) and
tifffile reads TIFF. The decompression-bomb limit is checked on the header, before any
pixel is decoded.

Writing: :func:`write_bytes` is the one mechanism. It writes a hidden temporary file
in the target's directory, fsyncs it and moves it into place, so that a reader never
sees half a file, and it refuses to overwrite unless ``force=True``.
:func:`save_image`, :func:`write_json`, :func:`write_text` and :func:`write_palette` encode
in memory and call it. :func:`write_files` writes a set of files the same way, all or none.

Palettes: :func:`palette_bytes` encodes a segmentation's palette as the files designers'
tools read (GIMP palette, Adobe Swatch Exchange, CSS, JSON, a swatch strip PNG), and
:func:`read_palette` reads them back (but the swatch strip) as a :class:`kmseg.Palette`,
to label other images with.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import numbers
import os
import secrets
import stat
import struct
import threading
import warnings
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Literal, Union, overload

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptImageError,
    ImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    InvalidImageDataError,
    KmsegError,
    NotAnImageError,
    OutputError,
    PaletteFileError,
    PaletteNotFoundError,
    ParameterError,
    ParameterTypeError,
    ReadWarning,
    cannot_write,
    counted,
    exists_already,
    user_stacklevel,
    listed,
)

__all__ = [
    "count_planes", "encode_image", "json_bytes", "load_image", "palette_bytes", "publish", "publish_all",
    "read_palette", "save_image", "write_bytes", "write_files", "write_json", "write_palette", "write_text",
]

PathLike = Union[str, "os.PathLike[str]"]

_READABLE = "PNG, JPEG, GIF, BMP, WebP, TIFF"

# Magic bytes of the formats kmseg reads. WebP ("RIFF....WEBP") is checked apart.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
)

# EXIF/TIFF orientation (tag 274) -> numpy view that puts the picture upright. Same
# geometry as PIL.ImageOps.exif_transpose; used where Pillow does not decode the pixels.
_ORIENT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


# --------------------------------------------------------------------------- reading


# Pillow checks its own limit (Image.MAX_IMAGE_PIXELS) while opening and loading, and
# warns or raises DecompressionBombError. kmseg checks the same kind of limit itself,
# with a message that says how to lift it, so Pillow's check is switched off while
# kmseg reads. ImageFile.LOAD_TRUNCATED_IMAGES is forced off too, so that a truncated
# file always raises CorruptImageError. The switch is reference-counted so that loads on
# several threads can overlap, and the settings in force when the first of them started
# are put back after the last one ends.
_pillow_lock = threading.Lock()
_pillow_depth = 0
_pillow_saved: tuple[int | None, bool] = (None, False)


@contextlib.contextmanager
def _pillow_settings() -> Iterator[int | None]:
    """Switch Pillow's bomb check and truncated loading off; yield Pillow's pixel limit."""
    global _pillow_depth, _pillow_saved
    with _pillow_lock:
        if _pillow_depth == 0:
            _pillow_saved = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
            Image.MAX_IMAGE_PIXELS = None
            ImageFile.LOAD_TRUNCATED_IMAGES = False
        _pillow_depth += 1
        limit = _pillow_saved[0]
    try:
        yield limit
    finally:
        with _pillow_lock:
            _pillow_depth -= 1
            if _pillow_depth == 0:
                Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = _pillow_saved


def _path_str(path: object) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise ParameterTypeError(
            f"path must be a str or os.PathLike, not {type(path).__name__}; pass the file's path"
        )
    return os.fsdecode(path)


def _check_size(name: str, width: int, height: int, limit: int | None) -> None:
    pixels = int(width) * int(height)
    if limit is not None and pixels > limit:
        problem = f"{name}: {pixels} pixels ({width} x {height}) exceeds the limit of {limit}"
        err = ImageTooLargeError(f"{problem}; pass max_pixels={pixels} or more (CLI: --max-pixels) to allow it")
        err.problem, err.pixels = problem, pixels  # for front ends that word the fix their own way
        raise err


def _corrupt(name: str, fmt: str, exc: BaseException) -> CorruptImageError:
    return CorruptImageError(
        f"{name}: looks like a {fmt} file but cannot be decoded ({type(exc).__name__}: {exc}); "
        "it is truncated, corrupt or an unsupported variant, so re-export or re-download it"
    )


def _sniff(name: str) -> tuple[str, bytes]:
    """Check that *name* is a readable file; return its format and first 32 bytes."""
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise ImageNotFoundError(f"{name}: no such file; check the path") from None
    except OSError as exc:
        raise ImageError(f"{name}: cannot be opened ({exc.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise ImageNotFoundError(f"{name}: is a directory, not an image file; pass the path of an image file")
    if not stat.S_ISREG(st.st_mode):
        raise ImageNotFoundError(f"{name}: is not a regular file; pass the path of an image file")
    try:
        with open(name, "rb") as f:
            head = f.read(32)
    except OSError as exc:
        raise ImageError(f"{name}: cannot be read ({exc.strerror}); check the file's permissions") from None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP", head
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt, head
    what = "the file is empty" if not head else "the file's first bytes match none of them"
    raise NotAnImageError(
        f"{name}: not an image kmseg can read ({_READABLE}); {what}, so check the path "
        "or convert the file to PNG"
    )


def _pillow_pixels(im: Image.Image, png16: bool) -> tuple[np.ndarray, bool]:
    """Pixels of a loaded Pillow image under kmseg's rules; also whether it has alpha."""
    mode = im.mode
    keyed = "transparency" in im.info  # palette or colour-key transparency (tRNS, GIF)
    if mode == "1":
        return np.array(im.convert("L")), False  # 0/255
    if mode.startswith("I;16"):
        return np.array(im).astype(np.uint16), False  # native byte order
    if mode == "I":  # older Pillow opens 16-bit grey PNG as 32-bit "I"
        return (np.array(im).astype(np.uint16) if png16 else np.array(im)), False
    if mode == "F":
        return np.array(im), False
    if mode in ("L", "RGB") and not keyed:
        return np.array(im), False
    if mode == "RGBA":
        return np.array(im), True
    alpha = keyed or mode in ("LA", "La", "PA", "RGBa")
    # P, CMYK, YCbCr, RGBX, LAB, HSV -> RGB; LA, keyed L/RGB/P -> RGBA (grey replicated)
    return np.array(im.convert("RGBA" if alpha else "RGB")), alpha


def _load_pillow(name: str, fmt: str, limit: int | None, png16: bool = False,
                 plane: int | None = None) -> tuple[np.ndarray, bool]:
    """Pixels of a file Pillow reads: its first frame, or frame ``plane`` (0-based) of a
    multi-frame file (animated GIF, WebP or PNG, multi-page TIFF)."""
    try:
        # One format: the one the magic bytes name. (A multi-picture JPEG, MPO, opens through
        # the JPEG plugin. Naming "MPO" too made Pillow 13, where it is no format of its own,
        # raise KeyError for a JPEG it could not identify.)
        im = Image.open(name, formats=[fmt])
    except (UnidentifiedImageError, SyntaxError, ValueError, OSError, EOFError, struct.error) as exc:
        raise _corrupt(name, fmt, exc) from exc
    with im:
        _check_size(name, im.width, im.height, limit)
        if plane is not None:
            _check_plane(name, plane, int(getattr(im, "n_frames", 1)), "frame")
            try:
                im.seek(plane)
            except MemoryError:
                raise
            except Exception as exc:
                raise _corrupt(name, fmt, exc) from exc
            _check_size(name, im.width, im.height, limit)
        try:
            im.load()  # full decode here, so truncation raises here and not later
        except MemoryError:
            raise
        except Exception as exc:
            raise _corrupt(name, fmt, exc) from exc
        with contextlib.suppress(Exception):  # unreadable EXIF: keep the pixels as stored
            ImageOps.exif_transpose(im, in_place=True)
        return _pillow_pixels(im, png16)


def _png_orientation(name: str) -> int:
    """EXIF orientation from a PNG's eXIf chunk (1 if none), without decoding pixels."""
    try:
        with open(name, "rb") as f:
            f.seek(8)
            while len(header := f.read(8)) == 8:
                length, kind = struct.unpack(">I4s", header)
                if kind == b"eXIf":
                    exif = Image.Exif()
                    exif.load(f.read(length))
                    return int(exif.get(274, 1))
                if kind == b"IEND":
                    break
                f.seek(length + 4, os.SEEK_CUR)
    except Exception:  # a broken eXIf chunk does not make the pixels unreadable
        pass
    return 1


def _load_png16_colour(name: str, head: bytes, limit: int | None) -> tuple[np.ndarray, bool]:
    """16-bit RGB, RGBA and grey+alpha PNG, through OpenCV (Pillow keeps only 8 bits)."""
    width, height = struct.unpack(">II", head[16:24])
    _check_size(name, width, height, limit)
    arr = cv2.imdecode(np.fromfile(name, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.dtype != np.uint16 or arr.shape[:2] != (height, width) or arr.ndim != 3:
        raise CorruptImageError(
            f"{name}: looks like a 16-bit PNG file but cannot be decoded; it is truncated or "
            "corrupt, so re-export or re-download it"
        )
    # OpenCV gives BGR(A), and grey+alpha as BGRA with the grey replicated.
    arr = arr[..., ::-1] if arr.shape[2] == 3 else arr[..., [2, 1, 0, 3]]
    orientation = _png_orientation(name)
    return _ORIENT.get(orientation, lambda a: a)(arr), arr.shape[2] == 4


def _tifffile_reads(page: tifffile.TiffPage) -> bool:
    """Whether tifffile (without imagecodecs) decodes *page* and kmseg knows its layout."""
    ph = tifffile.PHOTOMETRIC
    return (
        page.photometric in (ph.MINISWHITE, ph.MINISBLACK, ph.RGB)
        and page.compression in tifffile.TIFF.DECOMPRESSORS
        and (page.predictor == 1 or page.predictor in tifffile.TIFF.UNPREDICTORS)
        and page.bitspersample in (1, 8, 16, 32, 64)
        and page.sampleformat in (1, 2, 3)  # uint, int, IEEE float
        and page.imagedepth == 1
    )


def _enum_name(value: object) -> str:
    return str(getattr(value, "name", value))


#: How a message about planes ends: the fix, in Python's words (the command line rewords it).
PLANE_FIX = "pass plane=N (CLI: --plane N)"


def _check_plane(name: str, plane: int, n: int, what: str = "plane") -> None:
    """Refuse a ``plane`` beyond the ``n`` planes (or frames) of file ``name``."""
    if not 0 <= plane < n:
        which = "pass plane=0 or leave plane out" if n == 1 else f"{PLANE_FIX} with N from 0 to {n - 1}"
        raise ParameterError(f"{name}: plane={plane} is out of range; the file has {counted(n, what)}: {which}")


def stack_refused(name: str, n: int, layout: str = "") -> InvalidImageDataError:
    """The error for a stack of ``n`` planes read without ``plane``; ``layout`` says more of it
    after its count (`` (TIFF axes ZYX, shape (3, 16, 16))``)."""
    return InvalidImageDataError(
        f"{name}: is a stack of {counted(n, 'plane')}{layout}; "
        f"kmseg segments one 2-D image at a time: {PLANE_FIX} with N from 0 to {n - 1}"
    )


def _stack_size(lead_axes: str, lead_shape: tuple[int, ...]) -> int:
    """How many planes a TIFF's page axes number: every page axis but channels (``C``) counts."""
    return math.prod(n for axis, n in zip(lead_axes, lead_shape) if axis != "C")


def _tiff_layout(tif: tifffile.TiffFile) -> tuple[Any, list[Any], str, tuple[int, ...]]:
    """The first image of a TIFF (tifffile's first series): its key page, its pages (or frames),
    and the axes and sizes that number those pages (``"ZC"``, ``(4, 2)``; ``""``, ``()`` for
    one page). Pages the series cannot account for are left out: the first page alone."""
    first = tif.pages[0]
    try:
        series = tif.series[0]
        key = series.keyframe
        pages = list(series.pages)
        n_lead = len(series.shape) - len(key.shape)
        lead_shape = tuple(int(n) for n in series.shape[:n_lead])
        if n_lead < 0 or not pages or pages[0].index != first.index or math.prod(lead_shape) != len(pages) \
                or any(p is None for p in pages):
            raise ValueError("pages that do not make the series' shape")
        return key, pages, str(series.axes[:n_lead]), lead_shape
    except Exception:  # no usable series: the first page, as before series were read
        return first, [first], "", ()


#: Names tifffile gives the associated images of whole-slide files (a slide's label, macro photo or
#: thumbnail): a series of these besides the first is no image of its own to warn about.
_ASSOCIATED_SERIES = frozenset({"label", "macro", "thumbnail", "overview", "map"})


_read_notes = threading.local()  # .notes: where this thread's ReadWarnings go instead (read_notes), or None


@contextlib.contextmanager
def read_notes() -> Iterator[list[str]]:
    """The messages of the :class:`~kmseg.errors.ReadWarning` s of files read in this thread
    while the block runs, collected instead of warned: for a server whose threads each read
    an upload (``warnings.catch_warnings`` is not thread-safe)."""
    notes: list[str] = []
    _read_notes.notes = notes
    try:
        yield notes
    finally:
        _read_notes.notes = None


def _warn_other_series(name: str, tif: tifffile.TiffFile) -> None:
    """Warn that a TIFF holds more images than the first (an OME-TIFF of several positions,
    several images of different shapes), which is all kmseg reads (see :func:`read_notes`)."""
    try:
        series = tif.series
        others = [s for s in series[1:] if str(s.name).lower() not in _ASSOCIATED_SERIES]
        shape = "x".join(str(int(n)) for n in series[0].shape)
    except Exception:  # no usable series: the first page is read, as the layout says
        return
    if not others:
        return
    message = (f"{name}: holds {len(series)} images (TIFF series 0 to {len(series) - 1}); kmseg reads the first "
               f"({shape}): to segment another, save it as a file of its own")
    notes = getattr(_read_notes, "notes", None)
    if notes is not None:
        notes.append(message)
    else:
        warnings.warn(message, ReadWarning, stacklevel=user_stacklevel())


def _choose_pages(name: str, key: Any, pages: list[Any], lead_axes: str, lead_shape: tuple[int, ...],
                  plane: int | None) -> tuple[list[Any], bool]:
    """The pages to read, and whether they are channels (a ``C`` page axis: OME-TIFF, ImageJ
    hyperstacks) to put side by side as bands. Any other page axis (Z, T, Q...) makes the file a
    stack of planes, of which ``plane`` picks one; without it the stack is refused."""
    if not lead_axes:
        if plane is not None:
            _check_plane(name, plane, 1)
        return pages[:1], False
    index = np.arange(len(pages)).reshape(lead_shape)
    c_axis = lead_axes.find("C")
    stack = [i for i in range(len(lead_axes)) if i != c_axis]
    if stack:
        sizes = [lead_shape[i] for i in stack]
        n = _stack_size(lead_axes, lead_shape)
        if plane is None:
            per = f" of {counted(lead_shape[c_axis], 'channel')} each" if c_axis >= 0 else ""
            shape = lead_shape + tuple(int(d) for d in key.shape)
            raise stack_refused(name, n, f"{per} (TIFF axes {lead_axes}{key.axes}, shape {shape})")
        _check_plane(name, plane, n)
        where: list[Any] = [slice(None)] * len(lead_axes)
        for i, at in zip(stack, np.unravel_index(plane, sizes)):
            where[i] = int(at)
        index = index[tuple(where)]
    elif plane is not None:
        _check_plane(name, plane, 1)
    chosen = [pages[i] for i in np.asarray(index).reshape(-1).tolist()]
    if c_axis >= 0 and int(key.samplesperpixel) != 1:
        raise InvalidImageDataError(
            f"{name}: stores its channels as pages of {key.samplesperpixel} samples each, which kmseg does not "
            "read; save the channels as pages of one sample each, or as one page of several samples"
        )
    return chosen, c_axis >= 0


def _load_tiff(name: str, limit: int | None, plane: int | None = None) -> tuple[np.ndarray, bool]:
    """A TIFF's image through tifffile: its first page; its channels when they are stored as
    pages (a ``C`` axis); page ``plane`` of a stack (see :func:`_choose_pages`). Palette, CMYK,
    YCbCr, 2/4-bit, LZW and JPEG compressed 8-bit TIFFs (without imagecodecs) go through Pillow
    instead."""
    try:
        tif = tifffile.TiffFile(name)
    except MemoryError:
        raise
    except Exception as exc:
        raise _corrupt(name, "TIFF", exc) from exc
    with tif:
        try:
            tif.pages[0].photometric  # noqa: B018 - a page that cannot even say this is broken
            page, pages, lead_axes, lead_shape = _tiff_layout(tif)
            page.photometric  # noqa: B018
        except Exception as exc:
            raise _corrupt(name, "TIFF", exc) from exc
        _check_size(name, page.imagewidth, page.imagelength, limit)
        chosen, channels = _choose_pages(name, page, pages, lead_axes, lead_shape, plane)
        _warn_other_series(name, tif)
        if not _tifffile_reads(page):
            if page.bitspersample > 8 and page.samplesperpixel > 1 or channels:
                raise NotAnImageError(
                    f"{name}: this {page.bitspersample}-bit TIFF "
                    f"(photometric {_enum_name(page.photometric)}, "
                    f"compression {_enum_name(page.compression)}) "
                    + ("with its channels stored as pages " if channels else "")
                    + "needs the imagecodecs package to be read at full depth; pip install imagecodecs"
                )
            frame = chosen[0].index
            return _load_pillow(name, "TIFF", limit, plane=frame if isinstance(frame, int) and frame else None)
        size = os.path.getsize(name)
        bands = []
        for one in chosen:
            if any(o + n > size for o, n in zip(one.dataoffsets, one.databytecounts)):
                raise CorruptImageError(
                    f"{name}: looks like a TIFF file but its pixel data runs past the end of the "
                    "file; it is truncated, so re-export or re-download it"
                )
            try:
                bands.append(one.asarray())
            except MemoryError:
                raise
            except Exception as exc:
                raise _corrupt(name, "TIFF", exc) from exc
        if channels:  # one page per channel: (H, W, C), every band data, none alpha
            arr = np.stack(bands, axis=-1)
            extra: tuple[int, ...] = ()
            n_colour = arr.shape[2]
        else:
            arr = bands[0]
            if "S" in page.axes and page.axes.index("S") == 0:  # planar: (S, H, W)
                arr = np.moveaxis(arr, 0, -1)
            extra = tuple(int(e) for e in page.extrasamples)
            n_colour = page.samplesperpixel - len(extra)
        del bands
        has_alpha = bool(extra) and extra[0] in (1, 2) and n_colour in (1, 3) and len(extra) == 1
        if page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            if arr.dtype == np.bool_:
                arr = ~arr
            elif arr.dtype.kind in "ui":
                arr = arr.copy()
                colour = arr[..., :n_colour] if arr.ndim == 3 else arr
                if arr.dtype.kind == "u":
                    np.subtract((1 << page.bitspersample) - 1, colour, out=colour, casting="unsafe")
                else:  # signed: the dtype's minimum and maximum trade places (-x - 1), as max - x does above
                    np.invert(colour, out=colour)
        rgbx = page.photometric == tifffile.PHOTOMETRIC.RGB and arr.ndim == 3 and arr.shape[2] == 4
        orientation = int(page.tags.valueof(274, 1))
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if has_alpha and n_colour == 1:  # grey + alpha -> RGBA, like LA
        arr = arr[..., [0, 0, 0, 1]]
    elif rgbx and not has_alpha:  # RGB + one unspecified extra sample: RGBX -> RGB
        arr = arr[..., :3]
    return _ORIENT.get(orientation, lambda a: a)(arr), has_alpha


def _check_max_pixels(max_pixels: object) -> None:
    if max_pixels is None:
        return
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral):
        raise ParameterTypeError(
            f"max_pixels={max_pixels!r} is not an int; pass a positive int, or None for "
            "Pillow's limit (PIL.Image.MAX_IMAGE_PIXELS)"
        )
    if max_pixels < 1:
        raise ParameterError(
            f"max_pixels={max_pixels} is out of range; pass a positive int, or None for "
            "Pillow's limit (PIL.Image.MAX_IMAGE_PIXELS)"
        )


def check_plane(plane: object) -> int | None:
    """``plane`` checked: None, or a whole number >= 0 (which plane of a stack, frame of an animation)."""
    if plane is None:
        return None
    if isinstance(plane, (bool, np.bool_)) or not isinstance(plane, numbers.Integral):
        raise ParameterTypeError(f"plane={plane!r} is not an int; pass a plane's number from 0, or None")
    if plane < 0:
        raise ParameterError(f"plane={plane} is out of range; planes are numbered from 0")
    return int(plane)


def count_planes(path: PathLike) -> tuple[int, Literal["plane", "frame"]]:
    """How many planes ``plane=`` picks from in an image file, and what they are, read from the
    file's structure without decoding its pixels.

    Returns ``(n, "plane")`` for a TIFF: ``n`` is 1 for a single image (its channels stored as
    pages included), and more for a stack (Z, T... page axes; :func:`load_image` refuses it
    without ``plane``). Every other file gives ``(n, "frame")``: ``n`` frames of an animated
    GIF, WebP or PNG, of which :func:`load_image` reads the first without ``plane``; 1 for a
    still image. The count is the one ``plane`` is checked against.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    n : int
        At least 1.
    kind : {"plane", "frame"}

    Raises
    ------
    ImageNotFoundError, NotAnImageError, CorruptImageError
        As :func:`load_image` raises them.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = os.path.join(tmp.name, "stack.tif")
    >>> tifffile.imwrite(path, np.zeros((3, 4, 4), np.uint8), imagej=True, metadata={"axes": "ZYX"})
    >>> count_planes(path)
    (3, 'plane')
    >>> count_planes(save_image(os.path.join(tmp.name, "one.png"), np.zeros((4, 4), np.uint8)))
    (1, 'frame')
    >>> tmp.cleanup()
    """
    name = _path_str(path)
    fmt, _ = _sniff(name)
    with _pillow_settings():
        if fmt == "TIFF":
            try:
                with tifffile.TiffFile(name) as tif:
                    tif.pages[0].photometric  # noqa: B018 - as _load_tiff checks it
                    _, _, lead_axes, lead_shape = _tiff_layout(tif)
            except MemoryError:
                raise
            except Exception as exc:
                raise _corrupt(name, "TIFF", exc) from exc
            return _stack_size(lead_axes, lead_shape), "plane"
        try:
            with Image.open(name, formats=[fmt]) as im:
                return max(1, int(getattr(im, "n_frames", 1))), "frame"
        except MemoryError:
            raise
        except Exception as exc:
            raise _corrupt(name, fmt, exc) from exc


@overload
def load_image(
    path: PathLike, *, max_pixels: int | None = ..., return_alpha: Literal[False] = ..., plane: int | None = ...
) -> np.ndarray: ...


@overload
def load_image(
    path: PathLike, *, max_pixels: int | None = ..., return_alpha: Literal[True], plane: int | None = ...
) -> tuple[np.ndarray, np.ndarray | None]: ...


def load_image(
    path: PathLike, *, max_pixels: int | None = None, return_alpha: bool = False, plane: int | None = None
) -> np.ndarray | tuple[np.ndarray, np.ndarray | None]:
    """Read an image file into a channels-last array in RGB(A) order.

    Rules:

    - Bit depth is the file's own: uint8 for 8-bit (and 1, 2, 4-bit, scaled to 0-255),
      uint16 for 16-bit, float32 or float64 for float TIFF (float16 is widened to float32).
      Float values are returned as stored, never rescaled. Other integer TIFFs (int16,
      uint32...) are returned as stored.
    - Grey images (L, 16-bit grey, bilevel "1" as 0/255, float grey) come back (H, W).
    - Colour images come back (H, W, 3) RGB: palette (P) without transparency, CMYK,
      YCbCr and RGBX are converted to RGB.
    - Any image with alpha comes back (H, W, 4) RGBA: RGBA, grey+alpha (LA, with the grey
      copied to R, G and B), palette or colour-key transparency (tRNS, GIF), TIFF with an
      alpha ExtraSample (associated alpha is returned as stored, not un-premultiplied).
    - TIFFs with other band counts come back (H, W, S) with every band, as stored. A
      4-band TIFF without alpha is (H, W, 4) too; ``return_alpha=True`` tells them apart.
    - TIFFs whose channels are stored as pages (an OME-TIFF or ImageJ hyperstack with a C
      axis, axes ``CYX``) come back (H, W, C), every channel a band, none of them alpha.
    - TIFF stacks (a Z, T or other page axis: ``ZYX``, ``ZCYX``, ``TYX``, a plain series of
      pages of one shape) are refused unless ``plane`` picks one of their planes (with all
      its channels). A TIFF's first series is its image; pages of another series (another
      shape: a thumbnail, a second image written on its own) are not read.
    - Multi-frame files (animated GIF, PNG or WebP, multi-picture JPEG): the first frame, or
      frame ``plane``.
    - The EXIF (or TIFF) orientation is applied, so the picture comes back upright.

    Pillow reads PNG, JPEG, GIF, BMP and WebP; OpenCV reads 16-bit colour PNG; tifffile
    reads TIFF (Pillow reads the TIFF variants tifffile needs imagecodecs for).
    The input file is only read.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.
    max_pixels : int, optional
        Largest number of pixels (width x height) to accept. The size is read from the
        header, so a larger image is refused before it is decoded. Default: Pillow's
        ``PIL.Image.MAX_IMAGE_PIXELS``, read at call time (no limit if that is None).
    return_alpha : bool, default False
        If True, return ``(pixels, alpha)``: the pixels without their alpha channel, and
        the alpha channel as an (H, W) array of the same dtype, or None if the image has
        no alpha.
    plane : int, optional
        Which plane (0-based) of a TIFF stack, or frame of a multi-frame file, to read. A
        stack's planes are numbered in the order of its page axes (for ``ZTCYX``, plane
        ``z * T + t``). Default: a multi-frame file's first frame; a TIFF stack is refused.

    Returns
    -------
    image : (H, W) or (H, W, C) ndarray
        C-contiguous and writeable. C is 3 (RGB), 4 (RGBA) or a TIFF's band count.
    alpha : (H, W) ndarray or None
        Only with ``return_alpha=True``.

    Raises
    ------
    ImageNotFoundError
        The path does not exist or is a directory.
    NotAnImageError
        The file is not in a format kmseg reads.
    CorruptImageError
        The file is truncated or corrupt.
    ImageTooLargeError
        The image has more than ``max_pixels`` pixels.
    InvalidImageDataError
        A float image holds NaN or infinite values, or the TIFF is a stack of planes and
        ``plane`` is not given.
    ParameterError, ParameterTypeError
        ``path``, ``max_pixels`` or ``plane`` is not valid (a ``plane`` beyond the file's
        planes or frames: the message names their range).

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> rgb = np.zeros((2, 3, 3), np.uint8); rgb[..., 0] = 255
    >>> path = save_image(os.path.join(tmp.name, "red.png"), rgb)
    >>> image = load_image(path)
    >>> image.shape, image.dtype, image[0, 0].tolist()
    ((2, 3, 3), dtype('uint8'), [255, 0, 0])
    >>> tmp.cleanup()
    """
    name = _path_str(path)
    _check_max_pixels(max_pixels)
    if not isinstance(return_alpha, (bool, np.bool_)):
        raise ParameterTypeError(f"return_alpha={return_alpha!r} is not a bool; pass True or False")
    plane = check_plane(plane)
    fmt, head = _sniff(name)
    with _pillow_settings() as default_limit:
        limit = default_limit if max_pixels is None else int(max_pixels)
        png16 = fmt == "PNG" and head[12:16] == b"IHDR" and head[24] == 16
        if fmt == "TIFF":
            arr, has_alpha = _load_tiff(name, limit, plane)
        elif png16 and head[25] in (2, 4, 6) and not plane:  # colour types RGB, grey+alpha, RGBA
            arr, has_alpha = _load_png16_colour(name, head, limit)
        else:  # (a later frame of an animated 16-bit colour PNG: Pillow's 8 bits)
            arr, has_alpha = _load_pillow(name, fmt, limit, png16, plane)
    if arr.dtype.kind == "c":
        raise InvalidImageDataError(f"{name}: holds complex values; kmseg needs real pixel values")
    if arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    if arr.dtype.kind == "f":
        for bad, test in (("NaN", np.isnan), ("infinite", np.isinf)):
            if test(arr).any():
                raise InvalidImageDataError(
                    f"{name}: contains {bad} values; kmseg cannot cluster them, so replace them "
                    "(for example with numpy.nan_to_num) and save the image again"
                )
    arr = np.require(arr.astype(arr.dtype.newbyteorder("="), copy=False), requirements=["C", "W"])
    if not return_alpha:
        return arr
    if not has_alpha:
        return arr, None
    return np.ascontiguousarray(arr[..., :3]), np.ascontiguousarray(arr[..., 3])


# --------------------------------------------------------------------------- writing


# Why the system refuses to write a file at a path: the path's fault, or a full disk. Other errors
# (too many open files, a failing device...) are not the output path's and are raised as they are.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_REFUSED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}) | _FULL_ERRNOS


def file_in_the_way(folder: PathLike) -> Path | None:
    """The first of ``folder``'s parents, or ``folder`` itself, that exists and is not a folder,
    so that nothing can be written under it; None when there is none (``folder`` may not exist yet)."""
    path = Path(folder)
    for p in reversed((path, *path.parents)):
        if not os.path.exists(p):
            return None
        if not os.path.isdir(p):
            return p
    return None


def _blocked(folder: str, blocker: Path) -> str:
    """The message for a ``folder`` that cannot be made because ``blocker``, on its path, is a file."""
    return (f"cannot create the folder {folder!r}: {str(blocker)!r} is a file, not a folder; "
            "pass a folder whose path does not go through a file")


def folder_problem(directory: PathLike) -> str | None:
    """Why no outputs can be written into ``directory`` because a file is in the way (it is a
    file, or its path goes through one), and the fix; None when no file is in the way."""
    blocker = file_in_the_way(directory)
    if blocker is None:
        return None
    if blocker == Path(directory):
        return f"{os.fspath(directory)!r} is a file, not a folder; pass a folder for the outputs, or a new name to make one"
    return _blocked(os.fspath(directory), blocker)


def through_a_file(target: Path) -> str | None:
    """Why the file ``target`` cannot be written because a file is on its path
    (``photo.jpg/x.png``), and the fix; None when none is."""
    blocker = file_in_the_way(target.parent)
    if blocker is None:
        return None
    return f"{target}: {str(blocker)!r} is a file, not a folder, so nothing can be written inside it; pass a path in a folder"


def _fix_for(code: int | None, folder: str = "a path in a folder") -> str:
    """What to do when the system refused to write with error number ``code``."""
    if code in _FULL_ERRNOS:
        return "free some space, or pass a path on another disk"
    return f"pass {folder} you can write to"


def make_folder(folder: PathLike, target: PathLike | None = None) -> Path:
    """Create ``folder`` and its missing parents, or raise :class:`OutputError` saying why it
    cannot be made (a file in the way, no permission...) and what to do. ``target``: the file that
    is to be written in it, named first in the message."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = file_in_the_way(path)
        code = errno.ENOTDIR if blocker is not None else exc.errno
        if target is None:
            message = (_blocked(str(path), blocker) if blocker is not None else
                       f"cannot create the folder {str(path)!r} ({exc.strerror}); {_fix_for(code, 'a folder')}")
        elif blocker is not None:
            message = (f"{target}: cannot create its folder {str(path)!r}: {str(blocker)!r} is a file, not a folder; "
                       "pass a path in a folder whose path does not go through a file")
        else:
            message = f"{target}: cannot create its folder {str(path)!r} ({exc.strerror}); {_fix_for(code)}"
        raise cannot_write(message, code) from None
    return path


def _is_a_directory(target: Path) -> OutputError:
    return cannot_write(f"{target}: is a directory; pass a file path inside it", errno.EISDIR)


def refusal(target: Path, exc: OSError) -> OutputError | None:
    """The :class:`OutputError` to raise for ``exc``, the system's refusal to write the file
    ``target`` (no permission, a read-only or full disk, a folder in its place), saying why and
    what to do; None when ``exc`` is another failure (a failing device...), raised as it is."""
    if exc.errno not in _REFUSED_ERRNOS:
        return None
    if exc.errno == errno.EISDIR:
        return _is_a_directory(target)
    return cannot_write(f"{target}: cannot be written in {str(target.parent)!r} ({exc.strerror}); "
                        f"{_fix_for(exc.errno)}", exc.errno)


def same_file(path: PathLike, source: PathLike | None) -> bool:
    """Whether ``path`` is the existing file ``source`` (an input), under any name: an output
    there would overwrite it, which kmseg never does, not even with ``force``."""
    return bool(source) and os.path.isfile(source) and os.path.exists(path) and os.path.samefile(path, source)


def _output_path(path: object, force: object) -> Path:
    """Check an output path and ``force`` before anything is encoded or written."""
    target = Path(_path_str(path))
    if not isinstance(force, (bool, np.bool_)):
        raise ParameterTypeError(f"force={force!r} is not a bool; pass True or False")
    if target.is_dir():
        raise _is_a_directory(target)
    problem = through_a_file(target)
    if problem is not None:
        raise cannot_write(problem, errno.ENOTDIR)
    if target.exists() and not force:
        raise exists_already(target)
    return target


def publish(tmp: str | os.PathLike[str], target: Path, force: bool) -> None:
    """Move a finished temporary file onto *target*; refuse to overwrite an existing one unless
    *force*. :class:`OutputError` if the system refuses the move (a folder in its place...)."""
    try:
        _move(tmp, target, force)
    except OSError as exc:
        error = refusal(target, exc)
        if error is None:
            raise
        raise error from None


def _move(tmp: str | os.PathLike[str], target: Path, force: bool) -> None:
    if force:
        os.replace(tmp, target)
        return
    exists = exists_already(target)
    try:
        os.link(tmp, target)  # fails if target exists, even if it appeared a moment ago
    except FileExistsError:
        raise exists from None
    except OSError:  # no hard links on this file system: check, then replace
        if target.exists():
            raise exists from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)


def write_bytes(path: PathLike, data: bytes | bytearray | memoryview, *, force: bool = False) -> Path:
    """Write *data* to *path* atomically, refusing to overwrite unless *force*.

    The bytes go to a hidden temporary file in the same directory, which is fsynced and
    then moved onto *path*, so *path* either keeps its old content or holds all of
    *data*. The temporary file is removed if anything fails. Missing parent directories
    are created.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    data : bytes, bytearray or memoryview
        The content.
    force : bool, default False
        Overwrite *path* if it exists.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    OutputExistsError
        *path* exists and ``force`` is False; nothing is written.
    OutputError
        *path* is a directory, or goes through a file (``photo.jpg/x.png``), or its folder
        cannot be made or written in (no permission, a read-only or full disk). It is an
        ``OSError`` (:class:`OutputPermissionError`, a ``PermissionError``, when permission is
        denied), and a :class:`ParameterError` as before.
    ParameterTypeError
        An argument has the wrong type.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = write_bytes(os.path.join(tmp.name, "sub", "a.bin"), b"abc")
    >>> path.read_bytes()
    b'abc'
    >>> tmp.cleanup()
    """
    target = _output_path(path, force)
    _check_data(target, data)
    make_folder(target.parent, target)
    tmp = _stage(target, data)
    try:
        publish(tmp, target, bool(force))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_folder(target.parent)
    return target


def _check_data(target: Path, data: object) -> None:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ParameterTypeError(
            f"{target}: data must be bytes, bytearray or memoryview, not {type(data).__name__}; "
            "use write_text for str"
        )


def _stage(target: Path, data: bytes | bytearray | memoryview) -> str:
    """*data* in a new hidden temporary file beside *target*, fsynced; the file's path. Removed
    again if anything fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:  # os.open, not mkstemp, so the file gets the usual umask permissions
        tmp = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)
            break
        except FileExistsError:
            continue
        except OSError as exc:
            error = refusal(target, exc)
            if error is None:
                raise
            raise error from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        error = refusal(target, exc) if isinstance(exc, OSError) else None  # a full disk
        if error is None:
            raise
        raise error from None
    return tmp


def _sync_folder(folder: Path) -> None:
    """Make the renames in *folder* durable (POSIX; elsewhere nothing to do)."""
    with contextlib.suppress(OSError, AttributeError):
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_files(
    files: Mapping[str, tuple[PathLike, Callable[[], bytes | bytearray | memoryview]]],
    *,
    force: bool = False,
    threads: int = 1,
) -> dict[str, Path]:
    """Write a set of files as one: every one of them, or none.

    Every target is checked first, as :func:`write_bytes` checks it (a directory or an
    existing file in its place without ``force``, a path through a file), and the folders
    are made. Then each file's bytes are made, ``threads`` files at a time, and written to a
    hidden temporary file beside its target; only when all are written are they moved into
    place (:func:`publish_all`). If anything fails, the temporary files are removed, and so are
    the targets this call had moved into place already, the old files ``force`` replaced are put
    back, and the error is raised: a failed set leaves none of its files, and the files it was
    to overwrite as they were.

    Parameters
    ----------
    files : mapping
        Kind -> (path, function that makes the file's bytes). A function runs once, in a
        worker thread when ``threads > 1``; it may raise, which fails the set.
    force : bool, default False
        Overwrite existing targets.
    threads : int, default 1
        Files made and written at a time.

    Returns
    -------
    paths : dict
        Kind -> the path written, in the order of ``files``.

    Raises
    ------
    OutputExistsError
        A target exists and ``force`` is False; nothing is written.
    OutputError, ParameterTypeError
        As :func:`write_bytes`, for any target; or an error a function raised.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> a, b = (os.path.join(tmp.name, n) for n in ("a.txt", "b.txt"))
    >>> write_files({"a": (a, lambda: b"1"), "b": (b, lambda: 1 / 0)})
    Traceback (most recent call last):
    ZeroDivisionError: division by zero
    >>> os.listdir(tmp.name)
    []
    >>> sorted(write_files({"a": (a, lambda: b"1"), "b": (b, lambda: b"2")}))
    ['a', 'b']
    >>> tmp.cleanup()
    """
    targets = {kind: _output_path(path, force) for kind, (path, _) in files.items()}
    folders = list(dict.fromkeys(t.parent for t in targets.values()))
    for folder in folders:
        make_folder(folder)
    staged: dict[str, str] = {}
    lock = threading.Lock()

    def stage(kind: str) -> None:
        target = targets[kind]
        data = files[kind][1]()
        _check_data(target, data)
        tmp = _stage(target, data)
        with lock:
            staged[kind] = tmp

    try:
        if threads > 1 and len(files) > 1:
            with ThreadPoolExecutor(max_workers=min(threads, len(files))) as pool:
                futures = [pool.submit(stage, kind) for kind in files]
                try:
                    for future in futures:
                        future.result()
                except BaseException:
                    for future in futures:
                        future.cancel()  # those not started; the pool waits for the running ones
                    raise
        else:
            for kind in files:
                stage(kind)
        publish_all([(staged[kind], targets[kind]) for kind in files], bool(force))
    except BaseException:
        for tmp in staged.values():  # those moved into place are gone already
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise
    for folder in folders:
        _sync_folder(folder)
    return dict(targets)


def publish_all(moves: list[tuple[str | os.PathLike[str], Path]], force: bool) -> None:
    """:func:`publish` each finished temporary file onto its target, in order, as one set.

    With ``force``, the file in a target's place is kept first under a hidden name beside it,
    and deleted only once every file of the set is in place. If one cannot be moved, the targets
    moved before it are taken back (the files they replaced put back, the others removed) and the
    error is raised: the folder is left as it was (the temporary files not moved are the caller's
    to remove).
    """
    done: list[tuple[Path, str | None]] = []  # each target in place, and where its old file is kept
    try:
        for tmp, target in moves:
            kept = _keep(target) if force else None
            try:
                publish(tmp, target, force)
            except BaseException:
                if kept is not None:
                    with contextlib.suppress(OSError):
                        _put_back(kept, target)
                raise
            done.append((target, kept))
    except BaseException:
        for target, kept in reversed(done):
            with contextlib.suppress(OSError):
                if kept is None:
                    os.unlink(target)
                else:
                    _put_back(kept, target)
        raise
    for _, kept in done:
        if kept is not None:
            with contextlib.suppress(OSError):
                os.unlink(kept)


def _keep(target: Path) -> str | None:
    """Keep the file in ``target``'s place under a new hidden name beside it, for :func:`_put_back`,
    and return that name: a hard link, so that the target keeps its file meanwhile, or where the
    file system has none, the file moved aside. None when there is no file there (a folder there
    is left for the move to refuse)."""
    if not os.path.lexists(target) or (os.path.isdir(target) and not os.path.islink(target)):
        return None
    while True:
        kept = str(target.parent / f".{target.name}.{secrets.token_hex(4)}.old")
        try:
            os.link(target, kept, follow_symlinks=False)  # a symbolic link is kept as itself
        except FileExistsError:
            continue
        except FileNotFoundError:  # gone meanwhile: nothing to keep
            return None
        except (OSError, NotImplementedError):  # no hard links on this file system
            try:
                os.replace(target, kept)
            except OSError as exc:
                error = refusal(target, exc)
                if error is None:
                    raise
                raise error from None
        return kept


def _put_back(kept: str, target: Path) -> None:
    """Put the file :func:`_keep` kept back in ``target``'s place."""
    os.replace(kept, target)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(kept)  # still there if the target still was that file: renaming a file onto itself does nothing


def _settle_backup(kept: str | os.PathLike[str], target: Path) -> str:
    """Settle a backup of ``target`` (``.NAME.xxxxxxxx.old`` beside it, made by :func:`publish_all`
    with ``force``) that a write stopped in the middle left behind, its process killed between
    keeping the backup and deleting it. A backup is deleted only when it is a second name of the
    very file at ``target``: never when it is the only copy of a file. Which it is can be told
    from the files themselves; what was done is returned:

    - ``"removed"``: the backup and ``target`` are the same file (a hard link; the write was
      stopped before it replaced ``target``), so the backup is redundant;
    - ``"restored"``: there is no file at ``target`` (the file was moved aside, on a file system
      without hard links, and the write stopped before putting its own there): the backup is put
      back;
    - ``"restored"``: another file is at ``target``, last written no later than the backup was
      made: the stopped write put it there, and did not finish its set. The backup, the only copy
      of the file it replaced, is put back in its place, as :func:`publish_all` puts back the
      files it replaced when it cannot finish (the stopped write's file goes; the outputs that
      write made without replacing anything stay);
    - ``"kept"``: ``target`` was written after the backup was made (rewritten by a later run or
      by hand): the backup is the only copy of an earlier version, and the newer file is not
      touched either. It stays, for the user to delete.

    Errors (the backup or ``target`` gone meanwhile, no permission) leave things as they are.
    """
    kept = os.fspath(kept)
    try:
        backup = os.lstat(kept)
        try:
            now = os.lstat(target)
        except FileNotFoundError:
            _move(kept, target, False)  # refused if a file appeared there meanwhile
            return "restored"
        if (backup.st_dev, backup.st_ino) == (now.st_dev, now.st_ino):
            os.unlink(kept)
            return "removed"
        # The stopped write's file was written (staged) before its backup was made, which also
        # changed the backup's inode: its ctime. A file written after that is a later one.
        if stat.S_ISREG(now.st_mode) and now.st_mtime_ns <= backup.st_ctime_ns:
            _put_back(kept, target)
            return "restored"
    except OSError:  # OutputExistsError included
        pass
    return "kept"


def write_text(path: PathLike, text: str, *, force: bool = False) -> Path:
    """Write *text* to *path* as UTF-8, atomically (see :func:`write_bytes`).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    text : str
        The content, written as is (no newline is added).
    force : bool, default False
        Overwrite *path* if it exists.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    OutputExistsError
        *path* exists and ``force`` is False.
    OutputError
        A path that cannot be written (see :func:`write_bytes`).

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> write_text(os.path.join(tmp.name, "a.txt"), "héllo\\n").read_bytes()
    b'h\\xc3\\xa9llo\\n'
    >>> tmp.cleanup()
    """
    if not isinstance(text, str):
        raise ParameterTypeError(f"{_path_str(path)}: text must be a str, not {type(text).__name__}")
    return write_bytes(path, text.encode("utf-8"), force=force)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_json(path: PathLike, obj: Any, *, force: bool = False) -> Path:
    """Write *obj* as JSON (indent 2, UTF-8, trailing newline), atomically.

    numpy scalars and arrays are written as numbers and lists, paths as strings.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    obj : dict, list, str, int, float, bool or None
        The data; floats must be finite.
    force : bool, default False
        Overwrite *path* if it exists.

    Returns
    -------
    path : pathlib.Path

    Raises
    ------
    OutputExistsError
        *path* exists and ``force`` is False.
    OutputError
        A path that cannot be written (see :func:`write_bytes`).
    ParameterError
        *obj* holds NaN or infinity, or a circular reference.
    ParameterTypeError
        *obj* holds a value JSON cannot store.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> print(write_json(os.path.join(tmp.name, "a.json"), {"k": np.int64(3)}).read_text(), end="")
    {
      "k": 3
    }
    >>> tmp.cleanup()
    """
    return write_bytes(path, json_bytes(obj, _path_str(path)), force=force)


def json_bytes(obj: Any, name: str = "obj") -> bytes:
    """The bytes :func:`write_json` writes for *obj* (``name`` begins the error messages).

    Examples
    --------
    >>> json_bytes({"k": np.int64(3)})
    b'{\\n  "k": 3\\n}\\n'
    """
    try:
        text = json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False, default=_json_default)
    except TypeError as exc:
        raise ParameterTypeError(
            f"{name}: cannot write obj as JSON ({exc}); convert it to dicts, lists, "
            "str, int, float, bool and None first"
        ) from exc
    except ValueError as exc:
        raise ParameterError(
            f"{name}: cannot write obj as JSON ({exc}); replace NaN and infinity "
            "with None and remove circular references"
        ) from exc
    return (text + "\n").encode("utf-8")


_SAVE_FORMATS = {
    "": "PNG",
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
    ".bmp": "BMP",
}
_SAVE_DTYPES = {
    "PNG": ("uint8", "uint16"),
    "TIFF": ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16", "float32", "float64"),
    "JPEG": ("uint8",),
    "WEBP": ("uint8",),
    "BMP": ("uint8",),
}


#: zlib strategies for PNG (zlib's own numbering, which Pillow and OpenCV both take).
PNG_STRATEGIES = {"default": 0, "filtered": 1, "huffman": 2, "rle": 3, "fixed": 4}


def _encode(name: str, arr: np.ndarray, fmt: str, compress_level: int = 6, png_strategy: str = "default",
            alpha: bool | None = None) -> bytes:
    """Encode a checked array in memory (``compress_level``, ``png_strategy``: PNG's zlib settings;
    ``alpha``: whether the last of 2 or 4 channels is alpha, None for 4 channels only)."""
    strategy = PNG_STRATEGIES[png_strategy]
    n_channels = 1 if arr.ndim == 2 else arr.shape[2]
    if alpha is None:
        alpha = n_channels == 4
    alpha = bool(alpha) and n_channels in (2, 4)
    if fmt == "TIFF":
        buf = io.BytesIO()
        rgb = n_channels == 3 or (n_channels == 4 and alpha)
        tifffile.imwrite(
            buf,
            arr,
            photometric="rgb" if rgb else "minisblack",
            planarconfig="contig" if arr.ndim == 3 else None,
            extrasamples=("unassalpha",) if alpha else None,
            compression="zlib",
        )
        return buf.getvalue()
    if arr.dtype == np.uint16 and n_channels > 1:  # 16-bit colour PNG: Pillow cannot
        bgr = arr[..., ::-1] if n_channels == 3 else arr[..., [2, 1, 0, 3]]
        params = [cv2.IMWRITE_PNG_COMPRESSION, compress_level, cv2.IMWRITE_PNG_STRATEGY, strategy]
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(bgr), params)
        if not ok:
            raise ParameterError(f"{name}: OpenCV could not encode this array as a 16-bit PNG")
        return encoded.tobytes()
    options: dict[str, Any] = {"JPEG": {"quality": 95}, "WEBP": {"lossless": True},
                               "PNG": {"compress_level": compress_level, "compress_type": strategy}}.get(fmt, {})
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format=fmt, **options)
    return buf.getvalue()


def save_image(path: PathLike, array: np.ndarray, *, force: bool = False, compress_level: int = 6,
               png_strategy: str = "default", alpha: bool | None = None) -> Path:
    """Encode *array* as an image and write it atomically (see :func:`write_bytes`).

    The format comes from the suffix: ``.png`` (also when there is no suffix), ``.jpg``
    or ``.jpeg`` (quality 95), ``.tif`` or ``.tiff`` (deflate, via tifffile), ``.webp``
    (lossless; grey is stored as RGB) and ``.bmp``. Bool arrays are saved as uint8 0/255.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    array : (H, W), (H, W, 3) or (H, W, 4) ndarray
        Grey, RGB or RGBA, in that channel order. uint8 for every format; uint16 for PNG
        and TIFF; for TIFF only, every other integer dtype (int8, int16, int32, int64,
        uint32, uint64) and float16, float32 and float64, which :func:`load_image` reads
        back as they are (float16 as float32). TIFF also takes (H, W, C) with any number of
        bands. JPEG and BMP take no alpha.
    force : bool, default False
        Overwrite *path* if it exists.
    compress_level : int, default 6
        PNG only: the zlib level, 0 (none) to 9 (smallest), as in Pillow, whose default 6 is
        kept. 1 (OpenCV's default) suits photographs: on a 12 MP photo it wrote 17% more
        bytes in under a third of the time.
    png_strategy : {"default", "filtered", "huffman", "rle", "fixed"}
        PNG only: zlib's strategy (Pillow's ``compress_type``, OpenCV's
        ``IMWRITE_PNG_STRATEGY``). ``"rle"`` suits photographs best: on a 12 MP photo it
        wrote 1% fewer bytes than level 6 in a quarter of the time. Images of a few flat
        colours (a segmented image) come out smaller with ``"default"``.
    alpha : bool, optional
        Whether the last of 2 or 4 channels is alpha (see :func:`encode_image`). Default:
        for 4 channels (RGBA), not for 2. Pass ``alpha=False`` to keep 4 bands of data as
        4 bands in a TIFF.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    OutputExistsError
        *path* exists and ``force`` is False; nothing is written.
    OutputError
        A path that cannot be written (see :func:`write_bytes`).
    ParameterError
        Unknown suffix, a shape the format cannot hold, ``compress_level`` not in 0-9, or an
        unknown ``png_strategy``.
    ParameterTypeError
        A dtype the format cannot hold.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> grey = np.array([[0, 65535]], np.uint16)
    >>> path = save_image(os.path.join(tmp.name, "grey.png"), grey)
    >>> load_image(path).tolist()
    [[0, 65535]]
    >>> ct = np.array([[-1024, 3071]], np.int16)
    >>> load_image(save_image(os.path.join(tmp.name, "ct.tif"), ct)).dtype
    dtype('int16')
    >>> tmp.cleanup()
    """
    _check_encoding(compress_level, png_strategy)
    target = _output_path(path, force)
    return write_bytes(target, encode_image(target, array, compress_level=compress_level, png_strategy=png_strategy,
                                            alpha=alpha), force=force)


def _check_encoding(compress_level: object, png_strategy: object) -> None:
    if isinstance(compress_level, bool) or not isinstance(compress_level, numbers.Integral) or not 0 <= compress_level <= 9:
        raise ParameterError(f"compress_level={compress_level!r} is out of range; pass a whole number from 0 (none) to 9 (smallest)")
    if not isinstance(png_strategy, str) or png_strategy not in PNG_STRATEGIES:
        raise ParameterError(f"png_strategy={png_strategy!r} is not a zlib strategy; pass one of {', '.join(PNG_STRATEGIES)}")


def encode_image(path: PathLike, array: np.ndarray, *, compress_level: int = 6, png_strategy: str = "default",
                 alpha: bool | None = None) -> bytes:
    """The bytes :func:`save_image` writes for *array* at *path*, checked and encoded in
    memory; nothing is written (the format comes from the suffix of *path*, whose name
    begins the messages).

    ``alpha`` says whether the last of 2 or 4 channels is alpha; None (the default) means
    it is for 4 channels (RGBA) and not for 2. A TIFF marks that band as alpha (an
    ``ExtraSamples`` of unassociated alpha) only when it is, so :func:`load_image` reads the
    bands back as they were; 4 bands that are not RGBA cannot be PNG, JPEG, WebP or BMP.

    Raises
    ------
    ParameterError, ParameterTypeError
        As :func:`save_image`, for everything but the path itself; 4 bands without alpha
        in a format other than TIFF.

    Examples
    --------
    >>> encode_image("a.png", np.zeros((1, 1), np.uint8))[:4]
    b'\\x89PNG'
    """
    _check_encoding(compress_level, png_strategy)
    target = Path(_path_str(path))
    fmt = _SAVE_FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ParameterError(
            f"{target}: unknown image suffix {target.suffix!r}; use .png, .jpg, .jpeg, .tif, "
            ".tiff, .webp or .bmp"
        )
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * np.uint8(255)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    shape_ok = arr.ndim == 2 or (arr.ndim == 3 and (arr.shape[2] in (3, 4) or fmt == "TIFF"))
    no_alpha = fmt in ("JPEG", "BMP")  # BMP alpha is not read back by most readers, Pillow included
    if not shape_ok or 0 in arr.shape or (no_alpha and arr.ndim == 3 and arr.shape[2] == 4):
        wanted = "(H, W) or (H, W, 3)" if no_alpha else "(H, W), (H, W, 3) or (H, W, 4)"
        raise ParameterError(
            f"{target}: cannot save an array of shape {arr.shape} as {fmt}; pass a non-empty "
            f"{wanted} array" + (f" ({fmt} keeps no alpha: save as .png)" if no_alpha else "")
        )
    if fmt != "TIFF" and arr.ndim == 3 and arr.shape[2] == 4 and alpha is not None and not alpha:
        raise ParameterError(
            f"{target}: cannot save 4 bands without alpha as {fmt}, which would show the fourth as transparency; "
            "save as .tif"
        )
    allowed = _SAVE_DTYPES[fmt]
    if arr.dtype.name not in allowed:
        tiff = arr.dtype.name in _SAVE_DTYPES["TIFF"]
        hint = f" ({'float' if arr.dtype.kind == 'f' else arr.dtype.name} data: save as .tif)" if tiff else ""
        holds = listed(allowed)
        raise ParameterTypeError(
            f"{target}: cannot save an array of dtype {arr.dtype} as {fmt}, which holds {holds}; convert it first, "
            f"for example array.astype(numpy.uint8){hint}"
        )
    return _encode(str(target), arr, fmt, compress_level, png_strategy, alpha)


# --------------------------------------------------------------------------- palettes


#: The palette files :func:`palette_bytes` makes, by suffix, in the order messages list them.
PALETTE_FORMATS = {
    ".gpl": "GIMP palette (GIMP, Inkscape, Krita)",
    ".ase": "Adobe Swatch Exchange",
    ".css": "CSS custom properties",
    ".json": "kmseg's palette JSON",
    ".png": "swatch strip image",
}


def _palette_suffix(fmt: object) -> str:
    """``fmt`` ("gpl", ".GPL"...) as a key of :data:`PALETTE_FORMATS`."""
    if not isinstance(fmt, str):
        raise ParameterTypeError(f"fmt={fmt!r} is not a str; pass one of {listed([f[1:] for f in PALETTE_FORMATS])}")
    suffix = "." + fmt.lower().removeprefix(".")
    if suffix not in PALETTE_FORMATS:
        raise ParameterError(f"fmt={fmt!r} is not a palette format; pass one of {listed([f[1:] for f in PALETTE_FORMATS])}")
    return suffix


def _swatches(palette: object) -> list[Any]:
    """A Segmentation or the list its ``palette()`` returns, checked, as ``_palette_files.Swatch``es."""
    from ._palette_files import Swatch
    from .segment import Segmentation

    fix = "pass Segmentation.palette() or the Segmentation itself"
    if isinstance(palette, Segmentation):
        palette = palette.palette()
    if not isinstance(palette, (list, tuple)):
        raise ParameterTypeError(f"palette must be a Segmentation or a list of colours, not {type(palette).__name__}; {fix}")
    if not palette:
        raise ParameterError(f"palette is empty; {fix}, which holds at least one colour")
    out = []
    for n, entry in enumerate(palette):
        where = f"palette[{n}]"
        if not isinstance(entry, Mapping):
            raise ParameterTypeError(f"{where}={entry!r:.80} is not a dict; {fix}")
        for key in ("index", "rgb", "fraction"):
            if key not in entry:
                raise ParameterError(f"{where} has no {key!r}; every colour needs index, rgb and fraction: {fix}")
        index, rgb, fraction = entry["index"], entry["rgb"], entry["fraction"]
        if isinstance(index, bool) or not isinstance(index, numbers.Integral) or index < 0:
            raise ParameterError(f"{where}: index={index!r} is not a cluster index; pass a whole number, 0 or more")
        if (not isinstance(rgb, (list, tuple, np.ndarray)) or len(rgb) != 3
                or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 0 <= v <= 255 for v in rgb)):
            raise ParameterError(f"{where}: rgb={rgb!r} is not a colour; pass three whole numbers from 0 to 255")
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= fraction <= 1:
            raise ParameterError(f"{where}: fraction={fraction!r} is not a share; pass a number from 0 to 1")
        swatch = Swatch(int(index), (int(rgb[0]), int(rgb[1]), int(rgb[2])), float(fraction))
        if "hex" in entry and str(entry["hex"]).lower() != swatch.hex:
            raise ParameterError(f"{where}: hex={entry['hex']!r} is not rgb={list(swatch.rgb)} ({swatch.hex}); "
                                 "correct one of them, or leave hex out")
        out.append(swatch)
    return out


def _palette_name(palette: object, name: object) -> str:
    """The palette's title in a .gpl or .css file: ``name``, else the stem of the Segmentation's
    source file, else "kmseg palette"."""
    from .segment import Segmentation

    if name is not None:
        if not isinstance(name, str):
            raise ParameterTypeError(f"name must be a str or None, not {type(name).__name__}; pass the palette's title")
        if any(ch < " " or ch == "\x7f" for ch in name):
            raise ParameterError(f"name={name!r} holds a line break or control character; pass a one-line title")
        return name
    source = palette.source if isinstance(palette, Segmentation) else None
    stem = Path(source).stem if source else ""
    return "".join(" " if ch < " " or ch == "\x7f" else ch for ch in stem) or "kmseg palette"


def palette_bytes(palette: Any, fmt: str, *, name: str | None = None) -> bytes:
    """A palette encoded as a file that designers' tools read, in memory.

    Every format lists the colours in the palette's order (largest share first) and writes
    each as its 8-bit display colour, the ``rgb`` and ``hex`` of :meth:`Segmentation.palette`:

    - ``gpl``: a GIMP palette, which GIMP, Inkscape and Krita read: UTF-8 text, a line
      ``R G B<tab>name`` per colour, named ``cluster 2 (31.4%)`` (its cluster index and share);
    - ``ase``: Adobe Swatch Exchange 1.0, which Photoshop, Illustrator and InDesign read (one
      global RGB colour per cluster, named as in the .gpl file);
    - ``css``: CSS custom properties on ``:root``, ``--kmseg-0`` for the largest share,
      ``--kmseg-1`` for the next..., each with a comment giving its cluster and share;
    - ``json``: from a Segmentation, its :meth:`~Segmentation.summary`, byte for byte the
      ``NAME-palette.json`` that :meth:`Segmentation.save` writes; from a list,
      ``{"palette": [...]}``, the same layout with the palette alone;
    - ``png``: a swatch strip, one 64 x 64 pixel square per colour, all the same width (a
      small share stays visible), left to right, largest share first; RGB, no alpha.

    Parameters
    ----------
    palette : Segmentation or list of dict
        The segmentation, or the list its :meth:`~Segmentation.palette` returns (each entry
        needs ``index``, ``rgb`` and ``fraction``; a ``hex``, if there, must match ``rgb``).
    fmt : {"gpl", "ase", "css", "json", "png"}
        The format, with or without its dot, in any case.
    name : str, optional
        The palette's title (the ``Name:`` of a .gpl file, the first comment of a .css file).
        Default: the stem of the Segmentation's source file, else ``"kmseg palette"``.

    Returns
    -------
    data : bytes

    Raises
    ------
    ParameterError
        An unknown ``fmt``, an empty palette or an entry that is not a colour, a ``name`` that
        holds a line break.
    ParameterTypeError
        An argument of the wrong type.

    Examples
    --------
    >>> pal = [{"index": 1, "rgb": [200, 30, 30], "fraction": 0.75}, {"index": 0, "rgb": [0, 0, 0], "fraction": 0.25}]
    >>> print(palette_bytes(pal, "gpl", name="demo").decode(), end="")  # doctest: +NORMALIZE_WHITESPACE
    GIMP Palette
    Name: demo
    Columns: 0
    # kmseg: 2 colours, largest share first
    200  30  30 cluster 1 (75.0%)
      0   0   0 cluster 0 (25.0%)
    >>> print(palette_bytes(pal, "css", name="demo").decode(), end="")
    /* kmseg palette: demo; 2 colours, largest share first */
    :root {
      --kmseg-0: #c81e1e; /* cluster 1, 75.0% */
      --kmseg-1: #000000; /* cluster 0, 25.0% */
    }
    >>> palette_bytes(pal, "ase")[:12]
    b'ASEF\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x02'
    """
    from . import _palette_files as files
    from .segment import Segmentation

    suffix = _palette_suffix(fmt)
    swatches = _swatches(palette)
    title = _palette_name(palette, name)
    if suffix == ".gpl":
        return files.gpl(swatches, title)
    if suffix == ".ase":
        return files.ase(swatches)
    if suffix == ".css":
        return files.css(swatches, title)
    if suffix == ".json":
        if isinstance(palette, Segmentation):
            return json_bytes(palette.summary())
        return json_bytes({"palette": list(palette)})
    return _encode("palette", files.strip(swatches), "PNG")


def write_palette(path: PathLike, palette: Any, *, name: str | None = None, force: bool = False) -> Path:
    """Write a palette file, in the format its suffix names, atomically (see :func:`write_bytes`).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write: ``.gpl``, ``.ase``, ``.css``, ``.json`` or ``.png`` (any case); see
        :func:`palette_bytes` for what each holds.
    palette : Segmentation or list of dict
        As :func:`palette_bytes` takes it.
    name : str, optional
        The palette's title, as :func:`palette_bytes` takes it.
    force : bool, default False
        Overwrite *path* if it exists.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Raises
    ------
    OutputExistsError
        *path* exists and ``force`` is False; nothing is written.
    OutputError
        A path that cannot be written (see :func:`write_bytes`).
    ParameterError, ParameterTypeError
        An unknown suffix, *path* is the image the Segmentation was made from (even with
        ``force``), or as :func:`palette_bytes`.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> pal = [{"index": 0, "rgb": [200, 30, 30], "fraction": 1.0}]
    >>> write_palette(os.path.join(tmp.name, "red.css"), pal).read_text().splitlines()[2]
    '  --kmseg-0: #c81e1e; /* cluster 0, 100.0% */'
    >>> tmp.cleanup()
    """
    target = Path(_path_str(path))
    if target.suffix.lower() not in PALETTE_FORMATS:
        what = f"unknown palette suffix {target.suffix!r}" if target.suffix else "no suffix to name the palette's format"
        raise ParameterError(f"{target}: {what}; use {listed(list(PALETTE_FORMATS))}")
    from .segment import Segmentation

    source = palette.source if isinstance(palette, Segmentation) else None
    if same_file(target, source):
        raise ParameterError(f"{target} is the image this palette was made from; inputs are never overwritten: "
                             "pass another path")
    target = _output_path(target, force)
    return write_bytes(target, palette_bytes(palette, target.suffix, name=name), force=force)


#: The palette files :func:`read_palette` reads, by suffix, in the order messages list them.
READABLE_PALETTES = (".json", ".gpl", ".ase", ".css", ".png")
#: The most colours a palette image (.png) may have: more is a picture, not a palette.
PALETTE_IMAGE_MAX_COLOURS = 256
#: The most pixels a palette image may have (a strip of 256 64-pixel squares has 1 M).
PALETTE_IMAGE_MAX_PIXELS = 16 << 20
#: Palette files larger than this are refused unread (kmseg's are a few kB).
PALETTE_MAX_BYTES = 64 << 20


def read_palette(path: PathLike) -> Any:
    """Read a palette file back, to label images with its colours (:meth:`kmseg.Palette.apply`,
    ``kmseg segment --palette``).

    By suffix (any case):

    - ``.json``: the ``NAME-palette.json`` that ``kmseg segment`` and
      :meth:`~kmseg.Segmentation.save` write (or :func:`write_palette`, or the web page's
      palette.json). Its ``centers``, in label order, are in the input's own units, and with its
      ``color_space``, ``dtype`` and ``space_centers`` they label exactly as the segmentation's
      :meth:`~kmseg.Segmentation.apply` does, on images of the same number of channels and the
      same units (any dtype, in Lab and HSV). A JSON of ``{"palette": [...]}`` alone (a palette
      list written by :func:`write_palette`) holds display colours, as the formats below.
    - ``.gpl``, ``.ase``, ``.css``: the designers' formats :func:`write_palette` writes, and
      GIMP palettes from GIMP, Inkscape or Krita (``R G B name`` lines after a ``GIMP Palette``
      header; comments, ``Name:`` and ``Columns:`` lines skipped), Adobe Swatch Exchange files
      of RGB or Gray swatches, and CSS custom properties of hex colours (``--name: #rrggbb;``).
      They hold 8-bit RGB display colours, so they label 8-bit RGB and RGBA images only, in
      any colour space (``"rgb"`` unless told); for any other image, use the
      ``NAME-palette.json``, which keeps the centres in the image's units.
    - ``.png``: a palette image, such as the swatch strip :func:`write_palette` writes or the
      palette PNGs of Lospec and of pixel-art tools (a row or grid of squares, any size): its
      distinct opaque colours, in reading order (left to right, then top to bottom), at most
      256 of them. 8-bit RGB display colours, as the formats above.

    Cluster ``i`` is the ``i``-th colour of the file, except in files kmseg wrote, which list
    the colours largest share first and name each after its cluster (``cluster 2 (31.4%)``):
    when every colour is so named, each takes its cluster's index back. A swatch strip has no
    names: its clusters are numbered largest share first.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    kmseg.Palette

    Raises
    ------
    PaletteNotFoundError
        There is no file at ``path`` (a ``FileNotFoundError``).
    PaletteFileError
        An unknown suffix, a file that cannot be read, or is not in its suffix's format, or is
        malformed (a ``ValueError``); the message names the line or the colour.

    Examples
    --------
    >>> import os, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> gpl = os.path.join(tmp.name, "mine.gpl")
    >>> with open(gpl, "w") as f:
    ...     _ = f.write("GIMP Palette\\nName: Mine\\n#\\n255   0   0\\tRed\\n  0   0 255\\tBlue\\n")
    >>> pal = read_palette(gpl)
    >>> pal.centers.tolist(), pal.display
    ([[255.0, 0.0, 0.0], [0.0, 0.0, 255.0]], True)
    >>> pal.apply(np.array([[[250, 10, 10], [0, 20, 200]]], np.uint8)).labels.tolist()
    [[0, 1]]
    >>> tmp.cleanup()
    """
    from . import _palette_files as files
    from .segment import Palette

    name = _path_str(path)
    suffix = Path(name).suffix.lower()
    if suffix not in READABLE_PALETTES:
        what = f"unknown palette suffix {Path(name).suffix!r}" if suffix else "no suffix to name the palette's format"
        raise PaletteFileError(f"{name}: {what}; kmseg reads {listed(list(READABLE_PALETTES))} palettes")
    data = _read_palette_bytes(name)
    try:
        if suffix == ".json":
            return _palette_json(data, name)
        if suffix == ".png":
            return Palette(_palette_image(data), dtype=np.uint8, display=True, source=name)
        if suffix == ".ase":
            entries = files.read_ase(data)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                line = data.count(b"\n", 0, exc.start) + 1
                raise files.Malformed(f"line {line} is not UTF-8 text; save the file as UTF-8") from None
            entries = files.read_gpl(text) if suffix == ".gpl" else files.read_css(text)
    except files.Malformed as exc:
        raise PaletteFileError(f"{name}: {exc}") from None
    rgb = [e.rgb for e in files.label_order(entries)]
    return Palette(rgb, dtype=np.uint8, display=True, source=name)


def _palette_image(data: bytes) -> np.ndarray:
    """The (k, 3) uint8 colours of a palette image's PNG bytes: its distinct opaque colours in
    reading order (see :func:`read_palette`)."""
    from . import _palette_files as files

    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise files.Malformed("is not a PNG image (it does not begin with PNG's signature); pass a palette image "
                              "saved as PNG")
    try:
        with _pillow_settings(), Image.open(io.BytesIO(data), formats=["PNG"]) as im:
            if im.width * im.height > PALETTE_IMAGE_MAX_PIXELS:
                raise files.Malformed(f"is {im.width} x {im.height} pixels, too large for a palette image; pass a "
                                      "palette image (a strip of swatches), or segment a picture to get its palette")
            if im.mode.startswith("I") or im.mode == "F":
                raise files.Malformed(f"is not 8-bit (Pillow mode {im.mode}); a palette image holds 8-bit colours, so save it as "
                                      "8-bit RGB")
            rgba = np.asarray(im.convert("RGBA"))
    except files.Malformed:
        raise
    except MemoryError:
        raise
    except Exception as exc:
        raise files.Malformed(f"cannot be decoded as a PNG image ({type(exc).__name__}: {exc}); re-export it "
                              "as PNG") from None
    opaque = rgba[..., :3][rgba[..., 3] > 0]
    if opaque.shape[0] == 0:
        raise files.Malformed("is fully transparent, so holds no colour; pass an image of opaque swatches")
    packed = (opaque[:, 0].astype(np.uint32) << 16) | (opaque[:, 1].astype(np.uint32) << 8) | opaque[:, 2]
    _, first = np.unique(packed, return_index=True)
    if first.shape[0] > PALETTE_IMAGE_MAX_COLOURS:
        raise files.Malformed(
            f"has {first.shape[0]} distinct colours, more than a palette image's {PALETTE_IMAGE_MAX_COLOURS}; it "
            "looks like a picture: segment it (kmseg palette) to get its palette, or pass a strip of swatches"
        )
    return opaque[np.sort(first)]


def _read_palette_bytes(name: str) -> bytes:
    try:
        st = os.stat(name)
    except FileNotFoundError:
        raise PaletteNotFoundError(f"{name}: no such file; check the path") from None
    except OSError as exc:
        raise PaletteFileError(f"{name}: cannot be opened ({exc.strerror}); check the path") from None
    if not stat.S_ISREG(st.st_mode):
        what = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise PaletteNotFoundError(f"{name}: is {what}, not a palette file; pass the path of a palette file")
    if st.st_size > PALETTE_MAX_BYTES:
        raise PaletteFileError(f"{name}: is {st.st_size / 2**20:.0f} MB, too large for a palette file; check the path")
    try:
        with open(name, "rb") as f:
            return f.read()
    except OSError as exc:
        raise PaletteFileError(f"{name}: cannot be read ({exc.strerror}); check the file's permissions") from None


def _palette_json(data: bytes, name: str) -> Any:
    """The :class:`kmseg.Palette` of a palette JSON's bytes (see :func:`read_palette`)."""
    from . import _palette_files as files
    from .segment import Palette

    fix = "pass the NAME-palette.json that kmseg segment wrote"
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise files.Malformed("is not UTF-8 text; it is not a palette JSON, so check the path") from None
    except json.JSONDecodeError as exc:
        raise files.Malformed(f"line {exc.lineno}: not valid JSON ({exc.msg}); {fix}") from None
    if not isinstance(obj, dict) or not ("centers" in obj or "palette" in obj):
        raise files.Malformed(f"has neither 'centers' nor 'palette'; {fix}")
    if "centers" not in obj:
        return Palette(_palette_list(obj["palette"]), dtype=np.uint8, display=True, source=name)
    space = obj.get("color_space")
    if space is not None and space not in ("rgb", "lab", "hsv"):
        raise files.Malformed(f"color_space {space!r} is not 'rgb', 'lab' or 'hsv'; {fix}")
    try:
        return Palette(obj["centers"], color_space=space, dtype=obj.get("dtype"),
                       space_centers=obj.get("space_centers"), source=name)
    except KmsegError as exc:  # (the checks of Palette, in its own words)
        raise files.Malformed(f"{exc}".replace("centers", "'centers'", 1) if str(exc).startswith("centers")
                              else str(exc)) from None


def _palette_list(palette: Any) -> list[list[int]]:
    """The 8-bit colours of a palette list (``[{"index", "rgb", ...}, ...]``), in label order."""
    from . import _palette_files as files

    try:
        swatches = _swatches(palette)
    except KmsegError as exc:
        raise files.Malformed(str(exc)) from None
    index = sorted(s.index for s in swatches)
    if index != list(range(len(swatches))):
        raise files.Malformed(f"the palette's indices are {index[:8]}{'...' if len(index) > 8 else ''}, not 0 to "
                              f"{len(swatches) - 1} each once; write each cluster's index once")
    return [list(s.rgb) for s in sorted(swatches, key=lambda s: s.index)]
