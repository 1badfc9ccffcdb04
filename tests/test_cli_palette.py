"""`kmseg segment --palette FILE` labels every image with a palette read back, and
`--shared-palette` (without Dask) fits one palette on all the images and labels each with it;
kmseg.fit_palette is the same fit in Python. Real files, real formats, the real command."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

import kmseg
from kmseg import data
from kmseg.cli import main
from kmseg.io import save_image, write_palette
from helpers import ct_slice


def labels_of(path: Path) -> np.ndarray:
    """A label map PNG as int labels, -1 where it marks transparent pixels."""
    raw = np.asarray(Image.open(path))
    labels = raw.astype(np.int32)
    labels[raw == np.iinfo(raw.dtype).max] = -1
    return labels


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def photos_dir(tmp_path: Path) -> dict[str, Path]:
    """Two bundled photos as PNGs, the second also in RGBA with a transparent block."""
    folder = tmp_path / "in"
    a = save_image(folder / "coffee.png", kmseg.load_image(data.path("coffee.png")))
    chelsea = kmseg.load_image(data.path("chelsea.png"))
    b = save_image(folder / "chelsea.png", chelsea)
    alpha = np.full(chelsea.shape[:2], 255, np.uint8)
    alpha[40:120, 60:200] = 0
    c = save_image(folder / "cat-rgba.png", np.dstack([chelsea, alpha]))
    return {"a": a, "b": b, "rgba": c}


@pytest.mark.parametrize("space", ["rgb", "lab"])
def test_a_palette_json_round_trip_labels_as_apply_does(tmp_path, photos_dir, capsys, space):
    """Segment A, save; `kmseg segment --palette A-palette.json B.png`: B's labels are segA.apply(B)'s."""
    seg_a = kmseg.segment(photos_dir["a"], k=5, seed=0, color_space=space)
    palette = seg_a.save(tmp_path / "a")["palette"]
    out = tmp_path / "b"
    code, stdout, err = run(["segment", "--palette", str(palette), str(photos_dir["b"]), str(photos_dir["rgba"]),
                             "-o", str(out)], capsys)
    assert (code, err) == (0, ""), err
    assert "k=5, 0 iterations" in stdout
    for name in ("chelsea", "cat-rgba"):
        want = seg_a.apply(photos_dir["rgba" if name == "cat-rgba" else "b"])
        np.testing.assert_array_equal(labels_of(out / f"{name}-labels.png"), want.labels)
        summary = json.loads((out / f"{name}-palette.json").read_text())
        assert summary["centers"] == seg_a.centers.tolist() and summary["color_space"] == space
        assert summary["n_iter"] == 0 and summary["k"] == 5
        np.testing.assert_array_equal(np.asarray(Image.open(out / f"{name}-segmented.png")), want.image())
    assert (labels_of(out / "cat-rgba-labels.png")[40:120, 60:200] == -1).all()
    # A's own palette on A gives back A's labels.
    code, _, _ = run(["segment", "--palette", str(palette), str(photos_dir["a"]), "-o", str(tmp_path / "again")], capsys)
    assert code == 0
    np.testing.assert_array_equal(labels_of(tmp_path / "again" / "coffee-labels.png"), seg_a.labels)


def test_a_16_bit_palette_json_labels_a_16_bit_stack_with_masks_and_disable(tmp_path, capsys):
    """A scientist's stack: int16 slices, the first segmented, the others labelled with its palette;
    a cluster empty on some slice keeps its index and its (empty) cut-out."""
    slices = [ct_slice(seed=s) for s in range(3)]
    slices[2][:, 8:] = 40  # the last slice has no bone: that cluster is empty there
    names = []
    for i, sl in enumerate(slices):
        names.append(str(tmp_path / f"s{i}.tif"))
        tifffile.imwrite(names[-1], sl)
    first = kmseg.segment(names[0], k=3, seed=0)
    pal = first.save(tmp_path / "fit")["palette"]
    out = tmp_path / "out"
    code, _, err = run(["segment", "--palette", str(pal), *names, "-o", str(out), "--masks", "--disable", "0", "--json"],
                       capsys)
    assert code == 0, err
    for i, name in enumerate(names):
        want = first.apply(name)
        np.testing.assert_array_equal(labels_of(out / f"s{i}-labels.png"), want.labels)
        assert tifffile.imread(out / f"s{i}-segmented.tif").dtype == np.int16
        assert sorted(p.name for p in out.glob(f"s{i}-cluster*.png")) == [f"s{i}-cluster{j}.png" for j in range(3)]
        assert (out / f"s{i}-masked.tif").exists()
    last = json.loads((out / "s2-palette.json").read_text())
    assert 0 in [p["count"] for p in last["palette"]] and last["k"] == 3


@pytest.mark.parametrize("suffix", [".gpl", ".ase", ".css"])
def test_a_designers_palette_labels_8_bit_images(tmp_path, photos_dir, capsys, suffix):
    seg_a = kmseg.segment(photos_dir["a"], k=4, seed=0)
    pal = write_palette(tmp_path / f"a{suffix}", seg_a)
    out = tmp_path / "out"
    code, _, err = run(["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out)], capsys)
    assert code == 0, err
    want = kmseg.io.read_palette(pal).apply(photos_dir["b"])
    np.testing.assert_array_equal(labels_of(out / "chelsea-labels.png"), want.labels)
    # Cluster i is A's cluster i (the files list them largest share first; the names put them back).
    display = np.array([p["rgb"] for p in sorted(seg_a.palette(), key=lambda p: p["index"])])
    np.testing.assert_array_equal(json.loads((out / "chelsea-palette.json").read_text())["centers"], display)


def test_a_swatch_strip_labels_8_bit_images_largest_share_first(tmp_path, photos_dir, capsys):
    """kmseg palette -o a.png's strip, read back: its colours left to right are clusters 0, 1..."""
    seg_a = kmseg.segment(photos_dir["a"], k=4, seed=0)
    pal = write_palette(tmp_path / "a.png", seg_a)
    out = tmp_path / "out"
    code, _, err = run(["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out)], capsys)
    assert code == 0, err
    b = kmseg.load_image(photos_dir["b"])
    display = np.array([p["rgb"] for p in seg_a.palette()], float)  # largest share first
    nearest = ((b.reshape(-1, 1, 3).astype(float) - display[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(labels_of(out / "chelsea-labels.png").reshape(-1), nearest)
    np.testing.assert_array_equal(json.loads((out / "chelsea-palette.json").read_text())["centers"], display)


def test_a_gimp_palette_from_gimp_in_any_colour_space(tmp_path, photos_dir, capsys):
    gpl = tmp_path / "mine.gpl"
    gpl.write_text("GIMP Palette\nName: Mine\nColumns: 4\n#\n  0   0   0\tBlack\n255 255 255\tWhite\n"
                   "180  90  40\tRust\n 60 120 180\tSky\n")
    for space in ("rgb", "lab"):
        out = tmp_path / space
        code, _, err = run(["segment", "--palette", str(gpl), str(photos_dir["a"]), "-o", str(out),
                            "--color-space", space], capsys)
        assert code == 0, err
        want = kmseg.Palette([[0, 0, 0], [255, 255, 255], [180, 90, 40], [60, 120, 180]], dtype="uint8")
        np.testing.assert_array_equal(labels_of(out / "coffee-labels.png"),
                                      want.apply(photos_dir["a"], color_space=space).labels)
        assert json.loads((out / "coffee-palette.json").read_text())["color_space"] == space


def test_a_16_bit_image_with_a_gpl_fails_alone_in_one_line(tmp_path, photos_dir, capsys):
    pal = write_palette(tmp_path / "a.gpl", kmseg.segment(photos_dir["a"], k=3, seed=0))
    deep = tmp_path / "in" / "deep.png"
    save_image(deep, (kmseg.load_image(photos_dir["b"]).astype(np.uint16) * 257))
    out = tmp_path / "out"
    code, stdout, err = run(["segment", "--palette", str(pal), str(deep), str(photos_dir["b"]), "-o", str(out)], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (f"kmseg: error: {deep}: {pal} holds 8-bit RGB display colours, which label 8-bit RGB or RGBA "
                        "images only, and the image is uint16 with 3 colour channels; label it with the "
                        "NAME-palette.json that kmseg segment wrote, which keeps the centres in the image's own units")
    assert lines[-1] == f"kmseg: 1 of 2 files failed: {deep}" and "Traceback" not in err
    assert sorted(p.name for p in out.iterdir()) == ["chelsea-labels.png", "chelsea-palette.json",
                                                     "chelsea-segmented.png"]


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        (["-k", "7"], "kmseg: error: -k 7 does not match PAL, which has 4 colours; drop -k (with --palette, k is the "
                      "palette's)"),
        (["--n-init", "3"], "kmseg: error: --n-init has no effect with --palette, which fits nothing; drop --n-init"),
        (["--scale", "0.5"], "kmseg: error: --scale has no effect with --palette, which fits nothing; drop --scale"),
        (["--shared-palette"], "kmseg: error: --palette and --shared-palette cannot go together: --palette labels "
                               "with a palette given, --shared-palette fits one; drop one of them"),
        (["--color-space", "hsv"], "kmseg: error: --color-space hsv does not match PAL, which was clustered in lab; "
                                   "drop --color-space"),
    ],
)
def test_palette_usage_errors_exit_2_in_one_line(tmp_path, photos_dir, capsys, extra, line):
    pal = kmseg.segment(photos_dir["a"], k=4, seed=0, color_space="lab").save(tmp_path / "a")["palette"]
    out = tmp_path / "out"
    code, stdout, err = run(["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out), *extra], capsys)
    assert (code, stdout, err) == (2, "", line.replace("PAL", str(pal)) + "\n")
    assert not out.exists()
    # -k of the palette's own value is allowed.
    assert run(["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out), "-k", "4"], capsys)[0] == 0


@pytest.mark.parametrize(
    ("name", "content", "line"),
    [
        ("missing.json", None, "kmseg: error: PAL: no such file; check the path"),
        ("bad.gpl", "GIMP Palette\n1 2 3 one\n4 five 6\n", "kmseg: error: PAL: line 3: G 'five' is not a whole number; "
                                                          "write R, G and B as whole numbers from 0 to 255"),
        ("bad.json", "{\"centers\": [[1, 2, 3]],\n", "kmseg: error: PAL: line 2: not valid JSON (Expecting property "
                                                    "name enclosed in double quotes); pass the NAME-palette.json that "
                                                    "kmseg segment wrote"),
        ("strip.png", "", "kmseg: error: PAL: is not a PNG image (it does not begin with PNG's signature); pass a "
                          "palette image saved as PNG"),
        ("brand.pal", "JASC-PAL\n", "kmseg: error: PAL: unknown palette suffix '.pal'; kmseg reads .json, .gpl, .ase, "
                                    ".css or .png palettes"),
    ],
)
def test_a_palette_that_cannot_be_read_fails_the_run_in_one_line(tmp_path, photos_dir, capsys, name, content, line):
    pal = tmp_path / name
    if content is not None:
        pal.write_text(content)
    out = tmp_path / "out"
    code, stdout, err = run(["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out)], capsys)
    assert (code, stdout, err) == (1, "", line.replace("PAL", str(pal)) + "\n")
    assert not out.exists()


def test_palette_outputs_are_never_overwritten_without_force(tmp_path, photos_dir, capsys):
    pal = kmseg.segment(photos_dir["a"], k=3, seed=0).save(tmp_path / "a")["palette"]
    out = tmp_path / "out"
    argv = ["segment", "--palette", str(pal), str(photos_dir["b"]), "-o", str(out)]
    assert run(argv, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, err = run(argv, capsys)
    assert code == 1 and "exists already" in err and "pass --force" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert run([*argv, "--force"], capsys)[0] == 0


# --------------------------------------------------------------------------- one palette for all the images


def _concatenated(images: list[np.ndarray]) -> np.ndarray:
    """One (N, 1, C) image of every pixel of ``images``, in order: what a shared palette must equal."""
    c = 1 if images[0].ndim == 2 else images[0].shape[2]
    return np.concatenate([im.reshape(-1, 1, c) for im in images])


def _split(labels: np.ndarray, images: list[np.ndarray]) -> list[np.ndarray]:
    sizes = np.cumsum([im.shape[0] * im.shape[1] for im in images])[:-1]
    return [part.reshape(im.shape[:2]) for part, im in zip(np.split(labels.reshape(-1), sizes), images)]


def _stack(kind: str) -> list[np.ndarray]:
    """Three images of different sizes: 8-bit RGB crops of the photos, 16-bit colour ones
    (the pixels path), 16-bit grey (its exact histogram) or RGBA."""
    rng = np.random.default_rng(4)
    crops = [kmseg.load_image(data.path(n))[:h, :w] for n, h, w in
             (("coffee.png", 90, 120), ("chelsea.png", 70, 100), ("astronaut.png", 60, 80))]
    if kind == "uint8":
        return crops
    if kind == "uint16":
        return [(c.astype(np.uint16) * 257 + rng.integers(0, 257, c.shape)).astype(np.uint16) for c in crops]
    if kind == "uint16 grey":
        return [(c[..., 1].astype(np.uint16) * 257 + rng.integers(0, 257, c.shape[:2])).astype(np.uint16) for c in crops]
    out = []
    for c in crops:  # rgba
        a = np.full(c.shape[:2], 255, np.uint8)
        a[: c.shape[0] // 3] = 0
        out.append(np.dstack([c, a]))
    return out


def _write(images: list[np.ndarray], folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return [str(save_image(folder / f"im{i}.png", im)) for i, im in enumerate(images)]


@pytest.mark.parametrize("kind", ["uint8", "uint16", "uint16 grey", "rgba"])
def test_fit_palette_is_the_fit_on_the_concatenated_pixels(tmp_path, kind):
    images = _stack(kind)
    paths = _write(images, tmp_path / "in")
    alpha = kind == "rgba"
    ref = kmseg.segment(_concatenated(images), k=6, seed=0, alpha=alpha)
    pal = kmseg.fit_palette(paths, k=6, seed=0)
    np.testing.assert_array_equal(pal.centers, ref.centers)
    np.testing.assert_array_equal(pal.space_centers, ref.space_centers)
    assert pal.source == paths[0] and pal.dtype == images[0].dtype
    for path, want in zip(paths, _split(ref.labels, images)):
        np.testing.assert_array_equal(pal.apply(path).labels, want)


@pytest.mark.parametrize("kind", ["uint8", "uint16", "rgba"])
def test_shared_palette_without_dask_is_the_fit_on_the_concatenated_pixels(tmp_path, capsys, kind):
    images = _stack(kind)
    paths = _write(images, tmp_path / "in")
    ref = kmseg.segment(_concatenated(images), k=5, seed=0, alpha=kind == "rgba", color_space="lab"
                        if kind == "uint8" else "rgb")
    out = tmp_path / "out"
    space = ["--color-space", "lab"] if kind == "uint8" else []
    code, stdout, err = run(["segment", "--shared-palette", *paths, "-k", "5", "-o", str(out), *space], capsys)
    assert (code, err) == (0, ""), err
    assert len(stdout.splitlines()) == 3
    for i, want in enumerate(_split(ref.labels, images)):
        np.testing.assert_array_equal(labels_of(out / f"im{i}-labels.png"), want)
        summary = json.loads((out / f"im{i}-palette.json").read_text())
        assert summary["centers"] == ref.centers.tolist()
        assert summary["n_iter"] == ref.n_iter and summary["converged"] == ref.converged
    # Each palette JSON labels its image again as the batch did.
    again = kmseg.io.read_palette(out / "im1-palette.json").apply(paths[1])
    np.testing.assert_array_equal(again.labels, labels_of(out / "im1-labels.png"))


def test_shared_palette_files_that_do_not_fit_fail_alone(tmp_path, capsys):
    images = _stack("uint8")
    paths = _write(images, tmp_path / "in")
    grey = str(save_image(tmp_path / "in" / "grey.png", images[0][..., 0].astype(np.uint16) * 257))
    bad = tmp_path / "in" / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    code, stdout, err = run(["segment", "--shared-palette", paths[0], grey, str(bad), paths[1], "-k", "4", "-o",
                             str(out), "--seed", "3"], capsys)
    assert code == 1
    lines = err.splitlines()
    assert lines[0] == (f"kmseg: error: {grey}: the image is uint16 with 1 colour channel, but the shared palette is "
                        f"fitted on uint8 images with 3 colour channels ({paths[0]}); segment it apart from them, "
                        "or convert it")
    assert lines[1].startswith(f"kmseg: error: {bad}: not an image kmseg can read")
    assert lines[-1] == f"kmseg: 2 of 4 files failed: {grey}, {bad}"
    ref = kmseg.segment(_concatenated(images[:2]), k=4, seed=3)
    for i, want in enumerate(_split(ref.labels, images[:2])):
        np.testing.assert_array_equal(labels_of(out / f"im{i}-labels.png"), want)
    assert not list(out.glob("grey-*")) and not list(out.glob("bad-*"))


@pytest.mark.parametrize("grey_first", [False, True])
def test_shared_palette_makes_grey_files_among_rgb_ones_rgb(tmp_path, capsys, grey_first):
    """8-bit grey files among RGB ones join the palette with their grey in all three channels,
    as with --dask (they were refused without it), in whatever order they come; a set of grey
    files alone stays grey. (A grey+alpha PNG is read as RGBA, grey in all three.)"""
    rgb = _stack("uint8")[:2]
    grey = np.asarray(Image.open(data.path("chelsea.png")).convert("L"))[:50, :70]
    alpha = np.full(grey.shape, 255, np.uint8)
    alpha[:, :20] = 0
    la = np.dstack([grey, alpha])  # grey + alpha
    images = [grey, la, *rgb] if grey_first else [rgb[0], grey, rgb[1], la]
    (tmp_path / "in").mkdir()
    paths = [str(tmp_path / "in" / f"im{i}.png") for i in range(len(images))]
    for im, path in zip(images, paths):
        Image.fromarray(im, "LA" if im is la else None).save(path)
    # What the palette must be fitted on: every image as RGBA, grey in all three channels.
    opaque = np.full((50, 70), 255, np.uint8)
    as_rgba = {id(grey): np.dstack([grey, grey, grey, opaque]), id(la): np.dstack([grey, grey, grey, alpha])}
    as_rgba.update({id(im): np.dstack([im, np.full(im.shape[:2], 255, np.uint8)]) for im in rgb})
    opaque = [as_rgba[id(im)] for im in images]
    as_rgb = [o if im is la else o[..., :3] for o, im in zip(opaque, images)]
    ref = kmseg.segment(_concatenated(opaque), k=5, seed=0, alpha=True)
    out = tmp_path / "out"
    code, stdout, err = run(["segment", "--shared-palette", *paths, "-k", "5", "-o", str(out)], capsys)
    assert (code, err) == (0, ""), err
    for i, (want, im) in enumerate(zip(_split(ref.labels, opaque), as_rgb)):
        np.testing.assert_array_equal(labels_of(out / f"im{i}-labels.png"), want)
        assert json.loads((out / f"im{i}-palette.json").read_text())["centers"] == ref.centers.tolist()
        painted = np.asarray(Image.open(out / f"im{i}-segmented.png"))
        assert painted.shape == im.shape  # grey files come out RGB (grey+alpha as RGBA)
    # Grey files alone keep one channel.
    Image.fromarray(grey[::-1]).save(tmp_path / "in" / "flipped.png")
    greys = [p for p, im in zip(paths, images) if im is grey] + [str(tmp_path / "in" / "flipped.png")]
    code, _, err = run(["segment", "--shared-palette", *greys, "-k", "3", "-o", str(tmp_path / "grey")], capsys)
    assert (code, err) == (0, ""), err
    for path in greys:
        assert np.asarray(Image.open(tmp_path / "grey" / f"{Path(path).stem}-segmented.png")).shape == grey.shape


def test_shared_palette_with_too_few_colours_warns_once_of_all_the_images(tmp_path, capsys):
    a = np.zeros((4, 4, 3), np.uint8)
    b = np.full((4, 4, 3), 200, np.uint8)
    paths = _write([a, b], tmp_path / "in")
    code, _, err = run(["segment", "--shared-palette", *paths, "-k", "3", "-o", str(tmp_path / "out")], capsys)
    assert code == 0
    assert err == ("kmseg: warning: the images have only 2 distinct colours together, fewer than k=3; the palette has "
                   "2 colours, one per colour\n")
    with pytest.warns(kmseg.ConvergenceWarning, match=r"only 2 distinct colours together, fewer than k=3"):
        assert kmseg.fit_palette(paths, k=3, seed=0).k == 2


def test_shared_palette_of_fully_transparent_images_fails_every_file(tmp_path, capsys):
    paths = _write([np.zeros((3, 3, 4), np.uint8)] * 2, tmp_path / "in")
    code, _, err = run(["segment", "--shared-palette", *paths, "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    line = "no image has opaque pixels (every alpha is 0); there is nothing to cluster"
    assert err.splitlines() == [f"kmseg: error: {line}"] * 2 + [f"kmseg: 2 of 2 files failed: {', '.join(paths)}"]
    assert not (tmp_path / "out").exists()


def test_fit_palette_refuses_mixed_or_no_images():
    with pytest.raises(kmseg.ParameterError, match=r"^the image is uint16 with 3 colour channels, but the shared "
                                                   r"palette is fitted on uint8 images with 3 colour channels; "):
        kmseg.fit_palette([np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2, 3), np.uint16)], k=1)
    with pytest.raises(kmseg.ParameterError, match=r"^images is empty; pass the images to fit one palette on$"):
        kmseg.fit_palette([], k=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pal = kmseg.fit_palette(iter([np.zeros((2, 2), np.uint8), np.full((2, 2), 9, np.uint8)]), k=2, seed=0)
    assert sorted(pal.centers[:, 0].tolist()) == [0.0, 9.0]
