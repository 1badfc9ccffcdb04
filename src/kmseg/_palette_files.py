"""Encoders of :func:`kmseg.io.palette_bytes`, and decoders of :func:`kmseg.io.read_palette`:
a palette as the files designers' tools read.

Each encoder takes the palette already checked by :func:`kmseg.io.palette_bytes` (a list of
:class:`Swatch`, largest share first) and returns the file's bytes, or for the swatch strip
its pixels. They check nothing.

Each decoder takes a file's text (bytes for .ase) and returns its colours as :class:`Entry`
tuples, in the file's order, or raises :class:`Malformed` saying where and what is wrong
(:func:`kmseg.io.read_palette` puts the file's name in front). :func:`label_order` then puts
the entries of a file kmseg wrote back in label order.
"""

from __future__ import annotations

import math
import re
import struct
from typing import NamedTuple

import numpy as np

__all__ = ["SWATCH_SIZE", "Entry", "Malformed", "Swatch", "ase", "css", "gpl", "label_order", "read_ase", "read_css",
           "read_gpl", "strip"]

#: Width and height, in pixels, of each colour's band in the swatch strip (``.png``).
SWATCH_SIZE = 64


class Swatch(NamedTuple):
    """One colour of a palette, as every format writes it."""

    index: int  # the cluster's label
    rgb: tuple[int, int, int]  # 8-bit display colour
    fraction: float  # share of the pixels

    @property
    def hex(self) -> str:
        return "#{:02x}{:02x}{:02x}".format(*self.rgb)

    @property
    def label(self) -> str:
        """The colour's name in a .gpl or .ase file: ``cluster 2 (31.4%)``."""
        return f"cluster {self.index} ({100 * self.fraction:.1f}%)"


def _colours(n: int) -> str:
    return f"{n} colour" if n == 1 else f"{n} colours"


def gpl(swatches: list[Swatch], name: str) -> bytes:
    """A GIMP palette (GIMP, Inkscape, Krita, Scribus...): UTF-8 text, one ``R G B<TAB>name``
    line per colour after the ``GIMP Palette`` header."""
    lines = ["GIMP Palette", f"Name: {name}", "Columns: 0",
             f"# kmseg: {_colours(len(swatches))}, largest share first"]
    lines += ["{:3d} {:3d} {:3d}\t{}".format(*s.rgb, s.label) for s in swatches]
    return ("\n".join(lines) + "\n").encode("utf-8")


# Adobe Swatch Exchange, version 1.0: all numbers big-endian. A header ("ASEF", major and
# minor version as uint16, block count as uint32), then blocks: type (uint16; 0x0001 a colour
# entry), length of what follows (uint32), and for a colour entry: the name's length in UTF-16
# code units with its terminating zero (uint16), the name (UTF-16BE, zero-terminated), the
# colour model (4 ASCII bytes, "RGB "), one float32 per channel in [0, 1], and the colour type
# (int16; 0 global, 1 spot, 2 normal).
_ASE_COLOUR = 0x0001
_ASE_GLOBAL = 0


def ase(swatches: list[Swatch]) -> bytes:
    """An Adobe Swatch Exchange file (Photoshop, Illustrator, InDesign...): one global RGB
    colour entry per colour, named as in the .gpl file."""
    out = [b"ASEF", struct.pack(">HHI", 1, 0, len(swatches))]
    for s in swatches:
        name = (s.label + "\0").encode("utf-16-be")
        body = (struct.pack(">H", len(name) // 2) + name + b"RGB "
                + struct.pack(">3f", *(v / 255 for v in s.rgb)) + struct.pack(">h", _ASE_GLOBAL))
        out.append(struct.pack(">HI", _ASE_COLOUR, len(body)) + body)
    return b"".join(out)


def css(swatches: list[Swatch], name: str) -> bytes:
    """CSS custom properties on ``:root``: ``--kmseg-0`` is the largest share, ``--kmseg-1`` the
    next..., each with a comment giving its cluster and share."""
    title = name.replace("*/", "* /")
    lines = [f"/* kmseg palette: {title}; {_colours(len(swatches))}, largest share first */", ":root {"]
    lines += [f"  --kmseg-{n}: {s.hex}; /* cluster {s.index}, {100 * s.fraction:.1f}% */" for n, s in enumerate(swatches)]
    lines.append("}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def strip(swatches: list[Swatch]) -> np.ndarray:
    """The swatch strip: (SWATCH_SIZE, k * SWATCH_SIZE, 3) uint8, one square band per colour,
    all the same width, left to right in the palette's order (largest share first)."""
    rgb = np.array([s.rgb for s in swatches], np.uint8)
    return np.ascontiguousarray(np.broadcast_to(np.repeat(rgb, SWATCH_SIZE, axis=0), (SWATCH_SIZE, len(rgb) * SWATCH_SIZE, 3)))


# --------------------------------------------------------------------------- decoders


class Malformed(ValueError):
    """A palette file's content is not what its format allows; the message says where and what."""


class Entry(NamedTuple):
    """One colour read from a palette file."""

    rgb: tuple[int, int, int]  # 8-bit
    name: str  # its name in the file ("" if none), or the comment after it (.css)


#: A colour's name in a palette kmseg wrote: ``cluster 2 (31.4%)`` (.gpl, .ase), ``cluster 2, 31.4%`` (.css).
_CLUSTER_NAME = re.compile(r"\s*cluster (\d+)\b.*")


def label_order(entries: list[Entry]) -> list[Entry]:
    """The entries in label order: by the cluster each is named after, when every name is
    ``cluster N ...`` and the Ns are 0 to k-1, each once (a palette kmseg wrote, whose colours
    are listed largest share first); else in the file's order."""
    found = [_CLUSTER_NAME.fullmatch(e.name) for e in entries]
    if not all(found):
        return entries
    index = [int(m.group(1)) for m in found]  # type: ignore[union-attr]
    if sorted(index) != list(range(len(entries))):
        return entries
    out = [entries[0]] * len(entries)
    for i, e in zip(index, entries):
        out[i] = e
    return out


def _channel(text: str, line: int, what: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise Malformed(f"line {line}: {what} {text!r} is not a whole number; write R, G and B as whole numbers "
                        "from 0 to 255") from None
    if not 0 <= v <= 255:
        raise Malformed(f"line {line}: {what} {v} is out of range; write R, G and B as whole numbers from 0 to 255")
    return v


def read_gpl(text: str) -> list[Entry]:
    """The colours of a GIMP palette: a ``GIMP Palette`` first line; then, in any order,
    ``Name:`` and ``Columns:`` lines, comments (``#``) and blank lines, and one ``R G B name``
    line per colour (the name, after a tab or spaces, may be missing), as GIMP, Inkscape,
    Krita and kmseg write them."""
    lines = text.removeprefix("\ufeff").splitlines()
    if not lines or lines[0].strip() != "GIMP Palette":
        first = repr(lines[0][:40]) if lines else "nothing"
        raise Malformed(f"line 1 is {first}, not 'GIMP Palette'; this is not a GIMP palette, so check the file")
    out = []
    for n, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"(Name|Columns)\s*:", line):
            continue
        parts = line.split(None, 3)
        if len(parts) < 3:
            raise Malformed(f"line {n}: {line[:40]!r} is not a colour; write one colour a line as 'R G B name'")
        rgb = tuple(_channel(t, n, w) for t, w in zip(parts[:3], ("R", "G", "B")))
        out.append(Entry(rgb, parts[3].strip() if len(parts) > 3 else ""))  # type: ignore[arg-type]
    if not out:
        raise Malformed("holds no colour; add one 'R G B name' line per colour")
    return out


def read_ase(data: bytes) -> list[Entry]:
    """The colours of an Adobe Swatch Exchange file (version 1): its RGB and Gray colour
    entries in order, groups flattened. CMYK and Lab swatches are refused, with the fix."""
    if data[:4] != b"ASEF":
        raise Malformed("does not begin with 'ASEF'; this is not an Adobe Swatch Exchange file, so check the file")
    if len(data) < 12:
        raise Malformed("ends inside its header; the file is truncated, so write it again")
    major, _minor, _count = struct.unpack(">HHI", data[4:12])
    if major != 1:
        raise Malformed(f"is Adobe Swatch Exchange version {major}; kmseg reads version 1")
    out: list[Entry] = []
    pos = 12
    while pos < len(data):
        if pos + 6 > len(data):
            raise Malformed(f"ends inside a block header at byte {pos}; the file is truncated, so write it again")
        kind, length = struct.unpack(">HI", data[pos:pos + 6])
        body = data[pos + 6:pos + 6 + length]
        if len(body) < length:
            raise Malformed(f"ends inside the block at byte {pos}; the file is truncated, so write it again")
        pos += 6 + length
        if kind != _ASE_COLOUR:
            continue  # group start (0xC001) and end (0xC002)
        n = len(out) + 1
        try:
            (units,) = struct.unpack(">H", body[:2])
            name = body[2:2 + 2 * units].decode("utf-16-be").rstrip("\0")
            at = 2 + 2 * units
            model = body[at:at + 4].decode("ascii").strip()
            channels = {"RGB": 3, "Gray": 1, "CMYK": 4, "LAB": 3}.get(model)
            if channels is None:
                raise Malformed(f"colour {n} ({name!r}) has colour model {model!r}, which is not RGB, Gray, CMYK or "
                                "LAB; the file is corrupt, so write it again")
            values = struct.unpack(f">{channels}f", body[at + 4:at + 4 + 4 * channels])
        except (struct.error, UnicodeDecodeError):
            raise Malformed(f"colour {n} is cut short or not text; the file is corrupt, so write it again") from None
        if model in ("CMYK", "LAB"):
            raise Malformed(f"colour {n} ({name!r}) is {model}; only RGB and Gray swatches give RGB colours, so "
                            "convert the swatches to RGB in the program that wrote the file")
        if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
            raise Malformed(f"colour {n} ({name!r}) has values {[round(v, 4) for v in values]}, outside 0 to 1; "
                            "the file is corrupt, so write it again")
        levels = [int(round(v * 255)) for v in values]
        out.append(Entry((levels[0],) * 3 if model == "Gray" else tuple(levels), name))  # type: ignore[arg-type]
    if not out:
        raise Malformed("holds no colour; add RGB swatches to it")
    return out


#: A CSS custom property whose value is a hex colour, and the comment after it, if any.
_CSS_COLOUR = re.compile(r"--[\w-]+\s*:\s*#([0-9a-fA-F]+)\s*(?:!important\s*)?;?[ \t]*(?:/\*(.*?)\*/)?")


def read_css(text: str) -> list[Entry]:
    """The colours of a CSS file's custom properties whose value is a hex colour
    (``--name: #rrggbb;`` or ``#rgb``), in the file's order, each named by the comment after
    it on its line (kmseg writes ``/* cluster 2, 31.4% */``). Other properties are skipped."""
    out = []
    for m in _CSS_COLOUR.finditer(text):
        digits = m.group(1)
        line = text.count("\n", 0, m.start()) + 1
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        if len(digits) != 6:
            raise Malformed(f"line {line}: #{m.group(1)} is not an opaque colour; write it as #rrggbb or #rgb")
        rgb = tuple(int(digits[i:i + 2], 16) for i in (0, 2, 4))
        out.append(Entry(rgb, (m.group(2) or "").strip()))  # type: ignore[arg-type]
    if not out:
        raise Malformed("holds no colour; write one custom property per colour, such as '--c0: #c81e1e;'")
    return out
