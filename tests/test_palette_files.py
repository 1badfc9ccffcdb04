"""Palette files for designers' tools (kmseg.io.palette_bytes, write_palette): GIMP palette,
Adobe Swatch Exchange, CSS, JSON and a swatch strip PNG, each read back by a reader that is not
kmseg's (Pillow's GIMP palette reader, an ASE reader written here from the format's layout)."""

from __future__ import annotations

import io
import json
import re
import struct

import numpy as np
import pytest
from PIL import Image
from PIL.GimpPaletteFile import GimpPaletteFile

import kmseg
from kmseg.errors import OutputError, OutputExistsError, ParameterError, ParameterTypeError
from kmseg.io import PALETTE_FORMATS, palette_bytes, save_image, write_palette
from helpers import ct_slice

# Four flat colours on 40%, 30%, 20% and 10% of the pixels: k=4 finds them exactly.
SHARES = [((30, 30, 200), 40), ((200, 30, 30), 30), ((250, 240, 30), 20), ((10, 10, 10), 10)]


def four_colours() -> np.ndarray:
    rows = [colour for colour, n in SHARES for _ in range(n)]
    return np.broadcast_to(np.array(rows, np.uint8)[:, None, :], (100, 3, 3)).copy()


@pytest.fixture(scope="module")
def seg() -> kmseg.Segmentation:
    return kmseg.segment(four_colours(), 4, seed=0)


def test_the_palette_is_the_known_one(seg):
    """The ground truth the format tests rely on: colours and shares, largest share first."""
    assert [(tuple(p["rgb"]), round(100 * p["fraction"])) for p in seg.palette()] == SHARES


# --------------------------------------------------------------------------- .gpl


def test_gpl_is_read_back_by_pillows_gimp_palette_reader(seg):
    data = palette_bytes(seg, "gpl", name="four")
    colours, mode = GimpPaletteFile(io.BytesIO(data)).getpalette()
    assert mode == "RGB" and colours == bytes(v for p in seg.palette() for v in p["rgb"])
    lines = data.decode("utf-8").splitlines()
    assert lines[:4] == ["GIMP Palette", "Name: four", "Columns: 0", "# kmseg: 4 colours, largest share first"]
    assert lines[4:] == [f"{r:3d} {g:3d} {b:3d}\tcluster {p['index']} ({share:.1f}%)"
                         for p, ((r, g, b), share) in zip(seg.palette(), SHARES)]


def test_gpl_names_the_palette_after_the_image(tmp_path):
    path = save_image(tmp_path / "sunset beach.png", four_colours())
    from_file = kmseg.segment(path, 2, seed=0)
    assert palette_bytes(from_file, "gpl").splitlines()[1] == b"Name: sunset beach"
    assert palette_bytes(from_file.palette(), "gpl").splitlines()[1] == b"Name: kmseg palette"  # a list has no source
    assert palette_bytes(kmseg.segment(four_colours(), 2, seed=0), "gpl").splitlines()[1] == b"Name: kmseg palette"


# --------------------------------------------------------------------------- .ase


def read_ase(data: bytes) -> list[tuple[str, bytes, tuple[float, ...], int]]:
    """Adobe Swatch Exchange, read independently of kmseg's writer: checks the header and that every
    block is exactly as long as it says; returns (name, model, values, colour type) per colour entry."""
    assert data[:4] == b"ASEF"
    major, minor, n_blocks = struct.unpack(">HHI", data[4:12])
    assert (major, minor) == (1, 0)
    pos, entries = 12, []
    for _ in range(n_blocks):
        kind, length = struct.unpack(">HI", data[pos:pos + 6])
        block, pos = data[pos + 6:pos + 6 + length], pos + 6 + length
        assert kind == 0x0001 and len(block) == length  # a colour entry (no groups)
        (units,) = struct.unpack(">H", block[:2])  # UTF-16 code units, the terminator included
        raw = block[2:2 + 2 * units]
        assert raw[-2:] == b"\x00\x00"  # zero-terminated
        name = raw[:-2].decode("utf-16-be")
        assert "\x00" not in name
        rest = block[2 + 2 * units:]
        model = rest[:4]
        channels = {b"RGB ": 3, b"LAB ": 3, b"CMYK": 4, b"Gray": 1}[model]
        values = struct.unpack(f">{channels}f", rest[4:4 + 4 * channels])
        (colour_type,) = struct.unpack(">h", rest[4 + 4 * channels:])  # the block ends right after it
        entries.append((name, model, values, colour_type))
    assert pos == len(data)
    return entries


def test_ase_is_read_back_by_an_independent_reader(seg):
    data = palette_bytes(seg, "ase")
    entries = read_ase(data)
    assert len(entries) == 4
    for (name, model, values, colour_type), p, (_, share) in zip(entries, seg.palette(), SHARES):
        assert name == f"cluster {p['index']} ({share:.1f}%)"
        assert model == b"RGB " and colour_type == 0  # global
        assert values == tuple(float(np.float32(v / 255)) for v in p["rgb"])
        assert [round(v * 255) for v in values] == p["rgb"]
    # the first entry's bytes, spelt out: type, length, name length, name, terminator, model, values, type
    name = f"cluster {seg.palette()[0]['index']} (40.0%)"
    first = (b"\x00\x01" + struct.pack(">I", 2 + 2 * (len(name) + 1) + 4 + 12 + 2) + struct.pack(">H", len(name) + 1)
             + name.encode("utf-16-be") + b"\x00\x00" + b"RGB " + struct.pack(">3f", 30 / 255, 30 / 255, 200 / 255)
             + b"\x00\x00")
    assert data[:12] == b"ASEF\x00\x01\x00\x00\x00\x00\x00\x04" and data[12:12 + len(first)] == first


# --------------------------------------------------------------------------- .css


def test_css_custom_properties(seg):
    text = palette_bytes(seg, "css", name="four").decode("utf-8")
    expected = ["/* kmseg palette: four; 4 colours, largest share first */", ":root {"]
    expected += [f"  --kmseg-{n}: #{r:02x}{g:02x}{b:02x}; /* cluster {p['index']}, {share:.1f}% */"
                 for n, (p, ((r, g, b), share)) in enumerate(zip(seg.palette(), SHARES))]
    assert text.splitlines() == [*expected, "}"] and text.endswith("}\n")
    assert re.findall(r"--kmseg-\d+: (#[0-9a-f]{6});", text) == [p["hex"] for p in seg.palette()]


def test_css_title_cannot_end_its_comment(seg):
    first = palette_bytes(seg, "css", name="a */ b").decode().splitlines()[0]
    assert first == "/* kmseg palette: a * / b; 4 colours, largest share first */"


# --------------------------------------------------------------------------- .json


def test_json_is_the_palette_json_segment_writes(seg, tmp_path):
    written = seg.save(tmp_path, stem="four")["palette"]
    assert palette_bytes(seg, "json") == written.read_bytes()
    listed = json.loads(palette_bytes(seg.palette(), "json"))
    assert listed == {"palette": seg.palette()}


# --------------------------------------------------------------------------- .png


def test_png_swatch_strip_has_equal_bands_in_palette_order(seg):
    im = Image.open(io.BytesIO(palette_bytes(seg, "png")))
    im.load()
    assert im.format == "PNG" and im.mode == "RGB" and im.size == (4 * 64, 64)
    expected = np.repeat(np.array([p["rgb"] for p in seg.palette()], np.uint8), 64, axis=0)
    assert np.array_equal(np.asarray(im), np.broadcast_to(expected, (64, 4 * 64, 3)))


# --------------------------------------------------------------------------- every format


def test_every_format_writes_the_display_colours_of_a_ct(tmp_path):
    """An int16 CT's palette is grey on its own -1024..3000 range; every file holds those colours."""
    ct = kmseg.segment(ct_slice(), 3, seed=0)
    pal = ct.palette()
    rgb = [tuple(p["rgb"]) for p in pal]
    assert len(set(rgb)) == 3 and all(r == g == b for r, g, b in rgb)
    assert any(60 < r < 75 for r, _, _ in rgb)  # soft tissue (40 HU) is dark grey on -1024..3000, not 40
    flat = bytes(v for c in rgb for v in c)
    assert GimpPaletteFile(io.BytesIO(palette_bytes(ct, "gpl"))).getpalette()[0] == flat
    assert [tuple(round(v * 255) for v in e[2]) for e in read_ase(palette_bytes(ct, "ase"))] == rgb
    assert re.findall(r"#[0-9a-f]{6}", palette_bytes(ct, "css").decode()) == [p["hex"] for p in pal]
    assert json.loads(palette_bytes(ct, "json"))["palette"] == pal
    strip = np.asarray(Image.open(io.BytesIO(palette_bytes(ct, "png"))))
    assert [tuple(strip[0, 64 * n + 32]) for n in range(3)] == rgb


@pytest.mark.parametrize("fmt", ["gpl", ".gpl", "GPL", ".Gpl"])
def test_the_format_is_named_with_or_without_its_dot_in_any_case(seg, fmt):
    assert palette_bytes(seg, fmt) == palette_bytes(seg, "gpl")


def test_a_list_with_numpy_values_and_no_hex_is_taken(seg):
    pal = [{"index": np.int64(p["index"]), "rgb": np.array(p["rgb"], np.uint8), "fraction": np.float64(p["fraction"])}
           for p in seg.palette()]
    for fmt in ("gpl", "ase", "css", "png"):
        assert palette_bytes(pal, fmt, name="kmseg palette") == palette_bytes(seg.palette(), fmt)


# --------------------------------------------------------------------------- write_palette


@pytest.mark.parametrize("suffix", list(PALETTE_FORMATS))
def test_write_palette_by_suffix(seg, tmp_path, suffix):
    path = write_palette(tmp_path / "sub" / f"four{suffix.upper()}", seg)
    assert path == tmp_path / "sub" / f"four{suffix.upper()}"
    assert path.read_bytes() == palette_bytes(seg, suffix)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_write_palette_never_overwrites_without_force(seg, tmp_path):
    path = tmp_path / "p.css"
    path.write_text("keep me")
    with pytest.raises(OutputExistsError, match=r"p\.css exists already; pass force=True \(CLI: --force\) to overwrite it"):
        write_palette(path, seg)
    assert path.read_text() == "keep me"
    write_palette(path, seg, force=True)
    assert path.read_bytes() == palette_bytes(seg, "css")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.css"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [("p.txt", "unknown palette suffix '.txt'"), ("p", "no suffix to name the palette's format"),
     ("p.json.gz", "unknown palette suffix '.gz'")],
)
def test_write_palette_refuses_an_unknown_suffix(seg, tmp_path, name, problem):
    with pytest.raises(ParameterError) as info:
        write_palette(tmp_path / name, seg)
    assert str(info.value) == f"{tmp_path / name}: {problem}; use .gpl, .ase, .css, .json or .png"
    assert list(tmp_path.iterdir()) == []


def test_write_palette_refuses_a_directory_and_a_bad_palette_before_writing(seg, tmp_path):
    (tmp_path / "d.gpl").mkdir()
    with pytest.raises(OutputError, match=r"d\.gpl: is a directory; pass a file path inside it"):
        write_palette(tmp_path / "d.gpl", seg)
    with pytest.raises(ParameterError, match="palette is empty"):
        write_palette(tmp_path / "p.gpl", [])
    assert [p.name for p in tmp_path.iterdir()] == ["d.gpl"]


def test_write_palette_never_overwrites_the_image_it_was_made_from(tmp_path):
    image = save_image(tmp_path / "photo.png", four_colours())
    before = image.read_bytes()
    seg = kmseg.segment(image, 2, seed=0)
    for force in (False, True):
        with pytest.raises(ParameterError, match=r"photo\.png is the image this palette was made from; inputs are never "
                           r"overwritten: pass another path$"):
            write_palette(tmp_path / "." / "photo.png", seg, force=force)
    assert image.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["photo.png"]


# --------------------------------------------------------------------------- bad input


GOOD = {"index": 0, "rgb": [1, 2, 3], "fraction": 0.5}


@pytest.mark.parametrize(
    ("palette", "error", "message"),
    [
        ("abc", ParameterTypeError, r"^palette must be a Segmentation or a list of colours, not str; pass Segmentation\.palette\(\)"),
        ({"index": 0}, ParameterTypeError, "not dict"),
        (np.zeros((2, 3)), ParameterTypeError, "not ndarray"),
        ([], ParameterError, r"^palette is empty; pass Segmentation\.palette\(\) or the Segmentation itself, which holds"),
        ([GOOD, 3], ParameterTypeError, r"^palette\[1\]=3 is not a dict; pass Segmentation\.palette\(\)"),
        ([{"index": 0, "rgb": [1, 2, 3]}], ParameterError, r"^palette\[0\] has no 'fraction'; every colour needs index, rgb and fraction"),
        ([{**GOOD, "rgb": [1, 2]}], ParameterError, r"^palette\[0\]: rgb=\[1, 2\] is not a colour; pass three whole numbers from 0 to 255$"),
        ([{**GOOD, "rgb": [256, 0, 0]}], ParameterError, r"rgb=\[256, 0, 0\] is not a colour"),
        ([{**GOOD, "rgb": [0.5, 0, 0]}], ParameterError, r"rgb=\[0\.5, 0, 0\] is not a colour"),
        ([{**GOOD, "rgb": "#010203"}], ParameterError, r"rgb='#010203' is not a colour"),
        ([{**GOOD, "fraction": 1.5}], ParameterError, r"^palette\[0\]: fraction=1\.5 is not a share; pass a number from 0 to 1$"),
        ([{**GOOD, "fraction": "0.5"}], ParameterError, r"fraction='0\.5' is not a share"),
        ([{**GOOD, "index": -1}], ParameterError, r"^palette\[0\]: index=-1 is not a cluster index; pass a whole number, 0 or more$"),
        ([{**GOOD, "index": True}], ParameterError, r"index=True is not a cluster index"),
        ([{**GOOD, "hex": "#ffffff"}], ParameterError,
         r"^palette\[0\]: hex='#ffffff' is not rgb=\[1, 2, 3\] \(#010203\); correct one of them, or leave hex out$"),
    ],
)
def test_bad_palettes_are_refused_with_one_line(palette, error, message):
    for fmt in PALETTE_FORMATS:
        with pytest.raises(error, match=message) as info:
            palette_bytes(palette, fmt)
        assert "\n" not in str(info.value)


def test_a_hex_in_capitals_that_matches_is_taken():
    assert palette_bytes([{**GOOD, "hex": "#010203"}], "css") == palette_bytes([{**GOOD, "hex": "#010203".upper()}], "css")


@pytest.mark.parametrize(
    ("fmt", "error", "message"),
    [("txt", ParameterError, r"^fmt='txt' is not a palette format; pass one of gpl, ase, css, json or png$"),
     ("", ParameterError, r"^fmt='' is not a palette format"),
     (None, ParameterTypeError, r"^fmt=None is not a str; pass one of gpl, ase, css, json or png$")],
)
def test_an_unknown_format_is_refused(seg, fmt, error, message):
    with pytest.raises(error, match=message):
        palette_bytes(seg, fmt)


@pytest.mark.parametrize(
    ("name", "error", "message"),
    [("two\nlines", ParameterError, r"^name='two\\nlines' holds a line break or control character; pass a one-line title$"),
     (3, ParameterTypeError, r"^name must be a str or None, not int; pass the palette's title$")],
)
def test_a_bad_name_is_refused(seg, name, error, message):
    with pytest.raises(error, match=message):
        palette_bytes(seg, "gpl", name=name)


def test_a_source_name_with_a_line_break_is_made_one_line(tmp_path):
    path = save_image(tmp_path / "a\nb.png", four_colours())
    assert palette_bytes(kmseg.segment(path, 2, seed=0), "gpl").splitlines()[1] == b"Name: a b"
