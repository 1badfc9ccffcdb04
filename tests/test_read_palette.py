"""kmseg.io.read_palette: the palette files kmseg writes, and GIMP's own, read back in label
order to label other images; malformed files refused in one line that says where."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

import kmseg
from kmseg import data
from kmseg.io import read_palette, save_image, write_palette
from helpers import ct_slice, quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


@pytest.fixture(scope="module")
def coffee_seg():
    return kmseg.segment(data.path("coffee.png"), k=5, seed=0)


def _display_in_label_order(seg) -> list[list[int]]:
    return [p["rgb"] for p in sorted(seg.palette(), key=lambda p: p["index"])]


@pytest.mark.parametrize("suffix", [".gpl", ".ase", ".css"])
def test_a_designers_file_kmseg_wrote_comes_back_in_label_order(tmp_path, coffee_seg, suffix):
    """The file lists the colours largest share first; their names give each its index back."""
    path = write_palette(tmp_path / f"coffee{suffix}", coffee_seg)
    pal = read_palette(path)
    assert isinstance(pal, kmseg.Palette) and pal.source == str(path)
    assert pal.centers.tolist() == _display_in_label_order(coffee_seg)
    assert pal.display and pal.dtype == np.uint8 and pal.color_space is None and pal.k == 5
    # It labels an 8-bit RGB photo by the nearest of those colours; cluster i is the segmentation's cluster i.
    chelsea = kmseg.load_image(data.path("chelsea.png"))
    seg = pal.apply(chelsea)
    d = ((chelsea.reshape(-1, 1, 3).astype(float) - pal.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(seg.labels.reshape(-1), d.argmin(axis=1))
    np.testing.assert_array_equal(pal.apply(data.path("coffee.png")).labels.max(), 4)


def test_a_palette_list_json_reads_as_display_colours(tmp_path, coffee_seg):
    path = write_palette(tmp_path / "list.json", coffee_seg.palette())
    pal = read_palette(path)
    assert pal.display and pal.centers.tolist() == _display_in_label_order(coffee_seg)


def test_a_gimp_palette_made_in_gimp_is_read_in_its_own_order(tmp_path):
    """GIMP's layout: header, Name:, Columns:, comments, blank lines, 'R G B<tab>name' (names
    with spaces, one missing); CRLF line ends and a byte-order mark as some editors save it."""
    text = (
        "\ufeffGIMP Palette\r\n"
        "Name: Traffic lights\r\n"
        "Columns: 3\r\n"
        "#\r\n"
        "# from GIMP 2.10\r\n"
        "255   0   0\tStop red\r\n"
        "\r\n"
        "255 191   0\tAmber\r\n"
        "  0 200  80\r\n"
    )
    path = tmp_path / "traffic.gpl"
    path.write_bytes(text.encode("utf-8"))
    pal = read_palette(path)
    assert pal.centers.tolist() == [[255, 0, 0], [255, 191, 0], [0, 200, 80]]
    img = np.array([[[250, 10, 10], [250, 180, 20], [20, 190, 90], [200, 5, 5]]], np.uint8)
    assert pal.apply(img).labels.tolist() == [[0, 1, 2, 0]]
    rgba = np.dstack([img, np.array([[255, 0, 255, 255]], np.uint8)])
    seg = pal.apply(rgba)
    assert seg.labels.tolist() == [[0, -1, 2, 0]] and seg.counts.tolist() == [2, 0, 1]
    # Named "cluster N" but not each of 0..k-1 once: the file's order stands.
    odd = tmp_path / "odd.gpl"
    odd.write_text("GIMP Palette\n1 1 1\tcluster 5 (10%)\n2 2 2\tcluster 0 (90%)\n")
    assert read_palette(odd).centers.tolist() == [[1, 1, 1], [2, 2, 2]]


def test_an_ase_file_of_groups_and_gray_swatches(tmp_path):
    def colour(name: str, model: bytes, values: tuple[float, ...]) -> bytes:
        n = (name + "\0").encode("utf-16-be")
        body = struct.pack(">H", len(n) // 2) + n + model + struct.pack(f">{len(values)}f", *values) + struct.pack(">h", 2)
        return struct.pack(">HI", 1, len(body)) + body

    group = "Greys\0".encode("utf-16-be")
    start = struct.pack(">H", len(group) // 2) + group
    blocks = [struct.pack(">HI", 0xC001, len(start)) + start, colour("mid", b"Gray", (0.5,)),
              struct.pack(">HI", 0xC002, 0), colour("teal", b"RGB ", (0.0, 0.5, 0.5))]
    path = tmp_path / "mine.ase"
    path.write_bytes(b"ASEF" + struct.pack(">HHI", 1, 0, len(blocks)) + b"".join(blocks))
    assert read_palette(path).centers.tolist() == [[128, 128, 128], [0, 128, 128]]
    cmyk = tmp_path / "print.ase"
    cmyk.write_bytes(b"ASEF" + struct.pack(">HHI", 1, 0, 1) + colour("ink", b"CMYK", (0, 1, 1, 0)))
    with pytest.raises(kmseg.PaletteFileError, match=r"print\.ase: colour 1 \('ink'\) is CMYK; only RGB and Gray "
                                                     r"swatches give RGB colours, so convert the swatches to RGB"):
        read_palette(cmyk)


@pytest.mark.parametrize("space", ["rgb", "lab", "hsv"])
def test_the_palette_json_labels_as_the_segmentation_does(tmp_path, coffee_seg, space):
    seg = coffee_seg if space == "rgb" else kmseg.segment(data.path("coffee.png"), k=5, seed=0, color_space=space)
    path = seg.save(tmp_path)["palette"]
    pal = read_palette(path)
    assert pal.color_space == space and pal.dtype == np.uint8 and not pal.display
    np.testing.assert_array_equal(pal.centers, seg.centers)
    np.testing.assert_array_equal(pal.space_centers, seg.space_centers)
    for name in ("coffee.png", "chelsea.png"):
        got, want = pal.apply(data.path(name)), seg.apply(data.path(name))
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.centers, want.centers)
    np.testing.assert_array_equal(pal.apply(data.path("coffee.png")).labels, seg.labels)


def test_a_16_bit_and_an_int16_palette_json_keep_their_units(tmp_path):
    ct = ct_slice()
    seg = kmseg.segment(ct, k=3, seed=0)
    pal = read_palette(seg.save(tmp_path, stem="ct")["palette"])
    assert pal.dtype == np.int16 and pal.centers.shape == (3, 1)
    # Clustered as uint16 (+32768): the JSON keeps those centres too, exactly.
    np.testing.assert_array_equal(pal.space_centers, seg.centers + 32768)
    np.testing.assert_array_equal(pal.apply(ct).labels, seg.labels)
    later = ct_slice(seed=5)
    np.testing.assert_array_equal(pal.apply(later).labels, seg.apply(later).labels)
    with pytest.raises(kmseg.ParameterError, match=r"ct-palette\.json holds centres in int16 units, and the image is "
                                                   r"uint16 with 1 colour channel; convert it to int16"):
        pal.apply(later.astype(np.uint16))


def test_a_palette_json_of_an_older_kmseg_still_labels(tmp_path):
    """Without 'dtype' and 'space_centers': the centres in the image's units, checked against its range."""
    img, truth = quadrants(COLORS)
    seg = kmseg.segment(img, k=4, seed=0)
    old = {k: v for k, v in seg.summary().items() if k not in ("dtype", "space_centers")}
    path = tmp_path / "old-palette.json"
    path.write_text(json.dumps(old))
    pal = read_palette(path)
    assert pal.dtype is None and pal.space_centers is None
    np.testing.assert_array_equal(pal.apply(img).labels, seg.labels)
    np.testing.assert_array_equal(pal.apply(img.astype(np.uint16)).labels, seg.labels)  # in range: units unknown
    far = tmp_path / "far-palette.json"
    far.write_text(json.dumps(old | {"centers": [[4000, 0, 0]] + old["centers"][1:]}))
    with pytest.raises(kmseg.ParameterError, match=r"far-palette\.json reaches 4000, outside uint8's range 0 to 255 "
                                                   r"\(a palette of an image of other units\?\)"):
        read_palette(far).apply(img)


def test_display_colours_label_8_bit_rgb_only(tmp_path, coffee_seg):
    gpl = write_palette(tmp_path / "c.gpl", coffee_seg)
    pal = read_palette(gpl)
    rgb16 = np.zeros((2, 2, 3), np.uint16)
    with pytest.raises(kmseg.ParameterError, match=r"c\.gpl holds 8-bit RGB display colours, which label 8-bit RGB "
                                                   r"or RGBA images only, and the image is uint16 with 3 colour "
                                                   r"channels; label it with the NAME-palette\.json that kmseg "
                                                   r"segment wrote"):
        pal.apply(rgb16)
    grey = save_image(tmp_path / "grey.png", np.zeros((2, 2), np.uint8))
    with pytest.raises(kmseg.ParameterError, match=r"^.*grey\.png: .*c\.gpl holds 8-bit RGB display colours, .* "
                                                   r"the image is uint8 with 1 colour channel;"):
        pal.apply(grey)
    # Any colour space, chosen when applied.
    assert pal.apply(data.path("coffee.png"), color_space="lab").color_space == "lab"


def test_a_json_palette_refuses_an_image_of_other_channels(tmp_path):
    grey = kmseg.segment(np.arange(64, dtype=np.uint8).reshape(8, 8), k=2, seed=0)
    pal = read_palette(grey.save(tmp_path, stem="g")["palette"])
    with pytest.raises(kmseg.ParameterError, match=r"g-palette\.json has centres of 1 channel, and the image is uint8 "
                                                   r"with 3 colour channels; label it with a palette of an image like it$"):
        pal.apply(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(kmseg.ParameterError, match=r"g-palette\.json was clustered in color_space='rgb'; "
                                                   r"color_space='lab' would measure other distances"):
        pal.apply(np.zeros((2, 2), np.uint8), color_space="lab")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.gpl", "GIMP Palette\nName: x\n10 20 300\tRed\n", r"a\.gpl: line 3: B 300 is out of range; write R, G and B "
                                                              r"as whole numbers from 0 to 255$"),
        ("a.gpl", "GIMP Palette\n#\n10 twenty 30\n", r"a\.gpl: line 3: G 'twenty' is not a whole number;"),
        ("a.gpl", "GIMP Palette\n10 20\n", r"a\.gpl: line 2: '10 20' is not a colour; write one colour a line as "
                                          r"'R G B name'$"),
        ("a.gpl", "JASC-PAL\n0100\n", r"a\.gpl: line 1 is 'JASC-PAL', not 'GIMP Palette'; this is not a GIMP palette"),
        ("a.gpl", "GIMP Palette\nName: empty\n", r"a\.gpl: holds no colour; add one 'R G B name' line per colour$"),
        ("a.gpl", b"GIMP Palette\n1 2 3 caf\xe9\n", r"a\.gpl: line 2 is not UTF-8 text; save the file as UTF-8$"),
        ("a.css", ":root {\n  --gap: 4px;\n}\n", r"a\.css: holds no colour; write one custom property per colour"),
        ("a.css", ":root {\n  --a: #102030;\n  --b: #10203080;\n}\n",
         r"a\.css: line 3: #10203080 is not an opaque colour; write it as #rrggbb or #rgb$"),
        ("a.json", '{\n  "k": 3,\n  "centers": [1, 2\n}', r"a\.json: line 4: not valid JSON \(.*\); pass the "
                                                          r"NAME-palette\.json that kmseg segment wrote$"),
        ("a.json", '{"k": 3}', r"a\.json: has neither 'centers' nor 'palette'; pass the NAME-palette\.json"),
        ("a.json", '{"centers": [[1, 2, NaN]]}', r"a\.json: 'centers' contains NaN or infinite values"),
        ("a.json", '{"centers": [[1, 2, 3]], "color_space": "xyz"}', r"a\.json: color_space 'xyz' is not 'rgb', 'lab'"),
        ("a.json", '{"palette": [{"index": 1, "rgb": [1, 2, 3], "fraction": 1}]}',
         r"a\.json: the palette's indices are \[1\], not 0 to 0 each once; write each cluster's index once$"),
        ("a.ase", b"ASEF\x00\x01\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00\x00\x40", r"a\.ase: ends inside the block at "
                                                                                  r"byte 12; the file is truncated"),
        ("a.ase", b"8BPS", r"a\.ase: does not begin with 'ASEF'; this is not an Adobe Swatch Exchange file"),
        ("a.png", b"\x89PNG\r\n\x1a\n\x00\x00", r"a\.png: cannot be decoded as a PNG image \(.*\); re-export it as "
                                                r"PNG$"),
        ("a.png", b"GIMP Palette\n", r"a\.png: is not a PNG image \(it does not begin with PNG's signature\); pass a "
                                     r"palette image saved as PNG$"),
        ("a.pal", b"JASC-PAL", r"a\.pal: unknown palette suffix '\.pal'; kmseg reads \.json, \.gpl, \.ase, \.css or "
                               r"\.png palettes$"),
    ],
)
def test_a_malformed_file_is_refused_in_one_line_naming_where(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(kmseg.PaletteFileError, match=message) as info:
        read_palette(path)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_a_missing_palette_is_a_file_not_found_error(tmp_path):
    with pytest.raises(kmseg.PaletteNotFoundError, match=r"nope\.json: no such file; check the path$") as info:
        read_palette(tmp_path / "nope.json")
    assert isinstance(info.value, FileNotFoundError)
    (tmp_path / "dir.gpl").mkdir()
    with pytest.raises(kmseg.PaletteNotFoundError, match=r"dir\.gpl: is a directory, not a palette file"):
        read_palette(tmp_path / "dir.gpl")


def test_a_swatch_strip_kmseg_wrote_comes_back_largest_share_first(tmp_path, coffee_seg):
    """The .png strip has no names: its colours come back left to right, as drawn."""
    path = write_palette(tmp_path / "coffee.png", coffee_seg)
    pal = read_palette(path)
    assert pal.display and pal.dtype == np.uint8 and pal.source == str(path) and pal.k == 5
    assert pal.centers.tolist() == [p["rgb"] for p in coffee_seg.palette()]  # largest share first
    chelsea = kmseg.load_image(data.path("chelsea.png"))
    d = ((chelsea.reshape(-1, 1, 3).astype(float) - pal.centers[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(pal.apply(chelsea).labels.reshape(-1), d.argmin(axis=1))


def test_a_pixel_art_palette_image_is_read_in_reading_order(tmp_path):
    """Lospec's 1x PNG (one pixel a colour, in a row) and an 8x grid of squares wrapped onto two
    rows with a transparent cell at the end: the distinct opaque colours, left to right, then
    top to bottom; a colour seen again is not a new one."""
    from PIL import Image

    colours = np.array([[0, 0, 0], [255, 255, 255], [200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
    row = tmp_path / "row.png"
    Image.fromarray(colours[None]).save(row)
    assert read_palette(row).centers.tolist() == colours.tolist()
    cells = np.zeros((2, 3, 4), np.uint8)
    cells[0, :, :3], cells[1, :2, :3] = colours[:3], colours[3:]
    cells[0, :, 3] = cells[1, :2, 3] = 255  # cell (1, 2) transparent
    cells[1, 1, :3] = colours[0]  # seen before
    grid = tmp_path / "grid.png"
    Image.fromarray(np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1), "RGBA").save(grid)
    assert read_palette(grid).centers.tolist() == colours[:4].tolist()
    paletted = tmp_path / "p.png"
    Image.fromarray(colours[None]).convert("P", palette=Image.Palette.ADAPTIVE, colors=8).save(paletted)
    assert read_palette(paletted).centers.tolist() == colours.tolist()


def test_a_picture_is_not_taken_for_a_palette_image(tmp_path):
    photo = tmp_path / "photo.png"
    from PIL import Image

    Image.open(data.path("coffee.png")).save(photo)
    with pytest.raises(kmseg.PaletteFileError, match=r"photo\.png: has \d+ distinct colours, more than a palette "
                                                   r"image's 256; it looks like a picture: segment it \(kmseg palette\)"):
        read_palette(photo)
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (10, 20, 30, 0)).save(clear)
    with pytest.raises(kmseg.PaletteFileError, match=r"clear\.png: is fully transparent, so holds no colour"):
        read_palette(clear)
    deep = tmp_path / "deep.png"
    save_image(deep, np.arange(4, dtype=np.uint16).reshape(2, 2) * 1000)
    with pytest.raises(kmseg.PaletteFileError, match=r"deep\.png: is not 8-bit \(Pillow mode I;16\); a palette image holds "):
        read_palette(deep)
