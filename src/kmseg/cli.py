"""The ``kmseg`` command line.

Thin: parse arguments, call the library, print or write. The library's own errors become one
line on stderr, never a traceback. Exit codes: 0 every file succeeded, 1 a run (or any file of a
batch) failed, 2 a usage error.

Verbs live in their own modules and register themselves here, so this import path stays lean:
``kmseg segment`` imports neither matplotlib nor the web stack.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import json
import os
import re
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn, Sequence

__all__ = ["main"]

# Modules that add verbs: each has ``register(subparsers)``; a missing one is simply skipped.
_VERB_MODULES = ("kmseg._cli_analysis", "kmseg.web.cli")


class UsageError(Exception):
    """Bad command-line usage: exit code 2."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a batch; the message says how far the batch got (exit code 130)."""


class Parser(argparse.ArgumentParser):
    """argparse's parser, with each usage error on one line, ``kmseg: error: PROBLEM; FIX (see
    'kmseg VERB --help')``, exit code 2, in place of the usage block and ``kmseg VERB: error:``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"kmseg: error: {self.explain(message)} (see '{self.prog} --help')\n")

    def explain(self, message: str) -> str:
        """argparse's ``message``, with the fix added where argparse gives none."""
        m = re.fullmatch(r"the following arguments are required: (.*)", message)
        if m:
            names = m.group(1).split(", ")
            how = " and ".join(map(self._wanted, names))
            return f"{m.group(1)} {'is' if len(names) == 1 else 'are'} required; add {how}"
        m = re.fullmatch(r"(.*)invalid choice: (.*) \(choose from (.*)\)", message)
        if m:
            return f"{m.group(1)}invalid choice: {m.group(2)}; pass one of {m.group(3)}"
        if message.startswith("unrecognized arguments: "):
            return f"{message}; drop them or check their spelling"
        if message.endswith(("expected one argument", "expected at least one argument")):
            return f"{message}; put a value after it"
        if message.startswith("ambiguous option: "):
            return f"{message}; spell the option out in full"
        return message

    def _wanted(self, name: str) -> str:
        """How to give the argument that argparse names ``name`` (``-o/--out``, ``IMAGE``)."""
        for a in self._actions:
            if "/".join(a.option_strings) == name or (not a.option_strings and (a.metavar or a.dest) == name):
                if a.choices:
                    return f"{name}, one of {', '.join(a.choices)}"
                use = f"{a.option_strings[0]} {a.metavar or a.dest.upper()}" if a.option_strings else name
                return f"{use}: {a.help}" if a.help else use
        return name

    def parse_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: Any = None
    ) -> argparse.Namespace:
        """As argparse's, but arguments no option takes are reported by the verb's parser,
        so that the line points to the verb's help."""
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            verbs = next((a.choices for a in self._actions if isinstance(a, argparse._SubParsersAction)), {})
            verbs.get(getattr(ns, "verb", None), self).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns


# --------------------------------------------------------------------------- argument types


def parse_int(text: str) -> int:
    """A whole number from the command line, or argparse's error naming the text."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; pass one in digits, such as 5") from None


def parse_float(text: str) -> float:
    """A number from the command line, or argparse's error naming the text."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; pass one such as 0.5") from None


def positive_int(text: str) -> int:
    v = parse_int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} is out of range; it must be at least 1")
    return v


def non_negative_int(text: str) -> int:
    v = parse_int(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"{v} is out of range; it must be 0 or more")
    return v


def output_dir(text: str) -> str:
    """An output directory; a name like ``out.png`` that is not a directory already is refused,
    since the verbs that take one write several files into it, and so is a file, or a path
    through one."""
    from .io import folder_problem
    from .segment import looks_like_file

    path = Path(text)
    if looks_like_file(path):
        raise argparse.ArgumentTypeError(
            f"{text!r} looks like a file name, but -o takes a directory to write the outputs into; "
            f"pass a directory such as -o {path.with_suffix('')}"
        )
    problem = folder_problem(path)
    if problem is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


def unit_fraction(text: str) -> float:
    v = parse_float(text)
    if not 0 < v <= 1:
        raise argparse.ArgumentTypeError(f"{v} is out of range; pass a factor in (0, 1]")
    return v


def add_image_options(p: argparse.ArgumentParser) -> None:
    """Options shared by every verb that clusters an image."""
    p.add_argument("--color-space", choices=("rgb", "lab", "hsv"), default="rgb", help="space to cluster in (default rgb)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="random seed; the same seed gives the same result (default 0)")
    p.add_argument("--n-init", type=positive_int, default=10, help="restarts; the best is kept (default 10)")
    p.add_argument("--scale", type=unit_fraction, default=None, help="fit on a copy resized by this factor, label the full image")
    p.add_argument("--max-pixels", type=positive_int, default=None,
                   help="decompression-bomb limit in pixels (default: Pillow's, about 89 million)")
    add_plane_option(p)


def add_plane_option(p: argparse.ArgumentParser) -> None:
    """``--plane N``, for every verb that reads an image."""
    p.add_argument("--plane", type=non_negative_int, default=None, metavar="N",
                   help="which plane of a TIFF stack (Z, T...) or frame of an animated GIF/WebP/PNG to read, from 0 "
                   "(a stack is refused without it; channels stored as TIFF pages are read as bands)")


def output_stems(paths: Sequence[str], plane: int | None) -> list[str]:
    """The stems of ``kmseg segment``'s outputs: :func:`unique_stems`, each with ``-planeN``
    when ``--plane N`` picks a plane, so that the planes of a stack segmented one by one into
    one folder do not meet.

    Examples
    --------
    >>> output_stems(["stack.tif", "b/cells.tif"], 3)
    ['stack-plane3', 'cells-plane3']
    """
    stems = unique_stems(paths)
    return stems if plane is None else [f"{s}-plane{plane}" for s in stems]


def segment_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"color_space": args.color_space, "seed": args.seed, "n_init": args.n_init, "scale": args.scale,
            "max_pixels": args.max_pixels, "plane": args.plane}


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar on stderr, shown only when stderr is a terminal.

    Other lines printed while the bar is open go through ``line``, which clears the bar's
    line, prints them and draws the bar again below, so that no message is glued to the bar.
    """

    def __init__(self, total: int, label: str, *, stream: Any = None) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)()) and total > 1
        self.done = 0
        self.start = time.perf_counter()
        self.shown = ""  # the bar as last drawn, "" before the first draw and after close

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        frac = self.done / self.total
        bar = "#" * int(frac * 30)
        el = time.perf_counter() - self.start
        self._draw(f"{self.label} [{bar:<30}] {self.done}/{self.total} {el:5.1f}s {note[:30]:<30}")

    def line(self, text: str, stream: Any = None) -> None:
        """Print ``text`` as a line of its own above the bar, on ``stream`` (default: the bar's),
        flushed at once."""
        shown = self.shown
        if shown:
            self.stream.write("\r" + " " * len(shown) + "\r")
            self.stream.flush()
        out = self.stream if stream is None else stream
        out.write(text + "\n")
        out.flush()
        if shown:
            self._draw(shown)
        self.stream.flush()

    def _draw(self, text: str) -> None:
        self.stream.write("\r" + text)
        self.stream.flush()
        self.shown = text

    def close(self) -> None:
        if self.enabled and self.shown:
            self.stream.write("\n")
            self.stream.flush()
        self.shown = ""


# --------------------------------------------------------------------------- inputs


_GLOB_CHARS = set("*?[")


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Paths as given, with quoted globs (``'photos/**/*.jpg'``) expanded, in sorted order;
    a file named twice (``a.png ./a.png``, overlapping globs) is kept once, where first named.

    A glob that matches nothing is a usage error. Plain paths are passed through even if
    missing, so that the file fails alone with its own message.
    """
    out: list[str] = []
    for pat in patterns:
        if _GLOB_CHARS & set(pat) and not os.path.exists(pat):
            hits = sorted(h for h in glob.glob(pat, recursive=True) if os.path.isfile(h))
            if not hits:
                raise UsageError(f"{pat!r} matches no file; check the pattern (quote it so the shell does not expand it)")
            out.extend(hits)
        else:
            out.append(pat)
    seen: set[str] = set()
    once = []
    for p in out:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            once.append(p)
    return once


def unique_stems(paths: Sequence[str]) -> list[str]:
    """Output name stems, all different. Files whose stems meet are told apart by what differs
    among them: files from different folders get their folder in it (``x_pic``, ``y_pic``),
    and files with different suffixes keep their whole file name (``coffee.png``,
    ``coffee.jpg``: ``coffee.png-segmented.png``), so each output names its input. Any name
    still taken (the same file twice, ``a/x.png`` beside ``a_x.png``) gets ``-2``, ``-3``...
    Stems meet, and names are taken, whatever their case, as on a case-insensitive disk. So
    no two files of a batch write the same outputs, even at the same time (``--dask``).

    Examples
    --------
    >>> unique_stems(["coffee.png", "coffee.jpg", "x/pic.png", "y/pic.png", "tea.png"])
    ['coffee.png', 'coffee.jpg', 'x_pic', 'y_pic', 'tea']
    """
    norm = [os.path.normpath(p) for p in paths]
    meet: dict[str, list[str]] = {}
    for p in norm:
        meet.setdefault(Path(p).stem.casefold(), []).append(p)
    result = []
    taken: set[str] = set()
    for p in norm:
        group = meet[Path(p).stem.casefold()]
        s = Path(p).name if len({Path(q).suffix for q in group}) > 1 else Path(p).stem
        if len({os.path.dirname(q) for q in group}) > 1:
            folder = os.path.dirname(p).lstrip(os.sep).replace(os.sep, "_").replace("..", "up")
            s = f"{folder}_{s}" if folder else s
        name, n = s, 1
        while name.casefold() in taken:
            n += 1
            name = f"{s}-{n}"
        taken.add(name.casefold())
        result.append(name)
    return result


#: How ``overwritten_input`` names an output, by the word after its stem.
_OUTPUT_KINDS = {"segmented": "recoloured image", "masked": "masked image", "labels": "labels", "palette": "palette"}


#: The names ``Segmentation.save`` (and the region path's TIFFs) may give a file's outputs: its
#: stem, then what the output is, in either suffix a recoloured image may take, whatever the case.
_OUTPUT_NAME = re.compile(r"(.+)-((segmented|masked|labels)\.(png|tif)|palette\.json|cluster\d+\.png)", re.IGNORECASE)


def overwritten_input(paths: Sequence[str], stems: Sequence[str], out: str) -> str | None:
    """The problem, if an output of this batch in folder ``out`` may be one of its inputs:
    ``kmseg segment '*.png' -o . --force`` run twice globs the first run's outputs, and the
    second run would overwrite them while they are inputs (before they are read, in some
    orders). None when no input sits where an output may go. Each input in ``out`` is read
    as an output name once (``_OUTPUT_NAME``), and its stem looked up among the batch's.

    Examples
    --------
    >>> overwritten_input(["a.png", "a-labels.png"], ["a", "a-labels"], ".")
    'a-labels.png is an input, and also where the labels of a.png go'
    >>> overwritten_input(["a.png", "b.png"], ["a", "b"], ".") is None
    True
    """
    try:
        folder = Path(out).resolve()
    except OSError:
        return None
    by_stem = {stem.casefold(): path for path, stem in zip(paths, stems)}
    for other in paths:
        m = _OUTPUT_NAME.fullmatch(Path(other).name)
        if m is None or m.group(1).casefold() not in by_stem or Path(other).resolve().parent != folder:
            continue
        kind = m.group(2).split(".")[0].lower()
        what = _OUTPUT_KINDS.get(kind) or f"cut-out of cluster {kind[len('cluster'):]}"
        path = by_stem[m.group(1).casefold()]
        return f"{other} is an input, and also where the {what} of {path} {'go' if what == 'labels' else 'goes'}"
    return None


@contextmanager
def warnings_as_lines(prefix: str = "", bar: Progress | None = None) -> Iterator[None]:
    """Warnings become one ``kmseg: warning: PREFIXmessage`` line each on stderr (above ``bar``,
    when one is open), printed when the block ends (also when it raises). kmseg's own are
    shown every time; another library's (Pillow's "Corrupt EXIF data", say) as Python's
    filters say (``-W``, ``PYTHONWARNINGS``), and end with what it is and where it comes
    from, instead of Python's two lines with a file, a line number and a line of code."""
    from .errors import ConvergenceWarning, ReadWarning, naming

    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            warnings.simplefilter("always", ReadWarning)
            yield
    finally:
        for w in caught:
            if issubclass(w.category, (ConvergenceWarning, ReadWarning)):
                text = f"kmseg: warning: {naming(prefix, str(w.message))}"
            else:
                message = " ".join(str(w.message).split()) or w.category.__name__
                text = f"kmseg: warning: {prefix}{message} ({w.category.__name__} from {_warned_by(w.filename)})"
            if bar is None:
                print(text, file=sys.stderr)
            else:
                bar.line(text)


def _warned_by(filename: str) -> str:
    """The package a warning was raised in, by its file: ``PIL`` for .../site-packages/PIL/Image.py."""
    parts = Path(filename).parts
    for i in range(len(parts) - 2, -1, -1):
        if parts[i] in ("site-packages", "dist-packages"):
            return parts[i + 1].removesuffix(".py")
    return Path(filename).stem or "Python"


def error_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def cli_wording(line: str) -> str:
    """A library message as the command line prints it: "pass --force", not "force=True"; the
    options, not the parameters, of a Dask job."""
    from .errors import CHECK_SCHEDULER, IN_MEMORY, PASS_FORCE

    line = line.replace(PASS_FORCE, "pass --force").replace(CHECK_SCHEDULER, "check the address given to --scheduler")
    line = line.replace(IN_MEMORY, "segment it in memory with a --max-pixels of at least its pixel count")
    line = re.sub(r"pass max_pixels=(\d+) or more \(CLI: --max-pixels\)", r"pass --max-pixels \1 or more", line)
    line = line.replace("pass plane=N (CLI: --plane N)", "pass --plane N").replace("or leave plane out", "or leave --plane out")
    line = re.sub(r"\bplane=(\d+)", r"--plane \1", line)
    return re.sub(r"\bcolor_space='(\w+)'", r"--color-space \1", line)



# --------------------------------------------------------------------------- segment


def _register_segment(sub: Any) -> None:
    p = sub.add_parser(
        "segment",
        help="segment images into k colour clusters",
        description="Segment each IMAGE into K colour clusters. Writes NAME-segmented.png (recoloured), "
        "NAME-labels.png (label map, uint8 or uint16; 255/65535 marks transparent pixels) and NAME-palette.json "
        "(the palette, largest share first; each colour's index is its value in the label map). NAME is the "
        "file's stem (photo for photo.jpg). Files whose stems meet keep what tells them apart: their folder "
        "(x/pic.png, y/pic.png: x_pic, y_pic) or their suffix, as the whole file name (coffee.png, coffee.jpg: "
        "coffee.png-segmented.png, coffee.jpg-segmented.png); a name still taken gets -2, -3... With --palette "
        "FILE, nothing is fitted: every pixel gets its nearest colour of the palette (cluster i is the palette's "
        "colour i in every image, kept with a count of 0 where no pixel is nearest to it), for a set of images whose "
        "labels mean the same colours; --shared-palette fits that palette on all the images first.",
        epilog="Images of any integer or float dtype are clustered in their own units. The recoloured image keeps "
        "the input's values and dtype: NAME-segmented.png for 8- and 16-bit (uint8, uint16) grey, RGB and RGBA "
        "images, NAME-segmented.tif for every other image (float, int16, int32..., 2 bands, 4 bands without alpha, "
        "more bands), since PNG cannot hold those; NAME-masked is written alike. A TIFF stack (Z, T...) needs "
        "--plane; channels stored as TIFF pages (OME-TIFF, ImageJ CYX) are read as bands. The palette's colours "
        "show the image's own minimum to maximum as black to white, unless it is uint8, uint16 or float in [0, 1]. A file's outputs are written all or "
        "none: a file that fails leaves none of them.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or quoted globs such as 'photos/**/*.jpg'")
    p.add_argument("-k", "--k", type=positive_int, default=None,
                   help="number of clusters (default 5; with --palette, the palette's)")
    p.add_argument("-o", "--out", default="kmseg-out", type=output_dir, metavar="DIR", help="output directory (default kmseg-out)")
    add_image_options(p)
    # None until resolved (resolve_segment_options): --palette refuses them when given.
    p.set_defaults(color_space=None, seed=None, n_init=None)
    next(a for a in p._actions if a.dest == "color_space").help = "space to cluster in (default rgb; with --palette, the file's)"
    next(a for a in p._actions if a.dest == "plane").help += ("; the outputs are then named NAME-planeN-segmented.png..., "
                                                           "so that the planes of a stack do not meet")
    p.add_argument("--palette", metavar="FILE", default=None, dest="palette_file",
                   help="label every image with this palette's colours, fitting nothing: a NAME-palette.json that "
                   "kmseg segment wrote (for images like the one it came from: same channels and dtype), or a "
                   ".gpl, .ase or .css palette or a palette image (.png, a strip of swatches): 8-bit RGB colours, for "
                   "8-bit RGB images. Cluster i is the palette's "
                   "colour i in every image; k and the colour space come from the file")
    p.add_argument("--disable", type=non_negative_int, nargs="+", metavar="I",
                   help="also write NAME-masked.png (or .tif, as NAME-segmented) with these clusters set to 0 "
                   "(black in uint8 and uint16 images; the input's dtype and values are kept)")
    p.add_argument("--masks", action="store_true", help="also write one RGBA cut-out per cluster (NAME-cluster<i>.png)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.add_argument("--dask", action="store_true", help="process the images as Dask tasks (needs the 'dask' extra)")
    p.add_argument("--scheduler", metavar="ADDR", default=None,
                   help="Dask scheduler address (default: $DASK_SCHEDULER_ADDRESS, else a LocalCluster)")
    p.add_argument("--shared-palette", action="store_true",
                   help="fit one palette on all the images together, then label every image with it, so that a "
                   "label means the same colour in every image (the images must share dtype and channels; each is "
                   "read twice, none held; with --dask, 8-bit images only)")
    p.set_defaults(func=cmd_segment)


def run_one(path: str, stem: str, args: argparse.Namespace) -> dict[str, Any]:
    """Segment one file and write its outputs; a dict for the summary."""
    t0 = time.perf_counter()
    seg = segment_file(path, args)
    return save_one(seg, path, stem, out=args.out, disable=args.disable, masks=args.masks, force=args.force, t0=t0)


def segment_file(path: str, args: argparse.Namespace) -> Any:
    """One file's Segmentation, as ``kmseg segment`` makes it: fitted with ``args.k`` clusters,
    or with ``--palette``, labelled with the palette read (``args.palette``), fitting nothing."""
    from .segment import segment

    palette = getattr(args, "palette", None)
    if palette is not None:
        return palette.apply(path, color_space=args.color_space, max_pixels=args.max_pixels, plane=args.plane)
    return segment(path, args.k, **segment_options(args))


def save_one(seg: Any, path: str, stem: str, *, out: str, disable: Sequence[int] | None, masks: bool, force: bool,
             t0: float, usage: bool = True) -> dict[str, Any]:
    """Write one segmentation's outputs; its dict for the summary. With ``usage``, a ``--disable``
    index beyond the clusters is a :class:`UsageError` (exit code 2), checked first; without
    (a Python caller's batch), :meth:`kmseg.Segmentation.save` refuses it in Python's words."""
    if disable and usage:
        bad = [i for i in disable if i >= seg.k]
        if bad:
            raise UsageError(f"--disable {bad[0]} is out of range; clusters run from 0 to {seg.k - 1}")
    stop_if_interrupted()  # an interrupt Python swallowed while the file was segmented: write nothing more
    written = seg.save(out, stem=stem, disable=disable, masks=masks, force=force)
    return {
        "input": path,
        "ok": True,
        "k": seg.k,
        "inertia": seg.inertia,
        "n_iter": seg.n_iter,
        "seconds": round(time.perf_counter() - t0, 4),
        "outputs": {kind: str(p) for kind, p in written.items()},
        "palette": seg.palette(),
    }


def done_line(r: dict[str, Any]) -> str:
    """The stdout line of a file that succeeded."""
    return f"{r['input']}: k={r['k']}, {r['n_iter']} iterations, {r['seconds']:.2f} s -> {r['outputs']['segmented']}"


def show_done(r: dict[str, Any], bar: Progress, as_json: bool) -> None:
    """Print a batch's file as it finishes, so that an interrupt loses none: its error line
    (stderr), or, without ``--json``, its line (stdout); each above ``bar``."""
    if not r["ok"]:
        bar.line(f"kmseg: error: {cli_wording(r['error'])}")
    elif not as_json:
        bar.line(done_line(r), sys.stdout)


def interrupted(results: list[dict[str, Any]], total: int, args: argparse.Namespace) -> Interrupted:
    """What a batch of ``total`` files raises on Ctrl-C, after ``results`` (the files finished,
    in input order): with ``--json``, their summary is printed first (``batch_json``)."""
    if args.json:
        batch_json(results, interrupted=True)
    return Interrupted(interrupted_after(results, total, args.out))


def batch_json(results: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    """Print a batch's ``--json`` summary: every entry, a failed one's error worded as printed,
    and ``extra`` keys. Returns the failed entries."""
    failed = [r for r in results if not r["ok"]]
    for r in failed:
        r["error"] = cli_wording(r["error"])
    print(json.dumps({"results": results, "failed": len(failed), **extra}, indent=2), flush=True)
    return failed


def report_batch(results: list[dict[str, Any]], as_json: bool, printed: bool = False) -> int:
    """Print a batch's summary (``--json``: ``batch_json``; else the line of each file that
    succeeded, unless ``printed`` already)."""
    failed = [r for r in results if not r["ok"]]
    if as_json:
        failed = batch_json(results)
    elif not printed:
        for r in results:
            if r["ok"]:
                print(done_line(r))
    if failed:
        names = ", ".join(r["input"] for r in failed)
        from .errors import counted

        print(f"kmseg: {len(failed)} of {counted(len(results), 'file')} failed: {names}", file=sys.stderr)
        return 1
    return 0


#: The options of ``kmseg segment`` that only a fit uses, and their defaults.
FIT_OPTIONS = {"seed": ("--seed", 0), "n_init": ("--n-init", 10), "scale": ("--scale", None)}


def resolve_segment_options(args: argparse.Namespace) -> None:
    """Settle the options whose meaning depends on ``--palette``, in ``args``: the palette read
    (``args.palette``, or None), k, the colour space, and the fit's options' defaults.

    With ``--palette``, k and the colour space are the palette's: ``-k`` of another value, or a
    ``--color-space`` other than the one a NAME-palette.json was clustered in, is a usage
    error; so are ``--seed``, ``--n-init`` and ``--scale``, which only a fit uses, and
    ``--shared-palette``, which fits one. A palette that cannot be read fails the run (exit 1).
    """
    from .io import read_palette

    args.palette = None
    if args.palette_file is None:
        args.k = 5 if args.k is None else args.k
        args.color_space = args.color_space or "rgb"
        for dest, (_, default) in FIT_OPTIONS.items():
            if getattr(args, dest) is None:
                setattr(args, dest, default)
        return
    if args.shared_palette:
        raise UsageError("--palette and --shared-palette cannot go together: --palette labels with a palette given, "
                         "--shared-palette fits one; drop one of them")
    for dest, (flag, _) in FIT_OPTIONS.items():
        if getattr(args, dest) is not None:
            raise UsageError(f"{flag} has no effect with --palette, which fits nothing; drop {flag}")
    palette = read_palette(args.palette_file)  # a KmsegError: one line, exit 1
    if args.k is not None and args.k != palette.k:
        raise UsageError(f"-k {args.k} does not match {args.palette_file}, which has {palette.k} colours; drop -k "
                         "(with --palette, k is the palette's)")
    if args.color_space is not None and palette.color_space not in (None, args.color_space):
        raise UsageError(f"--color-space {args.color_space} does not match {args.palette_file}, which was clustered "
                         f"in {palette.color_space}; drop --color-space")
    args.palette = palette
    args.k = palette.k
    args.color_space = args.color_space or palette.color_space or "rgb"


def cmd_segment(args: argparse.Namespace) -> int:
    if args.scheduler is not None and not args.scheduler.strip():
        raise UsageError(f"--scheduler {args.scheduler!r} is empty; pass an address such as tcp://10.0.0.5:8786, or "
                         "leave --scheduler out for a local cluster")
    if args.scheduler and not args.dask:
        raise UsageError("--scheduler needs --dask; add --dask")
    if args.shared_palette and args.scale is not None:
        raise UsageError("--scale is not available with --shared-palette; drop one of them")
    resolve_segment_options(args)
    paths = expand_inputs(args.images)
    if args.force:  # (without --force, an output that exists is refused anyway)
        problem = overwritten_input(paths, output_stems(paths, args.plane), args.out)
        if problem:
            raise UsageError(f"{problem}, and --force would overwrite it; leave kmseg's outputs out of the inputs "
                             "(a narrower glob) or write them to another folder with -o")
    with no_empty_folder(args.out):  # a batch that wrote nothing (every file failed) leaves no folder behind
        if args.dask:
            from .distributed import cli_segment  # noqa: PLC0415  (only with --dask)

            return cli_segment(paths, args)
        if args.shared_palette:
            return shared_here(paths, args)
        return segment_here(paths, args)


@contextmanager
def no_empty_folder(folder: str) -> Iterator[None]:
    """When the block ends, however it ends, remove the folders on ``folder``'s path that did
    not exist when it began and are empty: the outputs' folder and any parents made for it,
    deepest first. A folder that existed before, or holds anything, is left as it is."""
    path = Path(folder)
    new = [p for p in (path, *path.parents) if not os.path.lexists(p)]
    try:
        yield
    finally:
        for p in new:
            try:
                p.rmdir()  # only ever removes an empty folder
            except FileNotFoundError:  # never made
                continue
            except OSError:  # something was written: keep it, and so its parents
                break


def segment_here(paths: list[str], args: argparse.Namespace) -> int:
    """``kmseg segment`` without ``--dask``: the files one after the other, in this process."""
    from .errors import KmsegError
    from .io import make_folder

    stems = output_stems(paths, args.plane)
    make_folder(args.out)  # a folder that cannot be made fails the run once, before any work
    results: list[dict[str, Any]] = []
    bar = Progress(len(paths), "segment")
    try:  # closed however the batch ends, so that main()'s last line is not glued to the bar
        for path, stem in zip(paths, stems):
            try:
                with warnings_as_lines(f"{path}: ", bar):  # a batch's warnings name their file
                    results.append(run_one(path, stem, args))
            except (KmsegError, OSError) as exc:
                results.append({"input": path, "ok": False, "error": error_line(exc)})
            show_done(results[-1], bar, args.json)
            bar.advance(note=os.path.basename(path))
    except KeyboardInterrupt:
        raise interrupted(results, len(paths), args) from None
    finally:
        bar.close()
    return report_batch(results, args.json, printed=True)


def shared_here(paths: list[str], args: argparse.Namespace) -> int:
    """``kmseg segment --shared-palette`` without ``--dask``: one palette fitted on all the files
    together, then every file labelled with it, in this process.

    Each file is read twice, and none is held: first its colours are pooled
    (:class:`kmseg.segment.Pool`: exact histograms summed; other images' colours kept), then,
    after the one fit, it is read again, labelled with the palette and written. A file that
    cannot be read, or whose dtype or channels differ from the first's, fails alone, as in
    any batch, and is left out of the palette; 8-bit grey files among RGB ones are made RGB,
    as with ``--dask``. Every file's palette JSON holds the same
    centres, and the fit's iterations and convergence (as the Dask batch's do).
    """
    from .errors import KmsegError
    from .io import make_folder
    from .segment import Pool, prepare

    stems = output_stems(paths, args.plane)
    make_folder(args.out)
    results: list[dict[str, Any] | None] = [None] * len(paths)
    bar = Progress(2 * len(paths), "segment")
    pool = Pool(args.color_space, grey_as_rgb=True)

    def failed(i: int, exc: BaseException) -> None:
        results[i] = {"input": paths[i], "ok": False, "error": error_line(exc)}
        show_done(results[i], bar, args.json)  # type: ignore[arg-type]

    try:
        for i, path in enumerate(paths):  # 1: pool the colours
            try:
                with warnings_as_lines(f"{path}: ", bar):
                    pool.add(prepare(path, color_space=args.color_space, max_pixels=args.max_pixels, plane=args.plane))
            except (KmsegError, OSError) as exc:
                failed(i, exc)
            bar.advance(note=os.path.basename(path))
        palette = fit = problem = None
        if pool.n_images:
            try:
                with warnings_as_lines("", bar):
                    palette, fit = pool.fit(args.k, n_init=args.n_init, seed=args.seed)
            except KmsegError as exc:
                problem = exc  # (no image has an opaque pixel): every file fails with it
        for i, (path, stem) in enumerate(zip(paths, stems)):  # 2: label every file with the palette
            if results[i] is None:
                try:
                    if problem is not None:
                        raise problem
                    t0 = time.perf_counter()
                    with warnings_as_lines(f"{path}: ", bar):
                        prep = prepare(path, color_space=args.color_space, max_pixels=args.max_pixels, plane=args.plane)
                        prep = pool.fitting(prep)
                        seg = palette._label(prep, n_iter=fit.n_iter, converged=fit.converged)  # type: ignore[union-attr]
                        del prep
                        results[i] = save_one(seg, path, stem, out=args.out, disable=args.disable, masks=args.masks,
                                              force=args.force, t0=t0)
                        del seg
                    show_done(results[i], bar, args.json)  # type: ignore[arg-type]
                except (KmsegError, OSError) as exc:
                    failed(i, exc)
            bar.advance(note=os.path.basename(path))
    except KeyboardInterrupt:
        raise interrupted([r for r in results if r is not None], len(paths), args) from None
    finally:
        bar.close()
    return report_batch(results, args.json, printed=True)  # type: ignore[arg-type]


def interrupted_after(results: list[dict[str, Any]], total: int, out: str) -> str:
    """How far an interrupted batch got, and where the finished files' outputs are."""
    from .errors import counted

    failed = sum(not r["ok"] for r in results)
    ok = len(results) - failed
    text = f"after {len(results)} of {counted(total, 'file')}" + (f" ({failed} failed)" if failed else "")
    if not ok:
        return text + "; no file was finished"
    return text + f"; the outputs of the {counted(ok, 'finished file')} are in {out}"


# --------------------------------------------------------------------------- demo


def _register_demo(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="segment the bundled sample photo and write every output",
        description="Segment the bundled sample photo, coffee.png, into K colour clusters and write every output "
        "into DIR: coffee-segmented.png, coffee-labels.png, coffee-palette.json, coffee-masked.png (cluster 0 "
        "blacked out), one RGBA cut-out per cluster (coffee-cluster<i>.png) and the HTML report. Prints the "
        "palette and the time taken.",
    )
    p.add_argument("-o", "--out", default="demo-out", type=output_dir, metavar="DIR", help="output directory (default demo-out)")
    p.add_argument("-k", "--k", type=positive_int, default=5, help="number of clusters (default 5)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from . import data
    from .segment import segment

    src = data.path("coffee.png")
    t0 = time.perf_counter()
    seg = segment(src, args.k, seed=0)
    elapsed = time.perf_counter() - t0
    written = seg.save(args.out, stem="coffee", disable=[0], masks=True, force=args.force)
    extra = _demo_extras(src, args, seg)
    written.update(extra)
    compiled = elapsed > 2.0  # numba compiles the kernels on the first run after install, then caches them
    print(f"kmseg demo: segmented {src.name} ({seg.labels.shape[1]}x{seg.labels.shape[0]}) into k={seg.k} "
          f"clusters in {elapsed:.2f} s ({seg.n_iter} iterations"
          + ("; this first run included compiling the kernels, later runs reuse them)" if compiled else ")"))
    for p in seg.palette():
        print(f"  cluster {p['index']}: {p['hex']}  {100 * p['fraction']:5.1f}%")
    print(f"Wrote {len(written)} files to {Path(args.out).resolve()}/")
    for kind, path in written.items():
        print(f"  {kind:<12} {path}")
    return 0


def _demo_extras(src: Path, args: argparse.Namespace, seg: Any) -> dict[str, Path]:
    """Outputs of optional verbs (the HTML report), when their module is present."""
    try:
        mod = importlib.import_module("kmseg.report")
    except ImportError:
        return {}
    out = Path(args.out) / "coffee-report.html"
    return {"report": mod.write_report(src, out, k=args.k, seed=0, force=args.force)}


# --------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="kmseg",
        description="Exact, fast K-means colour segmentation of images.",
        epilog="Run 'kmseg VERB --help' for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"kmseg {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    _register_segment(sub)
    _register_demo(sub)
    for name in _VERB_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # the module is not part of this install
            raise
        mod.register(sub)
    return parser


def _skip_numba_blas_probe() -> None:
    """Answer numba's BLAS probe with "none" before it is made: 0.15 s of a command's start-up.

    The first compiled call in a process imports ``numba.np.arraymath``, which imports
    ``scipy.linalg`` (when scipy is installed) only to decide whether ``np.correlate`` and
    ``np.convolve`` may call BLAS. kmseg's kernels call neither, and the command runs in a
    process of its own, so here the probe finds no scipy.linalg; any later import of scipy
    works as usual. Skipped when either module is loaded already.
    """
    blas = "scipy.linalg.cython_blas"
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return
    sys.modules[blas] = None  # type: ignore[assignment]  # an import of it fails at once
    try:
        importlib.import_module("numba.np.arraymath")
    except Exception:  # a numba without that module: its first call probes as it likes
        pass
    finally:
        if blas in sys.modules and sys.modules[blas] is None:
            del sys.modules[blas]


#: Set by Ctrl-C (SIGINT) in the ``kmseg`` command (:func:`console`).
_interrupt = threading.Event()


def _on_sigint(signum: int, frame: Any) -> None:
    """Python's own reaction to Ctrl-C, a KeyboardInterrupt, and a note that it came. Python
    raises it wherever the main thread is, and where that is a finalizer (``__del__``), as it
    often is while numba compiles a kernel on first use, it is printed as "Exception ignored"
    and lost: the batch went on to its end and exited 0. :func:`stop_if_interrupted` raises it
    again at the next file's outputs."""
    _interrupt.set()
    raise KeyboardInterrupt


def _unraisable(u: Any) -> None:
    """Python's report of an exception it could not raise, but not of a Ctrl-C noted by
    :func:`_on_sigint` (no traceback: the batch stops at the next file's outputs)."""
    if not (isinstance(u.exc_value, KeyboardInterrupt) and _interrupt.is_set()):
        sys.__unraisablehook__(u)


def stop_if_interrupted() -> None:
    """Raise KeyboardInterrupt if Ctrl-C came (a lost one included, see :func:`_on_sigint`)."""
    if _interrupt.is_set():
        raise KeyboardInterrupt


def console() -> int:
    """The ``kmseg`` command: :func:`main` in a process of its own, whose Ctrl-C is never lost."""
    import signal

    _skip_numba_blas_probe()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # (not when the caller ignores it)
        signal.signal(signal.SIGINT, _on_sigint)
        sys.unraisablehook = _unraisable
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    from .errors import KmsegError

    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with warnings_as_lines():
            return int(func(args) or 0)
    except UsageError as exc:
        print(f"kmseg: error: {exc}", file=sys.stderr)
        return 2
    except KmsegError as exc:
        print(f"kmseg: error: {cli_wording(error_line(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:  # an Interrupted batch says how far it got
        print("kmseg: interrupted" + (f" {exc}" if str(exc) else ""), file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # a bug: still one line, with a way to see more
        if os.environ.get("KMSEG_DEBUG"):
            raise
        print(f"kmseg: internal error: {type(exc).__name__}: {error_line(exc)} "
              "(set KMSEG_DEBUG=1 to see the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
