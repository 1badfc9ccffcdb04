"""Encoders of :func:`kmseg.io.palette_bytes`: a palette as the files designers' tools read.

Each takes the palette already checked by :func:`kmseg.io.palette_bytes` (a list of
:class:`Swatch`, largest share first) and returns the file's bytes, or for the swatch strip
its pixels. They check nothing.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

__all__ = ["SWATCH_SIZE", "Swatch", "ase", "css", "gpl", "strip"]

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
