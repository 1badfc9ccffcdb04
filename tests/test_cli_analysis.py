"""The `kmseg elbow`, `edges`, `palette` and `report` verbs: outputs, JSON, exit codes, no overwrite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kmseg
from kmseg._cli_analysis import _PALETTE_SUFFIXES
from kmseg.cli import main
from kmseg.io import PALETTE_FORMATS, load_image, palette_bytes, save_image
from helpers import quadrants

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]
KMSEG = str(Path(sys.executable).with_name("kmseg"))


@pytest.fixture
def pic(tmp_path: Path) -> Path:
    img, _ = quadrants(COLORS, size=(30, 40), noise=4.0)
    return save_image(tmp_path / "pic.png", img)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``kmseg ARGV`` in-process: exit code (argparse's SystemExit too), stdout, stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


# --------------------------------------------------------------------------- elbow


def test_elbow_plain(pic, capsys):
    code, out, err = run(["elbow", pic, "--k-max", "7"], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["k", "inertia"]
    assert len(lines) == 1 + 7 + 1
    assert lines[-1] == "knee: k=4"
    assert lines[4].endswith("<- knee")


def test_elbow_json_shape(pic, capsys):
    code, out, _ = run(["elbow", pic, "--k-min", "2", "--k-max", "6", "--json", "--silhouette", "--seed", "3"], capsys)
    assert code == 0
    d = json.loads(out)
    assert set(d) >= {"input", "ks", "inertias", "knee", "silhouettes", "best_silhouette", "repaired", "seconds",
                      "n_pixels", "options", "plot"}
    assert d["input"] == str(pic) and d["plot"] is None
    assert d["ks"] == [2, 3, 4, 5, 6] and d["knee"] == 4
    assert len(d["inertias"]) == len(d["silhouettes"]) == 5
    assert all(a >= b for a, b in zip(d["inertias"], d["inertias"][1:]))
    assert d["n_pixels"] == 30 * 40
    assert d["options"]["seed"] == 3 and d["options"]["color_space"] == "rgb"


def test_elbow_plot_and_no_overwrite(pic, tmp_path, capsys):
    plot = tmp_path / "elbow.png"
    code, out, _ = run(["elbow", pic, "--k-max", "5", "-o", plot], capsys)
    assert code == 0 and plot.read_bytes()[:4] == b"\x89PNG" and f"wrote {plot}" in out
    before = plot.read_bytes()
    code, _, err = run(["elbow", pic, "--k-max", "5", "-o", plot], capsys)
    assert code == 1 and "exists already; pass --force" in err and len(err.strip().splitlines()) == 1
    assert plot.read_bytes() == before
    code, _, _ = run(["elbow", pic, "--k-max", "5", "-o", plot, "--force", "--json"], capsys)
    assert code == 0
    svg = tmp_path / "elbow.svg"
    assert run(["elbow", pic, "--k-max", "4", "-o", svg], capsys)[0] == 0 and svg.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--k-max", "2"], "fewer than 3 ks"),
        (["--k-min", "5", "--k-max", "6"], "fewer than 3 ks"),
        (["-o", "plot.jpg"], "unknown suffix '.jpg'"),
        (["--k-max", "0"], "out of range"),
        (["--k-max", "x"], "not a whole number"),
    ],
)
def test_elbow_usage_errors(pic, capsys, argv, message):
    code, _, err = run(["elbow", pic, *argv], capsys)
    assert code == 2 and message in err


# --------------------------------------------------------------------------- edges


def test_edges_writes_a_binary_image(pic, tmp_path, capsys):
    out = tmp_path / "e.png"
    code, stdout, _ = run(["edges", pic, "--low", "50", "--high", "150", "-o", out], capsys)
    assert code == 0 and "edge pixels" in stdout
    e = load_image(out)
    assert e.shape == (30, 40) and set(np.unique(e).tolist()) <= {0, 255} and (e == 255).any()
    code, _, err = run(["edges", pic, "-o", out], capsys)
    assert code == 1 and "exists already" in err
    assert run(["edges", pic, "-o", out, "--force"], capsys)[0] == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--low", "300"], "--low 300 is above --high 200"),
        (["--low", "-1"], "-1 is out of range"),
        (["--high", "nan"], "nan is out of range"),
        (["--low", "abc"], "'abc' is not a number"),
    ],
)
def test_edges_bad_thresholds_exit_2(pic, tmp_path, capsys, argv, message):
    code, _, err = run(["edges", pic, "-o", tmp_path / "e.png", *argv], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "e.png").exists()


def test_edges_needs_an_output(pic, capsys):
    code, _, err = run(["edges", pic], capsys)
    assert code == 2 and "-o/--out" in err


# --------------------------------------------------------------------------- palette


def test_palette_plain_sorted_by_share(pic, capsys):
    code, out, _ = run(["palette", pic, "-k", "4"], capsys)
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 4
    shares = [float(line.split()[-1].rstrip("%")) for line in lines]
    assert shares == sorted(shares, reverse=True) and sum(shares) == pytest.approx(100, abs=0.3)
    assert all(line.split()[1].startswith("#") and "rgb(" in line for line in lines)


def test_palette_json(pic, capsys):
    code, out, _ = run(["palette", pic, "-k", "3", "--json", "--color-space", "lab"], capsys)
    assert code == 0
    d = json.loads(out)
    assert d["k"] == 3 and d["input"] == str(pic) and isinstance(d["inertia"], float)
    assert [set(p) for p in d["palette"]] == [{"index", "rgb", "hex", "fraction", "count"}] * 3
    fr = [p["fraction"] for p in d["palette"]]
    assert fr == sorted(fr, reverse=True) and sum(fr) == pytest.approx(1.0)
    assert sorted(p["index"] for p in d["palette"]) == [0, 1, 2]


def test_library_warnings_are_one_line(tmp_path, capsys):
    flat = np.zeros((4, 6, 3), np.uint8)
    flat[:, 3:] = (250, 0, 0)
    path = save_image(tmp_path / "two.png", flat)
    code, out, err = run(["palette", path, "-k", "5"], capsys)
    assert code == 0 and len(out.splitlines()) == 2
    assert err.startswith("kmseg: warning: the image has only 2 distinct colours") and len(err.splitlines()) == 1


def test_palette_needs_k(pic, capsys):
    code, _, err = run(["palette", pic], capsys)
    assert code == 2 and "-k/--k" in err


@pytest.mark.parametrize("suffix", _PALETTE_SUFFIXES)
def test_palette_writes_the_file_its_suffix_names(pic, tmp_path, capsys, suffix):
    """The lines are printed as before, then where the file went; the file holds what the library makes."""
    target = tmp_path / "out" / f"colours{suffix}"
    code, out, err = run(["palette", pic, "-k", "4", "-o", target], capsys)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 5 and lines[-1] == f"wrote {target}"
    _, plain, _ = run(["palette", pic, "-k", "4"], capsys)
    assert lines[:4] == plain.splitlines()
    seg = kmseg.segment(str(pic), 4, seed=0)
    assert target.read_bytes() == palette_bytes(seg, suffix)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # written atomically: no temporary file left


def test_palette_suffixes_are_the_librarys():
    assert _PALETTE_SUFFIXES == tuple(PALETTE_FORMATS)


def test_palette_gpl_is_named_after_the_image(pic, tmp_path, capsys):
    target = tmp_path / "p.GPL"
    assert run(["palette", pic, "-k", "2", "-o", target], capsys)[0] == 0
    assert target.read_text().splitlines()[:2] == ["GIMP Palette", "Name: pic"]


def test_palette_json_file_is_the_one_segment_writes(pic, tmp_path, capsys):
    assert run(["segment", pic, "-k", "3", "-o", tmp_path / "seg"], capsys)[0] == 0
    assert run(["palette", pic, "-k", "3", "-o", tmp_path / "p.json"], capsys)[0] == 0
    assert (tmp_path / "p.json").read_bytes() == (tmp_path / "seg" / "pic-palette.json").read_bytes()


def test_palette_json_names_the_file_written(pic, tmp_path, capsys):
    code, out, _ = run(["palette", pic, "-k", "3", "--json", "-o", tmp_path / "p.css"], capsys)
    assert code == 0 and json.loads(out)["output"] == str(tmp_path / "p.css") and (tmp_path / "p.css").exists()
    code, out, _ = run(["palette", pic, "-k", "3", "--json"], capsys)
    assert code == 0 and json.loads(out)["output"] is None


def test_palette_never_overwrites_without_force(pic, tmp_path, capsys):
    target = tmp_path / "p.ase"
    target.write_bytes(b"keep me")
    code, out, err = run(["palette", pic, "-k", "3", "-o", target], capsys)
    assert (code, out) == (1, "") and err == f"kmseg: error: {target} exists already; pass --force to overwrite it\n"
    assert target.read_bytes() == b"keep me"
    code, out, _ = run(["palette", pic, "-k", "3", "-o", target, "--force"], capsys)
    assert code == 0 and out.endswith(f"wrote {target}\n")
    assert target.read_bytes()[:4] == b"ASEF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.ase", "pic.png"]


@pytest.mark.parametrize(
    ("name", "message"),
    [("p.txt", "unknown suffix '.txt'; use .gpl, .ase, .css, .json or .png"),
     ("p", "no suffix; use .gpl, .ase, .css, .json or .png")],
)
def test_palette_refuses_an_unknown_suffix_before_any_work(pic, tmp_path, capsys, name, message):
    code, out, err = run(["palette", pic, "-k", "3", "-o", tmp_path / name], capsys)
    assert (code, out) == (2, "") and err == f"kmseg: error: -o {tmp_path / name}: {message}\n"
    assert sorted(tmp_path.iterdir()) == [pic]


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_palette_never_overwrites_its_input(pic, tmp_path, capsys, force):
    """Not even with --force; and without it, the line does not offer --force."""
    before = pic.read_bytes()
    code, out, err = run(["palette", pic, "-k", "3", "-o", tmp_path / "." / "pic.png", *force], capsys)
    assert (code, out) == (2, "")
    assert err == f"kmseg: error: -o {tmp_path / '.' / 'pic.png'} is the input image; inputs are never overwritten: pass another path\n"
    assert pic.read_bytes() == before


@pytest.mark.parametrize("verb", [["edges"], ["elbow", "--k-max", "4"]], ids=["edges", "elbow"])
def test_edges_and_elbow_never_overwrite_their_input(pic, tmp_path, capsys, verb):
    """``kmseg edges pic.png -o pic.png --force`` replaced the photo with its edges (and elbow
    with its plot): inputs are never overwritten, as with segment and palette."""
    before = pic.read_bytes()
    code, out, err = run([verb[0], pic, *verb[1:], "-o", tmp_path / "." / "pic.png", "--force"], capsys)
    assert (code, out) == (2, "")
    assert err == f"kmseg: error: -o {tmp_path / '.' / 'pic.png'} is the input image; inputs are never overwritten: pass another path\n"
    assert pic.read_bytes() == before and sorted(tmp_path.iterdir()) == [pic]


def test_palette_refuses_a_directory(pic, tmp_path, capsys):
    (tmp_path / "d.gpl").mkdir()
    code, out, err = run(["palette", pic, "-k", "3", "-o", tmp_path / "d.gpl"], capsys)
    assert (code, out) == (2, "") and err == f"kmseg: error: -o {tmp_path / 'd.gpl'} is a directory; pass a file path\n"


# --------------------------------------------------------------------------- report


def test_report(pic, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, stdout, _ = run(["report", pic, "-o", out, "--k-max", "5", "--seed", "1"], capsys)
    assert code == 0 and f"wrote {out}" in stdout
    text = out.read_text(encoding="utf-8")
    assert 'id="elbow"' in text and "data:image/png;base64," in text
    code, _, err = run(["report", pic, "-o", out, "-k", "3"], capsys)
    assert code == 1 and "exists already" in err
    assert out.read_text(encoding="utf-8") == text
    assert run(["report", pic, "-o", out, "-k", "3", "--k-max", "3", "--force"], capsys)[0] == 0


def test_report_warns_once_in_one_line(tmp_path, capsys):
    """An image of 2 colours: the sweep, the chosen segmentation and each panel of the grid
    warned on their own, 4 lines for one problem."""
    two = np.zeros((20, 30, 3), np.uint8)
    two[:, 15:] = (200, 40, 40)
    pic = save_image(tmp_path / "two.png", two)
    code, out, err = run(["report", pic, "-o", tmp_path / "r.html", "--seed", "0"], capsys)
    assert code == 0 and out == f"wrote {tmp_path / 'r.html'}\n"
    assert err == ("kmseg: warning: the image has only 2 distinct colours, fewer than k=3: in the report, the elbow is "
                   "flat from k=2 on and the grid's panels for k=3, 5 and 7 have 2 clusters each\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--k-max", "2"], "fewer than 3 ks"),
        (["--low", "9", "--high", "1"], "--low 9 is above --high 1"),
        (["-k", "0"], "out of range"),
    ],
)
def test_report_usage_errors(pic, tmp_path, capsys, argv, message):
    code, _, err = run(["report", pic, "-o", tmp_path / "r.html", *argv], capsys)
    assert code == 2 and message in err


def test_report_refuses_a_suffix_other_than_html(pic, tmp_path, capsys):
    """It wrote HTML into rep.pdf; elbow refused unknown suffixes already."""
    code, out, err = run(["report", pic, "-o", tmp_path / "rep.pdf"], capsys)
    assert (code, out) == (2, "") and err == f"kmseg: error: -o {tmp_path / 'rep.pdf'}: unknown suffix '.pdf'; use .html or .htm\n"
    assert list(tmp_path.iterdir()) == [pic]
    assert run(["report", pic, "-o", tmp_path / "r.HTM", "-k", "3", "--k-max", "3"], capsys)[0] == 0


# --------------------------------------------------------------------------- bad input, every verb


@pytest.mark.parametrize(("verb", "name"), [("edges", "x.png"), ("elbow", "x.png"), ("report", "x.html"),
                                           ("palette", "x.gpl")])
def test_an_output_through_a_file_is_one_line(verb, name, pic, tmp_path, capsys):
    """``-o photo.png/x.png`` was 'internal error: FileExistsError', after the work was done."""
    target = pic / name
    extra = {"edges": [], "palette": ["-k", "3"]}.get(verb, ["--k-max", "3"])
    code, out, err = run([verb, pic, "-o", target, *extra], capsys)
    assert (code, out) == (2, "")
    assert err == (f"kmseg: error: -o {target}: '{pic}' is a file, not a folder, so nothing can be written inside it; "
                   "pass a path in a folder\n")
    assert sorted(tmp_path.iterdir()) == [pic]


@pytest.mark.parametrize("verb", ["elbow", "edges", "palette", "report"])
def test_missing_and_bad_files_exit_1_with_one_line(verb, tmp_path, capsys):
    """...and make no output folder: the file's folder is made only when the file is written."""
    new = tmp_path / "new" / "sub"
    extra = {"elbow": ["-o", new / "elbow.png"], "edges": ["-o", new / "e.png"], "palette": ["-k", "3", "-o", new / "p.gpl"],
             "report": ["-o", new / "r.html"]}[verb]
    code, out, err = run([verb, tmp_path / "missing.png", *extra], capsys)
    assert code == 1 and out == ""
    assert err.strip() == f"kmseg: error: {tmp_path / 'missing.png'}: no such file; check the path"
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    code, _, err = run([verb, bad, *extra], capsys)
    assert code == 1 and "not an image" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.png"]


def test_real_process(pic, tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    r = subprocess.run([KMSEG, "elbow", str(tmp_path / "missing.png")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.strip().startswith("kmseg: error:") and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([KMSEG, "edges", str(pic), "--low", "5", "--high", "1", "-o", str(tmp_path / "e.png")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = subprocess.run([KMSEG, "palette", str(pic), "-k", "4", "--json"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["palette"]) == 4
    assert r.stderr == ""  # no progress bar or warning when stderr is not a terminal
