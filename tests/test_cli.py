"""The `kmseg segment` and `kmseg demo` command lines: outputs, exit codes, errors, no overwrite."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import kmseg
from kmseg.cli import main
from kmseg.io import save_image
from helpers import ct_slice, fill, needs_sysfs, quadrants, small_disk

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
KMSEG = [sys.executable, "-m", "kmseg"]


@pytest.fixture
def pics(tmp_path: Path) -> dict[str, Path]:
    img, _ = quadrants(COLORS)
    src = tmp_path / "in"
    a = save_image(src / "a.png", img)
    b = save_image(src / "b.png", img[::-1])
    bad = src / "bad.png"
    bad.write_text("not an image")
    return {"a": a, "b": b, "bad": bad, "dir": src}


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_segment_writes_outputs(pics, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(pics["a"]), "-k", "4", "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["a-labels.png", "a-palette.json", "a-segmented.png"]
    lab = kmseg.load_image(out / "a-labels.png")
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {0, 1, 2, 3}
    pal = json.loads((out / "a-palette.json").read_text())
    assert pal["k"] == 4 and len(pal["palette"]) == 4
    assert "a.png: k=4" in capsys.readouterr().out


def test_json_summary_and_options(pics, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(pics["a"]), str(pics["b"]), "-k", "4", "-o", str(out), "--json",
                 "--disable", "1", "--masks", "--color-space", "lab", "--seed", "3"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 0 and len(summary["results"]) == 2
    r = summary["results"][0]
    assert r["ok"] and r["k"] == 4 and set(r["outputs"]) >= {"segmented", "labels", "palette", "masked", "cluster0", "cluster3"}
    assert {"index", "rgb", "hex", "fraction"} <= set(r["palette"][0])
    assert (out / "b-masked.png").exists() and (out / "b-cluster3.png").exists()


def test_bad_file_fails_alone_with_exit_1(pics, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(pics["a"]), str(pics["bad"]), str(pics["b"]), "-k", "3", "-o", str(out)])
    assert code == 1
    err = capsys.readouterr().err
    assert "bad.png: not an image" in err
    assert "1 of 3 files failed" in err and "Traceback" not in err
    assert (out / "a-segmented.png").exists() and (out / "b-segmented.png").exists()
    assert not (out / "bad-segmented.png").exists()


def test_an_int16_tiff_gets_an_int16_segmented_tiff(tmp_path, capsys):
    """Was: the labels and palette written, then "cannot save an array of dtype int16 as PNG",
    exit 1 with half the outputs left."""
    import tifffile

    ct = np.random.default_rng(0).normal(0, 300, (64, 64)).astype(np.int16)
    tifffile.imwrite(tmp_path / "ct.tif", ct)
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "ct.tif"), "-k", "3", "-o", str(out)]) == 0
    assert "ct.tif: k=3" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["ct-labels.png", "ct-palette.json", "ct-segmented.tif"]
    summary = json.loads((out / "ct-palette.json").read_text())
    centres = np.array(summary["centers"])[:, 0]
    labels = kmseg.load_image(out / "ct-labels.png")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    painted = kmseg.load_image(out / "ct-segmented.tif")
    assert painted.dtype == np.int16 and painted.shape == ct.shape
    np.testing.assert_array_equal(painted, np.rint(centres[labels]).astype(np.int16))
    # Each centre is the mean of its pixels, in Hounsfield-like units.
    for i, c in enumerate(centres):
        assert c == pytest.approx(ct[labels == i].mean(), rel=1e-12)
    # The palette maps the image's min..max to black..white (it was [0, 0, 0] below 0).
    lo, hi = float(ct.min()), float(ct.max())
    for p in summary["palette"]:
        v = int(np.rint((centres[p["index"]] - lo) * 255 / (hi - lo)))
        assert p["rgb"] == [v, v, v] and p["hex"] == f"#{v:02x}{v:02x}{v:02x}"


def test_an_int16_tiff_masked_keeps_0_and_its_report_shows_hidden_pixels_black(tmp_path, monkeypatch):
    """The masked TIFF is full depth: hidden pixels are 0, as documented. The report's masks figure
    is an 8-bit picture on the CT's range (-1024..3000), where 0 is dark grey (65): it was drawn
    so; hidden pixels now show black."""
    import tifffile

    from kmseg import plot

    ct = ct_slice()
    tifffile.imwrite(tmp_path / "ct.tif", ct)
    seg = kmseg.segment(ct, 3, seed=0)
    largest = int(np.argmax(seg.counts))  # the report blacks out the largest cluster
    hidden = seg.labels == largest
    assert main(["segment", str(tmp_path / "ct.tif"), "-k", "3", "-o", str(tmp_path / "out"), "--disable",
                 str(largest)]) == 0
    masked = kmseg.load_image(tmp_path / "out" / "ct-masked.tif")
    assert masked.dtype == np.int16 and (masked[hidden] == 0).all() and np.array_equal(masked[~hidden], ct[~hidden])

    panels = {}
    show = plot._show

    def record(ax, image, has_alpha, title, factor, vrange):
        panels[title] = plot._for_display(image, has_alpha, factor, vrange)
        show(ax, image, has_alpha, title, factor, vrange)

    monkeypatch.setattr(plot, "_show", record)
    assert main(["report", str(tmp_path / "ct.tif"), "-k", "3", "-o", str(tmp_path / "r.html")]) == 0
    shown = panels[f"cluster {largest} blacked out"]
    assert shown.shape[:2] == ct.shape and (shown[hidden] == 0).all()
    grey = np.rint((ct.astype(np.float64) + 1024) * 255 / 4024).astype(np.uint8)
    assert np.array_equal(shown[~hidden], np.repeat(grey[~hidden, None], 3, axis=1))


def test_a_float_tiff_beyond_one_gets_a_float_tiff_and_a_palette_not_all_white(tmp_path):
    import tifffile

    f = (np.random.default_rng(0).random((64, 64, 3)) * 1000).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", f, photometric="rgb")
    out = tmp_path / "out"
    assert main(["segment", str(tmp_path / "f.tif"), "-k", "3", "-o", str(out), "--disable", "0"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["f-labels.png", "f-masked.tif", "f-palette.json", "f-segmented.tif"]
    painted = kmseg.load_image(out / "f-segmented.tif")
    assert painted.dtype == np.float32 and len(np.unique(painted.reshape(-1, 3), axis=0)) == 3
    assert kmseg.load_image(out / "f-masked.tif").dtype == np.float32
    hexes = [p["hex"] for p in json.loads((out / "f-palette.json").read_text())["palette"]]
    assert len(set(hexes)) == 3 and "#ffffff" not in hexes


def test_a_file_whose_output_cannot_be_written_leaves_none_of_its_outputs(pics, tmp_path, capsys):
    """A directory sits where one output must go: even with --force, that file fails alone and
    none of its outputs is left (was: its other outputs written); the next file is done."""
    out = tmp_path / "out"
    (out / "a-palette.json").mkdir(parents=True)
    code = main(["segment", str(pics["a"]), str(pics["b"]), "-k", "3", "-o", str(out), "--masks", "--force"])
    assert code == 1
    err = capsys.readouterr().err
    assert "a-palette.json: is a directory" in err and "1 of 2 files failed" in err
    names = sorted(p.name for p in out.iterdir())
    assert not [n for n in names if n.startswith("a-") and n != "a-palette.json"]
    assert not [n for n in names if n.startswith(".")]  # no temporary file either
    assert "b-segmented.png" in names and "b-cluster2.png" in names


def test_a_batch_that_writes_nothing_leaves_no_folder_behind(pics, tmp_path, capsys):
    """Every file failing left the empty folder (and parents) the run had made for the outputs."""
    other = pics["dir"] / "other.png"
    other.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bad = [str(pics["bad"]), str(other)]
    assert main(["segment", *bad, "-o", str(tmp_path / "new" / "out")]) == 1
    assert "2 of 2 files failed" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    # A folder that was there before stays, even empty; only the ones the run made go.
    (tmp_path / "kept").mkdir()
    for out in (tmp_path / "kept", tmp_path / "kept" / "new" / "out"):
        assert main(["segment", *bad, "-o", str(out)]) == 1
        assert [p.name for p in tmp_path.iterdir() if p.name != "in"] == ["kept"] and not any((tmp_path / "kept").iterdir())
    # A file that was written keeps its folder.
    assert main(["segment", str(pics["a"]), *bad, "-k", "2", "-o", str(tmp_path / "new" / "out")]) == 1
    assert sorted(p.name for p in (tmp_path / "new" / "out").iterdir()) == ["a-labels.png", "a-palette.json", "a-segmented.png"]


def test_no_overwrite_without_force(pics, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["segment", str(pics["a"]), "-k", "2", "-o", str(out)]) == 0
    before = {p.name: _digest(p) for p in out.iterdir()}
    assert main(["segment", str(pics["a"]), "-k", "4", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    # The command line names its own option, where the library says force=True (CLI: --force).
    assert "kmseg: error: " + str(out / "a-segmented.png") + " exists already (and 2 more); pass --force to overwrite it\n" in err
    assert {p.name: _digest(p) for p in out.iterdir()} == before
    # --json reports the same line as the one printed.
    assert main(["segment", str(pics["a"]), "-k", "4", "-o", str(out), "--json"]) == 1
    captured = capsys.readouterr()
    (entry,) = json.loads(captured.out)["results"]
    assert not entry["ok"] and "kmseg: error: " + entry["error"] + "\n" in captured.err
    assert entry["error"].endswith("exists already (and 2 more); pass --force to overwrite it")
    assert {p.name: _digest(p) for p in out.iterdir()} == before
    assert main(["segment", str(pics["a"]), "-k", "4", "-o", str(out), "--force"]) == 0
    assert {p.name: _digest(p) for p in out.iterdir()} != before
    assert sorted(p.name for p in out.iterdir()) == sorted(before)  # no temporary files left


def test_force_never_overwrites_an_input_of_the_same_batch(pics, tmp_path, capsys):
    """`kmseg segment '*.png' -o . --force` run twice: the second run globs the first run's
    outputs, and writing a.png's outputs overwrote them, inputs of that very run (in some
    orders before they were read)."""
    folder = pics["dir"]
    pics["bad"].unlink()
    glob_ = str(folder / "*.png")
    assert main(["segment", glob_, "-k", "2", "-o", str(folder)]) == 0
    capsys.readouterr()
    before = {p.name: _digest(p) for p in folder.iterdir()}
    assert "a-labels.png" in before
    assert main(["segment", glob_, "-k", "3", "-o", str(folder), "--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kmseg: error: ") and "is an input, and also where the" in err[0]
    assert "--force would overwrite it" in err[0] and "-o" in err[0]
    assert {p.name: _digest(p) for p in folder.iterdir()} == before  # nothing written, nothing changed
    # Written elsewhere, or without --force (existing outputs are refused anyway), the batch runs.
    assert main(["segment", glob_, "-k", "3", "-o", str(tmp_path / "elsewhere"), "--force"]) == 0
    assert main(["segment", str(pics["a"]), str(pics["b"]), "-k", "3", "-o", str(folder), "--force"]) == 0


@pytest.mark.parametrize("verb", ["segment", "demo"])
def test_an_output_directory_named_like_a_file_is_refused(verb, pics, tmp_path, capsys):
    args = [str(pics["a"]), "-k", "2"] if verb == "segment" else []
    with pytest.raises(SystemExit) as exc:
        main([verb, *args, "-o", str(tmp_path / "out.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "looks like a file name, but -o takes a directory" in err and f"-o {tmp_path / 'out'}" in err
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out").exists()  # nothing made
    (tmp_path / "out.png").mkdir()  # a directory that exists is taken as it is, whatever its name
    assert main([verb, *args, "-o", str(tmp_path / "out.png")]) == 0
    assert (tmp_path / "out.png" / ("a-segmented.png" if verb == "segment" else "coffee-segmented.png")).exists()


def test_library_warnings_are_one_line_naming_the_file(tmp_path, capsys):
    flat = np.zeros((4, 6, 3), np.uint8)
    flat[:, 3:] = (250, 0, 0)
    paths = [save_image(tmp_path / "in" / "two.png", flat), save_image(tmp_path / "in" / "owt.png", flat[:, ::-1])]
    assert main(["segment", *map(str, paths), "-k", "5", "-o", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"kmseg: warning: {p}: the image has only 2 distinct colours, fewer than k=5; returning 2 clusters, one per colour"
        for p in paths
    ]
    assert main(["demo", "-k", "3", "-o", str(tmp_path / "demo")]) == 0 and capsys.readouterr().err == ""


def _screen(raw: str) -> list[str]:
    """The lines a terminal shows for ``raw``: a carriage return goes back to the line's start,
    and what follows overwrites what was there."""
    shown = []
    for row in raw.split("\n"):
        cells: list[str] = []
        col = 0
        for ch in row:
            if ch == "\r":
                col = 0
                continue
            cells[col:col + 1] = [ch]
            col += 1
        if "".join(cells).strip():
            shown.append("".join(cells).rstrip())
    return shown


_PASS_THROUGH = """
import resource, warnings
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))  # a runaway list fails fast
from kmseg import cli
from kmseg.errors import ConvergenceWarning
with warnings.catch_warnings(record=True) as outer:
    warnings.simplefilter("always")
    with cli.warnings_as_lines("f.png: "):
        warnings.warn("few colours", ConvergenceWarning)
        warnings.warn("not kmseg's", UserWarning)
print([(w.category.__name__, str(w.message)) for w in outer])
"""


def test_warnings_as_lines_shows_every_warning_once_as_a_line():
    """kmseg's warnings and any other become one line each, shown once. Passing another on
    inside the recording block recorded it again, for ever: the command spun at full CPU
    (``kmseg segment --dask`` did so when Dask warned that its port was taken). In a process of
    its own, so that such a loop fails this test instead of hanging the suite."""
    run = subprocess.run([sys.executable, "-c", _PASS_THROUGH], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-500:]
    assert run.stdout.strip() == "[]"
    assert run.stderr == "kmseg: warning: f.png: few colours\nkmseg: warning: f.png: not kmseg's (UserWarning from <string>)\n"


def test_another_librarys_warning_is_one_line_naming_the_file(tmp_path):
    """Pillow's warning of a JPEG's corrupt EXIF was Python's two lines: a path into Pillow, a line
    number, and the line of code 'warnings.warn(str(msg))'. Python's filters still apply."""
    rng = np.random.default_rng(0)
    jpg = tmp_path / "exif.jpg"
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
        jpg, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x05\x00garbage")
    run = subprocess.run([*KMSEG, "segment", str(jpg), "-k", "2", "-o", str(tmp_path / "o")], capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines() == [f"kmseg: warning: {jpg}: Corrupt EXIF data. Expecting to read 12 bytes but only "
                                       "got 7. (UserWarning from PIL)"]
    quiet = subprocess.run([*KMSEG, "segment", str(jpg), "-k", "2", "-o", str(tmp_path / "q")], capture_output=True,
                           text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert quiet.returncode == 0 and quiet.stderr == ""


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_messages_on_a_terminal_are_not_glued_to_the_progress_bar(pics, tmp_path):
    import pty

    flat = np.zeros((4, 6, 3), np.uint8)
    flat[:, 3:] = (250, 0, 0)
    two = save_image(tmp_path / "in2" / "two.png", flat)
    files = [pics["a"], pics["bad"], two, pics["b"]]
    main_fd, term_fd = pty.openpty()  # stderr is a real terminal, so the bar is drawn
    proc = subprocess.Popen([*KMSEG, "segment", *map(str, files), "-k", "3", "-o", str(tmp_path / "out")],
                            stdout=subprocess.DEVNULL, stderr=term_fd)
    os.close(term_fd)
    raw = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        raw += chunk
    os.close(main_fd)
    assert proc.wait() == 1
    shown = _screen(raw.decode().replace("\r\n", "\n"))
    assert f"kmseg: error: {pics['bad']}: not an image" in "\n".join(shown)
    assert f"kmseg: warning: {two}: the image has only 2 distinct colours, fewer than k=3; returning 2 clusters, one per colour" in shown
    messages = [line for line in shown if line.startswith("kmseg:")]
    bars = [line for line in shown if line.startswith("segment [")]
    assert len(messages) == 3 and not [line for line in shown if line not in messages and line not in bars]
    assert len(bars) == 1 and "4/4" in bars[0] and bars[0] == shown[-2]  # the bar, redrawn below, ends at 4/4
    assert shown[-1] == "kmseg: 1 of 4 files failed: " + str(pics["bad"])


def test_every_palette_lists_the_largest_share_first(tmp_path, capsys):
    """`kmseg palette` listed the largest share first, but segment's --json and NAME-palette.json
    by label index; each entry's index stays the cluster's value in the label map."""
    coffee = str(kmseg.data.path("coffee.png"))
    out = tmp_path / "out"
    assert main(["segment", coffee, "-k", "3", "-o", str(out), "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)["results"]
    assert main(["palette", coffee, "-k", "3", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["palette"]
    assert main(["palette", coffee, "-k", "3"]) == 0
    printed = [int(line.split()[0]) for line in capsys.readouterr().out.splitlines()]
    written = json.loads((out / "coffee-palette.json").read_text())["palette"]
    assert entry["palette"] == listed == written and printed == [p["index"] for p in listed]
    counts = [p["count"] for p in listed]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 3
    labels = kmseg.load_image(out / "coffee-labels.png")
    assert [int((labels == p["index"]).sum()) for p in listed] == counts


def test_inputs_are_never_modified(pics, tmp_path):
    before = _digest(pics["a"])
    main(["segment", str(pics["a"]), "-k", "3", "-o", str(tmp_path / "o"), "--masks", "--disable", "0"])
    assert _digest(pics["a"]) == before


def test_globs_are_expanded(pics, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["segment", str(pics["dir"] / "[ab].png"), "-k", "2", "-o", str(out)])
    assert code == 0
    assert (out / "a-segmented.png").exists() and (out / "b-segmented.png").exists()
    assert main(["segment", str(pics["dir"] / "*.jpg"), "-k", "2", "-o", str(out)]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_same_names_from_different_folders_do_not_collide(tmp_path):
    img, _ = quadrants(COLORS)
    p1 = save_image(tmp_path / "x" / "pic.png", img)
    p2 = save_image(tmp_path / "y" / "pic.png", img)
    out = tmp_path / "out"
    assert main(["segment", str(p1), str(p2), "-k", "2", "-o", str(out)]) == 0
    assert len(list(out.glob("*-segmented.png"))) == 2


def test_a_file_named_twice_is_segmented_once(pics, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(pics["dir"])
    out = tmp_path / "out"
    # The same file as a path, as ./path, and through an overlapping glob.
    assert main(["segment", "a.png", "./a.png", str(pics["dir"] / "[ab].png"), "-k", "2", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert [line.split(":")[0] for line in captured.out.splitlines()] == ["a.png", str(pics["b"])]
    assert sorted(p.name for p in out.glob("*-segmented.png")) == ["a-segmented.png", "b-segmented.png"]


def test_output_stems_are_all_different():
    from kmseg.cli import unique_stems

    assert unique_stems(["x.png", "y.png"]) == ["x", "y"]
    assert unique_stems(["a/x.png", "b/x.png"]) == ["a_x", "b_x"]
    # Names that still meet get a number, so that no two files write the same outputs.
    assert unique_stems(["a/x.png", "b/x.png", "a_x.png"]) == ["a_x", "b_x", "a_x-2"]
    assert unique_stems(["x.png", "x.png", "x-2.png"]) == ["x", "x-2", "x-2-2"]
    # Stems that meet keep what tells their files apart: the suffix, the folder, or both.
    assert unique_stems(["coffee.png", "coffee.jpg", "tea.png"]) == ["coffee.png", "coffee.jpg", "tea"]
    assert unique_stems(["x/pic.png", "x/pic.jpg", "y/pic.png"]) == ["x_pic.png", "x_pic.jpg", "y_pic.png"]
    assert unique_stems(["coffee.png", "coffee.jpg", "coffee.png"]) == ["coffee.png", "coffee.jpg", "coffee.png-2"]
    # On a case-insensitive disk, A-segmented.png and a-segmented.png are one file.
    assert unique_stems(["Coffee.png", "coffee.jpg"]) == ["Coffee.png", "coffee.jpg"]
    assert unique_stems(["A.png", "a.png"]) == ["A", "a-2"]


def test_files_that_differ_only_in_their_suffix_keep_it_in_their_output_names(tmp_path, capsys):
    """coffee.png and coffee.jpg wrote coffee-* and coffee-2-*: nothing said which was which."""
    img, _ = quadrants(COLORS)
    png = save_image(tmp_path / "in" / "pic.png", img)
    jpg = save_image(tmp_path / "in" / "pic.jpg", img[::-1])
    out = tmp_path / "out"
    assert main(["segment", str(png), str(jpg), "-k", "2", "-o", str(out)]) == 0
    assert [line.rsplit(" -> ", 1)[1] for line in capsys.readouterr().out.splitlines()] == [
        str(out / "pic.png-segmented.png"), str(out / "pic.jpg-segmented.png")]
    for src in (png, jpg):
        names = sorted(p.name for p in out.glob(f"{src.name}-*"))
        assert names == [f"{src.name}-{kind}" for kind in ("labels.png", "palette.json", "segmented.png")]
        assert json.loads((out / f"{src.name}-palette.json").read_text())["source"] == str(src)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-k", "0"], "argument -k/--k: 0 is out of range; it must be at least 1"),
        (["-k", "two"], "argument -k/--k: 'two' is not a whole number"),
        (["--color-space", "xyz"], "argument --color-space: invalid choice"),
        (["--seed", "-3"], "argument --seed: -3 is out of range"),
        (["--max-pixels", "0"], "argument --max-pixels: 0 is out of range"),
        (["--scale", "3"], "argument --scale: 3.0 is out of range"),
        (["--disable", "7"], "--disable 7 is out of range; clusters run from 0 to 3"),
        (["--shared-palette", "--scale", "0.5"], "--scale is not available with --shared-palette; drop one of them"),
    ],
)
def test_usage_errors_exit_2(pics, tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) if "argument" in message else _noop():
        code = main(["segment", str(pics["a"]), "-o", str(tmp_path / "o"), "-k", "4", *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def _one_line_usage_error(argv: list[str], capsys) -> str:
    """``kmseg ARGV`` in-process must fail as a usage error: exit code 2, nothing on stdout, and
    one line on stderr, which is returned."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    return err.rstrip("\n")


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["segment", "A", "-k", "abc"],
         "argument -k/--k: 'abc' is not a whole number; pass one in digits, such as 5 (see 'kmseg segment --help')"),
        (["segment", "A", "--scale", "0"],
         "argument --scale: 0.0 is out of range; pass a factor in (0, 1] (see 'kmseg segment --help')"),
        (["segment", "A", "--seed", "-1"],
         "argument --seed: -1 is out of range; it must be 0 or more (see 'kmseg segment --help')"),
        (["segment", "A", "--color-space", "xyz"],
         "argument --color-space: invalid choice: 'xyz'; pass one of 'rgb', 'lab', 'hsv' (see 'kmseg segment --help')"),
        (["segment", "A", "-k"], "argument -k/--k: expected one argument; put a value after it (see 'kmseg segment --help')"),
        (["segment", "A", "--frobnicate"],
         "unrecognized arguments: --frobnicate; drop them or check their spelling (see 'kmseg segment --help')"),
        (["segment"], "IMAGE is required; add IMAGE: image files or quoted globs such as 'photos/**/*.jpg' "
                      "(see 'kmseg segment --help')"),
        (["edges", "A"], "-o/--out is required; add -o FILE: output image (.png, .tif, ...) (see 'kmseg edges --help')"),
        (["report", "A"], "-o/--out is required; add -o HTML: the report to write (.html or .htm) (see 'kmseg report --help')"),
        (["palette", "A"], "-k/--k is required; add -k K: number of colours (see 'kmseg palette --help')"),
        (["elbow", "A", "extra"], "unrecognized arguments: extra; drop them or check their spelling (see 'kmseg elbow --help')"),
        (["segmnt", "A"], "argument VERB: invalid choice: 'segmnt'; pass one of 'segment', 'demo', "),
        ([], "VERB is required; add VERB, one of segment, demo, "),
        (["segment", "A", "-k", "4", "--disable", "9"], "--disable 9 is out of range; clusters run from 0 to 3"),
        (["segment", "DIR/*.jpg"], "'DIR/*.jpg' matches no file; check the pattern (quote it so the shell does not expand it)"),
        (["segment", "A", "--palette", "A-palette.json", "--seed", "1"],
         "--seed has no effect with --palette, which fits nothing; drop --seed"),
        (["segment", "A", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler needs --dask; add --dask"),
    ],
)
def test_usage_errors_are_one_line(pics, tmp_path, capsys, argv, line):
    """No usage block (the verb's, or the top-level one for a verb's error), no 'kmseg VERB: error:'."""
    names = {"A": str(pics["a"])}
    argv = [names.get(a, a.replace("DIR", str(pics["dir"]))) for a in argv]
    if argv and argv[0] == "segment":
        argv += ["-o", str(tmp_path / "out")]
    got = _one_line_usage_error(argv, capsys)
    want = "kmseg: error: " + line.replace("DIR", str(pics["dir"]))
    assert got.startswith(want) if line.endswith(" ") else got == want
    assert not (tmp_path / "out").exists()  # not made, or (--disable, found out of range once k is known) removed


def test_scheduler_without_dask_is_refused_at_once(pics, tmp_path):
    """It was taken, and the run then waited 30 s for a scheduler to answer at the address."""
    t0 = time.perf_counter()
    r = subprocess.run([*KMSEG, "segment", str(pics["a"]), "-o", str(tmp_path / "o"), "--scheduler", "tcp://192.0.2.1:8786"],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "kmseg: error: --scheduler needs --dask; add --dask\n")
    assert time.perf_counter() - t0 < 25 and not (tmp_path / "o").exists()


def test_an_output_folder_that_is_a_file_or_goes_through_one_is_one_line(pics, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_bytes(b"keep")
    a = str(pics["a"])
    before = _digest(pics["a"])
    assert _one_line_usage_error(["segment", a, "-o", str(afile)], capsys) == (
        f"kmseg: error: argument -o/--out: '{afile}' is a file, not a folder; pass a folder for the outputs, "
        "or a new name to make one (see 'kmseg segment --help')")
    assert _one_line_usage_error(["segment", a, "-o", f"{a}/x"], capsys) == (
        f"kmseg: error: argument -o/--out: cannot create the folder '{a}/x': '{a}' is a file, not a folder; "
        "pass a folder whose path does not go through a file (see 'kmseg segment --help')")
    assert _one_line_usage_error(["demo", "-o", f"{afile}/demo"], capsys).startswith(
        f"kmseg: error: argument -o/--out: cannot create the folder '{afile}/demo': '{afile}' is a file")
    assert afile.read_bytes() == b"keep" and _digest(pics["a"]) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc, where no folder can be made")
def test_an_output_folder_that_cannot_be_made_fails_once_in_one_line(pics, capsys):
    """Was ``kmseg: error: [Errno 2] No such file or directory: '/proc/nope'`` for each file, and a summary."""
    assert main(["segment", str(pics["a"]), str(pics["b"]), "-k", "2", "-o", "/proc/nope"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("kmseg: error: cannot create the folder '/proc/nope' (No such file or directory); "
                                 "pass a folder you can write to\n")


def test_a_full_disk_fails_in_one_line_naming_the_fix(pics, tmp_path, capsys):
    """Was ``kmseg: internal error: OSError: [Errno 28] No space left on device ... please report
    it`` for a single output, and ``kmseg: error: [Errno 28] ...`` for each file of a batch."""
    with small_disk(tmp_path / "disk") as disk:
        fill(disk)
        assert main(["edges", str(pics["a"]), "-o", str(disk / "e.png")]) == 1
        out, err = capsys.readouterr()
        assert out == "" and err == (f"kmseg: error: {disk}/e.png: cannot be written in '{disk}' (No space left on "
                                     "device); free some space, or pass a path on another disk\n")
        assert main(["segment", str(pics["a"]), "-k", "2", "-o", str(disk)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"kmseg: error: {disk}/a-segmented.png: cannot be written in '{disk}' (No space left on "
                              "device); free some space, or pass a path on another disk\n")
        assert sorted(p.name for p in disk.iterdir()) == ["ballast"]


@needs_sysfs
def test_a_folder_without_permission_fails_each_file_in_one_line(pics, capsys):
    assert main(["segment", str(pics["a"]), "-k", "2", "-o", "/sys"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kmseg: error: /sys/a-segmented.png: cannot be written in '/sys' (Permission denied); "
                          "pass a path in a folder you can write to\n") and "Traceback" not in err


_SLOW = (600, 600, 3)  # noise: with k=200 it takes tens of seconds, time enough to interrupt it


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
@pytest.mark.parametrize("as_json", [False, True])
def test_an_interrupted_batch_keeps_what_it_finished(pics, tmp_path, as_json):
    """Ctrl-C (SIGINT) while the second file is segmented: the first file's line has reached a
    piped stdout (and with --json, the finished files' summary), and the one stderr line says how
    far the batch got and where the outputs are. The lines were printed only at the end: lost."""
    noise = save_image(tmp_path / "in" / "noise.png", np.random.default_rng(0).integers(0, 256, _SLOW, dtype=np.uint8))
    out = tmp_path / "out"
    cmd = [*KMSEG, "segment", str(pics["a"]), str(noise), "-k", "200", "-o", str(out), "--masks"] + (["--json"] if as_json else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watchdog = threading.Timer(600, proc.kill)  # a hang fails the test instead of the suite
    watchdog.start()
    try:
        if as_json:  # nothing on stdout yet: wait for the first file's outputs, all of them
            firsts = [out / f"a-{kind}" for kind in ("segmented.png", "labels.png", "palette.json", "cluster199.png")]
            while proc.poll() is None and not all(p.exists() for p in firsts):
                time.sleep(0.05)
            time.sleep(1.0)  # its entry is recorded right after; the noise takes far longer
            head = ""
        else:
            head = proc.stdout.readline()  # the first file's line, flushed as it finished
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=300)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == f"kmseg: interrupted after 1 of 2 files; the outputs of the 1 finished file are in {out}"
    assert "Traceback" not in err
    if as_json:
        summary = json.loads(rest)
        assert summary["interrupted"] and summary["failed"] == 0
        assert [r["input"] for r in summary["results"]] == [str(pics["a"])]
    else:
        assert head.startswith(f"{pics['a']}: k=200, ") and head.endswith(f" s -> {out / 'a-segmented.png'}\n")
        assert rest == ""
    assert (out / "a-segmented.png").exists() and not (out / "noise-segmented.png").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


_LOST_INTERRUPT = """
import os, signal, sys
from kmseg import cli


class Finalised:
    def __del__(self):  # Ctrl-C arrives while Python runs a finalizer, as numba's compiler runs many
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs here: a KeyboardInterrupt Python cannot raise
            pass


segment_file = cli.segment_file


def segment_then_ctrl_c(path, args):
    seg = segment_file(path, args)
    if path.endswith("b.png"):
        Finalised()
    return seg


cli.segment_file = segment_then_ctrl_c
sys.argv = ["kmseg", "segment", *sys.argv[1:]]
sys.exit(cli.console())
"""


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_ctrl_c_lost_in_a_finalizer_still_stops_the_batch(pics, tmp_path):
    """Python raises Ctrl-C's KeyboardInterrupt wherever the main thread is; in a finalizer it
    printed "Exception ignored ... Traceback" and was lost, and the batch ran to its end with
    exit 0 (seen in CI while numba compiled on first use). Now it stops before the next outputs
    are written, as any Ctrl-C does, without a traceback."""
    out = tmp_path / "out"
    c = save_image(tmp_path / "in" / "c.png", np.zeros((8, 8, 3), np.uint8))
    proc = subprocess.run([sys.executable, "-c", _LOST_INTERRUPT, str(pics["a"]), str(pics["b"]), str(c), "-k", "3",
                           "-o", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.splitlines()[-1] == f"kmseg: interrupted after 1 of 3 files; the outputs of the 1 finished file are in {out}"
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    assert (out / "a-segmented.png").exists() and not list(out.glob("b-*")) and not list(out.glob("c-*"))


def test_every_verb_has_a_description(capsys):
    from kmseg.cli import build_parser

    parser = build_parser()
    verbs = next(a.choices for a in parser._actions if a.dest == "verb")
    assert "demo" in verbs and all(p.description for p in verbs.values()), [v for v, p in verbs.items() if not p.description]
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0 and "Segment the bundled sample photo, coffee.png" in capsys.readouterr().out


class _noop:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_max_pixels_guard(pics, tmp_path, capsys):
    assert main(["segment", str(pics["a"]), "-k", "2", "-o", str(tmp_path / "o"), "--max-pixels", "100"]) == 1
    n = kmseg.load_image(pics["a"]).shape[0] * kmseg.load_image(pics["a"]).shape[1]
    # In the command line's words (was: "pass max_pixels=N or more (CLI: --max-pixels)").
    err = capsys.readouterr().err
    assert f"exceeds the limit of 100; pass --max-pixels {n} or more to allow it\n" in err
    assert err.endswith(f"kmseg: 1 of 1 file failed: {pics['a']}\n")  # (was "1 of 1 files")


def test_an_option_the_image_cannot_take_is_worded_for_the_cli_and_names_the_file(pics, tmp_path, capsys):
    """Was: "kmseg: error: color_space='lab' needs an RGB image...", without the file's name."""
    grey = save_image(tmp_path / "grey.png", kmseg.load_image(pics["a"])[..., 0])
    assert main(["segment", str(grey), str(pics["a"]), "-k", "2", "-o", str(tmp_path / "o"), "--color-space", "lab"]) == 1
    err = capsys.readouterr().err
    assert f"kmseg: error: {grey}: --color-space lab needs an RGB image (3 colour channels); this image has 1: use " \
        "--color-space rgb\n" in err
    with pytest.raises(kmseg.ParameterError, match=r"^color_space='lab' needs an RGB image"):  # an array: no file
        kmseg.segment(kmseg.load_image(grey), 2, color_space="lab")


def test_real_process_exit_codes_and_no_traceback(pics, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    ok = subprocess.run([*KMSEG, "segment", str(pics["a"]), "-k", "3", "-o", str(out)], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run([*KMSEG, "segment", str(tmp_path / "nope.png"), "-o", str(out)], capture_output=True, text=True)
    assert missing.returncode == 1
    assert "nope.png: no such file" in missing.stderr and "Traceback" not in missing.stderr
    usage = subprocess.run([*KMSEG, "segment"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_demo_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out.resolve()) in text and "coffee.png" in text
    shares = [float(line.split()[-1].rstrip("%")) for line in text.splitlines() if line.startswith("  cluster ")]
    assert len(shares) == 5 and shares == sorted(shares, reverse=True)  # the palette, largest share first
    for name in ["coffee-segmented.png", "coffee-labels.png", "coffee-palette.json", "coffee-masked.png", "coffee-cluster0.png"]:
        assert (out / name).exists(), name
    assert main(["demo", "-o", str(out)]) == 1  # outputs exist: no overwrite without --force
    assert main(["demo", "-o", str(out), "--force"]) == 0
